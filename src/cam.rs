//! Stage "map": from the feature map F to predictions and class activation maps.
//!
//! For a linear head, `M_k = sum_c W[k, c] F_c`, computed as one matrix product for just the
//! classes that are needed, and the logits as `W mean(F) + b`. Because the mean commutes
//! with the product, `mean(M_k) + b_k` must equal logit k; [`ClassMaps::logit_check`]
//! measures how far it is, per image, as a guard against corrupt maps.
//!
//! For other heads the gradient-based and gradient-free methods of [`MapMethod`] use the
//! head program (`model::head`): with a global *average* pooling, `dy/dF[c, p]` is the
//! same at every position p, namely `(dy/dg_c) / P` (P = h * w positions), so every
//! gradient method reduces to channel weights times F, computed in closed form.
//! Consequences stated once here: HiResCAM (`sum_c dy/dF_c * F_c`) equals Grad-CAM's
//! raw map exactly, and for a linear head Grad-CAM equals CAM / P, i.e. CAM after ReLU
//! and min-max. Every method but `cam` applies a ReLU to its map, as pytorch-grad-cam
//! does; `cam` keeps the raw map (its mean is the logit).

use ndarray::{s, Array1, Array2, Array3, Axis};
use serde::{Deserialize, Serialize};

use crate::model::head::HeadProgram;
use crate::model::{FeatureMap, Head};

/// How class maps are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MapMethod {
    /// Zhou et al. 2016: `sum_c W[k, c] F_c` (linear and identity heads).
    #[serde(rename = "cam")]
    Cam,
    /// Selvaraju et al. 2017: ReLU(sum_c mean_p(dy/dF_c) F_c).
    #[serde(rename = "gradcam")]
    GradCam,
    /// Chattopadhyay et al. 2018, first-order closed form as in pytorch-grad-cam.
    #[serde(rename = "gradcam++")]
    GradCamPlusPlus,
    /// Draelos & Carin 2020: ReLU(sum_c dy/dF_c * F_c).
    #[serde(rename = "hirescam")]
    HiResCam,
    /// Muhammad & Yeasin 2020: first principal component of F; class-agnostic.
    #[serde(rename = "eigencam")]
    EigenCam,
    /// Ramaswamy & Desai 2020: weights (y - y_without_channel_c) / y, forward only.
    #[serde(rename = "ablationcam")]
    AblationCam,
}

/// pytorch-grad-cam's epsilon in the Grad-CAM++ denominator; it matters (see tests).
pub const GRADCAM_PP_EPS: f64 = 1e-6;

impl MapMethod {
    pub const ALL: [MapMethod; 6] = [
        MapMethod::Cam,
        MapMethod::GradCam,
        MapMethod::GradCamPlusPlus,
        MapMethod::HiResCam,
        MapMethod::EigenCam,
        MapMethod::AblationCam,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            MapMethod::Cam => "cam",
            MapMethod::GradCam => "gradcam",
            MapMethod::GradCamPlusPlus => "gradcam++",
            MapMethod::HiResCam => "hirescam",
            MapMethod::EigenCam => "eigencam",
            MapMethod::AblationCam => "ablationcam",
        }
    }

    pub fn parse(s: &str) -> Result<MapMethod, String> {
        MapMethod::ALL.iter().copied().find(|m| m.name() == s).ok_or_else(|| {
            format!(
                "unknown map method '{s}': {}",
                MapMethod::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// Whether the method works with this head; the error says why not and what to use.
    pub fn applies(&self, head: &Head, has_program: bool) -> Result<(), String> {
        match (self, head) {
            (MapMethod::Cam, Head::Other { op, node_name, .. }) => Err(format!(
                "method \"cam\" needs a linear head, but the head has {op} '{node_name}'; use method = \"gradcam\" (or another gradient method)"
            )),
            (MapMethod::Cam | MapMethod::EigenCam, _) => Ok(()),
            (_, Head::Other { program: Err(e), .. }) if !has_program => Err(format!(
                "method \"{}\" needs to evaluate the head, and {e}; method \"eigencam\" does not need the head",
                self.name()
            )),
            _ => Ok(()),
        }
    }

    /// Whether the maps depend on the class.
    pub fn class_specific(&self) -> bool {
        *self != MapMethod::EigenCam
    }
}

/// Scores of one image.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub logits: Vec<f32>,
    pub probs: Vec<f32>,
    /// Class indices by descending probability (ties: lower index first), `top_k` long.
    pub top: Vec<usize>,
}

impl Prediction {
    pub fn from_logits(logits: Vec<f32>, top_k: usize) -> Prediction {
        let probs = softmax(&logits);
        let mut idx: Vec<usize> = (0..logits.len()).collect();
        idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        idx.truncate(top_k.max(1).min(logits.len()));
        Prediction { logits, probs, top: idx }
    }

    pub fn top1(&self) -> usize {
        self.top[0]
    }
}

/// Numerically stable softmax (computed in f64).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let m = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let e: Vec<f64> = logits.iter().map(|&l| (l as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| (v / s) as f32).collect()
}

/// Raw class maps at feature resolution for a set of classes.
#[derive(Debug, Clone)]
pub struct ClassMaps {
    pub classes: Vec<usize>,
    /// classes.len() x h x w.
    pub maps: Array3<f32>,
    /// The bias of each listed class (0 for identity heads).
    pub bias: Vec<f32>,
}

impl ClassMaps {
    /// CAM for `classes` under `head`; `None` when the head is not linear or identity.
    pub fn cam(head: &Head, f: &FeatureMap, classes: &[usize]) -> Option<ClassMaps> {
        let (h, w) = (f.height, f.width);
        let fm = f.matrix();
        let (maps2, bias): (Array2<f32>, Vec<f32>) = match head {
            Head::Linear(lin) => {
                let wsel = lin.weight.select(Axis(0), classes);
                (wsel.dot(&fm), classes.iter().map(|&k| lin.bias[k]).collect())
            }
            Head::Identity => (fm.select(Axis(0), classes), vec![0.0; classes.len()]),
            Head::Other { .. } => return None,
        };
        let maps = maps2.into_shape_with_order((classes.len(), h, w)).expect("k x h x w");
        Some(ClassMaps { classes: classes.to_vec(), maps, bias })
    }

    /// Maps of `classes` by `method` (not `cam`, see [`ClassMaps::cam`]), after the ReLU;
    /// `program` is the head, needed by every method but EigenCAM.
    pub fn by_method(
        method: MapMethod,
        program: Option<&HeadProgram>,
        f: &FeatureMap,
        classes: &[usize],
    ) -> Result<ClassMaps, String> {
        let mut maps = Array3::zeros((classes.len(), f.height, f.width));
        if method == MapMethod::EigenCam {
            let m = eigen_projection(f);
            maps.iter_mut().zip(m.iter().cycle()).for_each(|(o, v)| *o = v.max(0.0));
        } else {
            let fm = f.matrix();
            for (i, w) in channel_weights(method, program, f, classes)?.iter().enumerate() {
                let m = w.dot(&fm).mapv(|v| v.max(0.0));
                maps.slice_mut(s![i, .., ..]).assign(&m.into_shape_with_order((f.height, f.width)).expect("h x w"));
            }
        }
        Ok(ClassMaps { classes: classes.to_vec(), maps, bias: vec![0.0; classes.len()] })
    }

    /// max over the listed classes of |mean(M_k) + b_k - logit_k|.
    pub fn logit_check(&self, logits: &[f32]) -> f32 {
        self.classes
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let m = self.maps.slice(s![i, .., ..]);
                let mean = m.iter().map(|&v| v as f64).sum::<f64>() / m.len() as f64;
                (mean + self.bias[i] as f64 - logits[k] as f64).abs() as f32
            })
            .fold(0f32, |a, d| if d.is_nan() { f32::NAN } else { a.max(d) })
    }

    pub fn map(&self, i: usize) -> ndarray::ArrayView2<'_, f32> {
        self.maps.slice(s![i, .., ..])
    }
}

/// Channel weights w (one per feature channel) of a gradient or ablation method for each
/// class: the raw map is `sum_c w_c F_c`. With a global average pooling the gradient
/// `dy/dF[c, p]` is `(dy/dg_c) / P` at every position.
pub fn channel_weights(
    method: MapMethod,
    program: Option<&HeadProgram>,
    f: &FeatureMap,
    classes: &[usize],
) -> Result<Vec<Array1<f32>>, String> {
    let p = (f.height * f.width) as f64;
    let g = f.pooled();
    let prog = program.ok_or_else(|| format!("method {} needs the head program", method.name()))?;
    Ok(match method {
        MapMethod::Cam | MapMethod::EigenCam => return Err(format!("{} has no channel weights", method.name())),
        MapMethod::GradCam | MapMethod::HiResCam => {
            let trace = prog.trace(&g);
            classes.iter().map(|&k| prog.gradient(&trace, k).mapv(|d| (d as f64 / p) as f32)).collect()
        }
        MapMethod::GradCamPlusPlus => {
            let trace = prog.trace(&g);
            classes
                .iter()
                .map(|&k| {
                    let grad = prog.gradient(&trace, k);
                    Array1::from_shape_fn(g.len(), |c| {
                        // G = dy/dF[c, p], the same at every position; sum_p F_c = P g_c.
                        let gg = grad[c] as f64 / p;
                        if gg == 0.0 {
                            return 0.0;
                        }
                        let sum_f = g[c] as f64 * p;
                        let aij = gg * gg / (2.0 * gg * gg + sum_f * gg * gg * gg + GRADCAM_PP_EPS);
                        (p * gg.max(0.0) * aij) as f32
                    })
                })
                .collect()
        }
        MapMethod::AblationCam => {
            let y = prog.forward(&g);
            classes
                .iter()
                .map(|&k| Array1::from_iter(prog.ablated_logits(&g, k).iter().map(|&ya| (y[k] - ya) / y[k])))
                .collect()
        }
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LinearHead;
    use ndarray::array;

    #[test]
    fn softmax_sums_to_one_and_orders() {
        let p = softmax(&[1.0, 2.0, 3.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // Hand computation: e^3 / (e + e^2 + e^3) = 0.665241.
        assert!((p[2] - 0.665_241).abs() < 1e-5);
        let pr = Prediction::from_logits(vec![0.5, 3.0, 3.0, -1.0], 3);
        assert_eq!(pr.top, vec![1, 2, 0]);
    }

    #[test]
    fn cam_of_hand_computed_linear_head() {
        // F: 2 channels on a 1x2 map; W = [[1, 2], [0, -1]], b = [0.5, 1].
        let f = FeatureMap::from_chw(array![[1.0, 3.0], [2.0, 4.0]], 1, 2);
        let head = Head::Linear(LinearHead {
            weight: array![[1.0, 2.0], [0.0, -1.0]],
            bias: array![0.5, 1.0],
            dense_op: "Gemm".into(),
        });
        let cm = ClassMaps::cam(&head, &f, &[1, 0]).unwrap();
        // M_1 = -F_1 = [-2, -4]; M_0 = F_0 + 2 F_1 = [5, 11].
        assert_eq!(cm.maps.as_slice().unwrap(), &[-2.0, -4.0, 5.0, 11.0]);
        // logits: g = [2, 3] -> [2 + 6 + 0.5, -3 + 1] = [8.5, -2].
        let logits = crate::model::linear_logits(
            match &head {
                Head::Linear(l) => l,
                _ => unreachable!(),
            },
            &f,
        );
        assert_eq!(logits, vec![8.5, -2.0]);
        assert!(cm.logit_check(&logits) < 1e-6);
    }
}
