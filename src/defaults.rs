//! The defaults a user meets: what cambox does when the configuration or the command line
//! does not say. Each is a number a user may publish with their results, so it is named
//! here and quoted by the docs (docs/configuration.md).
//!
//! Numbers that are part of a method rather than a choice (tolerances of the cut proof,
//! protocol thresholds, buffer sizes) live with the code that uses them.

/// Image file extensions processed when the configuration names none (`[input] extensions`).
pub const EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "tif", "tiff", "dcm"];

/// How many classes go into `top_k` when the configuration does not say (`[output] top_k`).
pub const TOP_K: usize = 5;

/// Images whose header claims more pixels than this are refused before decoding
/// (decompression bombs; `[run] max_pixels`). 100 megapixels is above any radiograph we
/// know of.
pub const MAX_PIXELS: u64 = 100_000_000;

/// Files larger than this are refused before reading (bytes; `[run] max_file_bytes`).
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// Bytes of image memory the workers may hold at once (`[run] memory_budget`): 768 MiB,
/// which with the model and the rest of the process (about 150 MB with EfficientNet-Lite0
/// and two workers) keeps a run under about 1 GB whatever the images. An image that needs
/// more than the whole budget (a 100-megapixel grey X-ray with overlays needs about 900
/// MB) runs alone.
pub const MEMORY_BUDGET: u64 = 768 << 20;

/// The scales of `[cam] recipe = "sharp"`: shorter sides of the network input (see
/// `stage::preprocess::passes`), chosen from the figures in docs/models.md, "Sharper maps".
pub const SHARP_SCALES: &[usize] = &[224, 320, 416];

/// Whether `[cam] recipe = "sharp"` adds a mirrored pass at each scale.
pub const SHARP_FLIP: bool = true;

/// The cut of the `sharp` localisation preset, which `[cam] recipe = "sharp"` uses when no
/// preset is named: averaged maps are smoother than one pass's, so the CAM paper's 20 %
/// of the maximum outlines boxes about twice the truth (docs/models.md, "Sharper maps",
/// has the figures it was chosen from).
pub const SHARP_CUT: f32 = 0.3;

/// wsolevaluation's tau when the `wsol` preset is chosen without one: the CAM paper's
/// 20 % of the maximum (the paper sweeps tau; `cambox eval --calibrate` finds the best).
pub const WSOL_TAU: f32 = 0.2;

// ---- `cambox eval` --------------------------------------------------------------------

/// An image's boxes count as detections (RSNA, ChestX-ray8) only when its probability of
/// the evaluated class is at least this (`--min-score`): a classifier that says "no"
/// draws no box.
pub const EVAL_MIN_SCORE: f64 = 0.5;

/// Step of the threshold sweep tau in [0, 1) (wsolevaluation's `cam_curve_interval`;
/// `--sweep-step`); [`SWEEP_STEP_FINE`] for a fine sweep.
pub const SWEEP_STEP: f64 = 0.01;
pub const SWEEP_STEP_FINE: f64 = 0.001;

/// Images shown in report.html's gallery, worst IoU first (`--gallery`).
pub const GALLERY_MAX: usize = 60;

/// The pointing game's tolerance in original-image pixels (`eval --pointing-tolerance`):
/// TorchRay's benchmark uses 15.
pub const POINTING_TOLERANCE: f64 = 15.0;
