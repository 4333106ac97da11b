//! `GET /dashboard/quality`: data quality of the recent feedback: events per day, duplicates,
//! bot-like users, event types and missing or invalid values, computed with
//! [`kindred_stats::monitoring::quality_counters`] over the newest events of the store's log.
//!
//! The work is bounded: at most [`MAX_EVENTS`] of the newest events (by log position) are read,
//! and of those the ones in the [`WINDOW_DAYS`] days up to the latest event's timestamp are
//! counted. The page says how many were read and whether the bound cut the window short.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use kindred_chart::{BarChart, BarSeries};
use kindred_core::EventType;
use kindred_data::quality::TimestampChecks;
use kindred_stats::monitoring::{
    quality_counters, FeedbackEvent, QualityConfig, QualityCounters, TimeSpan,
};
use kindred_store::StoredFeedback;

use super::page::{self, cell, escape, num, table, Nav};
use super::Dashboard;
use crate::auth::Scope;

/// Most events read from the store for the page.
pub const MAX_EVENTS: usize = 200_000;
/// Days counted, ending at the latest event.
pub const WINDOW_DAYS: i64 = 7;
/// Bot-like users listed by name.
const MAX_LISTED_BOTS: usize = 20;

/// What the page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityView {
    pub counters: QualityCounters,
    /// Event type name -> events in the window.
    pub event_types: BTreeMap<String, u64>,
    /// Day number (days since 1970-01-01) -> events, for every day of the window.
    pub per_day: Vec<(i64, u64)>,
    /// The flagged users with the most events, most first.
    pub bot_users: Vec<(String, u64)>,
    /// Events read from the store (before the window cut).
    pub read: usize,
    /// Of the events read: (dated beyond the clock plus the tolerance, dated before the epoch).
    pub suspect_timestamps: (usize, usize),
    pub checks: TimestampChecks,
}

/// The checks the page applies: the server's `[timestamps]` (`min` is the epoch; the horizon
/// is `max_future_seconds`, a day when unset) at `now`.
pub fn timestamp_checks(range: &kindred_core::TimestampRange, now: i64) -> TimestampChecks {
    TimestampChecks {
        now,
        future_tolerance_seconds: range.max_future_seconds.unwrap_or(86_400),
        epoch: Some(range.min),
    }
}

/// The quality view of these events (any order), over the `days` days up to the latest one;
/// `None` without events.
pub fn quality_view(
    feedback: &[StoredFeedback],
    days: i64,
    checks: &TimestampChecks,
) -> Option<QualityView> {
    let latest = feedback.iter().map(|f| f.feedback.timestamp).max()?;
    let last_day = latest.div_euclid(86_400);
    let window = TimeSpan {
        start: (last_day - days + 1) * 86_400,
        end: (last_day + 1) * 86_400,
    };
    let mut users: HashMap<&str, u32> = HashMap::new();
    let mut user_names: Vec<&str> = Vec::new();
    let mut items: HashMap<&str, u32> = HashMap::new();
    let mut custom: HashMap<&str, u16> = HashMap::new();
    let mut event_ids: HashMap<&str, u64> = HashMap::new();
    let mut event_types: BTreeMap<String, u64> = BTreeMap::new();
    let mut missing: BTreeMap<String, u64> = BTreeMap::new();
    let mut invalid: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_day: BTreeMap<i64, u64> =
        (last_day - days + 1..=last_day).map(|d| (d, 0)).collect();
    let mut events = Vec::with_capacity(feedback.len());
    for f in feedback.iter().map(|s| &s.feedback) {
        if !window.contains(f.timestamp) {
            continue;
        }
        let next = users.len() as u32;
        let user = *users.entry(f.user.as_str()).or_insert_with(|| {
            user_names.push(f.user.as_str());
            next
        });
        let next = items.len() as u32;
        let item = *items.entry(f.item.as_str()).or_insert(next);
        let event = EventType::builtin(&f.event_type).unwrap_or_else(|| {
            let next = custom.len() as u16;
            EventType::Custom(*custom.entry(f.event_type.as_str()).or_insert(next))
        });
        let event_id = f.event_id.as_deref().map(|id| {
            let next = event_ids.len() as u64;
            *event_ids.entry(id).or_insert(next)
        });
        *event_types.entry(f.event_type.clone()).or_insert(0) += 1;
        *per_day.entry(f.timestamp.div_euclid(86_400)).or_insert(0) += 1;
        // A rating without a value says nothing; a non-finite value is unusable.
        if event == EventType::Rating && f.value.is_none() {
            *missing.entry("value".into()).or_insert(0) += 1;
        }
        if f.value.is_some_and(|v| !v.is_finite()) {
            *invalid.entry("value".into()).or_insert(0) += 1;
        }
        events.push(FeedbackEvent {
            user,
            item,
            event,
            value: f.value,
            timestamp: f.timestamp,
            event_id,
        });
    }
    let config = QualityConfig::default();
    let counters = quality_counters(&events, window, &config, missing, invalid);
    let mut per_user = vec![0u64; user_names.len()];
    events.iter().for_each(|e| per_user[e.user as usize] += 1);
    let mut bot_users: Vec<(String, u64)> = per_user
        .iter()
        .enumerate()
        .filter(|(_, &c)| c as f64 > counters.bot_threshold)
        .map(|(u, &c)| (user_names[u].to_owned(), c))
        .collect();
    bot_users.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    bot_users.truncate(MAX_LISTED_BOTS);
    Some(QualityView {
        counters,
        event_types,
        per_day: per_day.into_iter().collect(),
        bot_users,
        read: feedback.len(),
        suspect_timestamps: checks.flagged(feedback.iter().map(|f| f.feedback.timestamp)),
        checks: *checks,
    })
}

/// The page body.
pub fn body(view: Option<&QualityView>, bounded: bool) -> String {
    let Some(view) = view else {
        return "<section id=\"quality\"><p class=\"note\">No feedback in the store yet.</p></section>"
            .into();
    };
    let c = &view.counters;
    let card = |id: &str, label: &str, value: String| {
        format!(
            "<div class=\"card\" id=\"{id}\"><b>{}</b>{}</div>",
            escape(&value),
            escape(label)
        )
    };
    let mut out = format!(
        "<section id=\"quality\"><h2>Last {WINDOW_DAYS} days to the latest event</h2><div class=\"cards\">{}{}{}{}{}{}</div>\
         <p class=\"note\">{} to {}; {} newest events read{}.</p></section>",
        card("q-events", "events", c.events.to_string()),
        card("q-per-day", "events per day", format!("{:.1}", c.events_per_day)),
        card(
            "q-duplicates",
            "duplicates",
            format!("{} ({:.2}%)", c.duplicate_events, 100.0 * c.duplicate_rate)
        ),
        card(
            "q-bots",
            "bot-like users",
            format!("{} ({:.1}% of events)", c.bot_users, 100.0 * c.bot_event_share)
        ),
        card(
            "q-missing",
            "missing values",
            c.missing_fields.values().sum::<u64>().to_string()
        ),
        card(
            "q-invalid",
            "invalid values",
            c.invalid_fields.values().sum::<u64>().to_string()
        ),
        page::date_time(c.window.start),
        page::date_time(c.window.end),
        view.read,
        if bounded {
            format!(" (the read limit of {MAX_EVENTS}: older events of the window are not counted)")
        } else {
            String::new()
        }
    );
    let chart = BarChart {
        title: "Feedback events per day".into(),
        x_label: "day (UTC)".into(),
        y_label: "events".into(),
        categories: view
            .per_day
            .iter()
            .map(|(d, _)| page::date(*d)[5..].to_owned())
            .collect(),
        series: vec![BarSeries {
            name: "events".into(),
            values: view.per_day.iter().map(|(_, n)| Some(*n as f64)).collect(),
            intervals: vec![None; view.per_day.len()],
            color: 0,
        }],
    };
    if let Some(svg) = chart.render().map(|c| c.svg) {
        out.push_str(&format!(
            "<section><figure id=\"quality-per-day\">{svg}</figure></section>"
        ));
    }
    let type_rows: Vec<Vec<String>> = view
        .event_types
        .iter()
        .map(|(name, n)| vec![cell(name), num(n)])
        .collect();
    out.push_str(&format!(
        "<section id=\"event-types\"><h2>Event types</h2>{}</section>",
        table(&["event type", "events"], &type_rows)
    ));
    let bot_rows: Vec<Vec<String>> = view
        .bot_users
        .iter()
        .map(|(user, n)| vec![cell(user), num(n)])
        .collect();
    out.push_str(&format!(
        "<section id=\"bot-users\"><h2>Bot-like users</h2><p class=\"note\">More than {:.0} events \
         in the window (a robust outlier limit on events per user).</p>{}</section>",
        c.bot_threshold,
        if bot_rows.is_empty() {
            "<p>None.</p>".to_owned()
        } else {
            table(&["user", "events"], &bot_rows)
        }
    ));
    let (future, early) = view.suspect_timestamps;
    out.push_str(&format!(
        "<section id=\"timestamps\"><h2>Suspect timestamps</h2>{}<p class=\"note\">Of the \
         {} events read: dated more than {} s after {} (<code>[timestamps] \
         max_future_seconds</code>, a day when unset), or before {} (<code>[timestamps] \
         min</code>). An event dated ahead moves the window above to its date.</p></section>",
        table(
            &["problem", "events"],
            &[
                vec![cell("in the future"), num(future)],
                vec![cell("before the epoch"), num(early)],
            ]
        ),
        view.read,
        view.checks.future_tolerance_seconds,
        page::date_time(view.checks.now),
        view.checks
            .epoch
            .map_or_else(|| "-".to_owned(), page::date_time),
    ));
    let field_rows: Vec<Vec<String>> = c
        .missing_fields
        .iter()
        .map(|(f, n)| vec![cell("missing"), cell(f), num(n)])
        .chain(
            c.invalid_fields
                .iter()
                .map(|(f, n)| vec![cell("invalid"), cell(f), num(n)]),
        )
        .collect();
    out.push_str(&format!(
        "<section id=\"fields\"><h2>Missing and invalid values</h2>{}</section>",
        if field_rows.is_empty() {
            "<p>None: every rating has a value and every value is finite.</p>".to_owned()
        } else {
            table(&["problem", "field", "events"], &field_rows)
        }
    ));
    out
}

pub async fn page(State(dash): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Err(denied) = dash.authorize(&headers, Scope::Read) {
        return denied;
    }
    let store = dash.app.serving.store();
    let total = match store.counts().await {
        Ok(c) => c.feedback,
        Err(e) => return page::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    // Log positions grow by one per stored event, so starting this far back reads the newest
    // events (a few fewer if positions have gaps).
    let from = (total as i64 - MAX_EVENTS as i64).max(0);
    let feedback = match store.feedback_after(from, MAX_EVENTS).await {
        Ok(f) => f,
        Err(e) => return page::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let bounded = total as usize > MAX_EVENTS;
    let checks = timestamp_checks(
        &dash.app.serving.config().timestamps,
        kindred_serving::unix_now(),
    );
    let html = tokio::task::spawn_blocking(move || {
        body(
            quality_view(&feedback, WINDOW_DAYS, &checks).as_ref(),
            bounded,
        )
    })
    .await;
    match html {
        Ok(html) => page::respond(StatusCode::OK, "Data quality", Nav::Quality, &html),
        Err(e) => page::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_store::Feedback;

    fn fb(
        seq: i64,
        user: &str,
        item: &str,
        kind: &str,
        value: Option<f32>,
        ts: i64,
        id: Option<&str>,
    ) -> StoredFeedback {
        StoredFeedback {
            seq,
            feedback: Feedback {
                user: user.into(),
                item: item.into(),
                event_type: kind.into(),
                value,
                timestamp: ts,
                event_id: id.map(str::to_owned),
            },
        }
    }

    #[test]
    fn counts_of_a_hand_log() {
        let day = 86_400;
        let t = 20_000 * day; // 2024-10-03 00:00 UTC
        let log = vec![
            fb(1, "a", "x", "click", None, t + 10, Some("e1")),
            fb(2, "a", "x", "click", None, t + 10, Some("e1")), // duplicate (same key and id)
            fb(3, "b<", "y", "rating", None, t + 20, None),     // rating without a value
            fb(4, "b<", "z", "rating", Some(4.0), t - day, None),
            fb(5, "c", "z", "wishlist", None, t - 2 * day, None),
            fb(6, "d", "z", "view", None, t - 30 * day, None), // outside the 7 days
        ];
        let view = quality_view(&log, 7, &TimestampChecks::at_now()).unwrap();
        let c = &view.counters;
        assert_eq!(c.events, 5);
        assert_eq!(c.users, 3);
        assert_eq!(c.items, 3);
        assert_eq!(c.duplicate_events, 1);
        assert!((c.duplicate_rate - 0.2).abs() < 1e-12);
        assert_eq!(c.missing_fields.get("value"), Some(&1));
        assert!(c.invalid_fields.is_empty());
        assert_eq!(c.window.start, t - 6 * day);
        assert_eq!(c.window.end, t + day);
        assert_eq!(view.per_day.len(), 7);
        assert_eq!(view.per_day[6], (20_000, 3));
        assert_eq!(view.per_day[5], (19_999, 1));
        assert_eq!(view.per_day[4], (19_998, 1));
        assert_eq!(view.event_types.get("click"), Some(&2));
        assert_eq!(view.event_types.get("wishlist"), Some(&1));
        assert_eq!(view.event_types.get("view"), None);
        assert!(view.bot_users.is_empty(), "nobody has more than 50 events");
        assert_eq!(view.read, 6);
        let html = body(Some(&view), false);
        assert!(html.contains("id=\"quality-per-day\"><svg"));
        assert!(html.contains("<td>wishlist</td>"));
        assert!(html.contains("<td>missing</td><td>value</td>"));
        assert!(quality_view(&[], 7, &TimestampChecks::at_now()).is_none());
        assert!(body(None, false).contains("No feedback"));
        // Seen from the day before `t` with an hour of tolerance and an epoch 3 days before
        // `t`: the 3 events of day `t` are ahead, 1 event is before the epoch.
        let range = kindred_core::TimestampRange {
            min: t - 3 * day,
            max_future_seconds: Some(3_600),
            ..Default::default()
        };
        let view = quality_view(&log, 7, &timestamp_checks(&range, t - day)).unwrap();
        assert_eq!(view.suspect_timestamps, (3, 1));
        let html = body(Some(&view), false);
        assert!(
            html.contains("<td>in the future</td><td class=\"num\">3</td>")
                && html.contains("<td>before the epoch</td><td class=\"num\">1</td>"),
            "{html}"
        );
    }

    #[test]
    fn a_bot_like_user_is_listed_escaped() {
        let t = 20_000 * 86_400;
        let mut log: Vec<StoredFeedback> = (0..40)
            .map(|u| fb(u, &format!("u{u}"), "x", "click", None, t + u, None))
            .collect();
        log.extend((0..300).map(|n| fb(100 + n, "<bot>", "y", "click", None, t + n, None)));
        let view = quality_view(&log, 7, &TimestampChecks::at_now()).unwrap();
        assert_eq!(view.counters.bot_users, 1);
        assert_eq!(view.bot_users, [("<bot>".to_owned(), 300)]);
        let html = body(Some(&view), true);
        assert!(html.contains("<td>&lt;bot&gt;</td>") && !html.contains("<bot>"));
        assert!(html.contains("read limit"));
    }
}
