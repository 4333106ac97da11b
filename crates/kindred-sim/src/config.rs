//! What a simulation run does: which server, how many steps, how fast the simulated clock
//! runs, organic traffic, and the drift scenario switched on at a given step.

use std::time::Duration;

use kindred_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Timestamps of the events sent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// No timestamp: the server stamps each event with its own clock.
    Server,
    /// Step `s` happens at `start + s * seconds_per_step` (Unix seconds), so a test can
    /// simulate hours in seconds.
    Simulated { start: i64, seconds_per_step: f64 },
}

/// A change in the world switched on at [`SimConfig::drift_start_step`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "scenario")]
pub enum Drift {
    /// Nothing changes (the control run).
    None,
    /// A seeded `share` of the items exchange their popularity and bias among themselves:
    /// organic events and clicks follow the new appeal from the start step on.
    PopularityShift { share: f64 },
    /// At the start step the world's late items (synthetic `late_items`) are added to the
    /// catalog (`POST /v1/items`, dated then); before it users never find them on their own.
    ItemArrival,
    /// From the start step every user's taste moves a `share` of the way to a fresh random one
    /// (`sqrt(1 - share) * taste + sqrt(share) * new`): clicks and organic events follow it.
    TasteDrift { share: f64 },
    /// At the start step `bots` bot users (`simbot0`, ...) each send `events_per_bot` click
    /// events spread over `seconds` simulated seconds, on random items or all on one item.
    BotWave {
        bots: usize,
        events_per_bot: usize,
        seconds: i64,
        single_item: bool,
    },
}

impl Drift {
    /// Parses `none`, `popularity-shift[:share=0.5]`, `item-arrival`, `taste-drift[:share=0.5]`
    /// or `bot-wave[:bots=5,events=300,seconds=60,target=random|single]`.
    pub fn parse(spec: &str) -> Result<Self> {
        let (name, params) = spec.split_once(':').unwrap_or((spec, ""));
        let bad = |message: String| Error::spec("drift scenario", spec, message);
        let mut pairs = Vec::new();
        for part in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("`{part}` is not key=value")))?;
            pairs.push((k.trim(), v.trim()));
        }
        let number = |key: &str, value: &str| {
            value
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| {
                    bad(format!(
                        "`{key}` must be a non-negative number, got `{value}`"
                    ))
                })
        };
        match name.trim() {
            "none" => match pairs.first() {
                None => Ok(Drift::None),
                Some((k, _)) => Err(bad(format!("`none` takes no parameters, got `{k}`"))),
            },
            "item-arrival" => match pairs.first() {
                None => Ok(Drift::ItemArrival),
                Some((k, _)) => Err(bad(format!(
                    "`item-arrival` takes no parameters (the world's `late_items` says which \
                     items arrive), got `{k}`"
                ))),
            },
            "popularity-shift" | "taste-drift" => {
                let mut share = 0.5;
                for (k, v) in pairs {
                    match k {
                        "share" => share = number(k, v)?,
                        _ => return Err(bad(format!("unknown key `{k}` (share)"))),
                    }
                }
                if share > 1.0 {
                    return Err(bad("`share` must be between 0 and 1".into()));
                }
                Ok(if name.trim() == "taste-drift" {
                    Drift::TasteDrift { share }
                } else {
                    Drift::PopularityShift { share }
                })
            }
            "bot-wave" => {
                let (mut bots, mut events_per_bot, mut seconds, mut single_item) =
                    (5usize, 300usize, 60i64, false);
                for (k, v) in pairs {
                    match k {
                        "bots" => bots = number(k, v)? as usize,
                        "events" => events_per_bot = number(k, v)? as usize,
                        "seconds" => seconds = number(k, v)? as i64,
                        "target" => {
                            single_item = match v {
                                "single" => true,
                                "random" => false,
                                _ => {
                                    return Err(bad(format!(
                                        "`target` is random or single, got `{v}`"
                                    )))
                                }
                            }
                        }
                        _ => {
                            return Err(bad(format!(
                                "unknown key `{k}` (bots, events, seconds, target)"
                            )))
                        }
                    }
                }
                if bots == 0 || events_per_bot == 0 {
                    return Err(bad("`bots` and `events` must be at least 1".into()));
                }
                Ok(Drift::BotWave {
                    bots,
                    events_per_bot,
                    seconds,
                    single_item,
                })
            }
            other => Err(bad(format!(
                "unknown scenario `{other}` (none, popularity-shift, taste-drift, item-arrival, \
                 bot-wave)"
            ))),
        }
    }
}

/// One simulation run against a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// `http://HOST:PORT` (or `HOST:PORT`) of a running `kindred serve`.
    pub server: String,
    /// Sent as `Authorization: Bearer KEY` (it needs the read and write scopes).
    pub api_key: Option<String>,
    /// Simulated users: the first this many human users of the world (0 = all of them).
    pub users: usize,
    /// Steps to run: each is one user asking for a list and reacting to it.
    pub steps: u64,
    /// Index of the first step: a run covers steps `first_step..first_step + steps`, so a
    /// test can drive a long run in segments (same seed: the same steps, clock and drift as
    /// one run) and act on the server between them.
    pub first_step: u64,
    /// Stop earlier once this much wall time has passed.
    pub duration: Option<Duration>,
    /// `n` of each recommendation request.
    pub list_size: usize,
    /// Keep-alive connections, each driving steps one at a time. With 1 a run against a
    /// deterministic server is reproducible; with more, steps interleave.
    pub concurrency: usize,
    pub seed: u64,
    pub clock: Clock,
    /// Expected organic events per step (users finding items without a recommendation).
    pub organic_per_step: f64,
    /// Event type of organic events.
    pub organic_event_type: String,
    pub drift: Drift,
    /// First step the drift applies to.
    pub drift_start_step: u64,
    /// Keep every event sent in [`crate::SimSummary::events`] (for tests).
    pub keep_events: bool,
    /// Prefix of the event ids (`sim-{run_id}-{step}-{k}`), which the server deduplicates on;
    /// None: one made from the start time, so separate runs never collide.
    pub run_id: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            server: "http://127.0.0.1:8080".into(),
            api_key: None,
            users: 0,
            steps: 1000,
            first_step: 0,
            duration: None,
            list_size: 10,
            concurrency: 4,
            seed: 1,
            clock: Clock::Server,
            organic_per_step: 0.0,
            organic_event_type: "view".into(),
            drift: Drift::None,
            drift_start_step: 0,
            keep_events: false,
            run_id: None,
        }
    }
}

impl SimConfig {
    /// Checks the fields a user can get wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidInput(format!("simulation config: {m}")));
        if self.list_size == 0 {
            return bad("list_size must be at least 1");
        }
        if self.concurrency == 0 {
            return bad("concurrency must be at least 1");
        }
        if !(self.organic_per_step.is_finite() && self.organic_per_step >= 0.0) {
            return bad("organic_per_step must be a non-negative number");
        }
        if let Clock::Simulated {
            seconds_per_step, ..
        } = self.clock
        {
            if !(seconds_per_step.is_finite() && seconds_per_step >= 0.0) {
                return bad("seconds_per_step must be a non-negative number");
            }
        }
        if self.organic_event_type.is_empty() {
            return bad("organic_event_type must not be empty");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_specs() {
        assert_eq!(Drift::parse("none").unwrap(), Drift::None);
        assert_eq!(Drift::parse("item-arrival").unwrap(), Drift::ItemArrival);
        assert!(Drift::parse("item-arrival:share=1").is_err());
        assert_eq!(
            Drift::parse("taste-drift:share=0.3").unwrap(),
            Drift::TasteDrift { share: 0.3 }
        );
        assert!(Drift::parse("taste-drift:share=2").is_err());
        assert_eq!(
            Drift::parse("popularity-shift").unwrap(),
            Drift::PopularityShift { share: 0.5 }
        );
        assert_eq!(
            Drift::parse("popularity-shift:share=0.2").unwrap(),
            Drift::PopularityShift { share: 0.2 }
        );
        assert_eq!(
            Drift::parse("bot-wave:bots=3,events=100,seconds=30,target=single").unwrap(),
            Drift::BotWave {
                bots: 3,
                events_per_bot: 100,
                seconds: 30,
                single_item: true
            }
        );
        for bad in [
            "shift",
            "none:x=1",
            "popularity-shift:share=2",
            "popularity-shift:share=-1",
            "popularity-shift:colour=red",
            "bot-wave:bots=0",
            "bot-wave:target=all",
            "bot-wave:bots",
        ] {
            let err = Drift::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn validation() {
        assert!(SimConfig::default().validate().is_ok());
        let zero = SimConfig {
            list_size: 0,
            ..SimConfig::default()
        };
        assert!(zero
            .validate()
            .unwrap_err()
            .to_string()
            .contains("list_size"));
        let nan = SimConfig {
            organic_per_step: f64::NAN,
            ..SimConfig::default()
        };
        assert!(nan.validate().is_err());
    }
}
