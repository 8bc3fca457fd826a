//! `run.json`: what was run, on what, with which model cut, and how it ended.

use std::path::Path;

use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::plan::ModelReport;

#[derive(Debug, Clone, Serialize)]
pub struct RunManifest<'a> {
    pub cambox_version: &'static str,
    pub started: String,
    pub finished: Option<String>,
    /// `running`, `completed`, `interrupted` or `failed`.
    pub state: &'static str,
    /// Stopped by SIGINT/SIGTERM; the next `run` in this folder resumes.
    pub interrupted: bool,
    /// Identifies the result-affecting configuration (see `resume`).
    pub fingerprint: &'a str,
    /// This run's part of a sharded dataset.
    pub shard: Option<Shard>,
    /// Rows kept from earlier runs in this folder.
    pub resumed_rows: u64,
    pub config: &'a Config,
    pub model: ModelReport<'a>,
    /// The map method, or why there are no maps.
    pub method: String,
    /// The map-to-box recipe actually applied.
    pub localise: &'a crate::localise::Recipe,
    pub counts: Counts,
    /// Where this invocation's time went, stage by stage (written when it ends).
    pub time: Option<crate::stages::TimeReport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    pub ok: u64,
    pub error: u64,
}

impl RunManifest<'_> {
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join("run.json");
        let mut text = serde_json::to_string_pretty(self).map_err(|e| Error::output(&path, e.to_string()))?;
        text.push('\n');
        super::atomic_write(&path, text.as_bytes()).map_err(|e| Error::io(&path, e))
    }
}

pub fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}
