//! The CAM threshold sweep of wsolevaluation (Choe et al. 2020), from the maps a run saved.
//!
//! For every image with truth, `maps/<rel>.npy` + `.json` give the raw map of the
//! evaluated class and the image's geometry. The map goes through the same code as
//! `cambox run` with the `wsol` preset ([`Localiser::prepare`]: upsampling to the network
//! input, min-max, inverse geometry, 8-bit levels) once; then for each tau in
//! `[0, 1)` the boxes are cut with [`Localiser::cut`] / [`Localiser::components_above`]
//! exactly as `run` with `preset = "wsol"` and that `tau` would cut them. So the tau that
//! `--calibrate` writes reproduces, in `run`, the boxes the sweep scored.
//!
//! - MaxBoxAcc (V1): max over tau of BoxAcc(tau, 0.5), largest component only.
//! - MaxBoxAccV2: mean over delta in {0.3, 0.5, 0.7} of max over tau of BoxAcc(tau,
//!   delta), all components; each delta may peak at its own tau.
//! - Calibrated tau: the single tau maximising the mean over delta of BoxAcc(tau, delta)
//!   with all components (what one threshold reused on unlabelled data can achieve).
//!
//! The same pass over the saved maps gives the map-level figures
//! ([`super::figures`]): each pair's peak, pointing hit and energy on the raw map carried to
//! original pixels (no ReLU, no normalisation), and, with truth masks, the pixel
//! histograms of PxAP and pixel IoU on the normalised map the boxes are cut from.
//!
//! Ties go to the smallest tau (numpy's `argmax`). A map with no pixel above the cut gives
//! no box: a miss (wsolevaluation boxes it as `[0, 0, 0, 0]`, which never reaches IoU
//! 0.3 either). An image whose map was not saved, or not for the evaluated class, is a
//! miss at every tau and counted. The taus are the decimals `k * step` written with the
//! step's digits, so a reported tau is exactly the value a config file would give.

use std::path::{Path, PathBuf};

use ndarray::{Array3, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::figures::{self, MapView, PixelHistograms, Pointing};
use super::metrics::BOX_ACC_DELTAS;
use super::metrics::{as_predicted, best_iou, box_acc_of, Convention, Rect};
use crate::stage::localise::{kept_components, to_original, Keep, Localiser, Normalise, Recipe, Threshold};
use crate::stage::preprocess::Geometry;
use crate::truth::masks::TruthMasks;

/// One (image, class) pair to sweep.
#[derive(Debug, Clone)]
pub struct SweepInput {
    pub rel: String,
    pub truth: Vec<Rect>,
    /// `maps/<rel>.npy`.
    pub map: PathBuf,
    /// The model class whose map is swept; `None`: a miss at every tau.
    pub class: Option<usize>,
    /// The evaluated label (which truth mask, in a folder per label).
    pub label: String,
    pub width: u32,
    pub height: u32,
    /// A tau chosen elsewhere (`--taus-from`): pixel counts are also taken at it.
    pub fixed_tau: Option<f64>,
}

/// What the pass over the maps needs besides the pairs.
#[derive(Debug, Clone, Copy)]
pub struct PassOptions<'a> {
    pub step: f64,
    pub convention: Convention,
    /// The pointing game's tolerance, in original pixels.
    pub tolerance: f64,
    pub masks: Option<&'a TruthMasks>,
}

/// A pair's pixels against its truth mask.
#[derive(Debug, Clone)]
pub struct PairPixels {
    pub histograms: PixelHistograms,
    /// True positives, false positives, false negatives at the pair's fixed tau.
    pub at_fixed_tau: Option<[u64; 3]>,
}

/// The `.json` beside each saved map.
#[derive(Debug, Deserialize)]
struct Sidecar {
    classes: Vec<usize>,
    geometry: Geometry,
}

/// Best IoU of one image at each tau (`None` = no box), and its map-level figures.
#[derive(Debug, Clone)]
struct ImageSweep {
    v1: Vec<Option<f64>>,
    v2: Vec<Option<f64>>,
    pointing: Pointing,
    /// With a truth mask for the pair.
    pixels: Option<PairPixels>,
    /// Why the pair's truth mask could not be used.
    mask_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepResult {
    pub step: f64,
    pub taus: Vec<f64>,
    /// Images with truth swept (the BoxAcc denominator).
    pub images: usize,
    /// Of those, images without a usable map (misses at every tau), with reasons.
    pub without_map: usize,
    pub without_map_examples: Vec<String>,
    /// BoxAcc(tau, delta) per tau, delta in {0.3, 0.5, 0.7}: largest component.
    pub box_acc_v1: Vec<[f64; 3]>,
    /// The same with all components.
    pub box_acc_v2: Vec<[f64; 3]>,
    /// MaxBoxAcc (V1): max over tau of BoxAcc(tau, 0.5), largest component.
    pub max_box_acc: f64,
    pub max_box_acc_tau: f64,
    /// Max over tau of BoxAcc(tau, delta), all components, per delta, and where.
    pub max_box_acc_v2_per_delta: [f64; 3],
    pub max_box_acc_v2_tau_per_delta: [f64; 3],
    /// MaxBoxAccV2: the mean of the three maxima.
    pub max_box_acc_v2: f64,
    /// The single tau maximising the mean over delta of BoxAcc(tau, delta), all components.
    pub calibrated_tau: f64,
    pub calibrated_box_acc_mean: f64,
}

/// The taus `0, step, 2 step, ...` below 1, each rounded to the step's decimals.
pub fn taus(step: f64) -> Vec<f64> {
    let n = (1.0 / step).round() as usize;
    let digits = (-step.log10()).ceil().max(0.0) as usize;
    (0..n).map(|k| format!("{:.digits$}", k as f64 * step).parse().expect("formatted number")).collect()
}

/// Index of the first maximum.
fn argmax(v: impl IntoIterator<Item = f64>) -> (usize, f64) {
    v.into_iter().enumerate().fold((0, f64::NEG_INFINITY), |b, (i, x)| if x > b.1 { (i, x) } else { b })
}

/// The BoxAcc curves of every pair, before they are summarised over a set of pairs.
pub struct Curves {
    step: f64,
    taus: Vec<f64>,
    per: Vec<ImageSweep>,
    /// Why a pair has no curve (a miss at every tau), by pair.
    errors: Vec<Option<String>>,
}

/// Cuts every pair's map at every tau; the convention decides how boxes are compared (and,
/// for the inclusive one, clips predicted boxes as wsolevaluation does).
pub fn curves(inputs: &[SweepInput], o: &PassOptions) -> Curves {
    let taus = taus(o.step);
    let per: Vec<Result<ImageSweep, String>> = inputs
        .par_iter()
        .map(|im| match im.class {
            Some(class) => sweep_image(im, class, &taus, o),
            None => Err("the run localised none of its classes on this image".into()),
        })
        .collect();
    let mut errors = Vec::with_capacity(per.len());
    let per = per
        .into_iter()
        .zip(inputs)
        .map(|(r, im)| match r {
            Ok(s) => {
                errors.push(None);
                s
            }
            Err(e) => {
                errors.push(Some(format!("{}: {e}", im.rel)));
                ImageSweep {
                    v1: vec![None; taus.len()],
                    v2: vec![None; taus.len()],
                    pointing: figures::pointing_without_map(&im.truth),
                    pixels: None,
                    mask_error: None,
                }
            }
        })
        .collect();
    Curves { step: o.step, taus, per, errors }
}

impl Curves {
    /// The number of pairs.
    pub fn len(&self) -> usize {
        self.per.len()
    }

    pub fn is_empty(&self) -> bool {
        self.per.is_empty()
    }

    pub fn taus(&self) -> &[f64] {
        &self.taus
    }

    /// The pointing figures of pair `i`.
    pub fn pointing(&self, i: usize) -> Pointing {
        self.per[i].pointing
    }

    /// Pair `i` against its truth mask, when it has one and a map.
    pub fn pixels(&self, i: usize) -> Option<&PairPixels> {
        self.per[i].pixels.as_ref()
    }

    /// Why pair `i`'s truth mask could not be used.
    pub fn mask_error(&self, i: usize) -> Option<&str> {
        self.per[i].mask_error.as_deref()
    }

    /// MaxBoxAccV2 over a multiset of pairs (a bootstrap resample); `None` when empty.
    pub fn max_box_acc_v2_of(&self, pairs: &[usize]) -> Option<f64> {
        if pairs.is_empty() {
            return None;
        }
        let n = pairs.len() as f64;
        let mut best = [0.0f64; 3];
        for t in 0..self.taus.len() {
            for (d, &delta) in BOX_ACC_DELTAS.iter().enumerate() {
                let hits = pairs.iter().filter(|&&i| self.per[i].v2[t].is_some_and(|v| v >= delta)).count();
                best[d] = best[d].max(hits as f64 / n);
            }
        }
        Some((best[0] + best[1] + best[2]) / 3.0)
    }

    /// The sweep's figures over the pairs `which` selects (by index in the inputs).
    pub fn summarise(&self, which: impl Fn(usize) -> bool) -> SweepResult {
        let chosen: Vec<usize> = (0..self.per.len()).filter(|&i| which(i)).collect();
        let taus = &self.taus;
        let acc = |pick: &dyn Fn(&ImageSweep) -> &Vec<Option<f64>>| -> Vec<[f64; 3]> {
            (0..taus.len())
                .map(|t| {
                    BOX_ACC_DELTAS.map(|d| box_acc_of(chosen.iter().map(|&i| pick(&self.per[i])[t]), d).unwrap_or(0.0))
                })
                .collect()
        };
        let v1 = acc(&|p| &p.v1);
        let v2 = acc(&|p| &p.v2);
        let (i1, max1) = argmax(v1.iter().map(|a| a[1]));
        let best: [(usize, f64); 3] = [0, 1, 2].map(|d| argmax(v2.iter().map(|a| a[d])));
        let (ic, cal) = argmax(v2.iter().map(|a| (a[0] + a[1] + a[2]) / 3.0));
        let mut without: Vec<String> = chosen.iter().filter_map(|&i| self.errors[i].clone()).collect();
        let without_map = without.len();
        without.truncate(crate::truth::annotations::ISSUE_EXAMPLES);
        SweepResult {
            step: self.step,
            images: chosen.len(),
            without_map,
            without_map_examples: without,
            max_box_acc: max1.max(0.0),
            max_box_acc_tau: taus[i1],
            max_box_acc_v2_per_delta: best.map(|b| b.1.max(0.0)),
            max_box_acc_v2_tau_per_delta: best.map(|b| taus[b.0]),
            max_box_acc_v2: (best[0].1 + best[1].1 + best[2].1).max(0.0) / 3.0,
            calibrated_tau: taus[ic],
            calibrated_box_acc_mean: cal.max(0.0),
            box_acc_v1: v1,
            box_acc_v2: v2,
            taus: taus.clone(),
        }
    }
}

/// Runs the sweep over every pair of `inputs`.
pub fn sweep(inputs: &[SweepInput], step: f64, conv: Convention) -> SweepResult {
    let o = PassOptions { step, convention: conv, tolerance: 15.0, masks: None };
    curves(inputs, &o).summarise(|_| true)
}

/// Reads the raw map of `class` and the image geometry saved by `run`.
pub fn load_map(npy: &Path, class: usize) -> Result<(ndarray::Array2<f32>, Geometry), String> {
    let side = npy.with_extension("json");
    let text = std::fs::read_to_string(&side).map_err(|e| format!("{}: {e}", side.display()))?;
    let s: Sidecar = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", side.display()))?;
    let pos = s.classes.iter().position(|&c| c == class).ok_or_else(|| {
        format!(
            "the saved maps are of classes {:?}, not {class} (set [localise] classes to the evaluated class)",
            s.classes
        )
    })?;
    let maps: Array3<f32> = ndarray_npy::read_npy(npy).map_err(|e| format!("{}: {e}", npy.display()))?;
    if pos >= maps.shape()[0] {
        return Err(format!("{}: {} maps for {} classes", npy.display(), maps.shape()[0], s.classes.len()));
    }
    Ok((maps.index_axis(Axis(0), pos).to_owned(), s.geometry))
}

fn sweep_image(im: &SweepInput, class: usize, taus: &[f64], o: &PassOptions) -> Result<ImageSweep, String> {
    if !im.map.is_file() {
        return Err("no saved map (run with [output] maps = true)".into());
    }
    let (raw, geo) = load_map(&im.map, class)?;
    let loc = Localiser::new(Recipe::wsol(0.0));
    let p = loc.prepare(raw.view(), &geo);
    let (mut v1, mut v2) = (Vec::with_capacity(taus.len()), Vec::with_capacity(taus.len()));
    // The cut only changes at some taus (256 levels at most): reuse the last result.
    let mut last: Option<(f32, Option<f64>, Option<f64>)> = None;
    for &tau in taus {
        let cut = loc.cut(&p, &Threshold::Fraction(tau as f32));
        let (b1, b2) = match last {
            Some((c, b1, b2)) if c == cut => (b1, b2),
            _ => best_ious_at(&loc, &p, cut, &im.truth, &geo, o.convention),
        };
        last = Some((cut, b1, b2));
        v1.push(b1);
        v2.push(b2);
    }
    let pointing = pointing_of(&loc, raw.view(), &geo, &im.truth, o.tolerance);
    let (pixels, mask_error) = match pixels_of(im, &p.map, taus, o) {
        Ok(px) => (px, None),
        Err(e) => (None, Some(e)),
    };
    Ok(ImageSweep { v1, v2, pointing, pixels, mask_error })
}

/// The best IoU of the largest component and of all components above `cut`.
fn best_ious_at(
    loc: &Localiser,
    p: &crate::stage::localise::PreparedMap,
    cut: f32,
    truth: &[Rect],
    geo: &Geometry,
    conv: Convention,
) -> (Option<f64>, Option<f64>) {
    let (w, h) = (geo.orig_w, geo.orig_h);
    let comps = loc.components_above(p, cut).components;
    let rects = |cs: Vec<&crate::stage::localise::components::Component>| -> Vec<Rect> {
        cs.iter()
            .map(|c| as_predicted(Rect::new(c.x1 as f64, c.y1 as f64, c.x2 as f64, c.y2 as f64), w, h, conv))
            .collect()
    };
    let largest = rects(kept_components(Keep::Largest, 0.0, &comps, p.width * p.height));
    let all = rects(loc.keep(&comps, p));
    (best_iou(&largest, truth, conv), best_iou(&all, truth, conv))
}

/// The pointing figures on the raw map carried to original pixels (upsampled as the
/// recipe does, without ReLU or normalisation, so that energy sees the map's own sign).
fn pointing_of(
    loc: &Localiser,
    raw: ndarray::ArrayView2<f32>,
    geo: &Geometry,
    truth: &[Rect],
    tolerance: f64,
) -> Pointing {
    let plain = Localiser::new(Recipe { relu: false, normalise: Normalise::None, ..loc.recipe.clone() });
    let net = plain.network_map(raw, geo.net_w, geo.net_h);
    let carried = to_original(&net, geo);
    let view = MapView {
        values: &carried.values,
        width: geo.orig_w as usize,
        height: geo.orig_h as usize,
        seen: carried.seen,
    };
    figures::pointing(&view, truth, tolerance)
}

/// The pair's normalised map against its truth mask, when the evaluation has masks and
/// one for this pair.
fn pixels_of(im: &SweepInput, score: &[f32], taus: &[f64], o: &PassOptions) -> Result<Option<PairPixels>, String> {
    let Some(masks) = o.masks else { return Ok(None) };
    let Some(mask) = masks.load(&im.rel, &im.label, im.width, im.height)? else { return Ok(None) };
    let mut histograms = PixelHistograms::new(taus);
    histograms.add(taus, score, &mask);
    let at_fixed_tau = im.fixed_tau.map(|t| figures::pixel_counts(score, &mask, t));
    Ok(Some(PairPixels { histograms, at_fixed_tau }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taus_are_decimal() {
        let t = taus(0.01);
        assert_eq!(t.len(), 100);
        assert_eq!((t[0], t[7], t[99]), (0.0, 0.07, 0.99));
        let t = taus(0.001);
        assert_eq!((t.len(), t[123]), (1000, 0.123));
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax([0.1, 0.5, 0.5, 0.2]), (1, 0.5));
    }

    /// A 3 x 3 feature map on a 30 x 30 image (stretch, net 30 x 30): a hot centre cell
    /// and a warm corner. At low tau both survive (V2 has two boxes, V1 the bigger one).
    #[test]
    fn sweep_of_a_hand_map() {
        let dir = tempfile::tempdir().unwrap();
        let npy = dir.path().join("a.png.npy");
        let mut m = Array3::<f32>::zeros((1, 3, 3));
        m[[0, 1, 1]] = 1.0;
        m[[0, 2, 2]] = 0.5;
        ndarray_npy::write_npy(&npy, &m).unwrap();
        let geo = Geometry {
            orig_w: 30,
            orig_h: 30,
            net_w: 30,
            net_h: 30,
            resized_w: 30,
            resized_h: 30,
            scale_x: 1.0,
            scale_y: 1.0,
            offset_x: 0.0,
            offset_y: 0.0,
        };
        let side = serde_json::json!({"classes": [4], "shape": [3, 3], "geometry": geo});
        std::fs::write(npy.with_extension("json"), side.to_string()).unwrap();
        // The truth is what run with preset wsol and tau 0.5 boxes (computed by the same
        // localiser here); the sweep must find IoU 1 there.
        let (raw, g) = load_map(&npy, 4).unwrap();
        let l = Localiser::new(Recipe::wsol(0.5)).localise(4, raw.view(), &g);
        assert!(!l.boxes.is_empty());
        let truth = l.boxes.iter().map(|b| Rect::new(b.x1 as f64, b.y1 as f64, b.x2 as f64, b.y2 as f64)).collect();
        let input = SweepInput {
            rel: "a.png".into(),
            truth,
            map: npy.clone(),
            class: Some(4),
            label: "x".into(),
            width: 30,
            height: 30,
            fixed_tau: None,
        };
        let missing = SweepInput {
            rel: "b.png".into(),
            truth: vec![],
            map: dir.path().join("b.png.npy"),
            class: Some(4),
            ..input.clone()
        };
        let r = sweep(&[input.clone(), missing], 0.01, Convention::HalfOpen);
        let i = r.taus.iter().position(|&t| t == 0.5).unwrap();
        assert_eq!(r.box_acc_v2[i], [0.5, 0.5, 0.5], "one hit out of two images");
        assert_eq!(r.max_box_acc_v2, 0.5);
        assert_eq!((r.without_map, r.images), (1, 2));
        assert!(r.without_map_examples[0].starts_with("b.png: no saved map"));
        // The wrong class is a miss with a reason.
        let r = sweep(&[SweepInput { class: Some(3), ..input }], 0.01, Convention::HalfOpen);
        assert_eq!((r.without_map, r.max_box_acc_v2), (1, 0.0));
        assert!(r.without_map_examples[0].contains("not 3"), "{:?}", r.without_map_examples);
    }
}
