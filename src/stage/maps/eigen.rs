//! EigenCAM's class-agnostic map: the first principal component of the feature map,
//! computed exactly (Jacobi rotations) on the smaller of its two Gram matrices.

use ndarray::{Array1, Array2};

use crate::stage::model::FeatureMap;

/// EigenCAM as pytorch-grad-cam computes it: A = F^T (positions x channels) with each
/// channel centred over positions, projected on A's first right singular vector v, i.e.
/// `A v = s u` with (s^2, u) the top eigenpair of the small positions x positions Gram
/// matrix `A A^T` (cheaper than the channels x channels one for wide backbones). The sign
/// of a singular vector is arbitrary; it is fixed so that the map correlates positively
/// with the mean activation over channels. Returned before the ReLU.
pub fn eigen_projection(f: &FeatureMap) -> Vec<f32> {
    let fm = f.matrix();
    let (c, n) = fm.dim();
    let mut a = Array2::<f64>::zeros((n, c));
    for ch in 0..c {
        let row = fm.row(ch);
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        for p in 0..n {
            a[[p, ch]] = row[p] as f64 - mean;
        }
    }
    // A v = s u: use whichever Gram matrix is smaller.
    let mut proj: Vec<f64> = if n <= c {
        let (lambda, u) = top_eigenpair(&a.dot(&a.t()));
        u.iter().map(|v| v * lambda.max(0.0).sqrt()).collect()
    } else {
        let (_, v) = top_eigenpair(&a.t().dot(&a));
        a.dot(&Array1::from(v)).to_vec()
    };
    let mean_act: Vec<f64> = (0..n).map(|p| fm.column(p).iter().map(|&v| v as f64).sum::<f64>() / c as f64).collect();
    let mm = mean_act.iter().sum::<f64>() / n as f64;
    let corr: f64 = proj.iter().zip(&mean_act).map(|(x, m)| x * (m - mm)).sum();
    if corr < 0.0 {
        proj.iter_mut().for_each(|v| *v = -*v);
    }
    proj.into_iter().map(|v| v as f32).collect()
}

/// Largest eigenvalue and its unit eigenvector of a symmetric positive semi-definite
/// matrix: cyclic Jacobi rotations (exact to rounding) up to [`JACOBI_MAX_N`], power
/// iteration beyond.
fn top_eigenpair(m: &Array2<f64>) -> (f64, Vec<f64>) {
    let n = m.nrows();
    if n > JACOBI_MAX_N {
        return power_iteration(m);
    }
    let mut a = m.clone();
    let mut v = Array2::<f64>::eye(n);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[[i, j]] * a[[i, j]])
            .sum();
        let total: f64 = a.iter().map(|x| x * x).sum();
        if off <= 1e-30 * total.max(1e-300) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[[p, q]];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[[q, q]] - a[[p, p]]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let cs = 1.0 / (t * t + 1.0).sqrt();
                let sn = t * cs;
                for k in 0..n {
                    let (akp, akq) = (a[[k, p]], a[[k, q]]);
                    a[[k, p]] = cs * akp - sn * akq;
                    a[[k, q]] = sn * akp + cs * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[[p, k]], a[[q, k]]);
                    a[[p, k]] = cs * apk - sn * aqk;
                    a[[q, k]] = sn * apk + cs * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[[k, p]], v[[k, q]]);
                    v[[k, p]] = cs * vkp - sn * vkq;
                    v[[k, q]] = sn * vkp + cs * vkq;
                }
            }
        }
    }
    let best = (0..n).max_by(|&i, &j| a[[i, i]].total_cmp(&a[[j, j]])).unwrap_or(0);
    (a[[best, best]], v.column(best).to_vec())
}

/// Above this size Jacobi's O(n^3) sweeps cost more than power iteration.
const JACOBI_MAX_N: usize = 256;

fn power_iteration(m: &Array2<f64>) -> (f64, Vec<f64>) {
    let n = m.nrows();
    let mut v = Array1::from_shape_fn(n, |i| 1.0 + (i as f64 * 0.618).fract());
    let mut lambda = 0.0;
    for _ in 0..20_000 {
        let w = m.dot(&v);
        let norm = w.dot(&w).sqrt();
        if norm == 0.0 {
            break;
        }
        let next = w / norm;
        let l = next.dot(&m.dot(&next));
        let done = (l - lambda).abs() <= 1e-14 * l.abs().max(1e-300);
        v = next;
        lambda = l;
        if done {
            break;
        }
    }
    (lambda, v.to_vec())
}
