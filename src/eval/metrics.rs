//! Box metrics as pure functions: IoU, IoBB, BoxAcc/CorLoc, ChestX-ray8 accuracy and false
//! positives, and the RSNA Pneumonia challenge score.
//!
//! The definitions are those of `tests/fixtures/metrics/README.md`, which an independent numpy
//! implementation (`scripts/reference/metrics_reference.py`) was run against; the test
//! `tests/eval/metrics.rs` feeds its cases here and compares with its output at 1e-12.
//! Why each choice:
//! - Coordinates are `f64`. Integer boxes (everything cambox predicts, and RSNA/generic
//!   truth) then give exact integer areas, intersections and unions, and every ratio is the
//!   correctly rounded quotient of two integers, bit for bit what the reference computes.
//!   Float truth (NIH, COCO) is used as given, not rounded.
//! - IoU is 0 when the union is 0, IoBB is 0 when the predicted box is empty
//!   (wsolevaluation does the former; the latter keeps the ratio defined).
//! - Hits use `>=` (wsolevaluation's BoxAcc); ChestX-ray8 uses `>` (the paper's
//!   "IoBB > T"); RSNA uses `>` (the Kaggle page's "greater than").
//! - Averages are left-to-right sums divided by the count, as the reference does.

use std::str::FromStr;

use serde::Serialize;

/// IoU thresholds delta of BoxAcc; MaxBoxAccV2 averages over them (Choe et al. 2020).
/// CorLoc is BoxAcc at 0.5.
pub const BOX_ACC_DELTAS: [f64; 3] = [0.3, 0.5, 0.7];

/// ChestX-ray8's T(IoBB) values (Wang et al. 2017).
pub const CXR8_IOBB_THRESHOLDS: [f64; 5] = [0.1, 0.25, 0.5, 0.75, 0.9];

/// ChestX-ray8's alternative criterion `IoU > T(IoU)`, reported beside the IoBB-only one.
pub const CXR8_IOU_THRESHOLD: f64 = 0.5;

/// The RSNA Pneumonia challenge's IoU thresholds, 0.40 to 0.75 by 0.05 (exactly the
/// doubles nearest these decimals, as `np.round(np.arange(0.4, 0.76, 0.05), 2)` gives).
pub const RSNA_IOU_THRESHOLDS: [f64; 8] = [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75];

pub use crate::truth::Rect;

/// A predicted box with the confidence that orders it (RSNA matching).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub rect: Rect,
    pub score: f64,
}

/// How integer coordinates are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Convention {
    /// cambox's boxes: `x2 - x1` is the width, two boxes sharing an edge do not overlap.
    #[default]
    HalfOpen,
    /// wsolevaluation's `calculate_multiple_iou`: `x2 - x1 + 1` is the width.
    WsolInclusive,
}

impl Convention {
    fn plus(self) -> f64 {
        match self {
            Convention::HalfOpen => 0.0,
            Convention::WsolInclusive => 1.0,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Convention::HalfOpen => "half-open",
            Convention::WsolInclusive => "wsol-inclusive",
        }
    }
}

impl FromStr for Convention {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "half-open" => Ok(Convention::HalfOpen),
            "wsol-inclusive" => Ok(Convention::WsolInclusive),
            _ => Err(format!("box convention '{s}': expected half-open or wsol-inclusive")),
        }
    }
}

/// A predicted half-open box as it enters the metric under convention `c`. Half-open: as
/// it is. wsol-inclusive: as wsolevaluation feeds its own boxes, `x2`/`y2` clipped to
/// `width - 1`/`height - 1` and then read inclusively.
pub fn as_predicted(r: Rect, width: u32, height: u32, c: Convention) -> Rect {
    match c {
        Convention::HalfOpen => r,
        Convention::WsolInclusive => Rect { x2: r.x2.min(width as f64 - 1.0), y2: r.y2.min(height as f64 - 1.0), ..r },
    }
}

/// Area of a box; a box with `x2 < x1` (half-open) has area 0.
pub fn area(r: &Rect, c: Convention) -> f64 {
    let p = c.plus();
    (r.x2 - r.x1 + p).max(0.0) * (r.y2 - r.y1 + p).max(0.0)
}

/// Area of the intersection; each side is clamped at 0 separately.
pub fn intersection(a: &Rect, b: &Rect, c: Convention) -> f64 {
    let p = c.plus();
    let w = (a.x2.min(b.x2) - a.x1.max(b.x1) + p).max(0.0);
    let h = (a.y2.min(b.y2) - a.y1.max(b.y1) + p).max(0.0);
    w * h
}

/// Intersection over union; 0 when the union is empty.
pub fn iou(pred: &Rect, truth: &Rect, c: Convention) -> f64 {
    let inter = intersection(pred, truth, c);
    let union = area(pred, c) + area(truth, c) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Intersection over the predicted box's area (ChestX-ray8's IoBB); 0 for an empty box.
pub fn iobb(pred: &Rect, truth: &Rect, c: Convention) -> f64 {
    let ap = area(pred, c);
    if ap > 0.0 {
        intersection(pred, truth, c) / ap
    } else {
        0.0
    }
}

fn best_of(preds: &[Rect], truth: &[Rect], f: impl Fn(&Rect, &Rect) -> f64) -> Option<f64> {
    if preds.is_empty() || truth.is_empty() {
        return None;
    }
    preds.iter().flat_map(|p| truth.iter().map(|t| f(p, t))).reduce(f64::max)
}

/// Largest IoU over all (prediction, truth) pairs; `None` without truth or predictions.
pub fn best_iou(preds: &[Rect], truth: &[Rect], c: Convention) -> Option<f64> {
    best_of(preds, truth, |p, t| iou(p, t, c))
}

/// Largest IoBB over all pairs (it may come from another pair than the best IoU).
pub fn best_iobb(preds: &[Rect], truth: &[Rect], c: Convention) -> Option<f64> {
    best_of(preds, truth, |p, t| iobb(p, t, c))
}

/// Whether an image with truth is localised at `delta`: best IoU `>= delta`. An image with
/// truth and no prediction (`best == None`) is a miss.
pub fn hit(best: Option<f64>, delta: f64) -> bool {
    best.is_some_and(|b| b >= delta)
}

/// One image: its truth boxes and its predictions.
#[derive(Debug, Clone, Default)]
pub struct Case {
    pub truth: Vec<Rect>,
    pub preds: Vec<Scored>,
}

impl Case {
    pub fn pred_rects(&self) -> Vec<Rect> {
        self.preds.iter().map(|p| p.rect).collect()
    }
}

/// Left-to-right mean; `None` for no values.
pub fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.into_iter().fold((0.0f64, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        None
    } else {
        Some(sum / n as f64)
    }
}

/// BoxAcc(delta): the fraction of images with truth whose best IoU is `>= delta`. Images
/// without truth do not count; `None` when no image has truth.
pub fn box_acc(cases: &[Case], delta: f64, c: Convention) -> Option<f64> {
    box_acc_of(cases.iter().filter(|k| !k.truth.is_empty()).map(|k| best_iou(&k.pred_rects(), &k.truth, c)), delta)
}

/// BoxAcc from the best IoUs of the images with truth (`None` = no prediction).
pub fn box_acc_of(best: impl IntoIterator<Item = Option<f64>>, delta: f64) -> Option<f64> {
    let (hits, n) = best.into_iter().fold((0usize, 0usize), |(h, n), b| (h + hit(b, delta) as usize, n + 1));
    if n == 0 {
        None
    } else {
        Some(hits as f64 / n as f64)
    }
}

/// Mean of BoxAcc over wsolevaluation's deltas {0.3, 0.5, 0.7}: what MaxBoxAccV2 averages.
pub fn box_acc_mean(cases: &[Case], c: Convention) -> Option<f64> {
    let accs: Option<Vec<f64>> = BOX_ACC_DELTAS.iter().map(|&d| box_acc(cases, d, c)).collect();
    mean(accs?)
}

/// RSNA score of one image: for each IoU threshold t, predictions in descending score
/// (stable: ties keep their order) each claim the unmatched truth of highest IoU (lowest
/// index on ties); IoU `> t` is a TP, anything else an FP; unmatched truths are FNs;
/// `P(t) = TP / (TP + FP + FN)`. The image score is the mean of `P(t)`. No truth and no
/// prediction: `None` (left out); exactly one of them empty: 0.
pub fn rsna_image(truth: &[Rect], preds: &[Scored], c: Convention) -> Option<f64> {
    match (truth.is_empty(), preds.is_empty()) {
        (true, true) => return None,
        (true, false) | (false, true) => return Some(0.0),
        _ => {}
    }
    let mut order: Vec<&Scored> = preds.iter().collect();
    order.sort_by(|a, b| b.score.total_cmp(&a.score));
    let ious: Vec<Vec<f64>> = order.iter().map(|p| truth.iter().map(|t| iou(&p.rect, t, c)).collect()).collect();
    let per_t = RSNA_IOU_THRESHOLDS.iter().map(|&t| {
        let mut matched = vec![false; truth.len()];
        let (mut tp, mut fp) = (0usize, 0usize);
        for row in &ious {
            let best = (0..truth.len()).filter(|&j| !matched[j]).fold(None, |b: Option<usize>, j| match b {
                Some(k) if row[k] >= row[j] => Some(k),
                _ => Some(j),
            });
            match best {
                Some(j) if row[j] > t => {
                    matched[j] = true;
                    tp += 1;
                }
                _ => fp += 1,
            }
        }
        let fn_ = matched.iter().filter(|m| !**m).count();
        tp as f64 / (tp + fp + fn_) as f64
    });
    mean(per_t)
}

/// The RSNA dataset score: mean of the image scores over the images that are scored
/// (those with truth or predictions), and how many there were.
pub fn rsna_score(cases: &[Case], c: Convention) -> (Option<f64>, usize) {
    let scores: Vec<f64> = cases.iter().filter_map(|k| rsna_image(&k.truth, &k.preds, c)).collect();
    (mean(scores.iter().copied()), scores.len())
}

/// ChestX-ray8 numbers at one IoBB threshold T.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Cxr8 {
    /// Images with truth having some (prediction, truth) pair with IoBB `> T` (or, with
    /// an IoU threshold, IoU `>` it), over the images with truth.
    pub accuracy: Option<f64>,
    /// Predictions that are correct for no truth of their image, over all images. Every
    /// prediction of an image without truth is a false positive.
    pub avg_fp: Option<f64>,
}

/// ChestX-ray8 accuracy and average false positives at `t_iobb`; `t_iou` adds the paper's
/// alternative criterion `IoU > t_iou` (`None`: IoBB only).
pub fn chestxray8(cases: &[Case], t_iobb: f64, t_iou: Option<f64>, c: Convention) -> Cxr8 {
    let ok = |p: &Rect, t: &Rect| iobb(p, t, c) > t_iobb || t_iou.is_some_and(|u| iou(p, t, c) > u);
    let (mut hits, mut with_truth, mut fps) = (0usize, 0usize, 0usize);
    for k in cases {
        if !k.truth.is_empty() {
            with_truth += 1;
            hits += k.preds.iter().any(|p| k.truth.iter().any(|t| ok(&p.rect, t))) as usize;
        }
        fps += k.preds.iter().filter(|p| !k.truth.iter().any(|t| ok(&p.rect, t))).count();
    }
    Cxr8 {
        accuracy: (with_truth > 0).then(|| hits as f64 / with_truth as f64),
        avg_fp: (!cases.is_empty()).then(|| fps as f64 / cases.len() as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Convention = Convention::HalfOpen;
    const I: Convention = Convention::WsolInclusive;

    fn r(x1: f64, y1: f64, x2: f64, y2: f64) -> Rect {
        Rect::new(x1, y1, x2, y2)
    }
    fn s(x1: f64, y1: f64, x2: f64, y2: f64, score: f64) -> Scored {
        Scored { rect: r(x1, y1, x2, y2), score }
    }

    #[test]
    fn iou_and_iobb_by_hand() {
        // 10x10 truth, 5x10 prediction on its right half: inter 50, union 100.
        let t = r(0.0, 0.0, 10.0, 10.0);
        let p = r(5.0, 0.0, 10.0, 10.0);
        assert_eq!(iou(&p, &t, H), 0.5);
        assert_eq!(iobb(&p, &t, H), 1.0);
        // Inclusive: truth 11x11 = 121, prediction 6x11 = 66, inter 66.
        assert_eq!(iou(&p, &t, I), 66.0 / 121.0);
        // Sharing an edge: nothing half-open, one column inclusive.
        let q = r(10.0, 0.0, 20.0, 10.0);
        assert_eq!(iou(&q, &t, H), 0.0);
        assert_eq!(iou(&q, &t, I), 11.0 / (121.0 + 121.0 - 11.0));
        // Empty prediction: IoBB defined as 0; zero union: IoU 0.
        let e = r(3.0, 3.0, 3.0, 8.0);
        assert_eq!((iou(&e, &t, H), iobb(&e, &t, H)), (0.0, 0.0));
        assert_eq!(iou(&e, &e, H), 0.0);
        assert_eq!(iou(&e, &e, I), 1.0);
    }

    #[test]
    fn predicted_boxes_under_each_convention() {
        let r = r(10.0, 20.0, 64.0, 48.0);
        assert_eq!(as_predicted(r, 64, 48, H), r);
        // wsolevaluation clips x + w to width - 1 before reading the box inclusively: a box
        // reaching the right and bottom borders then covers exactly the last pixel.
        assert_eq!(as_predicted(r, 64, 48, I), Rect::new(10.0, 20.0, 63.0, 47.0));
        assert_eq!(area(&as_predicted(r, 64, 48, I), I), area(&r, H));
    }

    #[test]
    fn best_values_and_hits() {
        let truth = [r(0.0, 0.0, 10.0, 10.0), r(20.0, 0.0, 30.0, 10.0)];
        let preds = [r(0.0, 0.0, 3.0, 10.0), r(20.0, 0.0, 27.0, 10.0)];
        assert_eq!(best_iou(&preds, &truth, H), Some(0.7));
        assert_eq!(best_iobb(&preds, &truth, H), Some(1.0));
        assert_eq!(best_iou(&[], &truth, H), None);
        assert!(hit(Some(0.7), 0.7) && !hit(Some(0.69), 0.7) && !hit(None, 0.3));
    }

    #[test]
    fn box_acc_counts_images_with_truth_only() {
        let t = vec![r(0.0, 0.0, 10.0, 10.0)];
        let cases = vec![
            Case { truth: t.clone(), preds: vec![s(0.0, 0.0, 10.0, 10.0, 1.0)] }, // IoU 1
            Case { truth: t.clone(), preds: vec![s(0.0, 0.0, 4.0, 10.0, 1.0)] },  // IoU 0.4
            Case { truth: t.clone(), preds: vec![] },                             // miss
            Case { truth: vec![], preds: vec![s(0.0, 0.0, 4.0, 10.0, 1.0)] },     // not counted
        ];
        assert_eq!(box_acc(&cases, 0.3, H), Some(2.0 / 3.0));
        assert_eq!(box_acc(&cases, 0.5, H), Some(1.0 / 3.0));
        assert_eq!(box_acc_mean(&cases, H), Some((2.0 / 3.0 + 1.0 / 3.0 + 1.0 / 3.0) / 3.0));
        assert_eq!(box_acc(&cases[3..], 0.5, H), None);
    }

    #[test]
    fn rsna_by_hand() {
        let t = [r(0.0, 0.0, 10.0, 10.0)];
        // IoU exactly 0.5: TP only at t = 0.40 and 0.45 (strict >): 2 of 8 thresholds.
        assert_eq!(rsna_image(&t, &[s(0.0, 0.0, 5.0, 10.0, 0.9)], H), Some(0.25));
        // A perfect box and a far FP: 1 TP + 1 FP at every t: 1/2.
        let p = [s(50.0, 50.0, 60.0, 60.0, 0.9), s(0.0, 0.0, 10.0, 10.0, 0.8)];
        assert_eq!(rsna_image(&t, &p, H), Some(0.5));
        assert_eq!(rsna_image(&[], &p, H), Some(0.0));
        assert_eq!(rsna_image(&t, &[], H), Some(0.0));
        assert_eq!(rsna_image(&[], &[], H), None);
        // Confidence order decides who claims the only truth: the better box comes second
        // and finds the truth taken, so it is an FP too.
        let p = [s(0.0, 0.0, 6.0, 10.0, 0.9), s(0.0, 0.0, 10.0, 10.0, 0.8)];
        // First box IoU 0.6: TP for t in 0.40..0.55 (4), FP after; second: FP while the
        // truth is taken, TP when it is free (t = 0.60..0.75: 4).
        assert_eq!(rsna_image(&t, &p, H), Some(0.5));
        let cases = vec![
            Case { truth: t.to_vec(), preds: vec![s(0.0, 0.0, 5.0, 10.0, 0.9)] },
            Case { truth: vec![], preds: vec![] },
            Case { truth: vec![], preds: vec![s(0.0, 0.0, 1.0, 1.0, 0.1)] },
        ];
        assert_eq!(rsna_score(&cases, H), (Some(0.125), 2));
    }

    #[test]
    fn chestxray8_by_hand() {
        let t = vec![r(0.0, 0.0, 10.0, 10.0)];
        let cases = vec![
            // IoBB 1/2 and 9/10.
            Case { truth: t.clone(), preds: vec![s(5.0, 0.0, 15.0, 10.0, 1.0), s(1.0, 0.0, 11.0, 10.0, 1.0)] },
            Case { truth: t.clone(), preds: vec![] },
            Case { truth: vec![], preds: vec![s(0.0, 0.0, 1.0, 1.0, 1.0)] },
            Case::default(),
        ];
        let at = |th| chestxray8(&cases, th, None, H);
        assert_eq!(at(0.5), Cxr8 { accuracy: Some(0.5), avg_fp: Some(2.0 / 4.0) });
        assert_eq!(at(0.9), Cxr8 { accuracy: Some(0.0), avg_fp: Some(3.0 / 4.0) });
        // With IoU > 0.5 as alternative, the 9/10 box (IoU 9/11) is correct at T = 0.9.
        assert_eq!(chestxray8(&cases, 0.9, Some(0.5), H).accuracy, Some(0.5));
    }

    #[test]
    fn mean_is_left_to_right() {
        assert_eq!(mean([0.1, 0.2, 0.3]), Some((0.1 + 0.2 + 0.3) / 3.0));
        assert_eq!(mean(std::iter::empty()), None);
    }
}
