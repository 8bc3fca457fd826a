#!/usr/bin/env python3
"""Generate DICOM test fixtures for cambox from one real chest X-ray.

Source: data/samples/chest-xray/person1946_bacteria_4875.jpeg (8-bit grey,
1072 x 712, a pneumonia case).  It is decoded with Pillow to 8-bit grey and
downscaled (LANCZOS) to 536 x 356; that 8-bit array is called P.  P is saved
as reference.png (lossless) and reference.jpg (quality 95), and then stored in
a dozen DICOM encodings that all decode, through the standard pipeline

    stored values -> Modality LUT (RescaleSlope/Intercept)
                  -> VOI window (WindowCenter/Width, DICOM linear function)
                  -> MONOCHROME1 inversion
                  -> scale the output range to 0..255

to (almost) P, plus a few broken files under broken/ that a reader must
reject.  manifest.json describes every file; the script decodes each file
back with pydicom + numpy, checks it against P within the stated tolerance
and prints a table.  Everything is deterministic: fixed UIDs (generate_uid
with fixed entropy sources), fixed dates, no timestamps, so reruns produce
byte-identical files.

Run through scripts/make_dicom_fixtures.sh, which pins the Python packages.

The patient name "Testpatient^Secretname" and birth date "19010203" are
planted so that tests can assert they never appear in any cambox output.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import struct
import sys
from importlib.metadata import version as pkg_version
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut, apply_voi_lut, convert_color_space
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    generate_uid,
)

# --------------------------------------------------------------------------
# constants

SOURCE = "data/samples/chest-xray/person1946_bacteria_4875.jpeg"
SIZE = (536, 356)  # (width, height): half of 1072 x 712
JPEG_QUALITY = 95

UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root, for test UIDs
ENTROPY = "cambox-dicom-fixtures-v1"

PATIENT_NAME = "Testpatient^Secretname"
PATIENT_BIRTH_DATE = "19010203"
PATIENT_ID = "CAMBOX-TEST-001"
PIXEL_SPACING = [0.139, 0.139]

DX_PRESENTATION = UID("1.2.840.10008.5.1.4.1.1.1.1")  # Digital X-Ray Image Storage - For Presentation
CR_IMAGE = UID("1.2.840.10008.5.1.4.1.1.1")  # Computed Radiography Image Storage
SC_MULTIFRAME_BYTE = UID("1.2.840.10008.5.1.4.1.1.7.2")  # Multi-frame Grayscale Byte SC
SC_IMAGE = UID("1.2.840.10008.5.1.4.1.1.7")  # Secondary Capture Image Storage

# The "unsupported" transfer syntax: a private UID under the test root that
# no reader knows.  Chosen over JPEG 2000 because some readers (GDCM,
# pydicom + openjpeg, dicom-rs with its openjp2 feature) do decode JPEG 2000,
# while an unknown transfer syntax fails everywhere, for the same reason.
UNKNOWN_TS = UID(UID_ROOT + "999.1.2.3")

TOL_EXACT = "exact"
TOL_LOSSY = "lossy (jpeg)"
TOL_WINDOW = "within 1 grey level after windowing"
TOL_LOSSY12 = "lossy (12-bit jpeg)"
TOL_NEAR = "near-lossless (jpeg-ls)"
TOL_RGB = "colour: pydicom's RGB decode"

# 12-bit JPEG quality (libjpeg scale): high, as CR/DX archives use.
JPEG12_QUALITY = 95
# JPEG-LS near-lossless: every sample within this many levels of the original.
JLS_NEAR = 1
# Cargo feature a fixture needs (JPEG-LS goes through CharLS, a C++ library).
FEATURE_JPEG_LS = "jpeg-ls"

# For "lossy (jpeg)": quality-95 baseline JPEG of P stays well inside these.
LOSSY_MAX_ABS = 24
LOSSY_MEAN_ABS = 1.5


def uid(*parts: str) -> UID:
    return generate_uid(prefix=UID_ROOT, entropy_srcs=[ENTROPY, *parts])


# --------------------------------------------------------------------------
# building datasets


def base_dataset(
    name: str,
    *,
    rows: int,
    cols: int,
    photometric: str = "MONOCHROME2",
    bits_allocated: int = 8,
    bits_stored: int = 8,
    sop_class: UID = DX_PRESENTATION,
    modality: str = "DX",
    spacing: bool = True,
    frames: int = 1,
) -> Dataset:
    """Patient/study/series/image modules shared by every fixture."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"] if sop_class != SC_MULTIFRAME_BYTE else ["DERIVED", "SECONDARY"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid(name, "sop")
    ds.StudyDate = "20240101"
    ds.SeriesDate = "20240101"
    ds.ContentDate = "20240101"
    ds.StudyTime = "120000"
    ds.ContentTime = "120000"
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.Manufacturer = "cambox test fixtures"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "cambox DICOM fixture"
    ds.SeriesDescription = name
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = PATIENT_BIRTH_DATE
    ds.PatientSex = "O"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "AP"  # the film is marked A-P
    ds.StudyInstanceUID = uid(name, "study")
    ds.SeriesInstanceUID = uid(name, "series")
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["L", "F"]
    if sop_class == SC_MULTIFRAME_BYTE:
        ds.ConversionType = "WSD"
        ds.NumberOfFrames = frames
        ds.FrameIncrementPointer = 0x00181063  # Frame Time
        ds.FrameTime = 1000.0
    elif sop_class == DX_PRESENTATION:
        ds.PresentationIntentType = "FOR PRESENTATION"
        if spacing:
            ds.ImagerPixelSpacing = PIXEL_SPACING
    if spacing:
        ds.PixelSpacing = PIXEL_SPACING
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    return ds


def file_meta(ds: Dataset, ts: UID) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = UID_ROOT + "1.1.4242"
    meta.ImplementationVersionName = "CAMBOX_FIXT_1"
    return meta


def set_native_pixels(ds: Dataset, arr: np.ndarray) -> None:
    if ds.BitsAllocated == 8:
        assert arr.dtype == np.uint8
        ds.PixelData = arr.tobytes()
    else:
        ds.PixelData = arr.astype("<u2").tobytes()
    ds["PixelData"].VR = "OB" if ds.BitsAllocated == 8 else "OW"


def save(ds: Dataset, path: Path, ts: UID) -> None:
    ds.file_meta = file_meta(ds, ts)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def jpeg_bytes(p: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(p, mode="L").save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def jpeg_lossless_sv1_bytes(p: np.ndarray) -> bytes:
    """JPEG Lossless, Process 14, first-order prediction (Selection Value 1)."""
    data = bytes(imagecodecs.jpeg8_encode(p, lossless=True, predictor=1))
    # Check the codestream really is SOF3 with predictor 1 and point transform 0.
    assert b"\xff\xc3" in data, "no SOF3 marker"
    sos = data.index(b"\xff\xda")
    ns = data[sos + 4]
    ss, se, ahal = data[sos + 5 + 2 * ns : sos + 8 + 2 * ns]
    assert (ss, ahal & 0x0F) == (1, 0), f"not SV1 / Pt 0: Ss={ss} Pt={ahal & 0x0F}"
    return data


def jpeg2000_lossless_bytes(p: np.ndarray) -> bytes:
    """Reversible (5/3 wavelet) JPEG 2000 codestream, no JP2 box (as DICOM wants it)."""
    buf = io.BytesIO()
    Image.fromarray(p, mode="L").save(buf, format="JPEG2000", irreversible=False, no_jp2=True)
    data = buf.getvalue()
    assert data[:4] == b"\xff\x4f\xff\x51", "not a raw J2K codestream (SOC, SIZ)"
    return data


def gz(data: bytes) -> bytes:
    """gzip without a timestamp (deterministic)."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def jpeg12_bytes(p12: np.ndarray) -> bytes:
    """12-bit extended sequential JPEG (SOF1, Huffman), libjpeg-turbo via imagecodecs."""
    data = bytes(imagecodecs.jpeg8_encode(p12, level=JPEG12_QUALITY, bitspersample=12))
    sof = data.index(b"\xff\xc1")
    assert data[sof + 4] == 12 and data[sof + 9] == 1, "not a 12-bit one-component SOF1"
    return data


def un_sequence_bytes() -> bytes:
    """A private creator and a private element of VR UN with undefined length whose
    content is an implicit-VR sequence (PS3.5 6.2.2), nested like pydicom's
    UN_sequence.dcm: read as explicit VR, the first inner header's length is an item
    tag, FFFE E000 = 3.75 GB."""
    def imp(g: int, e: int, v: bytes) -> bytes:
        return struct.pack("<HHI", g, e, len(v)) + v

    def undefined_item(content: bytes) -> bytes:
        return b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + content + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"

    seq_end = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    referenced = imp(0x0008, 0x1150, b"1.2.840.10008.5.1.4.1.1.2\x00") + imp(0x0008, 0x1155, b"1.2.826.0.1.3680043.8.498.1\x00")
    inner = struct.pack("<HHI", 0x0008, 0x1115, 0xFFFFFFFF) + undefined_item(referenced) + seq_end
    content = undefined_item(inner + imp(0x0020, 0x000E, b"1.2.826.0.1.3680043.8.498.2\x00")) + seq_end
    creator = struct.pack("<HH2sH", 0x0009, 0x0010, b"LO", 6) + b"CAMBOX"
    return creator + struct.pack("<HH2sHI", 0x0009, 0x1010, b"UN", 0, 0xFFFFFFFF) + content


def colour_phantom(P: np.ndarray) -> np.ndarray:
    """A colour image from P at half size: R = P, G = 0.6 P + 60, B = 255 - P, so that
    chroma changes from pixel to pixel (4:2:2 pairs must share it correctly)."""
    half = np.asarray(Image.fromarray(P).resize((P.shape[1] // 2, P.shape[0] // 2), Image.Resampling.LANCZOS))
    h = half.astype(np.float64)
    rgb = np.stack([h, np.clip(np.rint(0.6 * h + 60), 0, 255), 255 - h], axis=-1)
    return rgb.astype(np.uint8)


def ybr_full_422_bytes(rgb: np.ndarray) -> bytes:
    """RGB -> YBR_FULL (pydicom's matrix), then 4:2:2: each horizontal pair of pixels
    stores Y1 Y2 Cb Cr with the pair's mean chroma (PS3.3 C.7.6.3.1.2)."""
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL").astype(np.int32)
    y, cb, cr = ybr[..., 0], ybr[..., 1], ybr[..., 2]
    cb2 = (cb[:, 0::2] + cb[:, 1::2] + 1) // 2
    cr2 = (cr[:, 0::2] + cr[:, 1::2] + 1) // 2
    out = np.stack([y[:, 0::2], y[:, 1::2], cb2, cr2], axis=-1).astype(np.uint8)
    return out.tobytes()


def dcmread_any(path: Path) -> Dataset:
    """pydicom's reading: files without preamble and meta group need force=True and a
    transfer syntax (implicit VR little endian, as ACR-NEMA files are)."""
    try:
        return pydicom.dcmread(path)
    except pydicom.errors.InvalidDicomError:
        ds = pydicom.dcmread(path, force=True)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        return ds


# --------------------------------------------------------------------------
# decoding with the standard pipeline (used for verification)


def output_range(ds: Dataset) -> tuple[float, float]:
    """Range of the modality-LUT output of the full stored range (as pydicom's apply_windowing)."""
    if ds.PixelRepresentation == 0:
        lo, hi = 0.0, float(2**ds.BitsStored - 1)
    else:
        lo, hi = float(-(2 ** (ds.BitsStored - 1))), float(2 ** (ds.BitsStored - 1) - 1)
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        s, i = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        lo, hi = sorted((lo * s + i, hi * s + i))
    return lo, hi


def decode_standard(ds: Dataset) -> tuple[np.ndarray, np.ndarray | None]:
    """Return (display 0..255 float via the stored range, same via min-max or None).

    For files without a window both scalings are given: by the BitsStored
    range (after the modality LUT) and by the image's min/max.
    """
    arr = ds.pixel_array
    arr = apply_modality_lut(arr, ds).astype(np.float64)
    lo, hi = output_range(ds)
    has_window = "WindowCenter" in ds and "WindowWidth" in ds
    if has_window:
        arr = apply_voi_lut(arr, ds).astype(np.float64)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        arr = lo + hi - arr
    full = (arr - lo) / (hi - lo) * 255.0
    minmax = None
    if not has_window:
        mn, mx = arr.min(), arr.max()
        minmax = (arr - mn) / (mx - mn) * 255.0
    return full, minmax


def diff_stats(img: np.ndarray, ref: np.ndarray) -> tuple[int, float]:
    d = np.abs(np.rint(img) - ref.astype(np.float64))
    return int(d.max()), float(d.mean())


# --------------------------------------------------------------------------
# main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent), help="repository root")
    ap.add_argument("--out", default=None, help="output folder (default ROOT/tests/fixtures/dicom)")
    args = ap.parse_args()
    root = Path(args.root)
    out = Path(args.out) if args.out else root / "tests/fixtures/dicom"
    broken = out / "broken"
    out.mkdir(parents=True, exist_ok=True)
    broken.mkdir(parents=True, exist_ok=True)

    # ---- P ---------------------------------------------------------------
    src = Image.open(root / SOURCE)
    src.load()
    assert src.size == (1072, 712), src.size
    grey = src.convert("L")
    small = grey.resize(SIZE, Image.Resampling.LANCZOS)
    P = np.asarray(small, dtype=np.uint8).copy()
    rows, cols = P.shape
    small.save(out / "reference.png", format="PNG", optimize=True)
    ref_jpeg = jpeg_bytes(P)
    (out / "reference.jpg").write_bytes(ref_jpeg)
    assert np.array_equal(np.asarray(Image.open(out / "reference.png")), P)
    print(f"P: {cols}x{rows} uint8, min {P.min()} max {P.max()}, mean {P.mean():.2f}")

    P12 = np.rint(P.astype(np.float64) * 4095.0 / 255.0).astype(np.uint16)  # 0..4095

    manifest: list[dict] = []

    def record(
        file: str,
        ts: UID,
        ds: Dataset | None,
        *,
        expected: str = "ok",
        tol: str | None = None,
        error_reason: str | None = None,
        note: str | None = None,
        frames: int = 1,
        **extra,
    ) -> None:
        e: dict = {"file": file, "transfer_syntax": str(ts)}
        if ds is not None:
            e["photometric"] = ds.PhotometricInterpretation
            e["bits_allocated"] = int(ds.BitsAllocated)
            e["bits_stored"] = int(ds.BitsStored)
            e["rows"] = int(ds.Rows)
            e["columns"] = int(ds.Columns)
            e["rescale"] = [float(ds.RescaleSlope), float(ds.RescaleIntercept)] if "RescaleSlope" in ds else None
            e["window"] = [float(ds.WindowCenter), float(ds.WindowWidth)] if "WindowCenter" in ds else None
            e["pixel_spacing"] = [float(v) for v in ds.PixelSpacing] if "PixelSpacing" in ds else None
            e["frames"] = frames
        else:
            e.update(photometric=None, bits_allocated=None, bits_stored=None, rows=None, columns=None,
                     rescale=None, window=None, pixel_spacing=None, frames=0)
        e["expected"] = expected
        if expected == "error":
            e["error_reason"] = error_reason
        else:
            e["expected_pixels_equal_to_reference"] = tol
        if note:
            e["note"] = note
        e.update(extra)
        manifest.append(e)

    # 1. 8-bit MONOCHROME2, Explicit VR LE
    ds = base_dataset("mono2_8bit_explicit", rows=rows, cols=cols)
    set_native_pixels(ds, P)
    save(ds, out / "mono2_8bit_explicit.dcm", ExplicitVRLittleEndian)
    record("mono2_8bit_explicit.dcm", ExplicitVRLittleEndian, ds, tol=TOL_EXACT)

    # 2. same, Implicit VR LE (CR; no pixel spacing)
    ds = base_dataset("mono2_8bit_implicit", rows=rows, cols=cols, sop_class=CR_IMAGE, modality="CR", spacing=False)
    set_native_pixels(ds, P)
    save(ds, out / "mono2_8bit_implicit.dcm", ImplicitVRLittleEndian)
    record("mono2_8bit_implicit.dcm", ImplicitVRLittleEndian, ds, tol=TOL_EXACT,
           note="Computed Radiography SOP class, Modality CR, no PixelSpacing")

    # 3. 16 bit allocated, 12 stored
    ds = base_dataset("mono2_16bit_12stored", rows=rows, cols=cols, bits_allocated=16, bits_stored=12)
    set_native_pixels(ds, P12)
    save(ds, out / "mono2_16bit_12stored.dcm", ExplicitVRLittleEndian)
    record("mono2_16bit_12stored.dcm", ExplicitVRLittleEndian, ds, tol=TOL_EXACT,
           note="stored = round(P*4095/255); no window: scale by the 12-bit range (0..4095) or by min-max, never take the high byte")

    # 4. MONOCHROME1, inverted
    ds = base_dataset("mono1_inverted", rows=rows, cols=cols, photometric="MONOCHROME1", bits_allocated=16, bits_stored=12)
    set_native_pixels(ds, (4095 - P12).astype(np.uint16))
    save(ds, out / "mono1_inverted.dcm", ExplicitVRLittleEndian)
    record("mono1_inverted.dcm", ExplicitVRLittleEndian, ds, tol=TOL_EXACT,
           note="stored = 4095 - round(P*4095/255); no window; invert after scaling to get P")

    # 5. Rescale slope/intercept + window covering the whole output range
    ds = base_dataset("rescale_slope_intercept", rows=rows, cols=cols, bits_allocated=16, bits_stored=12)
    slope, intercept = 2.0, -1024.0
    out_lo, out_hi = 0 * slope + intercept, 4095 * slope + intercept  # -1024 .. 7166
    ds.RescaleSlope = "2"
    ds.RescaleIntercept = "-1024"
    ds.RescaleType = "US"
    ds.WindowCenter = f"{(out_lo + out_hi) / 2:g}"  # 3071
    ds.WindowWidth = f"{out_hi - out_lo + 1:g}"  # 8191
    set_native_pixels(ds, P12)
    save(ds, out / "rescale_slope_intercept.dcm", ExplicitVRLittleEndian)
    record("rescale_slope_intercept.dcm", ExplicitVRLittleEndian, ds, tol=TOL_WINDOW,
           note="stored s = round(P*4095/255); output = 2*s - 1024 in -1024..7166; window center 3071 width 8191 maps that range to full scale")

    # 6. VOI window over a data band 1000..3000
    ds = base_dataset("voi_window", rows=rows, cols=cols, bits_allocated=16, bits_stored=12)
    ds.WindowCenter = "2000"
    ds.WindowWidth = "2000"
    ds.VOILUTFunction = "LINEAR"
    stored6 = (np.rint(P.astype(np.float64) * 2000.0 / 255.0) + 1000).astype(np.uint16)
    set_native_pixels(ds, stored6)
    save(ds, out / "voi_window.dcm", ExplicitVRLittleEndian)
    record("voi_window.dcm", ExplicitVRLittleEndian, ds, tol=TOL_WINDOW,
           note="stored = round(P*2000/255) + 1000 (1000..3000 of 0..4095); without the window the image looks flat grey")

    # 7. RLE Lossless (16-bit/12-stored, like 3: two byte segments per frame)
    ds = base_dataset("rle", rows=rows, cols=cols, bits_allocated=16, bits_stored=12)
    set_native_pixels(ds, P12)
    ds.file_meta = file_meta(ds, ExplicitVRLittleEndian)
    ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    save(ds, out / "rle.dcm", RLELossless)
    record("rle.dcm", RLELossless, ds, tol=TOL_EXACT,
           note="same pixels as mono2_16bit_12stored.dcm, RLE Lossless (high-byte segment then low-byte segment)")

    # 8. JPEG Baseline 8-bit: the very bytes of reference.jpg
    ds = base_dataset("jpeg_baseline", rows=rows, cols=cols)
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = f"{P.size / len(ref_jpeg):.2f}"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.PixelData = encapsulate([ref_jpeg])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    save(ds, out / "jpeg_baseline.dcm", JPEGBaseline8Bit)
    record("jpeg_baseline.dcm", JPEGBaseline8Bit, ds, tol=TOL_LOSSY,
           note="the single fragment is byte-identical to reference.jpg (quality 95), so it decodes exactly like reference.jpg with the same JPEG decoder",
           jpeg_bytes_identical_to="reference.jpg")

    # 9. JPEG Lossless SV1
    ds = base_dataset("jpeg_lossless", rows=rows, cols=cols)
    ds.PixelData = encapsulate([jpeg_lossless_sv1_bytes(P)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    save(ds, out / "jpeg_lossless.dcm", JPEGLosslessSV1)
    record("jpeg_lossless.dcm", JPEGLosslessSV1, ds, tol=TOL_EXACT,
           note="JPEG Lossless Process 14, Selection Value 1 (SOF3), encoded with imagecodecs (libjpeg-turbo)")

    # 10. Deflated Explicit VR LE
    ds = base_dataset("deflate", rows=rows, cols=cols)
    set_native_pixels(ds, P)
    save(ds, out / "deflate.dcm", DeflatedExplicitVRLittleEndian)
    record("deflate.dcm", DeflatedExplicitVRLittleEndian, ds, tol=TOL_EXACT,
           note="everything after the file meta group is raw deflate (RFC 1951, no zlib header)")

    # 11. Multi-frame
    frames = np.stack([P, P[:, ::-1], 255 - P]).astype(np.uint8)
    ds = base_dataset("multiframe", rows=rows, cols=cols, sop_class=SC_MULTIFRAME_BYTE, spacing=False, frames=3)
    ds.PixelData = frames.tobytes()
    ds["PixelData"].VR = "OB"
    save(ds, out / "multiframe.dcm", ExplicitVRLittleEndian)
    record("multiframe.dcm", ExplicitVRLittleEndian, ds, tol=TOL_EXACT, frames=3,
           note="Multi-frame Grayscale Byte Secondary Capture; frame 0 = P, frame 1 = P mirrored left-right, frame 2 = 255 - P",
           frame_contents=["P", "P[:, ::-1] (mirrored left-right)", "255 - P (inverted)"])

    # 12. no extension
    ds = base_dataset("no_extension_dicom", rows=rows, cols=cols)
    set_native_pixels(ds, P)
    save(ds, out / "no_extension_dicom", ExplicitVRLittleEndian)
    record("no_extension_dicom", ExplicitVRLittleEndian, ds, tol=TOL_EXACT,
           note="like mono2_8bit_explicit.dcm (own UIDs) but no file extension: detect by the 'DICM' magic at offset 128")

    # 13. JPEG 2000 lossless (decoded by dicom-rs's pure-Rust openjp2 feature)
    ds = base_dataset("jpeg2000_lossless", rows=rows, cols=cols)
    ds.PixelData = encapsulate([jpeg2000_lossless_bytes(P)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    save(ds, out / "jpeg2000_lossless.dcm", JPEG2000Lossless)
    record("jpeg2000_lossless.dcm", JPEG2000Lossless, ds, tol=TOL_EXACT,
           note="JPEG 2000 Image Compression (Lossless Only), reversible 5/3 wavelet, raw J2K codestream, encoded with Pillow (OpenJPEG)")

    # 14. 12-bit JPEG Extended (process 2/4, SOF1, Huffman): older CR/DX archives.
    # Decoded back by libjpeg-turbo (imagecodecs) and by pydicom (pylibjpeg-libjpeg,
    # the ISO reference libjpeg); both decodes are kept for tests/dicom.rs.
    ds = base_dataset("jpeg_extended_12bit", rows=rows, cols=cols, bits_allocated=16, bits_stored=12)
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    j12 = jpeg12_bytes(P12)
    ds.LossyImageCompressionRatio = f"{P12.nbytes / len(j12):.2f}"
    ds.PixelData = encapsulate([j12])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    save(ds, out / "jpeg_extended_12bit.dcm", JPEGExtended12Bit)
    turbo = np.asarray(imagecodecs.jpeg8_decode(j12), dtype=np.uint16)
    by_pydicom = pydicom.dcmread(out / "jpeg_extended_12bit.dcm").pixel_array.astype(np.uint16)
    (out / "jpeg_extended_12bit.libjpeg-turbo.u16le.gz").write_bytes(gz(turbo.astype("<u2").tobytes()))
    (out / "jpeg_extended_12bit.pydicom.u16le.gz").write_bytes(gz(by_pydicom.astype("<u2").tobytes()))
    record("jpeg_extended_12bit.dcm", JPEGExtended12Bit, ds, tol=TOL_LOSSY12,
           note=f"stored = round(P*4095/255) as 12-bit JPEG Extended (SOF1, Huffman, quality {JPEG12_QUALITY}) by imagecodecs/libjpeg-turbo; "
                "its decodes by libjpeg-turbo (islow IDCT) and by pydicom (pylibjpeg-libjpeg) are stored next to it as raw little-endian uint16, gzipped",
           decoded_by={"libjpeg-turbo": "jpeg_extended_12bit.libjpeg-turbo.u16le.gz", "pydicom": "jpeg_extended_12bit.pydicom.u16le.gz"},
           max_abs_diff_pydicom_vs_libjpeg_turbo=int(np.abs(turbo.astype(int) - by_pydicom.astype(int)).max()),
           max_abs_diff_stored_vs_p12=int(np.abs(turbo.astype(int) - P12.astype(int)).max()))

    # 15-16. JPEG-LS lossless and near-lossless, written by pydicom (pyjpegls/CharLS).
    ds = base_dataset("jpeg_ls_lossless", rows=rows, cols=cols, bits_allocated=16, bits_stored=12)
    set_native_pixels(ds, P12)
    ds.file_meta = file_meta(ds, ExplicitVRLittleEndian)
    ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls", generate_instance_uid=False)
    save(ds, out / "jpeg_ls_lossless.dcm", JPEGLSLossless)
    record("jpeg_ls_lossless.dcm", JPEGLSLossless, ds, tol=TOL_EXACT, feature=FEATURE_JPEG_LS,
           note="pixels of mono2_16bit_12stored.dcm as JPEG-LS Lossless (pydicom + pyjpegls); cambox decodes it only when built with the jpeg-ls feature")
    ds = base_dataset("jpeg_ls_near_lossless", rows=rows, cols=cols)
    set_native_pixels(ds, P)
    ds.file_meta = file_meta(ds, ExplicitVRLittleEndian)
    ds.compress(JPEGLSNearLossless, encoding_plugin="pyjpegls", jls_error=JLS_NEAR, generate_instance_uid=False)
    save(ds, out / "jpeg_ls_near_lossless.dcm", JPEGLSNearLossless)
    record("jpeg_ls_near_lossless.dcm", JPEGLSNearLossless, ds, tol=TOL_NEAR, feature=FEATURE_JPEG_LS, jls_near=JLS_NEAR,
           note=f"P as JPEG-LS near-lossless, NEAR = {JLS_NEAR} (every sample within {JLS_NEAR} of P; pydicom + pyjpegls)")

    # 17. Uncompressed YBR_FULL_422 colour (Secondary Capture): 4:2:2 pairs share chroma.
    rgb = colour_phantom(P)
    ds = base_dataset("ybr_full_422", rows=rgb.shape[0], cols=rgb.shape[1], sop_class=SC_IMAGE, modality="OT", spacing=False)
    ds.ConversionType = "WSD"
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.PixelData = ybr_full_422_bytes(rgb)
    ds["PixelData"].VR = "OB"
    save(ds, out / "ybr_full_422.dcm", ExplicitVRLittleEndian)
    ybr_rgb = pydicom.dcmread(out / "ybr_full_422.dcm").pixel_array
    assert ybr_rgb.shape == rgb.shape and ybr_rgb.dtype == np.uint8
    (out / "ybr_full_422.pydicom-rgb.u8.gz").write_bytes(gz(ybr_rgb.tobytes()))
    record("ybr_full_422.dcm", ExplicitVRLittleEndian, ds, tol=TOL_RGB, compare="rgb",
           rgb_reference="ybr_full_422.pydicom-rgb.u8.gz",
           max_abs_diff_pydicom_rgb_vs_source_rgb=int(np.abs(ybr_rgb.astype(int) - rgb.astype(int)).max()),
           note="colour phantom (R = P, G = 0.6 P + 60, B = 255 - P at half size) as uncompressed YBR_FULL_422; "
                "pydicom's RGB decode (convert_color_space) is stored next to it as raw interleaved RGB, gzipped")

    # 18. ACR-NEMA style: no preamble, no DICM, no meta group; implicit VR little endian.
    ds = base_dataset("acr_nema_implicit", rows=rows, cols=cols)
    set_native_pixels(ds, P)
    pydicom.dcmwrite(out / "acr_nema_implicit.dcm", ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
    head = (out / "acr_nema_implicit.dcm").read_bytes()[:8]
    assert head[:4] == b"\x08\x00\x05\x00", f"does not start with (0008,0005): {head!r}"
    record("acr_nema_implicit.dcm", ImplicitVRLittleEndian, ds, tol=TOL_EXACT,
           note="P as a bare implicit VR little endian data set: no 128-byte preamble, no 'DICM', no file meta group (ACR-NEMA style; pydicom reads it with force=True)")

    # 19. A private UN element of undefined length (implicit VR sequence inside), P intact.
    ds = base_dataset("un_sequence", rows=rows, cols=cols)
    set_native_pixels(ds, P)
    save(ds, out / "un_sequence.dcm", ExplicitVRLittleEndian)
    raw = (out / "un_sequence.dcm").read_bytes()
    at = raw.index(b"\x10\x00\x10\x00PN")  # (0010,0010): the first element after group 0009
    (out / "un_sequence.dcm").write_bytes(raw[:at] + un_sequence_bytes() + raw[at:])
    record("un_sequence.dcm", ExplicitVRLittleEndian, ds, tol=TOL_EXACT,
           note="like mono2_8bit_explicit.dcm plus a private (0009,1010) UN element of undefined length holding an implicit VR sequence (as pydicom's UN_sequence.dcm); "
                "read as explicit VR, its first inner length is an item tag: 3.75 GB")

    # ---- broken ----------------------------------------------------------
    # truncated pixel data: file 1 cut halfway through Pixel Data
    full = (out / "mono2_8bit_explicit.dcm").read_bytes()
    assert full.endswith(P.tobytes())
    pix_start = len(full) - P.size
    cut = pix_start + P.size // 2
    (broken / "truncated_pixels.dcm").write_bytes(full[:cut])
    ds1 = pydicom.dcmread(out / "mono2_8bit_explicit.dcm")
    record("broken/truncated_pixels.dcm", ExplicitVRLittleEndian, ds1, expected="error",
           error_reason=f"file ends inside Pixel Data: element says {P.size} bytes, only {P.size // 2} present",
           truncated_at_byte=cut)

    # no Pixel Data
    ds = base_dataset("no_pixel_data", rows=rows, cols=cols)
    save(ds, broken / "no_pixel_data.dcm", ExplicitVRLittleEndian)
    record("broken/no_pixel_data.dcm", ExplicitVRLittleEndian, ds, expected="error",
           error_reason="valid DICOM with image attributes (Rows, Columns, ...) but no Pixel Data element")

    # unknown transfer syntax
    ds = base_dataset("unsupported_syntax", rows=rows, cols=cols)
    ds.PixelData = encapsulate([P.tobytes()])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta = file_meta(ds, UNKNOWN_TS)
    # pydicom refuses to write an unknown syntax directly: encode the dataset
    # body as Explicit VR LE (as every compressed syntax does) and keep the
    # private UID in the meta group.
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=False, implicit_vr=False, little_endian=True)
    body = buf.getvalue()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    head = io.BytesIO()
    pydicom.filewriter.write_file_meta_info(pydicom.filebase.DicomFileLike(head), file_meta(ds, UNKNOWN_TS), enforce_standard=True)
    (broken / "unsupported_syntax.dcm").write_bytes(b"\x00" * 128 + b"DICM" + head.getvalue() + body)
    record("broken/unsupported_syntax.dcm", UNKNOWN_TS, ds, expected="error",
           error_reason=f"unknown private transfer syntax {UNKNOWN_TS} (dataset encoded like Explicit VR LE, encapsulated pixel data)")

    # not DICOM
    (broken / "not_dicom.dcm").write_text(
        "This is not a DICOM file.\nIt is plain text with a .dcm extension, used by cambox tests.\n"
        "A reader must reject it: there is no 128-byte preamble and no 'DICM' magic.\n"
    )
    record("broken/not_dicom.dcm", UID(""), None, expected="error",
           error_reason="plain text with a .dcm extension: no preamble, no 'DICM' magic, no DICOM elements")
    manifest[-1]["transfer_syntax"] = None

    # Explicit VR big endian whose Pixel Data claims 4 GiB (a reader that trusts it
    # allocates that much before noticing the file is 190 KB).
    ds = base_dataset("huge_length_big_endian", rows=rows, cols=cols)
    set_native_pixels(ds, P)
    ds.file_meta = file_meta(ds, ExplicitVRBigEndian)
    pydicom.dcmwrite(broken / "huge_length_big_endian.dcm", ds, implicit_vr=False, little_endian=False, enforce_file_format=True)
    raw = bytearray((broken / "huge_length_big_endian.dcm").read_bytes())
    at = raw.index(b"\x7f\xe0\x00\x10OB\x00\x00")
    assert struct.unpack(">I", raw[at + 8 : at + 12])[0] == P.size
    raw[at + 8 : at + 12] = struct.pack(">I", 0xFFFFFFF0)
    # Cut halfway through the pixels too: pydicom reads a value to the end of the file
    # whatever its length says, so with all pixels present it would decode the image.
    (broken / "huge_length_big_endian.dcm").write_bytes(bytes(raw[: at + 12 + P.size // 2]))
    record("broken/huge_length_big_endian.dcm", ExplicitVRBigEndian, ds, expected="error",
           error_reason=f"Explicit VR Big Endian; the Pixel Data length says {0xFFFFFFF0} bytes, only {P.size // 2} present (cut halfway)")

    # JPEG baseline whose frame header claims 65000 x 65000 pixels (4 GB decoded) in a
    # 536 x 356 image: the DICOM header passes the pixel limit, the codestream does not.
    sof = ref_jpeg.index(b"\xff\xc0")
    big = bytearray(ref_jpeg)
    big[sof + 5 : sof + 9] = struct.pack(">HH", 65000, 65000)
    ds = base_dataset("jpeg_claims_gigapixels", rows=rows, cols=cols)
    ds.LossyImageCompression = "01"
    ds.PixelData = encapsulate([bytes(big)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    save(ds, broken / "jpeg_claims_gigapixels.dcm", JPEGBaseline8Bit)
    record("broken/jpeg_claims_gigapixels.dcm", JPEGBaseline8Bit, ds, expected="error",
           error_reason="the JPEG frame header (SOF0) claims 65000 x 65000 pixels; the DICOM header says 536 x 356")

    # ---- verify ----------------------------------------------------------
    ok = verify(out, manifest, P, frames)

    for e in manifest:
        e["size_bytes"] = (out / e["file"]).stat().st_size
        e["sha256"] = hashlib.sha256((out / e["file"]).read_bytes()).hexdigest()
    doc = {
        "source": SOURCE,
        "reference": {
            "png": "reference.png",
            "jpg": "reference.jpg",
            "width": cols,
            "height": rows,
            "description": "source decoded with Pillow to 8-bit grey, resized to 536x356 with LANCZOS (= P); reference.jpg is P at JPEG quality 95",
            "png_sha256": hashlib.sha256((out / "reference.png").read_bytes()).hexdigest(),
        },
        "pipeline": "stored -> Modality LUT (slope, intercept) -> VOI window (DICOM linear) -> MONOCHROME1 inversion -> scale output range to 0..255; without a window scale by the BitsStored range (after the modality LUT) or by min-max",
        "planted_phi": {"PatientName": PATIENT_NAME, "PatientBirthDate": PATIENT_BIRTH_DATE, "PatientID": PATIENT_ID},
        "generator": {
            "script": "scripts/make_dicom_fixtures.sh",
            "python": sys.version.split()[0],
            "packages": {p: pkg_version(p) for p in ["pydicom", "numpy", "pillow", "imagecodecs", "pylibjpeg", "pylibjpeg-libjpeg", "pyjpegls"]},
        },
        "files": manifest,
    }
    (out / "manifest.json").write_text(json.dumps(doc, indent=2) + "\n")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"\nwrote {len(manifest)} fixtures + references to {out}; folder total {total / 1e6:.2f} MB")
    return 0 if ok else 1


def verify(out: Path, manifest: list[dict], P: np.ndarray, frames: np.ndarray) -> bool:
    print(f"\n{'file':34} {'syntax':8} {'expect':6} {'tolerance':36} {'max|d| range':>12} {'max|d| minmax':>13} {'mean|d|':>8}  result")
    short = {
        ExplicitVRLittleEndian: "expl-LE", ImplicitVRLittleEndian: "impl-LE", RLELossless: "RLE",
        JPEGBaseline8Bit: "jpeg-50", JPEGLosslessSV1: "jpeg-70", DeflatedExplicitVRLittleEndian: "deflate",
        JPEG2000Lossless: "j2k-90", JPEGExtended12Bit: "jpeg-51", JPEGLSLossless: "jls-80",
        JPEGLSNearLossless: "jls-81", ExplicitVRBigEndian: "expl-BE",
    }
    all_ok = True
    ref_jpg = np.asarray(Image.open(out / "reference.jpg").convert("L"))
    for e in manifest:
        path = out / e["file"]
        syn = short.get(e["transfer_syntax"], "private" if e["transfer_syntax"] else "-")
        if e.get("compare") == "rgb":
            # Colour: pydicom's RGB decode is the reference cambox is checked against.
            rgb = pydicom.dcmread(path).pixel_array
            ref = np.frombuffer(gzip.decompress((out / e["rgb_reference"]).read_bytes()), np.uint8).reshape(rgb.shape)
            good = bool(np.array_equal(rgb, ref))
            e["verified_max_abs_diff"] = 0 if good else None
            all_ok &= good
            print(f"{e['file']:34} {syn:8} {'ok':6} {TOL_RGB:36} {'':>12} {'':>13} {'':>8}  {'PASS' if good else 'FAIL'}")
            continue
        if e["expected"] == "ok":
            ds = dcmread_any(path)
            img, mm = decode_standard(ds)
            want = frames if e["frames"] > 1 else P
            mx, mean = diff_stats(img, want)
            mmx = diff_stats(mm, want)[0] if mm is not None else None
            tol = e["expected_pixels_equal_to_reference"]
            if tol == TOL_EXACT:
                good = mx == 0 and (mmx is None or mmx == 0)
            elif tol == TOL_WINDOW:
                good = mx <= 1
            elif tol == TOL_NEAR:
                good = mx <= e["jls_near"]
            elif tol == TOL_LOSSY12:
                good = mx <= LOSSY_MAX_ABS and mean <= LOSSY_MEAN_ABS
            else:
                good = mx <= LOSSY_MAX_ABS and mean <= LOSSY_MEAN_ABS
                # same JPEG bytes as reference.jpg: Pillow's decode of it must be just as close
                pmx, _ = diff_stats(img, ref_jpg)
                e["verified_max_abs_diff_vs_reference_jpg_decoded_by_pillow"] = pmx
            e["verified_max_abs_diff"] = mx
            e["verified_mean_abs_diff"] = round(mean, 4)
            all_ok &= good
            print(f"{e['file']:34} {syn:8} {'ok':6} {tol:36} {mx:12d} {('-' if mmx is None else mmx):>13} {mean:8.4f}  {'PASS' if good else 'FAIL'}")
        else:
            try:
                ds = pydicom.dcmread(path)
                _ = ds.pixel_array
                err = None
            except Exception as exc:  # noqa: BLE001
                err = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            good = err is not None
            all_ok &= good
            e["pydicom_error"] = err
            print(f"{e['file']:34} {syn:8} {'error':6} {'':36} {'':>12} {'':>13} {'':>8}  {'PASS' if good else 'FAIL'} ({err})")
    print("\nall checks passed" if all_ok else "\nSOME CHECKS FAILED")
    return all_ok


if __name__ == "__main__":
    sys.exit(main())
