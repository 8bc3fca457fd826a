//! ROAD's noisy linear imputation (Rong et al. 2022, as pytorch-grad-cam ships it): every
//! removed pixel takes the weighted mean of its eight neighbours (1/6 across, 1/12
//! diagonally; neighbours outside the image drop out of the mean), solved jointly over all
//! removed pixels, then Gaussian noise of standard deviation `noise` is added.
//!
//! The system is the one pytorch-grad-cam builds and hands to scipy's `spsolve`. Its
//! matrix is symmetric (the weights of opposite neighbours are equal) and, whenever some
//! pixel is kept, positive definite, so a sparse Cholesky factorisation (faer's, with its
//! fill-reducing ordering) solves it directly, in f64, for the three channels at once. The noise comes from SplitMix64 through the
//! Box-Muller transform, so the numpy reference (`scripts/reference/faithfulness_reference.py`)
//! adds the very same noise: `torch.randn` cannot be reproduced outside torch.

use super::perturb::Planes;
use crate::eval::bootstrap::SplitMix64;

/// ROAD's noise, in the units of the network input (pytorch-grad-cam's default).
pub const ROAD_NOISE: f64 = 0.01;

/// Neighbour offsets `(dy, dx)` and weights, pytorch-grad-cam's `neighbors_weights`.
const NEIGHBOURS: [((i64, i64), f64); 8] = [
    ((1, 1), 1.0 / 12.0),
    ((0, 1), 1.0 / 6.0),
    ((-1, 1), 1.0 / 12.0),
    ((1, -1), 1.0 / 12.0),
    ((0, -1), 1.0 / 6.0),
    ((-1, -1), 1.0 / 12.0),
    ((1, 0), 1.0 / 6.0),
    ((-1, 0), 1.0 / 6.0),
];

/// Standard normal numbers from SplitMix64 (Box-Muller, both values of each pair used).
pub struct Normals {
    rng: SplitMix64,
    spare: Option<f64>,
}

impl Normals {
    pub fn new(seed: u64) -> Normals {
        Normals { rng: SplitMix64::new(seed), spare: None }
    }

    pub fn sample(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let unit = |v: u64| (v >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let u1 = 1.0 - unit(self.rng.next_u64());
        let u2 = unit(self.rng.next_u64());
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        self.spare = Some(r * t.sin());
        r * t.cos()
    }
}

/// The linear system over the removed pixels.
struct System {
    /// Removed pixels, ascending.
    unknowns: Vec<usize>,
    /// Per unknown: the weights of its in-image neighbours (the diagonal).
    diagonal: Vec<f64>,
    /// Per unknown: its removed neighbours (as unknown indices) with their weights.
    coupled: Vec<Vec<(u32, f64)>>,
    /// Per unknown: its kept neighbours (pixel indices) with their weights.
    known: Vec<Vec<(u32, f64)>>,
}

fn system(removed: &[bool], h: usize, w: usize) -> System {
    let unknowns: Vec<usize> = (0..removed.len()).filter(|&p| removed[p]).collect();
    let mut index = vec![u32::MAX; removed.len()];
    for (k, &p) in unknowns.iter().enumerate() {
        index[p] = k as u32;
    }
    let mut s = System { diagonal: Vec::new(), coupled: Vec::new(), known: Vec::new(), unknowns: Vec::new() };
    for &p in &unknowns {
        let (y, x) = ((p / w) as i64, (p % w) as i64);
        let (mut d, mut c, mut k) = (0.0, Vec::new(), Vec::new());
        for ((dy, dx), wt) in NEIGHBOURS {
            let (ny, nx) = (y + dy, x + dx);
            if ny < 0 || nx < 0 || ny >= h as i64 || nx >= w as i64 {
                continue;
            }
            d += wt;
            let q = ny as usize * w + nx as usize;
            if removed[q] {
                c.push((index[q], wt));
            } else {
                k.push((q as u32, wt));
            }
        }
        s.diagonal.push(d);
        s.coupled.push(c);
        s.known.push(k);
    }
    s.unknowns = unknowns;
    s
}

impl System {
    /// The solution for every channel's right-hand side (columns of `rhs`), by a sparse
    /// Cholesky factorisation of the (symmetric, positive definite) matrix.
    fn solve(&self, rhs: &mut faer::Mat<f64>) -> Result<(), String> {
        use faer::linalg::solvers::Solve;
        use faer::sparse::{SparseColMat, Triplet};
        let n = self.unknowns.len();
        let mut t = Vec::with_capacity(n * 9);
        for i in 0..n {
            t.push(Triplet::new(i, i, self.diagonal[i]));
            t.extend(self.coupled[i].iter().map(|&(j, wt)| Triplet::new(i, j as usize, -wt)));
        }
        let m = SparseColMat::<usize, f64>::try_new_from_triplets(n, n, &t).map_err(|e| format!("{e:?}"))?;
        let llt = m.sp_cholesky(faer::Side::Lower).map_err(|e| format!("imputation system: {e:?}"))?;
        llt.solve_in_place(rhs.as_mut());
        Ok(())
    }
}

/// `x` with its `removed` pixels imputed from the kept ones, plus noise; `Ok(None)` when
/// every pixel is removed (nothing to impute from).
pub fn impute(x: &Planes, removed: &[bool], noise: f64, seed: u64) -> Result<Option<Planes>, String> {
    if removed.iter().all(|&r| r) {
        return Ok(None);
    }
    let s = system(removed, x.h, x.w);
    let n = x.pixels();
    let mut rhs = faer::Mat::<f64>::from_fn(s.unknowns.len(), x.c, |i, ch| {
        let plane = &x.data[ch * n..(ch + 1) * n];
        s.known[i].iter().map(|&(q, wt)| wt * plane[q as usize] as f64).sum()
    });
    if !s.unknowns.is_empty() {
        s.solve(&mut rhs)?;
    }
    let mut out = x.clone();
    let mut normals = Normals::new(seed);
    for ch in 0..x.c {
        for (k, &p) in s.unknowns.iter().enumerate() {
            out.data[ch * n + p] = (rhs[(k, ch)] + noise * normals.sample()) as f32;
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linear_ramp_is_imputed_exactly_without_noise() {
        // Inside the image, the 8-neighbour mean of a linear function is the function.
        let (h, w) = (6, 7);
        let x = Planes { c: 1, h, w, data: (0..h * w).map(|p| ((p / w) * 2 + (p % w)) as f32).collect() };
        let mut removed = vec![false; h * w];
        for p in [15, 16, 22, 23, 24, 30] {
            removed[p] = true;
        }
        let mut spoiled = x.clone();
        for (p, r) in removed.iter().enumerate() {
            if *r {
                spoiled.data[p] = 100.0;
            }
        }
        let y = impute(&spoiled, &removed, 0.0, 1).unwrap().unwrap();
        for p in 0..h * w {
            assert!((y.data[p] - x.data[p]).abs() < 1e-5, "pixel {p}: {} vs {}", y.data[p], x.data[p]);
        }
        assert!(impute(&x, &vec![true; h * w], 0.0, 1).unwrap().is_none());
    }

    #[test]
    fn normals_are_standard() {
        let mut g = Normals::new(7);
        let v: Vec<f64> = (0..20000).map(|_| g.sample()).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "{mean} {var}");
    }
}
