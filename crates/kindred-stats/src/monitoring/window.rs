//! Cutting a stream of timestamped feedback events into a reference window and a current
//! window, and the distributions drift is measured on for each: item popularity, user activity,
//! the event-type mix and the event value.
//!
//! The current window is `[end - current, end)` and the reference window the `reference`
//! seconds right before it, `[end - current - reference, end - current)`; `end` defaults to one
//! second after the latest event, so the latest event is in the current window.
//!
//! User activity is "events per active user per slice of the current window's length": the
//! reference window is cut into slices as long as the current window and every (user, slice)
//! with at least one event is one observation. Counting a user's events over the whole 7-day
//! reference against one day of current data would shift the distribution by the window lengths
//! alone.

use std::collections::HashMap;

use kindred_core::interactions::NO_TIMESTAMP;
use kindred_core::{EventType, Interactions, Result};
use serde::{Deserialize, Serialize};

use super::psi::{log2_bins, quantile_bins, top_k_bins, Binned, PsiLevel};

/// One feedback event as monitoring sees it; ids are the caller's dense indices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeedbackEvent {
    pub user: u32,
    pub item: u32,
    pub event: EventType,
    /// A rating or other value, when the event has one.
    pub value: Option<f32>,
    /// Unix seconds.
    pub timestamp: i64,
    /// The client's event id, when it sends one (repeats are duplicates).
    pub event_id: Option<u64>,
}

/// Events of a dataset's rows that have a timestamp, and how many rows had none.
pub fn events_from_interactions(interactions: &Interactions) -> (Vec<FeedbackEvent>, usize) {
    let mut events = Vec::with_capacity(interactions.len());
    let mut untimed = 0;
    for row in 0..interactions.len() {
        let timestamp = interactions.timestamps()[row];
        if timestamp == NO_TIMESTAMP {
            untimed += 1;
            continue;
        }
        let rating = interactions.ratings()[row];
        events.push(FeedbackEvent {
            user: interactions.users()[row],
            item: interactions.items()[row],
            event: interactions.events()[row],
            value: rating.is_finite().then_some(rating),
            timestamp,
            event_id: None,
        });
    }
    (events, untimed)
}

/// A half-open interval of Unix seconds, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSpan {
    pub start: i64,
    pub end: i64,
}

impl TimeSpan {
    pub fn contains(&self, t: i64) -> bool {
        self.start <= t && t < self.end
    }

    pub fn seconds(&self) -> i64 {
        self.end - self.start
    }
}

/// Window lengths and how drift is binned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowConfig {
    /// Length of the reference window, seconds (default 7 days).
    pub reference_seconds: i64,
    /// Length of the current window, seconds (default 1 day).
    pub current_seconds: i64,
    /// Item-popularity bins: this many top items of the reference plus "other" (default 20).
    pub top_items: usize,
    /// Equal-frequency bins for the event value (default 10).
    pub value_bins: usize,
    /// A distribution whose smaller side has fewer observations than this gets no PSI: the
    /// statistic's small-sample bias (see `psi`) would make it noise (default 200).
    pub min_observations: usize,
    /// PSI's share floor for empty bins.
    pub epsilon: f64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            reference_seconds: 7 * 86_400,
            current_seconds: 86_400,
            top_items: 20,
            value_bins: 10,
            min_observations: 200,
            epsilon: super::psi::PSI_EPSILON,
        }
    }
}

/// The two windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows {
    pub reference: TimeSpan,
    pub current: TimeSpan,
}

impl Windows {
    /// Windows ending at `end`, or one second after the latest event; `None` without events.
    pub fn ending_at(
        events: &[FeedbackEvent],
        config: &WindowConfig,
        end: Option<i64>,
    ) -> Result<Option<Self>> {
        if config.reference_seconds <= 0 || config.current_seconds <= 0 {
            return Err(kindred_core::Error::InvalidInput(format!(
                "window lengths must be positive, got reference {} s and current {} s",
                config.reference_seconds, config.current_seconds
            )));
        }
        let Some(end) = end.or_else(|| events.iter().map(|e| e.timestamp).max().map(|t| t + 1))
        else {
            return Ok(None);
        };
        let split = end - config.current_seconds;
        Ok(Some(Self {
            reference: TimeSpan {
                start: split - config.reference_seconds,
                end: split,
            },
            current: TimeSpan { start: split, end },
        }))
    }
}

/// Drift of one distribution between the windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributionDrift {
    /// `item_popularity`, `user_activity`, `event_type` or `value`.
    pub name: String,
    /// `None` when either side has fewer than `min_observations` observations.
    pub psi: Option<f64>,
    pub level: Option<PsiLevel>,
    pub reference_observations: f64,
    pub current_observations: f64,
    pub bins: Binned,
}

/// Drift of every distribution between the windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    pub windows: Windows,
    pub reference_events: usize,
    pub current_events: usize,
    pub distributions: Vec<DistributionDrift>,
}

impl DriftReport {
    /// The drift of the named distribution.
    pub fn get(&self, name: &str) -> Option<&DistributionDrift> {
        self.distributions.iter().find(|d| d.name == name)
    }
}

fn drift(name: &str, bins: Binned, config: &WindowConfig) -> Result<DistributionDrift> {
    let (reference_observations, current_observations) = bins.totals();
    let enough = reference_observations.min(current_observations) >= config.min_observations as f64;
    let psi = if enough {
        Some(bins.psi(config.epsilon)?)
    } else {
        None
    };
    Ok(DistributionDrift {
        name: name.to_owned(),
        psi,
        level: psi.map(PsiLevel::of),
        reference_observations,
        current_observations,
        bins,
    })
}

/// Events per (user, slice) with at least one event; slices are `slice_seconds` long from
/// `span.start`.
fn activity(events: &[&FeedbackEvent], span: TimeSpan, slice_seconds: i64) -> Vec<u64> {
    let mut counts: HashMap<(u32, i64), u64> = HashMap::new();
    for e in events {
        let slice = (e.timestamp - span.start).div_euclid(slice_seconds);
        *counts.entry((e.user, slice)).or_insert(0) += 1;
    }
    counts.into_values().collect()
}

/// PSI of item popularity, user activity, the event-type mix and (when events carry one) the
/// value, between the two windows.
pub fn drift_report(
    events: &[FeedbackEvent],
    windows: Windows,
    config: &WindowConfig,
) -> Result<DriftReport> {
    let reference: Vec<&FeedbackEvent> = events
        .iter()
        .filter(|e| windows.reference.contains(e.timestamp))
        .collect();
    let current: Vec<&FeedbackEvent> = events
        .iter()
        .filter(|e| windows.current.contains(e.timestamp))
        .collect();
    let items = |side: &[&FeedbackEvent]| side.iter().map(|e| e.item).collect::<Vec<_>>();
    let kinds =
        |side: &[&FeedbackEvent]| side.iter().map(|e| EventName(e.event)).collect::<Vec<_>>();
    let values = |side: &[&FeedbackEvent]| {
        side.iter()
            .filter_map(|e| e.value.map(f64::from))
            .collect::<Vec<_>>()
    };
    let slice = windows.current.seconds();
    let mut distributions = vec![
        drift(
            "item_popularity",
            top_k_bins(&items(&reference), &items(&current), config.top_items),
            config,
        )?,
        drift(
            "user_activity",
            log2_bins(
                &activity(&reference, windows.reference, slice),
                &activity(&current, windows.current, slice),
            ),
            config,
        )?,
        drift(
            "event_type",
            top_k_bins(&kinds(&reference), &kinds(&current), usize::MAX),
            config,
        )?,
    ];
    let (ref_values, cur_values) = (values(&reference), values(&current));
    if !ref_values.is_empty() || !cur_values.is_empty() {
        distributions.push(drift(
            "value",
            quantile_bins(&ref_values, &cur_values, config.value_bins),
            config,
        )?);
    }
    Ok(DriftReport {
        windows,
        reference_events: reference.len(),
        current_events: current.len(),
        distributions,
    })
}

/// An event type ordered and printed by name, for the categorical bins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct EventName(EventType);

impl std::fmt::Display for EventName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            EventType::Custom(index) => write!(f, "custom_{index}"),
            builtin => f.write_str(builtin.builtin_name().unwrap_or("custom")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(user: u32, item: u32, timestamp: i64) -> FeedbackEvent {
        FeedbackEvent {
            user,
            item,
            event: EventType::Click,
            value: None,
            timestamp,
            event_id: None,
        }
    }

    #[test]
    fn windows_end_after_the_latest_event() {
        let events = [event(0, 0, 100), event(0, 0, 250)];
        let config = WindowConfig {
            reference_seconds: 100,
            current_seconds: 50,
            ..WindowConfig::default()
        };
        let w = Windows::ending_at(&events, &config, None).unwrap().unwrap();
        assert_eq!(
            w.current,
            TimeSpan {
                start: 201,
                end: 251
            }
        );
        assert_eq!(
            w.reference,
            TimeSpan {
                start: 101,
                end: 201
            }
        );
        assert!(Windows::ending_at(&[], &config, None).unwrap().is_none());
        let bad = WindowConfig {
            current_seconds: 0,
            ..config
        };
        assert!(Windows::ending_at(&events, &bad, None).is_err());
    }

    #[test]
    fn user_activity_is_counted_per_slice_of_the_current_length() {
        // Reference [0, 20) in slices of 10: user 0 has 2 events in slice 0 and 1 in slice 1;
        // user 1 has 1 in slice 1. Current [20, 30): user 0 has 4 events.
        let mut events = vec![
            event(0, 1, 0),
            event(0, 1, 5),
            event(0, 2, 12),
            event(1, 1, 15),
        ];
        events.extend((0..4).map(|i| event(0, 3, 20 + i)));
        let windows = Windows {
            reference: TimeSpan { start: 0, end: 20 },
            current: TimeSpan { start: 20, end: 30 },
        };
        let config = WindowConfig {
            min_observations: 1,
            top_items: 1,
            ..WindowConfig::default()
        };
        let report = drift_report(&events, windows, &config).unwrap();
        assert_eq!((report.reference_events, report.current_events), (4, 4));
        let activity = report.get("user_activity").unwrap();
        assert_eq!(activity.bins.labels, ["1", "2-3", "4-7"]);
        assert_eq!(activity.bins.reference, [2.0, 1.0, 0.0]);
        assert_eq!(activity.bins.current, [0.0, 0.0, 1.0]);
        let items = report.get("item_popularity").unwrap();
        assert_eq!(items.bins.labels, ["1", "other"]);
        assert_eq!(items.bins.reference, [3.0, 1.0]);
        assert_eq!(items.bins.current, [0.0, 4.0]);
        assert!(items.psi.unwrap() > 0.25);
        assert!(report.get("value").is_none());
        // Too few observations: no PSI.
        let strict = WindowConfig {
            min_observations: 5,
            ..config
        };
        let report = drift_report(&events, windows, &strict).unwrap();
        assert!(report.distributions.iter().all(|d| d.psi.is_none()));
    }
}
