//! The process's threads: rayon's pool, and the threads of candle's matrix products.
//!
//! The pool has `--threads` threads, else as many as `RAYON_NUM_THREADS` said when `kindred`
//! started, else one per core. candle (the neural models' tensor library) splits each matrix
//! product over `RAYON_NUM_THREADS` threads, read at every product, and runs its other
//! operations on the calling thread. The neural parts already run their batches side by side
//! on the pool (sasrec's batch shards, the encoder's batches), and products split again inside
//! them were slower on 2 cores than products on one thread each: two sasrec epochs on
//! MovieLens 1M took 101 s against 59 s, and `kindred embed` of 10,000 titles 30 to 36 s
//! against 25.5 s (one-off timings; ARCHITECTURE.md, "threads"). So the second execution
//! ([`crate::allocator`]) runs with `RAYON_NUM_THREADS=1` and the pool's size in
//! [`POOL_THREADS`].

/// The variable that carries the pool's size into the second execution.
pub const POOL_THREADS: &str = "KINDRED_POOL_THREADS";

/// The variables the second execution runs under; none when this is the second execution.
pub fn environment(requested: Option<usize>) -> Vec<(&'static str, String)> {
    if std::env::var_os(POOL_THREADS).is_some() {
        return Vec::new();
    }
    let pool = requested
        .or_else(|| positive(std::env::var("RAYON_NUM_THREADS").ok()))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    vec![
        (POOL_THREADS, pool.max(1).to_string()),
        ("RAYON_NUM_THREADS", "1".to_owned()),
    ]
}

/// Builds rayon's global pool: `--threads` if given, else the size [`environment`] recorded,
/// else rayon's default (when executing again failed).
pub fn build_pool(requested: Option<usize>) {
    let Some(threads) = requested.or_else(|| positive(std::env::var(POOL_THREADS).ok())) else {
        return;
    };
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build_global()
    {
        eprintln!("warning: cannot set {threads} threads: {e}");
    }
}

fn positive(value: Option<String>) -> Option<usize> {
    value
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_positive_counts_are_read() {
        assert_eq!(positive(Some(" 3 ".into())), Some(3));
        assert_eq!(positive(Some("0".into())), None);
        assert_eq!(positive(Some("many".into())), None);
        assert_eq!(positive(None), None);
    }
}
