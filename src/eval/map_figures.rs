//! The figures read off the saved maps, over any set of pairs: the threshold sweep
//! (MaxBoxAcc), the pointing game and energy, PxAP and pixel IoU.
//!
//! One pass over `maps/` ([`sweep::curves`]) computes every pair's curves, pointing
//! figures and pixel histograms once; [`MapPass`] then sums them over whichever pairs a
//! figure needs: all pairs, one class's, or a bootstrap resample (a multiset of pairs).

use serde::Serialize;

use super::figures::{pixel_iou, PixelHistograms};
use super::sweep::{self, Curves, PassOptions, SweepInput, SweepResult};
use super::{EvalClass, ImageResult};
use crate::output::artefacts::Artefacts;
use crate::truth::masks::TruthMasks;

/// How pixel IoU cuts a class's normalised map.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum PixelTau {
    /// A tau chosen elsewhere (`--taus-from`).
    Fixed(f64),
    /// The tau of the sweep grid at this index, chosen on this set (the calibrated tau).
    Grid(usize),
}

/// The pass over the maps, and which pair of the evaluation each of its entries is.
pub struct MapPass {
    pub curves: Curves,
    /// For each pair of the evaluation (`Evaluation::images` order), its entry.
    pub entry: Vec<Option<usize>>,
    /// Per evaluated class.
    pub pixel_tau: Vec<PixelTau>,
    /// Pairs with a truth mask (PxAP's denominator is their pixels).
    pub with_mask: usize,
    /// Truth masks that could not be used, with reasons (a few).
    pub mask_errors: Vec<String>,
    pub mask_error_count: usize,
}

/// What the pass needs to know.
pub struct PassRequest<'a> {
    pub options: PassOptions<'a>,
    /// Per evaluated class, the tau `--taus-from` gives it.
    pub fixed_taus: Vec<Option<f64>>,
}

/// Runs the pass over the pairs with truth (and, with truth masks, every pair whose image
/// has one), then fixes each class's pixel-IoU tau.
pub fn map_pass(run_dir: &std::path::Path, images: &[ImageResult], classes: &[EvalClass], r: &PassRequest) -> MapPass {
    // The same file names as `run` writes.
    let artefacts = Artefacts::new(run_dir, &Default::default());
    let has_mask =
        |i: &ImageResult| r.options.masks.is_some_and(|m: &TruthMasks| m.path_of(&i.rel, &i.label).is_some());
    let mut entry = vec![None; images.len()];
    let mut inputs = Vec::new();
    for (n, i) in images.iter().enumerate() {
        if i.truth.is_empty() && !has_mask(i) {
            continue;
        }
        entry[n] = Some(inputs.len());
        inputs.push(SweepInput {
            rel: i.rel.clone(),
            truth: i.truth.clone(),
            map: artefacts.map_path(&i.rel),
            class: i.class.or_else(|| classes[i.class_index].classes.first().copied()),
            label: i.label.clone(),
            width: i.width,
            height: i.height,
            fixed_tau: r.fixed_taus[i.class_index],
        });
    }
    let curves = sweep::curves(&inputs, &r.options);
    let mut pass =
        MapPass { curves, entry, pixel_tau: Vec::new(), with_mask: 0, mask_errors: Vec::new(), mask_error_count: 0 };
    for e in 0..inputs.len() {
        if pass.curves.pixels(e).is_some() {
            pass.with_mask += 1;
        }
        if let Some(err) = pass.curves.mask_error(e) {
            pass.mask_error_count += 1;
            if pass.mask_errors.len() < crate::truth::annotations::ISSUE_EXAMPLES {
                pass.mask_errors.push(err.to_string());
            }
        }
    }
    pass.pixel_tau = (0..classes.len())
        .map(|c| match r.fixed_taus[c] {
            Some(t) => PixelTau::Fixed(t),
            None => {
                let s = pass.sweep_of(images, |i| i.class_index == c);
                PixelTau::Grid(pass.curves.taus().iter().position(|&t| t == s.calibrated_tau).unwrap_or(0))
            }
        })
        .collect();
    pass
}

impl MapPass {
    /// The sweep over the pairs with truth that `keep` selects.
    pub fn sweep_of(&self, images: &[ImageResult], keep: impl Fn(&ImageResult) -> bool) -> SweepResult {
        let mut chosen = vec![false; self.curves.len()];
        for (i, e) in images.iter().zip(&self.entry) {
            if let Some(e) = e {
                chosen[*e] = !i.truth.is_empty() && keep(i);
            }
        }
        self.curves.summarise(|e| chosen[e])
    }

    /// MaxBoxAccV2 over a multiset of pairs (indices into the evaluation's pairs).
    pub fn max_box_acc_v2(&self, images: &[ImageResult], pairs: &[usize]) -> Option<f64> {
        let entries: Vec<usize> =
            pairs.iter().filter(|&&p| !images[p].truth.is_empty()).filter_map(|&p| self.entry[p]).collect();
        self.curves.max_box_acc_v2_of(&entries)
    }

    /// PxAP over a multiset of pairs; `None` without truth-mask foreground.
    pub fn pxap(&self, pairs: &[usize]) -> Option<f64> {
        let mut sum: Option<PixelHistograms> = None;
        for px in pairs.iter().filter_map(|&p| self.entry[p]).filter_map(|e| self.curves.pixels(e)) {
            match &mut sum {
                Some(s) => s.merge(&px.histograms),
                None => sum = Some(px.histograms.clone()),
            }
        }
        sum?.pxap()
    }

    /// Pooled pixel IoU over a multiset of pairs, each at its class's tau.
    pub fn pixel_iou(&self, images: &[ImageResult], pairs: &[usize]) -> Option<f64> {
        let mut counts = [0u64; 3];
        let mut any = false;
        for &p in pairs {
            let Some(px) = self.entry[p].and_then(|e| self.curves.pixels(e)) else { continue };
            let c = match self.pixel_tau[images[p].class_index] {
                PixelTau::Fixed(_) => px.at_fixed_tau.unwrap_or_default(),
                PixelTau::Grid(k) => px.histograms.counts_above(k),
            };
            counts.iter_mut().zip(c).for_each(|(a, b)| *a += b);
            any = true;
        }
        any.then(|| pixel_iou(counts))
    }

    /// The pixel-IoU tau of class `c`, as a number.
    pub fn pixel_tau_value(&self, c: usize) -> f64 {
        match self.pixel_tau[c] {
            PixelTau::Fixed(t) => t,
            PixelTau::Grid(k) => self.curves.taus()[k],
        }
    }
}
