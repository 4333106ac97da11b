//! A seeded generator of realistic-looking interaction data, for tests, benchmarks and demos
//! (`synthetic:users=1000,items=500,seed=7`).
//!
//! The data follows a latent-factor model, so personalised models have something to find:
//! every user and item has a vector of `factors` numbers; a user picks items among candidates
//! drawn by (Zipf) popularity, preferring items whose vector agrees with theirs, and rates them
//! by that agreement plus biases and noise. User vectors drift over each user's active period,
//! so recent behaviour predicts the future better than old behaviour. Item genres are derived
//! from item vectors, so genres carry preference signal too. Bots and duplicate events can be
//! injected, and are reported in [`SyntheticTruth`] so cleaning can be tested against them.
//! Everything is a pure function of the config (all randomness from [`SplitMix64`]).
//!
//! Spec keys for [`SyntheticConfig::parse`] (comma-separated `key=value`, all optional):
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `users` | number of users (bots included) | 1000 |
//! | `items` | number of items | 500 |
//! | `seed` | random seed | 42 |
//! | `factors` | latent dimension | 8 |
//! | `per_user` (or `interactions`) | mean interactions per normal user (log-normal activity) | 50 |
//! | `activity_sigma` | log-normal sigma of activity: larger = heavier tail | 1.0 |
//! | `popularity` | Zipf exponent of item popularity (before each user's items are made distinct) | 1.3 |
//! | `affinity` | how strongly users prefer items matching their tastes (0 = popularity only) | 3.0 |
//! | `genres` | number of genres; each item gets 1 to 3 | 12 |
//! | `noise` | standard deviation of rating noise | 0.5 |
//! | `start` | first timestamp (Unix seconds) | 1_600_000_000 |
//! | `days` | length of the time span in days | 365 |
//! | `drift` | how far user tastes move over their active period (1 = a whole new taste) | 0.5 |
//! | `bots` | fraction of users that are bots (bursts of events or constant ratings) | 0 |
//! | `dups` | duplicate events injected, as a fraction of rows (half exact, half near) | 0 |
//! | `implicit` | `true`: view/click/purchase events instead of ratings | false |
//! | `late_items` | share of items left out of the data (no rows, no features): items that arrive later, which a simulator adds while it runs | 0 |

use std::sync::Arc;

use kindred_core::kernels::{dot_f64, sigmoid};
use kindred_core::{
    Dataset, Error, EventType, FeatureTable, FeatureValue, InteractionsBuilder, Result, SplitMix64,
};
use serde::{Deserialize, Serialize};

/// Parameters of the generator; see the module docs for the meaning of each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    pub users: usize,
    pub items: usize,
    pub seed: u64,
    pub factors: usize,
    pub interactions_per_user: f64,
    pub activity_sigma: f64,
    pub popularity_exponent: f64,
    pub affinity: f64,
    pub genres: usize,
    pub rating_noise: f64,
    pub start_timestamp: i64,
    pub days: f64,
    pub drift: f64,
    pub bot_fraction: f64,
    pub duplicate_fraction: f64,
    pub implicit: bool,
    pub late_items: f64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            users: 1000,
            items: 500,
            seed: 42,
            factors: 8,
            interactions_per_user: 50.0,
            activity_sigma: 1.0,
            popularity_exponent: 1.3,
            affinity: 3.0,
            genres: 12,
            rating_noise: 0.5,
            start_timestamp: 1_600_000_000,
            days: 365.0,
            drift: 0.5,
            bot_fraction: 0.0,
            duplicate_fraction: 0.0,
            implicit: false,
            late_items: 0.0,
        }
    }
}

impl SyntheticConfig {
    /// Parses a spec such as `users=1000,items=500,seed=7,bots=0.02,dups=0.01` over the defaults.
    pub fn parse(spec: &str) -> Result<Self> {
        let mut cfg = Self::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(Error::spec(
                    "synthetic spec",
                    spec,
                    format!("`{part}` is not key=value"),
                ));
            };
            let (key, value) = (key.trim(), value.trim());
            let bad = |what: &str| {
                Error::spec(
                    "synthetic spec",
                    spec,
                    format!("`{key}` must be {what}, got `{value}`"),
                )
            };
            let int = || {
                value
                    .replace('_', "")
                    .parse::<usize>()
                    .map_err(|_| bad("a non-negative integer"))
            };
            let num = || {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| bad("a number"))
            };
            match key {
                "users" => cfg.users = int()?,
                "items" => cfg.items = int()?,
                "seed" => cfg.seed = value.parse().map_err(|_| bad("an unsigned integer"))?,
                "factors" => cfg.factors = int()?,
                "per_user" | "interactions" | "interactions_per_user" => {
                    cfg.interactions_per_user = num()?
                }
                "activity_sigma" => cfg.activity_sigma = num()?,
                "popularity" | "popularity_exponent" => cfg.popularity_exponent = num()?,
                "affinity" => cfg.affinity = num()?,
                "genres" => cfg.genres = int()?,
                "noise" | "rating_noise" => cfg.rating_noise = num()?,
                "start" | "start_timestamp" => {
                    cfg.start_timestamp = value
                        .replace('_', "")
                        .parse()
                        .map_err(|_| bad("an integer"))?
                }
                "days" => cfg.days = num()?,
                "drift" => cfg.drift = num()?,
                "bots" | "bot_fraction" => cfg.bot_fraction = num()?,
                "dups" | "duplicate_fraction" => cfg.duplicate_fraction = num()?,
                "late_items" => cfg.late_items = num()?,
                "implicit" => {
                    cfg.implicit = match value {
                        "true" | "1" | "yes" => true,
                        "false" | "0" | "no" => false,
                        _ => return Err(bad("true or false")),
                    }
                }
                _ => {
                    return Err(Error::spec(
                        "synthetic spec",
                        spec,
                        format!("unknown key `{key}` (see the synthetic module docs for the keys)"),
                    ))
                }
            }
        }
        cfg.validate()
            .map_err(|msg| Error::spec("synthetic spec", spec, msg))?;
        Ok(cfg)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let checks: [(bool, &str); 12] = [
            (
                (0.0..1.0).contains(&self.late_items),
                "late_items must be at least 0 and below 1",
            ),
            (self.users >= 1, "users must be >= 1"),
            (self.items >= 1, "items must be >= 1"),
            (self.factors >= 1, "factors must be >= 1"),
            (self.genres >= 1, "genres must be >= 1"),
            (self.interactions_per_user > 0.0, "per_user must be > 0"),
            (self.activity_sigma >= 0.0, "activity_sigma must be >= 0"),
            (self.rating_noise >= 0.0, "noise must be >= 0"),
            (self.days > 0.0, "days must be > 0"),
            (
                (0.0..=1.0).contains(&self.bot_fraction),
                "bots must be between 0 and 1",
            ),
            (
                (0.0..=1.0).contains(&self.duplicate_fraction),
                "dups must be between 0 and 1",
            ),
            (
                self.popularity_exponent >= 0.0 && self.affinity >= 0.0 && self.drift >= 0.0,
                "popularity, affinity and drift must be >= 0",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, msg)) => Err((*msg).to_owned()),
            None => Ok(()),
        }
    }

    /// A short description used as the dataset name.
    pub fn describe(&self) -> String {
        format!(
            "synthetic(users={},items={},seed={},bots={},dups={}{}{})",
            self.users,
            self.items,
            self.seed,
            self.bot_fraction,
            self.duplicate_fraction,
            if self.implicit { ",implicit=true" } else { "" },
            if self.late_items > 0.0 {
                format!(",late_items={}", self.late_items)
            } else {
                String::new()
            }
        )
    }
}

/// What was planted in the data, for tests of cleaning steps, and the latent world the data
/// was drawn from, so a simulator can let the same users act on new items (`kindred-sim`).
///
/// User `u{k}` is row `k` and item `i{k}` is row `k` of the latent tables below.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyntheticTruth {
    /// External ids of the injected bots.
    pub bot_users: Vec<String>,
    /// Number of duplicate rows injected (exact and near).
    pub duplicate_rows: usize,
    /// Latent dimension of the vectors below (the config's `factors`).
    pub factors: usize,
    /// Each user's taste at the end of their active period (start plus the whole drift), row
    /// major, `users x factors`: the taste that predicts what they do next.
    #[serde(skip)]
    pub user_factors: Vec<f64>,
    /// Each user's rating bias (used by explicit ratings).
    #[serde(skip)]
    pub user_bias: Vec<f64>,
    /// Item vectors, row major, `items x factors`.
    #[serde(skip)]
    pub item_factors: Vec<f64>,
    /// Each item's rating bias (used by explicit ratings).
    #[serde(skip)]
    pub item_bias: Vec<f64>,
    /// Each item's log popularity weight, `-popularity_exponent * ln(rank + 1)`: an item is
    /// a candidate with probability proportional to `exp(0.5 * this)`, and the other half of
    /// the popularity enters the choice weight `exp(0.5 * this + affinity * taste . item)`.
    #[serde(skip)]
    pub item_log_popularity: Vec<f64>,
    /// Items left out of the data (`late_items`), by id order.
    pub late_items: Vec<LateItem>,
}

/// A generated dataset and what was planted in it.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub dataset: Dataset,
    pub truth: SyntheticTruth,
}

/// Candidates drawn by popularity for each pick; the user's taste chooses among them.
const CANDIDATES: usize = 32;
/// Candidates are drawn by popularity^this; the remaining power weighs the choice.
const PROPOSAL_FLATTENING: f64 = 0.5;
const GENRE_NAMES: [&str; 18] = [
    "Action",
    "Adventure",
    "Animation",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
    "Family",
    "History",
];
const TITLE_WORDS: [&str; 16] = [
    "Silent", "Red", "Last", "Hidden", "Golden", "Broken", "Winter", "Night", "River", "Garden",
    "Empire", "Signal", "Harbor", "Echo", "Stone", "Summer",
];
const AGE_GROUPS: [&str; 5] = ["18-24", "25-34", "35-44", "45-54", "55+"];
const SEGMENTS: usize = 4;
const DAY: f64 = 86_400.0;

#[derive(Clone, Copy)]
struct Row {
    user: u32,
    item: u32,
    rating: Option<f32>,
    event: EventType,
    time: i64,
}

/// Generates a dataset from `cfg`. Invalid configs (e.g. zero users) are an error.
pub fn generate(cfg: &SyntheticConfig) -> Result<Synthetic> {
    cfg.validate()
        .map_err(|msg| Error::spec("synthetic config", cfg.describe(), msg))?;
    let f = cfg.factors;
    let (n_users, n_items) = (cfg.users, cfg.items);

    let mut item_rng = SplitMix64::stream(cfg.seed, 1);
    let (item_genres, item_factors) = items_from_genres(cfg, &mut item_rng);
    let item_bias: Vec<f64> = (0..n_items).map(|_| 0.3 * item_rng.normal()).collect();
    // Popularity rank is independent of taste, so popularity and personal signal are separate.
    let mut rank: Vec<u32> = (0..n_items as u32).collect();
    item_rng.shuffle(&mut rank);
    // Sampling-importance-resampling of popularity x taste: candidates come from a flattened
    // popularity (so tail items matching a user's taste get a chance), and the rest of the
    // popularity enters the choice weights.
    let log_popularity: Vec<f64> = rank
        .iter()
        .map(|&r| -cfg.popularity_exponent * (r as f64 + 1.0).ln())
        .collect();
    let proposal = AliasTable::new(
        &log_popularity
            .iter()
            .map(|lp| (PROPOSAL_FLATTENING * lp).exp())
            .collect::<Vec<_>>(),
    );
    let mut draw_item = |rng: &mut SplitMix64| proposal.draw(rng);

    let item_vec = |i: u32| &item_factors[i as usize * f..(i as usize + 1) * f];
    let mut bot_rng = SplitMix64::stream(cfg.seed, 3);
    let n_bots = ((cfg.bot_fraction * n_users as f64).round() as usize).min(n_users);
    let mut is_bot = vec![false; n_users];
    let mut order: Vec<usize> = (0..n_users).collect();
    bot_rng.shuffle(&mut order);
    for &u in &order[..n_bots] {
        is_bot[u] = true;
    }

    let span = cfg.days * DAY;
    let max_per_user = (n_items / 2).max(1);
    let mu = cfg.interactions_per_user.ln() - cfg.activity_sigma * cfg.activity_sigma / 2.0;
    let mut rows: Vec<Row> = Vec::with_capacity(
        (n_users as f64 * cfg.interactions_per_user.min(max_per_user as f64) * 1.2) as usize,
    );
    // seen_by[i] == u + 1 marks item i as already used by user u, without clearing per user.
    let mut seen_by = vec![0u32; n_items];
    let mut user_taste = vec![0f64; n_users * f];
    let inv_sqrt_f = 1.0 / (f as f64).sqrt();
    let mut times: Vec<f64> = Vec::new();
    let mut taste = vec![0f64; f];
    let mut user_now = vec![0f64; n_users * f];
    let mut user_biases = vec![0f64; n_users];
    let mut candidates = [(0u32, 0f64); CANDIDATES];

    for u in 0..n_users {
        let mut rng = SplitMix64::stream(cfg.seed, 1000 + u as u64);
        let start: Vec<f64> = (0..f).map(|_| rng.normal() * inv_sqrt_f).collect();
        let drift: Vec<f64> = (0..f)
            .map(|_| rng.normal() * inv_sqrt_f * cfg.drift)
            .collect();
        let user_bias = 0.3 * rng.normal();
        user_taste[u * f..(u + 1) * f].copy_from_slice(&start);
        for k in 0..f {
            user_now[u * f + k] = start[k] + drift[k];
        }
        user_biases[u] = user_bias;
        let stamp = u as u32 + 1;
        if is_bot[u] {
            emit_bot(
                u as u32,
                cfg,
                &mut rng,
                &mut draw_item,
                &mut seen_by,
                &mut rows,
            );
            continue;
        }
        let n = ((mu + cfg.activity_sigma * rng.normal()).exp().round() as usize)
            .clamp(1, max_per_user);
        let length = (span * rng.next_f64().powi(2)).max(DAY).min(span);
        let window_start = rng.next_f64() * (span - length);
        times.clear();
        times.extend((0..n).map(|_| window_start + rng.next_f64() * length));
        times.sort_by(f64::total_cmp);
        for &t in &times {
            let progress = (t - window_start) / length;
            for k in 0..f {
                taste[k] = start[k] + progress * drift[k];
            }
            let mut picked = None;
            for _attempt in 0..4 {
                let mut best = f64::NEG_INFINITY;
                let mut m = 0;
                for _ in 0..CANDIDATES {
                    let i = draw_item(&mut rng);
                    if seen_by[i as usize] == stamp {
                        continue;
                    }
                    let score = dot_f64(&taste, item_vec(i));
                    let logit = (1.0 - PROPOSAL_FLATTENING) * log_popularity[i as usize]
                        + cfg.affinity * score;
                    best = best.max(logit);
                    candidates[m] = (i, logit);
                    m += 1;
                }
                if m == 0 {
                    continue;
                }
                let mut weights_total = 0.0;
                for c in &mut candidates[..m] {
                    c.1 = (c.1 - best).exp();
                    weights_total += c.1;
                }
                let mut x = rng.next_f64() * weights_total;
                let mut choice = candidates[m - 1].0;
                for c in &candidates[..m] {
                    x -= c.1;
                    if x <= 0.0 {
                        choice = c.0;
                        break;
                    }
                }
                picked = Some(choice);
                break;
            }
            let Some(item) = picked else { continue };
            seen_by[item as usize] = stamp;
            let score = dot_f64(&taste, item_vec(item));
            let time = cfg.start_timestamp + t as i64;
            let user = u as u32;
            if cfg.implicit {
                rows.push(Row {
                    user,
                    item,
                    rating: None,
                    event: EventType::View,
                    time,
                });
                if rng.next_f64() < sigmoid(2.0 * score - 1.0) {
                    let click = time + 5 + rng.below(120) as i64;
                    rows.push(Row {
                        user,
                        item,
                        rating: None,
                        event: EventType::Click,
                        time: click,
                    });
                    if rng.next_f64() < sigmoid(2.0 * score - 2.5) {
                        let purchase = click + 60 + rng.below(3600) as i64;
                        rows.push(Row {
                            user,
                            item,
                            rating: None,
                            event: EventType::Purchase,
                            time: purchase,
                        });
                    }
                }
            } else {
                let raw = 3.0
                    + user_bias
                    + item_bias[item as usize]
                    + 0.9 * score
                    + cfg.rating_noise * rng.normal();
                let rating = raw.round().clamp(1.0, 5.0) as f32;
                rows.push(Row {
                    user,
                    item,
                    rating: Some(rating),
                    event: EventType::Rating,
                    time,
                });
            }
        }
    }

    let mut dup_rng = SplitMix64::stream(cfg.seed, 4);
    let n_dups = if rows.is_empty() {
        0
    } else {
        (cfg.duplicate_fraction * rows.len() as f64).round() as usize
    };
    for k in 0..n_dups {
        let source = rows[dup_rng.below(rows.len() as u64) as usize];
        // Alternate exact re-emissions and near ones a few seconds later.
        let delay = if k % 2 == 0 {
            0
        } else {
            1 + dup_rng.below(30) as i64
        };
        rows.push(Row {
            time: source.time + delay,
            ..source
        });
    }
    rows.sort_by_key(|r| (r.time, r.user));

    // Late items come from their own stream, so the rest of the world is the same with or
    // without them; their rows are dropped as if they had never been seen.
    let mut late_rng = SplitMix64::stream(cfg.seed, 6);
    let late: Vec<bool> = (0..n_items)
        .map(|_| late_rng.next_f64() < cfg.late_items)
        .collect();
    rows.retain(|r| !late[r.item as usize]);

    let mut builder = InteractionsBuilder::with_capacity(rows.len());
    for u in 0..n_users {
        builder.intern_user(&format!("u{u}"));
    }
    let mut index_of = vec![u32::MAX; n_items];
    for i in (0..n_items).filter(|&i| !late[i]) {
        index_of[i] = builder.intern_item(&format!("i{i}"));
    }
    for r in &rows {
        let item = index_of[r.item as usize];
        builder.push_indexed(r.user, item, r.rating, 1.0, r.event, Some(r.time));
    }
    let interactions = builder.build();

    let mut feature_rng = SplitMix64::stream(cfg.seed, 5);
    let item_features = item_feature_table(cfg, &item_genres, &late, &mut feature_rng)?;
    let user_features = user_feature_table(cfg, &user_taste, &mut feature_rng)?;
    let dataset = Dataset {
        name: cfg.describe(),
        interactions,
        item_features: Some(Arc::new(item_features)),
        user_features: Some(Arc::new(user_features)),
    };
    let bot_users = (0..n_users)
        .filter(|&u| is_bot[u])
        .map(|u| format!("u{u}"))
        .collect();
    Ok(Synthetic {
        dataset,
        truth: SyntheticTruth {
            bot_users,
            duplicate_rows: n_dups,
            factors: f,
            user_factors: user_now,
            user_bias: user_biases,
            item_factors,
            item_bias,
            item_log_popularity: log_popularity,
            late_items: (0..n_items)
                .filter(|&i| late[i])
                .map(|i| LateItem {
                    id: format!("i{i}"),
                    genres: item_genres[i].iter().map(|&g| genre_name(cfg, g)).collect(),
                })
                .collect(),
        },
    })
}

/// The display name of genre `g`.
fn genre_name(cfg: &SyntheticConfig, g: usize) -> String {
    match GENRE_NAMES.get(g) {
        Some(name) if cfg.genres <= GENRE_NAMES.len() => (*name).to_owned(),
        _ => format!("Genre{g}"),
    }
}

/// An item left out of the data (`late_items`), with what a catalog would get when it arrives.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LateItem {
    pub id: String,
    pub genres: Vec<String>,
}

/// A bot: either a burst of events at about two per second, or (with ratings) one constant
/// rating on many items at a human pace.
fn emit_bot(
    user: u32,
    cfg: &SyntheticConfig,
    rng: &mut SplitMix64,
    draw_item: &mut impl FnMut(&mut SplitMix64) -> u32,
    seen_by: &mut [u32],
    rows: &mut Vec<Row>,
) {
    let span = cfg.days * DAY;
    let stamp = user + 1;
    let burst = cfg.implicit || rng.next_f64() < 0.5;
    let wanted = if burst {
        150 + rng.below(250) as usize
    } else {
        30 + rng.below(120) as usize
    };
    let wanted = wanted.min(cfg.items);
    let mut time = cfg.start_timestamp + (rng.next_f64() * span * 0.95) as i64;
    let constant = if rng.next_f64() < 0.7 { 5.0 } else { 1.0 };
    let mut emitted = 0;
    let mut attempts = 0;
    while emitted < wanted && attempts < wanted * 20 {
        attempts += 1;
        // Uniform draws once popularity stops yielding new items (small catalogs).
        let item = if attempts < wanted * 4 {
            draw_item(rng)
        } else {
            rng.below(cfg.items as u64) as u32
        };
        if seen_by[item as usize] == stamp {
            continue;
        }
        seen_by[item as usize] = stamp;
        emitted += 1;
        if burst {
            time += rng.below(2) as i64;
            let (rating, event) = if cfg.implicit {
                (None, EventType::View)
            } else {
                (Some(1.0 + rng.below(5) as f32), EventType::Rating)
            };
            rows.push(Row {
                user,
                item,
                rating,
                event,
                time,
            });
        } else {
            time += 600 + rng.below(7200) as i64;
            rows.push(Row {
                user,
                item,
                rating: Some(constant),
                event: EventType::Rating,
                time,
            });
        }
    }
}

/// Share of an item vector's variance explained by its genres.
const GENRE_SHARE: f64 = 0.7;

/// Each item's genres (1 to 3, some genres more common than others) and its latent vector:
/// the mean of its genres' prototypes plus an individual part, so genres carry taste signal
/// (content-based and cold-start models have something to learn from).
fn items_from_genres(cfg: &SyntheticConfig, rng: &mut SplitMix64) -> (Vec<Vec<usize>>, Vec<f64>) {
    let f = cfg.factors;
    let prototypes: Vec<f64> = (0..cfg.genres * f).map(|_| rng.normal()).collect();
    let mut genre_cdf = Vec::with_capacity(cfg.genres);
    let mut total = 0.0;
    for g in 0..cfg.genres {
        total += 1.0 / (g as f64 + 1.0).powf(0.7);
        genre_cdf.push(total);
    }
    let mut genres_of = Vec::with_capacity(cfg.items);
    let mut factors = Vec::with_capacity(cfg.items * f);
    for _ in 0..cfg.items {
        let k = 1 + rng.below(3.min(cfg.genres) as u64) as usize;
        let mut genres: Vec<usize> = Vec::with_capacity(k);
        while genres.len() < k {
            let x = rng.next_f64() * total;
            let g = genre_cdf.partition_point(|&c| c <= x).min(cfg.genres - 1);
            if !genres.contains(&g) {
                genres.push(g);
            }
        }
        let scale = (GENRE_SHARE / k as f64).sqrt();
        let own = (1.0 - GENRE_SHARE).sqrt();
        for d in 0..f {
            let shared: f64 = genres.iter().map(|&g| prototypes[g * f + d]).sum();
            factors.push(scale * shared + own * rng.normal());
        }
        genres_of.push(genres);
    }
    (genres_of, factors)
}

fn item_feature_table(
    cfg: &SyntheticConfig,
    item_genres: &[Vec<usize>],
    late: &[bool],
    rng: &mut SplitMix64,
) -> Result<FeatureTable> {
    let mut table = FeatureTable::new();
    for (i, genres) in item_genres.iter().enumerate() {
        if late[i] {
            // Draw what the item would have had, so the other items' features stay the same.
            rng.below(75);
            rng.below(16);
            rng.below(16);
            continue;
        }
        let id = format!("i{i}");
        let genres = genres.iter().map(|&g| genre_name(cfg, g)).collect();
        table.set(&id, "genres", FeatureValue::Categories(genres))?;
        table.set(
            &id,
            "year",
            FeatureValue::Number(1950.0 + rng.below(75) as f32),
        )?;
        let title = format!(
            "{} {} {}",
            TITLE_WORDS[rng.below(16) as usize],
            TITLE_WORDS[rng.below(16) as usize],
            i
        );
        table.set(&id, "title", FeatureValue::Text(title))?;
    }
    Ok(table)
}

fn user_feature_table(
    cfg: &SyntheticConfig,
    user_taste: &[f64],
    rng: &mut SplitMix64,
) -> Result<FeatureTable> {
    let f = cfg.factors;
    let prototypes: Vec<f64> = (0..SEGMENTS * f).map(|_| rng.normal()).collect();
    let mut table = FeatureTable::new();
    for u in 0..cfg.users {
        let id = format!("u{u}");
        let taste = &user_taste[u * f..(u + 1) * f];
        let segment = (0..SEGMENTS)
            .max_by(|&a, &b| {
                dot_f64(taste, &prototypes[a * f..(a + 1) * f])
                    .total_cmp(&dot_f64(taste, &prototypes[b * f..(b + 1) * f]))
            })
            .unwrap_or(0);
        table.set(
            &id,
            "segment",
            FeatureValue::Categories(vec![format!("segment{segment}")]),
        )?;
        let age = AGE_GROUPS[rng.below(AGE_GROUPS.len() as u64) as usize];
        table.set(
            &id,
            "age_group",
            FeatureValue::Categories(vec![age.to_owned()]),
        )?;
    }
    Ok(table)
}

/// Walker/Vose alias table: O(1) draws from a fixed discrete distribution.
struct AliasTable {
    threshold: Vec<f64>,
    alias: Vec<u32>,
}

impl AliasTable {
    /// `weights` must be non-empty, finite and non-negative with a positive sum.
    fn new(weights: &[f64]) -> Self {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Leftovers are 1 up to rounding.
        for i in small.into_iter().chain(large) {
            scaled[i] = 1.0;
        }
        Self {
            threshold: scaled,
            alias,
        }
    }

    fn draw(&self, rng: &mut SplitMix64) -> u32 {
        let i = rng.below(self.threshold.len() as u64) as usize;
        if rng.next_f64() < self.threshold[i] {
            i as u32
        } else {
            self.alias[i]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::{self, PipelineConfig};
    use kindred_core::features::ColumnData;

    fn small(extra: &str) -> SyntheticConfig {
        SyntheticConfig::parse(&format!("users=400,items=300,per_user=30,seed=7{extra}")).unwrap()
    }

    #[test]
    fn late_items_leave_the_data_and_nothing_else_changes() {
        let spec = "users=200,items=100,seed=3,implicit=true";
        let all = generate(&SyntheticConfig::parse(spec).unwrap()).unwrap();
        let cfg = SyntheticConfig::parse(&format!("{spec},late_items=0.2")).unwrap();
        let some = generate(&cfg).unwrap();
        let late: Vec<&str> = some
            .truth
            .late_items
            .iter()
            .map(|l| l.id.as_str())
            .collect();
        assert!((10..30).contains(&late.len()), "{}", late.len());
        assert!(some.truth.late_items.iter().all(|l| !l.genres.is_empty()));
        let rows = |d: &Dataset| {
            let data = &d.interactions;
            (0..data.len())
                .map(|r| {
                    (
                        data.user_ids().external(data.users()[r]).to_owned(),
                        data.item_ids().external(data.items()[r]).to_owned(),
                        data.timestamps()[r],
                    )
                })
                .collect::<Vec<_>>()
        };
        let kept: Vec<_> = rows(&all.dataset)
            .into_iter()
            .filter(|(_, item, _)| !late.contains(&item.as_str()))
            .collect();
        assert_eq!(rows(&some.dataset), kept);
        let features = some.dataset.item_features.as_deref().unwrap();
        assert!(late.iter().all(|id| features.ids().get(id).is_none()));
        assert!(late
            .iter()
            .all(|id| some.dataset.interactions.item_ids().get(id).is_none()));
        let title = |d: &Dataset, id: &str| {
            let f = d.item_features.as_deref().unwrap();
            let row = f.ids().get(id).unwrap() as usize;
            match &f.column("title").unwrap().data {
                kindred_core::features::ColumnData::Text(values) => values[row].clone(),
                other => panic!("title is not text: {other:?}"),
            }
        };
        let kept_id = (0..100)
            .map(|i| format!("i{i}"))
            .find(|id| !late.contains(&id.as_str()))
            .unwrap();
        assert_eq!(
            title(&all.dataset, &kept_id),
            title(&some.dataset, &kept_id)
        );
        assert!(SyntheticConfig::parse("late_items=1").is_err());
    }

    #[test]
    fn spec_parsing() {
        let cfg =
            SyntheticConfig::parse("users=1000,items=500,seed=7,bots=0.02,dups=0.01,implicit=true")
                .unwrap();
        assert_eq!((cfg.users, cfg.items, cfg.seed), (1000, 500, 7));
        assert_eq!(
            (cfg.bot_fraction, cfg.duplicate_fraction, cfg.implicit),
            (0.02, 0.01, true)
        );
        let err = SyntheticConfig::parse("users=10,colour=red")
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
        assert!(SyntheticConfig::parse("users=zero").is_err());
        assert!(SyntheticConfig::parse("users=0").is_err());
        assert!(SyntheticConfig::parse("bots=2").is_err());
        assert!(SyntheticConfig::parse("users").is_err());
        assert_eq!(
            SyntheticConfig::parse("").unwrap(),
            SyntheticConfig::default()
        );
    }

    /// The latent tables have the documented shapes and explain the data: users pick items
    /// whose vectors agree with their (end-of-period) taste far more than random items do.
    #[test]
    fn truth_exposes_the_latent_world() {
        let cfg = small("");
        let syn = generate(&cfg).unwrap();
        let t = &syn.truth;
        let f = cfg.factors;
        assert_eq!(t.factors, f);
        assert_eq!(t.user_factors.len(), cfg.users * f);
        assert_eq!(t.user_bias.len(), cfg.users);
        assert_eq!(t.item_factors.len(), cfg.items * f);
        assert_eq!(t.item_bias.len(), cfg.items);
        assert_eq!(t.item_log_popularity.len(), cfg.items);
        // Ranks 0..items, each once: the most popular item has weight 0.
        let top = t
            .item_log_popularity
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(top, 0.0);
        let data = &syn.dataset.interactions;
        let taste = |u: usize, i: usize| {
            dot_f64(
                &t.user_factors[u * f..(u + 1) * f],
                &t.item_factors[i * f..(i + 1) * f],
            )
        };
        let n = data.len() as f64;
        let chosen: f64 = (0..data.len())
            .map(|r| taste(data.users()[r] as usize, data.items()[r] as usize))
            .sum::<f64>()
            / n;
        let mut rng = SplitMix64::new(1);
        let random: f64 = (0..data.len())
            .map(|r| {
                taste(
                    data.users()[r] as usize,
                    rng.below(cfg.items as u64) as usize,
                )
            })
            .sum::<f64>()
            / n;
        assert!(chosen > random + 0.3, "chosen {chosen}, random {random}");
        // Serialising the truth stays small: the tables are skipped.
        let json = serde_json::to_string(t).unwrap();
        assert!(json.len() < 200, "{json}");
    }

    #[test]
    fn deterministic_per_seed() {
        let a = generate(&small(",bots=0.02,dups=0.01"))
            .unwrap()
            .dataset
            .interactions;
        let b = generate(&small(",bots=0.02,dups=0.01"))
            .unwrap()
            .dataset
            .interactions;
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.ratings(), b.ratings());
        let c = generate(&small(",seed=8,bots=0.02,dups=0.01"))
            .unwrap()
            .dataset
            .interactions;
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn sizes_features_and_ratings() {
        let syn = generate(&small("")).unwrap();
        let data = &syn.dataset.interactions;
        assert_eq!((data.n_users(), data.n_items()), (400, 300));
        let per_user = data.len() as f64 / 400.0;
        assert!((20.0..40.0).contains(&per_user), "{per_user} rows per user");
        assert!(data.has_ratings() && data.has_timestamps());
        assert!(data
            .ratings()
            .iter()
            .all(|r| (1.0..=5.0).contains(r) && r.fract() == 0.0));
        let mean = data.ratings().iter().map(|&r| r as f64).sum::<f64>() / data.len() as f64;
        assert!((3.0..4.3).contains(&mean), "mean rating {mean}");
        let items = syn.dataset.item_features.as_ref().unwrap();
        assert_eq!(items.ids().len(), 300);
        match &items.column("genres").unwrap().data {
            ColumnData::Categorical { values, vocab } => {
                assert_eq!(vocab.len(), 12);
                assert!(values.iter().all(|g| (1..=3).contains(&g.len())));
            }
            other => panic!("genres column is {other:?}"),
        }
        assert!(items.column("year").is_some() && items.column("title").is_some());
        let users = syn.dataset.user_features.as_ref().unwrap();
        assert!(users.column("segment").is_some() && users.column("age_group").is_some());
        // Heavy-tailed activity: the busiest user is far above the mean.
        let max = *data.user_counts().iter().max().unwrap() as f64;
        assert!(max > 3.0 * per_user);

        let implicit = generate(&small(",implicit=true"))
            .unwrap()
            .dataset
            .interactions;
        let events: std::collections::HashSet<_> = implicit.events().iter().copied().collect();
        assert!(events.contains(&EventType::View) && events.contains(&EventType::Click));
        assert!(events.contains(&EventType::Purchase));
        assert!(!events.contains(&EventType::Rating));
    }

    #[test]
    fn cleaning_finds_planted_bots_and_duplicates() {
        let syn = generate(
            &SyntheticConfig::parse("users=2000,items=500,per_user=30,seed=11,bots=0.03,dups=0.02")
                .unwrap(),
        )
        .unwrap();
        let data = &syn.dataset.interactions;
        let (_, report) = preprocess::run(&PipelineConfig::probe(), data).unwrap();
        let dedup_removed: usize = report.steps[..2]
            .iter()
            .map(|s| s.rows_before - s.rows_after)
            .sum();
        let planted = syn.truth.duplicate_rows;
        assert!(planted > 0);
        assert!(
            dedup_removed.abs_diff(planted) <= planted / 20,
            "removed {dedup_removed}, planted {planted}"
        );

        // Which users the bot rules flag, on the deduplicated data.
        let cfg = PipelineConfig {
            bots: PipelineConfig::probe().bots,
            ..Default::default()
        };
        let (clean, _) = preprocess::run(&cfg, data).unwrap();
        let remaining: std::collections::HashSet<u32> = clean.users().iter().copied().collect();
        let ids = data.user_ids();
        let bots: std::collections::HashSet<u32> = syn
            .truth
            .bot_users
            .iter()
            .map(|b| ids.get(b).unwrap())
            .collect();
        assert_eq!(bots.len(), 60);
        let caught = bots.iter().filter(|b| !remaining.contains(b)).count();
        assert!(
            caught as f64 >= 0.9 * bots.len() as f64,
            "caught {caught} of {}",
            bots.len()
        );
        let active: std::collections::HashSet<u32> = data.users().iter().copied().collect();
        let false_positives = active
            .iter()
            .filter(|u| !bots.contains(u) && !remaining.contains(u))
            .count();
        assert!(
            (false_positives as f64) < 0.01 * (active.len() - bots.len()) as f64,
            "{false_positives} false positives"
        );
    }

    /// Hits@10 on each user's latest 20% of interactions: item-to-item co-occurrence (a
    /// personalised model) beats popularity, which beats random.
    fn hit_rates(syn: &Synthetic) -> (f64, f64, f64) {
        let data = &syn.dataset.interactions;
        let (n_users, n_items) = (data.n_users(), data.n_items());
        let by_user = data.by_user();
        let mut train: Vec<Vec<u32>> = vec![Vec::new(); n_users];
        let mut test: Vec<Vec<u32>> = vec![Vec::new(); n_users];
        for u in 0..n_users {
            let mut rows = by_user.row_entries(u).to_vec();
            rows.sort_by_key(|&r| data.timestamps()[r as usize]);
            let cut = rows.len() - rows.len() / 5;
            train[u] = rows[..cut]
                .iter()
                .map(|&r| data.items()[r as usize])
                .collect();
            test[u] = rows[cut..]
                .iter()
                .map(|&r| data.items()[r as usize])
                .collect();
        }
        let mut popularity = vec![0f64; n_items];
        let mut cooc = vec![0f64; n_items * n_items];
        for items in &train {
            for &a in items {
                popularity[a as usize] += 1.0;
                for &b in items {
                    cooc[a as usize * n_items + b as usize] += 1.0;
                }
            }
        }
        let hits = |scores: &[f64], u: usize| {
            let mut order: Vec<u32> = (0..n_items as u32)
                .filter(|i| !train[u].contains(i))
                .collect();
            order.sort_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]));
            order[..10].iter().filter(|i| test[u].contains(i)).count() as f64
        };
        let (mut knn, mut pop, mut random, mut users) = (0.0, 0.0, 0.0, 0.0);
        for u in 0..n_users {
            if test[u].is_empty() {
                continue;
            }
            let mut scores = vec![0f64; n_items];
            for &a in &train[u] {
                let norm_a = popularity[a as usize].max(1.0).sqrt();
                for (b, score) in scores.iter_mut().enumerate() {
                    let norm_b = popularity[b].max(1.0).sqrt();
                    *score += cooc[a as usize * n_items + b] / (norm_a * norm_b);
                }
            }
            knn += hits(&scores, u);
            pop += hits(&popularity, u);
            random += 10.0 * test[u].len() as f64 / (n_items - train[u].len()) as f64;
            users += 1.0;
        }
        (knn / users, pop / users, random / users)
    }

    #[test]
    fn personal_signal_beats_popularity_beats_random() {
        let syn = generate(&small("")).unwrap();
        let (knn, pop, random) = hit_rates(&syn);
        assert!(knn > 1.3 * pop, "item-kNN {knn} vs popularity {pop}");
        assert!(pop > 1.5 * random, "popularity {pop} vs random {random}");

        let data = &syn.dataset.interactions;
        let mut counts = data.item_counts();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top_tenth: u32 = counts[..30].iter().sum();
        assert!(
            top_tenth as f64 > 0.25 * data.len() as f64,
            "top 10% items hold {top_tenth} of {}",
            data.len()
        );
    }

    #[test]
    fn alias_table_matches_weights() {
        let table = AliasTable::new(&[1.0, 0.0, 3.0, 4.0]);
        let mut rng = SplitMix64::new(1);
        let mut counts = [0usize; 4];
        for _ in 0..80_000 {
            counts[table.draw(&mut rng) as usize] += 1;
        }
        assert_eq!(counts[1], 0);
        for (c, w) in counts.iter().zip([1.0, 0.0, 3.0, 4.0]) {
            assert!((*c as f64 / 80_000.0 - w / 8.0).abs() < 0.01, "{counts:?}");
        }
    }
}
