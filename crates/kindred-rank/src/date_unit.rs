//! The unit of a numeric item date column (Unix seconds or a calendar year), shared by the
//! filters' date window, the fallback's `latest` order and freshness.

use serde::{Deserialize, Serialize};

/// Unit of a numeric item date column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateUnit {
    /// Unix seconds.
    #[default]
    UnixSeconds,
    /// A calendar year (MovieLens `year`), read as 1 January 00:00 UTC of that year.
    Year,
}

impl DateUnit {
    /// `value` in this unit as Unix seconds (NaN stays NaN).
    pub fn to_unix_seconds(self, value: f64) -> f64 {
        match self {
            DateUnit::UnixSeconds => value,
            // Mean Gregorian year; exact to within a day over the years a catalog spans.
            DateUnit::Year => (value - 1970.0) * SECONDS_PER_YEAR,
        }
    }
}

const SECONDS_PER_YEAR: f64 = 365.2425 * 86_400.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn year_dates_are_unix_seconds() {
        assert_eq!(DateUnit::Year.to_unix_seconds(1970.0), 0.0);
        // 2000-01-01 is 946 684 800; the mean-year conversion is within a day of it.
        let y2000 = DateUnit::Year.to_unix_seconds(2000.0);
        assert!((y2000 - 946_684_800.0).abs() < 86_400.0, "{y2000}");
        assert_eq!(DateUnit::UnixSeconds.to_unix_seconds(5.0), 5.0);
    }
}
