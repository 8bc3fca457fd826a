//! DICOM files to grey pixels in [0, 1], the way radiology viewers display them.
//!
//! A DICOM file's stored numbers are not brightness. The standard greyscale pipeline
//! (PS3.3 C.11, PS3.4 N.2) turns them into it in a fixed order:
//!
//! 1. stored value: the `BitsStored` bits below `HighBit`, sign-extended when
//!    `PixelRepresentation` is 1 (never the high byte of a 16-bit word);
//! 2. Modality LUT: `value * RescaleSlope + RescaleIntercept` (physical units, e.g. HU);
//! 3. VOI LUT: which range of those units is shown, from the first Window Center/Width
//!    (with its VOI LUT Function), else the VOI LUT Sequence, else the full range that
//!    `BitsStored` can hold after step 2; or a range the user configures
//!    ([`WindowChoice`]);
//! 4. presentation: `MONOCHROME1` (low values white) is inverted, so bone is bright as
//!    in `MONOCHROME2` and in the JPEG/PNG exports classifiers are trained on.
//!
//! dicom-rs parses the file and decompresses the pixel data (deflate, RLE, JPEG
//! baseline/extended/lossless, JPEG 2000); the LUT arithmetic is done here on the raw
//! stored values, in f64, so that its order and edge cases are explicit and tested.
//!
//! Privacy: besides the pixel-module attributes, only `PatientID`, `StudyInstanceUID`,
//! `SOPInstanceUID`, `PixelSpacing`/`ImagerPixelSpacing` and `NumberOfFrames` are read
//! ([`read_meta`]). dicom-rs's data set errors can quote an element's value (its
//! "unexpected token" error prints the token), so they are never formatted into a
//! message: errors are built from our own words, I/O error kinds and pixel-module errors.

use std::cell::Cell;
use std::io::ErrorKind;
use std::panic::AssertUnwindSafe;
use std::sync::Once;

use dicom_dictionary_std::tags;
use dicom_object::file::{OpenFileOptions, ReadPreamble};
use dicom_object::{DefaultDicomObject, FileMetaTable, Tag};
use dicom_pixeldata::{PhotometricInterpretation, PixelDecoder, PixelRepresentation, PlanarConfiguration};
use dicom_pixeldata::{VoiLutFunction, WindowLevel};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::options::WindowChoice;
use super::source::{ImageMeta, SourceImage, MIN_SIDE};
use crate::error::ImageError;

/// Bytes before the `DICM` magic in a DICOM file (PS3.10 7.1).
pub const PREAMBLE_LEN: usize = 128;
const MAGIC: &[u8; 4] = b"DICM";
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
const DEFLATED_VR_LE: &str = "1.2.840.10008.1.2.1.99";
/// Explicit VR Big Endian (retired): its lengths are not little-endian.
const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";

/// What the user chose about DICOM display.
#[derive(Debug, Clone, PartialEq)]
pub struct DicomOptions {
    pub window: WindowChoice,
    /// Rows x Columns above this is refused before any pixel is decompressed.
    pub max_pixels: u64,
    /// A deflated data set may not inflate beyond this (the file size limit).
    pub max_bytes: u64,
}

/// True when the bytes carry the 128-byte preamble and the `DICM` magic.
pub fn has_dicm_magic(bytes: &[u8]) -> bool {
    bytes.len() >= PREAMBLE_LEN + MAGIC.len() && &bytes[PREAMBLE_LEN..PREAMBLE_LEN + MAGIC.len()] == MAGIC
}

fn decode_err(msg: impl Into<String>) -> ImageError {
    ImageError::Decode(msg.into())
}

thread_local! {
    static IN_DICOM: Cell<bool> = const { Cell::new(false) };
}
static QUIET_PANICS: Once = Once::new();

/// Reads the first frame of a DICOM file as one grey channel (or RGB for colour files).
///
/// A panic inside dicom-rs becomes an error row whose reason does not quote the panic
/// message, and the panic hook prints a redacted line instead of it, because such a
/// message may hold an element's value.
pub fn read_dicom(bytes: &[u8], opts: &DicomOptions) -> Result<SourceImage, ImageError> {
    QUIET_PANICS.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_DICOM.with(Cell::get) {
                eprintln!("cambox: the DICOM decoder panicked (message withheld: it may quote patient data)");
            } else {
                previous(info)
            }
        }));
    });
    IN_DICOM.with(|f| f.set(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| read_dicom_unguarded(bytes, opts)));
    IN_DICOM.with(|f| f.set(false));
    result.unwrap_or_else(|_| Err(decode_err("DICOM decoder failed on this file (internal panic)")))
}

fn read_dicom_unguarded(bytes: &[u8], opts: &DicomOptions) -> Result<SourceImage, ImageError> {
    if !has_dicm_magic(bytes) {
        return Err(decode_err("not a DICOM file (no DICM preamble)"));
    }
    let body = &bytes[PREAMBLE_LEN..];
    // dicom-rs allocates and zero-fills a value's declared length before reading it: a
    // corrupt length field in a small file would cost up to 4 GiB per worker. With the
    // whole file in memory, a length that runs past its end is certainly wrong.
    // The meta group is always explicit VR little endian; where it ends, the data set
    // starts (unknown when the walk gave up: then dicom-rs alone judges the file).
    let data_set_at = check_lengths(body, MAGIC.len(), Vr::Explicit, true).map_err(overrun_error)?;
    let meta = FileMetaTable::from_reader(body)
        .map_err(|_| decode_err("DICOM file meta information (group 0002) is unreadable"))?;
    let ts_uid = printable_uid(meta.transfer_syntax());
    match (check_transfer_syntax(&ts_uid)?, data_set_at) {
        (Walk::Headers(vr), Some(at)) => {
            check_lengths(body, at, vr, false).map_err(overrun_error)?;
        }
        (Walk::Deflated, Some(at)) => {
            let data_set = inflate(&body[at..], opts.max_bytes)?;
            check_lengths(&data_set, 0, Vr::Explicit, false).map_err(overrun_error)?;
        }
        _ => {}
    }
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Never)
        .from_reader(body)
        .map_err(|e| open_error(&e, &ts_uid))?;
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(decode_err("DICOM file has no Pixel Data"));
    }
    let rows = int_attr(&obj, tags::ROWS).ok_or_else(|| decode_err("DICOM file has no valid Rows"))?;
    let cols = int_attr(&obj, tags::COLUMNS).ok_or_else(|| decode_err("DICOM file has no valid Columns"))?;
    if (rows as u64) * (cols as u64) > opts.max_pixels {
        return Err(ImageError::Refused(format!(
            "DICOM header claims {cols}x{rows} pixels, above the limit of {} pixels",
            opts.max_pixels
        )));
    }
    if rows < MIN_SIDE || cols < MIN_SIDE {
        return Err(ImageError::Refused(format!(
            "image is {cols}x{rows} pixels, below the minimum side of {MIN_SIDE}"
        )));
    }
    let meta = read_meta(&obj);
    let px = obj.decode_pixel_data_frame(0).map_err(|e| pixel_error(&e, &ts_uid))?;
    let (width, height) = (px.columns(), px.rows());
    let spp = px.samples_per_pixel() as usize;
    let format = SampleFormat {
        bits_allocated: px.bits_allocated(),
        bits_stored: px.bits_stored(),
        high_bit: px.high_bit(),
        signed: px.pixel_representation() == PixelRepresentation::Signed,
    };
    format.check()?;
    let samples = width as usize * height as usize * spp;
    let need = samples * format.bytes_per_sample();
    if px.data().len() < need {
        return Err(decode_err(format!(
            "DICOM pixel data truncated: frame 0 needs {need} bytes, only {} present",
            px.data().len()
        )));
    }
    let data = &px.data()[..need];
    let photometric = px.photometric_interpretation().clone();
    let pixels = match (spp, &photometric) {
        (1, PhotometricInterpretation::Monochrome1 | PhotometricInterpretation::Monochrome2) => {
            let pipeline = grey_pipeline(&px, &format, data, &opts.window, &photometric)?;
            (0..samples).map(|i| pipeline.pixel(format.read(data, i))).collect()
        }
        (3, PhotometricInterpretation::Rgb) => {
            rgb_pixels(data, &format, width as usize * height as usize, px.planar_configuration())
        }
        (n, pi) => {
            return Err(decode_err(format!(
                "DICOM photometric interpretation {} with {n} samples per pixel is not supported",
                pi.as_str().chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(32).collect::<String>()
            )))
        }
    };
    Ok(SourceImage::full(width, height, spp, pixels, format.bits_stored.min(u8::MAX as u16) as u8, meta))
}

/// Only characters a UID may hold; anything else is shown as `?` (the UID comes from
/// the file and ends up in a one-line error).
fn printable_uid(uid: &str) -> String {
    uid.chars().take(64).map(|c| if c.is_ascii_digit() || c == '.' { c } else { '?' }).collect()
}

/// How the data set can be checked by [`check_lengths`].
enum Walk {
    /// Little-endian element headers, as stored.
    Headers(Vr),
    /// Deflated Explicit VR Little Endian: inflated first.
    Deflated,
    /// Big endian (retired): left to dicom-rs.
    No,
}

/// Checks that dicom-rs can read and decode this transfer syntax.
fn check_transfer_syntax(uid: &str) -> Result<Walk, ImageError> {
    match TransferSyntaxRegistry.get(uid) {
        None => Err(decode_err(format!("DICOM transfer syntax {uid} (unknown) not supported"))),
        Some(ts) if !ts.can_decode_all() => {
            Err(decode_err(format!("DICOM transfer syntax {uid} ({}) not supported", ts.name())))
        }
        Some(_) if uid == IMPLICIT_VR_LE => Ok(Walk::Headers(Vr::Implicit)),
        Some(_) if uid == DEFLATED_VR_LE => Ok(Walk::Deflated),
        Some(ts) if uid != EXPLICIT_VR_BE && (ts.is_codec_free() || ts.is_encapsulated_pixel_data()) => {
            Ok(Walk::Headers(Vr::Explicit))
        }
        Some(_) => Ok(Walk::No),
    }
}

/// Inflates a deflated data set (raw deflate, PS3.5 A.5), refusing more than `cap` bytes:
/// a few kilobytes of deflate can claim gigabytes.
fn inflate(deflated: &[u8], cap: u64) -> Result<Vec<u8>, ImageError> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(deflated)
        .take(cap.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| decode_err(format!("DICOM deflated data set is corrupt: {}", e.kind())))?;
    if out.len() as u64 > cap {
        return Err(ImageError::Refused(format!("DICOM deflated data set inflates beyond the limit of {cap} bytes")));
    }
    Ok(out)
}

/// Why the data set could not be read, without quoting any element value.
fn open_error(e: &dicom_object::ReadError, ts_uid: &str) -> ImageError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return if io.kind() == ErrorKind::UnexpectedEof {
                decode_err("DICOM file truncated: it ends inside the data set")
            } else {
                decode_err(format!("DICOM data set unreadable: {}", io.kind()))
            };
        }
        source = s.source();
    }
    use dicom_object::ReadError as R;
    match e {
        R::ReadUnrecognizedTransferSyntax { .. } => {
            decode_err(format!("DICOM transfer syntax {ts_uid} (unknown) not supported"))
        }
        R::ReadUnsupportedTransferSyntax { name, .. } | R::ReadUnsupportedTransferSyntaxWithSuggestion { name, .. } => {
            decode_err(format!("DICOM transfer syntax {ts_uid} ({name}) not supported"))
        }
        _ => decode_err("DICOM data set unreadable: malformed element structure"),
    }
}

/// How element headers are encoded (PS3.5 7.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Vr {
    Explicit,
    Implicit,
    /// Inside encapsulated Pixel Data: only items (fragments), never descended into.
    Fragments,
}

/// An element whose defined length runs past the end of the file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Overrun {
    pub tag: (u16, u16),
    pub declared: u32,
    pub present: usize,
}

fn overrun_error(o: Overrun) -> ImageError {
    if o.tag == (0x7FE0, 0x0010) {
        decode_err(format!("DICOM pixel data truncated: element says {} bytes, only {} present", o.declared, o.present))
    } else {
        decode_err(format!(
            "DICOM element ({:04X},{:04X}) says {} bytes, only {} remain in the file (corrupt or truncated)",
            o.tag.0, o.tag.1, o.declared, o.present
        ))
    }
}

/// Walks the element headers of `b` from `pos` (descending into sequences and items,
/// skipping pixel fragments) and fails on the first defined length that runs past the
/// end. Returns where the walk stopped: the end, or with `meta_only` the first element
/// outside group 0002 (where the data set starts). Anything the walk does not understand
/// ends it with `None`, not an error: dicom-rs has the last word on structure.
pub(crate) fn check_lengths(b: &[u8], mut pos: usize, vr: Vr, meta_only: bool) -> Result<Option<usize>, Overrun> {
    const UNDEFINED: u32 = u32::MAX;
    // PS3.5 7.1.2: these VRs have a 16-bit length; every other one, unknown VRs included
    // (read as UN, as dicom-rs does), has 2 reserved bytes and a 32-bit length.
    const SHORT_VRS: [&[u8; 2]; 21] = [
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL", b"SS",
        b"ST", b"TM", b"UI", b"UL", b"US",
    ];
    /// Long VRs whose undefined-length content keeps the data set's encoding (UN's and
    /// unknown VRs' content is implicit VR, PS3.5 6.2.2).
    const LONG_VRS: [&[u8; 2]; 12] =
        [b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UR", b"UT", b"UV"];
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let fits = |tag, start: usize, len: u32| {
        let present = b.len().saturating_sub(start);
        if len as usize > present {
            Err(Overrun { tag, declared: len, present })
        } else {
            Ok(())
        }
    };
    // One entry per open undefined-length container: how its content is encoded.
    let mut stack = vec![vr];
    while pos + 8 <= b.len() {
        let tag = (u16_at(pos), u16_at(pos + 2));
        if meta_only && tag.0 != 0x0002 {
            return Ok(Some(pos));
        }
        let mode = *stack.last().expect("never empty");
        if tag.0 == 0xFFFE {
            let len = u32_at(pos + 4);
            match tag.1 {
                0xE000 if len == UNDEFINED => pos += 8,
                0xE000 => {
                    fits(tag, pos + 8, len)?;
                    pos += 8 + if mode == Vr::Fragments { len as usize } else { 0 };
                }
                0xE00D => pos += 8,
                0xE0DD => {
                    if stack.len() > 1 {
                        stack.pop();
                    }
                    pos += 8;
                }
                _ => return Ok(None),
            }
            continue;
        }
        let (explicit_vr, len, header) = match mode {
            Vr::Fragments => return Ok(None),
            Vr::Explicit => {
                let v = [b[pos + 4], b[pos + 5]];
                if SHORT_VRS.contains(&&v) {
                    (Some(v), u16_at(pos + 6) as u32, 8)
                } else if pos + 12 > b.len() {
                    return Ok(None);
                } else {
                    (Some(v), u32_at(pos + 8), 12)
                }
            }
            Vr::Implicit => (None, u32_at(pos + 4), 8),
        };
        if len == UNDEFINED {
            stack.push(match (tag, explicit_vr) {
                ((0x7FE0, 0x0010), _) => Vr::Fragments,
                (_, Some(v)) if !LONG_VRS.contains(&&v) => Vr::Implicit,
                _ => mode,
            });
            pos += header;
            continue;
        }
        fits(tag, pos + header, len)?;
        // Sequences are walked into (their items' lengths are checked too); in implicit
        // VR a sequence is recognised by its first item tag.
        let sequence = match explicit_vr {
            Some(v) => &v == b"SQ",
            None => len >= 8 && b[pos + 8..pos + 12] == [0xFE, 0xFF, 0x00, 0xE0],
        };
        pos += header + if sequence { 0 } else { len as usize };
    }
    Ok(Some(pos))
}

/// Pixel-module errors name attributes and codecs, never patient data: safe to quote.
fn pixel_error(e: &dicom_pixeldata::Error, ts_uid: &str) -> ImageError {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    let text: String = parts.join(": ").chars().filter(|c| !c.is_control()).take(300).collect();
    decode_err(format!("DICOM pixel data ({ts_uid}) cannot be decoded: {text}"))
}

fn int_attr(obj: &DefaultDicomObject, tag: Tag) -> Option<u32> {
    obj.get(tag)?.to_int::<u32>().ok()
}

fn str_attr(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let s = obj.get(tag)?.to_str().ok()?;
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn pair_attr(obj: &DefaultDicomObject, tag: Tag) -> Option<(f64, f64)> {
    let v = obj.get(tag)?.to_multi_float64().ok()?;
    match v[..] {
        [r, c, ..] if r.is_finite() && c.is_finite() && r > 0.0 && c > 0.0 => Some((r, c)),
        _ => None,
    }
}

/// The identifiers and facts cambox writes to `images.csv`; the only non-pixel
/// attributes read from the file. `ImagerPixelSpacing` (at the detector, not corrected
/// for geometric magnification) stands in when `PixelSpacing` is absent, as DX files
/// often carry only that.
pub fn read_meta(obj: &DefaultDicomObject) -> ImageMeta {
    ImageMeta {
        patient_id: str_attr(obj, tags::PATIENT_ID),
        study_uid: str_attr(obj, tags::STUDY_INSTANCE_UID),
        sop_instance_uid: str_attr(obj, tags::SOP_INSTANCE_UID),
        pixel_spacing: pair_attr(obj, tags::PIXEL_SPACING).or_else(|| pair_attr(obj, tags::IMAGER_PIXEL_SPACING)),
        frames: Some(int_attr(obj, tags::NUMBER_OF_FRAMES).filter(|&n| n > 0).unwrap_or(1)),
    }
}

/// How stored samples are laid out in their allocated bits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SampleFormat {
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub high_bit: u16,
    pub signed: bool,
}

impl SampleFormat {
    fn check(&self) -> Result<(), ImageError> {
        let ok = matches!(self.bits_allocated, 1 | 8 | 16 | 32)
            && self.bits_stored >= 1
            && self.bits_stored <= self.bits_allocated.max(8)
            && self.high_bit + 1 >= self.bits_stored
            && self.high_bit < self.bits_allocated.max(8);
        if ok {
            Ok(())
        } else {
            Err(decode_err(format!(
                "DICOM pixel layout not supported: BitsAllocated {}, BitsStored {}, HighBit {}",
                self.bits_allocated, self.bits_stored, self.high_bit
            )))
        }
    }

    /// dicom-rs expands 1-bit samples to one byte each.
    fn bytes_per_sample(&self) -> usize {
        (self.bits_allocated as usize).div_ceil(8)
    }

    /// The stored value of sample `i`: the `bits_stored` bits ending at `high_bit`,
    /// sign-extended for signed data. Other bits (overlays in old files) are dropped.
    fn read(&self, data: &[u8], i: usize) -> i64 {
        let raw = match self.bytes_per_sample() {
            1 => data[i] as u32,
            2 => u16::from_ne_bytes([data[2 * i], data[2 * i + 1]]) as u32,
            _ => u32::from_ne_bytes([data[4 * i], data[4 * i + 1], data[4 * i + 2], data[4 * i + 3]]),
        };
        self.value(raw)
    }

    pub(crate) fn value(&self, raw: u32) -> i64 {
        let shift = (self.high_bit + 1 - self.bits_stored) as u32;
        let bits = self.bits_stored as u32;
        let v = ((raw as u64 >> shift) & ((1u64 << bits) - 1)) as i64;
        if self.signed && v >= 1i64 << (bits - 1) {
            v - (1i64 << bits)
        } else {
            v
        }
    }

    /// The smallest and largest stored values `bits_stored` can hold.
    pub(crate) fn range(&self) -> (i64, i64) {
        let bits = self.bits_stored as u32;
        if self.signed {
            (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1)
        } else {
            (0, (1i64 << bits) - 1)
        }
    }
}

/// The VOI stage: modality values to [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Voi {
    /// Window Center/Width with its function (PS3.3 C.11.2.1.2 and C.11.2.1.3).
    Window { center: f64, width: f64, function: VoiLutFunction },
    /// VOI LUT Sequence: entry `x - first` (clamped), divided by the largest entry value.
    Table { first: i64, data: Vec<u16>, max: f64 },
    /// Linear from `lo` (0) to `hi` (1): min-max, or the BitsStored range.
    Range { lo: f64, hi: f64 },
}

impl Voi {
    pub(crate) fn apply(&self, x: f64) -> f64 {
        match *self {
            // LINEAR, the standard's C.11.2.1.2.1: `(x - (c - 0.5)) / (w - 1) + 0.5`
            // between `c - 0.5 -+ (w - 1) / 2`, clamped. Width 1 is a step at c - 0.5.
            Voi::Window { center: c, width: w, function: VoiLutFunction::Linear } => {
                if w <= 1.0 {
                    return if x <= c - 0.5 { 0.0 } else { 1.0 };
                }
                if x <= c - 0.5 - (w - 1.0) / 2.0 {
                    0.0
                } else if x > c - 0.5 + (w - 1.0) / 2.0 {
                    1.0
                } else {
                    (x - (c - 0.5)) / (w - 1.0) + 0.5
                }
            }
            // LINEAR_EXACT, C.11.2.1.3.2.
            Voi::Window { center: c, width: w, function: VoiLutFunction::LinearExact } => {
                ((x - c) / w + 0.5).clamp(0.0, 1.0)
            }
            // SIGMOID, C.11.2.1.3.1.
            Voi::Window { center: c, width: w, function: VoiLutFunction::Sigmoid } => {
                1.0 / (1.0 + (-4.0 * (x - c) / w).exp())
            }
            Voi::Table { first, ref data, max } => {
                let i = (x.round() as i64 - first).clamp(0, data.len() as i64 - 1) as usize;
                data[i] as f64 / max
            }
            Voi::Range { lo, hi } => {
                if hi > lo {
                    ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            }
        }
    }
}

/// Stored value -> modality LUT -> VOI -> MONOCHROME1 inversion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GreyPipeline {
    pub slope: f64,
    pub intercept: f64,
    pub voi: Voi,
    pub invert: bool,
}

impl GreyPipeline {
    pub(crate) fn pixel(&self, stored: i64) -> f32 {
        let modality = stored as f64 * self.slope + self.intercept;
        let v = self.voi.apply(modality);
        let v = if self.invert { 1.0 - v } else { v };
        v.clamp(0.0, 1.0) as f32
    }
}

/// Modality range of the stored values `lo..=hi` (an affine map, so its ends).
fn modality_range(lo: i64, hi: i64, slope: f64, intercept: f64) -> (f64, f64) {
    let (a, b) = (lo as f64 * slope + intercept, hi as f64 * slope + intercept);
    (a.min(b), a.max(b))
}

fn grey_pipeline(
    px: &dicom_pixeldata::DecodedPixelData<'_>,
    format: &SampleFormat,
    data: &[u8],
    choice: &WindowChoice,
    photometric: &PhotometricInterpretation,
) -> Result<GreyPipeline, ImageError> {
    let rescale = px.rescale().ok().and_then(|r| r.first().copied());
    let (slope, intercept) = rescale.map(|r| (r.slope, r.intercept)).unwrap_or((1.0, 0.0));
    if !(slope.is_finite() && intercept.is_finite() && slope != 0.0) {
        return Err(decode_err(format!("DICOM rescale slope {slope} / intercept {intercept} is not usable")));
    }
    let stored_range = || {
        let (lo, hi) = format.range();
        let (lo, hi) = modality_range(lo, hi, slope, intercept);
        Voi::Range { lo, hi }
    };
    let voi = match choice {
        WindowChoice::Fixed { center, width } => {
            Voi::Window { center: *center, width: *width, function: VoiLutFunction::Linear }
        }
        WindowChoice::MinMax => {
            let n = data.len() / format.bytes_per_sample();
            let (lo, hi) =
                (0..n).map(|i| format.read(data, i)).fold((i64::MAX, i64::MIN), |(a, b), v| (a.min(v), b.max(v)));
            let (lo, hi) = modality_range(lo, hi, slope, intercept);
            Voi::Range { lo, hi }
        }
        WindowChoice::Dicom => {
            let window: Option<WindowLevel> = px.window().ok().flatten().and_then(|w| w.first().copied());
            let function = px.voi_lut_function().ok().flatten().and_then(|f| f.first().copied()).unwrap_or_default();
            if let Some(w) = window {
                let min_width = if function == VoiLutFunction::Linear { 1.0 } else { f64::MIN_POSITIVE };
                if !(w.center.is_finite() && w.width.is_finite() && w.width >= min_width) {
                    return Err(decode_err(format!(
                        "DICOM window width {} is invalid (must be >= 1 for LINEAR, > 0 otherwise)",
                        w.width
                    )));
                }
                Voi::Window { center: w.center, width: w.width, function }
            } else if let Some(lut) = px.voi_lut_sequence().ok().flatten().and_then(|l| l.first()) {
                voi_table(lut.min_pixel_value as i64, lut.bits_stored, &lut.data).unwrap_or_else(stored_range)
            } else {
                stored_range()
            }
        }
    };
    Ok(GreyPipeline { slope, intercept, voi, invert: *photometric == PhotometricInterpretation::Monochrome1 })
}

/// A VOI LUT's output range: its declared bits per entry, unless every entry fits in
/// fewer (some CR devices declare 16 bits for 12-bit tables, which would show the image
/// as a near-black sixteenth of the range; dicom-rs makes the same correction).
pub(crate) fn voi_table(first: i64, declared_bits: u8, data: &[u16]) -> Option<Voi> {
    if data.is_empty() {
        return None;
    }
    let largest = *data.iter().max().expect("not empty");
    let used = 16 - largest.leading_zeros();
    let bits = if used == 0 || used > declared_bits as u32 { declared_bits as u32 } else { used };
    let max = ((1u64 << bits.clamp(1, 16)) - 1) as f64;
    Some(Voi::Table { first, data: data.to_vec(), max })
}

/// RGB samples scaled by their stored range (no VOI: it applies to greyscale only).
fn rgb_pixels(data: &[u8], format: &SampleFormat, pixels: usize, planar: PlanarConfiguration) -> Vec<f32> {
    let (lo, hi) = format.range();
    let scale = |v: i64| ((v - lo) as f64 / (hi - lo) as f64) as f32;
    (0..pixels * 3)
        .map(|k| {
            let (p, c) = (k / 3, k % 3);
            let i = match planar {
                PlanarConfiguration::Standard => k,
                PlanarConfiguration::PixelFirst => c * pixels + p,
            };
            scale(format.read(data, i))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsigned(allocated: u16, stored: u16) -> SampleFormat {
        SampleFormat { bits_allocated: allocated, bits_stored: stored, high_bit: stored - 1, signed: false }
    }

    #[test]
    fn stored_values_use_the_low_bits_stored_never_the_high_byte() {
        let f = unsigned(16, 12);
        // 4095 in a 16-bit word: the high byte would be 0x0F = 15.
        assert_eq!(f.value(4095), 4095);
        assert_eq!(f.range(), (0, 4095));
        // Bits above HighBit (an old overlay plane in bit 15) are dropped.
        assert_eq!(f.value(0x8000 | 1234), 1234);
        // 12 stored bits placed high (HighBit 15): shifted down.
        let high = SampleFormat { bits_allocated: 16, bits_stored: 12, high_bit: 15, signed: false };
        assert_eq!(high.value(0xFFF0), 4095);
        // Signed 12-bit: 0xFFF is -1, 0x800 is -2048.
        let s = SampleFormat { signed: true, ..f };
        assert_eq!((s.value(0xFFF), s.value(0x800), s.value(0x7FF)), (-1, -2048, 2047));
        assert_eq!(s.range(), (-2048, 2047));
        // A 12-bit white pixel through the no-window pipeline is 1.0, not 15/255.
        let p = GreyPipeline { slope: 1.0, intercept: 0.0, voi: Voi::Range { lo: 0.0, hi: 4095.0 }, invert: false };
        assert_eq!(p.pixel(f.value(4095)), 1.0);
        assert_eq!(p.pixel(f.value(2048)), (2048.0f64 / 4095.0) as f32);
    }

    #[test]
    fn sample_bytes_are_read_in_native_order() {
        let f = unsigned(16, 12);
        let data: Vec<u8> = [7u16, 4095, 300].iter().flat_map(|v| v.to_ne_bytes()).collect();
        assert_eq!((0..3).map(|i| f.read(&data, i)).collect::<Vec<_>>(), vec![7, 4095, 300]);
        let one_bit = SampleFormat { bits_allocated: 1, bits_stored: 1, high_bit: 0, signed: false };
        // dicom-rs expands bits to 0/255 bytes.
        assert_eq!((one_bit.read(&[0, 255], 0), one_bit.read(&[0, 255], 1)), (0, 1));
    }

    #[test]
    fn rescale_comes_before_the_window() {
        // rescale_slope_intercept.dcm: s in 0..4095, m = 2s - 1024, window 3071/8191.
        let p = GreyPipeline {
            slope: 2.0,
            intercept: -1024.0,
            voi: Voi::Window { center: 3071.0, width: 8191.0, function: VoiLutFunction::Linear },
            invert: false,
        };
        // m = -1024 is just above the bottom edge c - 0.5 - (w-1)/2 = -1024.5:
        // (−1024 − 3070.5) / 8190 + 0.5 = 0.5 / 8190.
        assert!((p.pixel(0) as f64 - 0.5 / 8190.0).abs() < 1e-9);
        assert_eq!(p.pixel(-1), 0.0);
        // m = 7166: (7166 − 3070.5) / 8190 + 0.5 = 1.000061 -> clamped to 1.
        assert_eq!(p.pixel(4095), 1.0);
        // s = 2048: m = 3072, (3072 − 3070.5) / 8190 + 0.5 = 0.500183.
        assert!((p.pixel(2048) as f64 - 0.500_183_150).abs() < 1e-6);
    }

    #[test]
    fn linear_window_edges_follow_the_standard() {
        let w = Voi::Window { center: 2000.0, width: 2000.0, function: VoiLutFunction::Linear };
        // Bottom edge c - 0.5 - (w-1)/2 = 1000: 0; top edge c - 0.5 + (w-1)/2 = 2999: 1.
        assert_eq!(w.apply(1000.0), 0.0);
        assert_eq!(w.apply(999.0), 0.0);
        assert!((w.apply(1001.0) - 1.0 / 1999.0).abs() < 1e-12);
        assert_eq!(w.apply(2999.0), 1.0);
        assert_eq!(w.apply(3000.0), 1.0);
        // The centre is not exactly 0.5 in LINEAR: (2000 − 1999.5) / 1999 + 0.5.
        assert!((w.apply(2000.0) - (0.5 / 1999.0 + 0.5)).abs() < 1e-12);
        // Width 1 is a threshold at c - 0.5.
        let step = Voi::Window { center: 10.0, width: 1.0, function: VoiLutFunction::Linear };
        assert_eq!((step.apply(9.5), step.apply(9.6)), (0.0, 1.0));
        // LINEAR_EXACT: (x - c) / w + 0.5.
        let exact = Voi::Window { center: 100.0, width: 50.0, function: VoiLutFunction::LinearExact };
        assert_eq!(
            (exact.apply(75.0), exact.apply(100.0), exact.apply(125.0), exact.apply(200.0)),
            (0.0, 0.5, 1.0, 1.0)
        );
        let sig = Voi::Window { center: 100.0, width: 50.0, function: VoiLutFunction::Sigmoid };
        assert_eq!(sig.apply(100.0), 0.5);
        assert!((sig.apply(125.0) - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-12);
    }

    #[test]
    fn monochrome1_is_inverted_after_the_voi() {
        // mono1_inverted.dcm: stored = 4095 - round(P * 4095 / 255), no window.
        let p = GreyPipeline { slope: 1.0, intercept: 0.0, voi: Voi::Range { lo: 0.0, hi: 4095.0 }, invert: true };
        assert_eq!(p.pixel(4095), 0.0);
        assert_eq!(p.pixel(0), 1.0);
        assert!((p.pixel(4095 - 1606) - 100.0 / 255.0).abs() < 1e-3); // round(100*4095/255) = 1606
                                                                      // With a window, the window sees the raw values and the inversion comes last.
        let w = GreyPipeline {
            slope: 1.0,
            intercept: 0.0,
            voi: Voi::Window { center: 2000.0, width: 2000.0, function: VoiLutFunction::Linear },
            invert: true,
        };
        assert_eq!((w.pixel(999), w.pixel(3500)), (1.0, 0.0));
    }

    #[test]
    fn ranges_and_tables() {
        // A negative slope swaps the ends of the range.
        assert_eq!(modality_range(0, 4095, -1.0, 100.0), (-3995.0, 100.0));
        let r = Voi::Range { lo: -1024.0, hi: 3071.0 };
        assert_eq!((r.apply(-1024.0), r.apply(3071.0), r.apply(5000.0)), (0.0, 1.0, 1.0));
        assert_eq!(Voi::Range { lo: 5.0, hi: 5.0 }.apply(5.0), 0.0, "a flat image is 0, not NaN");
        // A table declared 16-bit holding 12-bit entries is scaled by 4095.
        let t = voi_table(100, 16, &[0, 1000, 4095]).unwrap();
        assert_eq!((t.apply(50.0), t.apply(101.0), t.apply(102.0), t.apply(900.0)), (0.0, 1000.0 / 4095.0, 1.0, 1.0));
        // Entries that use the declared 8 bits are scaled by 255.
        let t8 = voi_table(0, 8, &[0, 255]).unwrap();
        assert_eq!(t8.apply(1.0), 1.0);
    }

    /// An explicit-VR element: tag, VR, value.
    fn el(group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut v = [group.to_le_bytes(), elem.to_le_bytes()].concat();
        v.extend_from_slice(vr);
        if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
            v.extend_from_slice(&[0, 0]);
            v.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            v.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        v.extend_from_slice(value);
        v
    }

    #[test]
    fn lengths_past_the_end_of_the_file_are_caught_before_parsing() {
        let item =
            |content: &[u8]| [&[0xFE, 0xFF, 0x00, 0xE0][..], &(content.len() as u32).to_le_bytes(), content].concat();
        let name = el(0x0010, 0x0010, b"PN", b"Doe^John");
        let seq = el(0x0008, 0x1110, b"SQ", &item(&el(0x0008, 0x1150, b"UI", b"1.2")));
        let pixels = el(0x7FE0, 0x0010, b"OB", &[7u8; 64]);
        let good = [name.clone(), seq.clone(), pixels.clone()].concat();
        assert_eq!(check_lengths(&good, 0, Vr::Explicit, false), Ok(Some(good.len())));
        // Pixel Data cut short.
        let cut = &good[..good.len() - 24];
        let o = check_lengths(cut, 0, Vr::Explicit, false).unwrap_err();
        assert_eq!(o, Overrun { tag: (0x7FE0, 0x0010), declared: 64, present: 40 });
        assert_eq!(
            overrun_error(o).to_string(),
            "cannot decode: DICOM pixel data truncated: element says 64 bytes, only 40 present"
        );
        // A corrupt length inside a sequence item (a 4 GiB allocation for dicom-rs).
        let mut bad = good.clone();
        let at = name.len() + 12 + 8 + 6; // the length of the UI element inside the item
        bad[at] = 0xFF;
        assert!(check_lengths(&bad, 0, Vr::Explicit, false).is_err());
        let mut huge = good.clone();
        huge[name.len() + 8..name.len() + 12].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        let o = check_lengths(&huge, 0, Vr::Explicit, false).unwrap_err();
        assert_eq!((o.tag, o.declared), ((0x0008, 0x1110), 0xFFFF_FFF0));
        assert!(overrun_error(o).to_string().contains("element (0008,1110) says 4294967280 bytes"));
        // Encapsulated pixel data: fragments are skipped, their lengths checked.
        let mut enc = [0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF].to_vec();
        enc.extend(item(&[]));
        enc.extend(item(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0x7F])); // fragment bytes that look like a tag
        enc.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        assert_eq!(check_lengths(&enc, 0, Vr::Explicit, false), Ok(Some(enc.len())));
        // Implicit VR: 4-byte lengths, sequences found by their first item.
        let imp = |g: u16, e: u16, v: &[u8]| {
            [&g.to_le_bytes()[..], &e.to_le_bytes(), &(v.len() as u32).to_le_bytes(), v].concat()
        };
        let inner = imp(0x0008, 0x1150, b"1.2");
        let f = [imp(0x0010, 0x0010, b"Doe^John"), imp(0x0008, 0x1110, &item(&inner))].concat();
        assert_eq!(check_lengths(&f, 0, Vr::Implicit, false), Ok(Some(f.len())));
        let mut g = f.clone();
        let l = g.len();
        g[l - 7] = 0x7F; // the inner element's length
        assert!(check_lengths(&g, 0, Vr::Implicit, false).is_err());
        // meta_only stops at the first element outside group 0002.
        let meta = [el(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2\0"), name].concat();
        assert_eq!(check_lengths(&meta, 0, Vr::Explicit, true), Ok(Some(26)));
    }

    #[test]
    fn rgb_is_scaled_by_its_stored_range_in_either_planar_configuration() {
        let f = unsigned(8, 8);
        // Two pixels: (255, 0, 51) and (0, 102, 255).
        let interleaved = [255u8, 0, 51, 0, 102, 255];
        let planar = [255u8, 0, 0, 102, 51, 255];
        let want = [1.0, 0.0, 0.2, 0.0, 0.4, 1.0];
        assert_eq!(rgb_pixels(&interleaved, &f, 2, PlanarConfiguration::Standard), want);
        assert_eq!(rgb_pixels(&planar, &f, 2, PlanarConfiguration::PixelFirst), want);
        let twelve: Vec<u8> = [4095u16, 0, 0].iter().flat_map(|v| v.to_ne_bytes()).collect();
        assert_eq!(rgb_pixels(&twelve, &unsigned(16, 12), 1, PlanarConfiguration::Standard), [1.0, 0.0, 0.0]);
    }

    #[test]
    fn deflated_data_sets_are_capped() {
        use std::io::Write;
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 1 << 20]).unwrap();
        let small = enc.finish().unwrap();
        assert!(small.len() < 2048, "1 MiB of zeros deflates to {} bytes", small.len());
        assert_eq!(inflate(&small, 1 << 20).unwrap().len(), 1 << 20);
        let e = inflate(&small, 1000).unwrap_err().to_string();
        assert_eq!(e, "refused: DICOM deflated data set inflates beyond the limit of 1000 bytes");
        assert!(inflate(b"\xff\xff\xff not deflate", 1000).unwrap_err().to_string().contains("corrupt"));
    }

    #[test]
    fn magic_and_uids() {
        let mut b = vec![0u8; 128];
        assert!(!has_dicm_magic(&b));
        b.extend_from_slice(b"DICM");
        assert!(has_dicm_magic(&b));
        assert_eq!(printable_uid("1.2.840\n<x>"), "1.2.840????");
    }
}
