//! `run.json`: what was run, on what, with which model cut, and how it ended.
//!
//! Written by the pipeline when a run starts and when it ends, read back by `resume` (the
//! fingerprint), `merge` (the shard and its state) and `eval` (inputs, labels, decoding).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::run::timing::TimeReport;
use crate::stage::input_spec::InputSpec;
use crate::stage::localise::Recipe;
use crate::stage::maps::Activation;
use crate::stage::model::CutReport;
use crate::truth::annotations::Format;

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    Completed,
    Interrupted,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    pub cambox_version: String,
    pub started: String,
    pub finished: Option<String>,
    pub state: RunState,
    /// Stopped by SIGINT/SIGTERM; the next `run` in this folder resumes.
    pub interrupted: bool,
    /// Identifies the result-affecting configuration (see `crate::plan::fingerprint`).
    pub fingerprint: String,
    /// This run's part of a sharded dataset.
    pub shard: Option<Shard>,
    /// Rows kept from earlier runs in this folder.
    pub resumed_rows: u64,
    pub config: Config,
    pub model: ModelReport,
    /// The map method, or why there are no maps.
    pub method: String,
    /// The map-to-box recipe actually applied.
    pub localise: Recipe,
    pub counts: Counts,
    /// Where this invocation's time went, stage by stage (written when it ends).
    pub time: Option<TimeReport>,
    /// The ground truth the run localised (`[truth]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truth: Option<TruthReport>,
    /// The shard folders a merged run was joined from (`cambox merge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_from: Option<Vec<String>>,
}

/// What `run.json` says about the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    pub path: PathBuf,
    pub sha256: String,
    pub input: InputSpec,
    /// How the logits became probabilities (absent in runs of cambox before it had a
    /// choice: those were softmax).
    #[serde(default)]
    pub activation: Option<Activation>,
    pub cut: CutSection,
}

/// The cut as the model stage reports it, and the map methods the head allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutSection {
    #[serde(flatten)]
    pub report: CutReport,
    pub map_methods: Vec<String>,
}

/// The `truth` section of `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthReport {
    pub annotations: PathBuf,
    pub format: Format,
    pub class_map: Option<PathBuf>,
    /// Truth labels and the model classes they mean.
    pub mapped: BTreeMap<String, Vec<usize>>,
    /// Truth labels that mean no model class, with how many boxes carry them.
    pub unmapped: BTreeMap<String, usize>,
    /// Boxes without a label (RSNA rows, generic rows without one): they name no class.
    pub unlabelled_boxes: usize,
    /// Rows that could not be used, by kind (see `cambox eval` for the examples).
    pub issues: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub ok: u64,
    pub error: u64,
}

impl RunManifest {
    pub const FILE: &'static str = "run.json";

    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(Self::FILE);
        let mut text = serde_json::to_string_pretty(self).map_err(|e| Error::output(&path, e.to_string()))?;
        text.push('\n');
        super::atomic_write(&path, text.as_bytes()).map_err(|e| Error::io(&path, e))
    }

    /// The manifest in `dir`; the error says whether it is missing or unreadable.
    pub fn read(dir: &Path) -> std::result::Result<RunManifest, ManifestError> {
        let path = dir.join(Self::FILE);
        let text = std::fs::read_to_string(&path).map_err(ManifestError::Missing)?;
        serde_json::from_str(&text).map_err(|e| ManifestError::Unreadable(e.to_string()))
    }
}

/// Why [`RunManifest::read`] found no manifest.
#[derive(Debug)]
pub enum ManifestError {
    Missing(std::io::Error),
    Unreadable(String),
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManifestError::Missing(e) => write!(f, "cannot read run.json: {e}"),
            ManifestError::Unreadable(e) => write!(f, "unreadable run.json: {e}"),
        }
    }
}

/// The local time, as `run.json` records it.
pub fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}
