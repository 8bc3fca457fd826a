//! `cambox.run` and `cambox.evaluate`: the command's `run` and `eval`, the same library
//! calls with the same options, their results as Python values.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use cambox::eval::{run_eval, EvalOptions};
use cambox::explain::{configuration, SETTINGS};
use cambox::plan::{Overrides, RunPlan};
use cambox::run::pipeline::{self, RunOptions};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{settings, spelled};
use crate::drive::drive;
use crate::errors::{guarded, library};
use crate::results::json;

/// The sections and keys a setting can name.
#[pyfunction(name = "settings")]
pub fn setting_keys() -> Vec<(&'static str, Vec<&'static str>)> {
    SETTINGS.iter().map(|(s, keys)| (*s, keys.to_vec())).collect()
}

/// What `cambox run` runs: the configuration file with `settings` put in (the command's
/// value flags, `--method`, `--threads`, `--kernels`, are settings here), and the flags
/// that are not settings. Returns the summary; Ctrl-C interrupts the run as SIGINT does.
#[pyfunction]
#[pyo3(signature = (config, settings_, inputs, out=None, shard=None, truth=None, truth_format=None, class_map=None, quiet=false, force=false, retry_errors=false))]
#[allow(clippy::too_many_arguments)]
pub fn run<'py>(
    py: Python<'py>,
    config: PathBuf,
    settings_: Vec<(String, Bound<'py, PyAny>)>,
    inputs: Vec<PathBuf>,
    out: Option<PathBuf>,
    shard: Option<(u32, u32)>,
    truth: Option<PathBuf>,
    truth_format: Option<String>,
    class_map: Option<PathBuf>,
    quiet: bool,
    force: bool,
    retry_errors: bool,
) -> PyResult<Bound<'py, PyDict>> {
    guarded(|| {
        let settings = settings(settings_)?;
        let truth_format = match truth_format.as_deref() {
            None | Some("auto") => None,
            Some(f) => Some(spelled("truth_format", f)?),
        };
        let ov = Overrides { out, inputs, shard, truth, truth_format, class_map, ..Overrides::default() };
        let plan =
            py.detach(|| RunPlan::build(configuration(Some(&config), settings)?, &config, ov)).map_err(library)?;
        let cancel = Arc::new(AtomicBool::new(false));
        let opts = RunOptions { quiet, cancel: Some(cancel.clone()), force, retry_errors };
        let summary = drive(py, &cancel, |_, _| Ok(()), |_| pipeline::run(&plan, opts))?;
        let summary = summary.map_err(|e| {
            // The command's context for a run that stopped.
            let err = library(e);
            let msg = format!("run into {} stopped: {}", plan.out_dir.display(), err.value(py));
            let class = err.get_type(py);
            PyErr::from_type(class, msg)
        })?;
        let d = PyDict::new(py);
        let c = summary.counts;
        d.set_item("ok", c.ok)?;
        d.set_item("errors", c.error)?;
        d.set_item("interrupted", summary.interrupted)?;
        d.set_item("nothing_found", summary.nothing_found.as_deref())?;
        d.set_item("out", plan.out_dir.clone())?;
        d.set_item("fingerprint", &plan.fingerprint)?;
        // The command's exit status for this outcome.
        let status = match (&summary.nothing_found, summary.interrupted, c.error) {
            (Some(_), _, _) => 3,
            (None, true, _) => 130,
            (None, false, 0) => 0,
            _ => 3,
        };
        d.set_item("status", status)?;
        Ok(d)
    })
}

/// What `cambox eval` computes and writes; returns what `summary.json` holds.
#[pyfunction]
#[pyo3(signature = (run, truth, format=None, class_map=None, out=None, class_=None, truth_label=None, min_score=None, convention=None, baseline=None, calibrate=false, sweep_step=None, unannotated_negative=false, gallery=None, pointing_tolerance=None, truth_masks=None, bootstrap=None, bootstrap_seed=None, taus_from=None, split=None))]
#[allow(clippy::too_many_arguments)]
pub fn evaluate<'py>(
    py: Python<'py>,
    run: PathBuf,
    truth: PathBuf,
    format: Option<String>,
    class_map: Option<PathBuf>,
    out: Option<PathBuf>,
    class_: Option<String>,
    truth_label: Option<String>,
    min_score: Option<f64>,
    convention: Option<String>,
    baseline: Option<String>,
    calibrate: bool,
    sweep_step: Option<f64>,
    unannotated_negative: bool,
    gallery: Option<usize>,
    pointing_tolerance: Option<f64>,
    truth_masks: Option<PathBuf>,
    bootstrap: Option<usize>,
    bootstrap_seed: Option<u64>,
    taus_from: Option<PathBuf>,
    split: Option<PathBuf>,
) -> PyResult<Bound<'py, PyAny>> {
    guarded(|| {
        let mut o = EvalOptions::new(run, truth);
        o.format = match format.as_deref() {
            None | Some("auto") => None,
            Some(f) => Some(spelled("format", f)?),
        };
        o.class_map = class_map;
        o.out = out;
        o.class = class_;
        o.truth_label = truth_label;
        o.min_score = min_score.unwrap_or(o.min_score);
        o.convention = convention.map(|c| spelled("convention", &c)).transpose()?.unwrap_or(o.convention);
        o.baseline = baseline.map(|b| spelled("baseline", &b)).transpose()?;
        o.calibrate = calibrate;
        o.sweep_step = sweep_step.unwrap_or(o.sweep_step);
        o.unannotated_negative = unannotated_negative;
        o.gallery = gallery.unwrap_or(o.gallery);
        o.pointing_tolerance = pointing_tolerance.unwrap_or(o.pointing_tolerance);
        o.truth_masks = truth_masks;
        o.bootstrap = bootstrap.unwrap_or(o.bootstrap);
        o.bootstrap_seed = bootstrap_seed.unwrap_or(o.bootstrap_seed);
        o.taus_from = taus_from;
        o.split = split;
        let ev = py.detach(|| run_eval(&o)).map_err(library)?;
        json(py, &ev.summary)
    })
}
