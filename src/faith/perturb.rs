//! The perturbations of the faithfulness metrics, as pure functions on one network input:
//! ranking pixels by a map, replacing them step by step (deletion and insertion), the
//! blurred copy insertion starts from, ROAD's masks, and the input multiplied by the map.
//!
//! Definitions follow the reference implementations users compare with, and
//! `scripts/reference/faithfulness_reference.py` ports them to numpy for the tests:
//! - Deletion and insertion are RISE's (Petsiuk et al. 2018, `CausalMetric`): pixels in
//!   decreasing order of the map (ties by index), `ceil(N / steps)` pixels a step, a score
//!   before the first step and after each, and the area under the curve by the trapezoid
//!   rule over equal steps.
//! - The blur is RISE's idea with a fixed kernel: an 11-tap Gaussian of sigma 5, separable,
//!   edges replicated (RISE's scipy-made kernel depends on scipy's edge handling; this one
//!   is written down).
//! - ROAD's masks are pytorch-grad-cam's `RemoveMostRelevantFirst` /
//!   `RemoveLeastRelevantFirst`: at percentile p, MoRF removes the pixels whose map value is
//!   at least numpy's p-th percentile of the map, LeRF does the same on `1 - map`; either
//!   way `100 - p` % of the pixels go.
//! - Confidence drop and increase multiply the normalised input by the map in [0, 1]
//!   (pytorch-grad-cam's `multiply_tensor_with_cam`).

use ndarray::Array4;

use crate::stage::input_spec::Layout;

/// One network input as planes: `c` channels of `h` x `w`, channel-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Planes {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Planes {
    /// The planes of a 1 x C x H x W (or 1 x H x W x C) tensor.
    pub fn from_tensor(t: &Array4<f32>, layout: Layout) -> Planes {
        let (c, h, w) = match layout {
            Layout::Nchw => (t.dim().1, t.dim().2, t.dim().3),
            Layout::Nhwc => (t.dim().3, t.dim().1, t.dim().2),
        };
        let mut data = Vec::with_capacity(c * h * w);
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    data.push(match layout {
                        Layout::Nchw => t[[0, ch, y, x]],
                        Layout::Nhwc => t[[0, y, x, ch]],
                    });
                }
            }
        }
        Planes { c, h, w, data }
    }

    /// Back to the network's tensor layout.
    pub fn to_tensor(&self, layout: Layout) -> Array4<f32> {
        let (c, h, w) = (self.c, self.h, self.w);
        match layout {
            Layout::Nchw => Array4::from_shape_vec((1, c, h, w), self.data.clone()).expect("c*h*w values"),
            Layout::Nhwc => Array4::from_shape_fn((1, h, w, c), |(_, y, x, ch)| self.data[(ch * h + y) * w + x]),
        }
    }

    pub fn pixels(&self) -> usize {
        self.h * self.w
    }

    /// Sets pixel `p` (row-major index) of every channel to `from`'s.
    fn copy_pixel(&mut self, from: &Planes, p: usize) {
        let n = self.pixels();
        for ch in 0..self.c {
            self.data[ch * n + p] = from.data[ch * n + p];
        }
    }

    /// A plane of the same shape holding `value[ch]` in every pixel of channel `ch`.
    pub fn filled_like(&self, value: &[f32]) -> Planes {
        let n = self.pixels();
        Planes { data: (0..self.c).flat_map(|ch| std::iter::repeat_n(value[ch], n)).collect(), ..*self }
    }

    /// Each channel's mean.
    pub fn channel_means(&self) -> Vec<f32> {
        let n = self.pixels();
        (0..self.c)
            .map(|ch| (self.data[ch * n..(ch + 1) * n].iter().map(|&v| v as f64).sum::<f64>() / n as f64) as f32)
            .collect()
    }
}

/// Pixel indices (row-major) in decreasing order of `map`, ties by index; NaN counts as
/// the least relevant.
pub fn order_by(map: &[f32]) -> Vec<u32> {
    let key = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
    let mut order: Vec<u32> = (0..map.len() as u32).collect();
    order.sort_by(|&a, &b| key(map[b as usize]).total_cmp(&key(map[a as usize])).then(a.cmp(&b)));
    order
}

/// RISE's schedule for `n` pixels in `steps` steps: pixels a step, and the number of steps.
pub fn schedule(n: usize, steps: usize) -> (usize, usize) {
    let per = n.div_ceil(steps.max(1)).max(1);
    (per, n.div_ceil(per))
}

/// The scores of `start` as `source`'s pixels replace its own in `order`, `per` pixels a
/// step: `steps + 1` scores (deletion: `start` the input, `source` the filler; insertion:
/// `start` the blurred input, `source` the input).
pub fn replacement_curve(
    start: &Planes,
    source: &Planes,
    order: &[u32],
    steps: usize,
    mut score: impl FnMut(&Planes) -> f64,
) -> Vec<f64> {
    let (per, n_steps) = schedule(start.pixels(), steps);
    let mut x = start.clone();
    let mut out = Vec::with_capacity(n_steps + 1);
    for i in 0..=n_steps {
        out.push(score(&x));
        if i < n_steps {
            for &p in order.iter().skip(i * per).take(per) {
                x.copy_pixel(source, p as usize);
            }
        }
    }
    out
}

/// RISE's area under a curve of equally spaced scores.
pub fn auc(curve: &[f64]) -> f64 {
    match curve.len() {
        0 => 0.0,
        1 => curve[0],
        n => (curve.iter().sum::<f64>() - curve[0] / 2.0 - curve[n - 1] / 2.0) / (n - 1) as f64,
    }
}

/// The 11-tap Gaussian of sigma 5, normalised to sum 1.
fn gaussian_taps() -> [f64; 11] {
    let mut k = [0.0f64; 11];
    for (i, t) in k.iter_mut().enumerate() {
        let d = i as f64 - 5.0;
        *t = (-d * d / 50.0).exp();
    }
    let s: f64 = k.iter().sum();
    k.map(|t| t / s)
}

/// The blurred copy insertion starts from: each channel convolved with the 11-tap
/// Gaussian along rows, then columns, edges replicated.
pub fn blur(x: &Planes) -> Planes {
    let k = gaussian_taps();
    let (h, w, n) = (x.h, x.w, x.pixels());
    let mut out = x.clone();
    let mut tmp = vec![0f64; n];
    for ch in 0..x.c {
        let plane = &x.data[ch * n..(ch + 1) * n];
        for y in 0..h {
            for xx in 0..w {
                tmp[y * w + xx] = (0..11)
                    .map(|t| k[t] * plane[y * w + (xx as i64 + t as i64 - 5).clamp(0, w as i64 - 1) as usize] as f64)
                    .sum();
            }
        }
        for y in 0..h {
            for xx in 0..w {
                let v: f64 = (0..11)
                    .map(|t| k[t] * tmp[(y as i64 + t as i64 - 5).clamp(0, h as i64 - 1) as usize * w + xx])
                    .sum();
                out.data[ch * n + y * w + xx] = v as f32;
            }
        }
    }
    out
}

/// numpy's `percentile(v, q)` (linear, with numpy's two-sided interpolation) of a map.
pub fn percentile(v: &[f32], q: f64) -> f64 {
    let mut s: Vec<f64> = v.iter().map(|&x| x as f64).collect();
    s.sort_by(f64::total_cmp);
    crate::eval::bootstrap::percentile_of_sorted(&s, q)
}

/// ROAD's removed pixels at percentile `p`: most relevant first (`morf`) or least.
pub fn road_removed(map: &[f32], p: f64, morf: bool) -> Vec<bool> {
    let m: Vec<f32> = if morf { map.to_vec() } else { map.iter().map(|&v| 1.0 - v).collect() };
    // pytorch-grad-cam keeps `mask < threshold`, numpy's float32 percentile against the
    // float32 map.
    let t = percentile(&m, p) as f32;
    m.iter().map(|&v| v >= t).collect()
}

/// The input multiplied by the map (in [0, 1], one value a pixel) in every channel.
pub fn times_map(x: &Planes, map: &[f32]) -> Planes {
    let n = x.pixels();
    Planes { data: x.data.iter().enumerate().map(|(i, &v)| v * map[i % n]).collect(), ..*x }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_schedule_and_auc_by_hand() {
        assert_eq!(order_by(&[0.1, 0.5, f32::NAN, 0.5, 0.2]), vec![1, 3, 4, 0, 2]);
        assert_eq!(schedule(10, 3), (4, 3));
        assert_eq!(schedule(50176, 50), (1004, 50));
        assert_eq!(auc(&[1.0, 0.5, 0.0]), 0.5);
    }

    #[test]
    fn deletion_replaces_the_top_pixels_first() {
        let x = Planes { c: 1, h: 1, w: 4, data: vec![1.0, 2.0, 3.0, 4.0] };
        let zero = x.filled_like(&[0.0]);
        let order = order_by(&[0.0, 0.9, 0.5, 0.1]);
        let curve = replacement_curve(&x, &zero, &order, 2, |p| p.data.iter().map(|&v| v as f64).sum());
        // Two pixels a step: pixels 1 and 2, then 3 and 0.
        assert_eq!(curve, vec![10.0, 5.0, 0.0]);
    }

    #[test]
    fn blur_keeps_constants_and_road_removes_its_share() {
        let x = Planes { c: 2, h: 3, w: 4, data: vec![0.25; 24] };
        assert!(blur(&x).data.iter().all(|&v| (v - 0.25).abs() < 1e-7));
        let map: Vec<f32> = (0..10).map(|i| i as f32 / 9.0).collect();
        assert_eq!(road_removed(&map, 80.0, true).iter().filter(|&&r| r).count(), 2);
        assert_eq!(road_removed(&map, 80.0, false).iter().filter(|&&r| r).count(), 2);
        assert!(road_removed(&map, 80.0, false)[0]);
    }

    #[test]
    fn planes_round_trip_both_layouts() {
        let t = Array4::from_shape_fn((1, 2, 3, 4), |(_, c, y, x)| (c * 100 + y * 10 + x) as f32);
        let p = Planes::from_tensor(&t, Layout::Nchw);
        assert_eq!(p.to_tensor(Layout::Nchw), t);
        let nhwc = p.to_tensor(Layout::Nhwc);
        assert_eq!(nhwc[[0, 2, 3, 1]], 123.0);
        assert_eq!(Planes::from_tensor(&nhwc, Layout::Nhwc), p);
    }
}
