//! The Unix-second timestamps Kindred accepts from outside. An event dated at the end of time
//! would become "the newest" for every recency feature (one such event once collapsed the
//! trending list to a single item), and `i64::MIN` is the log's own "no timestamp" marker, so
//! events are refused outside a sane range, configurable where data is taken in. An optional
//! horizon also refuses events dated more than a tolerance after the moment they arrive (a
//! client clock in the future, or milliseconds that happen to fit the range).

use serde::{Deserialize, Serialize};

/// 1970-01-01T00:00:00Z to 2100-01-01T00:00:00Z by default, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimestampRange {
    pub min: i64,
    pub max: i64,
    /// When set, a timestamp more than this many seconds after the clock at the check is
    /// refused too (off by default: a backfill or a simulator may date events ahead).
    pub max_future_seconds: Option<i64>,
}

impl Default for TimestampRange {
    fn default() -> Self {
        Self {
            min: 0,
            max: 4_102_444_800,
            max_future_seconds: None,
        }
    }
}

/// The system clock in Unix seconds (0 if it is before 1970): the one reading of "now" for
/// timestamp checks.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl TimestampRange {
    /// Why `timestamp` is refused, or `None` when it is in range. A value that would be in range
    /// divided by 1000 is said to look like milliseconds.
    pub fn refusal(&self, timestamp: i64) -> Option<String> {
        self.refusal_at(timestamp, now)
    }

    /// [`TimestampRange::refusal`] with the clock given (read only when a horizon is set).
    pub fn refusal_at(&self, timestamp: i64, clock: impl FnOnce() -> i64) -> Option<String> {
        if (self.min..=self.max).contains(&timestamp) {
            let ahead = self.max_future_seconds?;
            let horizon = clock().saturating_add(ahead);
            return (timestamp > horizon).then(|| {
                format!(
                    "timestamp {timestamp} is {} s in the future, more than the accepted {ahead} s",
                    timestamp - (horizon - ahead)
                )
            });
        }
        let hint = if timestamp > self.max && (self.min..=self.max).contains(&(timestamp / 1000)) {
            " (it looks like milliseconds: timestamps are Unix seconds)"
        } else {
            ""
        };
        Some(format!(
            "timestamp {timestamp} is outside the accepted range [{}, {}] of Unix seconds{hint}",
            self.min, self.max
        ))
    }

    /// `min <= max`, and the "no timestamp" marker outside the range.
    pub fn validate(&self) -> Result<(), String> {
        if self.min > self.max {
            return Err(format!(
                "timestamps: min {} is above max {}",
                self.min, self.max
            ));
        }
        if self.max_future_seconds.is_some_and(|s| s < 0) {
            return Err("timestamps: max_future_seconds must be >= 0".into());
        }
        if self.min == i64::MIN {
            return Err(
                "timestamps: min must be above i64::MIN (the \"no timestamp\" marker)".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::TimestampRange;

    #[test]
    fn refuses_the_ends_of_time_and_names_milliseconds() {
        let range = TimestampRange::default();
        assert_eq!(range.refusal(1_700_000_000), None);
        assert_eq!(range.refusal(0), None);
        assert!(range.refusal(-1).is_some());
        assert!(range.refusal(i64::MIN).is_some());
        let end = range.refusal(i64::MAX).unwrap_or_default();
        assert!(
            end.contains("outside the accepted range") && !end.contains("milliseconds"),
            "{end}"
        );
        let millis = range.refusal(1_700_000_000_000).unwrap_or_default();
        assert!(millis.contains("looks like milliseconds"), "{millis}");
        assert!(range.validate().is_ok());
        let horizon = TimestampRange {
            max_future_seconds: Some(60),
            ..TimestampRange::default()
        };
        assert_eq!(horizon.refusal_at(1_000_060, || 1_000_000), None);
        let ahead = horizon
            .refusal_at(1_000_061, || 1_000_000)
            .unwrap_or_default();
        assert!(ahead.contains("61 s in the future"), "{ahead}");
        assert!(horizon
            .refusal_at(-5, || 0)
            .unwrap_or_default()
            .contains("outside"));
        assert!(TimestampRange {
            max_future_seconds: Some(-1),
            ..TimestampRange::default()
        }
        .validate()
        .is_err());
        assert!(TimestampRange {
            min: 5,
            max: 4,
            ..TimestampRange::default()
        }
        .validate()
        .is_err());
        assert!(TimestampRange {
            min: i64::MIN,
            max: 4,
            max_future_seconds: None,
        }
        .validate()
        .is_err());
    }
}
