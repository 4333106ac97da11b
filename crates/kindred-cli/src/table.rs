//! Plain-text tables for the terminal: left-aligned first column, right-aligned numbers.

/// Renders `rows` under `headers` with columns padded to their widest cell.
pub fn render(headers: &[String], rows: &[Vec<String>]) -> String {
    let cols = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (c, cell) in row.iter().enumerate().take(cols) {
            widths[c] = widths[c].max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (c, cell) in cells.iter().enumerate().take(cols) {
            let pad = widths[c] - cell.chars().count();
            if c == 0 {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str("  ");
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(headers);
    out.push('\n');
    out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * cols.saturating_sub(1)));
    out.push('\n');
    for row in rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

/// Formats an integer with thousands separators.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `n` and the noun, plural unless `n` is 1: "1 user", "2,000 users", "1 test pair".
pub fn plural(n: u64, noun: &str) -> String {
    let count = thousands(usize::try_from(n).unwrap_or(usize::MAX));
    if n == 1 {
        format!("{count} {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let t = render(
            &["model".into(), "rmse".into()],
            &[
                vec!["svd".into(), "0.8731".into()],
                vec!["baseline".into(), "0.9".into()],
            ],
        );
        assert_eq!(
            t,
            "model       rmse\n----------------\nsvd       0.8731\nbaseline     0.9\n"
        );
        assert_eq!(thousands(1000209), "1,000,209");
        assert_eq!(thousands(12), "12");
        assert_eq!(plural(1, "test pair"), "1 test pair");
        assert_eq!(plural(0, "user"), "0 users");
        assert_eq!(plural(2000, "user"), "2,000 users");
    }
}
