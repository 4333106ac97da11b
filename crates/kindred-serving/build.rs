//! Records the git commit the crate is built from (`KINDRED_GIT_COMMIT`, "unknown" outside a git
//! checkout; `KINDRED_BUILD_COMMIT` overrides it, for builds from a source archive), so every
//! trained version's manifest names the code that made it. Reruns when the checked-out commit
//! moves, not on every source change: uncommitted edits are not shown.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=KINDRED_BUILD_COMMIT");
    let commit = std::env::var("KINDRED_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    // HEAD, the branch it names and the packed refs: what changes when the commit moves.
    // Only paths that exist: cargo reruns the script on every build for a missing one.
    let watch = |path: &str| {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            if std::path::Path::new(&p).exists() {
                println!("cargo:rerun-if-changed={p}");
            }
        }
    };
    watch("HEAD");
    watch("packed-refs");
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch(&branch);
    }
    println!("cargo:rustc-env=KINDRED_GIT_COMMIT={commit}");
}
