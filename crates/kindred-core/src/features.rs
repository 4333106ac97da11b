//! Feature tables for users or items: categorical (multi-valued), numeric, free text and dense
//! vectors brought by the user (e.g. text or image embeddings).
//!
//! A table is keyed by external ids of its own; [`FeatureTable::align`] maps it onto the dense
//! indices of an interaction log, so features known for entities without interactions (new items)
//! are kept and usable for cold start.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::IdMap;

/// One feature value as set by an importer.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureValue {
    /// Zero or more categories (genres, brand, occupation).
    Categories(Vec<String>),
    /// A number (price, age, release year).
    Number(f32),
    /// Free text (title, description).
    Text(String),
    /// A dense vector of fixed dimension per column.
    Vector(Vec<f32>),
}

/// Storage of one column, one entry per entity of the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ColumnData {
    Categorical {
        vocab: IdMap,
        values: Vec<Vec<u32>>,
    },
    Numeric(Vec<f32>),
    Text(Vec<String>),
    Dense {
        dim: usize,
        values: Vec<Option<Vec<f32>>>,
    },
}

impl ColumnData {
    fn kind(&self) -> &'static str {
        match self {
            ColumnData::Categorical { .. } => "categorical",
            ColumnData::Numeric(_) => "numeric",
            ColumnData::Text(_) => "text",
            ColumnData::Dense { .. } => "vector",
        }
    }

    fn grow(&mut self, n: usize) {
        match self {
            ColumnData::Categorical { values, .. } => values.resize(n, Vec::new()),
            ColumnData::Numeric(values) => values.resize(n, f32::NAN),
            ColumnData::Text(values) => values.resize(n, String::new()),
            ColumnData::Dense { values, .. } => values.resize(n, None),
        }
    }
}

/// A named feature column.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureColumn {
    pub name: String,
    pub data: ColumnData,
}

/// Features of one entity kind (users or items).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FeatureTable {
    ids: IdMap,
    columns: Vec<FeatureColumn>,
}

impl FeatureTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Entities with at least one feature set, in insertion order.
    pub fn ids(&self) -> &IdMap {
        &self.ids
    }

    pub fn columns(&self) -> &[FeatureColumn] {
        &self.columns
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&FeatureColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Registers `entity` (so it exists even with no feature) and returns its row.
    pub fn entity(&mut self, entity: &str) -> u32 {
        let row = self.ids.intern(entity);
        let n = self.ids.len();
        for col in &mut self.columns {
            col.data.grow(n);
        }
        row
    }

    /// Sets `column` of `entity`. A column's kind is fixed by its first value; a value of another
    /// kind, or a vector of another dimension, is an error naming the column.
    pub fn set(&mut self, entity: &str, column: &str, value: FeatureValue) -> Result<()> {
        let row = self.entity(entity) as usize;
        let n = self.ids.len();
        let idx = match self.columns.iter().position(|c| c.name == column) {
            Some(i) => i,
            None => {
                let mut data = match &value {
                    FeatureValue::Categories(_) => ColumnData::Categorical {
                        vocab: IdMap::new(),
                        values: Vec::new(),
                    },
                    FeatureValue::Number(_) => ColumnData::Numeric(Vec::new()),
                    FeatureValue::Text(_) => ColumnData::Text(Vec::new()),
                    FeatureValue::Vector(v) => ColumnData::Dense {
                        dim: v.len(),
                        values: Vec::new(),
                    },
                };
                data.grow(n);
                self.columns.push(FeatureColumn {
                    name: column.to_owned(),
                    data,
                });
                self.columns.len() - 1
            }
        };
        let col = &mut self.columns[idx];
        let mismatch = |kind: &str| {
            Error::InvalidInput(format!(
                "feature `{column}` of `{entity}`: expected a {kind} value, got {value:?}"
            ))
        };
        match (&mut col.data, value.clone()) {
            (ColumnData::Categorical { vocab, values }, FeatureValue::Categories(cats)) => {
                let mut idxs: Vec<u32> = cats.iter().map(|c| vocab.intern(c)).collect();
                idxs.sort_unstable();
                idxs.dedup();
                values[row] = idxs;
            }
            (ColumnData::Numeric(values), FeatureValue::Number(x)) => values[row] = x,
            (ColumnData::Text(values), FeatureValue::Text(t)) => values[row] = t,
            (ColumnData::Dense { dim, values }, FeatureValue::Vector(v)) => {
                if v.len() != *dim {
                    return Err(Error::InvalidInput(format!(
                        "feature `{column}` of `{entity}`: vector of dimension {} where the column has {dim}",
                        v.len()
                    )));
                }
                values[row] = Some(v);
            }
            (data, _) => return Err(mismatch(data.kind())),
        }
        Ok(())
    }

    /// For each index of `ids` (e.g. a dataset's item map), the row of this table, if any.
    pub fn align(&self, ids: &IdMap) -> Vec<Option<u32>> {
        ids.externals().iter().map(|e| self.ids.get(e)).collect()
    }

    /// Multi-hot vectors of every categorical column concatenated, per index of `ids`, as sorted
    /// feature indices (a sparse binary vector). Entities without features get an empty vector.
    pub fn categorical_vectors(&self, ids: &IdMap) -> Vec<Vec<u32>> {
        let rows = self.align(ids);
        let mut offsets = Vec::new();
        let mut offset = 0u32;
        for col in &self.columns {
            if let ColumnData::Categorical { vocab, .. } = &col.data {
                offsets.push(offset);
                offset += vocab.len() as u32;
            }
        }
        rows.iter()
            .map(|row| {
                let Some(row) = row else { return Vec::new() };
                let mut out = Vec::new();
                let mut k = 0;
                for col in &self.columns {
                    if let ColumnData::Categorical { values, .. } = &col.data {
                        out.extend(values[*row as usize].iter().map(|v| v + offsets[k]));
                        k += 1;
                    }
                }
                out
            })
            .collect()
    }

    /// True when the table has no entity.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_columns_and_alignment() {
        let mut t = FeatureTable::new();
        t.set(
            "m1",
            "genres",
            FeatureValue::Categories(vec!["Drama".into(), "Comedy".into()]),
        )
        .unwrap();
        t.set(
            "m2",
            "genres",
            FeatureValue::Categories(vec!["Drama".into()]),
        )
        .unwrap();
        t.set("m2", "year", FeatureValue::Number(1995.0)).unwrap();
        t.set("m1", "title", FeatureValue::Text("Toy Story".into()))
            .unwrap();
        t.set("m1", "emb", FeatureValue::Vector(vec![0.1, 0.2]))
            .unwrap();
        t.set("m3", "brand", FeatureValue::Categories(vec!["acme".into()]))
            .unwrap();
        assert!(t.set("m2", "emb", FeatureValue::Vector(vec![0.1])).is_err());
        assert!(t.set("m2", "year", FeatureValue::Text("x".into())).is_err());
        let ids = IdMap::from(vec![
            "m2".to_string(),
            "mX".to_string(),
            "m1".to_string(),
            "m3".to_string(),
        ]);
        assert_eq!(t.align(&ids), vec![Some(1), None, Some(0), Some(2)]);
        let vecs = t.categorical_vectors(&ids);
        assert_eq!(vecs, vec![vec![0], vec![], vec![0, 1], vec![2]]);
        match &t.column("year").unwrap().data {
            ColumnData::Numeric(v) => {
                assert!(v[0].is_nan());
                assert_eq!(v[1], 1995.0);
                assert_eq!(v.len(), 3);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
