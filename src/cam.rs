//! Stage "map": from the feature map F to predictions and class activation maps.
//!
//! For a linear head, `M_k = sum_c W[k, c] F_c`, computed as one matrix product for just the
//! classes that are needed, and the logits as `W mean(F) + b`. Because the mean commutes
//! with the product, `mean(M_k) + b_k` must equal logit k; [`ClassMaps::logit_check`]
//! measures how far it is, per image, as a guard against corrupt maps.

use ndarray::{s, Array2, Array3, Axis};

use crate::model::{FeatureMap, Head};

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
