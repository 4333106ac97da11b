//! The request a second-stage model scores for (when, and key/value context such as the
//! device) and the trait such a model implements.

use kindred_core::interactions::NO_TIMESTAMP;
use kindred_core::Interactions;

/// A model that scores candidate items for a user in a request's context.
pub trait ContextScorer: Send + Sync + std::fmt::Debug {
    /// Scores of `items` for `user` (index of the training set; None: anonymous) in `context`,
    /// higher is better.
    fn score_in_context(
        &self,
        user: Option<u32>,
        context: &RequestContext,
        items: &[u32],
    ) -> Vec<f32>;
}

/// When and where a request (or a logged event) happens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// Unix seconds (UTC); None when unknown, which sets no hour or weekday feature.
    pub timestamp: Option<i64>,
    /// Key/value context (`device` = `mobile`); pairs unseen in training are ignored.
    pub entries: Vec<(String, String)>,
}

impl RequestContext {
    /// The context of row `row` of `data`: its timestamp and its key/value entries.
    pub fn of_row(data: &Interactions, row: u32) -> Self {
        let ts = data.timestamps()[row as usize];
        let context = data.context();
        let start = context.entries.partition_point(|e| e.0 < row);
        let entries = context.entries[start..]
            .iter()
            .take_while(|e| e.0 == row)
            .map(|&(_, k, v)| {
                (
                    context.keys.external(k).to_owned(),
                    context.values.external(v).to_owned(),
                )
            })
            .collect();
        Self {
            timestamp: (ts != NO_TIMESTAMP).then_some(ts),
            entries,
        }
    }
}

/// Hour of the day (0..24) of a Unix timestamp in UTC.
pub fn hour_of_day(timestamp: i64) -> u32 {
    (timestamp.rem_euclid(86_400) / 3_600) as u32
}

/// Day of the week of a Unix timestamp in UTC, 0 = Monday (1970-01-01 was a Thursday).
pub fn weekday(timestamp: i64) -> u32 {
    (timestamp.div_euclid(86_400) + 3).rem_euclid(7) as u32
}
