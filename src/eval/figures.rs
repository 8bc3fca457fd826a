//! Map-level figures as pure functions: the pointing game, the energy-based pointing game,
//! pixel AP (PxAP) and pixel IoU, on a map already carried to original-image pixels.
//!
//! The definitions are those of `docs/localisation-and-eval.md` ("Map figures"), which an
//! independent numpy implementation (`scripts/reference/eval_figures_reference.py`) was run
//! against; `tests/eval/figures.rs` feeds its cases here.
//! Why each choice:
//! - A pixel belongs to a box when its centre lies inside it, so integer (half-open)
//!   boxes hold exactly their pixels and float boxes (NIH, COCO) are read unrounded.
//! - The pointing game is TorchRay's: a hit when a disc of `tolerance` pixels around the
//!   peak reaches a truth pixel (pixel centres to pixel centres), 15 pixels by default.
//!   Only pairs with truth are scored (CheXlocalize's hit rate over positive pairs).
//! - The peak is searched only where the network saw the image (a centre crop leaves the
//!   rest at 0, which would otherwise beat an all-negative CAM), first in raster order on
//!   ties, as numpy's `argmax`.
//! - Energy is the share of the map's positive mass inside the truth boxes (Score-CAM's
//!   energy-based pointing game; Arras' relevance mass): raw maps (CAM) can be negative,
//!   and only positive evidence points anywhere. No positive mass: 0.
//! - PxAP is wsolevaluation's `MaskEvaluator`: histograms of the normalised map over
//!   foreground and background pixels, pooled over the set, precision weighted by recall
//!   steps. It is reported as a fraction, not a percentage.

use serde::Serialize;

use super::metrics::Rect;

/// Truth of one pixel in a truth mask.
pub use crate::truth::masks::{BACKGROUND as MASK_BACKGROUND, FOREGROUND as MASK_FOREGROUND, IGNORE as MASK_IGNORE};

/// A map at original resolution, row-major, with the rectangle the network saw.
#[derive(Debug, Clone, Copy)]
pub struct MapView<'a> {
    pub values: &'a [f32],
    pub width: usize,
    pub height: usize,
    /// `[x0, x1) x [y0, y1)`.
    pub seen: (usize, usize, usize, usize),
}

impl MapView<'_> {
    fn seen_pixels(&self) -> impl Iterator<Item = (usize, usize, f32)> + '_ {
        let (x0, y0, x1, y1) = self.seen;
        let (x1, y1) = (x1.min(self.width), y1.min(self.height));
        (y0..y1).flat_map(move |y| (x0..x1).map(move |x| (x, y, self.values[y * self.width + x])))
    }
}

/// The inclusive pixel ranges `(lo_x, hi_x, lo_y, hi_y)` of the pixels whose centres lie in
/// `r`, clamped to the image; a box holding no pixel centre keeps its first column / row.
pub fn box_pixels(r: &Rect, width: usize, height: usize) -> (usize, usize, usize, usize) {
    let axis = |a: f64, b: f64, n: usize| {
        let last = n.saturating_sub(1) as f64;
        let lo = (a - 0.5).ceil();
        let hi = ((b - 0.5).ceil() - 1.0).max(lo);
        (lo.clamp(0.0, last) as usize, hi.clamp(0.0, last) as usize)
    };
    let (lx, hx) = axis(r.x1, r.x2, width);
    let (ly, hy) = axis(r.y1, r.y2, height);
    (lx, hx, ly, hy)
}

/// The pixel of the largest finite value inside `seen`, first in raster order on ties.
pub fn peak(m: &MapView) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize, f32)> = None;
    for (x, y, v) in m.seen_pixels() {
        if v.is_finite() && best.is_none_or(|b| v > b.2) {
            best = Some((x, y, v));
        }
    }
    best.map(|(x, y, _)| (x, y))
}

/// True when a disc of radius `tolerance` around pixel `p` reaches a pixel of a truth box.
pub fn pointing_hit(p: (usize, usize), truth: &[Rect], tolerance: f64, width: usize, height: usize) -> bool {
    let (px, py) = (p.0 as f64, p.1 as f64);
    truth.iter().any(|r| {
        let (lx, hx, ly, hy) = box_pixels(r, width, height);
        let dx = px - px.clamp(lx as f64, hx as f64);
        let dy = py - py.clamp(ly as f64, hy as f64);
        dx * dx + dy * dy <= tolerance * tolerance
    })
}

/// The share of the map's positive mass (inside `seen`) that lies inside the union of the
/// truth boxes; 0 without positive mass.
pub fn energy_in_boxes(m: &MapView, truth: &[Rect]) -> f64 {
    let ranges: Vec<_> = truth.iter().map(|r| box_pixels(r, m.width, m.height)).collect();
    let inside =
        |x: usize, y: usize| ranges.iter().any(|&(lx, hx, ly, hy)| (lx..=hx).contains(&x) && (ly..=hy).contains(&y));
    let (mut total, mut within) = (0.0f64, 0.0f64);
    for (x, y, v) in m.seen_pixels() {
        if v > 0.0 {
            total += v as f64;
            if inside(x, y) {
                within += v as f64;
            }
        }
    }
    if total > 0.0 {
        within / total
    } else {
        0.0
    }
}

/// What one map says about one truth: the peak and the two pointing figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pointing {
    pub peak: Option<(usize, usize)>,
    /// `None` for a pair without truth boxes.
    pub hit: Option<bool>,
    pub energy: Option<f64>,
}

/// The pointing figures of a map against the truth boxes of its pair.
pub fn pointing(m: &MapView, truth: &[Rect], tolerance: f64) -> Pointing {
    let peak = peak(m);
    let scored = !truth.is_empty();
    Pointing {
        peak,
        hit: scored.then(|| peak.is_some_and(|p| pointing_hit(p, truth, tolerance, m.width, m.height))),
        energy: scored.then(|| energy_in_boxes(m, truth)),
    }
}

/// The pointing figures of a positive pair without a map: a miss.
pub fn pointing_without_map(truth: &[Rect]) -> Pointing {
    let scored = !truth.is_empty();
    Pointing { peak: None, hit: scored.then_some(false), energy: scored.then_some(0.0) }
}

/// What PxAP and pixel IoU need of a set of normalised maps against their truth masks,
/// summed over pairs: foreground and background histograms over wsolevaluation's bins
/// `[0, s), [s, 2s), ..., [1 - s, 1), [1, 2), [2, 3]` (left-closed, as numpy.histogram),
/// and the same pixels counted by how many taus lie strictly below them (so that
/// `score > tau` can be counted at any tau of the grid afterwards).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PixelHistograms {
    pub foreground: Vec<u64>,
    pub background: Vec<u64>,
    /// Index j: pixels with exactly j taus strictly below their score.
    foreground_above: Vec<u64>,
    background_above: Vec<u64>,
}

impl PixelHistograms {
    /// Empty histograms for the taus `0, s, ..., 1 - s`.
    pub fn new(taus: &[f64]) -> PixelHistograms {
        let n = taus.len();
        PixelHistograms {
            foreground: vec![0; n + 2],
            background: vec![0; n + 2],
            foreground_above: vec![0; n + 1],
            background_above: vec![0; n + 1],
        }
    }

    /// numpy.histogram's bin of `v` over the edges `taus, 1, 2, 3` (the last bin closed);
    /// `None` outside [0, 3] or NaN.
    fn bin(taus: &[f64], v: f64) -> Option<usize> {
        if !(0.0..=3.0).contains(&v) {
            return None;
        }
        let below = taus.partition_point(|&e| e <= v) + [1.0, 2.0].iter().filter(|&&e| e <= v).count();
        Some(below.saturating_sub(1).min(taus.len() + 1))
    }

    /// Adds the pixels of one normalised map `score` against its truth `mask`
    /// ([`MASK_FOREGROUND`], [`MASK_BACKGROUND`], [`MASK_IGNORE`]).
    pub fn add(&mut self, taus: &[f64], score: &[f32], mask: &[u8]) {
        for (&s, &t) in score.iter().zip(mask) {
            let v = s as f64;
            if v.is_nan() || t == MASK_IGNORE {
                continue;
            }
            let above = taus.partition_point(|&e| e < v);
            let bin = Self::bin(taus, v);
            let (hist, hist_above) = if t == MASK_FOREGROUND {
                (&mut self.foreground, &mut self.foreground_above)
            } else {
                (&mut self.background, &mut self.background_above)
            };
            if let Some(b) = bin {
                hist[b] += 1;
            }
            hist_above[above] += 1;
        }
    }

    /// Adds another pair's histograms (of the same taus).
    pub fn merge(&mut self, other: &PixelHistograms) {
        let add = |a: &mut Vec<u64>, b: &Vec<u64>| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        add(&mut self.foreground, &other.foreground);
        add(&mut self.background, &other.background);
        add(&mut self.foreground_above, &other.foreground_above);
        add(&mut self.background_above, &other.background_above);
    }

    /// wsolevaluation's PxAP (as a fraction); `None` without foreground pixels.
    pub fn pxap(&self) -> Option<f64> {
        let total_fg: u64 = self.foreground.iter().sum();
        if total_fg == 0 {
            return None;
        }
        let (mut tp, mut fp) = (0u64, 0u64);
        let mut prev_recall = 0.0;
        let mut ap = 0.0;
        for (i, (f, b)) in self.foreground.iter().rev().zip(self.background.iter().rev()).enumerate() {
            tp += f;
            fp += b;
            let recall = tp as f64 / total_fg as f64;
            if i >= 1 && tp + fp != 0 {
                ap += tp as f64 / (tp + fp) as f64 * (recall - prev_recall);
            }
            prev_recall = recall;
        }
        Some(ap)
    }

    /// True positives, false positives and false negatives of `score > taus[k]`.
    pub fn counts_above(&self, k: usize) -> [u64; 3] {
        let fg_total: u64 = self.foreground_above.iter().sum();
        let tp: u64 = self.foreground_above[k + 1..].iter().sum();
        let fp: u64 = self.background_above[k + 1..].iter().sum();
        [tp, fp, fg_total - tp]
    }
}

/// Pixel counts of `score > tau` against a truth mask: true positives, false positives,
/// false negatives (ignored pixels count in none).
pub fn pixel_counts(score: &[f32], mask: &[u8], tau: f64) -> [u64; 3] {
    let mut c = [0u64; 3];
    for (&s, &t) in score.iter().zip(mask) {
        let above = s as f64 > tau;
        match (t, above) {
            (MASK_FOREGROUND, true) => c[0] += 1,
            (MASK_BACKGROUND, true) => c[1] += 1,
            (MASK_FOREGROUND, false) => c[2] += 1,
            _ => {}
        }
    }
    c
}

/// Pooled pixel IoU from summed counts; 0 when nothing is predicted or true.
pub fn pixel_iou(c: [u64; 3]) -> f64 {
    let d = c[0] + c[1] + c[2];
    if d == 0 {
        0.0
    } else {
        c[0] as f64 / d as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(values: &[f32], w: usize, h: usize) -> MapView<'_> {
        MapView { values, width: w, height: h, seen: (0, 0, w, h) }
    }

    #[test]
    fn box_pixels_of_integer_and_float_boxes() {
        assert_eq!(box_pixels(&Rect::new(2.0, 1.0, 5.0, 3.0), 10, 10), (2, 4, 1, 2));
        // Centres at 2.5 .. 4.5 lie in [2.2, 4.9): columns 2, 3, 4.
        assert_eq!(box_pixels(&Rect::new(2.2, 1.0, 4.9, 3.0), 10, 10).0, 2);
        assert_eq!(box_pixels(&Rect::new(2.6, 1.0, 4.9, 3.0), 10, 10).0, 3);
    }

    #[test]
    fn pointing_by_hand() {
        let truth = [Rect::new(2.0, 2.0, 4.0, 4.0)];
        // The last column of the box: a hit at tolerance 0.
        assert!(pointing_hit((3, 3), &truth, 0.0, 10, 10));
        // One pixel right of it: a miss at 0, a hit at 1.
        assert!(!pointing_hit((4, 3), &truth, 0.0, 10, 10));
        assert!(pointing_hit((4, 3), &truth, 1.0, 10, 10));
        // Diagonal neighbour: sqrt(2).
        assert!(!pointing_hit((4, 4), &truth, 1.0, 10, 10));
        assert!(pointing_hit((4, 4), &truth, 1.5, 10, 10));
    }

    #[test]
    fn peak_ties_nan_and_seen() {
        let v = [0.0, 2.0, 2.0, f32::NAN];
        assert_eq!(peak(&view(&v, 2, 2)), Some((1, 0)));
        let mut m = view(&v, 2, 2);
        m.seen = (0, 1, 2, 2);
        assert_eq!(peak(&m), Some((0, 1)));
        let nan = [f32::NAN; 4];
        assert_eq!(peak(&view(&nan, 2, 2)), None);
    }

    #[test]
    fn energy_counts_positive_mass_over_the_union() {
        let v = [1.0, 1.0, -5.0, 2.0];
        let truth = [Rect::new(0.0, 0.0, 1.0, 2.0), Rect::new(0.0, 0.0, 1.0, 1.0)];
        // Positive mass 4; inside column 0: 1 (the -5 does not count).
        assert_eq!(energy_in_boxes(&view(&v, 2, 2), &truth), 0.25);
        assert_eq!(energy_in_boxes(&view(&[-1.0; 4], 2, 2), &truth), 0.0);
    }

    #[test]
    fn pxap_of_a_perfect_map_is_one() {
        let taus: Vec<f64> = (0..100).map(|k| k as f64 / 100.0).collect();
        let mut h = PixelHistograms::new(&taus);
        h.add(&taus, &[1.0, 0.9, 0.0, 0.1], &[1, 1, 0, 0]);
        assert_eq!(h.pxap(), Some(1.0));
        assert_eq!(pixel_iou(pixel_counts(&[1.0, 0.9, 0.0, 0.6], &[1, 1, 0, 255], 0.5)), 1.0);
        // The counts at a grid tau equal the direct ones, equality at the tau included.
        let (score, mask) = ([0.5f32, 0.51, 0.2, 0.5, 1.0], [1u8, 0, 1, 0, 1]);
        let mut h = PixelHistograms::new(&taus);
        h.add(&taus, &score, &mask);
        assert_eq!(h.counts_above(50), pixel_counts(&score, &mask, 0.5));
        assert_eq!(h.counts_above(50), [1, 1, 2]);
    }
}
