//! Model specs (`name:key=value,...`) and their conversion into typed hyperparameters.

use std::collections::BTreeMap;

use kindred_core::{Error, Result};
use serde::de::DeserializeOwned;

/// A parsed model spec such as `svd:factors=100,epochs=20`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub name: String,
    pub params: BTreeMap<String, String>,
}

impl ModelSpec {
    /// Parses `name[:key=value,...]`.
    pub fn parse(spec: &str) -> Result<Self> {
        let spec = spec.trim();
        let (name, rest) = match spec.split_once(':') {
            Some((n, r)) => (n.trim(), r.trim()),
            None => (spec, ""),
        };
        if name.is_empty() {
            return Err(Error::spec("model", spec, "missing model name"));
        }
        let mut params = BTreeMap::new();
        for pair in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| Error::spec("model", spec, format!("`{pair}` is not key=value")))?;
            params.insert(k.trim().to_owned(), v.trim().to_owned());
        }
        Ok(Self {
            name: name.to_owned(),
            params,
        })
    }

    /// Deserialises the parameters into `P` (which should deny unknown fields), typing values
    /// as numbers or booleans where they parse as such.
    pub fn typed<P: DeserializeOwned>(&self) -> Result<P> {
        let mut object = serde_json::Map::new();
        for (k, v) in &self.params {
            let value = if let Ok(i) = v.parse::<i64>() {
                serde_json::Value::from(i)
            } else if let Ok(f) = v.parse::<f64>() {
                serde_json::Value::from(f)
            } else if let Ok(b) = v.parse::<bool>() {
                serde_json::Value::from(b)
            } else {
                serde_json::Value::from(v.as_str())
            };
            object.insert(k.clone(), value);
        }
        serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|e| Error::spec("model parameters", self.to_string(), e.to_string()))
    }
}

/// Checks of hyperparameter values shared by the models' `validate`; errors read
/// `model: name must be ..., got value`.
pub(crate) mod check {
    use kindred_core::{Error, Result};

    /// A finite number above zero.
    pub fn positive(model: &str, name: &str, value: f64) -> Result<()> {
        if value.is_finite() && value > 0.0 {
            return Ok(());
        }
        Err(Error::InvalidInput(format!(
            "{model}: {name} must be a positive number, got {value}"
        )))
    }

    /// A finite number, zero or above.
    pub fn non_negative(model: &str, name: &str, value: f64) -> Result<()> {
        if value.is_finite() && value >= 0.0 {
            return Ok(());
        }
        Err(Error::InvalidInput(format!(
            "{model}: {name} must be a non-negative number, got {value}"
        )))
    }

    /// A count of at least one.
    pub fn at_least_one(model: &str, name: &str, value: usize) -> Result<()> {
        if value >= 1 {
            return Ok(());
        }
        Err(Error::InvalidInput(format!(
            "{model}: {name} must be at least 1"
        )))
    }
}

impl std::fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        for (i, (k, v)) in self.params.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { ':' } else { ',' })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_the_model_and_parameter() {
        assert!(check::positive("m", "lr", 0.1).is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = check::positive("m", "lr", bad).unwrap_err().to_string();
            assert!(err.contains("m: lr must be a positive number"), "{err}");
        }
        assert!(check::non_negative("m", "reg", 0.0).is_ok());
        let err = check::non_negative("m", "reg", -0.5)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("m: reg must be a non-negative number, got -0.5"),
            "{err}"
        );
        assert!(check::at_least_one("m", "k", 1).is_ok());
        let err = check::at_least_one("m", "k", 0).unwrap_err().to_string();
        assert!(err.contains("m: k must be at least 1"), "{err}");
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct P {
        factors: usize,
        reg: f32,
        method: String,
        verbose: bool,
    }
    impl Default for P {
        fn default() -> Self {
            Self {
                factors: 10,
                reg: 0.1,
                method: "als".into(),
                verbose: false,
            }
        }
    }

    #[test]
    fn parses_and_types_params() {
        let spec = ModelSpec::parse("svd:factors=100, reg=0.05,method=sgd,verbose=true").unwrap();
        assert_eq!(spec.name, "svd");
        let p: P = spec.typed().unwrap();
        assert_eq!(
            p,
            P {
                factors: 100,
                reg: 0.05,
                method: "sgd".into(),
                verbose: true
            }
        );
        let d: P = ModelSpec::parse("svd").unwrap().typed().unwrap();
        assert_eq!(d, P::default());
        let err = ModelSpec::parse("svd:colour=red")
            .unwrap()
            .typed::<P>()
            .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        assert!(ModelSpec::parse("svd:factors").is_err());
        assert!(ModelSpec::parse(":a=1").is_err());
        assert_eq!(
            spec.to_string(),
            "svd:factors=100,method=sgd,reg=0.05,verbose=true"
        );
    }
}
