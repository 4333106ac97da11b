//! `kindred-sim`: simulated users with known preferences who click on what a running
//! `kindred serve` shows them, to test experiments and monitoring end to end.
//!
//! - [`world`]: the world (kindred-data's seeded synthetic generator plus its latent truth)
//!   and the click model (position-based examination x attraction, purchase after click).
//! - [`config`]: a run's [`SimConfig`], the simulated [`Clock`] and the [`Drift`] scenarios.
//! - [`run`]: [`simulate`], which drives the server over keep-alive HTTP/1.1 connections.
//! - [`summary`]: the serialisable [`SimSummary`] (per model version and experiment variant:
//!   lists, items, clicks, measured CTR and the oracle's expected CTR).
//!
//! ```no_run
//! # async fn demo() -> Result<(), kindred_sim::SimError> {
//! use std::sync::Arc;
//! use kindred_sim::{simulate, SimConfig, World};
//! let world = Arc::new(World::from_spec("users=500,items=200,seed=7,implicit=true")?);
//! // ... import world.dataset() into the server's store, train, serve on 127.0.0.1:8080 ...
//! let config = SimConfig { server: "http://127.0.0.1:8080".into(), steps: 2000, ..SimConfig::default() };
//! let summary = simulate(world, config, Arc::new(kindred_core::NoProgress), Default::default()).await?;
//! println!("CTR {:.3} (oracle {:.3})", summary.overall.ctr, summary.overall.expected_ctr);
//! # Ok(()) }
//! ```

pub mod config;
pub mod run;
pub mod summary;
pub mod world;

pub use config::{Clock, Drift, SimConfig};
pub use run::{simulate, SimError};
pub use summary::{GroupStats, Origin, SentEvent, SimSummary};
pub use world::{Appeal, ClickModel, World};
