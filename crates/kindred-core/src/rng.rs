//! A small, seedable, portable pseudo-random generator.
//!
//! Splits, shuffles, synthetic data and SGD must be reproducible from a seed on every platform
//! and crate version, so Kindred owns its generator (SplitMix64) rather than depend on one whose
//! stream may change between releases.

/// SplitMix64 (Steele, Lea, Flood 2014): fast, passes BigCrush, trivially seedable.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for the `stream`-th independent sub-task of `seed` (e.g. one per thread).
    pub fn stream(seed: u64, stream: u64) -> Self {
        let mut base = Self::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        base.next_u64();
        base
    }

    /// The generator `new(seed)` becomes after `draws` calls of `next_u64`, in O(1): the state
    /// only ever advances by a constant, so any draw of a sequence can be computed on its own.
    pub fn at(seed: u64, draws: u64) -> Self {
        Self::new(seed.wrapping_add(draws.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
    }

    /// The generator this one becomes after `draws` more calls of `next_u64`, in O(1).
    pub fn ahead(&self, draws: u64) -> Self {
        Self::at(self.state, draws)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `[0, n)`; `n` must be positive. Lemire's multiply-shift (bias < 2^-32 for n < 2^32).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Standard normal by Box-Muller.
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Two independent standard normals from one Box-Muller draw (half the cost per normal).
    pub fn normal_pair(&mut self) -> (f64, f64) {
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        let radius = (-2.0 * u1.ln()).sqrt();
        let (sin, cos) = (2.0 * std::f64::consts::PI * u2).sin_cos();
        (radius * cos, radius * sin)
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// The SplitMix64 finaliser: a good 64-bit hash of one integer.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over `bytes`, then [`mix64`]: a hash that is the same in every process and on every
/// platform (unlike std's `DefaultHasher`), for routing ids between machines and fingerprints.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3);
    }
    mix64(h)
}

/// A seeded 64-bit key of a (user, item) pair of external ids: FNV-1a over the UTF-8 bytes of
/// `user`, one 0x1F byte and `item`, XOR `seed`, then [`mix64`]. Simple enough to reproduce outside
/// Rust: `bench/peers` computes the same key in Python so both tools break ties identically.
pub fn pair_key(seed: u64, user: &str, item: &str) -> u64 {
    const OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01B3;
    let mut h = OFFSET;
    for &b in user.as_bytes().iter().chain(&[0x1F]).chain(item.as_bytes()) {
        h = (h ^ b as u64).wrapping_mul(PRIME);
    }
    mix64(h ^ seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_is_fnv1a_then_mix() {
        assert_eq!(stable_hash(b""), mix64(0xCBF2_9CE4_8422_2325));
        // pair_key with seed 0 hashes "user", 0x1F, "item" the same way.
        assert_eq!(stable_hash(b"u1\x1Fi2"), pair_key(0, "u1", "i2"));
    }

    #[test]
    fn at_jumps_to_the_same_draw_as_stepping() {
        let mut stepped = SplitMix64::new(7);
        for draws in 0..50u64 {
            assert_eq!(SplitMix64::at(7, draws).next_u64(), stepped.next_u64());
        }
    }

    #[test]
    fn pair_key_is_fnv1a_then_mix() {
        // FNV-1a 64 of the single byte 0x1F (offset ^ 0x1F, times the prime), computed outside Rust.
        assert_eq!(pair_key(0, "", ""), mix64(0xAF63D24C8601DB8E));
        // Pinned values: bench/peers/implicit_lightfm.py must compute the same keys.
        assert_eq!(pair_key(42, "1", "2"), 0x5D403F6A1CD9B111);
        assert_eq!(pair_key(42, "10", "1193"), 0x2A6507EBD2BA46B8);
        assert_ne!(pair_key(42, "1", "23"), pair_key(42, "12", "3"));
        assert_ne!(pair_key(42, "1", "2"), pair_key(43, "1", "2"));
        assert_eq!(pair_key(7, "u", "i"), pair_key(7, "u", "i"));
    }

    #[test]
    fn same_seed_same_stream() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = SplitMix64::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = SplitMix64::new(7);
        for x in a {
            assert_eq!(x, r.next_u64());
        }
    }

    #[test]
    fn uniform_and_normal_moments() {
        let mut r = SplitMix64::new(42);
        let n = 200_000;
        let mean_u: f64 = (0..n).map(|_| r.next_f64()).sum::<f64>() / n as f64;
        assert!((mean_u - 0.5).abs() < 0.01);
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.02);
        let pairs: Vec<(f64, f64)> = (0..n / 2).map(|_| r.normal_pair()).collect();
        let m2 = |f: fn(&(f64, f64)) -> f64| pairs.iter().map(f).sum::<f64>() / pairs.len() as f64;
        assert!(m2(|p| p.0).abs() < 0.01 && m2(|p| p.1).abs() < 0.01);
        assert!((m2(|p| p.0 * p.0) - 1.0).abs() < 0.02 && (m2(|p| p.1 * p.1) - 1.0).abs() < 0.02);
        assert!(m2(|p| p.0 * p.1).abs() < 0.01, "the pair is uncorrelated");
        assert!((0..1000).all(|_| r.below(7) < 7));
    }
}
