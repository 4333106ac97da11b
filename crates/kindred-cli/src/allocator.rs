//! The process's allocator, mimalloc, and the options every command runs it with.
//!
//! Not glibc's malloc: it spreads threads over up to 8 arenas per core, and `free` gives memory
//! back to the system only from the top of an arena. `kindred serve` trains versions and rebuilds
//! snapshots on tokio's blocking threads, allocating and freeing hundreds of MB each time; under
//! glibc its RSS rose over training runs on unchanged data and never came back down, under
//! mimalloc it does (bench/train_rss.sh; BENCHMARKS.md, "Soak").
//!
//! Every command runs mimalloc with two options (BENCHMARKS.md, "Soak" and "Fit speed"):
//! - `allow_thp=0`: no transparent huge pages. mimalloc asks the kernel for them on its arenas
//!   (`madvise`), and a 2 MiB huge page stays resident whole while any part of it is in use
//!   (the kernel's khugepaged may even collapse a partly freed range back into one). In a soak
//!   the server's live heap stayed flat while its RSS climbed, and most of the arena's resident
//!   memory (186 to 250 MB of 322 to 407) was huge pages. Two soaks side by side, the same
//!   binary: +18.5% RSS with huge pages, +3.9% without, every level lower. Batch commands pay
//!   for them in time: every first touch of a huge page clears all 2 MiB of it, and
//!   `kindred eval` of SVD on five MovieLens 1M folds spent a fifth of its CPU time in the
//!   kernel clearing them (`perf`), as freed arena memory went back to the system and was
//!   touched again.
//! - `page_reclaim_on_free=1`: the server frees on one thread what another, often already gone,
//!   allocated (a snapshot built on a blocking thread is dropped by whichever request held it
//!   last). By default mimalloc lets only the thread that made a page take it back; with this
//!   option the freeing thread adopts it.
//!
//! mimalloc reads its options from the environment once, before `main`, so `kindred` sets the
//! variables and executes itself again; a value already in the environment (an operator's own,
//! or the second execution's) is left alone. The same execution carries the variables that set
//! the process's threads ([`crate::threads`]), which are always applied.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The environment variables and values every command runs under.
pub const OPTIONS: [(&str, &str); 2] = [
    ("MIMALLOC_ALLOW_THP", "0"),
    ("MIMALLOC_PAGE_RECLAIM_ON_FREE", "1"),
];

/// Replaces this process with the same command under [`OPTIONS`] (each unless already set) and
/// `always` (each whatever it was). Returns only when nothing was replaced: every option was set
/// and `always` is empty, or executing again failed (then the command runs with mimalloc's
/// defaults and says so).
pub fn with_options(always: &[(&str, String)]) {
    let missing = OPTIONS
        .into_iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .map(|(name, value)| (name, value.to_owned()));
    let wanted: Vec<(&str, String)> = missing.chain(always.iter().cloned()).collect();
    if wanted.is_empty() {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let failure = match std::env::current_exe() {
            Ok(exe) => std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .envs(wanted.iter().map(|(n, v)| (n, v)))
                .exec(),
            Err(e) => e,
        };
        let names: Vec<String> = wanted.iter().map(|(n, v)| format!("{n}={v}")).collect();
        eprintln!(
            "warning: running with mimalloc's defaults ({} not applied: {failure})",
            names.join(", ")
        );
    }
    #[cfg(not(unix))]
    let _ = wanted;
}
