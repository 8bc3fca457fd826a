//! Stage "localise": class maps to masks and boxes in original-image pixels.
//!
//! The order of operations is the protocols' (wsolevaluation, pytorch-grad-cam):
//! optional ReLU on the raw map, upsampling to the **network input** size, min-max
//! normalisation there (a constant or non-finite map becomes zeros, never NaN). The
//! normalised map is then carried through the exact inverse of the preprocessing to the
//! **original image** (bilinear, so values stay in [0, 1]); pixels the network never saw
//! (cut away by a centre crop) are 0. Thresholds, connected components, boxes and masks
//! are computed there, at full resolution, so boxes are in original pixels by
//! construction. Boxes are half-open: `x2 - x1` is the width.

pub mod components;
pub mod fuse;
pub mod threshold;

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::stage::maps::{ranked, Prediction};
use crate::stage::preprocess::resample::{resize_window, Resampling};
use crate::stage::preprocess::Geometry;
use components::{Component, RunComponents};
pub use fuse::PassMap;
pub use threshold::Threshold;

/// Which classes get boxes.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassSelection {
    Top1,
    TopK(usize),
    /// Every class with probability >= P.
    Above(f32),
    /// Fixed classes, whatever the prediction (lesion studies).
    List(Vec<usize>),
}

impl ClassSelection {
    pub fn parse(s: &str) -> Result<ClassSelection, String> {
        let s = s.trim();
        if s == "top1" {
            return Ok(ClassSelection::Top1);
        }
        if let Some(k) = s.strip_prefix("topk:") {
            let k: usize = k.parse().map_err(|_| format!("classes '{s}': K must be a positive integer"))?;
            if k == 0 {
                return Err(format!("classes '{s}': K must be at least 1"));
            }
            return Ok(ClassSelection::TopK(k));
        }
        if let Some(p) = s.strip_prefix("above:") {
            let p: f32 = p.parse().map_err(|_| format!("classes '{s}': P must be a probability"))?;
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("classes '{s}': P must be in [0, 1]"));
            }
            return Ok(ClassSelection::Above(p));
        }
        Err(format!("classes '{s}': expected top1, topk:K, above:P or a list of class indices or names"))
    }

    /// The classes to localise for one prediction, in a stable order.
    pub fn select(&self, p: &Prediction) -> Vec<usize> {
        match self {
            ClassSelection::Top1 => vec![p.top1()],
            ClassSelection::TopK(k) => {
                let mut idx = ranked(&p.probs, 0..p.probs.len());
                idx.truncate(*k);
                idx
            }
            ClassSelection::Above(t) => ranked(&p.probs, (0..p.probs.len()).filter(|&k| p.probs[k] >= *t)),
            ClassSelection::List(l) => l.clone(),
        }
    }
}

/// Which components become boxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// The component with the most pixels (CAM paper, MaxBoxAcc V1).
    Largest,
    /// Every component above the minimum area (MaxBoxAccV2, ChestX-ray8).
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalise {
    /// Per-map min-max to [0, 1].
    Minmax,
    /// Use the map as it is (thresholds then apply to raw values).
    None,
}

/// A named map-to-box protocol, or `custom`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Preset {
    /// Zhou et al. 2016.
    #[default]
    CamPaper,
    /// Choe et al. 2020 (wsolevaluation).
    Wsol,
    /// Wang et al. 2017.
    Chestxray8,
    /// The CAM paper's recipe at the cut the sharp recipe's averaged maps need
    /// (`defaults::SHARP_CUT`): what `[cam] recipe = "sharp"` localises with when no
    /// preset is named.
    Sharp,
    /// Built from the `[localise]` keys.
    Custom,
}

impl Preset {
    pub const ALL: [Preset; 5] = [Preset::CamPaper, Preset::Wsol, Preset::Chestxray8, Preset::Sharp, Preset::Custom];

    /// The name in configs, `run.json` and `boxes.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::CamPaper => "cam-paper",
            Preset::Wsol => "wsol",
            Preset::Chestxray8 => "chestxray8",
            Preset::Sharp => "sharp",
            Preset::Custom => "custom",
        }
    }
}

impl TryFrom<String> for Preset {
    type Error = String;
    fn try_from(s: String) -> Result<Preset, String> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown preset '{s}': cam-paper, wsol, chestxray8, sharp or custom"))
    }
}

impl From<Preset> for String {
    fn from(p: Preset) -> String {
        p.name().to_string()
    }
}

/// The map-to-box recipe, fully resolved from a preset or custom settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// Written in `boxes.csv`.
    pub preset: Preset,
    pub relu: bool,
    pub normalise: Normalise,
    pub upsample: Resampling,
    /// Threshold on wsolevaluation's 8-bit map, `(map * 255)` truncated.
    pub quantise: bool,
    pub thresholds: Vec<Threshold>,
    pub keep: Keep,
    /// Minimum component area for `all`, as a fraction of the image area.
    pub min_area: f32,
}

impl Recipe {
    /// Zhou et al. 2016: 20 % of the map's maximum, largest connected component.
    pub fn cam_paper() -> Recipe {
        Recipe {
            preset: Preset::CamPaper,
            relu: false,
            normalise: Normalise::Minmax,
            upsample: Resampling::Bilinear,
            quantise: false,
            thresholds: vec![Threshold::Fraction(0.2)],
            keep: Keep::Largest,
            min_area: 0.0,
        }
    }
    /// Choe et al. 2020: min-max, 8-bit map, `> int(tau * max)`, every contour.
    pub fn wsol(tau: f32) -> Recipe {
        Recipe {
            preset: Preset::Wsol,
            quantise: true,
            thresholds: vec![Threshold::Fraction(tau)],
            keep: Keep::All,
            ..Recipe::cam_paper()
        }
    }
    /// The CAM paper's recipe at the sharp recipe's cut.
    pub fn sharp() -> Recipe {
        Recipe {
            preset: Preset::Sharp,
            thresholds: vec![Threshold::Fraction(crate::defaults::SHARP_CUT)],
            ..Recipe::cam_paper()
        }
    }
    /// Wang et al. 2017: 0-255 map thresholded at 60 and 180, every isolated region.
    pub fn chestxray8() -> Recipe {
        Recipe {
            preset: Preset::Chestxray8,
            quantise: true,
            thresholds: vec![Threshold::U8(60), Threshold::U8(180)],
            keep: Keep::All,
            ..Recipe::cam_paper()
        }
    }
}

/// One box in original-image pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalBox {
    pub x1: u32,
    pub y1: u32,
    pub x2: u32,
    pub y2: u32,
    pub area: u64,
    /// Mean of the normalised map over the component.
    pub box_score: f32,
    /// The rule and the cut value it gave on this map.
    pub threshold: Threshold,
    pub threshold_value: f32,
}

/// The boxes of one class in one image (what `boxes.csv` gets).
#[derive(Debug, Clone)]
pub struct BoxSet {
    pub class: usize,
    pub boxes: Vec<LocalBox>,
}

/// The localisation of one class in one image.
#[derive(Debug, Clone)]
pub struct ClassLocalisation {
    pub class: usize,
    /// Normalised map at original resolution (row-major, width x height).
    pub map: Vec<f32>,
    /// Pixels of the kept components under the first threshold: 255, else 0 (the bytes of
    /// the mask PNG).
    pub mask: Vec<u8>,
    pub boxes: Vec<LocalBox>,
    pub width: u32,
    pub height: u32,
    /// Pixels the network saw, `[x0, x1) x [y0, y1)`.
    pub seen: (usize, usize, usize, usize),
}

/// Applies a recipe.
#[derive(Debug, Clone)]
pub struct Localiser {
    pub recipe: Recipe,
}

impl Localiser {
    pub fn new(recipe: Recipe) -> Localiser {
        Localiser { recipe }
    }

    /// The map at network-input resolution: ReLU, upsampling, normalisation.
    pub fn network_map(&self, raw: ArrayView2<f32>, net_w: usize, net_h: usize) -> Vec<f32> {
        let (h, w) = raw.dim();
        let mut src: Vec<f32> = raw.iter().copied().collect();
        if src.iter().any(|v| !v.is_finite()) {
            return vec![0.0; net_w * net_h];
        }
        if self.recipe.relu {
            src.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        let mut up = resize_window(&src, w, h, 1, net_w, net_h, (0, 0, net_w, net_h), self.recipe.upsample);
        if self.recipe.normalise == Normalise::Minmax {
            minmax_in_place(&mut up);
        }
        up
    }

    /// The full localisation of one raw map (feature resolution) for an image with
    /// geometry `geo`.
    pub fn localise(&self, class: usize, raw: ArrayView2<f32>, geo: &Geometry) -> ClassLocalisation {
        let p = self.prepare(raw, geo);
        let mut boxes = Vec::new();
        let mut first_mask = None;
        for (ti, t) in self.recipe.thresholds.iter().enumerate() {
            let cut = self.cut(&p, t);
            let found = self.components_above(&p, cut);
            let kept = self.keep(&found.components, &p);
            if ti == 0 {
                let keep_labels: Vec<u32> = kept.iter().map(|c| c.label).collect();
                first_mask = Some(found.mask_bytes(&keep_labels, p.width, p.height));
            }
            boxes.extend(kept.iter().map(|c| local_box(c, *t, cut)));
        }
        ClassLocalisation {
            class,
            mask: first_mask.unwrap_or_else(|| vec![0; p.width * p.height]),
            boxes,
            width: geo.orig_w,
            height: geo.orig_h,
            seen: p.seen,
            map: p.map,
        }
    }

    /// The map at original resolution, ready to be cut at any threshold: what
    /// [`Localiser::localise`] computes once per image before its thresholds, exposed so
    /// a threshold sweep (`cambox eval`) does not redo it for every threshold.
    pub fn prepare(&self, raw: ArrayView2<f32>, geo: &Geometry) -> PreparedMap {
        let net = self.network_map(raw, geo.net_w, geo.net_h);
        let OriginalMap { values, seen } = to_original(&net, geo);
        self.prepare_original(values, geo.orig_w as usize, geo.orig_h as usize, seen)
    }

    /// [`Localiser::prepare`] from an already normalised original-resolution map (row-major,
    /// `w` x `h`, 0 outside `seen`).
    pub fn prepare_original(
        &self,
        map: Vec<f32>,
        w: usize,
        h: usize,
        seen: (usize, usize, usize, usize),
    ) -> PreparedMap {
        let levels = self.recipe.quantise.then(|| map.iter().map(|&v| threshold::to_u8(v)).collect());
        // Threshold statistics over the pixels the network saw, taken on the normalised map:
        // `Threshold::value` converts to 8-bit levels itself for quantised recipes (passing
        // it the levels would saturate them all to 255). Max-based rules need only the
        // maximum, so the seen pixels are copied out only when the recipe has a rule that
        // needs their distribution (Otsu, percentiles): two million floats per X-ray.
        let p = PreparedMap {
            seen_max: seen_rows(&map, w, seen).map(threshold::finite_max).fold(f32::NEG_INFINITY, f32::max),
            seen_values: None,
            map,
            levels,
            width: w,
            height: h,
            seen,
        };
        if self.recipe.thresholds.iter().any(Threshold::needs_distribution) {
            PreparedMap { seen_values: Some(p.seen_copy()), ..p }
        } else {
            p
        }
    }

    /// The cut value of threshold `t` on this map (on the 8-bit scale for quantised
    /// recipes).
    pub fn cut(&self, p: &PreparedMap, t: &Threshold) -> f32 {
        if !t.needs_distribution() {
            return t.value(&[p.seen_max], self.recipe.quantise);
        }
        match &p.seen_values {
            Some(v) => t.value(v, self.recipe.quantise),
            None => t.value(&p.seen_copy(), self.recipe.quantise),
        }
    }

    /// The 8-connected components of the pixels strictly above `cut` inside the seen
    /// rectangle, as runs.
    pub fn components_above(&self, p: &PreparedMap, cut: f32) -> RunComponents {
        match &p.levels {
            Some(levels) => components::components_above(levels, &p.map, p.width, p.seen, cut),
            None => components::components_above(&p.map, &p.map, p.width, p.seen, cut),
        }
    }

    /// The components the recipe keeps (largest, or all above the minimum area).
    pub fn keep<'a>(&self, comps: &'a [Component], p: &PreparedMap) -> Vec<&'a Component> {
        kept_components(self.recipe.keep, self.recipe.min_area, comps, p.width * p.height)
    }
}

/// A normalised map at original resolution and what thresholds compare.
#[derive(Debug, Clone)]
pub struct PreparedMap {
    /// Normalised map (row-major); box scores are its means over components.
    pub map: Vec<f32>,
    /// The 8-bit levels thresholds compare for quantised recipes (a byte each: a
    /// quarter of the map's memory at original resolution).
    levels: Option<Vec<u8>>,
    /// Largest finite value of the map inside `seen` (-inf when there is none).
    seen_max: f32,
    /// The map inside `seen`, when the recipe's thresholds need the distribution.
    seen_values: Option<Vec<f32>>,
    pub width: usize,
    pub height: usize,
    /// Pixels the network saw, `[x0, x1) x [y0, y1)`.
    pub seen: (usize, usize, usize, usize),
}

impl PreparedMap {
    /// The 8-bit levels thresholds compare for quantised recipes, if it is one.
    pub fn levels(&self) -> Option<&[u8]> {
        self.levels.as_deref()
    }

    fn seen_copy(&self) -> Vec<f32> {
        seen_rows(&self.map, self.width, self.seen).flatten().copied().collect()
    }
}

/// The rows of the rectangle `seen` of a row-major map of width `w`.
fn seen_rows(map: &[f32], w: usize, seen: (usize, usize, usize, usize)) -> impl Iterator<Item = &[f32]> {
    let (x0, y0, x1, y1) = seen;
    (y0..y1).map(move |y| &map[y * w + x0..y * w + x1])
}

/// Keeps the component with the most pixels (the first in raster order on ties), or every
/// component of at least `min_area` (a fraction of `n_pixels`).
pub fn kept_components(keep: Keep, min_area: f32, comps: &[Component], n_pixels: usize) -> Vec<&Component> {
    match keep {
        Keep::Largest => comps
            .iter()
            .fold(None, |best: Option<&Component>, c| match best {
                Some(b) if b.area >= c.area => Some(b),
                _ => Some(c),
            })
            .into_iter()
            .collect(),
        Keep::All => {
            let min = min_area as f64 * n_pixels as f64;
            comps.iter().filter(|c| c.area as f64 >= min).collect()
        }
    }
}

/// The box of a component in original-image pixels.
pub fn local_box(c: &Component, threshold: Threshold, cut: f32) -> LocalBox {
    LocalBox {
        x1: c.x1,
        y1: c.y1,
        x2: c.x2,
        y2: c.y2,
        area: c.area,
        box_score: c.mean_score() as f32,
        threshold,
        threshold_value: cut,
    }
}

/// Min-max to [0, 1]; a constant map becomes zeros.
pub fn minmax_in_place(v: &mut [f32]) {
    let (lo, hi) = v.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let range = hi - lo;
    if !(range.is_finite() && range > 0.0) {
        v.iter_mut().for_each(|x| *x = 0.0);
        return;
    }
    v.iter_mut().for_each(|x| *x = (*x - lo) / range);
}

/// A map at original resolution and the rectangle of pixels the network saw.
pub struct OriginalMap {
    /// Row-major, width x height; 0 outside `seen`.
    pub values: Vec<f32>,
    /// Half-open `[x0, x1) x [y0, y1)`: a centre crop sees less than the image.
    pub seen: (usize, usize, usize, usize),
}

/// Carries a network-resolution map to the original image through the inverse geometry:
/// each original pixel centre is mapped into network coordinates and sampled bilinearly
/// (edge-clamped); pixels outside the network's view get 0 and are never part of a mask.
pub fn to_original(net: &[f32], geo: &Geometry) -> OriginalMap {
    let (nw, nh) = (geo.net_w, geo.net_h);
    let (w, h) = (geo.orig_w as usize, geo.orig_h as usize);
    // Per-axis sample positions, computed once.
    let axis = |n_orig: usize, scale: f64, offset: f64, n_net: usize| -> Vec<Option<(usize, usize, f32)>> {
        (0..n_orig)
            .map(|i| {
                let u = (i as f64 + 0.5) * scale + offset;
                if u < 0.0 || u >= n_net as f64 {
                    return None;
                }
                let p = (u - 0.5).clamp(0.0, (n_net - 1) as f64);
                let i0 = p.floor() as usize;
                let i1 = (i0 + 1).min(n_net - 1);
                Some((i0, i1, (p - i0 as f64) as f32))
            })
            .collect()
    };
    let xs = axis(w, geo.scale_x, geo.offset_x, nw);
    let ys = axis(h, geo.scale_y, geo.offset_y, nh);
    let span = |a: &[Option<(usize, usize, f32)>]| {
        let lo = a.iter().position(Option::is_some).unwrap_or(0);
        let hi = a.iter().rposition(Option::is_some).map(|i| i + 1).unwrap_or(0);
        (lo, hi.max(lo))
    };
    let ((x0, x1), (y0, y1)) = (span(&xs), span(&ys));
    let mut out = vec![0f32; w * h];
    // Separable: each network row the output needs is interpolated once at every output
    // column, instead of twice per output pixel. The arithmetic is the per-pixel formula's
    // term for term (`top`, `bot`, then the vertical blend), so the values are
    // bit-identical to sampling each pixel on its own.
    let cols: Vec<(usize, usize, f32)> = xs[x0..x1].iter().flatten().copied().collect();
    let mut needed = vec![false; nh];
    for &(r0, r1, _) in ys.iter().flatten() {
        (needed[r0], needed[r1]) = (true, true);
    }
    let rows: Vec<Vec<f32>> = (0..nh)
        .map(|r| {
            let src = &net[r * nw..(r + 1) * nw];
            match needed[r] {
                true => cols.iter().map(|&(c0, c1, fx)| src[c0] * (1.0 - fx) + src[c1] * fx).collect(),
                false => Vec::new(),
            }
        })
        .collect();
    for (y, sy) in ys.iter().enumerate().take(y1).skip(y0) {
        let Some((r0, r1, fy)) = *sy else { continue };
        let (top, bot) = (&rows[r0], &rows[r1]);
        let row = &mut out[y * w + x0..y * w + x1];
        for ((o, &t), &b) in row.iter_mut().zip(top).zip(bot) {
            *o = t * (1.0 - fy) + b * fy;
        }
    }
    OriginalMap { values: out, seen: (x0, y0, x1, y1) }
}

#[cfg(test)]
mod tests;
