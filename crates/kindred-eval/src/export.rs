//! Writing top-K lists as `user,item,rank,score` CSV (external ids, rank from 1), the form of
//! `kindred recommend --format csv` and `kindred eval --export-recs`, so anyone can recompute
//! the metrics from the exact lists they were computed from.

use std::io::Write;
use std::path::Path;

use kindred_core::{Error, IdMap, Result, Scored};

/// Writes `lists` (dense user index, ranked items) as CSV with a header.
pub fn write_recs_csv(
    out: &mut dyn Write,
    users: &IdMap,
    items: &IdMap,
    lists: &[(u32, Vec<Scored>)],
) -> std::io::Result<()> {
    writeln!(out, "user,item,rank,score")?;
    for (user, list) in lists {
        let user = csv_field(users.external(*user));
        for (rank, s) in list.iter().enumerate() {
            writeln!(
                out,
                "{user},{},{},{}",
                csv_field(items.external(s.item)),
                rank + 1,
                s.score
            )?;
        }
    }
    Ok(())
}

/// Writes `lists` to the file at `path`.
pub fn write_recs_file(
    path: &Path,
    users: &IdMap,
    items: &IdMap,
    lists: &[(u32, Vec<Scored>)],
) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    write_recs_csv(&mut out, users, items, lists)
        .and_then(|_| out.flush())
        .map_err(|e| Error::io(path, e))
}

/// Quotes a field when it contains a delimiter, quote or newline (RFC 4180).
pub fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        std::borrow::Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_external_ids_and_quotes() {
        let users = IdMap::from(vec!["u,1".to_string()]);
        let items = IdMap::from(vec!["a".to_string(), "b\"x".to_string()]);
        let lists = vec![(
            0,
            vec![
                Scored {
                    item: 1,
                    score: 0.5,
                },
                Scored {
                    item: 0,
                    score: 0.25,
                },
            ],
        )];
        let mut buf = Vec::new();
        write_recs_csv(&mut buf, &users, &items, &lists).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "user,item,rank,score\n\"u,1\",\"b\"\"x\",1,0.5\n\"u,1\",a,2,0.25\n"
        );
    }
}
