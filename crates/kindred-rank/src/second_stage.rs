//! The learned second stage: a factorisation machine that re-scores the candidate pool a
//! first-stage model retrieved, using what that model never saw (request time, device, user
//! and item features), then blends the two scores:
//! `score = (1 - weight) * norm(first stage) + weight * norm(FM)`, each min-max normalised over
//! the pool, so the blend weight means the same for every first-stage model.

use std::sync::Arc;

use kindred_core::{FitContext, Result, Scored, TrainSet};
use kindred_models::ranking::fm::{
    fit_implicit, FactorisationMachine, FmEncoder, FmParams, FmScorer,
};
use kindred_models::ranking::{ContextScorer, RequestContext};

use crate::config::SecondStageConfig;

/// A trained second stage for one training set: a context-aware model behind
/// [`ContextScorer`] and the blend weight.
#[derive(Debug, Clone)]
pub struct SecondStage {
    scorer: Arc<dyn ContextScorer>,
    weight: f64,
}

impl SecondStage {
    /// Trains the FM on `train`'s rows as positives with sampled negatives (see
    /// [`kindred_models::ranking::fm::fit_implicit`]).
    pub fn fit(config: &SecondStageConfig, train: &TrainSet, ctx: &FitContext) -> Result<Self> {
        let encoder = FmEncoder::new(train, &config.features, config.hour_buckets);
        let model = fit_implicit(&encoder, train, &FmParams::from(config), ctx)?;
        Ok(Self::from_parts(encoder, model, config.weight))
    }

    /// A second stage from an FM trained elsewhere (e.g. with
    /// [`kindred_models::ranking::fm::fit_labelled`]).
    pub fn from_parts(encoder: FmEncoder, model: FactorisationMachine, weight: f64) -> Self {
        Self::from_scorer(Arc::new(FmScorer { encoder, model }), weight)
    }

    /// A second stage from any context-aware model.
    pub fn from_scorer(scorer: Arc<dyn ContextScorer>, weight: f64) -> Self {
        Self {
            scorer,
            weight: weight.clamp(0.0, 1.0),
        }
    }

    /// Second-stage scores of `items` for `user` (index of the training set, None: anonymous) in
    /// `context`.
    pub fn score(&self, user: Option<u32>, context: &RequestContext, items: &[u32]) -> Vec<f32> {
        self.scorer.score_in_context(user, context, items)
    }

    /// The pool re-scored with the blend and sorted best first; ties keep the pool's order, so
    /// weight 0 returns the pool's order unchanged.
    pub fn rescore(
        &self,
        user: Option<u32>,
        context: &RequestContext,
        pool: &[Scored],
    ) -> Vec<Scored> {
        let items: Vec<u32> = pool.iter().map(|s| s.item).collect();
        let fm = self.score(user, context, &items);
        let first: Vec<f32> = pool.iter().map(|s| s.score).collect();
        let (first, fm) = (min_max(&first), min_max(&fm));
        let w = self.weight;
        let mut out: Vec<Scored> = pool
            .iter()
            .zip(first.iter().zip(&fm))
            .map(|(s, (a, b))| Scored {
                item: s.item,
                score: ((1.0 - w) * a + w * b) as f32,
            })
            .collect();
        // Stable sort: equal blended scores keep the first stage's order.
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out
    }
}

/// Min-max normalised to [0, 1] (all 1 when equal); non-finite values become 0.
fn min_max(values: &[f32]) -> Vec<f64> {
    let finite = values
        .iter()
        .map(|&v| f64::from(v))
        .filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    values
        .iter()
        .map(|&v| {
            let v = f64::from(v);
            if !v.is_finite() {
                0.0
            } else if hi > lo {
                (v - lo) / (hi - lo)
            } else {
                1.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FmFeature;
    use kindred_core::{EventType, Interaction, InteractionsBuilder};

    fn items(list: &[Scored]) -> Vec<u32> {
        list.iter().map(|s| s.item).collect()
    }

    #[test]
    fn blend_by_hand() {
        let mut b = InteractionsBuilder::new();
        for item in ["x", "y", "z"] {
            b.push(Interaction::implicit("u", item, EventType::Click, None));
        }
        let train = TrainSet::new(b.build());
        let config = SecondStageConfig {
            features: vec![FmFeature::Item],
            ..Default::default()
        };
        let encoder = FmEncoder::new(&train, &config.features, config.hour_buckets);
        assert_eq!(encoder.n_features(), 3);
        // FM scores 0, 2, 1 (linear weights only): normalised 0, 1, 0.5.
        let model =
            FactorisationMachine::from_parameters(1, 0.0, vec![0.0, 2.0, 1.0], vec![0.0; 3])
                .unwrap();
        let pool = [
            Scored {
                item: 0,
                score: 3.0,
            },
            Scored {
                item: 1,
                score: 2.0,
            },
            Scored {
                item: 2,
                score: 1.0,
            },
        ];
        let context = RequestContext::default();
        let stage = |w: f64| SecondStage::from_parts(encoder.clone(), model.clone(), w);
        assert_eq!(
            stage(0.5).score(Some(0), &context, &[0, 1, 2]),
            vec![0.0, 2.0, 1.0]
        );
        // First stage normalised 1, 0.5, 0. Weight 0.5: 0.5, 0.75, 0.25.
        let blended = stage(0.5).rescore(Some(0), &context, &pool);
        assert_eq!(items(&blended), vec![1, 0, 2]);
        assert_eq!(blended[0].score, 0.75);
        assert_eq!(blended[2].score, 0.25);
        // Weight 0 keeps the pool's order, weight 1 is the FM's order.
        assert_eq!(
            items(&stage(0.0).rescore(Some(0), &context, &pool)),
            vec![0, 1, 2]
        );
        assert_eq!(
            items(&stage(1.0).rescore(Some(0), &context, &pool)),
            vec![1, 2, 0]
        );
        assert!(FactorisationMachine::from_parameters(2, 0.0, vec![0.0; 3], vec![0.0; 3]).is_err());
    }
}
