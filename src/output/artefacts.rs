//! Per-image files: binary masks, overlays and raw maps.
//!
//! They are written by the workers (encoding is the expensive part and parallelises),
//! each atomically, under a path built from the image's relative path, so two images
//! called `a.png` in different folders never share a file:
//! `masks/<relative path>.<class index>.png`, `overlays/<relative path>.<class index>.jpg`,
//! `maps/<relative path>.npy` (+ `.json`). Class names are not used in file names: they
//! hold spaces, commas and slashes.

use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;
use serde::Serialize;

use super::draw::{outline, turbo};
use super::{atomic_write_unsynced, OutputOptions};
use crate::stage::decode::SourceImage;
use crate::stage::localise::ClassLocalisation;
use crate::stage::maps::ClassMaps;
use crate::stage::preprocess::Geometry;

/// Weight of the heatmap in overlays (pytorch-grad-cam's `show_cam_on_image` uses 0.5).
pub const OVERLAY_ALPHA: f32 = 0.5;

/// JPEG quality of overlays.
pub const OVERLAY_JPEG_QUALITY: u8 = 90;

#[derive(Debug, Clone)]
pub struct Artefacts {
    dir: PathBuf,
    pub masks: bool,
    pub overlays: bool,
    pub maps: bool,
}

/// The `.json` beside each `maps/<path>.npy`.
#[derive(Serialize)]
struct MapSidecar<'a> {
    classes: &'a [usize],
    /// Feature map height and width.
    shape: [usize; 2],
    geometry: &'a Geometry,
}

impl Artefacts {
    pub fn new(out: &Path, cfg: &OutputOptions) -> Artefacts {
        Artefacts { dir: out.to_path_buf(), masks: cfg.masks, overlays: cfg.overlays, maps: cfg.maps }
    }

    fn path(&self, kind: &str, rel: &str, suffix: &str) -> PathBuf {
        let mut p = self.dir.join(kind);
        for part in rel.split('/') {
            p.push(part);
        }
        let name = format!("{}{suffix}", p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        p.set_file_name(name);
        p
    }

    pub fn mask_path(&self, rel: &str, class: usize) -> PathBuf {
        self.path("masks", rel, &format!(".{class}.png"))
    }

    pub fn overlay_path(&self, rel: &str, class: usize) -> PathBuf {
        self.path("overlays", rel, &format!(".{class}.jpg"))
    }

    pub fn map_path(&self, rel: &str) -> PathBuf {
        self.path("maps", rel, ".npy")
    }

    /// Writes what is switched on, without syncing (see [`atomic_write_unsynced`]), and
    /// returns the files written; the error names the file.
    pub fn write(
        &self,
        rel: &str,
        img: Option<&SourceImage>,
        locs: &[ClassLocalisation],
        maps: &ClassMaps,
        geo: &Geometry,
    ) -> Result<Vec<PathBuf>, String> {
        let fail = |p: &Path, e: &dyn std::fmt::Display| format!("cannot write {}: {e}", p.display());
        let mut written = Vec::new();
        for l in locs {
            if self.masks {
                let p = self.mask_path(rel, l.class);
                let buf = encode_mask(l).map_err(|e| fail(&p, &e))?;
                atomic_write_unsynced(&p, &buf).map_err(|e| fail(&p, &e))?;
                written.push(p);
            }
            if let (true, Some(img)) = (self.overlays, img) {
                let p = self.overlay_path(rel, l.class);
                let o = overlay(img, l);
                let mut buf = Vec::new();
                JpegEncoder::new_with_quality(&mut buf, OVERLAY_JPEG_QUALITY)
                    .encode_image(&o)
                    .map_err(|e| fail(&p, &e))?;
                atomic_write_unsynced(&p, &buf).map_err(|e| fail(&p, &e))?;
                written.push(p);
            }
        }
        if self.maps {
            let p = self.map_path(rel);
            let mut buf = Vec::new();
            ndarray_npy::WriteNpyExt::write_npy(&maps.maps, &mut buf).map_err(|e| fail(&p, &e))?;
            atomic_write_unsynced(&p, &buf).map_err(|e| fail(&p, &e))?;
            written.push(p.clone());
            let side = MapSidecar {
                classes: &maps.classes,
                shape: [maps.maps.shape()[1], maps.maps.shape()[2]],
                geometry: geo,
            };
            let j = p.with_extension("json");
            let text = serde_json::to_string(&side).map_err(|e| fail(&j, &e))?;
            atomic_write_unsynced(&j, text.as_bytes()).map_err(|e| fail(&j, &e))?;
            written.push(j);
        }
        Ok(written)
    }
}

/// The mask as an 8-bit grey PNG (0 and 255).
///
/// Why these encoder settings: `image`'s default adaptive filter tries five filters on
/// every row, which for a two-million-pixel X-ray mask cost more than finding the
/// components. A mask is two values in large blobs, so the Up filter turns every row
/// inside or outside a blob into zeros and fast deflate does the rest: the same pixels,
/// about twice as fast, in files about 4 % larger.
pub fn encode_mask(l: &ClassLocalisation) -> image::ImageResult<Vec<u8>> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let pixels: Vec<u8> = l.mask.iter().map(|&b| if b { 255 } else { 0 }).collect();
    let mut buf = Vec::new();
    PngEncoder::new_with_quality(&mut buf, CompressionType::Fast, FilterType::Up).write_image(
        &pixels,
        l.width,
        l.height,
        image::ExtendedColorType::L8,
    )?;
    Ok(buf)
}

/// The image with the class map as a turbo heatmap blended over it, and the boxes drawn.
pub fn overlay(img: &SourceImage, l: &ClassLocalisation) -> RgbImage {
    let (w, h) = (img.width as usize, img.height as usize);
    let a = OVERLAY_ALPHA;
    let (sx0, sy0, sx1, sy1) = l.seen;
    let mut out = RgbImage::new(img.width, img.height);
    for (i, px) in out.pixels_mut().enumerate() {
        let base: [f32; 3] = if img.channels == 1 {
            [img.data[i]; 3]
        } else {
            [img.data[3 * i], img.data[3 * i + 1], img.data[3 * i + 2]]
        };
        // Pixels the network never saw (cut by a centre crop) show the bare image.
        let (x, y) = (i % w, i / w);
        let a = if (sx0..sx1).contains(&x) && (sy0..sy1).contains(&y) { a } else { 0.0 };
        let heat = turbo(l.map[i]);
        for c in 0..3 {
            px.0[c] = ((base[c] * (1.0 - a) + heat[c] * a) * 255.0).round().clamp(0.0, 255.0) as u8;
        }
    }
    let t = (w.min(h) / 150).max(2) as i64;
    for b in &l.boxes {
        outline(&mut out, (b.x1 as i64, b.y1 as i64, b.x2 as i64, b.y2 as i64), image::Rgb([255, 255, 255]), t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artefact_paths_keep_folders_apart() {
        let a = Artefacts { dir: PathBuf::from("/o"), masks: true, overlays: true, maps: true };
        assert_eq!(a.mask_path("x/a.png", 3), PathBuf::from("/o/masks/x/a.png.3.png"));
        assert_eq!(a.mask_path("y/a.png", 3), PathBuf::from("/o/masks/y/a.png.3.png"));
        assert_eq!(a.overlay_path("a.png", 285), PathBuf::from("/o/overlays/a.png.285.jpg"));
        assert_eq!(a.map_path("d/a.png"), PathBuf::from("/o/maps/d/a.png.npy"));
    }
}
