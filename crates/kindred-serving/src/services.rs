//! [`Serving`]: the serving state and the services over it, opened together, and the background
//! work that runs beside them until shutdown.

use std::sync::Arc;

use crate::item_text::ItemTextEncoder;

use kindred_store::Store;

use crate::config::ServerConfig;
use crate::entities::EntityService;
use crate::error::{Error, Result};
use crate::experiments::ExperimentService;
use crate::feedback::FeedbackService;
use crate::lifecycle::Lifecycle;
use crate::lists::ListService;
use crate::monitor::drift::PassReport;
use crate::monitor::Monitor;
use crate::state::ServingState;

/// Everything a server serves with; the services share one [`ServingState`].
#[derive(Clone)]
pub struct Serving {
    pub state: Arc<ServingState>,
    pub lists: ListService,
    pub feedback: FeedbackService,
    pub entities: EntityService,
    pub lifecycle: Arc<Lifecycle>,
    pub experiments: ExperimentService,
    pub monitor: Arc<Monitor>,
}

impl Serving {
    /// Opens the state over `store`, builds the first snapshot (with the live version) and sets
    /// up the services.
    pub async fn open(config: ServerConfig, store: Store) -> Result<Self> {
        // Models trained here with `text=...,encoder=DIR` open their encoder through this.
        #[cfg(feature = "encoder")]
        kindred_core::text_encoder::register_text_encoder(kindred_neural::open_text_encoder);
        let monitor = Arc::new(Monitor::new(&config.monitoring));
        let item_text = ItemTextEncoder::open(&config.encoder)?;
        let state = ServingState::new(config, store).await?;
        Ok(Self {
            lists: ListService::new(Arc::clone(&state), Arc::clone(&monitor)),
            feedback: FeedbackService::new(Arc::clone(&state), Arc::clone(&monitor)),
            entities: EntityService::new(Arc::clone(&state), Arc::clone(&monitor), item_text),
            lifecycle: Arc::new(Lifecycle::new(
                Arc::clone(&state),
                Arc::clone(&monitor.alerts),
            )?),
            experiments: ExperimentService::new(Arc::clone(&state)),
            monitor,
            state,
        })
    }

    /// The server config.
    pub fn config(&self) -> &ServerConfig {
        &self.state.config
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// The snapshot requests use now.
    pub fn snapshot(&self) -> Arc<crate::snapshot::Snapshot> {
        self.state.snapshot()
    }

    /// Runs one monitoring pass now over the store and the served snapshot; a conflict when
    /// monitoring is disabled.
    pub async fn run_monitoring_pass(&self) -> Result<Arc<PassReport>> {
        if !self.monitor.config().enabled {
            return Err(Error::conflict(
                "monitoring_disabled",
                "monitoring is disabled ([monitoring] enabled = false)",
            ));
        }
        self.monitor
            .run_pass(&self.state.store, &self.state.live_snapshot())
            .await
    }

    /// Runs the background loop and the monitoring loop until `shutdown` fires.
    pub async fn run_background(&self, shutdown: tokio::sync::watch::Receiver<bool>) {
        let monitoring = tokio::spawn(Arc::clone(&self.monitor).run_loop(
            self.state.store.clone(),
            self.state.live_snapshot(),
            shutdown.clone(),
        ));
        crate::background::run(
            Arc::clone(&self.state),
            Arc::clone(&self.lifecycle),
            shutdown,
        )
        .await;
        let _ = monitoring.await;
    }
}
