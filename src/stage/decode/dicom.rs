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
//! dicom-rs parses the file and decompresses the pixel data (RLE, 8-bit JPEG
//! baseline/extended/lossless, JPEG 2000, and JPEG-LS with the `jpeg-ls` feature); the
//! LUT arithmetic is done here on the raw stored values, in f64, so that its order and
//! edge cases are explicit and tested. What dicom-rs does not do for the files real
//! archives hold is done here, and each is checked against pydicom on a fixture:
//!
//! - bounded reading (`walk`): every length is checked against the file before
//!   dicom-rs allocates it, big endian included, and undefined-length UN sequences are
//!   handed over as opaque values (dicom-rs would read their implicit-VR content as
//!   explicit and allocate an item tag's worth, 3.75 GB); compressed frames whose own
//!   header claims more pixels than the DICOM header are refused; deflate is inflated
//!   here within the file size limit;
//! - files without preamble and `DICM` (ACR-NEMA style) are read as bare data sets when
//!   they start like one, and a meta group with a missing or wrong group length is read
//!   by its tags, as pydicom does;
//! - 12-bit JPEG (`jpeg12`) and uncompressed `YBR_FULL`/`YBR_FULL_422` (`ybr_to_rgb`)
//!   are decoded here and put back into the object as native samples (`transcode`).
//!
//! Privacy: besides the pixel-module attributes, only `PatientID`, `StudyInstanceUID`,
//! `SOPInstanceUID`, `PixelSpacing`/`ImagerPixelSpacing` and `NumberOfFrames` are read
//! ([`read_meta`]). dicom-rs's data set errors can quote an element's value (its
//! "unexpected token" error prints the token), so they are never formatted into a
//! message: errors are built from our own words, I/O error kinds and pixel-module errors.

use cambox_jpeg12 as jpeg12;
mod walk;

use std::borrow::Cow;
use std::cell::Cell;
use std::io::ErrorKind;
use std::panic::AssertUnwindSafe;
use std::sync::Once;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, FileMetaTable, FileMetaTableBuilder, InMemDicomObject, Tag};
use dicom_pixeldata::{PhotometricInterpretation, PixelDecoder, PixelRepresentation, PlanarConfiguration};
use dicom_pixeldata::{VoiLutFunction, WindowLevel};
use dicom_transfer_syntax_registry::{TransferSyntax, TransferSyntaxIndex, TransferSyntaxRegistry};

use super::options::WindowChoice;
use super::source::{ImageMeta, SourceImage, MIN_SIDE};
use crate::error::ImageError;
use walk::{check_lengths, Order, Overrun, Vr, WalkError};

/// Bytes before the `DICM` magic in a DICOM file (PS3.10 7.1).
pub const PREAMBLE_LEN: usize = 128;
const MAGIC: &[u8; 4] = b"DICM";
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// Explicit VR Big Endian (retired): its tags and lengths are big endian.
const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";
/// JPEG Baseline (process 1) and Extended (processes 2 and 4): the two that may hold
/// the 12-bit streams [`jpeg12`] decodes (Baseline only by mistake).
const JPEG_DCT_SYNTAXES: [&str; 2] = ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"];
/// JPEG-LS Lossless and Near-Lossless: decoded by CharLS (C++) with the `jpeg-ls` feature.
const JPEG_LS_SYNTAXES: [&str; 2] = ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"];
/// JPEG 2000 codestreams start with SOC then SIZ (ISO 15444-1 A.5); a JP2 file wraps
/// one after its header boxes, within this many bytes in practice.
const J2K_SOC_SIZ: [u8; 4] = [0xFF, 0x4F, 0xFF, 0x51];
const J2K_SEARCH_BYTES: usize = 4096;

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
    let (mut obj, ts_uid) = open(bytes, opts)?;
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
    let spp = check_layout(&obj)?;
    let meta = read_meta(&obj);
    check_codestream(&obj, (cols, rows, spp))?;
    transcode(&mut obj, &ts_uid, (cols, rows), meta.frames.unwrap_or(1))?;
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
                printable(pi.as_str())
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

/// A short code string from the file (a photometric interpretation), safe for one line.
fn printable(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(32).collect()
}

/// The data set with its meta information, and the transfer syntax UID (printable).
///
/// A file with the preamble and `DICM` is read as PS3.10 says. A file without them is
/// read as a bare data set when it starts like one ([`walk::sniff_bare_data_set`]:
/// ACR-NEMA files and data sets written without the file format, which pydicom reads
/// with `force=True`), in the encoding its first element shows; anything else is not
/// DICOM. Either way every length is checked against the bytes before dicom-rs reads
/// them ([`walk`]).
fn open(bytes: &[u8], opts: &DicomOptions) -> Result<(DefaultDicomObject, String), ImageError> {
    if has_dicm_magic(bytes) {
        return open_part10(&bytes[PREAMBLE_LEN..], opts);
    }
    let Some((vr, order)) = walk::sniff_bare_data_set(bytes) else {
        return Err(decode_err("not a DICOM file (no DICM preamble)"));
    };
    let ts_uid = match (vr, order) {
        (_, Order::Big) => EXPLICIT_VR_BE,
        (Vr::Implicit, _) => IMPLICIT_VR_LE,
        _ => EXPLICIT_VR_LE,
    };
    let obj = read_data_set(Cow::Borrowed(bytes), vr, order, ts_uid)?;
    // SOP Class and Instance UIDs come from the data set when it has them.
    let obj = obj
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(ts_uid))
        .map_err(|_| decode_err("DICOM data set without file meta information is unreadable"))?;
    Ok((obj, ts_uid.to_string()))
}

/// PS3.10 file: `DICM`, the meta group, the data set.
fn open_part10(body: &[u8], opts: &DicomOptions) -> Result<(DefaultDicomObject, String), ImageError> {
    let meta_unreadable = || decode_err("DICOM file meta information (group 0002) is unreadable");
    // The meta group is always explicit VR little endian; where it ends, the data set
    // starts.
    let meta_end = match check_lengths(body, MAGIC.len(), Vr::Explicit, Order::Little, true) {
        Ok(w) => w.end,
        Err(WalkError::Overrun(o)) => return Err(overrun_error(o)),
        Err(WalkError::Malformed { .. }) => return Err(meta_unreadable()),
    };
    let meta_bytes = walk::normalised_meta(MAGIC, &body[MAGIC.len()..meta_end]);
    let meta = FileMetaTable::from_reader(&meta_bytes[..]).map_err(|_| meta_unreadable())?;
    let ts_uid = printable_uid(meta.transfer_syntax());
    let ts = decodable_transfer_syntax(&ts_uid)?;
    let rest = &body[meta_end..];
    // Deflated data sets (a data set codec, no pixel codec) are inflated here, within
    // the file size limit: dicom-rs would inflate without one.
    let deflated = !ts.is_codec_free() && !ts.is_encapsulated_pixel_data();
    let (data, vr, order) = if deflated {
        (Cow::Owned(inflate(rest, opts.max_bytes)?), Vr::Explicit, Order::Little)
    } else if ts_uid == EXPLICIT_VR_BE {
        (Cow::Borrowed(rest), Vr::Explicit, Order::Big)
    } else if ts_uid == IMPLICIT_VR_LE {
        (Cow::Borrowed(rest), Vr::Implicit, Order::Little)
    } else {
        (Cow::Borrowed(rest), Vr::Explicit, Order::Little)
    };
    // pydicom's leniency, which real archives need: when the first element of the data
    // set is encoded with the other VR kind than the transfer syntax says (an implicit
    // data set under a JPEG syntax, pydicom's SC_rgb_jpeg.dcm), read it as found.
    let vr = match (order, data.get(4..6)) {
        (Order::Little, Some(v)) if data[..2] != [0xFE, 0xFF] => {
            if walk::looks_like_vr(v) {
                Vr::Explicit
            } else {
                Vr::Implicit
            }
        }
        _ => vr,
    };
    let obj = read_data_set(data, vr, order, &ts_uid)?;
    Ok((obj.with_exact_meta(meta), ts_uid))
}

/// Checks every length of the data set against its bytes, then has dicom-rs parse it.
fn read_data_set(data: Cow<'_, [u8]>, vr: Vr, order: Order, ts_uid: &str) -> Result<InMemDicomObject, ImageError> {
    let walked = match check_lengths(&data, 0, vr, order, false) {
        Ok(w) => w,
        Err(WalkError::Overrun(o)) => return Err(overrun_error(o)),
        Err(WalkError::Malformed { .. }) => {
            return Err(decode_err("DICOM data set unreadable: malformed element structure"))
        }
    };
    let data = walk::patch_opaque(data, &walked.opaque, order);
    let encoding = match (vr, order) {
        (_, Order::Big) => EXPLICIT_VR_BE,
        (Vr::Implicit, _) => IMPLICIT_VR_LE,
        _ => EXPLICIT_VR_LE,
    };
    let ts = TransferSyntaxRegistry.get(encoding).expect("the registry knows the uncompressed syntaxes");
    InMemDicomObject::read_dataset_with_ts(&data[..], ts).map_err(|e| open_error(&e, ts_uid))
}

/// The transfer syntax, when dicom-rs (with this build's features) can decode it.
fn decodable_transfer_syntax(uid: &str) -> Result<&'static TransferSyntax, ImageError> {
    match TransferSyntaxRegistry.get(uid) {
        None => Err(decode_err(format!("DICOM transfer syntax {uid} (unknown) not supported"))),
        Some(ts) if ts.can_decode_all() => Ok(ts),
        Some(ts) if JPEG_LS_SYNTAXES.contains(&uid) => Err(decode_err(format!(
            "DICOM transfer syntax {uid} ({}) needs cambox built with the `jpeg-ls` feature \
             (cargo build --release --features jpeg-ls)",
            ts.name()
        ))),
        Some(ts) => Err(decode_err(format!("DICOM transfer syntax {uid} ({}) not supported", ts.name()))),
    }
}

/// Refuses sample layouts before any pixel is decoded: dicom-rs sizes its output by
/// Rows x Columns x SamplesPerPixel x BitsAllocated, so these two must be what a
/// decoder can produce (the pixel limit covers the rest).
fn check_layout(obj: &DefaultDicomObject) -> Result<u32, ImageError> {
    let spp = match obj.get(tags::SAMPLES_PER_PIXEL) {
        None => 1,
        Some(e) => e
            .to_int::<u32>()
            .ok()
            .filter(|n| matches!(n, 1 | 3))
            .ok_or_else(|| decode_err("DICOM SamplesPerPixel is not supported (1 or 3 expected)"))?,
    };
    if let Some(e) = obj.get(tags::BITS_ALLOCATED) {
        let bits = e.to_int::<u32>().ok();
        if !matches!(bits, Some(1 | 8 | 16 | 32)) {
            return Err(decode_err("DICOM BitsAllocated is not supported (1, 8, 16 or 32 expected)"));
        }
    }
    Ok(spp)
}

/// The first fragment of encapsulated Pixel Data (where a frame's codestream header
/// is), `None` for native pixel data.
fn first_fragment(obj: &DefaultDicomObject) -> Option<&[u8]> {
    let value = obj.get(tags::PIXEL_DATA)?.value();
    value.fragments()?.first().map(|f| &f[..])
}

/// JPEG, JPEG-LS and JPEG 2000 decoders size their output by the codestream's own
/// header, not the DICOM one the pixel limit was checked on: a codestream that claims
/// more samples than Columns x Rows x SamplesPerPixel is refused before it is decoded
/// (a 2 KB fragment can claim 65535 x 65535 pixels).
fn check_codestream(obj: &DefaultDicomObject, (cols, rows, spp): (u32, u32, u32)) -> Result<(), ImageError> {
    let Some(fragment) = first_fragment(obj) else { return Ok(()) };
    let claimed = if let Some(h) = jpeg12::frame_header(fragment) {
        Some(("JPEG", h.width as u64, h.height as u64, h.components as u64))
    } else {
        j2k_size(fragment).map(|(w, h, c)| ("JPEG 2000", w, h, c))
    };
    match claimed {
        Some((kind, w, h, c)) if w * h * c > cols as u64 * rows as u64 * spp as u64 => Err(decode_err(format!(
            "DICOM {kind} codestream claims {w}x{h} pixels x {c} components, more than the header's \
             {cols}x{rows} x {spp}"
        ))),
        _ => Ok(()),
    }
}

/// Width, height and components of a JPEG 2000 codestream (SIZ: Xsiz - XOsiz,
/// Ysiz - YOsiz, Csiz), when its header is found.
fn j2k_size(b: &[u8]) -> Option<(u64, u64, u64)> {
    let head = &b[..b.len().min(J2K_SEARCH_BYTES)];
    let at = head.windows(4).position(|w| w == J2K_SOC_SIZ)? + 4;
    let siz = b.get(at..at + 38)?;
    let u32_at = |i: usize| u32::from_be_bytes([siz[i], siz[i + 1], siz[i + 2], siz[i + 3]]) as u64;
    let (x, y, x0, y0) = (u32_at(4), u32_at(8), u32_at(12), u32_at(16));
    let c = u16::from_be_bytes([siz[36], siz[37]]) as u64;
    Some((x.saturating_sub(x0), y.saturating_sub(y0), c))
}

/// Pixel data dicom-rs cannot decode is decoded here and put back as native samples
/// (Explicit VR Little Endian), so that the rest of the pipeline (and dicom-rs's
/// attribute handling) is the same for every file:
///
/// - 12-bit JPEG ([`jpeg12`]; dicom-rs's jpeg-decoder reads only 8-bit DCT JPEG);
/// - uncompressed `YBR_FULL_422` and `YBR_FULL` ([`ybr_to_rgb`]; dicom-rs sizes a
///   4:2:2 frame as if it had three samples per pixel and finds it short).
fn transcode(
    obj: &mut DefaultDicomObject,
    ts_uid: &str,
    (cols, rows): (u32, u32),
    frames: u32,
) -> Result<(), ImageError> {
    let fail = |e: &dyn std::fmt::Display| decode_err(format!("DICOM pixel data ({ts_uid}) cannot be decoded: {e}"));
    if JPEG_DCT_SYNTAXES.contains(&ts_uid) {
        let twelve =
            first_fragment(obj).and_then(jpeg12::frame_header).is_some_and(|h| h.precision == jpeg12::PRECISION);
        if !twelve {
            return Ok(());
        }
        if int_attr(obj, tags::BITS_ALLOCATED) != Some(16) {
            return Err(fail(&"12-bit JPEG needs BitsAllocated 16"));
        }
        let samples = {
            let frame = first_frame_codestream(obj, frames)?;
            jpeg12::decode(&frame, cols, rows).map_err(|e| fail(&e))?
        };
        let bytes: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
        set_native_pixels(obj, bytes, VR::OW);
        return Ok(());
    }
    let photometric = str_attr(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    let subsampled = match photometric.as_str() {
        "YBR_FULL_422" => true,
        "YBR_FULL" => false,
        _ => return Ok(()),
    };
    let native = TransferSyntaxRegistry.get(ts_uid).is_some_and(|ts| ts.is_codec_free());
    if !native || first_fragment(obj).is_some() {
        return Ok(()); // compressed YBR: the codec converts it (JPEG) or dicom-rs does
    }
    if int_attr(obj, tags::BITS_ALLOCATED) != Some(8) {
        return Err(fail(&format!("{photometric} is only supported with BitsAllocated 8")));
    }
    if subsampled && !cols.is_multiple_of(2) {
        return Err(fail(&"YBR_FULL_422 with an odd number of columns has no 4:2:2 pairing"));
    }
    let planar = int_attr(obj, tags::PLANAR_CONFIGURATION).unwrap_or(0) == 1;
    let pixels = cols as usize * rows as usize;
    let rgb = {
        let stored = obj.get(tags::PIXEL_DATA).expect("checked by the caller").to_bytes().map_err(|e| fail(&e))?;
        ybr_to_rgb(&stored, pixels, cols as usize, subsampled, planar).ok_or_else(|| {
            decode_err(format!("DICOM pixel data truncated: frame 0 of {photometric} needs more bytes than present"))
        })?
    };
    set_native_pixels(obj, rgb, VR::OB);
    obj.put(DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB"));
    obj.put(DataElement::new(tags::PLANAR_CONFIGURATION, VR::US, PrimitiveValue::from(0u16)));
    Ok(())
}

/// Replaces Pixel Data by the native samples of frame 0 alone.
fn set_native_pixels(obj: &mut DefaultDicomObject, bytes: Vec<u8>, vr: VR) {
    obj.put(DataElement::new(tags::PIXEL_DATA, vr, PrimitiveValue::from(bytes)));
    if obj.get(tags::NUMBER_OF_FRAMES).is_some() {
        obj.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, "1"));
    }
    obj.meta_mut().transfer_syntax = EXPLICIT_VR_LE.to_string();
}

/// The codestream of frame 0 of encapsulated Pixel Data (PS3.5 A.4): all fragments of
/// a single-frame file; else the fragments before the second Basic Offset Table
/// entry, or the first fragment when there is one per frame, or the fragments up to
/// the one that ends with an EOI marker.
fn first_frame_codestream(obj: &DefaultDicomObject, frames: u32) -> Result<Cow<'_, [u8]>, ImageError> {
    let value = obj.get(tags::PIXEL_DATA).expect("checked by the caller").value();
    let fragments = value
        .fragments()
        .filter(|f| !f.is_empty())
        .ok_or_else(|| decode_err("DICOM pixel data is not encapsulated, as its transfer syntax requires"))?;
    let joined = |n: usize| -> Cow<'_, [u8]> {
        if n == 1 {
            Cow::Borrowed(&fragments[0][..])
        } else {
            Cow::Owned(fragments[..n].concat())
        }
    };
    if frames <= 1 {
        return Ok(joined(fragments.len()));
    }
    if fragments.len() == frames as usize {
        return Ok(joined(1));
    }
    let offsets = value.offset_table().unwrap_or(&[]);
    let count = if offsets.len() >= 2 {
        // Each fragment takes its 8-byte item header plus its length.
        let mut at = 0u64;
        fragments
            .iter()
            .take_while(|f| {
                let inside = at < offsets[1] as u64;
                at += 8 + f.len() as u64;
                inside
            })
            .count()
    } else {
        let ends = |f: &Vec<u8>| f[f.len().saturating_sub(4)..].windows(2).any(|w| w == [0xFF, 0xD9]);
        fragments.iter().position(ends).map_or(fragments.len(), |i| i + 1)
    };
    Ok(joined(count.max(1)))
}

/// PS3.3 C.7.6.3.1.2 YBR_FULL (and its 4:2:2 form: Y1 Y2 Cb Cr for each pair of
/// pixels on a row, the pair sharing Cb and Cr) to RGB, 8 bits, the way pydicom's
/// `convert_color_space` does it: in f32, `round` as floor(x + 0.5), clipped to 0..255.
/// `None` when the bytes hold less than one frame.
pub(crate) fn ybr_to_rgb(b: &[u8], pixels: usize, cols: usize, subsampled: bool, planar: bool) -> Option<Vec<u8>> {
    // pydicom's matrix, its float64 products rounded to float32 as numpy does.
    const G_CB: f32 = (-0.114 * 1.772 / 0.587) as f32;
    const G_CR: f32 = (-0.299 * 1.402 / 0.587) as f32;
    const R_CR: f32 = 1.402;
    const B_CB: f32 = 1.772;
    let to_u8 = |v: f32| (v + 0.5).floor().clamp(0.0, 255.0) as u8;
    let convert = |y: u8, cb: u8, cr: u8| {
        let (y, cb, cr) = (y as f32, cb as f32 - 128.0, cr as f32 - 128.0);
        [to_u8(y + cr * R_CR), to_u8(y + cb * G_CB + cr * G_CR), to_u8(y + cb * B_CB)]
    };
    let mut out = Vec::with_capacity(pixels * 3);
    if subsampled {
        // Pairs run along rows: an odd number of columns (which PS3.3 does not allow
        // with 4:2:2) has no pairing.
        if !cols.is_multiple_of(2) || b.len() < pixels * 2 {
            return None;
        }
        for q in b[..pixels * 2].chunks_exact(4) {
            out.extend(convert(q[0], q[2], q[3]));
            out.extend(convert(q[1], q[2], q[3]));
        }
    } else {
        if b.len() < pixels * 3 {
            return None;
        }
        for p in 0..pixels {
            let (y, cb, cr) =
                if planar { (b[p], b[pixels + p], b[2 * pixels + p]) } else { (b[3 * p], b[3 * p + 1], b[3 * p + 2]) };
            out.extend(convert(y, cb, cr));
        }
    }
    Some(out)
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

    #[test]
    fn overruns_are_reported_in_cambox_words() {
        let o = Overrun { tag: (0x7FE0, 0x0010), declared: 64, present: 40 };
        assert_eq!(
            overrun_error(o).to_string(),
            "cannot decode: DICOM pixel data truncated: element says 64 bytes, only 40 present"
        );
        let o = Overrun { tag: (0x0008, 0x1110), declared: 0xFFFF_FFF0, present: 12 };
        assert!(overrun_error(o).to_string().contains("element (0008,1110) says 4294967280 bytes"));
    }

    #[test]
    fn ybr_full_422_pairs_share_chroma() {
        // Grey (Cb = Cr = 128) stays grey; pure chroma moves R and B as the matrix says.
        let grey = [10u8, 200, 128, 128];
        assert_eq!(ybr_to_rgb(&grey, 2, 2, true, false).unwrap(), vec![10, 10, 10, 200, 200, 200]);
        // Y 100, Cr 228: R = 100 + 1.402 * 100 = 240.2 -> 240; G = 100 - 0.714136 * 100 = 28.59 -> 29.
        let red = [100u8, 100, 128, 228];
        assert_eq!(ybr_to_rgb(&red, 2, 2, true, false).unwrap(), vec![240, 29, 100, 240, 29, 100]);
        // YBR_FULL, interleaved and planar, give the same.
        let full = [100u8, 128, 228, 10, 128, 128];
        let planar = [100u8, 10, 128, 128, 228, 128];
        let want = vec![240, 29, 100, 10, 10, 10];
        assert_eq!(ybr_to_rgb(&full, 2, 2, false, false).unwrap(), want);
        assert_eq!(ybr_to_rgb(&planar, 2, 2, false, true).unwrap(), want);
        // Short data is refused, not padded.
        assert_eq!(ybr_to_rgb(&red[..3], 2, 2, true, false), None);
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
