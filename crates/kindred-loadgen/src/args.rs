//! Command-line options: `--name value` pairs and a few `--flag`s, strict about unknown names
//! (a misspelt option must not silently fall back to a default in a benchmark).

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use crate::LoadError;

/// Options that take no value.
const FLAGS: &[&str] = &["closed-loop"];

#[derive(Debug)]
pub struct Args {
    values: BTreeMap<String, String>,
}

impl Args {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, LoadError> {
        let mut values = BTreeMap::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let name = arg
                .strip_prefix("--")
                .ok_or_else(|| LoadError(format!("expected an option --NAME, got `{arg}`")))?
                .to_owned();
            let value = if FLAGS.contains(&name.as_str()) {
                "true".to_owned()
            } else {
                args.next()
                    .ok_or_else(|| LoadError(format!("option --{name} needs a value")))?
            };
            if values.insert(name.clone(), value).is_some() {
                return Err(LoadError(format!("option --{name} given twice")));
            }
        }
        Ok(Self { values })
    }

    pub fn string(&mut self, name: &str) -> Option<String> {
        self.values.remove(name)
    }

    pub fn required(&mut self, name: &str) -> Result<String, LoadError> {
        self.string(name)
            .ok_or_else(|| LoadError(format!("option --{name} is required")))
    }

    pub fn flag(&mut self, name: &str) -> bool {
        self.values.remove(name).is_some()
    }

    pub fn number<T: FromStr>(&mut self, name: &str) -> Result<Option<T>, LoadError> {
        self.string(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| LoadError(format!("option --{name}: `{v}` is not a valid number")))
            })
            .transpose()
    }

    pub fn number_or<T: FromStr>(&mut self, name: &str, default: T) -> Result<T, LoadError> {
        Ok(self.number(name)?.unwrap_or(default))
    }

    /// Fails on any option nobody asked for.
    pub fn finish(self) -> Result<(), LoadError> {
        match self.values.keys().next() {
            Some(name) => Err(LoadError(format!("unknown option --{name}"))),
            None => Ok(()),
        }
    }
}

/// Ids from `--NAME A..B` (inclusive integer range) or `--NAME-file PATH` (one id a line).
pub fn ids(args: &mut Args, name: &str) -> Result<Vec<String>, LoadError> {
    let file_option = format!("{name}-file");
    match (args.string(name), args.string(&file_option)) {
        (Some(_), Some(_)) => Err(LoadError(format!(
            "give either --{name} or --{file_option}, not both"
        ))),
        (Some(range), None) => parse_range(&range)
            .map(|(a, b)| (a..=b).map(|i| i.to_string()).collect())
            .ok_or_else(|| LoadError(format!("--{name} `{range}`: expected FIRST..LAST"))),
        (None, Some(path)) => read_ids(Path::new(&path)),
        (None, None) => Err(LoadError(format!(
            "option --{name} A..B or --{file_option} PATH is required"
        ))),
    }
}

fn parse_range(text: &str) -> Option<(u64, u64)> {
    let (a, b) = text.split_once("..")?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

fn read_ids(path: &Path) -> Result<Vec<String>, LoadError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| LoadError(format!("{}: {e}", path.display())))?;
    let ids: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some((line, bad)) = ids.iter().enumerate().find(|(_, id)| {
        !id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    }) {
        return Err(LoadError(format!(
            "{} line {}: id `{bad}` needs URL escaping, which the load generator does not do",
            path.display(),
            line + 1
        )));
    }
    if ids.is_empty() {
        return Err(LoadError(format!("{}: no ids", path.display())));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, LoadError> {
        Args::parse(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn values_flags_and_leftovers() {
        let mut a = args(&["--rate", "5000", "--closed-loop", "--users", "1..3"]).unwrap();
        assert_eq!(a.number::<f64>("rate").unwrap(), Some(5000.0));
        assert!(a.flag("closed-loop"));
        assert_eq!(ids(&mut a, "users").unwrap(), ["1", "2", "3"]);
        a.finish().unwrap();
        let mut b = args(&["--rat", "1"]).unwrap();
        assert_eq!(b.number_or("rate", 7.0).unwrap(), 7.0);
        assert!(b.finish().unwrap_err().0.contains("--rat"));
    }

    #[test]
    fn bad_input_is_named() {
        assert!(args(&["rate"]).is_err());
        assert!(args(&["--rate"]).unwrap_err().0.contains("needs a value"));
        assert!(args(&["--n", "1", "--n", "2"]).is_err());
        let mut a = args(&["--rate", "fast", "--users", "9..1"]).unwrap();
        assert!(a.number::<f64>("rate").unwrap_err().0.contains("fast"));
        assert!(ids(&mut a, "users").is_err());
    }

    #[test]
    fn ids_from_a_file() {
        let dir = std::env::temp_dir().join(format!("kindred-loadgen-ids-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.txt");
        std::fs::write(&good, "u1\n\n u2 \n").unwrap();
        let bad = dir.join("bad.txt");
        std::fs::write(&bad, "u1\nu 2\n").unwrap();
        let mut a = args(&["--users-file", good.to_str().unwrap()]).unwrap();
        assert_eq!(ids(&mut a, "users").unwrap(), ["u1", "u2"]);
        let mut b = args(&["--users-file", bad.to_str().unwrap()]).unwrap();
        assert!(ids(&mut b, "users").unwrap_err().0.contains("line 2"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
