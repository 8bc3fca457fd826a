//! Stage "decode": one file on disk to linear-range pixels.
//!
//! The format is read from the file's content, not its name, so a text file called
//! `x.png` is a decode error, not a crash. Size caps apply before any pixel is decoded
//! (decompression bombs). Pixels leave this stage as `f32` in [0, 1], interleaved, with
//! 1 (grey) or 3 (RGB) channels: 16-bit images keep their 16 bits, alpha is dropped
//! (colour values are used as stored, not composited).

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use crate::error::ImageError;

/// Smallest accepted side, in pixels. A map of a 7 x 7 feature grid cannot be placed
/// back onto fewer pixels meaningfully, and a 1 x 1 "image" is a placeholder, not data.
pub const MIN_SIDE: u32 = 8;

/// A decoded image.
#[derive(Debug, Clone)]
pub struct SourceImage {
    pub width: u32,
    pub height: u32,
    /// 1 or 3.
    pub channels: usize,
    /// Row-major, interleaved, values in [0, 1].
    pub data: Vec<f32>,
    /// Bits per sample of the file (8 or 16).
    pub bit_depth: u8,
    /// What the file says about itself beyond pixels (DICOM identifiers, spacing).
    pub meta: ImageMeta,
}

/// Per-file facts carried into `images.csv`. Only identifiers that are not patient
/// data in themselves are kept; names, birth dates and the like are never read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageMeta {
    pub patient_id: Option<String>,
    pub study_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    /// Row and column spacing in millimetres (DICOM Pixel Spacing).
    pub pixel_spacing: Option<(f64, f64)>,
    /// Number of frames in the file (the first is processed).
    pub frames: Option<u32>,
}

impl SourceImage {
    pub fn pixel(&self, x: usize, y: usize, c: usize) -> f32 {
        self.data[(y * self.width as usize + x) * self.channels + c]
    }
}

/// Reads files within the configured limits.
#[derive(Debug, Clone)]
pub struct Decoder {
    pub max_pixels: u64,
    pub max_file_bytes: u64,
}

impl Decoder {
    pub fn decode_file(&self, path: &Path) -> Result<SourceImage, ImageError> {
        let meta = std::fs::metadata(path).map_err(|e| ImageError::Read(e.to_string()))?;
        if meta.is_dir() {
            return Err(ImageError::Read("is a directory".into()));
        }
        if !meta.is_file() {
            // Named pipes would block a reader forever; sockets and devices are not images.
            return Err(ImageError::Read("not a regular file (pipe, socket or device)".into()));
        }
        if meta.len() == 0 {
            return Err(ImageError::Decode("empty file (0 bytes)".into()));
        }
        if meta.len() > self.max_file_bytes {
            return Err(ImageError::Refused(format!(
                "file is {} bytes, above the limit of {}",
                meta.len(),
                self.max_file_bytes
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| ImageError::Read(e.to_string()))?;
        self.decode_bytes(&bytes)
    }

    pub fn decode_bytes(&self, bytes: &[u8]) -> Result<SourceImage, ImageError> {
        let reader =
            ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| ImageError::Read(e.to_string()))?;
        let format =
            reader.format().ok_or_else(|| ImageError::Decode("not an image: unrecognised file format".into()))?;
        let (w, h) = ImageReader::with_format(Cursor::new(bytes), format)
            .into_dimensions()
            .map_err(|e| ImageError::Decode(format!("{format:?} header: {e}")))?;
        if (w as u64) * (h as u64) > self.max_pixels {
            return Err(ImageError::Refused(format!(
                "header claims {w}x{h} pixels, above the limit of {} pixels",
                self.max_pixels
            )));
        }
        if w < MIN_SIDE || h < MIN_SIDE {
            return Err(ImageError::Refused(format!("image is {w}x{h} pixels, below the minimum side of {MIN_SIDE}")));
        }
        if format == ImageFormat::Jpeg && !jpeg_has_end(bytes) {
            // zune-jpeg fills missing scans with grey instead of failing; a truncated
            // file would silently become a different image.
            return Err(ImageError::Decode("truncated JPEG: no end-of-image marker".into()));
        }
        let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
        let mut limits = Limits::default();
        limits.max_image_width = Some(w);
        limits.max_image_height = Some(h);
        limits.max_alloc = Some(self.max_pixels.saturating_mul(16));
        reader.limits(limits);
        let img = reader.decode().map_err(|e| ImageError::Decode(format!("{format:?}: {e}")))?;
        Ok(from_dynamic(img))
    }
}

/// JPEG files end with FFD9, possibly followed by padding.
fn jpeg_has_end(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Converts to f32 in [0, 1], keeping grey as one channel.
pub fn from_dynamic(img: DynamicImage) -> SourceImage {
    let (width, height) = (img.width(), img.height());
    let (channels, bit_depth, data): (usize, u8, Vec<f32>) = match img {
        DynamicImage::ImageLuma8(b) => (1, 8, b.into_raw().into_iter().map(|v| v as f32 / 255.0).collect()),
        DynamicImage::ImageLumaA8(b) => (1, 8, b.into_raw().chunks_exact(2).map(|p| p[0] as f32 / 255.0).collect()),
        DynamicImage::ImageLuma16(b) => (1, 16, b.into_raw().into_iter().map(|v| v as f32 / 65535.0).collect()),
        DynamicImage::ImageLumaA16(b) => (1, 16, b.into_raw().chunks_exact(2).map(|p| p[0] as f32 / 65535.0).collect()),
        DynamicImage::ImageRgb8(b) => (3, 8, b.into_raw().into_iter().map(|v| v as f32 / 255.0).collect()),
        DynamicImage::ImageRgba8(b) => (3, 8, rgb_of_rgba(&b.into_raw(), 255.0)),
        DynamicImage::ImageRgb16(b) => (3, 16, b.into_raw().into_iter().map(|v| v as f32 / 65535.0).collect()),
        DynamicImage::ImageRgba16(b) => (3, 16, rgb_of_rgba(&b.into_raw(), 65535.0)),
        other => (3, 32, other.into_rgb32f().into_raw().into_iter().map(|v| v.clamp(0.0, 1.0)).collect()),
    };
    SourceImage { width, height, channels, data, bit_depth, meta: ImageMeta::default() }
}

fn rgb_of_rgba<T: Copy + Into<f32>>(raw: &[T], max: f32) -> Vec<f32> {
    raw.chunks_exact(4).flat_map(|p| [p[0].into() / max, p[1].into() / max, p[2].into() / max]).collect()
}
