//! Where an error sits in a TOML config file, so that every config reader (the rank config, the
//! preprocessing pipeline, the server config) words its errors the same way:
//! `FILE:LINE:COLUMN: key `section.key`: message`.
//!
//! It works on the text alone: the byte offset a TOML parser reports for a syntax or type error,
//! or a dotted key looked up again for a value that parsed but failed validation. Locating is
//! best effort (one key per line, tables as `[section]` headers), which is how Kindred's configs
//! are written; an unknown position is left out of the message rather than guessed.

use std::fmt::Display;

use crate::Error;

/// A position in a config file's text and the dotted key written there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigLocation {
    /// 1-based line; 0 when unknown.
    pub line: u64,
    /// 1-based column in characters; 0 when unknown.
    pub column: u64,
    /// Dotted key path (`diversity.mmr_lambda`), a table name (`pin`), or empty when unknown.
    pub key: String,
}

impl ConfigLocation {
    /// The location of byte `offset` of `text` (as a TOML parser's error span reports it) and the
    /// key of its line, prefixed by the table it is in (`section.key`); a table header's key is the
    /// table's name. Unknown without an offset.
    pub fn at_offset(text: &str, offset: Option<usize>) -> Self {
        let Some(offset) = offset else {
            return Self::default();
        };
        let mut start = offset.min(text.len());
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |p| p + 1);
        let column = text[line_start..start].chars().count() as u64 + 1;
        let lines: Vec<&str> = text.lines().collect();
        let line_text = lines.get(line - 1).copied().unwrap_or("").trim();
        let key = if let Some(table) = table_name(line_text) {
            table.to_owned()
        } else {
            let key = line_text
                .split_once('=')
                .map_or(line_text, |(k, _)| k)
                .trim();
            // The table is the last header above the line.
            let table = lines[..(line - 1).min(lines.len())]
                .iter()
                .rev()
                .find_map(|l| table_name(l.trim()));
            match table {
                Some(t) if !key.is_empty() => format!("{t}.{key}"),
                Some(t) => t.to_owned(),
                None => key.to_owned(),
            }
        };
        Self {
            line: line as u64,
            column,
            key,
        }
    }

    /// Where the dotted `path` is set (a key of its table, or a table header), for a value that
    /// parsed but is invalid; line and column stay 0 when it is not written in `text`.
    pub fn of_key(text: &str, path: &str) -> Self {
        let (table, key) = path.rsplit_once('.').unwrap_or(("", path));
        let mut current = "";
        let mut found = None;
        for (n, raw) in text.lines().enumerate() {
            let l = raw.trim();
            if let Some(name) = table_name(l) {
                current = name;
                if current == path {
                    found = Some((n, raw));
                    break;
                }
            } else if current == table && l.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
                found = Some((n, raw));
                break;
            }
        }
        let (line, column) = found.map_or((0, 0), |(n, raw)| {
            let indent = raw.chars().take_while(|c| c.is_whitespace()).count();
            (n as u64 + 1, indent as u64 + 1)
        });
        Self {
            line,
            column,
            key: path.to_owned(),
        }
    }

    /// `FILE:LINE:COLUMN`, or as much of it as is known.
    pub fn origin(&self, file: impl Display) -> String {
        match (self.line, self.column) {
            (0, _) => file.to_string(),
            (line, 0) => format!("{file}:{line}"),
            (line, column) => format!("{file}:{line}:{column}"),
        }
    }

    /// ``key `KEY`: MESSAGE``, or the message alone when no key is known.
    pub fn describe(&self, message: impl Display) -> String {
        if self.key.is_empty() {
            message.to_string()
        } else {
            format!("key `{}`: {message}", self.key)
        }
    }

    /// The [`Error::Config`] of `message` at this location of `file`.
    pub fn error(&self, file: impl Display, message: impl Display) -> Error {
        Error::Config {
            origin: self.origin(file),
            message: self.describe(message),
        }
    }
}

/// The name of a `[table]` or `[[array]]` header line (already trimmed).
fn table_name(line: &str) -> Option<&str> {
    line.starts_with('[')
        .then(|| line.trim_matches(['[', ']']).trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "candidates = 5\n\n[diversity]\n  mmr_lambda = 2\n[[pin]]\nitem = \"é\"\n";

    #[test]
    fn offsets_give_line_column_and_dotted_key() {
        let at = |needle: &str| ConfigLocation::at_offset(TEXT, TEXT.find(needle));
        assert_eq!(
            at("5"),
            ConfigLocation {
                line: 1,
                column: 14,
                key: "candidates".into()
            }
        );
        let lambda = at("2");
        assert_eq!((lambda.line, lambda.column), (4, 16));
        assert_eq!(lambda.key, "diversity.mmr_lambda");
        assert_eq!(at("[[pin]]").key, "pin");
        // Columns count characters, not bytes.
        let after = ConfigLocation::at_offset(TEXT, TEXT.find('é').map(|p| p + 2));
        assert_eq!(
            (after.line, after.column, after.key.as_str()),
            (6, 10, "pin.item")
        );
        // Inside a character or past the end: clamped, never a panic.
        assert_eq!(
            ConfigLocation::at_offset(TEXT, TEXT.find('é').map(|p| p + 1)).column,
            9
        );
        assert_eq!(ConfigLocation::at_offset(TEXT, Some(10_000)).line, 7);
        assert_eq!(
            ConfigLocation::at_offset(TEXT, None),
            ConfigLocation::default()
        );
    }

    #[test]
    fn keys_are_found_again() {
        let lambda = ConfigLocation::of_key(TEXT, "diversity.mmr_lambda");
        assert_eq!((lambda.line, lambda.column), (4, 3));
        assert_eq!(ConfigLocation::of_key(TEXT, "candidates").line, 1);
        assert_eq!(ConfigLocation::of_key(TEXT, "pin").line, 5);
        let missing = ConfigLocation::of_key(TEXT, "calibration.weight");
        assert_eq!((missing.line, missing.column), (0, 0));
        assert_eq!(missing.key, "calibration.weight");
    }

    #[test]
    fn one_message_format() {
        let lambda = ConfigLocation::of_key(TEXT, "diversity.mmr_lambda");
        assert_eq!(
            lambda.error("rank.toml", "must be in [0, 1]").to_string(),
            "rank.toml:4:3: key `diversity.mmr_lambda`: must be in [0, 1]"
        );
        let missing = ConfigLocation::of_key(TEXT, "calibration.weight");
        assert_eq!(
            missing.error("rank.toml", "bad").to_string(),
            "rank.toml: key `calibration.weight`: bad"
        );
        assert_eq!(
            ConfigLocation::default()
                .error("x.toml", "empty")
                .to_string(),
            "x.toml: empty"
        );
    }
}
