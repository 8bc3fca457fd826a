//! `[output]`: what a run writes besides its tables.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputOptions {
    /// Output folder; `--out` overrides it.
    pub dir: Option<PathBuf>,
    /// Classes listed in the `top_k` column (and checked by `logit_check`).
    pub top_k: usize,
    /// Write `masks/<path>.<class>.png` (0/255 at original resolution).
    pub masks: bool,
    /// Write `overlays/<path>.<class>.jpg` (heatmap and boxes on the image).
    pub overlays: bool,
    /// Write `maps/<path>.npy` (raw float32 maps at feature resolution) and a `.json`
    /// sidecar (classes, geometry) for threshold sweeps.
    pub maps: bool,
    /// Write `probabilities.csv`: `path` and every class's probability (softmax, or the
    /// per-class sigmoid of multi-label models), for AUROC and the like.
    #[serde(skip_serializing_if = "is_false")]
    pub probabilities: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for OutputOptions {
    fn default() -> Self {
        OutputOptions {
            dir: None,
            top_k: crate::defaults::TOP_K,
            masks: false,
            overlays: false,
            maps: false,
            probabilities: false,
        }
    }
}
