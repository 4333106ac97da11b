//! Argument parsers shared by several commands, so that a bad flag gets the same clear message
//! everywhere (a negative `--k` is "must be at least 1", not clap's "unexpected argument").

/// A count that must be at least 1 (`--k`); negative numbers reach this parser (the flags that
/// use it allow them) so that they are refused with a reason.
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<i128>() {
        Ok(n) if n >= 1 => usize::try_from(n).map_err(|_| format!("{n} is too large")),
        Ok(n) => Err(format!("must be at least 1 (got {n})")),
        Err(_) => Err(format!("`{text}` is not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::at_least_one;

    #[test]
    fn counts_are_whole_and_positive() {
        assert_eq!(at_least_one("10"), Ok(10));
        assert_eq!(
            at_least_one("-5"),
            Err("must be at least 1 (got -5)".into())
        );
        assert_eq!(at_least_one("0"), Err("must be at least 1 (got 0)".into()));
        assert!(at_least_one("ten")
            .unwrap_err()
            .contains("not a whole number"));
    }
}
