//! 95 % bootstrap intervals over images (CheXlocalize reports every figure so).
//!
//! With 60 to 1,000 annotated images a difference of a few hundredths is often noise; an
//! interval says which. The unit of resampling is the image: a resample draws as many
//! images as the set has, with replacement, and a figure is recomputed on the pairs of the
//! drawn images (an image drawn twice counts twice). The generator is SplitMix64, written
//! out here rather than taken from a crate, so that the numpy reference
//! (`scripts/reference/eval_figures_reference.py`) draws the very same images and the
//! intervals are reproducible across versions: same seed, same figures. Indices are
//! Lemire's multiply-shift of a 64-bit draw (a bias below n / 2^64). A resample on which a
//! figure is undefined (no positive pair drawn, say) is dropped; with fewer than half the
//! resamples defined there is no interval. Percentiles are numpy's default (linear).

use rayon::prelude::*;
use serde::Serialize;

/// Resamples by default (`--bootstrap`).
pub const DEFAULT_RESAMPLES: usize = 1000;
/// The seed by default (`--bootstrap-seed`).
pub const DEFAULT_SEED: u64 = 20231207;

/// SplitMix64 (Steele, Lea and Flood 2014).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An index in `0..n`.
    pub fn index(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// How the intervals were drawn (recorded in `summary.json`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BootstrapPlan {
    pub resamples: usize,
    pub seed: u64,
    /// What a resample draws: "image".
    pub unit: &'static str,
}

/// The drawn units of every resample: `resamples` rows of `n` indices, from one stream.
#[derive(Debug, Clone)]
pub struct Resamples {
    pub n: usize,
    draws: Vec<Vec<u32>>,
}

impl Resamples {
    pub fn draw(n: usize, resamples: usize, seed: u64) -> Resamples {
        let mut rng = SplitMix64::new(seed);
        let draws = (0..resamples).map(|_| (0..n).map(|_| rng.index(n) as u32).collect()).collect();
        Resamples { n, draws }
    }

    /// The 2.5 and 97.5 percentiles of `stat` over the resamples (in parallel; the draws are
    /// fixed first, so the result does not depend on the thread count).
    pub fn interval(&self, stat: impl Fn(&[u32]) -> Option<f64> + Sync) -> Option<[f64; 2]> {
        if self.draws.is_empty() || self.n == 0 {
            return None;
        }
        let values: Vec<f64> = self.draws.par_iter().filter_map(|d| stat(d)).collect();
        percentile_interval(values, self.draws.len())
    }
}

impl Resamples {
    /// How many resamples give `stat` a value.
    pub fn defined(&self, stat: impl Fn(&[u32]) -> Option<f64> + Sync) -> usize {
        self.draws.par_iter().filter(|d| stat(d).is_some()).count()
    }
}

/// numpy's `percentile(v, [2.5, 97.5])` (linear), when at least half of `resamples`
/// resamples gave a value.
pub fn percentile_interval(mut v: Vec<f64>, resamples: usize) -> Option<[f64; 2]> {
    if v.is_empty() || 2 * v.len() < resamples {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some([percentile_of_sorted(&v, 2.5), percentile_of_sorted(&v, 97.5)])
}

/// numpy's `percentile(v, q)` with its default linear method, of values sorted ascending
/// (not empty), interpolating from the nearer end as numpy's `_lerp` does.
pub fn percentile_of_sorted(s: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(s.len() - 1);
    let t = pos - lo as f64;
    let d = s[hi] - s[lo];
    if t >= 0.5 {
        s[hi] - d * (1.0 - t)
    } else {
        s[lo] + d * t
    }
}

/// The mean of the values of the pairs of the drawn units (`pairs_of[u]`: unit u's pair
/// values, `None` = not scored); `None` when no value was drawn.
pub fn mean_of_units(draw: &[u32], pairs_of: &[Vec<Option<f64>>]) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for &u in draw {
        for v in pairs_of[u as usize].iter().flatten() {
            sum += v;
            n += 1;
        }
    }
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_first_values() {
        // The reference sequence for seed 0 (Vigna's splitmix64.c).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn a_constant_has_a_point_interval() {
        let units = vec![vec![Some(0.5)]; 20];
        let r = Resamples::draw(20, 200, 1);
        assert_eq!(r.interval(|d| mean_of_units(d, &units)), Some([0.5, 0.5]));
    }

    #[test]
    fn percentiles_are_numpys() {
        // numpy.percentile([1, 2, 3, 4], [2.5, 97.5]) = [1.075, 3.925]
        let i = percentile_interval(vec![4.0, 1.0, 3.0, 2.0], 4).unwrap();
        assert!((i[0] - 1.075).abs() < 1e-12 && (i[1] - 3.925).abs() < 1e-12, "{i:?}");
        assert_eq!(percentile_interval(vec![1.0], 4), None);
    }
}
