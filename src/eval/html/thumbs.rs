//! The gallery's thumbnails: every piece of image work the report needs (decode, scale,
//! draw the boxes, JPEG, base64), done while the report's view is built so that rendering
//! the page is text only.
//!
//! A thumbnail is drawn on the run's overlay when it was saved (the heatmap is what one
//! wants to see beside the boxes), else on the original image; always on the original for
//! a baseline, whose boxes are not the ones the overlay shows.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use image::imageops::FilterType;
use image::{Rgb, RgbImage};

use crate::eval::metrics::Rect;
use crate::eval::run_files::RunFiles;
use crate::eval::ImageResult;
use crate::output::artefacts::Artefacts;
use crate::output::draw::outline;

/// Longest side of a gallery thumbnail, in pixels.
const THUMB_SIDE: u32 = 320;

/// JPEG quality of gallery thumbnails (embedded as base64: size matters).
const THUMB_JPEG_QUALITY: u8 = 80;

/// Box colours; the page's legend shows the same ones.
pub const TRUTH: Rgb<u8> = Rgb([0, 230, 0]);
pub const PRED: Rgb<u8> = Rgb([255, 30, 30]);
/// The map's peak (the pointing game's point).
pub const PEAK: Rgb<u8> = Rgb([0, 200, 255]);

/// Half the length of the peak's cross, in thumbnail pixels.
const PEAK_ARM: i64 = 6;

/// A thumbnail ready for the page.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnail {
    /// `data:image/jpeg;base64,...`: the page stays one file.
    pub data_url: String,
    /// What it was drawn on: `overlay` or `original`.
    pub source: &'static str,
}

/// The base picture of one image: the run's overlay (when wanted and saved), else the
/// original.
fn base_image(run: &RunFiles, rel: &str, class: usize, overlay: bool) -> Option<(RgbImage, &'static str)> {
    let dec = run.decoder();
    let ov = Artefacts::new(&run.dir, &Default::default()).overlay_path(rel, class);
    let (path, what) = if overlay && ov.is_file() { (ov, "overlay") } else { (run.original(rel)?, "original") };
    let img = dec.decode_file(&path).ok()?;
    let px = |v: f32| (v * 255.0).round().clamp(0.0, 255.0) as u8;
    let rgb = RgbImage::from_fn(img.width, img.height, |x, y| {
        let (x, y) = (x as usize, y as usize);
        if img.channels == 1 {
            let v = px(img.pixel(x, y, 0));
            Rgb([v, v, v])
        } else {
            Rgb([px(img.pixel(x, y, 0)), px(img.pixel(x, y, 1)), px(img.pixel(x, y, 2))])
        }
    });
    Some((rgb, what))
}

/// The thumbnail of one pair, with truth (green) and predictions (red); `None` when its
/// image cannot be read.
pub fn thumbnail(run: &RunFiles, im: &ImageResult, class: usize, overlay: bool) -> Option<Thumbnail> {
    let (img, source) = base_image(run, &im.rel, class, overlay)?;
    let s = (THUMB_SIDE as f64 / img.width().max(img.height()) as f64).min(1.0);
    let (tw, th) =
        (((img.width() as f64 * s).round() as u32).max(1), ((img.height() as f64 * s).round() as u32).max(1));
    let mut t = image::imageops::resize(&img, tw, th, FilterType::Triangle);
    // Scale by the actual ratios of the sizes the boxes refer to (images.csv).
    let (sx, sy) = (tw as f64 / im.width as f64, th as f64 / im.height as f64);
    let sc = |r: &Rect| {
        ((r.x1 * sx).round() as i64, (r.y1 * sy).round() as i64, (r.x2 * sx).round() as i64, (r.y2 * sy).round() as i64)
    };
    for r in &im.truth {
        outline(&mut t, sc(r), TRUTH, 2);
    }
    for p in &im.preds {
        outline(&mut t, sc(&p.rect), PRED, 2);
    }
    if let Some((px, py)) = im.pointing.and_then(|p| p.peak) {
        let c = (((px as f64 + 0.5) * sx) as i64, ((py as f64 + 0.5) * sy) as i64);
        cross(&mut t, c, PEAK);
    }
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, THUMB_JPEG_QUALITY).encode_image(&t).ok()?;
    Some(Thumbnail { data_url: format!("data:image/jpeg;base64,{}", STANDARD.encode(&jpeg)), source })
}

/// A cross two pixels thick centred on `c`, clipped to the image.
fn cross(img: &mut RgbImage, c: (i64, i64), colour: Rgb<u8>) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    for d in -PEAK_ARM..=PEAK_ARM {
        for t in 0..2 {
            for (x, y) in [(c.0 + d, c.1 + t), (c.0 + t, c.1 + d)] {
                if (0..w).contains(&x) && (0..h).contains(&y) {
                    img.put_pixel(x as u32, y as u32, colour);
                }
            }
        }
    }
}

/// The CSS background of a legend key in a box colour.
pub fn key_style(c: Rgb<u8>) -> String {
    format!("background:rgb({},{},{})", c[0], c[1], c[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_are_drawn_inside() {
        let mut img = RgbImage::new(10, 10);
        outline(&mut img, (2, 2, 8, 8), PRED, 2);
        assert_eq!(*img.get_pixel(2, 2), PRED);
        assert_eq!(*img.get_pixel(7, 7), PRED);
        assert_eq!(*img.get_pixel(4, 4), Rgb([0, 0, 0]), "dark inner edge");
        assert_eq!(*img.get_pixel(8, 8), Rgb([0, 0, 0]), "nothing outside (still black background)");
        outline(&mut img, (-5, -5, 50, 50), TRUTH, 1);
        assert_eq!(*img.get_pixel(9, 9), TRUTH);
    }

    #[test]
    fn the_legend_shows_the_box_colours() {
        assert_eq!(key_style(TRUTH), "background:rgb(0,230,0)");
        assert_eq!(key_style(PRED), "background:rgb(255,30,30)");
    }

    #[test]
    fn base64_is_the_standard_alphabet_with_padding() {
        // What the page's data: URLs need (RFC 4648), as the hand-rolled encoder did.
        for (i, o) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(STANDARD.encode(i.as_bytes()), o);
        }
    }
}
