//! Scores of one image: the logits, their probabilities, and the classes ranked by them.

use serde::{Deserialize, Serialize};

/// How logits become probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// One class per image: a softmax over the classes.
    #[default]
    Softmax,
    /// Multi-label: each class its own sigmoid, independent of the others.
    Sigmoid,
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Softmax => "softmax",
            Activation::Sigmoid => "sigmoid",
        }
    }

    /// The probabilities of `logits`.
    pub fn probabilities(self, logits: &[f32]) -> Vec<f32> {
        match self {
            Activation::Softmax => softmax(logits),
            Activation::Sigmoid => logits.iter().map(|&l| sigmoid(l)).collect(),
        }
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
    /// Softmax probabilities of `logits` and the `top_k` classes.
    pub fn from_logits(logits: Vec<f32>, top_k: usize) -> Prediction {
        Prediction::new(logits, top_k, Activation::Softmax)
    }

    /// Probabilities of `logits` by `activation`, and the `top_k` classes.
    pub fn new(logits: Vec<f32>, top_k: usize, activation: Activation) -> Prediction {
        let probs = activation.probabilities(&logits);
        let top = top_classes(&probs, top_k);
        Prediction { logits, probs, top }
    }

    /// The mean of several passes' probabilities (`[cam] scales`, `flip`), each by
    /// `activation`, and the `top_k` classes by it. `logits` are then the passes' mean
    /// logits, for the record: the probabilities are not computed from them (the mean of
    /// softmaxes is not the softmax of the mean).
    pub fn averaged<'a>(passes: impl Iterator<Item = &'a [f32]>, top_k: usize, activation: Activation) -> Prediction {
        let (mut logits, mut probs, mut n) = (Vec::new(), Vec::new(), 0usize);
        for l in passes {
            if n == 0 {
                (logits, probs) = (vec![0f64; l.len()], vec![0f64; l.len()]);
            }
            logits.iter_mut().zip(l).for_each(|(s, &v)| *s += v as f64);
            probs.iter_mut().zip(activation.probabilities(l)).for_each(|(s, v)| *s += v as f64);
            n += 1;
        }
        let mean = |v: Vec<f64>| v.into_iter().map(|s| (s / n.max(1) as f64) as f32).collect::<Vec<f32>>();
        let (logits, probs) = (mean(logits), mean(probs));
        let top = top_classes(&probs, top_k);
        Prediction { logits, probs, top }
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

/// The logistic function, computed in f64 without overflow for either sign.
pub fn sigmoid(l: f32) -> f32 {
    let l = l as f64;
    let s = if l >= 0.0 { 1.0 / (1.0 + (-l).exp()) } else { l.exp() / (1.0 + l.exp()) };
    s as f32
}

/// `classes` by descending probability, ties by lower index first: the one order in which
/// cambox lists classes (`top_k`, `topk:K`, `above:P`).
pub fn ranked(probs: &[f32], classes: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut idx: Vec<usize> = classes.into_iter().collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    idx
}

/// The `top_k` classes (at least one) by descending probability.
fn top_classes(probs: &[f32], top_k: usize) -> Vec<usize> {
    let mut idx = ranked(probs, 0..probs.len());
    idx.truncate(top_k.max(1).min(probs.len()));
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoids_are_per_class_and_stable() {
        // 14 outputs near 0.73 (logit 1): each is 0.731059, where a softmax over them
        // would give every class 1/14 = 0.0714.
        let p = Prediction::new(vec![1.0; 14], 3, Activation::Sigmoid);
        assert!(p.probs.iter().all(|&v| (v - 0.731_058_6).abs() < 1e-6), "{:?}", p.probs);
        assert_eq!(p.top, vec![0, 1, 2]);
        assert!((Prediction::new(vec![1.0; 14], 1, Activation::Softmax).probs[0] - 1.0 / 14.0).abs() < 1e-6);
        // Far tails: no NaN, no overflow.
        assert_eq!((sigmoid(-200.0), sigmoid(200.0)), (0.0, 1.0));
        assert!((sigmoid(-3.0) - 0.047_425_87).abs() < 1e-7);
    }
}
