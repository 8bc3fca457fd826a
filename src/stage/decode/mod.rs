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
//! with the DICOM preamble) go to [`dicom`]; 16-bit PNG/TIFF are scaled by their
//! significant bits or their own range ([`HighBitDepth`]), never truncated to a byte.
//!
//! ## Reduced JPEG decoding (`[decode] jpeg_scaling = "dct"`)
//!
//! A 1800-pixel X-ray that the network sees at 224 pixels is decoded in full and then
//! shrunk by 7. A JPEG stores 8 x 8 blocks of DCT coefficients, and an IDCT of only the
//! block's lowest k x k coefficients (k = 4, 2, 1) yields the block at 1/2, 1/4 or 1/8
//! scale directly, each output pixel approximately the mean of the s x s original pixels
//! it covers (s = 8 / k): the entropy decoding is unchanged, the IDCT, colour conversion
//! and everything after work on s^2 times fewer pixels. `jpeg-decoder`'s `Decoder::scale`
//! does this (zune-jpeg, the `image` crate's decoder, cannot).
//!
//! The reduction chosen is the largest s in {8, 4, 2} whose decode still has at least
//! [`DCT_MIN_OVERSAMPLE`] times the size the preprocessing resizes to
//! ([`ResizeTarget`]) on both axes; otherwise (s = 1) the file takes the exact path, so
//! small images give bit-identical results in both modes. Only baseline and progressive
//! 8-bit greyscale or YCbCr/RGB JPEGs are reduced (read from the frame header, before any
//! pixel): lossless, 12-bit and CMYK files, and JPEG inside DICOM, are always decoded
//! exactly. A file the reduced decoder rejects is an error row, like any undecodable file:
//! there is no silent second attempt with the other decoder.
//!
//! The decoded grid is smaller, but the image keeps the size its header declares
//! ([`SourceImage::original`]): pixel i of the original (centre i + 0.5) lies at
//! (i + 0.5) / s in the decoded grid, whose size is ceil(original / s) (the last row and
//! column may cover the encoder's block padding). [`crate::stage::preprocess::Preprocessor`]
//! builds the [`crate::stage::preprocess::Geometry`] from the original size and resamples the
//! decoded grid over the extent original / s, so boxes, masks, maps and `images.csv`
//! are all in original pixels, as with a full decode.
//!
//! Measured on the 16 sample X-rays with the bench recipe (EfficientNet-Lite0, resize
//! 256 / crop 224, bilinear, cam-paper; `tests/run/jpeg_scaling.rs`): the 8 with a shorter
//! side of at least 1024 pixels are decoded at 1/2, the others exactly. On those 8 the
//! network input differs from the exact path's by at most 1.5 grey levels (mean 0.11:
//! the reduced IDCT is a box filter before the resize's triangle); the top-1 class is
//! the same on 15/16 (the other is a near-tie of two ImageNet classes at p = 0.06), the
//! boxes' IoU with the exact run is 0.989 on average, at least 0.993 where the class
//! agrees, 0.84 where it does not.
//!
//! Speed, honestly: jpeg-decoder's entropy decoding is slower than zune-jpeg's, and on
//! these X-rays it dominates, so a 1/2 decode costs about what zune-jpeg's full decode
//! does (about 4 ms of CPU against 3, `cargo bench --bench stages -- decode/xray`). The
//! gain is in preprocessing, which resamples a quarter of the pixels (about 4 -> 1.5 ms
//! per reduced X-ray); on the 200-X-ray benchmark the run is about 5 % faster.
//!
//! Threads: jpeg-decoder is used with the features `Cargo.lock` already resolved for
//! DICOM (none: no `rayon`), so it never touches a rayon pool. Without `rayon` it still
//! hands each colour component's IDCT to one short-lived helper thread per decode when
//! the output is wider than 128 pixels (its `select_worker` heuristic; there is no public
//! switch), while the calling thread does the entropy decoding: at most 1 + components
//! threads for one image's decode, no pool, nothing that outlives the call.

pub mod dicom;
mod options;
mod source;

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use crate::error::ImageError;
use dicom::DicomOptions;
pub use options::{DecodeOptions, HighBitDepth, JpegScaling, WindowChoice, WindowRaw};
pub use source::{ImageMeta, Samples, SourceImage, MIN_SIDE};

/// `[decode] jpeg_scaling = "dct"` decodes a JPEG at 1/s scale (s = 2, 4, 8) only when
/// the decode keeps at least this many times the size the preprocessing resizes to, on
/// both axes (e.g. a shorter side of 512 for `resize_to = 256`).
///
/// Why 2: the reduced IDCT acts as an s-pixel box filter on the original before the
/// resize's own antialiasing filter (a triangle of half-width R = original / target
/// pixels for bilinear). The two compose to a wider filter: variances add, s^2 / 12 for
/// the box and R^2 / 6 for the triangle. Keeping the decode k times the target means
/// s <= R / k, so the filter's width grows by at most sqrt(1 + 1 / (2 k^2)): 6 % at
/// k = 2, against 22 % at k = 1 (decoding straight to about the target size, where the
/// box would also leave its 8x8 block structure visible to the network). k = 4 would
/// cut the growth to 1.5 % but leave most X-rays (shorter side 600-1400 pixels) at full
/// resolution for a 256-pixel target, saving nothing.
pub const DCT_MIN_OVERSAMPLE: f64 = 2.0;

/// Extensions that are always read as DICOM (case-insensitive), whatever the content
/// looks like: a `.dcm` file without the `DICM` preamble is an error row, not an image.
pub const DICOM_EXTENSIONS: &[&str] = &["dcm", "dicom"];

/// What the consumer of a decoded image will resample it to: `(original width, original
/// height) -> (width, height)` before any crop or pad. A reduced decode keeps at least
/// [`DCT_MIN_OVERSAMPLE`] times this.
pub type ResizeTarget<'a> = &'a (dyn Fn(u32, u32) -> (usize, usize) + Sync);

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
    /// Reduced JPEG decoding (`[decode] jpeg_scaling`); applies only when the caller
    /// says what it resizes to ([`Decoder::decode_file_for`]).
    pub jpeg_scaling: JpegScaling,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(&DecodeOptions::default(), crate::defaults::MAX_PIXELS, crate::defaults::MAX_FILE_BYTES, false)
    }
}

/// `.dcm` and `.dicom`, any case: always read as DICOM.
pub fn has_dicom_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| DICOM_EXTENSIONS.iter().any(|d| e.eq_ignore_ascii_case(d)))
}

impl Decoder {
    /// A decoder for `[decode]` `options` within the size limits of `[run]`; with
    /// `sniff_dicom`, files of any name that carry the DICOM magic are read as DICOM.
    pub fn new(options: &DecodeOptions, max_pixels: u64, max_file_bytes: u64, sniff_dicom: bool) -> Decoder {
        Decoder {
            max_pixels,
            max_file_bytes,
            sniff_dicom,
            window: options.window,
            high_bit_depth: options.high_bit_depth,
            jpeg_scaling: options.jpeg_scaling,
        }
    }

    /// The size and samples the file's header declares, read without decoding a pixel:
    /// `(width, height, channels, bytes per sample)`. `None` for DICOM files (their header
    /// is parsed by the DICOM reader only) and for files that are not images of a known
    /// format.
    pub fn probe(&self, path: &Path) -> Option<(u32, u32, u32, u32)> {
        // Only regular files: opening a named pipe would block this worker forever, and
        // decode_file_for reports such files as errors anyway.
        if has_dicom_extension(path) || !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
            return None;
        }
        let reader = ImageReader::open(path).ok()?.with_guessed_format().ok()?;
        reader.format()?;
        let decoder = reader.into_decoder().ok()?;
        let (w, h) = image::ImageDecoder::dimensions(&decoder);
        let colour = image::ImageDecoder::color_type(&decoder);
        let channels = colour.channel_count() as u32;
        Some((w, h, channels, colour.bytes_per_pixel() as u32 / channels.max(1)))
    }

    /// The file at full resolution.
    pub fn decode_file(&self, path: &Path) -> Result<SourceImage, ImageError> {
        self.decode_file_for(path, None)
    }

    /// The file, possibly reduced (see the module docs) when `target` says what the
    /// image will be resized to and `jpeg_scaling` is `dct`.
    pub fn decode_file_for(&self, path: &Path, target: Option<ResizeTarget<'_>>) -> Result<SourceImage, ImageError> {
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
        self.decode_bytes_for(&bytes, target)
    }

    /// In-memory file at full resolution.
    pub fn decode_bytes(&self, bytes: &[u8]) -> Result<SourceImage, ImageError> {
        self.decode_bytes_for(bytes, None)
    }

    /// In-memory file, possibly reduced (see [`Decoder::decode_file_for`]).
    pub fn decode_bytes_for(&self, bytes: &[u8], target: Option<ResizeTarget<'_>>) -> Result<SourceImage, ImageError> {
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
        if let (ImageFormat::Jpeg, JpegScaling::Dct, Some(target)) = (format, self.jpeg_scaling, target) {
            let reduction = dct_reduction((w, h), target(w, h));
            if reduction > 1 {
                if let Some(img) = decode_jpeg_reduced(bytes, (w, h), reduction, self.max_pixels)? {
                    return Ok(img);
                }
            }
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

/// The reduction s in {1, 2, 4, 8} for a JPEG of `orig` pixels resized to `target`: the
/// largest whose decode, ceil(orig / s), is at least `DCT_MIN_OVERSAMPLE` times the
/// target on both axes.
pub fn dct_reduction(orig: (u32, u32), target: (usize, usize)) -> u32 {
    let k = DCT_MIN_OVERSAMPLE;
    let fits =
        |s: u32| orig.0.div_ceil(s) as f64 >= k * target.0 as f64 && orig.1.div_ceil(s) as f64 >= k * target.1 as f64;
    [8, 4, 2].into_iter().find(|&s| fits(s)).unwrap_or(1)
}

/// Decodes a baseline or progressive 8-bit JPEG at 1/`reduction` scale with
/// jpeg-decoder's reduced IDCT. `Ok(None)`: the frame header says the file is not one
/// the reduced path takes (lossless, 12-bit, CMYK); the caller decodes it exactly.
fn decode_jpeg_reduced(
    bytes: &[u8],
    (w, h): (u32, u32),
    reduction: u32,
    max_pixels: u64,
) -> Result<Option<SourceImage>, ImageError> {
    use jpeg_decoder::{CodingProcess, PixelFormat};
    let fail = |e: jpeg_decoder::Error| ImageError::Decode(format!("Jpeg (reduced IDCT): {e}"));
    let mut dec = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    dec.set_max_decoding_buffer_size(usize::try_from(max_pixels.saturating_mul(4)).unwrap_or(usize::MAX));
    dec.read_info().map_err(fail)?;
    let info = dec.info().ok_or_else(|| ImageError::Decode("Jpeg (reduced IDCT): no frame header".into()))?;
    if (info.width as u32, info.height as u32) != (w, h) {
        return Err(ImageError::Decode(format!(
            "Jpeg: frame header says {}x{}, the image header {w}x{h}",
            info.width, info.height
        )));
    }
    let channels = match (info.coding_process, info.pixel_format) {
        (CodingProcess::DctSequential | CodingProcess::DctProgressive, PixelFormat::L8) => 1,
        (CodingProcess::DctSequential | CodingProcess::DctProgressive, PixelFormat::RGB24) => 3,
        _ => return Ok(None),
    };
    let want = (w.div_ceil(reduction), h.div_ceil(reduction));
    // `scale` picks the smallest scale at least this large on either axis, which is
    // exactly 1/reduction (the next smaller scale is at least one pixel short on both,
    // as both sides are at least MIN_SIDE = 8).
    let got = dec.scale(want.0 as u16, want.1 as u16).map_err(fail)?;
    if (got.0 as u32, got.1 as u32) != want {
        return Err(ImageError::Decode(format!(
            "Jpeg (reduced IDCT): asked for {}x{}, the decoder gives {}x{}",
            want.0, want.1, got.0, got.1
        )));
    }
    let raw = dec.decode().map_err(fail)?;
    let expected = want.0 as usize * want.1 as usize * channels;
    if raw.len() != expected {
        return Err(ImageError::Decode(format!(
            "Jpeg (reduced IDCT): {} samples decoded, {expected} expected",
            raw.len()
        )));
    }
    let data = Samples::U8(raw);
    Ok(Some(SourceImage {
        width: want.0,
        height: want.1,
        original: (w, h),
        reduction,
        channels,
        data,
        bit_depth: 8,
        meta: ImageMeta::default(),
    }))
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
    let f32s = Samples::F32;
    let (channels, bit_depth, data): (usize, u8, Samples) = match img {
        DynamicImage::ImageLuma8(b) => (1, 8, Samples::U8(b.into_raw())),
        DynamicImage::ImageLumaA8(b) => (1, 8, Samples::U8(b.into_raw().chunks_exact(2).map(|p| p[0]).collect())),
        DynamicImage::ImageLuma16(b) => (1, 16, f32s(sixteen(b.into_raw(), 1, 1))),
        DynamicImage::ImageLumaA16(b) => (1, 16, f32s(sixteen(b.into_raw(), 2, 1))),
        DynamicImage::ImageRgb8(b) => (3, 8, Samples::U8(b.into_raw())),
        DynamicImage::ImageRgba8(b) => {
            (3, 8, Samples::U8(b.into_raw().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect()))
        }
        DynamicImage::ImageRgb16(b) => (3, 16, f32s(sixteen(b.into_raw(), 3, 3))),
        DynamicImage::ImageRgba16(b) => (3, 16, f32s(sixteen(b.into_raw(), 4, 3))),
        other => (3, 32, f32s(other.into_rgb32f().into_raw().into_iter().map(|v| v.clamp(0.0, 1.0)).collect())),
    };
    SourceImage::new(width, height, channels, data, bit_depth, ImageMeta::default())
}

#[cfg(test)]
pub(crate) mod tests {
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
        let max = img.data.to_f32().into_iter().fold(0.0, f32::max);
        assert_eq!(max, 1.0, "4095 is white");
        // Sample 128 of the ramp is 128 * 4095 / 255 = 2055 -> 2055 / 4095.
        assert!((img.data.get(128) - 2055.0 / 4095.0).abs() < 1e-6);
        // Without sBIT the same file is divided by 65535 (a dark image, but not the
        // high byte: that would be 2055 >> 8 = 8 -> 8 / 255).
        let plain = d.decode_bytes(&png16(&ramp(4095), None)).unwrap();
        assert!((plain.data.get(128) - 2055.0 / 65535.0).abs() < 1e-7);
        // sBIT 12 on samples scaled up to 16 bits (the PNG rule): divided by 65535.
        let scaled = d.decode_bytes(&png16(&ramp(65535), Some(12))).unwrap();
        assert_eq!(scaled.data.get(255), 1.0);
        assert!((scaled.data.get(128) - (128.0 * 65535.0 / 255.0f32).floor() / 65535.0).abs() < 1e-6);
    }

    #[test]
    fn minmax_stretches_the_image_range() {
        let d = Decoder { high_bit_depth: HighBitDepth::MinMax, ..Decoder::default() };
        let values: Vec<u16> = ramp(3000).into_iter().map(|v| v + 1000).collect(); // 1000..4000
        let img = d.decode_bytes(&png16(&values, None)).unwrap();
        assert_eq!((img.data.get(0), img.data.get(255)), (0.0, 1.0));
        assert!((img.data.get(128) - (values[128] - 1000) as f32 / 3000.0).abs() < 1e-6);
        // 16-bit TIFF too.
        let buf = image::ImageBuffer::<image::Luma<u16>, _>::from_raw(16, 16, values.clone()).unwrap();
        let mut tiff = Cursor::new(Vec::new());
        buf.write_to(&mut tiff, ImageFormat::Tiff).unwrap();
        let t = d.decode_bytes(tiff.get_ref()).unwrap();
        assert_eq!(t.data, img.data);
        // A flat image becomes zeros, not NaN.
        let flat = d.decode_bytes(&png16(&[500; 256], None)).unwrap();
        assert!(flat.data.to_f32().iter().all(|&v| v == 0.0));
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

    /// A smooth 1000 x 700 RGB gradient (with a slow ripple) as a JPEG of quality 95.
    pub(crate) fn gradient_jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let ripple = 20.0 * ((x as f32 / 37.0).sin() * (y as f32 / 53.0).cos());
            image::Rgb([
                (30.0 + 190.0 * fx + ripple).clamp(0.0, 255.0) as u8,
                (40.0 + 170.0 * fy).clamp(0.0, 255.0) as u8,
                (200.0 - 150.0 * fx * fy - ripple).clamp(0.0, 255.0) as u8,
            ])
        });
        let mut buf = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 95).encode_image(&img).unwrap();
        buf
    }

    #[test]
    fn reduction_keeps_twice_the_target_on_both_axes() {
        assert_eq!(dct_reduction((1000, 700), (224, 224)), 1); // 500 x 350 < 448
        assert_eq!(dct_reduction((1000, 700), (100, 70)), 4); // 250 x 175 >= 200 x 140
        assert_eq!(dct_reduction((1776, 1416), (321, 256)), 2); // 888 x 708 >= 642 x 512
        assert_eq!(dct_reduction((1664, 1128), (377, 256)), 2); // 832 x 564 >= 754 x 512
        assert_eq!(dct_reduction((4000, 3000), (341, 256)), 4);
        assert_eq!(dct_reduction((8, 8), (1, 1)), 4); // 2 x 2 >= 2 x 2; 1 x 1 is not
        assert_eq!(dct_reduction((1000, 1000), (250, 250)), 2); // exactly twice: 500 >= 500
    }

    #[test]
    fn dct_mode_without_a_target_or_below_the_threshold_is_the_exact_decode() {
        let bytes = gradient_jpeg(1000, 700);
        let dct = Decoder { jpeg_scaling: JpegScaling::Dct, ..Decoder::default() };
        let exact = Decoder::default().decode_bytes(&bytes).unwrap();
        let no_target = dct.decode_bytes(&bytes).unwrap();
        let big = |_: u32, _: u32| (600usize, 400usize);
        let too_big = dct.decode_bytes_for(&bytes, Some(&big)).unwrap();
        assert_eq!((no_target.reduction, too_big.reduction), (1, 1));
        assert_eq!(no_target.data, exact.data);
        assert_eq!(too_big.data, exact.data);
    }

    #[test]
    fn corrupt_jpegs_are_clean_errors_in_dct_mode() {
        let bytes = gradient_jpeg(1000, 700);
        let dct = Decoder { jpeg_scaling: JpegScaling::Dct, ..Decoder::default() };
        let small = |_: u32, _: u32| (100usize, 70usize);
        // Header kept, entropy-coded data replaced by garbage, end marker kept.
        let sos = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let mut garbage = bytes[..sos + 20].to_vec();
        garbage.extend((0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 | 0x01));
        garbage.extend([0xFF, 0xD9]);
        // Truncated scan with an end marker appended (passes the truncation check).
        let mut cut = bytes[..bytes.len() / 3].to_vec();
        cut.extend([0xFF, 0xD9]);
        for (name, bad) in [("garbage", garbage), ("cut", cut)] {
            match dct.decode_bytes_for(&bad, Some(&small)) {
                Err(e) => {
                    let line = e.one_line();
                    eprintln!("{name}: {line}");
                    assert!(line.starts_with("cannot decode"), "{name}: {line}");
                }
                // jpeg-decoder, like zune-jpeg, may fill a damaged scan instead of failing;
                // the image must then still have the declared geometry.
                Ok(img) => {
                    eprintln!("{name}: decoded");
                    assert_eq!((img.original, img.reduction), ((1000, 700), 4), "{name}")
                }
            }
        }
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
