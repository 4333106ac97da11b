//! Kindred's online statistics, which need nothing but the core types: [`experiment`] analyses
//! A/B tests (assignment, tests and intervals, CUPED, the sample-ratio check, sequential tests,
//! power) and [`monitoring`] watches live data (drift, data quality, control charts, alerts).
//! The offline evaluation runner and the tuner live in `kindred-eval`, which builds on this.

pub mod experiment;
pub mod monitoring;
