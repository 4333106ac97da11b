//! The interaction log: a columnar (struct-of-arrays) list of what users did with items.
//!
//! Each row is one event: user, item, an optional explicit rating, an implicit weight, an event
//! type, an optional timestamp and optional key/value context. Id maps are shared (`Arc`) between
//! a dataset and every subset cut from it, so train and test sets index the same users and items.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::EventType;
use crate::ids::IdMap;
use crate::sparse::CsMatrix;

/// Timestamp of rows that have none.
pub const NO_TIMESTAMP: i64 = i64::MIN;

/// One event as handed to the builder, with external ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction<'a> {
    pub user: &'a str,
    pub item: &'a str,
    /// Explicit value (stars, score); `None` for purely implicit events.
    pub rating: Option<f32>,
    /// Implicit weight (count, dwell, confidence); 1 by default.
    pub weight: f32,
    pub event: EventType,
    /// Unix seconds.
    pub timestamp: Option<i64>,
}

impl<'a> Interaction<'a> {
    /// An explicit rating event.
    pub fn rating(user: &'a str, item: &'a str, rating: f32, timestamp: Option<i64>) -> Self {
        Self {
            user,
            item,
            rating: Some(rating),
            weight: 1.0,
            event: EventType::Rating,
            timestamp,
        }
    }

    /// An implicit event of the given type with weight 1.
    pub fn implicit(
        user: &'a str,
        item: &'a str,
        event: EventType,
        timestamp: Option<i64>,
    ) -> Self {
        Self {
            user,
            item,
            rating: None,
            weight: 1.0,
            event,
            timestamp,
        }
    }
}

/// Key/value context attached to rows (device, time of day, ...), stored sparsely.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Context {
    pub keys: IdMap,
    pub values: IdMap,
    /// `(row, key, value)` sorted by row.
    pub entries: Vec<(u32, u32, u32)>,
}

/// Builds an [`Interactions`] log row by row, interning ids as it goes.
#[derive(Debug, Default)]
pub struct InteractionsBuilder {
    users: IdMap,
    items: IdMap,
    custom_events: Vec<String>,
    user: Vec<u32>,
    item: Vec<u32>,
    rating: Vec<f32>,
    weight: Vec<f32>,
    event: Vec<EventType>,
    timestamp: Vec<i64>,
    context: Context,
}

impl InteractionsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder with room for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            user: Vec::with_capacity(n),
            item: Vec::with_capacity(n),
            rating: Vec::with_capacity(n),
            weight: Vec::with_capacity(n),
            event: Vec::with_capacity(n),
            timestamp: Vec::with_capacity(n),
            ..Self::default()
        }
    }

    /// Appends one event and returns its row number.
    pub fn push(&mut self, row: Interaction<'_>) -> u32 {
        let user = self.users.intern(row.user);
        let item = self.items.intern(row.item);
        self.push_indexed(user, item, row.rating, row.weight, row.event, row.timestamp)
    }

    /// Appends one event whose ids are already interned with [`Self::intern_user`] / [`Self::intern_item`].
    pub fn push_indexed(
        &mut self,
        user: u32,
        item: u32,
        rating: Option<f32>,
        weight: f32,
        event: EventType,
        timestamp: Option<i64>,
    ) -> u32 {
        let row = self.user.len() as u32;
        self.user.push(user);
        self.item.push(item);
        self.rating.push(rating.unwrap_or(f32::NAN));
        self.weight.push(weight);
        self.event.push(event);
        self.timestamp.push(timestamp.unwrap_or(NO_TIMESTAMP));
        row
    }

    /// Interns a user id without adding an event.
    pub fn intern_user(&mut self, id: &str) -> u32 {
        self.users.intern(id)
    }

    /// Interns an item id without adding an event.
    pub fn intern_item(&mut self, id: &str) -> u32 {
        self.items.intern(id)
    }

    /// The event type for a name: built-in kinds by name, anything else as a custom kind.
    pub fn event_type(&mut self, name: &str) -> EventType {
        if let Some(builtin) = EventType::builtin(name) {
            return builtin;
        }
        let name = name.trim();
        if let Some(pos) = self.custom_events.iter().position(|n| n == name) {
            return EventType::Custom(pos as u16);
        }
        self.custom_events.push(name.to_owned());
        EventType::Custom((self.custom_events.len() - 1) as u16)
    }

    /// Attaches a context value to a row pushed earlier (rows must be given in non-decreasing order).
    pub fn push_context(&mut self, row: u32, key: &str, value: &str) {
        let key = self.context.keys.intern(key);
        let value = self.context.values.intern(value);
        self.context.entries.push((row, key, value));
    }

    /// Number of rows so far.
    pub fn len(&self) -> usize {
        self.user.len()
    }

    /// True when no row was pushed.
    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
    }

    /// Finishes the log.
    pub fn build(mut self) -> Interactions {
        self.context.entries.sort_by_key(|e| e.0);
        Interactions {
            users: Arc::new(self.users),
            items: Arc::new(self.items),
            custom_events: Arc::new(self.custom_events),
            user: self.user,
            item: self.item,
            rating: self.rating,
            weight: self.weight,
            event: self.event,
            timestamp: self.timestamp,
            context: Arc::new(self.context),
        }
    }
}

/// A columnar interaction log with shared id maps.
#[derive(Debug, Clone)]
pub struct Interactions {
    users: Arc<IdMap>,
    items: Arc<IdMap>,
    custom_events: Arc<Vec<String>>,
    user: Vec<u32>,
    item: Vec<u32>,
    rating: Vec<f32>,
    weight: Vec<f32>,
    event: Vec<EventType>,
    timestamp: Vec<i64>,
    /// Row context; entries refer to rows of this log (subsets renumber them).
    context: Arc<Context>,
}

impl Interactions {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.user.len()
    }

    /// True when the log is empty.
    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
    }

    /// Size of the user universe (all users of the originating dataset, not only those in this subset).
    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    /// Size of the item universe (the catalog).
    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    pub fn user_ids(&self) -> &Arc<IdMap> {
        &self.users
    }

    pub fn item_ids(&self) -> &Arc<IdMap> {
        &self.items
    }

    pub fn users(&self) -> &[u32] {
        &self.user
    }

    pub fn items(&self) -> &[u32] {
        &self.item
    }

    /// Ratings, `NaN` where a row has none.
    pub fn ratings(&self) -> &[f32] {
        &self.rating
    }

    pub fn weights(&self) -> &[f32] {
        &self.weight
    }

    pub fn events(&self) -> &[EventType] {
        &self.event
    }

    /// Unix seconds, [`NO_TIMESTAMP`] where a row has none.
    pub fn timestamps(&self) -> &[i64] {
        &self.timestamp
    }

    /// Mutable ratings, for normalisation steps.
    pub fn ratings_mut(&mut self) -> &mut [f32] {
        &mut self.rating
    }

    /// Mutable weights, for weighting and decay steps.
    pub fn weights_mut(&mut self) -> &mut [f32] {
        &mut self.weight
    }

    /// Names of custom event kinds, indexed by [`EventType::Custom`].
    pub fn custom_event_names(&self) -> &[String] {
        &self.custom_events
    }

    /// Display name of an event type.
    pub fn event_name(&self, event: EventType) -> String {
        match event {
            EventType::Custom(i) => self
                .custom_events
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| format!("custom{i}")),
            other => other.builtin_name().unwrap_or("unknown").to_owned(),
        }
    }

    /// Row context of the dataset this log was built from (see [`Context`]).
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// True when every row has an explicit rating.
    pub fn has_ratings(&self) -> bool {
        !self.rating.is_empty() && self.rating.iter().all(|r| !r.is_nan())
    }

    /// True when every row has a timestamp.
    pub fn has_timestamps(&self) -> bool {
        self.timestamp.iter().all(|&t| t != NO_TIMESTAMP)
    }

    /// Smallest and largest rating, if any row has one.
    pub fn rating_range(&self) -> Option<(f32, f32)> {
        // `min` and `max` skip NaN (an event without a rating) unless both sides are NaN.
        let (lo, hi) = self
            .rating
            .iter()
            .fold((f32::NAN, f32::NAN), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        (!lo.is_nan()).then_some((lo, hi))
    }

    /// A new log with the given rows in the given order; id maps are shared, not copied, and
    /// row context follows its rows.
    pub fn subset(&self, rows: &[u32]) -> Interactions {
        let pick_u32 = |col: &[u32]| rows.iter().map(|&r| col[r as usize]).collect::<Vec<_>>();
        let pick_f32 = |col: &[f32]| rows.iter().map(|&r| col[r as usize]).collect::<Vec<_>>();
        let context = if self.context.entries.is_empty() {
            Arc::clone(&self.context)
        } else {
            let mut entries = Vec::new();
            for (new_row, &old_row) in rows.iter().enumerate() {
                let start = self.context.entries.partition_point(|e| e.0 < old_row);
                for e in self.context.entries[start..]
                    .iter()
                    .take_while(|e| e.0 == old_row)
                {
                    entries.push((new_row as u32, e.1, e.2));
                }
            }
            entries.sort_by_key(|e| e.0);
            Arc::new(Context {
                keys: self.context.keys.clone(),
                values: self.context.values.clone(),
                entries,
            })
        };
        Interactions {
            users: Arc::clone(&self.users),
            items: Arc::clone(&self.items),
            custom_events: Arc::clone(&self.custom_events),
            user: pick_u32(&self.user),
            item: pick_u32(&self.item),
            rating: pick_f32(&self.rating),
            weight: pick_f32(&self.weight),
            event: rows.iter().map(|&r| self.event[r as usize]).collect(),
            timestamp: rows.iter().map(|&r| self.timestamp[r as usize]).collect(),
            context,
        }
    }

    /// Rows whose rating is at least `threshold`, turned into implicit positives (rating kept, weight 1).
    pub fn positives(&self, threshold: f32) -> Interactions {
        let rows: Vec<u32> = (0..self.len() as u32)
            .filter(|&r| self.rating[r as usize] >= threshold)
            .collect();
        let mut subset = self.subset(&rows);
        subset.weight.iter_mut().for_each(|w| *w = 1.0);
        subset
    }

    /// Compressed by user: row `u` lists the items of user `u` (sorted by item) and the log rows.
    pub fn by_user(&self) -> CsMatrix {
        CsMatrix::build(self.users.len(), self.items.len(), &self.user, &self.item)
    }

    /// Compressed by item: row `i` lists the users of item `i` (sorted by user) and the log rows.
    pub fn by_item(&self) -> CsMatrix {
        CsMatrix::build(self.items.len(), self.users.len(), &self.item, &self.user)
    }

    /// Number of rows per user (over the whole user universe).
    pub fn user_counts(&self) -> Vec<u32> {
        count(&self.user, self.users.len())
    }

    /// Number of rows per item (over the whole catalog).
    pub fn item_counts(&self) -> Vec<u32> {
        count(&self.item, self.items.len())
    }

    /// A 64-bit fingerprint of the log's content, to record which data a model was trained on.
    pub fn fingerprint(&self) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let mut eat = |x: u64| h = crate::rng::mix64(h ^ x).wrapping_add(0x9E37_79B9_7F4A_7C15);
        eat(self.len() as u64);
        for r in 0..self.len() {
            eat((self.user[r] as u64) << 32 | self.item[r] as u64);
            eat(self.rating[r].to_bits() as u64 ^ (self.weight[r].to_bits() as u64) << 32);
            eat(self.timestamp[r] as u64);
        }
        h
    }
}

fn count(ids: &[u32], n: usize) -> Vec<u32> {
    let mut counts = vec![0u32; n];
    for &id in ids {
        counts[id as usize] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Interactions {
        let mut b = InteractionsBuilder::new();
        b.push(Interaction::rating("u1", "a", 5.0, Some(10)));
        b.push(Interaction::rating("u2", "b", 3.0, Some(5)));
        let r = b.push(Interaction::rating("u1", "b", 4.0, Some(20)));
        b.push_context(r, "device", "mobile");
        let purchase = b.event_type("purchase");
        let custom = b.event_type("wishlist");
        b.push(Interaction::implicit("u3", "c", purchase, None));
        b.push(Interaction::implicit("u3", "a", custom, None));
        b.build()
    }

    #[test]
    fn builds_columns_and_maps() {
        let log = sample();
        assert_eq!(log.len(), 5);
        assert_eq!((log.n_users(), log.n_items()), (3, 3));
        assert_eq!(log.users(), &[0, 1, 0, 2, 2]);
        assert_eq!(log.items(), &[0, 1, 1, 2, 0]);
        assert!(!log.has_ratings());
        assert!(!log.has_timestamps());
        assert_eq!(log.rating_range(), Some((3.0, 5.0)));
        // Rows without a rating have none to give, whichever comes first.
        assert_eq!(log.subset(&[3, 4]).rating_range(), None);
        assert_eq!(log.subset(&[3, 1, 4]).rating_range(), Some((3.0, 3.0)));
        assert_eq!(log.subset(&[]).rating_range(), None);
        assert_eq!(log.event_name(log.events()[4]), "wishlist");
        assert_eq!(log.events()[3], EventType::Purchase);
    }

    #[test]
    fn subsets_share_maps_and_remap_context() {
        let log = sample();
        let sub = log.subset(&[2, 0]);
        assert!(Arc::ptr_eq(sub.item_ids(), log.item_ids()));
        assert_eq!(sub.items(), &[1, 0]);
        assert_eq!(sub.context().entries, vec![(0, 0, 0)]);
        let pos = log.positives(4.0);
        assert_eq!(pos.len(), 2);
        assert_eq!(pos.n_items(), 3, "the catalog survives filtering");
    }

    #[test]
    fn compressed_views_agree_with_log() {
        let log = sample();
        let by_user = log.by_user();
        assert_eq!(by_user.row(0), &[0, 1]);
        assert_eq!(by_user.row_entries(0), &[0, 2]);
        let by_item = log.by_item();
        assert_eq!(by_item.row(0), &[0, 2]);
        assert_eq!(by_item.row(1), &[0, 1]);
        assert_ne!(log.fingerprint(), log.subset(&[0, 1]).fingerprint());
    }
}
