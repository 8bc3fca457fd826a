//! Stage "preprocess": a decoded image to the network's input tensor, plus the exact
//! geometry that relates the two.
//!
//! Every later stage that draws on the original image (boxes, masks, overlays) goes back
//! through [`Geometry`], so the mapping is recorded, not re-derived: a centre crop or a
//! letterbox is part of what the network saw.
//!
//! The geometry is always that of the *original* image (the size its file declares). A
//! JPEG decoded at reduced scale ([`crate::stage::decode`], `jpeg_scaling = "dct"`) is only a
//! coarser sampling of the same picture: its pixels are resampled over the original's
//! extent in them (original / reduction), so the network input samples the same places
//! and nothing downstream knows the decode was reduced.

mod geometry;
mod normalise;
mod options;
pub mod passes;
pub mod resample;

use ndarray::Array4;

use crate::error::ImageError;
use crate::stage::decode::{Samples, SourceImage};
use crate::stage::input_spec::{InputSpec, Layout};
pub use geometry::Geometry;
pub use normalise::Normaliser;
pub use options::{ChannelOrder, PixelScale, PreprocessOptions, ResizeMode};
pub use passes::{CamRecipe, Pass, Scale};
pub use resample::Resampling;
use resample::{resize_window_extent, Sample};

/// The network input of one image.
pub struct NetInput {
    /// 1 x C x H x W or 1 x H x W x C, as the network wants.
    pub tensor: Array4<f32>,
    pub geometry: Geometry,
}

/// A validated preprocessing recipe for one network input.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    mode: ResizeMode,
    resize_to: Option<usize>,
    resampling: Resampling,
    order: ChannelOrder,
    normaliser: Normaliser,
    pad_value: f32,
    net: InputSpec,
}

impl Preprocessor {
    /// Validates `cfg` against the network input; the message says what is wrong.
    pub fn new(cfg: &PreprocessOptions, net: &InputSpec) -> Result<Preprocessor, String> {
        // One value broadcasts; otherwise one per channel of the model: a 3-value ImageNet
        // mean given to a 1-channel model is a mistake, not a value to truncate.
        for (what, n) in [("mean", cfg.mean.len()), ("std", cfg.std.len())] {
            if !(n == 1 || n == net.channels) {
                let c = net.channels;
                return Err(format!(
                    "[preprocess] {what} has {n} values but the model takes {c} channel{}; give 1 value{}",
                    if c == 1 { "" } else { "s" },
                    if c == 1 { String::new() } else { format!(" or {c}") }
                ));
            }
        }
        let normaliser = Normaliser::new(cfg)
            .map_err(|_| "[preprocess] std must be finite and non-zero, mean finite".to_string())?;
        if cfg.resize == ResizeMode::ShorterSideThenCenterCrop {
            let r = cfg
                .resize_to
                .ok_or("[preprocess] resize = \"shorter-side-then-center-crop\" needs resize_to (e.g. 256)")?;
            if r < net.width.max(net.height) {
                return Err(format!(
                    "[preprocess] resize_to = {r} is smaller than the {}x{} crop",
                    net.width, net.height
                ));
            }
        }
        Ok(Preprocessor {
            mode: cfg.resize,
            resize_to: cfg.resize_to,
            resampling: cfg.resampling,
            order: cfg.channels,
            normaliser,
            pad_value: cfg.pad_value,
            net: net.clone(),
        })
    }

    /// The network input this recipe produces tensors for.
    pub fn net(&self) -> &InputSpec {
        &self.net
    }

    /// The size an image of `w` x `h` original pixels is resampled to, before any crop or
    /// pad (what a reduced JPEG decode must keep enough pixels for).
    pub fn resize_target(&self, w: u32, h: u32) -> (usize, usize) {
        let g = self.geometry(w, h);
        (g.resized_w, g.resized_h)
    }

    /// The geometry for an image of `w` x `h` pixels.
    pub fn geometry(&self, w: u32, h: u32) -> Geometry {
        let (nw, nh) = (self.net.width, self.net.height);
        let (fw, fh) = (w as f64, h as f64);
        let (rw, rh, ox, oy) = match self.mode {
            ResizeMode::Stretch => (nw, nh, 0.0, 0.0),
            ResizeMode::ShorterSideThenCenterCrop => {
                let s = self.resize_to.expect("validated");
                // torchvision: the long side is truncated, not rounded.
                let (rw, rh) =
                    if w <= h { (s, (s as f64 * fh / fw) as usize) } else { ((s as f64 * fw / fh) as usize, s) };
                let (rw, rh) = (rw.max(nw), rh.max(nh));
                (rw, rh, -(round_half_even((rw - nw) as f64 / 2.0)), -(round_half_even((rh - nh) as f64 / 2.0)))
            }
            ResizeMode::Letterbox => {
                let s = (nw as f64 / fw).min(nh as f64 / fh);
                let rw = ((fw * s).round() as usize).clamp(1, nw);
                let rh = ((fh * s).round() as usize).clamp(1, nh);
                (rw, rh, ((nw - rw) / 2) as f64, ((nh - rh) / 2) as f64)
            }
        };
        Geometry {
            orig_w: w,
            orig_h: h,
            net_w: nw,
            net_h: nh,
            resized_w: rw,
            resized_h: rh,
            scale_x: rw as f64 / fw,
            scale_y: rh as f64 / fh,
            offset_x: ox,
            offset_y: oy,
        }
    }

    pub fn run(&self, img: &SourceImage) -> Result<NetInput, ImageError> {
        let (ow, oh) = img.original;
        let r = img.reduction;
        if r == 0 || (img.width, img.height) != (ow.div_ceil(r), oh.div_ceil(r)) {
            return Err(ImageError::Preprocess(format!(
                "decoded {}x{} is not {ow}x{oh} reduced by {r}",
                img.width, img.height
            )));
        }
        let geo = self.geometry(ow, oh);
        let (w, h) = (img.width as usize, img.height as usize);
        // Channel conversion first: resizing one grey channel is a third of the work.
        // Window of the scaled image that lands inside the network input.
        let (wx0, wy0) = ((-geo.offset_x).max(0.0) as usize, (-geo.offset_y).max(0.0) as usize);
        let (px, py) = (geo.offset_x.max(0.0) as usize, geo.offset_y.max(0.0) as usize);
        let cw = geo.resized_w.min(self.net.width);
        let chh = geo.resized_h.min(self.net.height);
        let window = (wx0, wy0, cw, chh);
        let extent = img.original_extent();
        let resize = |src: &dyn ResizeSource, sch: usize| {
            src.resize(w, h, sch, extent, geo.resized_w, geo.resized_h, window, self.resampling)
        };
        let (pixels, sch) = match (img.channels, self.net.channels) {
            (3, 1) => {
                // ITU-R 601-2 luma, as Pillow's convert("L").
                let luma = |p: [f32; 3]| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
                let grey: Vec<f32> = (0..img.data.len() / 3)
                    .map(|i| luma([img.data.get(3 * i), img.data.get(3 * i + 1), img.data.get(3 * i + 2)]))
                    .collect();
                (resize(&grey.as_slice(), 1), 1)
            }
            (c, _) => match &img.data {
                Samples::U8(v) => (resize(&v.as_slice(), c), c),
                Samples::F32(v) => (resize(&v.as_slice(), c), c),
            },
        };

        let (nw, nh, nc) = (self.net.width, self.net.height, self.net.channels);
        let pad: Vec<f32> = (0..nc).map(|c| self.normaliser.scaled_value(c, self.pad_value)).collect();
        let value = |c: usize, y: usize, x: usize| -> f32 {
            if x < px || y < py || x >= px + cw || y >= py + chh {
                return pad[c];
            }
            let (sx, sy) = (x - px, y - py);
            // Network channel c reads source channel `from` (BGR reverses).
            let from = if sch == 1 {
                0
            } else {
                match self.order {
                    ChannelOrder::Rgb => c,
                    ChannelOrder::Bgr => 2 - c,
                }
            };
            self.normaliser.value(c, pixels[(sy * cw + sx) * sch + from])
        };
        let arr = match self.net.layout {
            Layout::Nchw => Array4::from_shape_fn((1, nc, nh, nw), |(_, c, y, x)| value(c, y, x)),
            Layout::Nhwc => Array4::from_shape_fn((1, nh, nw, nc), |(_, y, x, c)| value(c, y, x)),
        };
        Ok(NetInput { tensor: arr, geometry: geo })
    }
}

/// A slice of samples of either type, for [`resize_window_extent`].
trait ResizeSource {
    #[allow(clippy::too_many_arguments)]
    fn resize(
        &self,
        w: usize,
        h: usize,
        ch: usize,
        extent: (f64, f64),
        out_w: usize,
        out_h: usize,
        window: (usize, usize, usize, usize),
        kind: Resampling,
    ) -> Vec<f32>;
}

impl<S: Sample> ResizeSource for &[S] {
    fn resize(
        &self,
        w: usize,
        h: usize,
        ch: usize,
        extent: (f64, f64),
        out_w: usize,
        out_h: usize,
        window: (usize, usize, usize, usize),
        kind: Resampling,
    ) -> Vec<f32> {
        resize_window_extent(self, w, h, ch, extent, out_w, out_h, window, kind)
    }
}

/// Python's `round()` (half to even), as torchvision's centre crop uses.
fn round_half_even(v: f64) -> f64 {
    let r = v.round();
    if (v - v.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - v.signum()
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(w: usize, h: usize, c: usize, layout: Layout) -> InputSpec {
        InputSpec { name: "input".into(), layout, channels: c, width: w, height: h }
    }

    fn pre(mode: ResizeMode, resize_to: Option<usize>, net: InputSpec) -> Preprocessor {
        let cfg = PreprocessOptions { resize: mode, resize_to, ..Default::default() };
        Preprocessor::new(&cfg, &net).unwrap()
    }

    #[test]
    fn torchvision_resize_and_center_crop_geometry() {
        // 517 wide x 333 high, Resize(256) -> 397 x 256 (int(256 * 517 / 333) = 397),
        // CenterCrop(224): left = round(173 / 2) = round(86.5) = 86 (half to even), top = 16.
        let p = pre(ResizeMode::ShorterSideThenCenterCrop, Some(256), spec(224, 224, 3, Layout::Nchw));
        let g = p.geometry(517, 333);
        assert_eq!((g.resized_w, g.resized_h), (397, 256));
        assert_eq!((g.offset_x, g.offset_y), (-86.0, -16.0));
        let (x, y) = g.to_orig(0.0, 0.0);
        assert!((x - 86.0 * 517.0 / 397.0).abs() < 1e-9 && (y - 16.0 * 333.0 / 256.0).abs() < 1e-9);
    }

    #[test]
    fn letterbox_geometry_pads_the_short_side() {
        let p = pre(ResizeMode::Letterbox, None, spec(224, 224, 3, Layout::Nchw));
        let g = p.geometry(400, 200);
        assert_eq!((g.resized_w, g.resized_h), (224, 112));
        assert_eq!((g.offset_x, g.offset_y), (0.0, 56.0));
        let (u, v) = g.to_net(400.0, 200.0);
        assert!((u - 224.0).abs() < 1e-9 && (v - 168.0).abs() < 1e-9);
    }

    #[test]
    fn grey_is_replicated_and_normalised_nhwc() {
        let mut cfg =
            PreprocessOptions { resize: ResizeMode::Stretch, resampling: Resampling::Nearest, ..Default::default() };
        cfg.scale = PixelScale::Byte;
        cfg.mean = vec![127.5];
        cfg.std = vec![127.5];
        let p = Preprocessor::new(&cfg, &spec(4, 2, 3, Layout::Nhwc)).unwrap();
        let data = (0..32).map(|i| if i % 8 < 4 { 0.0 } else { 1.0 }).collect();
        let img = SourceImage::full(8, 4, 1, data, 8, Default::default());
        let t = p.run(&img).unwrap().tensor;
        assert_eq!(t.shape(), &[1, 2, 4, 3]);
        let v = t.as_slice().unwrap();
        assert_eq!(&v[0..3], &[-1.0, -1.0, -1.0]);
        assert_eq!(&v[9..12], &[1.0, 1.0, 1.0]);
    }

    #[test]
    fn bgr_reverses_channels() {
        let cfg = PreprocessOptions {
            resize: ResizeMode::Stretch,
            resampling: Resampling::Nearest,
            channels: ChannelOrder::Bgr,
            ..Default::default()
        };
        let p = Preprocessor::new(&cfg, &spec(8, 8, 3, Layout::Nchw)).unwrap();
        let img = SourceImage::full(8, 8, 3, [0.1f32, 0.5, 0.9].repeat(64), 8, Default::default());
        let t = p.run(&img).unwrap().tensor;
        let v = t.as_slice().unwrap();
        assert!((v[0] - 0.9).abs() < 1e-6 && (v[64] - 0.5).abs() < 1e-6 && (v[128] - 0.1).abs() < 1e-6);
    }

    #[test]
    fn rejects_bad_recipes() {
        let net = spec(224, 224, 3, Layout::Nchw);
        let cfg =
            PreprocessOptions { resize: ResizeMode::ShorterSideThenCenterCrop, resize_to: None, ..Default::default() };
        assert!(Preprocessor::new(&cfg, &net).unwrap_err().contains("resize_to"));
        let cfg = PreprocessOptions { std: vec![0.0], ..Default::default() };
        assert!(Preprocessor::new(&cfg, &net).is_err());
        let cfg = PreprocessOptions { mean: vec![0.1, 0.2], ..Default::default() };
        assert!(Preprocessor::new(&cfg, &net).is_err());
        // Three ImageNet values for a one-channel model: refused, naming its channel count.
        let grey = spec(224, 224, 1, Layout::Nchw);
        let cfg = PreprocessOptions { mean: vec![0.485, 0.456, 0.406], ..Default::default() };
        let e = Preprocessor::new(&cfg, &grey).unwrap_err();
        assert!(e.contains("mean has 3 values but the model takes 1 channel"), "{e}");
        let cfg = PreprocessOptions { std: vec![0.229, 0.224, 0.225], ..Default::default() };
        assert!(Preprocessor::new(&cfg, &grey).unwrap_err().contains("std has 3 values"));
        let cfg = PreprocessOptions { mean: vec![0.5], std: vec![0.25], ..Default::default() };
        assert!(Preprocessor::new(&cfg, &grey).is_ok(), "one value broadcasts");
    }

    #[test]
    fn dct_decode_keeps_original_size_and_samples_the_same_places() {
        use crate::stage::decode::tests::gradient_jpeg;
        use crate::stage::decode::{Decoder, JpegScaling};
        let bytes = gradient_jpeg(1000, 700);
        let net = InputSpec { name: "input".into(), layout: Layout::Nchw, channels: 3, width: 112, height: 112 };
        let cfg = PreprocessOptions {
            resize: ResizeMode::ShorterSideThenCenterCrop,
            resize_to: Some(128),
            ..Default::default()
        };
        let pre = Preprocessor::new(&cfg, &net).unwrap();
        let target = |w: u32, h: u32| pre.resize_target(w, h);
        let exact = Decoder::default().decode_bytes_for(&bytes, Some(&target)).unwrap();
        let dct = Decoder { jpeg_scaling: JpegScaling::Dct, ..Decoder::default() };
        let small = dct.decode_bytes_for(&bytes, Some(&target)).unwrap();
        // 182 x 128 target: 1/2 gives 500 x 350 >= 364 x 256, 1/4 gives 250 x 175 < 256.
        assert_eq!((exact.width, exact.height, exact.reduction), (1000, 700, 1));
        assert_eq!((small.width, small.height, small.original, small.reduction), (500, 350, (1000, 700), 2));
        let a = pre.run(&exact).unwrap();
        let b = pre.run(&small).unwrap();
        assert_eq!(a.geometry, b.geometry);
        // In grey levels of the [0, 1] pixel (undoing the default mean 0 / std 1).
        let diff: Vec<f32> = a.tensor.iter().zip(b.tensor.iter()).map(|(x, y)| (x - y).abs() * 255.0).collect();
        let max = diff.iter().copied().fold(0.0, f32::max);
        let mean = diff.iter().sum::<f32>() / diff.len() as f32;
        eprintln!("1/2 decode vs exact, 1000x700 gradient: max {max:.3}, mean {mean:.3} grey levels");
        assert!(max < 3.0 && mean < 0.5, "max {max}, mean {mean}");

        // At 1/4 (a 64-pixel target keeps 250 x 175 >= 128 on both axes) and 1/8, with an
        // odd original size (the last decoded column is part padding).
        let bytes = gradient_jpeg(1001, 703);
        for (resize_to, crop, reduction) in [(64usize, 56usize, 4u32), (32, 28, 8)] {
            let net = InputSpec { name: "input".into(), layout: Layout::Nchw, channels: 3, width: crop, height: crop };
            let cfg = PreprocessOptions { resize_to: Some(resize_to), ..cfg.clone() };
            let pre = Preprocessor::new(&cfg, &net).unwrap();
            let target = |w: u32, h: u32| pre.resize_target(w, h);
            let exact = Decoder::default().decode_bytes_for(&bytes, Some(&target)).unwrap();
            let small = dct.decode_bytes_for(&bytes, Some(&target)).unwrap();
            assert_eq!(small.reduction, reduction);
            assert_eq!((small.width, small.height), (1001u32.div_ceil(reduction), 703u32.div_ceil(reduction)));
            let (a, b) = (pre.run(&exact).unwrap(), pre.run(&small).unwrap());
            assert_eq!(a.geometry, b.geometry);
            let diff: Vec<f32> = a.tensor.iter().zip(b.tensor.iter()).map(|(x, y)| (x - y).abs() * 255.0).collect();
            let max = diff.iter().copied().fold(0.0, f32::max);
            let mean = diff.iter().sum::<f32>() / diff.len() as f32;
            eprintln!("1/{reduction} decode vs exact, 1001x703 gradient: max {max:.3}, mean {mean:.3} grey levels");
            assert!(max < 4.0 && mean < 0.75, "1/{reduction}: max {max}, mean {mean}");
        }
    }
}
