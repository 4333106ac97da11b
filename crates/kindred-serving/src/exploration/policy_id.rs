//! The `policy` column of an impression: the model version that produced the list and, when an
//! `[exploration]` section filled it, the rank config's name after a `#` (`als-1733-1#default`).
//! A replay reads both back to know which model and which pipeline logged a list.

use kindred_store::MAX_NAME_BYTES;

/// Who produced a logged list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyId {
    /// The model version (None: no version was live, the fallback chain served).
    pub version: Option<String>,
    /// The rank config whose exploration filled the list (None: the ranking's own order).
    pub rank: Option<String>,
}

/// What a list served with no live version names as its version.
const NO_VERSION: &str = "fallback";

impl std::fmt::Display for PolicyId {
    /// The column's text. The store caps names at [`MAX_NAME_BYTES`]: when the version and the
    /// rank name together are longer, the version is left out (`#default`) and a replay must be
    /// told the model version.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = self.version.as_deref().unwrap_or(NO_VERSION);
        match &self.rank {
            None => f.write_str(version),
            Some(rank) if version.len() + 1 + rank.len() <= MAX_NAME_BYTES => {
                write!(f, "{version}#{rank}")
            }
            Some(rank) => write!(f, "#{rank}"),
        }
    }
}

impl PolicyId {
    /// Reads the column back; a list logged before exploration existed is a bare version.
    pub fn parse(text: &str) -> Self {
        let (version, rank) = match text.rsplit_once('#') {
            Some((version, rank)) => (version, Some(rank.to_owned())),
            None => (text, None),
        };
        Self {
            version: (!version.is_empty() && version != NO_VERSION).then(|| version.to_owned()),
            rank,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_stays_within_the_stores_limit() {
        for id in [
            PolicyId {
                version: Some("als-1733-1".into()),
                rank: Some("default".into()),
            },
            PolicyId {
                version: Some("als-1733-1".into()),
                rank: None,
            },
            PolicyId {
                version: None,
                rank: Some("explore".into()),
            },
        ] {
            assert_eq!(PolicyId::parse(&id.to_string()), id);
        }
        let long = PolicyId {
            version: Some("v".repeat(60)),
            rank: Some("explore".into()),
        };
        let text = long.to_string();
        assert_eq!(text, "#explore");
        assert_eq!(
            PolicyId::parse(&text),
            PolicyId {
                version: None,
                rank: Some("explore".into())
            }
        );
    }
}
