//! A scratch directory for one test that is removed when the test ends, pass or fail: tests
//! that wrote into fixed-name folders under the system temp dir left one behind per run.

use std::ops::Deref;
use std::path::Path;

/// An empty directory under the system temp dir, named `kindred-TAG-` plus a unique suffix,
/// deleted with everything in it when dropped (also while a failing test unwinds). Dereferences
/// to its path.
pub struct TestDir(tempfile::TempDir);

impl TestDir {
    /// Creates the directory; panics if the temp dir is not writable (only tests call this).
    pub fn new(tag: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("kindred-{tag}-"))
            .tempdir()
            .expect("create a directory under the system temp dir");
        Self(dir)
    }
}

impl Deref for TestDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_and_its_files_are_gone_after_the_guard() {
        let dir = TestDir::new("testkit");
        std::fs::create_dir_all(dir.join("nested")).unwrap();
        std::fs::write(dir.join("nested/a.txt"), "x").unwrap();
        let path = dir.to_path_buf();
        assert!(path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("kindred-testkit-"));
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn two_guards_with_one_tag_are_two_directories() {
        let (a, b) = (TestDir::new("same"), TestDir::new("same"));
        assert_ne!(&*a, &*b);
    }
}
