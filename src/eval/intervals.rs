//! The 95 % bootstrap interval of every headline figure, over all pairs and per class.
//!
//! Each figure is recomputed on every resample of images ([`super::bootstrap`]) by the
//! same function that gives its point value, so an interval always brackets the figure it
//! belongs to. The figures: GT-known Loc (= CorLoc), Top-1 Loc, MaxBoxAccV2, the pointing
//! game, energy, PxAP, pixel IoU, the RSNA score and ChestX-ray8 accuracy at each T(IoBB).

use std::collections::BTreeMap;

use serde::Serialize;

use super::bootstrap::{BootstrapPlan, Resamples};
use super::map_figures::MapPass;
use super::metrics::{self, Case, Convention, CXR8_IOBB_THRESHOLDS};
use super::{EvalClass, ImageResult};

/// Intervals by figure name.
pub type Figures = BTreeMap<String, [f64; 2]>;

/// `summary.json`'s `ci95`.
#[derive(Debug, Clone, Serialize)]
pub struct Ci95 {
    #[serde(flatten)]
    pub plan: BootstrapPlan,
    /// Over all pairs (resampling images).
    pub all: Figures,
    /// Per evaluated class (resampling the images of its pairs).
    pub per_class: BTreeMap<String, Figures>,
}

/// The figures' names: the pair figures, the map figures when there was a pass over the
/// maps, then ChestX-ray8 accuracy at each T(IoBB).
pub fn names(maps: bool) -> Vec<String> {
    let mut n: Vec<String> =
        ["gt_known_loc", "top1_loc", "pointing_game", "energy_pointing_game", "rsna_score"].map(String::from).into();
    if maps {
        n.extend(["max_box_acc_v2", "pxap", "pixel_iou"].map(String::from));
    }
    n.extend(CXR8_IOBB_THRESHOLDS.iter().map(|t| format!("chestxray8_accuracy@{t}")));
    n
}

/// Figure number `k` of [`names`] on a multiset of pairs (indices into `images`).
pub fn figure(
    images: &[ImageResult],
    pairs: &[usize],
    pass: Option<&MapPass>,
    conv: Convention,
    k: usize,
) -> Option<f64> {
    let mean = |f: &dyn Fn(&ImageResult) -> Option<f64>| {
        let (s, n) = pairs.iter().filter_map(|&p| f(&images[p])).fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
        (n > 0).then(|| s / n as f64)
    };
    let bool01 = |b: bool| if b { 1.0 } else { 0.0 };
    let maps = if pass.is_some() { 3 } else { 0 };
    match (k, pass) {
        (0, _) => mean(&|i| i.hits.map(|h| bool01(h[1]))),
        (1, _) => mean(&|i| i.top1_loc.map(bool01)),
        (2, _) => mean(&|i| i.pointing.and_then(|p| p.hit).map(bool01)),
        (3, _) => mean(&|i| i.pointing.and_then(|p| p.energy)),
        (4, _) => mean(&|i| i.rsna),
        (5, Some(p)) => p.max_box_acc_v2(images, pairs),
        (6, Some(p)) => p.pxap(pairs),
        (7, Some(p)) => p.pixel_iou(images, pairs),
        (k, _) => {
            let t = CXR8_IOBB_THRESHOLDS[k - 5 - maps];
            let detect: Vec<Case> = pairs.iter().map(|&p| images[p].detect_case()).collect();
            metrics::chestxray8(&detect, t, None, conv).accuracy
        }
    }
}

/// The images of a set of pairs, as resampling units: each unit's pairs.
fn units(images: &[ImageResult], pairs: impl Iterator<Item = usize>) -> Vec<Vec<usize>> {
    let mut by_image: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out: Vec<Vec<usize>> = Vec::new();
    for p in pairs {
        let u = *by_image.entry(&images[p].rel).or_insert_with(|| {
            out.push(Vec::new());
            out.len() - 1
        });
        out[u].push(p);
    }
    out
}

/// The intervals of the figures defined on `pairs`.
fn intervals_of(
    images: &[ImageResult],
    pairs: Vec<usize>,
    pass: Option<&MapPass>,
    conv: Convention,
    plan: BootstrapPlan,
) -> Figures {
    let units = units(images, pairs.iter().copied());
    let r = Resamples::draw(units.len(), plan.resamples, plan.seed);
    let mut out = Figures::new();
    for (k, name) in names(pass.is_some()).into_iter().enumerate() {
        if figure(images, &pairs, pass, conv, k).is_none() {
            continue;
        }
        let stat = |draw: &[u32]| {
            let drawn: Vec<usize> = draw.iter().flat_map(|&u| units[u as usize].iter().copied()).collect();
            figure(images, &drawn, pass, conv, k)
        };
        if let Some(i) = r.interval(stat) {
            out.insert(name, i);
        }
    }
    out
}

/// The intervals over all pairs and per class.
pub fn ci95(
    images: &[ImageResult],
    classes: &[EvalClass],
    pass: Option<&MapPass>,
    conv: Convention,
    plan: BootstrapPlan,
) -> Ci95 {
    let all = intervals_of(images, (0..images.len()).collect(), pass, conv, plan);
    let per_class = classes
        .iter()
        .enumerate()
        .map(|(c, class)| {
            let pairs = (0..images.len()).filter(|&p| images[p].class_index == c).collect();
            (class.name.clone(), intervals_of(images, pairs, pass, conv, plan))
        })
        .collect();
    Ci95 { plan, all, per_class }
}
