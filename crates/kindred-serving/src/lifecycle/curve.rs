//! The learning curve a version's fit reports (per-epoch training loss and validation metric),
//! recorded through [`Progress`] while training and stored in the version's `metrics` JSON so the
//! dashboard can chart it.

use std::sync::{Arc, Mutex};

use kindred_core::Progress;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most points a stored learning curve keeps (longer fits are thinned, see [`CurveRecorder`]).
pub const MAX_CURVE_POINTS: usize = 200;

/// One learning-curve point: an epoch's training loss and validation metric, if the model
/// reports one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub epoch: usize,
    pub loss: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<f64>,
}

#[derive(Debug, Default)]
struct Thinned {
    points: Vec<CurvePoint>,
    /// Only epochs divisible by this are kept; doubled (and every other point dropped) whenever
    /// the curve is full, so any number of epochs fits in [`MAX_CURVE_POINTS`] evenly spaced.
    stride: usize,
}

/// A [`Progress`] sink that records the epochs an iterative model reports (bounded, evenly
/// thinned) and forwards everything to the inner sink.
pub struct CurveRecorder {
    inner: Arc<dyn Progress>,
    curve: Mutex<Thinned>,
    capacity: usize,
}

impl CurveRecorder {
    pub fn new(inner: Arc<dyn Progress>) -> Self {
        Self::with_capacity(inner, MAX_CURVE_POINTS)
    }

    /// A recorder keeping at most `capacity` (at least 2) points.
    pub fn with_capacity(inner: Arc<dyn Progress>, capacity: usize) -> Self {
        Self {
            inner,
            curve: Mutex::new(Thinned {
                points: Vec::new(),
                stride: 1,
            }),
            capacity: capacity.max(2),
        }
    }

    /// The recorded points, oldest first (empty for a model that reports no epochs).
    pub fn points(&self) -> Vec<CurvePoint> {
        self.curve
            .lock()
            .map(|c| c.points.clone())
            .unwrap_or_default()
    }
}

impl Progress for CurveRecorder {
    fn begin(&self, task: &str, total: u64) {
        self.inner.begin(task, total);
    }
    fn advance(&self, n: u64) {
        self.inner.advance(n);
    }
    fn epoch(&self, epoch: usize, loss: f64, validation: Option<f64>) {
        if let Ok(mut c) = self.curve.lock() {
            if epoch.is_multiple_of(c.stride) && loss.is_finite() {
                if c.points.len() == self.capacity {
                    c.stride *= 2;
                    let stride = c.stride;
                    c.points.retain(|p| p.epoch.is_multiple_of(stride));
                }
                if epoch.is_multiple_of(c.stride) {
                    c.points.push(CurvePoint {
                        epoch,
                        loss,
                        validation: validation.filter(|v| v.is_finite()),
                    });
                }
            }
        }
        self.inner.epoch(epoch, loss, validation);
    }
    fn finish(&self) {
        self.inner.finish();
    }
}

/// A version's stored learning curve (`metrics.curve`), if it has one.
pub fn stored_curve(metrics: &Value) -> Option<Vec<CurvePoint>> {
    serde_json::from_value(metrics.get("curve")?.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::NoProgress;
    use serde_json::json;

    #[test]
    fn the_curve_keeps_every_epoch_until_full_then_thins_evenly() {
        let rec = CurveRecorder::with_capacity(Arc::new(NoProgress), 4);
        for e in 0..4 {
            rec.epoch(e, 1.0 / (e + 1) as f64, None);
        }
        assert_eq!(
            rec.points().iter().map(|p| p.epoch).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        // Epoch 4 finds the curve full: stride 2 keeps 0, 2 and adds 4.
        rec.epoch(4, 0.2, Some(0.5));
        let p = rec.points();
        assert_eq!(p.iter().map(|p| p.epoch).collect::<Vec<_>>(), [0, 2, 4]);
        assert_eq!(p[2].validation, Some(0.5));
        rec.epoch(5, 0.1, None);
        rec.epoch(6, 0.1, None);
        // Full again at epoch 8: stride 4 keeps 0, 4 and adds 8.
        for e in 7..=8 {
            rec.epoch(e, 0.1, None);
        }
        assert_eq!(
            rec.points().iter().map(|p| p.epoch).collect::<Vec<_>>(),
            [0, 4, 8]
        );
        assert!(rec.points().len() <= 4);
    }

    #[test]
    fn non_finite_losses_are_not_stored() {
        let rec = CurveRecorder::new(Arc::new(NoProgress));
        rec.epoch(0, f64::NAN, None);
        rec.epoch(1, 0.5, Some(f64::INFINITY));
        assert_eq!(
            rec.points(),
            [CurvePoint {
                epoch: 1,
                loss: 0.5,
                validation: None
            }]
        );
        let stored = json!({"curve": [{"epoch": 1, "loss": 0.5}]});
        assert_eq!(stored_curve(&stored), Some(rec.points()));
        assert_eq!(stored_curve(&json!({})), None);
    }
}
