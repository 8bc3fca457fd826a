//! Several looks at one image: the network input at more than one size, and mirrored.
//!
//! A class map is only as sharp as the feature map is large, and one pass at one size
//! carries that network's biases for scale and for left and right. `[cam] scales` runs the
//! network at several input sizes (one tract plan per size, built and proved once at
//! start-up) and `[cam] flip` adds a pass on the mirrored input, whose map is mirrored
//! back; the localise stage averages the passes' maps in original-image pixels
//! ([`crate::stage::localise::fuse`]). This module only says what each pass feeds the
//! network.
//!
//! A scale given as one number is the *shorter side of the network input*, whose aspect
//! is that of the run's input size (`[model] input_size`, or what the model declares):
//! with `input_size = [480, 320]`, `scales = [224, 320, 416]` gives 336x224, 480x320 and
//! 624x416 (sides rounded to the nearest pixel). Why not the shorter side of each image,
//! aspect kept: tract plans are built for one input size, and a plan with symbolic height
//! and width ran EfficientNet-Lite0 12 times slower; `letterbox` keeps each image's aspect
//! inside the fixed size instead. A `[width, height]` pair is taken as it is. With a
//! centre crop, `resize_to` grows with the scale (by the ratio of the shorter sides), so
//! every pass crops the same part of the image.
//!
//! The mirrored pass mirrors the network input tensor itself, after resizing and padding:
//! its geometry is the unmirrored pass's, and mirroring its map back is exact.

use ndarray::{Array4, Axis, Slice};
use serde::{Deserialize, Serialize};

use super::{NetInput, PreprocessOptions, Preprocessor, ResizeMode};
use crate::defaults;
use crate::error::ImageError;
use crate::stage::decode::SourceImage;
use crate::stage::input_spec::{InputSpec, Layout};

/// One entry of `[cam] scales`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scale {
    /// The network input's shorter side, its aspect kept.
    Shorter(usize),
    /// `[width, height]`.
    Size([usize; 2]),
}

/// `[cam] recipe`: a named choice of scales and flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CamRecipe {
    /// One pass at the input size (what every CAM pipeline does).
    #[default]
    Standard,
    /// [`defaults::SHARP_SCALES`] and a mirrored pass of each: see the README's
    /// "Sharper maps" for the figures it was chosen from.
    Sharp,
}

impl CamRecipe {
    /// The scales when `[cam] scales` is not given (empty: the input size only).
    pub fn scales(self) -> Vec<Scale> {
        match self {
            CamRecipe::Standard => Vec::new(),
            CamRecipe::Sharp => defaults::SHARP_SCALES.iter().map(|&s| Scale::Shorter(s)).collect(),
        }
    }

    /// Whether mirrored passes are added when `[cam] flip` is not given.
    pub fn flip(self) -> bool {
        match self {
            CamRecipe::Standard => false,
            CamRecipe::Sharp => defaults::SHARP_FLIP,
        }
    }
}

/// What one pass feeds the network.
#[derive(Debug, Clone)]
pub struct Pass {
    pub preprocessor: Preprocessor,
    /// The input is mirrored left to right (and its maps mirrored back).
    pub flip: bool,
}

impl Pass {
    /// The network input of this pass; its geometry is that of the unmirrored input.
    pub fn run(&self, img: &SourceImage) -> Result<NetInput, ImageError> {
        let mut input = self.preprocessor.run(img)?;
        if self.flip {
            input.tensor = mirrored(&input.tensor, self.preprocessor.net().layout);
        }
        Ok(input)
    }

    /// `[width, height]` of the network input.
    pub fn size(&self) -> [usize; 2] {
        [self.preprocessor.net().width, self.preprocessor.net().height]
    }
}

/// The tensor mirrored along its width axis.
fn mirrored(t: &Array4<f32>, layout: Layout) -> Array4<f32> {
    match layout {
        Layout::Nchw => t.slice_axis(Axis(3), Slice::new(0, None, -1)).to_owned(),
        Layout::Nhwc => t.slice_axis(Axis(2), Slice::new(0, None, -1)).to_owned(),
    }
}

/// The network input sizes of `scales` for a run whose input size is `net`'s (the input
/// size alone when `scales` is empty), without repeats, in the order given.
pub fn pass_sizes(net: &InputSpec, scales: &[Scale]) -> Vec<[usize; 2]> {
    let mut sizes: Vec<[usize; 2]> = Vec::new();
    let base = [net.width, net.height];
    let all = if scales.is_empty() { vec![base] } else { scales.iter().map(|s| scaled(base, *s)).collect() };
    for size in all {
        if !sizes.contains(&size) {
            sizes.push(size);
        }
    }
    sizes
}

/// The size of one scale: a shorter side keeps `base`'s aspect.
fn scaled(base: [usize; 2], scale: Scale) -> [usize; 2] {
    match scale {
        Scale::Size(s) => s,
        Scale::Shorter(s) => {
            let [w, h] = base;
            let other = |long: usize, short: usize| ((s as f64 * long as f64 / short as f64).round() as usize).max(1);
            if w <= h {
                [s, other(h, w)]
            } else {
                [other(w, h), s]
            }
        }
    }
}

/// The passes of a run: each size of `sizes` (see [`pass_sizes`]), then with `flip` its
/// mirrored pass after it. The message says what is wrong with the recipe at some size.
pub fn passes(cfg: &PreprocessOptions, net: &InputSpec, sizes: &[[usize; 2]], flip: bool) -> Result<Vec<Pass>, String> {
    let base_short = net.width.min(net.height) as f64;
    let mut out = Vec::new();
    for &[w, h] in sizes {
        let spec = InputSpec { width: w, height: h, ..net.clone() };
        let mut cfg = cfg.clone();
        if cfg.resize == ResizeMode::ShorterSideThenCenterCrop && [w, h] != [net.width, net.height] {
            let factor = w.min(h) as f64 / base_short;
            cfg.resize_to = cfg.resize_to.map(|r| (r as f64 * factor).round() as usize);
        }
        let preprocessor = Preprocessor::new(&cfg, &spec).map_err(|e| format!("at input size {w}x{h}: {e}"))?;
        out.push(Pass { preprocessor: preprocessor.clone(), flip: false });
        if flip {
            out.push(Pass { preprocessor, flip: true });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(w: usize, h: usize) -> InputSpec {
        InputSpec { name: "x".into(), layout: Layout::Nchw, channels: 3, width: w, height: h }
    }

    #[test]
    fn shorter_sides_keep_the_input_aspect() {
        let sizes = pass_sizes(&net(480, 320), &[Scale::Shorter(224), Scale::Shorter(320), Scale::Shorter(416)]);
        assert_eq!(sizes, vec![[336, 224], [480, 320], [624, 416]]);
        // Portrait input, an explicit size, and a repeat dropped.
        let sizes = pass_sizes(&net(224, 300), &[Scale::Shorter(224), Scale::Size([100, 50]), Scale::Shorter(224)]);
        assert_eq!(sizes, vec![[224, 300], [100, 50]]);
        assert_eq!(pass_sizes(&net(224, 224), &[]), vec![[224, 224]]);
    }

    #[test]
    fn a_centre_crop_grows_with_the_scale() {
        let cfg = PreprocessOptions {
            resize: ResizeMode::ShorterSideThenCenterCrop,
            resize_to: Some(256),
            ..PreprocessOptions::default()
        };
        let p = passes(&cfg, &net(224, 224), &[[224, 224], [448, 448]], true).unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!((p[0].size(), p[1].flip, p[2].size()), ([224, 224], true, [448, 448]));
        // 256 * 2: the same share of the image is cropped at both sizes.
        let g = p[2].preprocessor.geometry(1000, 800);
        assert_eq!((g.resized_w, g.resized_h), (640, 512));
    }

    #[test]
    fn mirroring_reverses_the_width_axis_only() {
        let t = Array4::from_shape_fn((1, 2, 2, 3), |(_, c, y, x)| (100 * c + 10 * y + x) as f32);
        let m = mirrored(&t, Layout::Nchw);
        assert_eq!(m[[0, 1, 1, 0]], 112.0);
        assert_eq!(m[[0, 0, 0, 2]], 0.0);
        let t = Array4::from_shape_fn((1, 2, 3, 1), |(_, y, x, _)| (10 * y + x) as f32);
        assert_eq!(mirrored(&t, Layout::Nhwc)[[0, 1, 0, 0]], 12.0);
    }
}
