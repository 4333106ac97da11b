//! The process's allocator, mimalloc, and the option `kindred serve` runs it with.
//!
//! Not glibc's malloc: it spreads threads over up to 8 arenas per core, and `free` gives memory
//! back to the system only from the top of an arena. `kindred serve` trains versions and rebuilds
//! snapshots on tokio's blocking threads, allocating and freeing hundreds of MB each time; under
//! glibc its RSS rose over training runs on unchanged data and never came back down, under
//! mimalloc it does (bench/train_rss.sh; BENCHMARKS.md, "Soak").
//!
//! The server also frees on one thread what another, often already gone, allocated: a snapshot
//! is built on a blocking thread and dropped by whichever request held it last. By default
//! mimalloc lets only the thread that made a page take it back; with `page_reclaim_on_free=1`
//! the freeing thread adopts it. In two 27-minute soaks run side by side the RSS climbed +6.8%
//! with it and +34.2% without; a later run with it, without a control beside it, climbed +19.4%
//! (BENCHMARKS.md, "Soak"): it helps, but does not bound the growth. mimalloc reads its options
//! from the environment once, before `main`, so `kindred serve` sets the variable and executes
//! itself again; a value already in the environment (an operator's own, or the second
//! execution's) is left alone.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The environment variable and value `kindred serve` runs under.
pub const SERVER_OPTION: (&str, &str) = ("MIMALLOC_PAGE_RECLAIM_ON_FREE", "1");

/// Replaces this process with the same command under [`SERVER_OPTION`] unless the variable is
/// already set. Returns only when nothing was replaced: the variable was set, or executing
/// again failed (then the server runs with mimalloc's default and says so).
pub fn with_server_options() {
    let (name, value) = SERVER_OPTION;
    if std::env::var_os(name).is_some() {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let failure = match std::env::current_exe() {
            Ok(exe) => std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env(name, value)
                .exec(),
            Err(e) => e,
        };
        eprintln!(
            "warning: running with mimalloc's default page reclaim ({name}={value} not applied: \
             {failure})"
        );
    }
    #[cfg(not(unix))]
    let _ = value;
}
