//! Search spaces of `kindred tune`: the hyperparameters of a model family worth searching, their
//! types and ranges, and the conversion of a point of the space into a model spec that
//! [`crate::build_algorithm`] accepts. Each family declares its own space
//! ([`crate::family::ModelFamily::search_space`]); the search methods live in kindred-eval.
//!
//! Every numeric parameter is also mapped onto the unit interval (on a log scale where the
//! range spans orders of magnitude), which is where random search samples and where TPE fits its
//! densities. Each range contains the family's default, so the defaults are one point of the
//! space (trial 0 of a search evaluates them).

use kindred_core::SplitMix64;

/// The values one parameter can take.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// Integers in `lo..=hi`, sampled uniformly or log-uniformly.
    Int { lo: i64, hi: i64, log: bool },
    /// Reals in `lo..=hi`, sampled uniformly or log-uniformly.
    Float { lo: f64, hi: f64, log: bool },
    /// One of a few spellings, written into the spec as is.
    Choice(&'static [&'static str]),
}

/// One searched hyperparameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The spec key, e.g. `factors`.
    pub name: &'static str,
    pub domain: Domain,
    /// The family's default value.
    pub default: Value,
}

/// A value of one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    /// Index into the choices.
    Choice(usize),
}

/// One point of a search space: a value per parameter, in the space's order.
pub type Config = Vec<Value>;

/// The search space of one model family.
#[derive(Debug, Clone)]
pub struct Space {
    pub family: &'static str,
    pub params: Vec<Param>,
    /// The iteration parameter successive halving scales down at early rungs (epochs,
    /// iterations); None when the family has no such parameter.
    pub fidelity: Option<&'static str>,
    /// Parameters every point's spec carries unchanged, after the searched ones (a family's
    /// cheaper form: `auto` searches EASE over `lambda` with `top_items` fixed).
    pub fixed: Vec<(&'static str, String)>,
}

/// Significant digits kept in float values, so specs stay readable and round-trip exactly.
const FLOAT_DIGITS: i32 = 3;

impl Param {
    /// An integer parameter in `lo..=hi` (log-uniform when `log`).
    pub fn int(name: &'static str, lo: i64, hi: i64, log: bool, default: i64) -> Self {
        Self {
            name,
            domain: Domain::Int { lo, hi, log },
            default: Value::Int(default),
        }
    }

    /// A real parameter in `lo..=hi` (log-uniform when `log`).
    pub fn float(name: &'static str, lo: f64, hi: f64, log: bool, default: f64) -> Self {
        Self {
            name,
            domain: Domain::Float { lo, hi, log },
            default: Value::Float(default),
        }
    }

    /// One of `options`, the default being `options[default]`.
    pub fn choice(name: &'static str, options: &'static [&'static str], default: usize) -> Self {
        Self {
            name,
            domain: Domain::Choice(options),
            default: Value::Choice(default),
        }
    }
}

/// Rounds to [`FLOAT_DIGITS`] significant digits.
fn round_significant(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(FLOAT_DIGITS - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

impl Param {
    /// Maps a unit-interval coordinate to a value (log-uniform where the domain is log).
    pub fn decode(&self, u: f64) -> Value {
        let u = u.clamp(0.0, 1.0);
        match &self.domain {
            Domain::Int { lo, hi, log } => {
                let x = scale_from_unit(*lo as f64, *hi as f64, *log, u);
                Value::Int((x.round() as i64).clamp(*lo, *hi))
            }
            Domain::Float { lo, hi, log } => {
                let x = round_significant(scale_from_unit(*lo, *hi, *log, u));
                Value::Float(x.clamp(*lo, *hi))
            }
            Domain::Choice(options) => {
                let n = options.len();
                Value::Choice(((u * n as f64) as usize).min(n - 1))
            }
        }
    }

    /// The unit-interval coordinate of a numeric value (the inverse of [`Self::decode`]); for a
    /// choice, the centre of its cell.
    pub fn encode(&self, value: Value) -> f64 {
        match (&self.domain, value) {
            (Domain::Int { lo, hi, log }, Value::Int(v)) => {
                scale_to_unit(*lo as f64, *hi as f64, *log, v as f64)
            }
            (Domain::Float { lo, hi, log }, Value::Float(v)) => scale_to_unit(*lo, *hi, *log, v),
            (Domain::Choice(options), Value::Choice(i)) => (i as f64 + 0.5) / options.len() as f64,
            _ => 0.5,
        }
    }

    /// True when `value` has this parameter's type and lies in its range.
    pub fn contains(&self, value: Value) -> bool {
        match (&self.domain, value) {
            (Domain::Int { lo, hi, .. }, Value::Int(v)) => (*lo..=*hi).contains(&v),
            (Domain::Float { lo, hi, .. }, Value::Float(v)) => (*lo..=*hi).contains(&v),
            (Domain::Choice(options), Value::Choice(i)) => i < options.len(),
            _ => false,
        }
    }

    /// The value as written in a spec.
    pub fn format(&self, value: Value) -> String {
        match (&self.domain, value) {
            (Domain::Choice(options), Value::Choice(i)) => options[i.min(options.len() - 1)].into(),
            (_, Value::Int(v)) => v.to_string(),
            (_, Value::Float(v)) => v.to_string(),
            (_, Value::Choice(i)) => i.to_string(),
        }
    }

    /// The value as JSON (numbers stay numbers, choices are their spelling).
    pub fn json(&self, value: Value) -> serde_json::Value {
        match value {
            Value::Int(v) => v.into(),
            Value::Float(v) => v.into(),
            Value::Choice(_) => self.format(value).into(),
        }
    }
}

fn scale_from_unit(lo: f64, hi: f64, log: bool, u: f64) -> f64 {
    if log {
        (lo.ln() + u * (hi.ln() - lo.ln())).exp()
    } else {
        lo + u * (hi - lo)
    }
}

fn scale_to_unit(lo: f64, hi: f64, log: bool, x: f64) -> f64 {
    let u = if hi <= lo {
        0.5
    } else if log {
        (x.max(lo).ln() - lo.ln()) / (hi.ln() - lo.ln())
    } else {
        (x - lo) / (hi - lo)
    };
    u.clamp(0.0, 1.0)
}

impl Space {
    /// The family's defaults as a point of the space.
    pub fn defaults(&self) -> Config {
        self.params.iter().map(|p| p.default).collect()
    }

    /// A uniform (log-uniform on log scales) random point.
    pub fn sample(&self, rng: &mut SplitMix64) -> Config {
        self.params
            .iter()
            .map(|p| p.decode(rng.next_f64()))
            .collect()
    }

    /// The spec of a point, with the fidelity parameter multiplied by `fidelity_scale`
    /// (1 = full budget; successive halving's early rungs use less, at least one iteration).
    pub fn spec(&self, config: &Config, fidelity_scale: f64) -> String {
        let pairs: Vec<String> = self
            .params
            .iter()
            .zip(config)
            .map(|(p, &v)| {
                let v = match v {
                    Value::Int(n) if Some(p.name) == self.fidelity && fidelity_scale < 1.0 => {
                        Value::Int(((n as f64 * fidelity_scale).round() as i64).max(1))
                    }
                    other => other,
                };
                format!("{}={}", p.name, p.format(v))
            })
            .chain(
                self.fixed
                    .iter()
                    .map(|(name, value)| format!("{name}={value}")),
            )
            .collect();
        if pairs.is_empty() {
            // A family searched over nothing (its defaults only, as `auto` screens one).
            return self.family.to_owned();
        }
        format!("{}:{}", self.family, pairs.join(","))
    }

    /// The point as a JSON object `{name: value}`.
    pub fn params_json(&self, config: &Config) -> serde_json::Value {
        let object: serde_json::Map<String, serde_json::Value> = self
            .params
            .iter()
            .zip(config)
            .map(|(p, &v)| (p.name.to_owned(), p.json(v)))
            .collect();
        serde_json::Value::Object(object)
    }

    /// The unit-interval coordinates of a point.
    pub fn encode(&self, config: &Config) -> Vec<f64> {
        self.params
            .iter()
            .zip(config)
            .map(|(p, &v)| p.encode(v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{build_algorithm, families_with_space, space_for};

    #[test]
    fn unknown_family_lists_the_known_ones() {
        let err = space_for("slopeone").unwrap_err().to_string();
        assert!(err.contains("slopeone"), "{err}");
        assert!(err.contains("svd, svdpp"), "{err}");
    }

    #[test]
    fn defaults_lie_in_every_space_and_specs_build() {
        let mut rng = SplitMix64::new(3);
        for family in &families_with_space() {
            let space = space_for(family).unwrap();
            assert_eq!(space.family, *family);
            for p in &space.params {
                assert!(p.contains(p.default), "{family}.{} default", p.name);
            }
            if let Some(f) = space.fidelity {
                assert!(space.params.iter().any(|p| p.name == f), "{family}");
            }
            let mut configs = vec![space.defaults()];
            configs.extend((0..20).map(|_| space.sample(&mut rng)));
            for config in &configs {
                let spec = space.spec(config, 1.0);
                let algorithm =
                    build_algorithm(&spec).unwrap_or_else(|e| panic!("{spec} does not build: {e}"));
                assert_eq!(algorithm.name(), *family);
            }
        }
    }

    #[test]
    fn samples_stay_in_range_and_log_scales_spread_over_decades() {
        let space = space_for("als").unwrap();
        let mut rng = SplitMix64::new(9);
        let mut below_point_one = 0;
        let n = 2000;
        for _ in 0..n {
            let config = space.sample(&mut rng);
            for (p, &v) in space.params.iter().zip(&config) {
                assert!(p.contains(v), "{} = {v:?}", p.name);
            }
            if let Value::Float(reg) = config[1] {
                if reg < 0.1 {
                    below_point_one += 1;
                }
            }
        }
        // reg is log-uniform on [0.001, 10]: P(reg < 0.1) = 2/4 decades = 0.5; a linear scale
        // would give about 0.01.
        let share = below_point_one as f64 / n as f64;
        assert!((share - 0.5).abs() < 0.05, "share {share}");
    }

    #[test]
    fn fixed_parameters_follow_the_searched_ones_in_every_spec() {
        let mut space = space_for("ease").unwrap();
        space.fixed = vec![("top_items", "1200".to_owned())];
        let spec = space.spec(&space.defaults(), 1.0);
        assert_eq!(spec, "ease:lambda=500,half_life=0,top_items=1200");
        assert_eq!(build_algorithm(&spec).unwrap().name(), "ease");
        let bare = Space {
            family: "popularity",
            params: Vec::new(),
            fidelity: None,
            fixed: vec![("window", "7".to_owned())],
        };
        assert_eq!(bare.spec(&Vec::new(), 1.0), "popularity:window=7");
    }

    #[test]
    fn choices_are_sampled_evenly() {
        let space = space_for("itemknn").unwrap();
        let mut rng = SplitMix64::new(1);
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            if let Value::Choice(i) = space.sample(&mut rng)[2] {
                counts[i] += 1;
            }
        }
        for c in counts {
            assert!((900..1100).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn encode_inverts_decode_and_specs_are_exact() {
        let p = Param {
            name: "x",
            domain: Domain::Float {
                lo: 0.001,
                hi: 10.0,
                log: true,
            },
            default: Value::Float(0.05),
        };
        // 10^(-3 + 0.5 * 4) = 0.1
        assert_eq!(p.decode(0.5), Value::Float(0.1));
        assert!((p.encode(Value::Float(0.1)) - 0.5).abs() < 1e-12);
        assert_eq!(p.decode(0.0), Value::Float(0.001));
        assert_eq!(p.decode(1.0), Value::Float(10.0));
        assert_eq!(round_significant(0.0123456), 0.0123);
        assert_eq!(round_significant(123456.0), 123000.0);
        let space = space_for("svd").unwrap();
        assert_eq!(
            space.spec(&space.defaults(), 1.0),
            "svd:factors=100,epochs=20,lr_all=0.005,reg_all=0.02"
        );
        // Halving's early rungs scale the iteration parameter only.
        assert_eq!(
            space.spec(&space.defaults(), 1.0 / 9.0),
            "svd:factors=100,epochs=2,lr_all=0.005,reg_all=0.02"
        );
    }
}
