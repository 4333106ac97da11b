//! The model descriptor: everything the rest of Kindred needs to know about one model family
//! (name, task, parameters with typed defaults, how to build it from a spec and load it from
//! disk, its tuning search space, where it applies and what it costs). Each family implements
//! [`ModelFamily`] once, next to its algorithm, and the [`crate::registry::ModelRegistry`]
//! lists it with one line.

use std::path::Path;

use kindred_core::Result;
use serde::{Serialize, Serializer};

use crate::model::{Algorithm, Model};
use crate::params::ModelSpec;
use crate::persist::{Fitted, TensorReader};
use crate::space::Space;

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Rating,
    Ranking,
    Both,
}

/// One hyperparameter as listed by `kindred models`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    pub name: &'static str,
    /// The default as the parameter struct's `Default` holds it (null where it is unset).
    pub value: serde_json::Value,
    /// What the default means where the value alone does not say it: the value of another
    /// parameter (`lr_all`), the fit seed, "off". Shown alone when the value is null, in
    /// parentheses after it otherwise.
    pub note: Option<&'static str>,
    pub help: &'static str,
}

impl ParamInfo {
    /// The default as `kindred models` prints it, e.g. `0.02`, `0 (off)`, `fit seed (42)`.
    pub fn default_text(&self) -> String {
        let value = match &self.value {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(match n.as_f64() {
                // f32 parameters widen to f64 on serialisation; print the f32 they hold.
                Some(f) if !n.is_i64() && !n.is_u64() && f64::from(f as f32) == f => {
                    (f as f32).to_string()
                }
                Some(f) if !n.is_i64() && !n.is_u64() => f.to_string(),
                _ => n.to_string(),
            }),
            other => Some(other.to_string()),
        };
        match (value, self.note) {
            (Some(v), Some(note)) => format!("{v} ({note})"),
            (Some(v), None) => v,
            (None, Some(note)) => note.to_owned(),
            (None, None) => "none".to_owned(),
        }
    }
}

impl Serialize for ParamInfo {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("ParamInfo", 4)?;
        s.serialize_field("name", self.name)?;
        s.serialize_field("default", &self.default_text())?;
        s.serialize_field("value", &self.value)?;
        s.serialize_field("help", self.help)?;
        s.end()
    }
}

/// One parameter's documentation: name, note on its default (see [`ParamInfo::note`]) and help.
pub type ParamDoc = (&'static str, Option<&'static str>, &'static str);

/// The [`ParamInfo`]s of `P`, with each default read from `P::default()`.
pub fn param_infos<P: Default + Serialize>(docs: &[ParamDoc]) -> Vec<ParamInfo> {
    let defaults = serde_json::to_value(P::default()).unwrap_or_default();
    docs.iter()
        .map(|&(name, note, help)| ParamInfo {
            name,
            value: defaults.get(name).cloned().unwrap_or_default(),
            note,
            help,
        })
        .collect()
}

/// One model family as listed by `kindred models`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub name: &'static str,
    pub task: Task,
    pub summary: &'static str,
    pub params: Vec<ParamInfo>,
}

/// A saved model as [`ModelFamily::load`] receives it.
pub struct Saved<'a> {
    /// The hyperparameters recorded in the manifest.
    pub params: serde_json::Value,
    pub fitted: Fitted,
    pub tensors: &'a TensorReader,
    /// The model directory, for families that keep side files besides the tensors.
    pub dir: &'a Path,
}

impl Saved<'_> {
    /// The boxed model that `load` reads from the manifest parameters, the fitted state and the
    /// tensors (what every family without side files does).
    pub fn load_with<M: Model + 'static>(
        self,
        load: fn(serde_json::Value, Fitted, &TensorReader) -> Result<M>,
    ) -> Result<Box<dyn Model>> {
        Ok(Box::new(load(self.params, self.fitted, self.tensors)?))
    }
}

/// What data a family needs and how far it scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Applicability {
    /// Learns from explicit ratings (implicit weights stand in where there are none).
    pub needs_ratings: bool,
    /// Needs an item feature table to score anything.
    pub needs_features: bool,
    /// Largest catalog it fits by default (e.g. EASE holds items^2 weights).
    pub max_items: Option<usize>,
    /// `auto` tries it only when named: its fits take far longer than the rest (a neural
    /// sequence model trains for many epochs).
    pub named_only: bool,
}

/// Rough training cost, for choosing what to try first on a large dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cost {
    /// One or two passes over the log.
    Low,
    /// Iterative training linear in the log per epoch.
    Medium,
    /// Quadratic in users or items, or many sampled passes.
    High,
}

/// The size of a training set, which is all a fit's cost is predicted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DataShape {
    pub users: usize,
    pub items: usize,
    pub interactions: usize,
}

/// A fit's predicted cost at a family's defaults on two cores: order-of-magnitude figures for
/// deciding what to skip before anything runs (`auto`), not promises.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub seconds: f64,
    /// Peak memory of the fit.
    pub bytes: f64,
}

impl Estimate {
    /// The figure every family without a closer model of its cost gets from its [`Cost`] class:
    /// time linear in the interactions, memory for 64 factors per user and item plus a copy of
    /// the log.
    pub fn from_class(cost: Cost, shape: &DataShape) -> Self {
        let per_interaction = match cost {
            Cost::Low => 2e-7,
            Cost::Medium => 3e-6,
            Cost::High => 3e-5,
        };
        let n = shape.interactions as f64;
        Self {
            seconds: per_interaction * n,
            bytes: 256.0 * (shape.users + shape.items) as f64 + 32.0 * n,
        }
    }
}

/// A family's cheaper form (see [`ModelFamily::cheaper_form`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CheaperForm {
    /// Spec parameters that make the form, e.g. `("top_items", "8000")`.
    pub params: Vec<(&'static str, String)>,
    /// The predicted cost of a fit in this form.
    pub estimate: Estimate,
    /// What the form gives up, for the selection trace.
    pub description: String,
}

/// A model family: the one place that describes it to the registry.
pub trait ModelFamily: Send + Sync {
    /// Spec and manifest name, e.g. `svd`.
    fn name(&self) -> &'static str;
    /// What its models are for.
    fn task(&self) -> Task;
    /// One line for `kindred models`.
    fn summary(&self) -> &'static str;
    /// Hyperparameters with their defaults (see [`param_infos`]).
    fn params(&self) -> Vec<ParamInfo>;
    /// The algorithm a spec of this family names.
    fn build(&self, spec: &ModelSpec) -> Result<Box<dyn Algorithm>>;
    /// A model saved by one of this family's models.
    fn load(&self, saved: Saved<'_>) -> Result<Box<dyn Model>>;
    /// The hyperparameters `kindred tune` searches; None when it has no search space.
    fn search_space(&self) -> Option<Space> {
        None
    }
    /// What data it needs and how far it scales.
    fn applicability(&self) -> Applicability {
        Applicability::default()
    }
    /// Rough training cost.
    fn cost(&self) -> Cost {
        Cost::Medium
    }
    /// Predicted cost of a fit at the defaults on data of `shape` (see [`Estimate`]); families
    /// whose cost is not linear in the log (item-item solves, pairwise similarities) override it.
    fn estimate(&self, shape: &DataShape) -> Estimate {
        Estimate::from_class(self.cost(), shape)
    }
    /// A cheaper form for data its defaults do not fit: the parameters, fixed through any
    /// search, that make a fit's estimate pass `fits` (e.g. EASE on the most used items
    /// only), with what the form gives up; None when the family has none or none fits.
    fn cheaper_form(
        &self,
        _shape: &DataShape,
        _fits: &dyn Fn(&Estimate) -> bool,
    ) -> Option<CheaperForm> {
        None
    }
    /// The catalog entry.
    fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.name(),
            task: self.task(),
            summary: self.summary(),
            params: self.params(),
        }
    }
}
