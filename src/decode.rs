//! Stage "decode": one file on disk to linear-range pixels.
//!
//! The format is read from the file's content, not its name, so a text file called
//! `x.png` is a decode error, not a crash. Size caps apply before any pixel is decoded
//! (decompression bombs). Pixels leave this stage as `f32` in [0, 1], interleaved, with
//! 1 (grey) or 3 (RGB) channels: 16-bit images keep their 16 bits, alpha is dropped
//! (colour values are used as stored, not composited).
//!
//! Files with more than 8 bits per sample are where "as stored" is not enough: a 16-bit
//! PNG or TIFF X-ray often holds 12-bit values, and a DICOM file's numbers only become
//! brightness through its LUTs. `.dcm`/`.dicom` files (and, with `sniff_dicom`, any file
//! with the DICOM preamble) go to [`crate::dicom`]; 16-bit PNG/TIFF are scaled by their
//! significant bits or their own range ([`HighBitDepth`]), never truncated to a byte.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use crate::config::{HighBitDepth, WindowChoice};
use crate::dicom::{self, DicomOptions};
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
    /// Bits per sample of the file (8 or 16; DICOM: BitsStored).
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
    /// Read files of any name as DICOM when they carry the preamble and `DICM` magic.
    pub sniff_dicom: bool,
    /// DICOM VOI stage (`[decode] window`).
    pub window: WindowChoice,
    /// 16-bit PNG/TIFF scaling (`[decode] high_bit_depth`).
    pub high_bit_depth: HighBitDepth,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            max_pixels: crate::defaults::MAX_PIXELS,
            max_file_bytes: crate::defaults::MAX_FILE_BYTES,
            sniff_dicom: false,
            window: WindowChoice::default(),
            high_bit_depth: HighBitDepth::default(),
        }
    }
}

/// `.dcm` and `.dicom`, any case: always read as DICOM.
pub fn has_dicom_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| crate::defaults::DICOM_EXTENSIONS.iter().any(|d| e.eq_ignore_ascii_case(d)))
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
        if has_dicom_extension(path) || (self.sniff_dicom && dicom::has_dicm_magic(&bytes)) {
            let opts =
                DicomOptions { window: self.window, max_pixels: self.max_pixels, max_bytes: self.max_file_bytes };
            return dicom::read_dicom(&bytes, &opts);
        }
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
        let policy = self.high_bit_depth;
        let sbit = || if format == ImageFormat::Png { png_significant_bits(bytes) } else { None };
        Ok(from_dynamic_in(img, &|raw, stride, colour| range16(policy, sbit, raw, stride, colour)))
    }
}

/// The stored values shown as black and as white in a 16-bit image (`raw` interleaved,
/// `stride` samples per pixel of which the first `colour` are not alpha).
///
/// `bit-depth` with a PNG `sBIT` of n < 16 bits: 2^n - 1 is white when every sample fits
/// in n bits (raw 12-bit values in 16-bit samples, as medical exports write them). If a
/// sample does not fit, the file follows the PNG rule that samples are scaled up to 16
/// bits, and 65535 is white.
pub fn range16(
    policy: HighBitDepth,
    sbit: impl FnOnce() -> Option<u8>,
    raw: &[u16],
    stride: usize,
    colour: usize,
) -> (f32, f32) {
    let samples = || raw.chunks_exact(stride).flat_map(|p| p[..colour].iter().copied());
    match policy {
        HighBitDepth::MinMax => {
            let (lo, hi) = samples().fold((u16::MAX, u16::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
            (lo as f32, hi as f32)
        }
        HighBitDepth::BitDepth => match sbit() {
            Some(bits @ 1..=15) => {
                let top = (1u16 << bits) - 1;
                if samples().all(|v| v <= top) {
                    (0.0, top as f32)
                } else {
                    (0.0, 65535.0)
                }
            }
            _ => (0.0, 65535.0),
        },
    }
}

/// The significant bits of a PNG's colour samples (`sBIT`), when the chunk is present.
fn png_significant_bits(bytes: &[u8]) -> Option<u8> {
    let reader = png::Decoder::new(Cursor::new(bytes)).read_info().ok()?;
    let info = reader.info();
    let sbit = info.sbit.as_ref()?;
    let colour = match info.color_type {
        png::ColorType::Rgb | png::ColorType::Rgba => 3,
        _ => 1,
    };
    sbit.iter().take(colour).copied().max()
}

/// JPEG files end with FFD9, possibly followed by padding.
fn jpeg_has_end(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Converts to f32 in [0, 1], keeping grey as one channel; 16-bit samples are divided
/// by 65535.
pub fn from_dynamic(img: DynamicImage) -> SourceImage {
    from_dynamic_in(img, &|_, _, _| (0.0, 65535.0))
}

/// `(raw samples, samples per pixel, colour samples per pixel) -> (black, white)`.
type Range16<'a> = dyn Fn(&[u16], usize, usize) -> (f32, f32) + 'a;

/// Like [`from_dynamic`], with 16-bit samples mapped linearly from `range16(raw, stride,
/// colour)` = (black, white) to [0, 1].
fn from_dynamic_in(img: DynamicImage, range16: &Range16<'_>) -> SourceImage {
    let (width, height) = (img.width(), img.height());
    let sixteen = |raw: Vec<u16>, stride: usize, colour: usize| {
        let (lo, hi) = range16(&raw, stride, colour);
        let span = hi - lo;
        raw.chunks_exact(stride)
            .flat_map(|p| {
                p[..colour].iter().map(|&v| if span > 0.0 { ((v as f32 - lo) / span).clamp(0.0, 1.0) } else { 0.0 })
            })
            .collect::<Vec<f32>>()
    };
    let (channels, bit_depth, data): (usize, u8, Vec<f32>) = match img {
        DynamicImage::ImageLuma8(b) => (1, 8, b.into_raw().into_iter().map(|v| v as f32 / 255.0).collect()),
        DynamicImage::ImageLumaA8(b) => (1, 8, b.into_raw().chunks_exact(2).map(|p| p[0] as f32 / 255.0).collect()),
        DynamicImage::ImageLuma16(b) => (1, 16, sixteen(b.into_raw(), 1, 1)),
        DynamicImage::ImageLumaA16(b) => (1, 16, sixteen(b.into_raw(), 2, 1)),
        DynamicImage::ImageRgb8(b) => (3, 8, b.into_raw().into_iter().map(|v| v as f32 / 255.0).collect()),
        DynamicImage::ImageRgba8(b) => (3, 8, rgb_of_rgba(&b.into_raw(), 255.0)),
        DynamicImage::ImageRgb16(b) => (3, 16, sixteen(b.into_raw(), 3, 3)),
        DynamicImage::ImageRgba16(b) => (3, 16, sixteen(b.into_raw(), 4, 3)),
        other => (3, 32, other.into_rgb32f().into_raw().into_iter().map(|v| v.clamp(0.0, 1.0)).collect()),
    };
    SourceImage { width, height, channels, data, bit_depth, meta: ImageMeta::default() }
}

fn rgb_of_rgba<T: Copy + Into<f32>>(raw: &[T], max: f32) -> Vec<f32> {
    raw.chunks_exact(4).flat_map(|p| [p[0].into() / max, p[1].into() / max, p[2].into() / max]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16-bit grey PNG of `values` (one row per 16 values), with an `sBIT` chunk when
    /// `sbit` is given.
    fn png16(values: &[u16], sbit: Option<u8>) -> Vec<u8> {
        let (w, h) = (16u32, values.len() as u32 / 16);
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::Sixteen);
            let mut writer = enc.write_header().unwrap();
            if let Some(b) = sbit {
                writer.write_chunk(png::chunk::ChunkType(*b"sBIT"), &[b]).unwrap();
            }
            let data: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
            writer.write_image_data(&data).unwrap();
        }
        out
    }

    fn ramp(top: u16) -> Vec<u16> {
        (0..256u32).map(|i| (i * top as u32 / 255) as u16).collect()
    }

    #[test]
    fn png_with_sbit_12_is_scaled_by_4095_not_65535() {
        let d = Decoder::default();
        let img = d.decode_bytes(&png16(&ramp(4095), Some(12))).unwrap();
        assert_eq!((img.channels, img.bit_depth), (1, 16));
        let max = img.data.iter().copied().fold(0.0, f32::max);
        assert_eq!(max, 1.0, "4095 is white");
        // Sample 128 of the ramp is 128 * 4095 / 255 = 2055 -> 2055 / 4095.
        assert!((img.data[128] - 2055.0 / 4095.0).abs() < 1e-6);
        // Without sBIT the same file is divided by 65535 (a dark image, but not the
        // high byte: that would be 2055 >> 8 = 8 -> 8 / 255).
        let plain = d.decode_bytes(&png16(&ramp(4095), None)).unwrap();
        assert!((plain.data[128] - 2055.0 / 65535.0).abs() < 1e-7);
        // sBIT 12 on samples scaled up to 16 bits (the PNG rule): divided by 65535.
        let scaled = d.decode_bytes(&png16(&ramp(65535), Some(12))).unwrap();
        assert_eq!(scaled.data[255], 1.0);
        assert!((scaled.data[128] - (128.0 * 65535.0 / 255.0f32).floor() / 65535.0).abs() < 1e-6);
    }

    #[test]
    fn minmax_stretches_the_image_range() {
        let d = Decoder { high_bit_depth: HighBitDepth::MinMax, ..Decoder::default() };
        let values: Vec<u16> = ramp(3000).into_iter().map(|v| v + 1000).collect(); // 1000..4000
        let img = d.decode_bytes(&png16(&values, None)).unwrap();
        assert_eq!((img.data[0], img.data[255]), (0.0, 1.0));
        assert!((img.data[128] - (values[128] - 1000) as f32 / 3000.0).abs() < 1e-6);
        // 16-bit TIFF too.
        let buf = image::ImageBuffer::<image::Luma<u16>, _>::from_raw(16, 16, values.clone()).unwrap();
        let mut tiff = Cursor::new(Vec::new());
        buf.write_to(&mut tiff, ImageFormat::Tiff).unwrap();
        let t = d.decode_bytes(tiff.get_ref()).unwrap();
        assert_eq!(t.data, img.data);
        // A flat image becomes zeros, not NaN.
        let flat = d.decode_bytes(&png16(&[500; 256], None)).unwrap();
        assert!(flat.data.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn range16_ignores_alpha_and_colour_uses_the_largest_sbit() {
        // RGBA: alpha 65535 must not count as a colour sample.
        let raw = [100u16, 4095, 7, 65535, 0, 0, 0, 65535];
        assert_eq!(range16(HighBitDepth::BitDepth, || Some(12), &raw, 4, 3), (0.0, 4095.0));
        assert_eq!(range16(HighBitDepth::MinMax, || None, &raw, 4, 3), (0.0, 4095.0));
        assert_eq!(range16(HighBitDepth::BitDepth, || None, &raw, 4, 3), (0.0, 65535.0));
        assert_eq!(range16(HighBitDepth::BitDepth, || Some(16), &raw, 4, 3), (0.0, 65535.0));
    }

    #[test]
    fn dicom_is_chosen_by_extension_or_by_magic_when_sniffing() {
        let dir = tempfile::tempdir().unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom/mono2_8bit_explicit.dcm");
        let bytes = std::fs::read(&fixture).unwrap();
        for name in ["A.DCM", "b.dicom", "plain", "c.png"] {
            std::fs::write(dir.path().join(name), &bytes).unwrap();
        }
        let off = Decoder::default();
        assert_eq!(off.decode_file(&dir.path().join("A.DCM")).unwrap().meta.frames, Some(1));
        assert!(off.decode_file(&dir.path().join("b.dicom")).is_ok());
        let e = off.decode_file(&dir.path().join("plain")).unwrap_err().to_string();
        assert!(e.contains("not an image"), "{e}");
        let on = Decoder { sniff_dicom: true, ..Decoder::default() };
        for name in ["plain", "c.png"] {
            let img = on.decode_file(&dir.path().join(name)).unwrap();
            assert_eq!((img.width, img.height, img.channels), (536, 356, 1));
        }
        std::fs::write(dir.path().join("text.dcm"), b"hello").unwrap();
        let e = on.decode_file(&dir.path().join("text.dcm")).unwrap_err().to_string();
        assert_eq!(e, "cannot decode: not a DICOM file (no DICM preamble)");
    }
}
