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
use crate::faults;
use crate::stage::decode::{Samples, SourceImage};
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
    /// Height and width of the maps: the feature map's, or with several passes the
    /// grid's they were averaged on (the network input of the largest pass).
    shape: [usize; 2],
    geometry: &'a Geometry,
    /// With several passes (`[cam] scales`, `flip`): how many were averaged. The maps are
    /// then the average of the passes' normalised maps, not raw class maps.
    #[serde(skip_serializing_if = "Option::is_none")]
    averaged_passes: Option<usize>,
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

    /// The artefact files of image `rel` that exist on disk, whatever switches are on:
    /// masks and overlays of any class (`<name>.<digits>.png|jpg`), the maps and their
    /// sidecar. What `--force` removes of a previous run.
    pub fn existing(&self, rel: &str) -> [Vec<PathBuf>; 3] {
        let of_classes = |kind: &str, ext: &str| -> Vec<PathBuf> {
            let base = self.path(kind, rel, ".");
            let (Some(dir), Some(prefix)) = (base.parent(), base.file_name().and_then(|n| n.to_str())) else {
                return Vec::new();
            };
            let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
            let mut v: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .filter(|e| {
                    let name = e.file_name();
                    let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else { return false };
                    rest.strip_suffix(ext)
                        .and_then(|c| c.strip_suffix('.'))
                        .is_some_and(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
                })
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            v.sort();
            v
        };
        let npy = self.map_path(rel);
        let maps: Vec<PathBuf> =
            [npy.clone(), npy.with_extension("json")].into_iter().filter(|p| p.is_file()).collect();
        [of_classes("masks", "png"), of_classes("overlays", "jpg"), maps]
    }

    /// The writer of one image's artefacts.
    pub fn for_image<'a>(&'a self, rel: &'a str) -> ImageArtefacts<'a> {
        ImageArtefacts { a: self, rel, written: Vec::new() }
    }
}

/// Why an artefact could not be written.
#[derive(Debug, Clone, PartialEq)]
pub enum ArtefactError {
    /// The output folder as a whole takes no file (disk full, read-only, no permission, an
    /// artefact folder that is a file): every later image would fail the same way, so
    /// the run stops, resumable.
    Folder(String),
    /// This image's artefact cannot be made (an overlay too large for JPEG, a name too
    /// long, ...): the image becomes an error row and the run goes on.
    Image(String),
}

impl ArtefactError {
    /// Sorts an I/O error writing file `p`.
    fn io(p: &Path, e: &std::io::Error) -> ArtefactError {
        use std::io::ErrorKind as K;
        let msg = format!("cannot write {}: {e}", p.display());
        // ENOSPC, EDQUOT, EROFS, EACCES, EPERM, EIO, ENOTDIR, EEXIST: the folder, not the image.
        let folder_errno = matches!(e.raw_os_error(), Some(28 | 122 | 30 | 13 | 1 | 5 | 20 | 17));
        let folder_kind = matches!(
            e.kind(),
            K::StorageFull | K::ReadOnlyFilesystem | K::PermissionDenied | K::NotADirectory | K::AlreadyExists
        );
        if folder_errno || folder_kind {
            ArtefactError::Folder(msg)
        } else {
            ArtefactError::Image(msg)
        }
    }

    /// An artefact that could not be encoded: always this image's fault.
    fn encode(p: &Path, e: &dyn std::fmt::Display) -> ArtefactError {
        ArtefactError::Image(format!("cannot write {}: {e}", p.display()))
    }
}

/// Writes one image's artefacts, class by class, each atomically and without syncing (see
/// [`atomic_write_unsynced`]); remembers the files written, which the writer thread syncs
/// before the image's row ([`ImageArtefacts::finish`]), or which are removed when the
/// image fails ([`ImageArtefacts::abandon`]).
pub struct ImageArtefacts<'a> {
    a: &'a Artefacts,
    rel: &'a str,
    written: Vec<PathBuf>,
}

impl ImageArtefacts<'_> {
    fn put(&mut self, p: PathBuf, bytes: &[u8], kind: &str) -> Result<(), ArtefactError> {
        if faults::artefact_fails(kind, self.rel) {
            let e = std::io::Error::other(format!("fault injected by {}", faults::ARTEFACT_ENV));
            return Err(ArtefactError::io(&p, &e));
        }
        atomic_write_unsynced(&p, bytes).map_err(|e| ArtefactError::io(&p, &e))?;
        self.written.push(p);
        Ok(())
    }

    /// The mask and overlay of one localised class, as switched on; `img` is the decoded
    /// image the overlay is drawn on. For the image's `last` class the overlay takes the
    /// image (see [`overlay_consuming`]).
    pub fn class(
        &mut self,
        img: &mut Option<SourceImage>,
        last: bool,
        l: &ClassLocalisation,
    ) -> Result<(), ArtefactError> {
        if self.a.masks {
            let p = self.a.mask_path(self.rel, l.class);
            let buf =
                encode_mask(l).map_err(|e| ArtefactError::encode(&p, &e)).and_then(
                    |b| match faults::artefact_fails("mask-encode", self.rel) {
                        true => Err(ArtefactError::encode(
                            &p,
                            &format!("PNG encoding failed (fault injected by {})", faults::ARTEFACT_ENV),
                        )),
                        false => Ok(b),
                    },
                )?;
            self.put(p, &buf, "mask")?;
        }
        if let (true, Some(src)) = (self.a.overlays, img.as_ref()) {
            let p = self.a.overlay_path(self.rel, l.class);
            let o = match last {
                true => overlay_consuming(img.take().expect("checked"), l),
                false => overlay(src, l),
            };
            let mut buf = Vec::new();
            JpegEncoder::new_with_quality(&mut buf, OVERLAY_JPEG_QUALITY)
                .encode_image(&o)
                .map_err(|e| ArtefactError::encode(&p, &e))?;
            self.put(p, &buf, "overlay")?;
        }
        Ok(())
    }

    /// The maps of the localised classes and their sidecar (with the geometry they map
    /// back through), when switched on; `passes` > 1 when they are averages of passes.
    pub fn maps(&mut self, maps: &ClassMaps, geo: &Geometry, passes: usize) -> Result<(), ArtefactError> {
        if !self.a.maps {
            return Ok(());
        }
        let p = self.a.map_path(self.rel);
        let mut buf = Vec::new();
        ndarray_npy::WriteNpyExt::write_npy(&maps.maps, &mut buf).map_err(|e| ArtefactError::encode(&p, &e))?;
        self.put(p.clone(), &buf, "map")?;
        let side = MapSidecar {
            classes: &maps.classes,
            shape: [maps.maps.shape()[1], maps.maps.shape()[2]],
            geometry: geo,
            averaged_passes: (passes > 1).then_some(passes),
        };
        let j = p.with_extension("json");
        let text = serde_json::to_string(&side).map_err(|e| ArtefactError::encode(&j, &e))?;
        self.put(j, text.as_bytes(), "map")
    }

    /// The files written, for the writer thread to sync before the image's row.
    pub fn finish(self) -> Vec<PathBuf> {
        self.written
    }

    /// Removes what was written: the image failed, and its row will say so.
    pub fn abandon(self) {
        for p in self.written {
            let _ = std::fs::remove_file(p);
        }
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
    let mut buf = Vec::new();
    PngEncoder::new_with_quality(&mut buf, CompressionType::Fast, FilterType::Up).write_image(
        &l.mask,
        l.width,
        l.height,
        image::ExtendedColorType::L8,
    )?;
    Ok(buf)
}

/// The image with the class map as a turbo heatmap blended over it, and the boxes drawn.
pub fn overlay(img: &SourceImage, l: &ClassLocalisation) -> RgbImage {
    let mut out = RgbImage::new(img.width, img.height);
    blend(&mut out, l, Some(img));
    out
}

/// [`overlay`] made from the image itself, which it consumes: an 8-bit RGB image's bytes
/// are blended in place, so the overlay of a 100-megapixel photo costs no second 300 MB
/// buffer. The pixels are those [`overlay`] gives.
pub fn overlay_consuming(img: SourceImage, l: &ClassLocalisation) -> RgbImage {
    let (w, h, channels) = (img.width, img.height, img.channels);
    match img.data {
        Samples::U8(bytes) if channels == 3 => {
            let mut out = RgbImage::from_raw(w, h, bytes).expect("w x h x 3 bytes");
            blend(&mut out, l, None);
            out
        }
        data => overlay(&SourceImage { data, ..img }, l),
    }
}

/// Writes the heatmap of `l` over the image into `out`, and the boxes: the image is `img`,
/// or (`None`) what `out` holds, each pixel read just before it is written.
fn blend(out: &mut RgbImage, l: &ClassLocalisation, img: Option<&SourceImage>) {
    let (w, h) = (out.width() as usize, out.height() as usize);
    let a = OVERLAY_ALPHA;
    let (sx0, sy0, sx1, sy1) = l.seen;
    for (i, px) in out.pixels_mut().enumerate() {
        let base: [f32; 3] = match img {
            Some(img) if img.channels == 1 => [img.data.get(i); 3],
            Some(img) => [img.data.get(3 * i), img.data.get(3 * i + 1), img.data.get(3 * i + 2)],
            None => px.0.map(|v| v as f32 / 255.0),
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
        outline(out, (b.x1 as i64, b.y1 as i64, b.x2 as i64, b.y2 as i64), image::Rgb([255, 255, 255]), t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_artefacts_are_found_by_name_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let a = Artefacts { dir: dir.path().to_path_buf(), masks: true, overlays: true, maps: true };
        for f in [
            "masks/d/a.png.3.png",
            "masks/d/a.png.281.png",
            "masks/d/a.png.x.png",
            "masks/d/a.png.png",
            "masks/d/ab.png.3.png",
            "masks/d/my_annotation.png",
            "overlays/d/a.png.3.jpg",
            "maps/d/a.png.npy",
            "maps/d/a.png.json",
            "maps/d/a.png.txt",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        let [m, o, n] = a.existing("d/a.png");
        let names =
            |v: &[PathBuf]| v.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect::<Vec<_>>();
        assert_eq!(names(&m), vec!["a.png.281.png", "a.png.3.png"]);
        assert_eq!(names(&o), vec!["a.png.3.jpg"]);
        assert_eq!(names(&n), vec!["a.png.npy", "a.png.json"]);
        assert_eq!(a.existing("d/none.png").iter().map(Vec::len).sum::<usize>(), 0);
    }

    #[test]
    fn artefact_paths_keep_folders_apart() {
        let a = Artefacts { dir: PathBuf::from("/o"), masks: true, overlays: true, maps: true };
        assert_eq!(a.mask_path("x/a.png", 3), PathBuf::from("/o/masks/x/a.png.3.png"));
        assert_eq!(a.mask_path("y/a.png", 3), PathBuf::from("/o/masks/y/a.png.3.png"));
        assert_eq!(a.overlay_path("a.png", 285), PathBuf::from("/o/overlays/a.png.285.jpg"));
        assert_eq!(a.map_path("d/a.png"), PathBuf::from("/o/maps/d/a.png.npy"));
    }
}
