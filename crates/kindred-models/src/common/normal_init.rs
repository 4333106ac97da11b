//! Factor matrices initialised from a normal distribution, as the SGD factorisations (SVD,
//! SVD++) start.
//!
//! Every pair of values is one Box-Muller draw from the fit's generator, in order, so the
//! matrix depends only on the generator's state. A million values take long enough (a log and
//! a sine-cosine per pair: about 3% of a 5-fold SVD `kindred eval` on MovieLens 1M) to fill in
//! parallel: each chunk starts its own copy of the generator at its first draw, which
//! SplitMix64 computes in O(1), so the result is the same on any number of threads.

use kindred_core::SplitMix64;
use rayon::prelude::*;

/// Values per parallel chunk (even, so no Box-Muller pair straddles two chunks).
const CHUNK: usize = 1 << 15;

/// `n` values drawn from N(mean, std), as f32; advances `rng` past the draws used.
pub(crate) fn normal_matrix(rng: &mut SplitMix64, n: usize, mean: f64, std: f64) -> Vec<f32> {
    let mut out = vec![0f32; n];
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            // Two draws per pair of values.
            let mut own = rng.ahead((c * CHUNK) as u64);
            for pair in chunk.chunks_mut(2) {
                let (a, b) = own.normal_pair();
                pair[0] = (mean + std * a) as f32;
                if let Some(second) = pair.get_mut(1) {
                    *second = (mean + std * b) as f32;
                }
            }
        });
    *rng = rng.ahead(n.div_ceil(2) as u64 * 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sequential definition: pairs in order, the last pair's second value dropped when
    /// `n` is odd.
    fn sequential(rng: &mut SplitMix64, n: usize, mean: f64, std: f64) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let (a, b) = rng.normal_pair();
            out.push((mean + std * a) as f32);
            out.push((mean + std * b) as f32);
        }
        out.truncate(n);
        out
    }

    #[test]
    fn parallel_chunks_give_the_sequential_values_and_leave_the_generator_where_it_would() {
        for n in [0, 1, 2, 7, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5] {
            let (mut a, mut b) = (SplitMix64::new(9), SplitMix64::new(9));
            assert_eq!(
                normal_matrix(&mut a, n, 0.5, 0.1),
                sequential(&mut b, n, 0.5, 0.1)
            );
            // The next matrix drawn from each generator agrees too.
            assert_eq!(
                normal_matrix(&mut a, 5, 0.0, 1.0),
                sequential(&mut b, 5, 0.0, 1.0)
            );
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build();
        let on_three =
            pool.map(|p| p.install(|| normal_matrix(&mut SplitMix64::new(4), 100_003, 0.0, 1.0)));
        assert_eq!(
            on_three.ok(),
            Some(sequential(&mut SplitMix64::new(4), 100_003, 0.0, 1.0))
        );
    }
}
