//! Pixel-level truth: a folder of PNG masks named like the images, for the figures that
//! need more than boxes (PxAP, pixel IoU).
//!
//! For the image `a/b.jpg` the mask is `DIR/a/b.png`, or `DIR/<label>/a/b.png` when an
//! evaluation of several labels keeps one folder per label (checked first). A pixel is
//! foreground when the mask's grey value is above 0 (wsolevaluation reads `> 0.5` of the
//! 0-255 value); `DIR/a/b.ignore.png`, when it exists, marks pixels that count neither way
//! (wsolevaluation's ignore boxes: ignore pixels that are also foreground stay
//! foreground). A mask must have its image's size: a mask of another size is an error of
//! that pair, not a silent resize.

use std::path::{Path, PathBuf};

/// Foreground, background and ignore, one byte a pixel (see [`crate::eval::figures`]).
pub const BACKGROUND: u8 = 0;
pub const FOREGROUND: u8 = 1;
pub const IGNORE: u8 = 255;

/// A folder of truth masks.
#[derive(Debug, Clone)]
pub struct TruthMasks {
    pub dir: PathBuf,
}

impl TruthMasks {
    /// The mask file of image `rel` for `label`, if one exists.
    pub fn path_of(&self, rel: &str, label: &str) -> Option<PathBuf> {
        let file = Path::new(rel).with_extension("png");
        let per_label = self.dir.join(label).join(&file);
        let shared = self.dir.join(&file);
        [per_label, shared].into_iter().find(|p| p.is_file())
    }

    /// The truth of every pixel of image `rel` (`width` x `height`, row-major) for `label`;
    /// `Ok(None)` when the folder has no mask for it.
    pub fn load(&self, rel: &str, label: &str, width: u32, height: u32) -> Result<Option<Vec<u8>>, String> {
        let Some(path) = self.path_of(rel, label) else { return Ok(None) };
        let mut truth: Vec<u8> =
            grey(&path, width, height)?.iter().map(|&v| if v > 0 { FOREGROUND } else { BACKGROUND }).collect();
        let ignore = path.with_extension("ignore.png");
        if ignore.is_file() {
            for (t, &v) in truth.iter_mut().zip(grey(&ignore, width, height)?.iter()) {
                if v > 0 && *t != FOREGROUND {
                    *t = IGNORE;
                }
            }
        }
        Ok(Some(truth))
    }
}

/// The 8-bit grey values of a PNG of the given size.
fn grey(path: &Path, width: u32, height: u32) -> Result<Vec<u8>, String> {
    let img = image::open(path).map_err(|e| format!("truth mask {}: {e}", path.display()))?.into_luma8();
    if img.dimensions() != (width, height) {
        return Err(format!(
            "truth mask {}: {}x{}, but the image is {width}x{height}",
            path.display(),
            img.width(),
            img.height()
        ));
    }
    Ok(img.into_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_with_ignore_and_wrong_size() {
        let dir = tempfile::tempdir().unwrap();
        let m = TruthMasks { dir: dir.path().to_path_buf() };
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        image::GrayImage::from_raw(3, 1, vec![0, 255, 7]).unwrap().save(dir.path().join("a/b.png")).unwrap();
        image::GrayImage::from_raw(3, 1, vec![9, 9, 0]).unwrap().save(dir.path().join("a/b.ignore.png")).unwrap();
        assert_eq!(m.load("a/b.jpg", "cat", 3, 1).unwrap(), Some(vec![IGNORE, FOREGROUND, FOREGROUND]));
        assert_eq!(m.load("a/c.jpg", "cat", 3, 1).unwrap(), None);
        assert!(m.load("a/b.jpg", "cat", 4, 1).unwrap_err().contains("3x1, but the image is 4x1"));
    }
}
