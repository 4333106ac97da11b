//! The one quantile convention of Kindred's reports and monitors: linear interpolation between
//! order statistics (numpy's default), so a median in `kindred stats` and in a drift check agree.

/// Linear-interpolation quantile of sorted values (`q` in [0, 1]); 0 for no values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
}
