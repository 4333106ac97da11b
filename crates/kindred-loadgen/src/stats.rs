//! What a run measured: latencies (kept whole, summarised by nearest-rank percentiles),
//! answers by status, and the generator's own CPU time.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

/// Every latency of a run, in microseconds. A few hundred thousand `u32`s are cheaper to keep
/// and sort at the end than a histogram is to get right.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    micros: Vec<u32>,
}

impl Latencies {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            micros: Vec::with_capacity(n),
        }
    }

    pub fn record(&mut self, latency: Duration) {
        self.micros
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn merge(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// Count, mean and the p50/p90/p99/p99.9/max in milliseconds (nearest rank: the smallest
    /// latency that at least that share of requests did not exceed).
    pub fn summary(&mut self) -> Value {
        self.micros.sort_unstable();
        let n = self.micros.len();
        if n == 0 {
            return json!({"count": 0});
        }
        let ms = |micros: u32| f64::from(micros) / 1000.0;
        let rank = |q: f64| {
            let index = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
            ms(self.micros[index])
        };
        let mean = self.micros.iter().map(|&m| f64::from(m)).sum::<f64>() / n as f64 / 1000.0;
        json!({
            "count": n,
            "mean": round3(mean),
            "p50": rank(0.50),
            "p90": rank(0.90),
            "p99": rank(0.99),
            "p99.9": rank(0.999),
            "max": ms(self.micros[n - 1]),
        })
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Answers by HTTP status.
#[derive(Debug, Default, Clone)]
pub struct StatusCounts(BTreeMap<u16, u64>);

impl StatusCounts {
    pub fn add(&mut self, status: u16) {
        *self.0.entry(status).or_default() += 1;
    }

    pub fn merge(&mut self, other: &StatusCounts) {
        for (&status, &count) in &other.0 {
            *self.0.entry(status).or_default() += count;
        }
    }

    pub fn ok(&self) -> u64 {
        self.0.range(200..300).map(|(_, c)| c).sum()
    }

    /// Everything outside 2xx, keyed by status.
    pub fn non_2xx(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .0
            .iter()
            .filter(|(s, _)| !(200..300).contains(*s))
            .map(|(s, c)| (s.to_string(), json!(c)))
            .collect();
        Value::Object(map)
    }

    pub fn all(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .0
            .iter()
            .map(|(s, c)| (s.to_string(), json!(c)))
            .collect();
        Value::Object(map)
    }
}

/// CPU seconds (user + system) this process has used so far, from `/proc/self/stat`
/// (Linux; `None` elsewhere). Clock ticks are taken as 100 per second, the Linux default.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; fields after its closing parenthesis are plain.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // Fields 14 (utime) and 15 (stime) of the whole line are 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank_on_a_hand_example() {
        let mut latencies = Latencies::default();
        // 1 ms .. 100 ms in scrambled order.
        for i in 0..100u64 {
            latencies.record(Duration::from_millis((i * 37) % 100 + 1));
        }
        let s = latencies.summary();
        assert_eq!(s["count"], 100);
        assert_eq!(s["p50"], 50.0);
        assert_eq!(s["p90"], 90.0);
        assert_eq!(s["p99"], 99.0);
        assert_eq!(s["p99.9"], 100.0);
        assert_eq!(s["max"], 100.0);
        assert_eq!(s["mean"], 50.5);
    }

    #[test]
    fn small_samples_and_empty() {
        let mut one = Latencies::default();
        one.record(Duration::from_micros(1500));
        let s = one.summary();
        assert_eq!(
            (s["p50"].as_f64(), s["max"].as_f64()),
            (Some(1.5), Some(1.5))
        );
        assert_eq!(Latencies::default().summary()["count"], 0);
        // Three values: p50 is the 2nd (ceil(1.5) = 2), p90 and p99 the 3rd.
        let mut three = Latencies::default();
        for ms in [3, 1, 2] {
            three.record(Duration::from_millis(ms));
        }
        let s = three.summary();
        assert_eq!(
            (s["p50"].as_f64(), s["p90"].as_f64()),
            (Some(2.0), Some(3.0))
        );
    }

    #[test]
    fn statuses_split_into_ok_and_the_rest() {
        let mut a = StatusCounts::default();
        for s in [200, 200, 201, 503, 404] {
            a.add(s);
        }
        let mut b = StatusCounts::default();
        b.add(503);
        a.merge(&b);
        assert_eq!(a.ok(), 3);
        assert_eq!(a.non_2xx(), json!({"404": 1, "503": 2}));
    }

    #[test]
    fn cpu_time_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            let cpu = process_cpu_seconds().unwrap();
            assert!(cpu >= 0.0);
        }
    }
}
