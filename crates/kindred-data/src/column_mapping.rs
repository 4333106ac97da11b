//! Which column of a tabular file holds what: the [`ColumnMapping`] a user passes (its syntax is
//! documented with the CSV/TSV reader, `delimited`) and the common header names tried without one. Shared by the
//! import options and every tabular reader (CSV/TSV, JSON Lines, Parquet), so none of them needs
//! another reader's file.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use kindred_core::{Error, Result};

/// What a column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    User,
    Item,
    Rating,
    Weight,
    Timestamp,
    Event,
    /// Row context under this key (positional form); in the named form the key is the column name.
    Context(String),
}

impl Role {
    fn parse(name: &str) -> Option<Role> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "user" => Role::User,
            "item" => Role::Item,
            "rating" => Role::Rating,
            "weight" => Role::Weight,
            "timestamp" | "ts" | "time" => Role::Timestamp,
            "event" => Role::Event,
            "context" => Role::Context(String::new()),
            _ => return None,
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Item => "item",
            Role::Rating => "rating",
            Role::Weight => "weight",
            Role::Timestamp => "timestamp",
            Role::Event => "event",
            Role::Context(_) => "context",
        }
    }
}

/// Where a role's column is: a 0-based position or a header name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnRef {
    Position(usize),
    Name(String),
}

/// Which column holds the user, the item, the rating, ... (syntax in the `delimited` module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMapping {
    entries: Vec<(Role, ColumnRef)>,
}

impl ColumnMapping {
    /// Parses a mapping such as `user,item,rating,timestamp` or `user=uid,item=pid,rating=stars`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |message: String| Error::spec("column mapping", text, message);
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let named = parts.iter().filter(|p| p.contains('=')).count();
        if named != 0 && named != parts.len() {
            return Err(bad("use either positional roles (`user,item,rating`) or `role=column` entries, not both".into()));
        }
        let mut entries = Vec::new();
        for (position, part) in parts.iter().enumerate() {
            if part.is_empty() {
                return Err(bad(format!("entry {} is empty", position + 1)));
            }
            if named == 0 {
                if *part == "_" {
                    continue;
                }
                let role = match part.split_once(':') {
                    Some((context, key)) if context.trim().eq_ignore_ascii_case("context") && !key.trim().is_empty() => {
                        Role::Context(key.trim().to_owned())
                    }
                    _ => match Role::parse(part) {
                        Some(Role::Context(_)) => {
                            return Err(bad("a positional context column needs a key: `context:KEY`".into()))
                        }
                        Some(role) => role,
                        None => return Err(bad(format!("unknown role `{part}`; expected user, item, rating, weight, timestamp, event, context:KEY or _"))),
                    },
                };
                entries.push((role, ColumnRef::Position(position)));
            } else {
                let (role, column) = part.split_once('=').unwrap_or((part, ""));
                let role = Role::parse(role).ok_or_else(|| {
                    bad(format!("unknown role `{}`; expected user, item, rating, weight, timestamp, event or context", role.trim()))
                })?;
                let column = column.trim();
                if column.is_empty() {
                    return Err(bad(format!("role `{}` has no column", role.name())));
                }
                let column = match column.strip_prefix('#') {
                    Some(n) => match n.parse::<usize>() {
                        Ok(n) if n >= 1 => ColumnRef::Position(n - 1),
                        _ => {
                            return Err(bad(format!(
                                "`{column}` is not a column number (#1, #2, ...)"
                            )))
                        }
                    },
                    None => ColumnRef::Name(column.to_owned()),
                };
                let role = match (role, &column) {
                    (Role::Context(_), ColumnRef::Name(name)) => Role::Context(name.clone()),
                    (Role::Context(_), ColumnRef::Position(p)) => {
                        Role::Context(format!("col{}", p + 1))
                    }
                    (role, _) => role,
                };
                entries.push((role, column));
            }
        }
        for role in [
            Role::User,
            Role::Item,
            Role::Rating,
            Role::Weight,
            Role::Timestamp,
            Role::Event,
        ] {
            let count = entries.iter().filter(|(r, _)| *r == role).count();
            if count > 1 {
                return Err(bad(format!(
                    "role `{}` is mapped {count} times",
                    role.name()
                )));
            }
            if count == 0 && matches!(role, Role::User | Role::Item) {
                return Err(bad(format!("the `{}` role is required", role.name())));
            }
        }
        Ok(Self { entries })
    }

    /// The mapping's entries: each role with its column.
    pub fn entries(&self) -> &[(Role, ColumnRef)] {
        &self.entries
    }

    /// True when some column is referred to by header name.
    pub fn uses_names(&self) -> bool {
        self.entries
            .iter()
            .any(|(_, c)| matches!(c, ColumnRef::Name(_)))
    }

    /// Column indices of every role for a file whose first row has `width` fields.
    pub(crate) fn resolve(
        &self,
        header: Option<&[String]>,
        width: usize,
        file: &Path,
    ) -> Result<ResolvedColumns> {
        let mut resolved = ResolvedColumns::default();
        for (role, column) in &self.entries {
            let index = match column {
                ColumnRef::Position(p) if *p < width => *p,
                ColumnRef::Position(p) => {
                    return Err(Error::BadFile {
                        file: file.to_path_buf(),
                        message: format!(
                            "column #{} (for {}) does not exist: the file has {width} columns",
                            p + 1,
                            role.name()
                        ),
                    })
                }
                ColumnRef::Name(name) => {
                    let Some(header) = header else {
                        return Err(Error::BadFile {
                            file: file.to_path_buf(),
                            message: format!(
                                "the mapping names column `{name}` (for {}) but the file has no header; use #N positions",
                                role.name()
                            ),
                        });
                    };
                    find_column(header, name).ok_or_else(|| Error::BadFile {
                        file: file.to_path_buf(),
                        message: format!(
                            "missing column `{name}` (for {}); the header has: {}",
                            role.name(),
                            header.join(", ")
                        ),
                    })?
                }
            };
            resolved.set(role, index);
        }
        Ok(resolved)
    }
}

impl FromStr for ColumnMapping {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for ColumnMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let positional = self
            .entries
            .iter()
            .all(|(_, c)| matches!(c, ColumnRef::Position(_)));
        let parts: Vec<String> = if positional {
            let width = self.entries.iter().filter_map(|(_, c)| match c {
                ColumnRef::Position(p) => Some(p + 1),
                ColumnRef::Name(_) => None,
            });
            let width = width.max().unwrap_or(0);
            let mut slots = vec!["_".to_owned(); width];
            for (role, column) in &self.entries {
                if let ColumnRef::Position(p) = column {
                    slots[*p] = match role {
                        Role::Context(key) => format!("context:{key}"),
                        other => other.name().to_owned(),
                    };
                }
            }
            slots
        } else {
            self.entries
                .iter()
                .map(|(role, column)| match column {
                    ColumnRef::Position(p) => format!("{}=#{}", role.name(), p + 1),
                    ColumnRef::Name(n) => format!("{}={n}", role.name()),
                })
                .collect()
        };
        f.write_str(&parts.join(","))
    }
}

/// Column indices of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ResolvedColumns {
    pub user: Option<usize>,
    pub item: Option<usize>,
    pub rating: Option<usize>,
    pub weight: Option<usize>,
    pub timestamp: Option<usize>,
    pub event: Option<usize>,
    pub context: Vec<(String, usize)>,
}

impl ResolvedColumns {
    fn set(&mut self, role: &Role, index: usize) {
        match role {
            Role::User => self.user = Some(index),
            Role::Item => self.item = Some(index),
            Role::Rating => self.rating = Some(index),
            Role::Weight => self.weight = Some(index),
            Role::Timestamp => self.timestamp = Some(index),
            Role::Event => self.event = Some(index),
            Role::Context(key) => self.context.push((key.clone(), index)),
        }
    }
}

/// Common header names of each role, compared after lower-casing and removing `_`, `-` and spaces.
const ALIASES: &[(&str, &[&str])] = &[
    (
        "user",
        &[
            "user",
            "userid",
            "uid",
            "users",
            "customer",
            "customerid",
            "visitorid",
            "member",
            "memberid",
        ],
    ),
    (
        "item",
        &[
            "item",
            "itemid",
            "iid",
            "pid",
            "movie",
            "movieid",
            "product",
            "productid",
            "track",
            "trackid",
            "song",
            "songid",
            "artist",
            "artistid",
            "book",
            "bookid",
            "isbn",
            "asin",
        ],
    ),
    (
        "rating",
        &["rating", "ratings", "score", "stars", "bookrating"],
    ),
    (
        "weight",
        &["weight", "count", "plays", "playcount", "quantity", "qty"],
    ),
    (
        "timestamp",
        &[
            "timestamp",
            "ts",
            "time",
            "datetime",
            "date",
            "createdat",
            "eventtime",
            "unixtime",
        ],
    ),
    (
        "event",
        &[
            "event",
            "eventtype",
            "type",
            "action",
            "behavior",
            "behaviour",
        ],
    ),
];

fn normalise(name: &str) -> String {
    name.trim()
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

pub(crate) fn role_of_alias(header_field: &str) -> Option<&'static str> {
    let norm = normalise(header_field);
    ALIASES
        .iter()
        .find(|(_, names)| names.contains(&norm.as_str()))
        .map(|(role, _)| *role)
}

fn find_column(header: &[String], name: &str) -> Option<usize> {
    header.iter().position(|h| h == name).or_else(|| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name.trim()))
    })
}

/// Columns of a file that has a header but no mapping, matched by common names.
pub(crate) fn resolve_by_aliases(header: &[String], file: &Path) -> Result<ResolvedColumns> {
    let mut resolved = ResolvedColumns::default();
    for (index, field) in header.iter().enumerate() {
        let slot = match role_of_alias(field) {
            Some("user") => &mut resolved.user,
            Some("item") => &mut resolved.item,
            Some("rating") => &mut resolved.rating,
            Some("weight") => &mut resolved.weight,
            Some("timestamp") => &mut resolved.timestamp,
            Some("event") => &mut resolved.event,
            _ => continue,
        };
        // The first matching column wins, so `item,item_name` keeps the id column.
        slot.get_or_insert(index);
    }
    for (role, found) in [("user", resolved.user), ("item", resolved.item)] {
        if found.is_none() {
            return Err(Error::BadFile {
                file: file.to_path_buf(),
                message: format!(
                    "missing column `{role}`: no header field names the {role} id (header: {}); pass a column mapping",
                    header.join(", ")
                ),
            });
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_syntax() {
        let positional = ColumnMapping::parse("user,item,_,rating,context:device").unwrap();
        assert_eq!(
            positional.entries(),
            &[
                (Role::User, ColumnRef::Position(0)),
                (Role::Item, ColumnRef::Position(1)),
                (Role::Rating, ColumnRef::Position(3)),
                (Role::Context("device".into()), ColumnRef::Position(4)),
            ]
        );
        assert_eq!(positional.to_string(), "user,item,_,rating,context:device");
        let named = ColumnMapping::parse("user=uid, item=#2, ts=when, context=device").unwrap();
        assert_eq!(named.entries()[1], (Role::Item, ColumnRef::Position(1)));
        assert_eq!(
            named.entries()[2],
            (Role::Timestamp, ColumnRef::Name("when".into()))
        );
        assert_eq!(
            named.entries()[3],
            (
                Role::Context("device".into()),
                ColumnRef::Name("device".into())
            )
        );
        assert_eq!(
            named.to_string(),
            "user=uid,item=#2,timestamp=when,context=device"
        );
        for bad in [
            "user,item=x",
            "user,rating",
            "user,item,stars",
            "user,item,user",
            "user=,item=b",
            "user=a,item=#0",
            "user,item,context",
        ] {
            let err = ColumnMapping::parse(bad).unwrap_err();
            assert!(matches!(err, Error::Spec { .. }), "{bad}: {err}");
        }
    }
}
