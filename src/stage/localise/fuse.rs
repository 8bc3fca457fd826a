//! One map from several passes (`[cam] scales`, `[cam] flip`): each pass's map of a class
//! is normalised as the recipe normalises a map (ReLU if asked, upsampling to its
//! network input, min-max), mirrored back if its input was mirrored, carried through its
//! own geometry onto one common grid, and averaged there.
//!
//! The common grid is the network input of the largest pass, with that pass's geometry:
//! every pass sees the same part of the image (the same resize mode at another size), so
//! the grid covers what any pass saw, at the finest resolution any pass had. The
//! average is then an ordinary map on that grid: [`super::Localiser::localise`] takes it
//! with the grid's geometry (its upsampling is the identity at the grid's own size, and
//! its min-max renormalises the average to [0, 1], so every preset's thresholds mean what
//! they mean for one pass), and `maps/` saves it with that geometry, so `cambox eval`
//! re-thresholds exactly what the run thresholded.
//!
//! Sampling is bilinear on pixel centres, clamped at the edges; a grid pixel outside a
//! pass's input (a letterbox margin of another size rounds differently) takes that
//! pass's nearest edge value.

use ndarray::{Array2, ArrayView2, Axis};

use super::Localiser;
use crate::stage::preprocess::Geometry;

/// One pass's raw map of a class.
pub struct PassMap<'a> {
    /// At feature-map resolution, as the map stage computed it.
    pub raw: ArrayView2<'a, f32>,
    /// The pass's geometry (for a mirrored pass, that of its unmirrored input).
    pub geometry: &'a Geometry,
    /// The pass's input was mirrored left to right.
    pub mirrored: bool,
}

impl Localiser {
    /// The average of the passes' normalised maps on `grid`'s network input (see the
    /// module docs); `grid` is one of the passes' geometries.
    pub fn fuse(&self, passes: &[PassMap], grid: &Geometry) -> Array2<f32> {
        let (gw, gh) = (grid.net_w, grid.net_h);
        let mut sum = Array2::<f32>::zeros((gh, gw));
        for p in passes {
            let raw = if p.mirrored {
                p.raw.slice_axis(ndarray::Axis(1), ndarray::Slice::new(0, None, -1))
            } else {
                p.raw.view()
            };
            let (nw, nh) = (p.geometry.net_w, p.geometry.net_h);
            let net = self.network_map(raw, nw, nh);
            if p.geometry == grid {
                sum.iter_mut().zip(&net).for_each(|(s, v)| *s += v);
                continue;
            }
            let xs = axis(gw, grid.scale_x, grid.offset_x, p.geometry.scale_x, p.geometry.offset_x, nw);
            let ys = axis(gh, grid.scale_y, grid.offset_y, p.geometry.scale_y, p.geometry.offset_y, nh);
            for (mut row, &(r0, r1, fy)) in sum.axis_iter_mut(Axis(0)).zip(&ys) {
                let (top, bot) = (&net[r0 * nw..(r0 + 1) * nw], &net[r1 * nw..(r1 + 1) * nw]);
                for (s, &(c0, c1, fx)) in row.iter_mut().zip(&xs) {
                    let t = top[c0] * (1.0 - fx) + top[c1] * fx;
                    let b = bot[c0] * (1.0 - fx) + bot[c1] * fx;
                    *s += t * (1.0 - fy) + b * fy;
                }
            }
        }
        let n = passes.len().max(1) as f32;
        sum.mapv_inplace(|v| v / n);
        sum
    }
}

/// For each of `n_grid` grid pixels along one axis, the two pass pixels and the weight of
/// the second that bilinear sampling at its centre takes: grid coordinate -> original
/// image (grid's inverse geometry) -> pass coordinate (the pass's geometry).
fn axis(
    n_grid: usize,
    grid_scale: f64,
    grid_offset: f64,
    scale: f64,
    offset: f64,
    n_pass: usize,
) -> Vec<(usize, usize, f32)> {
    (0..n_grid)
        .map(|i| {
            let x = (i as f64 + 0.5 - grid_offset) / grid_scale;
            let p = (x * scale + offset - 0.5).clamp(0.0, (n_pass - 1) as f64);
            let i0 = p.floor() as usize;
            (i0, (i0 + 1).min(n_pass - 1), (p - i0 as f64) as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::localise::Recipe;
    use ndarray::array;

    fn geo(orig: (u32, u32), net: (usize, usize)) -> Geometry {
        Geometry {
            orig_w: orig.0,
            orig_h: orig.1,
            net_w: net.0,
            net_h: net.1,
            resized_w: net.0,
            resized_h: net.1,
            scale_x: net.0 as f64 / orig.0 as f64,
            scale_y: net.1 as f64 / orig.1 as f64,
            offset_x: 0.0,
            offset_y: 0.0,
        }
    }

    #[test]
    fn a_mirrored_pass_of_the_mirrored_map_is_the_map_itself() {
        // The network saw the mirrored image and mapped its right-hand column high; mirrored
        // back, that is the image's left-hand column, where the plain pass has it too.
        let loc = Localiser::new(Recipe::cam_paper());
        let g = geo((4, 2), (4, 2));
        let plain = array![[3.0f32, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]];
        let seen_mirrored = array![[0.0f32, 0.0, 1.0, 3.0], [0.0, 0.0, 0.0, 1.0]];
        let passes = [
            PassMap { raw: plain.view(), geometry: &g, mirrored: false },
            PassMap { raw: seen_mirrored.view(), geometry: &g, mirrored: true },
        ];
        let fused = loc.fuse(&passes, &g);
        // Min-max of the plain map, by hand: (v - 0) / 3.
        let want = array![[1.0f32, 1.0 / 3.0, 0.0, 0.0], [1.0 / 3.0, 0.0, 0.0, 0.0]];
        assert_eq!(fused, want);
    }

    #[test]
    fn passes_at_two_sizes_average_in_original_pixels() {
        // An 8x2 image seen at 8x2 (the grid) and at 4x1. The small pass's map is [0, 1, 2,
        // 3] on one row: normalised [0, 1/3, 2/3, 1], one cell per two original columns.
        // Grid column i (centre i + 0.5) is original column i, at small-pass coordinate
        // (i + 0.5) / 2, sampled at (i + 0.5) / 2 - 0.5 = i / 2 - 0.25, clamped to [0, 3].
        let loc = Localiser::new(Recipe::cam_paper());
        let big = geo((8, 2), (8, 2));
        let small = geo((8, 2), (4, 1));
        let big_map = Array2::from_shape_fn((2, 8), |(_, x)| if x == 7 { 1.0f32 } else { 0.0 });
        let small_map = array![[0.0f32, 1.0, 2.0, 3.0]];
        let passes = [
            PassMap { raw: big_map.view(), geometry: &big, mirrored: false },
            PassMap { raw: small_map.view(), geometry: &small, mirrored: false },
        ];
        let fused = loc.fuse(&passes, &big);
        let small_at = |i: f64| {
            let p = (i / 2.0 - 0.25).clamp(0.0, 3.0);
            (p / 3.0) as f32 // the normalised small map is linear: value p / 3 at p
        };
        for y in 0..2 {
            for x in 0..8 {
                let want = ((if x == 7 { 1.0 } else { 0.0 }) + small_at(x as f64)) / 2.0;
                assert!((fused[[y, x]] - want).abs() < 1e-6, "({x}, {y}): {} vs {want}", fused[[y, x]]);
            }
        }
        assert!((fused[[0, 0]] - 0.0).abs() < 1e-7 && (fused[[0, 7]] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn one_pass_on_its_own_grid_is_the_normalised_map() {
        let loc = Localiser::new(Recipe::cam_paper());
        let g = geo((6, 4), (6, 4));
        let raw = Array2::from_shape_fn((2, 3), |(y, x)| (y * 3 + x) as f32 - 2.0);
        let fused = loc.fuse(&[PassMap { raw: raw.view(), geometry: &g, mirrored: false }], &g);
        assert_eq!(fused.iter().copied().collect::<Vec<_>>(), loc.network_map(raw.view(), 6, 4));
        // The localiser's own upsampling at the grid's size is the identity, so localising
        // the fused map adds nothing but a min-max that is already done.
        assert_eq!(loc.network_map(fused.view(), 6, 4), fused.iter().copied().collect::<Vec<_>>());
    }
}
