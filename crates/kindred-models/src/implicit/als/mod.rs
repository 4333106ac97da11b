//! Implicit-feedback alternating least squares (Hu, Koren & Volinsky 2008), as in the `implicit`
//! Python library.
//!
//! Every observed (user, item) pair has preference `p_ui = 1` and confidence `c_ui` computed from
//! the summed implicit weight `w_ui` of the pair's events; unobserved pairs have `p = 0`, `c = 1`.
//! The model minimises `sum c_ui (p_ui - x_u . y_i)^2 + reg (|x_u|^2 + |y_i|^2)` by alternately
//! solving every user vector with the items fixed and every item vector with the users fixed.
//! Confidence is `1 + alpha * w` (Hu et al., `confidence=hu`, the default) or `alpha * w` (what
//! `implicit` does: it passes `alpha * w` as the confidence, so its `alpha = 1` on binary data
//! weighs observed pairs like unobserved ones).
//!
//! With the Gram trick each user's system is `(YtY + reg I + sum_i (c_ui - 1) y_i y_i^T) x_u =
//! sum_i c_ui y_i`: `YtY` is computed once per half-iteration, and a user costs O(n_u f^2) with
//! the exact solver (`solver=cholesky`: faer's Cholesky on the f x f system) or O(n_u f) per step
//! with the conjugate-gradient solver (`solver=cg`, `implicit`'s default: `cg_steps` steps warm-
//! started from the previous vector, never forming the matrix, in f32 as `implicit` does). Regularisation is not scaled by
//! the number of interactions, as in `implicit`. Rows are solved in parallel and independently, so
//! a fit is identical for any thread count.
//!
//! Scores are `x_u . y_i`. Anonymous users, and known users with extra query history, are folded
//! in: one exact solve of the same normal equations against the trained item factors.

use std::path::Path;

use kindred_core::kernels::{dot, dot_f64, dot_rows};
use kindred_core::{Error, FitContext, ItemIdx, Result, TrainSet, UserIdx};
use rayon::prelude::*;

use crate::family::{param_infos, Cost, ModelFamily, ParamInfo, Saved, Task};
use crate::model::{Algorithm, Model, UserQuery};
use crate::params::ModelSpec;
use crate::persist::{Fitted, TensorReader, TensorWriter};
use crate::space::{Param, Space};

mod cg;
mod cholesky;
mod confidence;
mod fixed_side;
mod fold_in;
mod params;
mod simd;
mod solve;

use crate::common::histories::{half_life_param, recency_weighted};
use crate::common::weighted_rows::WeightedRows;
pub use confidence::ConfidenceRows;
pub use params::{AlsParams, Confidence, Solver};
use simd::symv;
use solve::solve_side;
pub use solve::{gram, initial_value, solve_rows, FixedRows};

/// The ALS algorithm.
#[derive(Debug, Clone, Default)]
pub struct Als {
    pub params: AlsParams,
}

/// `implicit`'s training loss: the weighted squared error over every (user, item) cell plus the
/// regularisation, divided by the total confidence of all cells. Computed exactly without visiting
/// unobserved cells: `x^T YtY x` covers every cell as if unobserved, and each observed cell
/// corrects it by `(c-1) s^2 - 2 c s + c`.
fn loss(x: &[f64], y: &[f64], rows: &ConfidenceRows, params: &AlsParams, n_items: usize) -> f64 {
    let f = params.factors;
    let g = gram(y, f);
    let per_user: Vec<(f64, f64, usize)> = x
        .par_chunks(f)
        .enumerate()
        .map_init(
            || vec![0.0; f],
            |gx, (u, xu)| {
                symv(&g, xu, gx);
                let mut sum = dot_f64(gx, xu);
                let mut total_conf = 0.0;
                let (cols, conf) = rows.row(u);
                for (&i, &c) in cols.iter().zip(conf) {
                    let s = dot_f64(&y[i as usize * f..(i as usize + 1) * f], xu);
                    sum += (c - 1.0) * s * s - 2.0 * c * s + c;
                    total_conf += c;
                }
                (sum, total_conf, cols.len())
            },
        )
        .collect();
    let (mut sum, mut total_conf, mut nnz) = (0.0, 0.0, 0usize);
    for (s, c, n) in per_user {
        sum += s;
        total_conf += c;
        nnz += n;
    }
    let norms = dot_f64(x, x) + dot_f64(y, y);
    let cells = total_conf + (x.len() / f * n_items - nnz) as f64;
    (sum + params.reg * norms) / cells.max(1.0)
}

impl Algorithm for Als {
    fn name(&self) -> &'static str {
        "als"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fit(&self, data: &TrainSet, ctx: &FitContext) -> Result<Box<dyn Model>> {
        Ok(Box::new(self.fit_model(data, ctx)?))
    }
}

impl Als {
    /// Trains and returns the concrete model (for fold-in and tests).
    pub fn fit_model(&self, data: &TrainSet, ctx: &FitContext) -> Result<AlsModel> {
        let params = &self.params;
        params.validate()?;
        ctx.cancel.check()?;
        let f = params.factors;
        let (n_users, n_items) = (data.n_users(), data.n_items());
        let weights = recency_weighted(data, params.half_life);
        let user_rows = WeightedRows::new(&data.by_user, &weights);
        let by_user = ConfidenceRows::new(&user_rows, params);
        let by_item = ConfidenceRows::new(&WeightedRows::new(&data.by_item, &weights), params);

        // implicit's initialisation: uniform in [0, 0.01). Users are solved first, so only the
        // item factors (and the CG warm start of the users) depend on it.
        let seed = params.seed.unwrap_or(ctx.seed);
        let init = |first_draw: usize, n: usize| -> Vec<f64> {
            (first_draw..first_draw + n * f)
                .map(|d| initial_value(seed, d as u64))
                .collect()
        };
        let mut x = init(0, n_users);
        let mut y = init(n_users * f, n_items);
        let mut other32 = Vec::new();

        ctx.progress
            .begin("als iterations", params.iterations as u64);
        for it in 0..params.iterations {
            ctx.cancel.check()?;
            solve_side(&mut x, &by_user, &y, &mut other32, params)?;
            ctx.cancel.check()?;
            solve_side(&mut y, &by_item, &x, &mut other32, params)?;
            if params.training_loss {
                ctx.progress
                    .epoch(it, loss(&x, &y, &by_user, params, n_items), None);
            }
            ctx.progress.advance(1);
        }
        ctx.progress.finish();

        AlsModel::assemble(
            params.clone(),
            data,
            &user_rows,
            x.iter().map(|&v| v as f32).collect(),
            y.iter().map(|&v| v as f32).collect(),
        )
    }
}

/// A fitted ALS model.
#[derive(Debug, Clone)]
pub struct AlsModel {
    /// `n_users x factors`, row-major.
    user_factors: Vec<f32>,
    /// `n_items x factors`, row-major.
    item_factors: Vec<f32>,
    /// Summed weight of each user's training items, aligned with `fitted.seen`, for fold-in of
    /// known users with extra history.
    user_weights: Vec<f32>,
    /// Where each user's run starts in `user_weights`.
    weight_offsets: Vec<usize>,
    /// `YtY` of the stored (f32) item factors, in f64, for fold-in.
    item_gram: Vec<f64>,
    pub params: AlsParams,
    fitted: Fitted,
}

impl AlsModel {
    /// A model from factors trained elsewhere (e.g. by a distributed job) for the users and items
    /// of `data`, in `data`'s index order: `n_users x factors` and `n_items x factors`,
    /// row-major. `data` provides the seen items and the fold-in weights, as a fit on it would.
    pub fn from_factors(
        params: AlsParams,
        data: &TrainSet,
        user_factors: Vec<f32>,
        item_factors: Vec<f32>,
    ) -> Result<Self> {
        params.validate()?;
        let f = params.factors;
        if user_factors.len() != data.n_users() * f || item_factors.len() != data.n_items() * f {
            return Err(Error::InvalidInput(format!(
                "als: {} user and {} item factor values do not fit {} users and {} items x {f} factors",
                user_factors.len(),
                item_factors.len(),
                data.n_users(),
                data.n_items()
            )));
        }
        let user_rows = WeightedRows::new(&data.by_user, data.data.weights());
        Self::assemble(params, data, &user_rows, user_factors, item_factors)
    }

    fn assemble(
        params: AlsParams,
        data: &TrainSet,
        user_rows: &WeightedRows,
        user_factors: Vec<f32>,
        item_factors: Vec<f32>,
    ) -> Result<Self> {
        let fitted = Fitted::from_train(data);
        Ok(AlsModel {
            weight_offsets: AlsModel::seen_offsets(&fitted),
            item_gram: AlsModel::item_gram(&item_factors, params.factors),
            user_factors,
            item_factors,
            user_weights: user_rows.values().to_vec(),
            params,
            fitted,
        })
    }

    /// Start of each user's run of seen items (one more entry than users: the total).
    fn seen_offsets(fitted: &Fitted) -> Vec<usize> {
        let mut offsets = Vec::with_capacity(fitted.users.len() + 1);
        let mut total = 0;
        offsets.push(0);
        for u in 0..fitted.users.len() as u32 {
            total += fitted.seen.items_of(u).len();
            offsets.push(total);
        }
        offsets
    }

    fn item_gram(item_factors: &[f32], f: usize) -> Vec<f64> {
        let wide: Vec<f64> = item_factors.iter().map(|&v| v as f64).collect();
        gram(&wide, f)
    }

    /// Loads a model saved by [`Model::save`].
    pub fn load(params: serde_json::Value, fitted: Fitted, tensors: &TensorReader) -> Result<Self> {
        let params: AlsParams = serde_json::from_value(params)
            .map_err(|e| Error::InvalidInput(format!("als parameters: {e}")))?;
        params.validate()?;
        let f = params.factors;
        let (nu, ni) = (fitted.users.len(), fitted.items.len());
        let weight_offsets = Self::seen_offsets(&fitted);
        let n_seen = weight_offsets.last().copied().unwrap_or(0);
        let item_factors = tensors.f32_len("als.item_factors", ni * f)?;
        Ok(Self {
            user_factors: tensors.f32_len("als.user_factors", nu * f)?,
            item_gram: Self::item_gram(&item_factors, f),
            item_factors,
            user_weights: tensors.f32_len("als.user_weights", n_seen)?,
            weight_offsets,
            params,
            fitted,
        })
    }

    /// Number of latent factors.
    pub fn factors(&self) -> usize {
        self.params.factors
    }

    /// The trained vector of a user (`None` beyond the trained users).
    pub fn user_vector(&self, user: UserIdx) -> Option<&[f32]> {
        let f = self.params.factors;
        self.user_factors
            .get(user as usize * f..(user as usize + 1) * f)
    }

    /// The trained vector of an item (`None` beyond the trained items).
    pub fn item_vector(&self, item: ItemIdx) -> Option<&[f32]> {
        let f = self.params.factors;
        self.item_factors
            .get(item as usize * f..(item as usize + 1) * f)
    }
}

impl Model for AlsModel {
    fn name(&self) -> &'static str {
        "als"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn fitted(&self) -> &Fitted {
        &self.fitted
    }

    fn score(&self, query: &UserQuery<'_>, items: &[ItemIdx], out: &mut [f32]) {
        let f = self.params.factors;
        let x = self.query_vector(query);
        for (o, &i) in out.iter_mut().zip(items) {
            *o = self
                .item_factors
                .get(i as usize * f..(i as usize + 1) * f)
                .map_or(0.0, |y| dot(&x, y));
        }
    }

    fn score_all(&self, query: &UserQuery<'_>, out: &mut [f32]) {
        let f = self.params.factors;
        let x = self.query_vector(query);
        out.fill(0.0);
        dot_rows(&self.item_factors, f, &x, out);
    }

    fn item_embeddings(&self) -> Option<(usize, &[f32])> {
        Some((self.params.factors, &self.item_factors))
    }

    fn user_embeddings(&self) -> Option<(usize, &[f32])> {
        Some((self.params.factors, &self.user_factors))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let f = self.params.factors;
        let (nu, ni) = (self.user_factors.len() / f, self.item_factors.len() / f);
        let mut t = TensorWriter::new();
        t.f32("als.user_factors", &[nu, f], &self.user_factors)
            .f32("als.item_factors", &[ni, f], &self.item_factors)
            .f32(
                "als.user_weights",
                &[self.user_weights.len()],
                &self.user_weights,
            );
        self.fitted.save(dir, "als", Model::params(self), t)
    }
}

/// The `als` family's entry in the model registry.
pub struct AlsFamily;

impl ModelFamily for AlsFamily {
    fn name(&self) -> &'static str {
        "als"
    }

    fn task(&self) -> Task {
        Task::Ranking
    }

    fn summary(&self) -> &'static str {
        "implicit-feedback ALS (Hu, Koren & Volinsky 2008; as the implicit library), fold-in for new users"
    }

    fn params(&self) -> Vec<ParamInfo> {
        param_infos::<AlsParams>(&[
            ("factors", None, "latent factors"),
            ("reg", None, "L2 regularisation of every vector (not scaled by counts)"),
            ("alpha", None, "confidence scale of an observed pair's summed weight"),
            ("confidence", None, "hu (c = 1 + alpha w) | implicit (c = alpha w, the implicit library's convention)"),
            ("iterations", None, "alternating passes (users, then items)"),
            ("solver", None, "cg (conjugate gradient, warm-started) | cholesky (exact)"),
            ("cg_steps", None, "conjugate-gradient steps per vector and pass"),
            ("seed", Some("fit seed (42)"), "seed of the initial factors"),
            ("training_loss", None, "report the training loss after each iteration (about one more CG step per iteration)"),
            ("half_life", Some("off"), "recency: an interaction's weight halves every half_life items newer than it in the user's history"),
        ])
    }

    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>> {
        Ok(Box::new(Als {
            params: spec.typed()?,
        }))
    }

    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>> {
        saved.load_with(AlsModel::load)
    }

    fn search_space(&self) -> Option<Space> {
        Some(Space {
            family: "als",
            params: vec![
                Param::int("factors", 16, 256, true, 64),
                Param::float("reg", 0.001, 10.0, true, 0.05),
                Param::float("alpha", 0.01, 50.0, true, 1.0),
                Param::int("iterations", 3, 30, false, 15),
                half_life_param(),
            ],
            fidelity: Some("iterations"),
            fixed: Vec::new(),
        })
    }

    fn cost(&self) -> Cost {
        Cost::Medium
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use kindred_core::Protocol;

    /// A temporal:0.2,positive>=4 split of a synthetic dataset with planted structure: the
    /// training set and each user's relevant test items not already in training.
    pub fn temporal_split(spec: &str) -> (TrainSet, Vec<Vec<u32>>) {
        use kindred_data::synthetic::{generate, SyntheticConfig};
        let synthetic = generate(&SyntheticConfig::parse(spec).unwrap()).unwrap();
        let protocol = Protocol::parse("temporal:0.2,positive>=4").unwrap();
        let prepared = protocol.prepare(&synthetic.dataset.interactions);
        let split = protocol.splits(&prepared).unwrap().remove(0);
        let train = TrainSet::new(prepared.subset(&split.train));
        let mut relevant = vec![Vec::new(); prepared.n_users()];
        for &r in &split.test {
            let (u, i) = (prepared.users()[r as usize], prepared.items()[r as usize]);
            if !train.by_user.contains(u as usize, i) && !relevant[u as usize].contains(&i) {
                relevant[u as usize].push(i);
            }
        }
        (train, relevant)
    }

    /// Mean hit rate and recall at 10 over users with relevant items, training items excluded.
    pub fn hit_and_recall(model: &dyn Model, relevant: &[Vec<u32>]) -> (f64, f64) {
        let (mut hits, mut recall, mut users) = (0.0, 0.0, 0.0);
        for (u, rel) in relevant.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            let top = model.recommend(&UserQuery::known(u as u32), 10, &crate::model::AllItems);
            let found = top.iter().filter(|s| rel.contains(&s.item)).count() as f64;
            hits += (found > 0.0) as u8 as f64;
            recall += found / rel.len() as f64;
            users += 1.0;
        }
        (hits / users, recall / users)
    }
}

#[cfg(test)]
mod tests {
    use super::cg::solve_cg;
    use super::cholesky::solve_cholesky;
    use super::fixed_side::{Fixed, Scratch};
    use super::test_support::{hit_and_recall, temporal_split};
    use super::*;
    use crate::model::AllItems;
    use kindred_core::{EventType, Interaction, InteractionsBuilder, Progress};
    use std::sync::{Arc, Mutex};

    const DATA: &str = "users=400,items=200,seed=5";

    fn params(solver: Solver) -> AlsParams {
        AlsParams {
            factors: 16,
            solver,
            ..Default::default()
        }
    }

    fn fit(data: &TrainSet, params: AlsParams) -> AlsModel {
        Als { params }
            .fit_model(data, &FitContext::default())
            .unwrap()
    }

    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        let d = |x: &[f32], y: &[f32]| {
            x.iter()
                .zip(y)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum::<f64>()
        };
        d(a, b) / (d(a, a) * d(b, b)).sqrt()
    }

    #[derive(Default)]
    struct Losses(Mutex<Vec<f64>>);
    impl Progress for Losses {
        fn epoch(&self, _epoch: usize, loss: f64, _validation: Option<f64>) {
            self.0.lock().unwrap().push(loss);
        }
    }

    #[test]
    fn cholesky_step_solves_the_normal_equations() {
        // One user, items a (weight 2: two events of 1) and b (weight 1), f = 2, against fixed Y.
        let f = 2;
        let y = [0.5, -0.2, 0.1, 0.4, 0.3, 0.3];
        let p = AlsParams {
            factors: f,
            reg: 0.1,
            alpha: 2.0,
            solver: Solver::Cholesky,
            ..Default::default()
        };
        let cols = [0u32, 1];
        let conf = [p.confidence(2.0), p.confidence(1.0)];
        assert_eq!(conf, [5.0, 3.0]);
        let mut g = gram(&y, f);
        // YtY by hand: [0.25+0.01+0.09, -0.1+0.04+0.09; ., 0.04+0.16+0.09].
        let want = [0.35, 0.03, 0.03, 0.29];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{g:?}");
        }
        g[0] += 0.1;
        g[3] += 0.1;
        let mut x = [0.0; 2];
        let fixed = Fixed {
            gram: &g,
            other: &y,
            f,
        };
        assert!(solve_cholesky(
            fixed,
            &cols,
            &conf,
            &mut Scratch::new(f),
            &mut x
        ));
        // A = YtY + reg I + 4 y_a y_a^T + 2 y_b y_b^T; b = 5 y_a + 3 y_b.
        let a = [
            0.45 + 4.0 * 0.25 + 2.0 * 0.01,
            0.03 + 4.0 * -0.1 + 2.0 * 0.04,
            0.39 + 4.0 * 0.04 + 2.0 * 0.16,
        ];
        let b = [5.0 * 0.5 + 3.0 * 0.1, 5.0 * -0.2 + 3.0 * 0.4];
        let residual = [
            a[0] * x[0] + a[1] * x[1] - b[0],
            a[1] * x[0] + a[2] * x[1] - b[1],
        ];
        assert!(residual.iter().all(|r| r.abs() < 1e-12), "{residual:?}");

        // Enough CG steps reach the same solution from any start; CG reads the fixed rows as f32,
        // so agreement is to f32 rounding of Y.
        let y32: Vec<f32> = y.iter().map(|&v| v as f32).collect();
        let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
        let fixed32 = Fixed {
            gram: &g32[..],
            other: &y32[..],
            f,
        };
        let mut xc = [0.3, -1.0];
        solve_cg(fixed32, &cols, &conf, 2, &mut Scratch::new(f), &mut xc);
        assert!(
            (xc[0] - x[0]).abs() < 1e-6 && (xc[1] - x[1]).abs() < 1e-6,
            "{xc:?} {x:?}"
        );
    }

    #[test]
    fn repeated_events_sum_their_weights() {
        let mut b = InteractionsBuilder::new();
        for (u, i, w) in [
            ("x", "a", 1.0),
            ("x", "a", 2.5),
            ("x", "b", 1.0),
            ("y", "a", 0.0),
        ] {
            let mut row = Interaction::implicit(u, i, EventType::View, Some(0));
            row.weight = w;
            b.push(row);
        }
        let data = TrainSet::new(b.build());
        let rows = WeightedRows::new(&data.by_user, data.data.weights());
        assert_eq!(rows.row(0), (&[0u32, 1][..], &[3.5f32, 1.0][..]));
        let conf = ConfidenceRows::new(&rows, &AlsParams::default());
        assert_eq!(conf.row(0), (&[0u32, 1][..], &[4.5, 2.0][..]));
        // A zero summed weight is no evidence: y has nothing to learn from.
        assert_eq!(conf.row(1).0.len(), 0);
        let model = fit(&data, params(Solver::Cholesky));
        assert!(model.user_vector(1).unwrap().iter().all(|&v| v == 0.0));
    }

    #[test]
    fn exact_loss_never_increases_and_cg_tracks_it() {
        let (train, _) = temporal_split(DATA);
        let run = |solver| {
            let losses = Arc::new(Losses::default());
            let ctx = FitContext {
                progress: losses.clone(),
                ..FitContext::default()
            };
            Als {
                params: AlsParams {
                    training_loss: true,
                    ..params(solver)
                },
            }
            .fit_model(&train, &ctx)
            .unwrap();
            let l = losses.0.lock().unwrap().clone();
            l
        };
        let exact = run(Solver::Cholesky);
        assert_eq!(exact.len(), 15);
        assert!(exact.iter().all(|l| l.is_finite() && *l > 0.0), "{exact:?}");
        assert!(
            exact.windows(2).all(|w| w[1] <= w[0] * (1.0 + 1e-9)),
            "{exact:?}"
        );
        let cg = run(Solver::Cg);
        let (e, c) = (exact[14], cg[14]);
        // Off by default: no loss reported.
        let quiet = Arc::new(Losses::default());
        let ctx = FitContext {
            progress: quiet.clone(),
            ..FitContext::default()
        };
        Als {
            params: params(Solver::Cg),
        }
        .fit_model(&train, &ctx)
        .unwrap();
        assert!(quiet.0.lock().unwrap().is_empty());
        assert!(
            (c - e).abs() / e < 0.02,
            "final loss cg {c} vs cholesky {e}"
        );
    }

    #[test]
    fn fold_in_reproduces_trained_users() {
        let (train, _) = temporal_split(DATA);
        let model = fit(&train, params(Solver::Cholesky));
        let mut worst = 1.0f64;
        let (mut overlap, mut same_first, mut users) = (0, 0, 0);
        for u in 0..train.n_users() as u32 {
            let seen = model.fitted.seen.items_of(u);
            if seen.is_empty() {
                continue;
            }
            users += 1;
            let start = model.weight_offsets[u as usize];
            let history: Vec<(ItemIdx, f32)> = seen
                .iter()
                .copied()
                .zip(
                    model.user_weights[start..start + seen.len()]
                        .iter()
                        .copied(),
                )
                .collect();
            let folded = model.fold_in(&history);
            worst = worst.min(cosine(&folded, model.user_vector(u).unwrap()));
            let known = model.recommend(&UserQuery::known(u), 10, &AllItems);
            let anonymous = model.recommend(&UserQuery::anonymous(seen), 10, &AllItems);
            overlap += known
                .iter()
                .filter(|k| anonymous.iter().any(|a| a.item == k.item))
                .count();
            same_first += (known[0].item == anonymous[0].item) as usize;
        }
        let mean_overlap = overlap as f64 / users as f64;
        // Measured: worst cosine 0.99922, mean top-10 overlap 9.9, same first item for 393 of
        // 400 users. Not exact: trained user vectors were solved against the item factors of
        // the previous half-iteration, fold-in against the final ones.
        assert!(worst > 0.995, "worst fold-in cosine {worst}");
        assert!(mean_overlap > 9.5, "mean top-10 overlap {mean_overlap}");
        assert!(
            same_first * 100 >= users * 95,
            "{same_first} of {users} first items agree"
        );
    }

    #[test]
    fn beats_popularity_on_planted_structure() {
        let (train, relevant) = temporal_split("users=600,items=300,seed=3");
        let ctx = FitContext::default();
        let popularity = crate::simple::popularity::Popularity::default()
            .fit(&train, &ctx)
            .unwrap();
        let (pop_hit, pop_recall) = hit_and_recall(popularity.as_ref(), &relevant);
        for solver in [Solver::Cg, Solver::Cholesky] {
            let als = Als {
                params: params(solver),
            }
            .fit(&train, &ctx)
            .unwrap();
            let (hit, recall) = hit_and_recall(als.as_ref(), &relevant);
            assert!(
                hit > 1.3 * pop_hit && recall > 1.3 * pop_recall,
                "{solver:?}: als hit@10 {hit:.4} recall@10 {recall:.4}; popularity {pop_hit:.4} {pop_recall:.4}"
            );
        }
    }

    #[test]
    fn same_seed_same_factors_for_any_thread_count() {
        let (train, _) = temporal_split(DATA);
        let on = |threads: usize, seed: u64| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let p = AlsParams {
                        seed: Some(seed),
                        ..params(Solver::Cg)
                    };
                    let m = fit(&train, p);
                    (m.user_factors, m.item_factors)
                })
        };
        let one = on(1, 7);
        assert_eq!(one, on(3, 7));
        assert_ne!(one, on(1, 8));
    }

    #[test]
    fn save_load_scores_identically_and_folds_in_query_history() {
        let (train, _) = temporal_split(DATA);
        let model = fit(&train, params(Solver::Cg));
        let dir = std::env::temp_dir().join(format!("kindred-als-{}", std::process::id()));
        model.save(&dir).unwrap();
        let loaded = crate::registry::load_model(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(loaded.name(), "als");
        assert_eq!(loaded.params(), Model::params(&model));
        assert_eq!(loaded.item_embeddings(), model.item_embeddings());
        assert_eq!(loaded.user_embeddings(), model.user_embeddings());
        // A known user's score is the dot product of the two embeddings.
        let (f, users) = model.user_embeddings().unwrap();
        let (_, items) = model.item_embeddings().unwrap();
        assert_eq!(users.len(), train.n_users() * f);
        let mut scores = vec![0f32; train.n_items()];
        model.score_all(&UserQuery::known(5), &mut scores);
        let by_hand: f32 = (0..f).map(|j| users[5 * f + j] * items[7 * f + j]).sum();
        assert!(
            (scores[7] - by_hand).abs() < 1e-4,
            "{} vs {by_hand}",
            scores[7]
        );
        let history = [3u32, 17, 3, 40];
        let n = train.n_items();
        let queries = [
            UserQuery::known(0),
            UserQuery::known(5),
            UserQuery::anonymous(&history),
            UserQuery {
                user: Some(5),
                history: &history,
            },
        ];
        for q in queries {
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            model.score_all(&q, &mut a);
            loaded.score_all(&q, &mut b);
            assert_eq!(a, b);
            let mut some = [0f32; 2];
            loaded.score(&q, &[17, 2], &mut some);
            assert_eq!(some, [b[17], b[2]]);
        }
        // Extra history moves a known user's vector; an empty anonymous query scores nothing.
        let (mut plain, mut extra) = (vec![0f32; n], vec![0f32; n]);
        model.score_all(&UserQuery::known(5), &mut plain);
        model.score_all(
            &UserQuery {
                user: Some(5),
                history: &history,
            },
            &mut extra,
        );
        assert_ne!(plain, extra);
        model.score_all(&UserQuery::anonymous(&[]), &mut plain);
        assert!(plain.iter().all(|&s| s == 0.0));
    }

    #[test]
    fn recency_changes_the_confidences_and_only_when_asked() {
        let (train, _) = temporal_split("users=50,items=30,seed=1");
        let fit = |spec: &str| {
            let algo = crate::registry::build_algorithm(spec).unwrap();
            let model = algo.fit(&train, &FitContext::default()).unwrap();
            let mut scores = vec![0f32; train.n_items()];
            model.score_all(&UserQuery::known(0), &mut scores);
            scores
        };
        assert_eq!(fit("als"), fit("als:half_life=0"));
        assert_ne!(fit("als"), fit("als:half_life=2"));
    }

    #[test]
    fn rejects_bad_params_and_honours_cancel() {
        let (train, _) = temporal_split("users=50,items=30,seed=1");
        for spec in [
            "als:factors=0",
            "als:reg=0",
            "als:alpha=-1",
            "als:iterations=0",
            "als:cg_steps=0",
            "als:solver=qr",
            "als:confidence=log",
            "als:half_life=-1",
        ] {
            let err = crate::registry::build_algorithm(spec)
                .and_then(|a| a.fit(&train, &FitContext::default()).map(|_| ()));
            assert!(err.is_err(), "{spec} accepted");
        }
        let ctx = FitContext::default();
        ctx.cancel.cancel();
        let err = Als::default()
            .fit(&train, &ctx)
            .err()
            .map(|e| e.to_string());
        assert_eq!(err, Some(Error::Cancelled.to_string()));
    }
}
