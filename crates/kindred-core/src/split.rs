//! Evaluation protocols and the deterministic splits they produce.
//!
//! A protocol is parsed from its textual spec (`kfold:5`, `temporal:0.2,positive>=4`, ...),
//! optionally turns ratings into implicit positives, and cuts the log into one or more
//! train/test splits. Every split is a pure function of the data and the seed.

use crate::error::{Error, Result};
use crate::interactions::Interactions;
use crate::rng::SplitMix64;

/// The shape of a protocol's split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SplitKind {
    /// Shuffle all rows, cut into `k` equal folds, each the test set once.
    KFold { k: usize },
    /// Per user, the latest `max(1, floor(fraction * n))` rows (users with n >= 2) go to test.
    Temporal { fraction: f64 },
    /// A global random `fraction` of rows to test.
    Random { fraction: f64 },
    /// Per user with n >= 2, the single latest row goes to test. Rows with equal timestamps
    /// keep the order of the source file (the one read last is the latest), as sequence-model
    /// benchmarks order them: MovieLens-1M gives many ratings of one user the same second.
    LeaveLastOut,
    /// A `fraction` of the items with interactions is removed from training entirely.
    ColdStartItems { fraction: f64 },
    /// A `fraction` of the users is removed from training; their first `fold_in` rows (by time)
    /// are given to the model at query time, the rest are the test set.
    ColdStartUsers { fraction: f64, fold_in: usize },
}

/// A parsed evaluation protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct Protocol {
    pub kind: SplitKind,
    /// `positive>=T`: keep only rows rated at least `T`, as implicit positives (value 1).
    pub positive_threshold: Option<f32>,
    pub seed: u64,
    spec: String,
}

/// One train/test split: row numbers of the (prepared) log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    pub train: Vec<u32>,
    pub test: Vec<u32>,
    /// Rows the model may see at query time only (cold-start users' fold-in interactions).
    pub query: Vec<u32>,
    /// When set, the items to rank (cold-start items); otherwise the whole catalog.
    pub candidates: Option<Vec<u32>>,
}

const DEFAULT_SEED: u64 = 42;

/// The options a protocol takes after its name, as a user writes them.
const OPTIONS: [(&str, &str); 3] = [
    ("positive>=", "positive>=4"),
    ("seed=", "seed=7"),
    ("fold-in=", "fold-in=5 (coldstart-users)"),
];

/// The message for an option that is none of [`OPTIONS`]: every valid form, and the likely one
/// when the option's name is a near miss (`positive=>4`, `sed=3`).
fn unknown_option(opt: &str) -> String {
    let name: String = opt
        .chars()
        .take_while(|c| c.is_ascii_alphabetic() || *c == '-')
        .collect();
    let names = OPTIONS.map(|(prefix, _)| prefix.trim_end_matches(['>', '=']));
    let hint = match crate::suggest::closest(&name, names) {
        Some(near) => {
            let (_, example) = OPTIONS[names.iter().position(|n| *n == near).unwrap_or(0)];
            format!(" (did you mean `{example}`?)")
        }
        None => String::new(),
    };
    let forms: Vec<&str> = OPTIONS.iter().map(|(_, example)| *example).collect();
    format!(
        "unknown option `{opt}`{hint}; options are {}",
        forms.join(", ")
    )
}

impl Protocol {
    /// Parses a protocol spec such as `kfold:5`, `temporal:0.2,positive>=4`, `random:0.2,seed=7`,
    /// `coldstart-items:0.1`, `coldstart-users:0.1,fold-in=5` or `loo`.
    pub fn parse(spec: &str) -> Result<Self> {
        let err = |msg: &str| Error::spec("protocol", spec, msg);
        let mut parts = spec.split(',').map(str::trim);
        let head = parts.next().unwrap_or_default();
        let (name, arg) = match head.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (head, None),
        };
        let fraction = |default: f64| -> Result<f64> {
            let f = match arg {
                None => default,
                Some(a) => a
                    .parse::<f64>()
                    .map_err(|_| err("the fraction must be a number such as 0.2"))?,
            };
            if f > 0.0 && f < 1.0 {
                Ok(f)
            } else {
                Err(err("the fraction must be strictly between 0 and 1"))
            }
        };
        let mut kind = match name {
            "kfold" => {
                let k = match arg {
                    None => 5,
                    Some(a) => a
                        .parse::<usize>()
                        .map_err(|_| err("k must be an integer"))?,
                };
                if k < 2 {
                    return Err(err("k-fold needs k >= 2"));
                }
                SplitKind::KFold { k }
            }
            "temporal" => SplitKind::Temporal {
                fraction: fraction(0.2)?,
            },
            "random" => SplitKind::Random {
                fraction: fraction(0.2)?,
            },
            "loo" | "leave-last-one-out" => SplitKind::LeaveLastOut,
            "coldstart-items" => SplitKind::ColdStartItems {
                fraction: fraction(0.1)?,
            },
            "coldstart-users" => SplitKind::ColdStartUsers {
                fraction: fraction(0.1)?,
                fold_in: 0,
            },
            _ => {
                let hint = crate::suggest::did_you_mean(
                    name,
                    [
                        "kfold",
                        "temporal",
                        "random",
                        "loo",
                        "coldstart-items",
                        "coldstart-users",
                    ],
                );
                return Err(err(&format!(
                    "unknown protocol `{name}`{hint}; expected kfold:K, temporal:F, random:F, loo, coldstart-items:F or coldstart-users:F"
                )));
            }
        };
        let mut positive_threshold = None;
        let mut seed = DEFAULT_SEED;
        for opt in parts {
            if let Some(t) = opt.strip_prefix("positive>=") {
                positive_threshold = Some(
                    t.parse::<f32>()
                        .map_err(|_| err("positive>= needs a number, e.g. positive>=4"))?,
                );
            } else if let Some(s) = opt.strip_prefix("seed=") {
                seed = s
                    .parse()
                    .map_err(|_| err("seed must be an unsigned integer"))?;
            } else if let Some(n) = opt.strip_prefix("fold-in=") {
                let n = n.parse().map_err(|_| err("fold-in must be an integer"))?;
                match &mut kind {
                    SplitKind::ColdStartUsers { fold_in, .. } => *fold_in = n,
                    _ => return Err(err("fold-in applies to coldstart-users only")),
                }
            } else {
                return Err(err(&unknown_option(opt)));
            }
        }
        Ok(Self {
            kind,
            positive_threshold,
            seed,
            spec: spec.trim().to_owned(),
        })
    }

    /// The spec this protocol was parsed from.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// True for rating-prediction protocols (k-fold on explicit values): RMSE/MAE are reported.
    pub fn is_rating_prediction(&self) -> bool {
        matches!(self.kind, SplitKind::KFold { .. }) && self.positive_threshold.is_none()
    }

    /// The log the splits are cut from: positives only when `positive>=` is given.
    pub fn prepare(&self, data: &Interactions) -> Interactions {
        match self.positive_threshold {
            Some(t) => data.positives(t),
            None => data.clone(),
        }
    }

    /// Cuts a prepared log into splits.
    pub fn splits(&self, data: &Interactions) -> Result<Vec<Split>> {
        if data.is_empty() {
            return Err(Error::InvalidInput(format!(
                "protocol `{}`: no interactions left to split",
                self.spec
            )));
        }
        let splits = match self.kind {
            SplitKind::KFold { k } => kfold(data.len(), k, self.seed)?,
            SplitKind::Random { fraction } => vec![random(data.len(), fraction, self.seed)],
            SplitKind::Temporal { fraction } => vec![per_user_latest(data, Ties::ByItem, |n| {
                ((fraction * n as f64 + 1e-9).floor() as usize).max(1)
            })],
            SplitKind::LeaveLastOut => vec![per_user_latest(data, Ties::ByRow, |_| 1)],
            SplitKind::ColdStartItems { fraction } => vec![cold_items(data, fraction, self.seed)],
            SplitKind::ColdStartUsers { fraction, fold_in } => {
                vec![cold_users(data, fraction, fold_in, self.seed)]
            }
        };
        if matches!(
            self.kind,
            SplitKind::Temporal { .. } | SplitKind::LeaveLastOut
        ) {
            for split in &splits {
                check_no_leakage(data, split)?;
            }
        }
        Ok(splits)
    }
}

fn kfold(n: usize, k: usize, seed: u64) -> Result<Vec<Split>> {
    if n < k {
        return Err(Error::InvalidInput(format!(
            "k-fold with k = {k} needs at least {k} interactions, got {n}"
        )));
    }
    let mut order: Vec<u32> = (0..n as u32).collect();
    SplitMix64::new(seed).shuffle(&mut order);
    let size_of = |f: usize| n / k + usize::from(f < n % k);
    let mut fold_of = vec![0u32; n];
    let mut start = 0;
    for f in 0..k {
        for &row in &order[start..start + size_of(f)] {
            fold_of[row as usize] = f as u32;
        }
        start += size_of(f);
    }
    Ok((0..k)
        .map(|f| {
            // Sized up front: a million rows pushed one by one regrew the vectors many times.
            let mut test = Vec::with_capacity(size_of(f));
            let mut train = Vec::with_capacity(n - size_of(f));
            for (r, &of) in fold_of.iter().enumerate() {
                if of as usize == f {
                    test.push(r as u32);
                } else {
                    train.push(r as u32);
                }
            }
            Split {
                train,
                test,
                ..Split::default()
            }
        })
        .collect())
}

fn random(n: usize, fraction: f64, seed: u64) -> Split {
    let mut order: Vec<u32> = (0..n as u32).collect();
    SplitMix64::new(seed).shuffle(&mut order);
    let n_test = ((fraction * n as f64).round() as usize).clamp(1, n);
    let mut in_test = vec![false; n];
    for &r in &order[..n_test] {
        in_test[r as usize] = true;
    }
    let (test, train) = (0..n as u32).partition(|&r| in_test[r as usize]);
    Split {
        train,
        test,
        ..Split::default()
    }
}

/// Ranks of items under the order "numeric ids numerically, others lexicographically", used to
/// break timestamp ties by item as the protocol specifies.
fn item_order(data: &Interactions) -> Vec<u32> {
    let ids = data.item_ids().externals();
    let numeric: Option<Vec<i64>> = ids.iter().map(|s| s.parse::<i64>().ok()).collect();
    let mut idx: Vec<u32> = (0..ids.len() as u32).collect();
    match numeric {
        Some(nums) => idx.sort_by_key(|&i| nums[i as usize]),
        None => idx.sort_by(|&a, &b| ids[a as usize].cmp(&ids[b as usize])),
    }
    let mut rank = vec![0u32; ids.len()];
    for (r, &i) in idx.iter().enumerate() {
        rank[i as usize] = r as u32;
    }
    rank
}

/// How rows with equal timestamps are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ties {
    /// By item: numeric ids numerically, others lexicographically ([`item_order`]).
    ByItem,
    /// As the source file orders them (row order).
    ByRow,
}

/// Rows of each user sorted by (timestamp, item, row), or by (timestamp, row).
fn rows_by_user_in_time(data: &Interactions, ties: Ties) -> Vec<Vec<u32>> {
    let rank = match ties {
        Ties::ByItem => item_order(data),
        Ties::ByRow => Vec::new(),
    };
    let by_user = data.by_user();
    let ts = data.timestamps();
    (0..by_user.n_rows())
        .map(|u| {
            let mut rows = by_user.row_entries(u).to_vec();
            match ties {
                Ties::ByItem => rows
                    .sort_by_key(|&r| (ts[r as usize], rank[data.items()[r as usize] as usize], r)),
                Ties::ByRow => rows.sort_by_key(|&r| (ts[r as usize], r)),
            }
            rows
        })
        .collect()
}

fn per_user_latest(data: &Interactions, ties: Ties, n_test: impl Fn(usize) -> usize) -> Split {
    let mut train = Vec::with_capacity(data.len());
    let mut test = Vec::new();
    for rows in rows_by_user_in_time(data, ties) {
        let n = rows.len();
        let cut = if n >= 2 { n - n_test(n).min(n - 1) } else { n };
        train.extend_from_slice(&rows[..cut]);
        test.extend_from_slice(&rows[cut..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    Split {
        train,
        test,
        ..Split::default()
    }
}

fn cold_items(data: &Interactions, fraction: f64, seed: u64) -> Split {
    let counts = data.item_counts();
    let mut items: Vec<u32> = (0..counts.len() as u32)
        .filter(|&i| counts[i as usize] > 0)
        .collect();
    SplitMix64::new(seed).shuffle(&mut items);
    let n_cold = ((fraction * items.len() as f64).round() as usize).clamp(1, items.len());
    let mut cold: Vec<u32> = items[..n_cold].to_vec();
    cold.sort_unstable();
    let mut is_cold = vec![false; counts.len()];
    cold.iter().for_each(|&i| is_cold[i as usize] = true);
    let (test, train) =
        (0..data.len() as u32).partition(|&r| is_cold[data.items()[r as usize] as usize]);
    Split {
        train,
        test,
        query: Vec::new(),
        candidates: Some(cold),
    }
}

fn cold_users(data: &Interactions, fraction: f64, fold_in: usize, seed: u64) -> Split {
    let counts = data.user_counts();
    let mut users: Vec<u32> = (0..counts.len() as u32)
        .filter(|&u| counts[u as usize] > 0)
        .collect();
    SplitMix64::new(seed).shuffle(&mut users);
    let n_cold = ((fraction * users.len() as f64).round() as usize).clamp(1, users.len());
    let mut is_cold = vec![false; counts.len()];
    users[..n_cold]
        .iter()
        .for_each(|&u| is_cold[u as usize] = true);
    let mut split = Split::default();
    for (u, rows) in rows_by_user_in_time(data, Ties::ByItem)
        .into_iter()
        .enumerate()
    {
        if !is_cold[u] {
            split.train.extend(rows);
        } else {
            let given = fold_in.min(rows.len().saturating_sub(1));
            split.query.extend_from_slice(&rows[..given]);
            split.test.extend_from_slice(&rows[given..]);
        }
    }
    split.train.sort_unstable();
    split.test.sort_unstable();
    split.query.sort_unstable();
    split
}

/// Fails if any user has a test row strictly earlier than one of their training rows.
pub fn check_no_leakage(data: &Interactions, split: &Split) -> Result<()> {
    let n = data.n_users();
    let ts = data.timestamps();
    let mut latest_train = vec![i64::MIN; n];
    for &r in &split.train {
        let u = data.users()[r as usize] as usize;
        latest_train[u] = latest_train[u].max(ts[r as usize]);
    }
    for &r in &split.test {
        let u = data.users()[r as usize] as usize;
        if ts[r as usize] < latest_train[u] {
            return Err(Error::InvalidInput(format!(
                "temporal leakage: user `{}` has a test interaction at {} before a training one at {}",
                data.user_ids().external(u as u32),
                ts[r as usize],
                latest_train[u]
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interactions::{Interaction, InteractionsBuilder};

    fn log(rows: &[(&str, &str, f32, i64)]) -> Interactions {
        let mut b = InteractionsBuilder::new();
        for &(u, i, r, t) in rows {
            b.push(Interaction::rating(u, i, r, Some(t)));
        }
        b.build()
    }

    #[test]
    fn unknown_names_list_the_valid_ones_and_suggest_near_misses() {
        let err = Protocol::parse("temporal:0.2,positive=>4")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown option `positive=>4` (did you mean `positive>=4`?)")
                && err.contains("options are positive>=4, seed=7, fold-in=5"),
            "{err}"
        );
        let err = Protocol::parse("random:0.2,colour=red")
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("did you mean") && err.contains("options are"),
            "{err}"
        );
        let err = Protocol::parse("temporl:0.2").unwrap_err().to_string();
        assert!(err.contains("(did you mean `temporal`?)"), "{err}");
    }

    #[test]
    fn parses_specs() {
        let p = Protocol::parse("temporal:0.2,positive>=4").unwrap();
        assert_eq!(p.kind, SplitKind::Temporal { fraction: 0.2 });
        assert_eq!(p.positive_threshold, Some(4.0));
        assert_eq!(p.seed, 42);
        assert!(Protocol::parse("kfold:5").unwrap().is_rating_prediction());
        let p = Protocol::parse("coldstart-users:0.1,fold-in=3,seed=9").unwrap();
        assert_eq!(
            p.kind,
            SplitKind::ColdStartUsers {
                fraction: 0.1,
                fold_in: 3
            }
        );
        assert_eq!(p.seed, 9);
        for bad in [
            "kfold:1",
            "temporal:1.5",
            "bogus",
            "random:0.2,colour=red",
            "kfold:x",
            "random:0.2,fold-in=2",
        ] {
            assert!(Protocol::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn leave_last_out_breaks_timestamp_ties_in_file_order() {
        // u1's last two rows share a timestamp: the one read last is the latest, whatever the
        // item ids; temporal breaks the same tie by item id.
        let data = log(&[
            ("u1", "5", 4.0, 1),
            ("u1", "10", 4.0, 2),
            ("u1", "9", 4.0, 2),
            ("u2", "3", 4.0, 7),
            ("u2", "1", 4.0, 7),
            ("u2", "2", 4.0, 7),
        ]);
        let test_items = |spec: &str| -> Vec<&str> {
            let split = &Protocol::parse(spec).unwrap().splits(&data).unwrap()[0];
            split
                .test
                .iter()
                .map(|&r| data.item_ids().external(data.items()[r as usize]))
                .collect()
        };
        assert_eq!(test_items("loo"), vec!["9", "2"]);
        assert_eq!(test_items("temporal:0.34"), vec!["10", "3"]);
    }

    #[test]
    fn temporal_takes_latest_fifth_per_user_with_item_tiebreak() {
        // u1 has 10 rows: last 2 go to test; ties at t=9 broken by numeric item id (9 < 10).
        let mut rows: Vec<(String, String, f32, i64)> = (0..8)
            .map(|i| ("u1".into(), format!("{}", 100 + i), 4.0, i as i64))
            .collect();
        rows.push(("u1".into(), "10".into(), 4.0, 9));
        rows.push(("u1".into(), "9".into(), 4.0, 9));
        rows.push(("u2".into(), "1".into(), 4.0, 0)); // single row stays in train
        let borrowed: Vec<(&str, &str, f32, i64)> = rows
            .iter()
            .map(|r| (r.0.as_str(), r.1.as_str(), r.2, r.3))
            .collect();
        let data = log(&borrowed);
        let split = &Protocol::parse("temporal:0.2")
            .unwrap()
            .splits(&data)
            .unwrap()[0];
        let test_items: Vec<&str> = split
            .test
            .iter()
            .map(|&r| data.item_ids().external(data.items()[r as usize]))
            .collect();
        assert_eq!(test_items, vec!["10", "9"]);
        assert_eq!(split.train.len(), 9);
        // With fraction 0.2 and 10 rows, 2 rows; with 4 rows max(1, 0) = 1.
        let small = log(&[
            ("a", "1", 1.0, 1),
            ("a", "2", 1.0, 2),
            ("a", "3", 1.0, 3),
            ("a", "4", 1.0, 4),
        ]);
        let s = &Protocol::parse("temporal:0.2")
            .unwrap()
            .splits(&small)
            .unwrap()[0];
        assert_eq!(s.test, vec![3]);
    }

    #[test]
    fn leakage_guard_trips() {
        let data = log(&[("a", "1", 1.0, 5), ("a", "2", 1.0, 1)]);
        let leaky = Split {
            train: vec![0],
            test: vec![1],
            ..Split::default()
        };
        assert!(check_no_leakage(&data, &leaky).is_err());
        let fine = Split {
            train: vec![1],
            test: vec![0],
            ..Split::default()
        };
        assert!(check_no_leakage(&data, &fine).is_ok());
    }

    #[test]
    fn kfold_partitions_and_is_deterministic() {
        let rows: Vec<(String, String, f32, i64)> = (0..23)
            .map(|i| (format!("u{}", i % 4), format!("i{i}"), 3.0, i))
            .collect();
        let borrowed: Vec<(&str, &str, f32, i64)> = rows
            .iter()
            .map(|r| (r.0.as_str(), r.1.as_str(), r.2, r.3))
            .collect();
        let data = log(&borrowed);
        let p = Protocol::parse("kfold:5").unwrap();
        let splits = p.splits(&data).unwrap();
        assert_eq!(splits, p.splits(&data).unwrap());
        let mut all: Vec<u32> = splits.iter().flat_map(|s| s.test.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..23).collect::<Vec<_>>());
        let sizes: Vec<usize> = splits.iter().map(|s| s.test.len()).collect();
        assert_eq!(sizes, vec![5, 5, 5, 4, 4]);
        for s in &splits {
            assert_eq!(s.train.len() + s.test.len(), 23);
        }
        let other = Protocol::parse("kfold:5,seed=1")
            .unwrap()
            .splits(&data)
            .unwrap();
        assert_ne!(other, splits);
    }

    #[test]
    fn cold_start_items_never_reach_training() {
        let rows: Vec<(String, String, f32, i64)> = (0..200)
            .map(|i| (format!("u{}", i % 13), format!("i{}", i % 31), 5.0, i))
            .collect();
        let borrowed: Vec<(&str, &str, f32, i64)> = rows
            .iter()
            .map(|r| (r.0.as_str(), r.1.as_str(), r.2, r.3))
            .collect();
        let data = log(&borrowed);
        let split = &Protocol::parse("coldstart-items:0.1")
            .unwrap()
            .splits(&data)
            .unwrap()[0];
        let cold = split.candidates.clone().unwrap();
        assert_eq!(cold.len(), 3);
        assert!(split
            .train
            .iter()
            .all(|&r| !cold.contains(&data.items()[r as usize])));
        assert!(split
            .test
            .iter()
            .all(|&r| cold.contains(&data.items()[r as usize])));
        let users = &Protocol::parse("coldstart-users:0.2,fold-in=2")
            .unwrap()
            .splits(&data)
            .unwrap()[0];
        assert_eq!(
            users.train.len() + users.test.len() + users.query.len(),
            200
        );
        let held: std::collections::HashSet<u32> = users
            .test
            .iter()
            .map(|&r| data.users()[r as usize])
            .collect();
        assert!(users
            .train
            .iter()
            .all(|&r| !held.contains(&data.users()[r as usize])));
    }
}
