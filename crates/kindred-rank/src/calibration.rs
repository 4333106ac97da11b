//! Calibrated recommendations (Steck, "Calibrated Recommendations", RecSys 2018): category
//! distributions of item sets and the smoothed KL miscalibration that the greedy re-ranker
//! trades against relevance, so a list's category mix follows the user's history.

/// Accumulates the category distribution of a set of items, each item spreading one unit of
/// mass evenly over its categories (Steck's p(g|i)); items without categories add no mass.
#[derive(Debug, Clone)]
pub struct CategoryMass {
    mass: Vec<f64>,
    total: f64,
}

impl CategoryMass {
    /// An empty set over `n_categories` categories.
    pub fn new(n_categories: usize) -> Self {
        Self {
            mass: vec![0.0; n_categories],
            total: 0.0,
        }
    }

    /// Adds one item given its category set.
    pub fn add(&mut self, categories: &[u32]) {
        if categories.is_empty() {
            return;
        }
        let share = 1.0 / categories.len() as f64;
        for &g in categories {
            if let Some(m) = self.mass.get_mut(g as usize) {
                *m += share;
                self.total += share;
            }
        }
    }

    /// The normalised distribution (all zeros when no item had a category).
    pub fn distribution(&self) -> Vec<f64> {
        if self.total <= 0.0 {
            return vec![0.0; self.mass.len()];
        }
        self.mass.iter().map(|m| m / self.total).collect()
    }

    /// KL(p || q̃) where q is this set plus one more item with `extra` categories, smoothed as
    /// q̃ = (1 - alpha) q + alpha p. Computed without materialising q.
    pub fn kl_with(&self, p: &[f64], extra: &[u32], alpha: f64) -> f64 {
        let share = if extra.is_empty() {
            0.0
        } else {
            1.0 / extra.len() as f64
        };
        let total = self.total + share * extra.len() as f64;
        let mut kl = 0.0;
        for (g, &pg) in p.iter().enumerate() {
            if pg <= 0.0 {
                continue;
            }
            let mut m = self.mass.get(g).copied().unwrap_or(0.0);
            if extra.contains(&(g as u32)) {
                m += share;
            }
            let q = if total > 0.0 { m / total } else { 0.0 };
            kl += pg * (pg / ((1.0 - alpha) * q + alpha * pg)).ln();
        }
        kl
    }
}

/// The category distribution of `items` (Steck's p(g|u) with uniform item weights).
pub fn category_distribution(
    items: impl IntoIterator<Item = u32>,
    categories: &[Vec<u32>],
    n_categories: usize,
) -> Vec<f64> {
    let mut mass = CategoryMass::new(n_categories);
    for i in items {
        if let Some(c) = categories.get(i as usize) {
            mass.add(c);
        }
    }
    mass.distribution()
}

/// KL(p || (1 - alpha) q + alpha p); categories with p = 0 contribute nothing.
pub fn smoothed_kl(p: &[f64], q: &[f64], alpha: f64) -> f64 {
    p.iter()
        .zip(q)
        .filter(|(&pg, _)| pg > 0.0)
        .map(|(&pg, &qg)| pg * (pg / ((1.0 - alpha) * qg + alpha * pg)).ln())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_by_hand() {
        // p = (1/2, 1/2), q = (1, 0), alpha = 0.01: q̃ = (0.995, 0.005), so
        // KL = 0.5 ln(0.5 / 0.995) + 0.5 ln(0.5 / 0.005) = 0.5 (-0.688135) + 0.5 (4.605170).
        let kl = smoothed_kl(&[0.5, 0.5], &[1.0, 0.0], 0.01);
        assert!((kl - 1.958518).abs() < 1e-6, "{kl}");
        assert!(smoothed_kl(&[0.3, 0.7], &[0.3, 0.7], 0.01).abs() < 1e-12);
        assert!(smoothed_kl(&[0.0, 1.0], &[0.5, 0.5], 0.01) > 0.0);
    }

    #[test]
    fn distribution_by_hand() {
        // Item 0 is {0, 1}, item 1 is {1}, item 2 has none: mass (0.5, 1.5) over 2 -> (1/4, 3/4).
        let cats = vec![vec![0, 1], vec![1], vec![]];
        let p = category_distribution([0, 1, 2], &cats, 2);
        assert_eq!(p, vec![0.25, 0.75]);
        assert_eq!(category_distribution([2], &cats, 2), vec![0.0, 0.0]);
    }

    #[test]
    fn incremental_kl_matches_direct() {
        let cats = [vec![0u32, 2], vec![1], vec![2]];
        let p = [0.2, 0.5, 0.3];
        let mut mass = CategoryMass::new(3);
        mass.add(&cats[0]);
        let mut both = mass.clone();
        both.add(&cats[1]);
        let direct = smoothed_kl(&p, &both.distribution(), 0.05);
        assert!((mass.kl_with(&p, &cats[1], 0.05) - direct).abs() < 1e-12);
        // Adding the missing category 1 lowers the miscalibration; adding more of 2 does not help as much.
        assert!(mass.kl_with(&p, &cats[1], 0.05) < mass.kl_with(&p, &cats[2], 0.05));
    }
}
