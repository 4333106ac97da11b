//! The handle on the snapshot being served: swapped atomically by rebuilds, read by requests and
//! by monitoring, which gets a clone of it instead of the whole serving state.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::snapshot::Snapshot;

/// The current snapshot, shared; clones read the same one.
#[derive(Clone)]
pub struct LiveSnapshot(Arc<ArcSwap<Snapshot>>);

impl LiveSnapshot {
    pub fn new(snapshot: Snapshot) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(snapshot)))
    }

    /// The snapshot to use now; a caller keeps it to the end of its work, so a swap never mixes
    /// two versions in one answer.
    pub fn load(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    /// Publishes a completely built snapshot with one atomic pointer store.
    pub(crate) fn store(&self, snapshot: Arc<Snapshot>) {
        self.0.store(snapshot);
    }
}
