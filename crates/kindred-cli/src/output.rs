//! Writing to standard output without panicking. `println!` panics when stdout is a closed pipe
//! (`kindred models --json | head`); [`outln!`] and [`out!`] return the write error instead, and
//! `main` treats a broken pipe as the reader having had enough: a quiet, successful exit.

/// `println!` that returns `std::io::Result<()>` instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` that returns `std::io::Result<()>` instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// Whether `err` comes from writing into a pipe whose reader has gone.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let io = match cause.downcast_ref::<kindred_core::Error>() {
            Some(kindred_core::Error::Io { error, .. }) => Some(error),
            _ => cause.downcast_ref::<std::io::Error>(),
        };
        io.is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::is_broken_pipe;
    use std::io::{Error, ErrorKind};

    #[test]
    fn finds_a_broken_pipe_anywhere_in_the_chain() {
        let direct = anyhow::Error::new(Error::from(ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&direct));
        let wrapped = anyhow::Error::new(kindred_core::Error::io(
            "-",
            Error::from(ErrorKind::BrokenPipe),
        ))
        .context("writing recommendations");
        assert!(is_broken_pipe(&wrapped));
        let other = anyhow::Error::new(Error::from(ErrorKind::NotFound)).context("reading");
        assert!(!is_broken_pipe(&other));
    }
}
