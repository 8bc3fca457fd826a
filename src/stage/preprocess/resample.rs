//! Image resampling with Pillow's geometry, in floating point.
//!
//! Nearest reproduces Pillow's `Image.NEAREST` exactly, including its accumulated
//! double-precision source coordinate (the closed form `floor((i + 0.5) * in / out)`
//! differs on a few per cent of pixels; models trained with Pillow see Pillow's pixels).
//! Bilinear and bicubic use Pillow's separable convolution: the filter is widened by the
//! scale factor when shrinking (antialiasing, as torchvision's PIL path does). Unlike
//! Pillow we keep f32 between the two passes instead of rounding to 8 bits, so results
//! differ from Pillow's by at most about one grey level.
//!
//! Only the requested output window is computed, so a centre crop does not pay for the
//! pixels it throws away.
//!
//! The source may be a reduced decode of a larger image ([`resize_window_extent`]): the
//! output then spans a given *extent* of source pixels (the original's size divided by
//! the reduction, e.g. 1000 / 8 = 125 over a 125-pixel decode of a 1000-pixel JPEG, or
//! 1001 / 8 = 125.125 over a 126-pixel one) instead of the whole grid, so every output
//! pixel samples the same place of the original as a full-resolution decode would.
//! With the extent equal to the grid size the arithmetic is the plain resize's, bit for bit.

use serde::{Deserialize, Serialize};

/// A resampling filter (`[preprocess] resampling`, `[localise] upsample`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resampling {
    /// Bit-exact with Pillow's `Image.NEAREST`.
    Nearest,
    /// Pillow-style triangle filter, widened when downscaling (antialiased).
    Bilinear,
    /// Pillow-style cubic filter (a = -0.5), widened when downscaling.
    Bicubic,
}

/// A stored sample the resampling reads as a value in [0, 1].
pub trait Sample: Copy + Send + Sync {
    fn value(self) -> f32;
}

impl Sample for f32 {
    #[inline(always)]
    fn value(self) -> f32 {
        self
    }
}

/// An 8-bit sample: v / 255, the value a conversion to `f32` up front gives.
impl Sample for u8 {
    #[inline(always)]
    fn value(self) -> f32 {
        self as f32 / 255.0
    }
}

/// One axis: for each output index, the first source index and its weights.
struct AxisWeights {
    start: Vec<usize>,
    weights: Vec<Vec<f32>>,
}

fn filter(kind: Resampling, x: f64) -> f64 {
    let x = x.abs();
    match kind {
        Resampling::Bilinear => {
            if x < 1.0 {
                1.0 - x
            } else {
                0.0
            }
        }
        Resampling::Bicubic => {
            let a = -0.5;
            if x < 1.0 {
                ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
            } else if x < 2.0 {
                (((x - 5.0) * x + 8.0) * x - 4.0) * a
            } else {
                0.0
            }
        }
        Resampling::Nearest => unreachable!("nearest has no filter"),
    }
}

fn support(kind: Resampling) -> f64 {
    match kind {
        Resampling::Bilinear => 1.0,
        Resampling::Bicubic => 2.0,
        Resampling::Nearest => 0.0,
    }
}

/// Source indices of Pillow's NEAREST for `out` samples over `inp`, outputs
/// `first..first + count`.
pub fn nearest_indices(inp: usize, out: usize, first: usize, count: usize) -> Vec<usize> {
    nearest_indices_over(inp, inp as f64, out, first, count)
}

/// [`nearest_indices`] with the `out` samples spread over `extent` source pixels.
fn nearest_indices_over(inp: usize, extent: f64, out: usize, first: usize, count: usize) -> Vec<usize> {
    let s = extent / out as f64;
    let mut x = 0.5 * s;
    let mut idx = Vec::with_capacity(count);
    for i in 0..first + count {
        if i >= first {
            idx.push((x as usize).min(inp - 1));
        }
        x += s;
    }
    idx
}

/// Weights of outputs `first..first + count` of `out` samples spread over `extent` of the
/// `inp` source pixels (the filter is clamped to the `inp` that exist).
fn axis_weights(kind: Resampling, inp: usize, extent: f64, out: usize, first: usize, count: usize) -> AxisWeights {
    if kind == Resampling::Nearest {
        let idx = nearest_indices_over(inp, extent, out, first, count);
        return AxisWeights { start: idx, weights: vec![vec![1.0]; count] };
    }
    let scale = extent / out as f64;
    let fscale = scale.max(1.0);
    let sup = support(kind) * fscale;
    let mut start = Vec::with_capacity(count);
    let mut weights = Vec::with_capacity(count);
    for xx in first..first + count {
        let center = (xx as f64 + 0.5) * scale;
        let xmin = ((center - sup + 0.5).floor().max(0.0)) as usize;
        let xmax = ((center + sup + 0.5).floor() as usize).min(inp);
        let mut w: Vec<f64> = (xmin..xmax).map(|x| filter(kind, (x as f64 - center + 0.5) / fscale)).collect();
        let total: f64 = w.iter().sum();
        if total != 0.0 {
            w.iter_mut().for_each(|v| *v /= total);
        }
        start.push(xmin);
        weights.push(w.into_iter().map(|v| v as f32).collect());
    }
    AxisWeights { start, weights }
}

/// Resizes an interleaved `src` (w x h x ch) to a virtual `out_w` x `out_h` image and
/// returns the window `[x0, x0 + cw) x [y0, y0 + chh)` of it, interleaved.
#[allow(clippy::too_many_arguments)]
pub fn resize_window<S: Sample>(
    src: &[S],
    w: usize,
    h: usize,
    ch: usize,
    out_w: usize,
    out_h: usize,
    window: (usize, usize, usize, usize),
    kind: Resampling,
) -> Vec<f32> {
    resize_window_extent(src, w, h, ch, (w as f64, h as f64), out_w, out_h, window, kind)
}

/// [`resize_window`] where the `out_w` x `out_h` image covers `extent` = (width, height)
/// in source pixels from the top-left corner, instead of the whole `w` x `h` grid (a
/// reduced decode whose last row and column also hold the JPEG's block padding).
#[allow(clippy::too_many_arguments)]
pub fn resize_window_extent<S: Sample>(
    src: &[S],
    w: usize,
    h: usize,
    ch: usize,
    extent: (f64, f64),
    out_w: usize,
    out_h: usize,
    window: (usize, usize, usize, usize),
    kind: Resampling,
) -> Vec<f32> {
    let (x0, y0, cw, chh) = window;
    let wx = axis_weights(kind, w, extent.0, out_w, x0, cw);
    let wy = axis_weights(kind, h, extent.1, out_h, y0, chh);
    // Vertical pass first, on the source columns the horizontal pass needs. Why this order:
    // shrinking a large X-ray, the vertical pass turns a thousand source rows into the
    // window's few hundred, as whole-row multiply-adds that vectorise; the horizontal taps
    // (dot products along a row, which do not) then run on the window's rows only. The
    // filters are separable, so either order computes the same convolution; they differ
    // only in f32 rounding (about 1e-7 of the range).
    let col_lo = wx.start.iter().copied().min().unwrap_or(0);
    let col_hi = wx.start.iter().zip(&wx.weights).map(|(s, k)| s + k.len()).max().unwrap_or(0).max(col_lo);
    let tw = (col_hi - col_lo) * ch;
    let mut tmp = vec![0f32; chh * tw];
    for (oy, (s, k)) in wy.start.iter().zip(&wy.weights).enumerate() {
        let trow = &mut tmp[oy * tw..(oy + 1) * tw];
        for (j, &kv) in k.iter().enumerate() {
            let at = (s + j) * w * ch + col_lo * ch;
            for (t, &v) in trow.iter_mut().zip(&src[at..at + tw]) {
                *t += kv * v.value();
            }
        }
    }
    let mut out = vec![0f32; chh * cw * ch];
    let stride = cw * ch;
    for (trow, orow) in tmp.chunks_exact(tw.max(1)).zip(out.chunks_exact_mut(stride.max(1))) {
        for (ox, (s, k)) in wx.start.iter().zip(&wx.weights).enumerate() {
            for c in 0..ch {
                let mut acc = 0f32;
                for (j, &kv) in k.iter().enumerate() {
                    acc += kv * trow[(s - col_lo + j) * ch + c];
                }
                orow[ox * ch + c] = acc;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_matches_pillow_accumulation() {
        // Pillow 13.0.0, Image.NEAREST, 100 -> 30 (printed by Pillow on a ramp image).
        // Output 25 takes source 84, where the closed form floor(25.5 * 10 / 3) = 85:
        // the accumulated rounding is what Pillow does.
        let idx = nearest_indices(100, 30, 0, 30);
        assert_eq!(&idx[..6], &[1, 5, 8, 11, 15, 18]);
        assert_eq!(idx[25], 84);
        assert_eq!(idx[29], 98);
        // Pillow 13.0.0, Image.NEAREST on a ramp, 200 -> 150 (printed by Pillow itself):
        // output 4 reads source 5, not the closed form's 6.
        let pillow = [0, 2, 3, 4, 5, 7, 8, 10, 11, 12, 14, 15];
        assert_eq!(&nearest_indices(200, 150, 0, 12)[..], &pillow);
        assert_eq!(nearest_indices(200, 150, 4, 3), vec![5, 7, 8]);
        // Identity when sizes agree.
        assert_eq!(nearest_indices(7, 7, 0, 7), (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn constant_image_stays_constant() {
        let src = vec![0.25f32; 13 * 9 * 3];
        for kind in [Resampling::Bilinear, Resampling::Bicubic, Resampling::Nearest] {
            let out = resize_window(&src, 13, 9, 3, 40, 5, (0, 0, 40, 5), kind);
            assert!(out.iter().all(|v| (v - 0.25).abs() < 1e-6), "{kind:?}");
        }
    }

    #[test]
    fn window_equals_crop_of_full_resize() {
        let src: Vec<f32> = (0..17 * 11).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
        let full = resize_window(&src, 17, 11, 1, 30, 20, (0, 0, 30, 20), Resampling::Bicubic);
        let win = resize_window(&src, 17, 11, 1, 30, 20, (5, 3, 20, 14), Resampling::Bicubic);
        for y in 0..14 {
            for x in 0..20 {
                assert!((win[y * 20 + x] - full[(y + 3) * 30 + x + 5]).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn extent_samples_the_original_positions() {
        // A linear ramp v = x over 10 pixels, and its "decode at 1/2" of 5 pixels whose
        // centres are the pairs' means (0.5, 2.5, ...): sampled over an extent of 5, the
        // reduced source gives the ramp's values at the same places (a linear function is
        // reproduced by linear interpolation away from the clamped borders).
        let full: Vec<f32> = (0..10).map(|x| x as f32).collect();
        let half: Vec<f32> = (0..5).map(|j| 2.0 * j as f32 + 0.5).collect();
        let a = resize_window(&full, 10, 1, 1, 20, 1, (0, 0, 20, 1), Resampling::Bilinear);
        let b = resize_window_extent(&half, 5, 1, 1, (5.0, 1.0), 20, 1, (0, 0, 20, 1), Resampling::Bilinear);
        for i in 3..17 {
            assert!((a[i] - b[i]).abs() < 1e-5, "{i}: {} vs {}", a[i], b[i]);
        }
        // A 9-pixel image reduced by 2 has 5 pixels, the last half padding: over an extent
        // of 4.5 the output's last sample sits at 4.5 * 17.5 / 18 = 4.375, inside pixel 4
        // but nearer its left half, not at the 5-pixel grid's 4.86.
        let n = resize_window_extent(&half, 5, 1, 1, (4.5, 1.0), 18, 1, (17, 0, 1, 1), Resampling::Nearest);
        assert_eq!(n, vec![half[4]]);
        let idx = nearest_indices_over(5, 4.5, 9, 0, 9);
        assert_eq!(idx, vec![0, 0, 1, 1, 2, 2, 3, 3, 4]);
        // Extent = grid size is the plain resize, bit for bit.
        let src: Vec<f32> = (0..17 * 11).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
        for kind in [Resampling::Bilinear, Resampling::Bicubic, Resampling::Nearest] {
            let p = resize_window(&src, 17, 11, 1, 7, 5, (0, 0, 7, 5), kind);
            let e = resize_window_extent(&src, 17, 11, 1, (17.0, 11.0), 7, 5, (0, 0, 7, 5), kind);
            assert_eq!(p, e, "{kind:?}");
        }
    }

    #[test]
    fn bilinear_upscale_by_two_hand_computed() {
        // 2 -> 4 samples of [0, 1]: centres at 0.25, 0.75, 1.25, 1.75 in source pixels,
        // weights clamp at the border: [0, 0.25, 0.75, 1].
        let out = resize_window(&[0.0, 1.0], 2, 1, 1, 4, 1, (0, 0, 4, 1), Resampling::Bilinear);
        let want = [0.0, 0.25, 0.75, 1.0];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-6, "{out:?}");
        }
    }
}
