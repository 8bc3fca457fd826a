//! The subcommands: each hands its options to the library and says what happened, on
//! standard error, in one line.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;

use crate::args::{EvalArgs, FaithArgs, InspectArgs, MergeArgs, RunArgs, SanityArgs};
use crate::{EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED};
use cambox::config::Config;
use cambox::plan::RunPlan;
use cambox::run::pipeline::{self, RunOptions};
use cambox::stage::model::ModelPlan;
use cambox::stage::preprocess::Normaliser;

pub fn run(a: &RunArgs) -> anyhow::Result<u8> {
    // SIGINT / SIGTERM: stop taking images, finish those in flight, write run.json.
    // Installed first: a scheduler may signal while the model is still loading, and the
    // run must then end as interrupted (130, resumable), not killed (143).
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).context("installing the signal handler")?;
    let plan = RunPlan::build(Config::load(&a.config)?, &a.config, a.into())?;
    if cancel.load(Ordering::SeqCst) {
        eprintln!("cambox: interrupted while starting, before any image; run again to start");
        return Ok(EXIT_INTERRUPTED);
    }
    cambox_kernels::platform::limit_malloc_arenas(plan.threads);
    let opts = RunOptions { quiet: a.quiet, cancel: Some(cancel), force: a.force, retry_errors: a.retry_errors };
    let summary = pipeline::run(&plan, opts).with_context(|| format!("run into {} stopped", plan.out_dir.display()))?;
    let c = summary.counts;
    if let Some(why) = &summary.nothing_found {
        eprintln!("cambox: {why}");
        return Ok(EXIT_SOME_FAILED);
    }
    if summary.interrupted {
        eprintln!("cambox: interrupted: {} images ok, {} errors so far; run again to resume", c.ok, c.error);
        return Ok(EXIT_INTERRUPTED);
    }
    eprintln!("cambox: {} images ok, {} errors; results in {}", c.ok, c.error, shown(&plan.out_dir).display());
    Ok(if c.error > 0 { EXIT_SOME_FAILED } else { EXIT_OK })
}

pub fn merge(a: &MergeArgs) -> anyhow::Result<u8> {
    let m = cambox::run::merge::merge(&a.shards, &a.out)?;
    eprintln!(
        "cambox: merged {} shards: {} images, {} boxes, {} files into {}",
        m.shards,
        m.images,
        m.boxes,
        m.files,
        a.out.display()
    );
    Ok(EXIT_OK)
}

pub fn inspect(a: &InspectArgs) -> anyhow::Result<u8> {
    // The probe is a plain [0, 1] image: no mean or std to apply.
    let plan = ModelPlan::load(&a.into(), &Normaliser::identity())?;
    print!("{}", cambox::inspect::describe(&a.model, &plan));
    Ok(EXIT_OK)
}

pub fn eval(a: EvalArgs) -> anyhow::Result<u8> {
    let ev = cambox::eval::run_eval(&a.into())?;
    print!("{}", cambox::eval::report::table(&ev));
    Ok(EXIT_OK)
}

pub fn faithfulness(a: &FaithArgs) -> anyhow::Result<u8> {
    let f = cambox::faith::run_faithfulness(&a.into())?;
    for e in &f.errors {
        eprintln!("cambox: {e}");
    }
    let images: std::collections::BTreeSet<&str> = f.rows.iter().map(|r| r.rel.as_str()).collect();
    eprintln!(
        "cambox: faithfulness of {} images ({} rows), {} errors; results in {}",
        images.len(),
        f.rows.len(),
        f.errors.len(),
        shown(&a.out).display()
    );
    Ok(if f.errors.is_empty() { EXIT_OK } else { EXIT_SOME_FAILED })
}

pub fn sanity(a: &SanityArgs) -> anyhow::Result<u8> {
    let ov = cambox::plan::Overrides {
        out: Some(a.out.clone()),
        inputs: a.inputs.clone(),
        method: a.method,
        ..Default::default()
    };
    let plan = RunPlan::build(Config::load(&a.config)?, &a.config, ov)?;
    let o = cambox::faith::sanity::SanityOptions { out: a.out.clone(), layers: a.layers, seed: a.seed };
    let rows = cambox::faith::sanity::run_sanity(&plan, &o)?;
    println!("{:<14} {:>9} {:>9} {:>7}  layer", "stage", "spearman", "ssim", "images");
    for r in &rows {
        println!("{:<14} {:>9.4} {:>9.4} {:>7}  {}", r.stage, r.spearman, r.ssim, r.images, r.layer);
    }
    eprintln!("cambox: sanity check written to {}", shown(&a.out.join("sanity.csv")).display());
    Ok(EXIT_OK)
}

/// A path as a user would type it: resolved (no `configs/../`), relative to the working
/// folder when it lies under it.
fn shown(path: &Path) -> PathBuf {
    let Ok(full) = path.canonicalize() else { return path.to_path_buf() };
    let here = std::env::current_dir().and_then(|d| d.canonicalize());
    match here.as_ref().map(|h| full.strip_prefix(h)) {
        Ok(Ok(rel)) if !rel.as_os_str().is_empty() => rel.to_path_buf(),
        _ => full,
    }
}
