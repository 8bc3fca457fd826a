//! Drawing on images: box outlines and the heatmap colour scale, for run overlays and for
//! eval's report thumbnails alike.

use image::{Rgb, RgbImage};

/// Outlines the half-open box `[x1, x2) x [y1, y2)` (clamped to the image) with lines
/// `t` pixels thick inside it, in `colour`, and one dark line inside those, so the box
/// shows on any background.
pub fn outline(img: &mut RgbImage, r: (i64, i64, i64, i64), colour: Rgb<u8>, t: i64) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    if w == 0 || h == 0 {
        return;
    }
    let (x1, y1) = (r.0.clamp(0, w - 1), r.1.clamp(0, h - 1));
    let (x2, y2) = ((r.2 - 1).clamp(0, w - 1), (r.3 - 1).clamp(0, h - 1));
    for k in 0..=t {
        let c = if k == t { Rgb([0, 0, 0]) } else { colour };
        let (a, b, cc, d) = (x1 + k, y1 + k, x2 - k, y2 - k);
        if cc < a || d < b {
            break;
        }
        for x in a..=cc {
            img.put_pixel(x as u32, b as u32, c);
            img.put_pixel(x as u32, d as u32, c);
        }
        for y in b..=d {
            img.put_pixel(a as u32, y as u32, c);
            img.put_pixel(cc as u32, y as u32, c);
        }
    }
}

/// Google's Turbo colormap (polynomial approximation by its author, Anton Mikhailov),
/// for v in [0, 1]; returns RGB in [0, 1].
pub fn turbo(v: f32) -> [f32; 3] {
    let x = v.clamp(0.0, 1.0) as f64;
    let (x2, x3, x4, x5) = (x * x, x * x * x, x * x * x * x, x * x * x * x * x);
    let r = 0.13572138 + 4.61539260 * x - 42.66032258 * x2 + 132.13108234 * x3 - 152.94239396 * x4 + 59.28637943 * x5;
    let g = 0.09140261 + 2.19418839 * x + 4.84296658 * x2 - 14.18503333 * x3 + 4.27729857 * x4 + 2.82956604 * x5;
    let b = 0.10667330 + 12.64194608 * x - 60.58204836 * x2 + 110.36276771 * x3 - 89.90310912 * x4 + 27.34824973 * x5;
    [r.clamp(0.0, 1.0) as f32, g.clamp(0.0, 1.0) as f32, b.clamp(0.0, 1.0) as f32]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turbo_ends() {
        // Turbo is blue at the low end and dark red at 1 (the polynomial is loose at 0
        // itself, so look at 0.15).
        let lo = turbo(0.15);
        let hi = turbo(1.0);
        assert!(lo[2] > lo[0] && lo[2] > lo[1], "{lo:?}");
        assert!(hi[0] > hi[1] && hi[0] > hi[2], "{hi:?}");
    }

    #[test]
    fn outlines_stay_inside_the_box_and_the_image() {
        let grey = Rgb([9, 9, 9]);
        let mut img = RgbImage::from_pixel(10, 8, grey);
        outline(&mut img, (2, 1, 7, 6), Rgb([255, 255, 255]), 1);
        // White ring on the box's edge, black ring inside it; nothing outside or within.
        assert_eq!(img.get_pixel(2, 1), &Rgb([255, 255, 255]));
        assert_eq!(img.get_pixel(6, 5), &Rgb([255, 255, 255]));
        assert_eq!(img.get_pixel(3, 2), &Rgb([0, 0, 0]));
        assert_eq!(img.get_pixel(5, 4), &Rgb([0, 0, 0]));
        assert_eq!(img.get_pixel(1, 1), &grey);
        assert_eq!(img.get_pixel(7, 6), &grey);
        assert_eq!(img.get_pixel(4, 3), &grey);
        // Boxes reaching past the image are clamped, not a panic.
        outline(&mut img, (-5, -5, 50, 50), Rgb([1, 2, 3]), 2);
        assert_eq!(img.get_pixel(0, 0), &Rgb([1, 2, 3]));
    }
}
