//! Data-quality counters over one window of feedback events: volume per hour and day,
//! duplicates, bot-like users, and the missing or invalid field counts the caller found while
//! parsing (monitoring never sees the raw records, so it cannot count those itself).
//!
//! Bot-like users: a user is flagged when their event count in the window exceeds both a floor
//! (`min_bot_events`) and a robust outlier bound on the log scale, exp(median + k * MAD / 0.6745)
//! of ln(events per user), with k = 3.5. That is the modified z-score rule of Iglewicz and
//! Hoaglin (1993): median and MAD are not dragged up by the bots themselves as a mean and
//! standard deviation would be, and the log scale is used because activity is heavy-tailed, so
//! on raw counts every ordinary heavy user would be an outlier. The floor keeps the rule quiet
//! in small windows where most users have one event and the MAD is 0.
//!
//! Duplicates: an event with the same user, item, event type and timestamp as an earlier one in
//! the window, or repeating an earlier event id. The batch cleaner (`kindred_data::preprocess`)
//! removes such rows from a `Dataset`; this counts them on the live stream instead.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::window::{FeedbackEvent, TimeSpan};

/// The modified z-score above which a user is an outlier (Iglewicz and Hoaglin).
pub const MODIFIED_Z_LIMIT: f64 = 3.5;

/// Settings of the quality counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QualityConfig {
    /// A user needs more than this many events in the window to be flagged (default 50).
    pub min_bot_events: u64,
    /// Modified z-score limit on ln(events per user) (default 3.5).
    pub bot_z_limit: f64,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            min_bot_events: 50,
            bot_z_limit: MODIFIED_Z_LIMIT,
        }
    }
}

/// Quality counters of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityCounters {
    pub window: TimeSpan,
    pub events: usize,
    pub users: usize,
    pub items: usize,
    /// Events per day of window length.
    pub events_per_day: f64,
    /// Events in each hour of the window, from its start.
    pub events_per_hour: Vec<u64>,
    pub duplicate_events: usize,
    /// Duplicates / events (0 without events).
    pub duplicate_rate: f64,
    /// Events per user above which a user is flagged as bot-like.
    pub bot_threshold: f64,
    pub bot_users: usize,
    /// Events of flagged users / events.
    pub bot_event_share: f64,
    /// Field name -> records missing it, as counted by the caller.
    pub missing_fields: BTreeMap<String, u64>,
    /// Field name -> records with an invalid value, as counted by the caller.
    pub invalid_fields: BTreeMap<String, u64>,
}

/// Median of values (sorted in place); 0 for none.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    kindred_core::quantile::quantile(values, 0.5)
}

/// The bot threshold for these per-user event counts (see the module doc).
pub fn bot_threshold(counts: &[u64], config: &QualityConfig) -> f64 {
    let mut logs: Vec<f64> = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| (c as f64).ln())
        .collect();
    let centre = median(&mut logs);
    let mut deviations: Vec<f64> = logs.iter().map(|l| (l - centre).abs()).collect();
    let mad = median(&mut deviations);
    let robust = (centre + config.bot_z_limit * mad / 0.6745).exp();
    robust.max(config.min_bot_events as f64)
}

/// Quality counters of the events inside `window`; `missing_fields` and `invalid_fields` are
/// passed through from the caller's parser.
pub fn quality_counters(
    events: &[FeedbackEvent],
    window: TimeSpan,
    config: &QualityConfig,
    missing_fields: BTreeMap<String, u64>,
    invalid_fields: BTreeMap<String, u64>,
) -> QualityCounters {
    let inside: Vec<&FeedbackEvent> = events
        .iter()
        .filter(|e| window.contains(e.timestamp))
        .collect();
    let hours = (window.seconds().max(0) as u64).div_ceil(3600) as usize;
    let mut events_per_hour = vec![0u64; hours];
    let mut per_user: HashMap<u32, u64> = HashMap::new();
    let mut items = HashSet::new();
    let mut seen_keys = HashSet::new();
    let mut seen_ids = HashSet::new();
    let mut duplicate_events = 0;
    for e in &inside {
        let hour = ((e.timestamp - window.start) / 3600) as usize;
        if let Some(slot) = events_per_hour.get_mut(hour) {
            *slot += 1;
        }
        *per_user.entry(e.user).or_insert(0) += 1;
        items.insert(e.item);
        let repeated_key = !seen_keys.insert((e.user, e.item, e.event, e.timestamp));
        let repeated_id = e.event_id.is_some_and(|id| !seen_ids.insert(id));
        if repeated_key || repeated_id {
            duplicate_events += 1;
        }
    }
    let counts: Vec<u64> = per_user.values().copied().collect();
    let threshold = bot_threshold(&counts, config);
    let flagged: Vec<u64> = counts
        .iter()
        .copied()
        .filter(|&c| c as f64 > threshold)
        .collect();
    let share = |part: f64| {
        if inside.is_empty() {
            0.0
        } else {
            part / inside.len() as f64
        }
    };
    QualityCounters {
        window,
        events: inside.len(),
        users: per_user.len(),
        items: items.len(),
        events_per_day: inside.len() as f64 * 86_400.0 / window.seconds().max(1) as f64,
        events_per_hour,
        duplicate_events,
        duplicate_rate: share(duplicate_events as f64),
        bot_threshold: threshold,
        bot_users: flagged.len(),
        bot_event_share: share(flagged.iter().sum::<u64>() as f64),
        missing_fields,
        invalid_fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::EventType;

    fn event(user: u32, item: u32, timestamp: i64, event_id: Option<u64>) -> FeedbackEvent {
        FeedbackEvent {
            user,
            item,
            event: EventType::View,
            value: None,
            timestamp,
            event_id,
        }
    }

    #[test]
    fn counts_volume_and_duplicates() {
        let window = TimeSpan {
            start: 0,
            end: 7200,
        };
        let events = [
            event(1, 1, 10, None),
            event(1, 1, 10, None), // same key: duplicate
            event(1, 2, 20, Some(7)),
            event(2, 3, 4000, Some(7)), // repeated id: duplicate
            event(2, 3, 4001, Some(8)),
            event(3, 3, 9000, None), // outside the window
        ];
        let mut missing = BTreeMap::new();
        missing.insert("item".to_owned(), 2);
        let q = quality_counters(
            &events,
            window,
            &QualityConfig::default(),
            missing,
            BTreeMap::new(),
        );
        assert_eq!(q.events, 5);
        assert_eq!((q.users, q.items), (2, 3));
        assert_eq!(q.events_per_hour, [3, 2]);
        assert!((q.events_per_day - 60.0).abs() < 1e-12);
        assert_eq!(q.duplicate_events, 2);
        assert!((q.duplicate_rate - 0.4).abs() < 1e-12);
        assert_eq!(q.bot_users, 0);
        assert_eq!(q.missing_fields["item"], 2);
    }

    #[test]
    fn bot_threshold_on_a_hand_example() {
        let config = QualityConfig {
            min_bot_events: 0,
            bot_z_limit: 3.5,
        };
        // Counts 1, 1, 1, 1, 100: median ln = 0, MAD = 0 -> robust bound e^0 = 1.
        assert!((bot_threshold(&[1, 1, 1, 1, 100], &config) - 1.0).abs() < 1e-12);
        // Counts 2, 4, 8: ln = (1, 2, 3) ln 2; median 2 ln 2, MAD ln 2;
        // bound = exp(2 ln 2 + 3.5 ln 2 / 0.6745) = 4 * 2^5.18903 = 145.9
        let expected = 4.0 * 2f64.powf(3.5 / 0.6745);
        assert!((bot_threshold(&[2, 4, 8], &config) - expected).abs() < 1e-9);
        // The floor wins when higher.
        assert_eq!(bot_threshold(&[1, 1, 1], &QualityConfig::default()), 50.0);
    }

    #[test]
    fn flags_the_heavy_users() {
        let window = TimeSpan {
            start: 0,
            end: 86_400,
        };
        let mut events: Vec<FeedbackEvent> = (0..100)
            .flat_map(|u| {
                (0..(1 + u % 3)).map(move |i| event(u, i, 100 * u as i64 + i as i64, None))
            })
            .collect();
        let before = events.len();
        events.extend((0..300).map(|i| event(999, i, 50_000 + i as i64, None)));
        let q = quality_counters(
            &events,
            window,
            &QualityConfig::default(),
            BTreeMap::new(),
            BTreeMap::new(),
        );
        assert_eq!(q.bot_users, 1);
        assert!((q.bot_event_share - 300.0 / (before + 300) as f64).abs() < 1e-12);
    }
}
