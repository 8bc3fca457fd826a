//! Every number that changes what cambox computes or accepts, in one place.
//!
//! Thresholds and tolerances are part of the results a user publishes, so they are named
//! here rather than scattered as literals; the README quotes them from this file.

/// Relative tolerance of the start-up proof that the cut is right: the logits recomputed
/// from the feature map must equal the full model's logits within this fraction of the
/// largest logit magnitude (floored at 1, so near-zero logits are compared absolutely).
pub const CUT_CHECK_REL_TOL: f32 = 1e-4;

/// Per-image `logit_check` above this (absolute, in logit units) marks the row as an
/// error: the identity mean(M_k) + b_k = logit_k only fails if the maps are corrupt.
pub const LOGIT_CHECK_MAX: f32 = 1e-3;

/// Image file extensions processed when the configuration names none.
pub const EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "tif", "tiff", "dcm"];

/// Extensions that are always read as DICOM (case-insensitive), whatever the content
/// looks like: a `.dcm` file without the `DICM` preamble is an error row, not an image.
pub const DICOM_EXTENSIONS: &[&str] = &["dcm", "dicom"];

/// How many classes go into `top_k` when the configuration does not say.
pub const TOP_K: usize = 5;

/// Images whose header claims more pixels than this are refused before decoding
/// (decompression bombs). 100 megapixels is above any radiograph we know of.
pub const MAX_PIXELS: u64 = 100_000_000;

/// Files larger than this are refused before reading (bytes).
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

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

/// Seconds between plain progress lines when stderr is not a terminal.
pub const LOG_EVERY_SECS: u64 = 10;

/// Rows buffered by the CSV writer before an explicit flush; a run killed in between
/// loses at most this many finished rows (they are redone on resume).
pub const FLUSH_EVERY_ROWS: usize = 16;

/// Images in flight between the parallel workers and the single writer.
pub const CHANNEL_CAPACITY: usize = 64;

/// wsolevaluation's tau when the `wsol` preset is chosen without one: the CAM paper's
/// 20 % of the maximum (the paper sweeps tau; `cambox eval --calibrate` finds the best).
pub const WSOL_TAU: f32 = 0.2;

/// Weight of the heatmap in overlays (pytorch-grad-cam's `show_cam_on_image` uses 0.5).
pub const OVERLAY_ALPHA: f32 = 0.5;

/// JPEG quality of overlays.
pub const OVERLAY_JPEG_QUALITY: u8 = 90;

// ---- `cambox eval` --------------------------------------------------------------------

/// IoU thresholds delta of BoxAcc; MaxBoxAccV2 averages over them (Choe et al. 2020).
/// CorLoc is BoxAcc at 0.5.
pub const BOX_ACC_DELTAS: [f64; 3] = [0.3, 0.5, 0.7];

/// ChestX-ray8's T(IoBB) values (Wang et al. 2017).
pub const CXR8_IOBB_THRESHOLDS: [f64; 5] = [0.1, 0.25, 0.5, 0.75, 0.9];

/// ChestX-ray8's alternative criterion `IoU > T(IoU)`, reported beside the IoBB-only one.
pub const CXR8_IOU_THRESHOLD: f64 = 0.5;

/// The RSNA Pneumonia challenge's IoU thresholds, 0.40 to 0.75 by 0.05 (exactly the
/// doubles nearest these decimals, as `np.round(np.arange(0.4, 0.76, 0.05), 2)` gives).
pub const RSNA_IOU_THRESHOLDS: [f64; 8] = [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75];

/// An image's boxes count as detections (RSNA, ChestX-ray8) only when its probability of
/// the evaluated class is at least this: a classifier that says "no" draws no box.
pub const EVAL_MIN_SCORE: f64 = 0.5;

/// Step of the threshold sweep tau in [0, 1) (wsolevaluation's `cam_curve_interval`);
/// `--fine` uses [`SWEEP_STEP_FINE`].
pub const SWEEP_STEP: f64 = 0.01;
pub const SWEEP_STEP_FINE: f64 = 0.001;

/// Examples kept per kind of annotation problem (all of them are counted).
pub const ISSUE_EXAMPLES: usize = 5;

/// Images shown in report.html's gallery (worst IoU first).
pub const GALLERY_MAX: usize = 60;

/// Longest side of a gallery thumbnail, in pixels.
pub const THUMB_SIDE: u32 = 320;

/// JPEG quality of gallery thumbnails (embedded as base64: size matters).
pub const THUMB_JPEG_QUALITY: u8 = 80;

/// Bins of report.html's IoU histogram over [0, 1].
pub const IOU_HISTOGRAM_BINS: usize = 10;
