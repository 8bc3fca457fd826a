//! Scores of one image: the logits, their probabilities, and the classes ranked by them.

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
        let mut idx = ranked(&probs, 0..logits.len());
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

/// `classes` by descending probability, ties by lower index first: the one order in which
/// cambox lists classes (`top_k`, `topk:K`, `above:P`).
pub fn ranked(probs: &[f32], classes: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut idx: Vec<usize> = classes.into_iter().collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    idx
}
