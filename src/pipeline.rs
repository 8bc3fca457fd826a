//! The run: discover -> decode -> preprocess -> infer -> map -> write, images in parallel.
//!
//! The walk is a lazy iterator bridged into rayon, so work in flight is bounded by the
//! worker count and the channel to the single writer, never by the dataset size. Each
//! image is processed inside `catch_unwind`: whatever goes wrong with one file becomes
//! its `error` row, and the run goes on.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use crate::cam::{ClassMaps, MapMethod, Prediction};
use crate::decode::ImageMeta;
use crate::defaults;
use crate::discover::Discovered;
use crate::error::{Error, ImageError, Result};
use crate::localise::BoxSet;
use crate::output::boxes_csv::BoxesCsv;
use crate::output::images_csv::ImagesCsv;
use crate::output::manifest::{now, Counts, RunManifest, Shard};
use crate::output::sync_file;
use crate::plan::RunPlan;
use crate::preprocess::Geometry;
use crate::stages::{StageTimes, Stopwatch, TimeReport};

/// The result of one input file.
pub struct ImageRecord {
    pub rel: String,
    /// Original size and file facts, when the file could be decoded.
    pub info: Option<ImageInfo>,
    pub outcome: std::result::Result<ImageOutcome, ImageError>,
    pub ms: f64,
    /// Time per stage (stages not reached are 0).
    pub stages: StageTimes,
}

/// What decoding learnt about a file.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub width: u32,
    pub height: u32,
    pub meta: ImageMeta,
}

/// What a successfully processed image produced.
pub struct ImageOutcome {
    pub prediction: Prediction,
    /// max |mean(M_k) + b_k - logit_k| over the top-k classes (CAM heads only).
    pub logit_check: Option<f32>,
    pub geometry: Geometry,
    /// Boxes of each localised class (empty when the head has no maps).
    pub boxes: Vec<BoxSet>,
    /// Masks, overlays and maps written for this image, not yet synced to disk.
    pub files: Vec<std::path::PathBuf>,
}

/// How the run ended.
#[derive(Debug, Clone, Copy)]
pub struct RunSummary {
    /// Rows in `images.csv` at the end, including those of earlier runs resumed.
    pub counts: Counts,
    /// Stopped by a signal before every image was done.
    pub interrupted: bool,
}

/// Options that do not change results.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub quiet: bool,
    /// Set from outside (SIGINT, SIGTERM) to stop taking new images.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Start over in a folder that holds another run.
    pub force: bool,
    /// On resume, process again the images recorded as `error`.
    pub retry_errors: bool,
}

pub fn run(plan: &RunPlan, opts: RunOptions) -> Result<RunSummary> {
    let out = &plan.out_dir;
    std::fs::create_dir_all(out).map_err(|e| Error::output(out, format!("cannot create the output folder: {e}")))?;
    let previous = crate::resume::prepare(out, &plan.fingerprint, opts.force, opts.retry_errors)?;
    let resumed = previous.is_some();
    let previous = previous.unwrap_or_default();
    let mut manifest = RunManifest {
        cambox_version: env!("CARGO_PKG_VERSION"),
        started: now(),
        finished: None,
        state: "running",
        interrupted: false,
        fingerprint: &plan.fingerprint,
        shard: plan.shard.map(|(index, count)| Shard { index, count }),
        resumed_rows: previous.ok + previous.error,
        config: &plan.config,
        model: plan.model_report(),
        method: method_note(plan),
        localise: &plan.localiser.recipe,
        counts: Counts { ok: previous.ok, error: previous.error },
        time: None,
    };
    if !plan.method.class_specific() {
        eprintln!("cambox: note: {}", method_note(plan));
    }
    if plan.config.decode.jpeg_scaling != plan.decoder.jpeg_scaling {
        eprintln!("cambox: note: [decode] jpeg_scaling = \"dct\" is not applied: overlays are drawn on full-resolution images");
    }
    manifest.write(out)?;
    let (mut csv, mut boxes_csv) = if resumed {
        (ImagesCsv::append(&out.join("images.csv"))?, BoxesCsv::append(&out.join("boxes.csv"))?)
    } else {
        (ImagesCsv::create(&out.join("images.csv"))?, BoxesCsv::create(&out.join("boxes.csv"))?)
    };
    let preset = plan.localiser.recipe.preset.clone();

    let stop = AtomicBool::new(false);
    let cancelled = || opts.cancel.as_ref().map(|c| c.load(Ordering::Relaxed)).unwrap_or(false);
    // The walk, restricted to this shard and to what is not done yet; lazy, so nothing
    // proportional to the dataset is held beyond the set of finished paths.
    let todo = || {
        plan.discovery
            .iter()
            .filter(|d| plan.shard.map(|(i, n)| crate::resume::shard_of(d.rel(), n) == i).unwrap_or(true))
            .filter(|d| !previous.done.contains(d.rel()))
    };
    let total = todo().count() as u64;
    if resumed && !opts.quiet {
        eprintln!("cambox: resuming: {} images already done, {total} to go", previous.done.len());
    }
    let mut progress = crate::progress::Progress::new(total, opts.quiet);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(plan.threads)
        .build()
        .map_err(|e| Error::Usage(format!("cannot start {} worker threads: {e}", plan.threads)))?;

    let (tx, rx) = crossbeam_channel::bounded::<ImageRecord>(defaults::CHANNEL_CAPACITY);
    let mut counts = manifest.counts;
    let mut since_flush = 0usize;
    let mut time = TimeReport { threads: plan.threads, ..TimeReport::default() };
    let started = Instant::now();
    let write_result: Result<()> = std::thread::scope(|s| {
        s.spawn(|| {
            pool.install(|| {
                todo().take_while(|_| !stop.load(Ordering::Relaxed) && !cancelled()).par_bridge().for_each_with(
                    tx,
                    |tx, item| {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let _ = tx.send(process(plan, item));
                    },
                )
            })
        });
        for rec in rx.iter() {
            // An output file that cannot be written (disk full, permissions) stops the run:
            // every later image would fail the same way. The image gets no row, so a
            // resumed run does it again.
            if let Err(ImageError::Write(msg)) = &rec.outcome {
                stop.store(true, Ordering::Relaxed);
                let msg = msg.clone();
                for _ in rx.iter() {}
                return Err(Error::output(out, msg));
            }
            let failed = rec.outcome.is_err();
            // The row promises its files: they reach the disk before the row is written
            // (the workers wrote them without waiting; see output::atomic_write_unsynced).
            if let Ok(o) = &rec.outcome {
                if let Some(e) = o.files.iter().find_map(|f| sync_file(f).err().map(|e| (f, e))) {
                    stop.store(true, Ordering::Relaxed);
                    for _ in rx.iter() {}
                    return Err(Error::io(e.0, e.1));
                }
            }
            let written = boxes_csv
                .write(&rec, &plan.labels, &preset, plan.method.name())
                .and_then(|_| csv.write(&rec, &plan.labels));
            if let Err(e) = written {
                stop.store(true, Ordering::Relaxed);
                // Drain so the workers can finish; their rows are lost, the run is resumable.
                for _ in rx.iter() {}
                return Err(e);
            }
            if failed {
                counts.error += 1;
            } else {
                counts.ok += 1;
            }
            progress.inc(failed);
            time.images += 1;
            time.stage_seconds.add(&rec.stages);
            // Boxes before images: a row in images.csv promises its boxes are on disk,
            // so a kill between the two flushes costs a redo, never a lost box.
            since_flush += 1;
            if since_flush >= defaults::FLUSH_EVERY_ROWS {
                since_flush = 0;
                if let Err(e) = boxes_csv.flush().and_then(|_| csv.flush()) {
                    stop.store(true, Ordering::Relaxed);
                    for _ in rx.iter() {}
                    return Err(e);
                }
            }
        }
        boxes_csv.flush().and_then(|_| csv.flush())
    });
    progress.finish();
    time.wall_seconds = started.elapsed().as_secs_f64();
    manifest.time = Some(time);
    let interrupted = cancelled() && write_result.is_ok();
    manifest.counts = counts;
    manifest.finished = Some(now());
    manifest.interrupted = interrupted;
    manifest.state = match (&write_result, interrupted) {
        (Err(_), _) => "failed",
        (Ok(_), true) => "interrupted",
        (Ok(_), false) => "completed",
    };
    let manifest_result = manifest.write(out);
    write_result?;
    manifest_result?;
    Ok(RunSummary { counts, interrupted })
}

/// The method, with what a reader must know about it.
fn method_note(plan: &RunPlan) -> String {
    match plan.method {
        MapMethod::EigenCam => "eigencam: the maps are class-agnostic (first principal component of the feature map); every class gets the same map".to_string(),
        m => m.name().to_string(),
    }
}

/// Names an image (by a substring of its relative path) whose processing panics, so that
/// the tests can prove a panic costs one row, not the run. Read once.
pub const INJECT_PANIC_ENV: &str = "CAMBOX_TEST_INJECT_PANIC";

fn inject_panic(rel: &str) -> bool {
    static WHICH: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    WHICH
        .get_or_init(|| std::env::var(INJECT_PANIC_ENV).ok().filter(|s| !s.is_empty()))
        .as_deref()
        .is_some_and(|w| rel.contains(w))
}

/// Processes one discovered item into its record; never panics.
pub fn process(plan: &RunPlan, item: Discovered) -> ImageRecord {
    let t0 = Instant::now();
    let (rel, path) = match item {
        Discovered::Image(f) => (f.rel, f.path),
        Discovered::Unwalkable { rel, reason, .. } => {
            let outcome = Err(ImageError::Read(reason));
            return ImageRecord { rel, info: None, outcome, ms: 0.0, stages: StageTimes::default() };
        }
    };
    let mut info = None;
    let mut stages = StageTimes::default();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        if inject_panic(&rel) {
            panic!("fault injected by {INJECT_PANIC_ENV}");
        }
        process_file(plan, &rel, &path, &mut info, &mut stages)
    }))
    .unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(ImageError::Panic(msg))
    });
    ImageRecord { rel, info, outcome, ms: t0.elapsed().as_secs_f64() * 1e3, stages }
}

fn process_file(
    plan: &RunPlan,
    rel: &str,
    path: &std::path::Path,
    info: &mut Option<ImageInfo>,
    stages: &mut StageTimes,
) -> std::result::Result<ImageOutcome, ImageError> {
    let mut clock = Stopwatch::start();
    // The decoder may reduce a large JPEG, keeping enough pixels for what the
    // preprocessing resizes to; sizes reported are the original's either way.
    let target = |w: u32, h: u32| plan.preprocessor.resize_target(w, h);
    let img = plan.decoder.decode_file_for(path, Some(&target))?;
    stages.decode = clock.lap();
    let (width, height) = img.original;
    *info = Some(ImageInfo { width, height, meta: img.meta.clone() });
    let input = plan.preprocessor.run(&img)?;
    // The decoded image is only kept when an overlay will be drawn on it.
    let img = if plan.artefacts.overlays { Some(img) } else { None };
    stages.preprocess = clock.lap();
    let inf = plan.model.infer(input.tensor).map_err(ImageError::Inference)?;
    stages.network = clock.lap();
    let head = &plan.model.cut.head;
    // The network's own logits: the per-image check below holds the maps against them.
    let logits = inf.logits;
    if logits.iter().any(|v| !v.is_finite()) {
        return Err(ImageError::Inference("the network produced non-finite logits".into()));
    }
    let prediction = Prediction::from_logits(logits, plan.top_k);
    let localised = plan.classes.select(&prediction);
    // Maps only for the classes needed: the top-k (for the logit check) and the localised.
    let mut needed = prediction.top.clone();
    needed.extend(localised.iter().filter(|c| !prediction.top.contains(c)));
    let (maps, logit_check) = match plan.method {
        MapMethod::Cam => {
            let m = ClassMaps::cam(head, &inf.features, &needed);
            let check = m.as_ref().map(|m| m.logit_check(&prediction.logits));
            (m, check)
        }
        method => {
            let m = ClassMaps::by_method(method, plan.model.program.as_ref(), &inf.features, &needed)
                .map_err(ImageError::Maps)?;
            (Some(m), None)
        }
    };
    if let Some(c) = logit_check {
        if c.is_nan() || c > defaults::LOGIT_CHECK_MAX {
            return Err(ImageError::Maps(format!(
                "logit check failed: mean(map) + bias differs from the logit by {c:.3e} (> {:.0e})",
                defaults::LOGIT_CHECK_MAX
            )));
        }
    }
    stages.maps = clock.lap();
    let mut boxes = Vec::new();
    let mut files = Vec::new();
    if let Some(maps) = &maps {
        let locs: Vec<_> = localised
            .iter()
            .map(|&k| {
                let i = needed.iter().position(|&n| n == k).expect("computed above");
                plan.localiser.localise(k, maps.map(i), &input.geometry)
            })
            .collect();
        stages.localise = clock.lap();
        let kept = ClassMaps {
            classes: localised.clone(),
            maps: maps.maps.select(
                ndarray::Axis(0),
                &localised.iter().map(|k| needed.iter().position(|n| n == k).expect("computed")).collect::<Vec<_>>(),
            ),
            bias: Vec::new(),
        };
        files = plan.artefacts.write(rel, img.as_ref(), &locs, &kept, &input.geometry).map_err(ImageError::Write)?;
        stages.write = clock.lap();
        boxes = locs.into_iter().map(|l| BoxSet { class: l.class, boxes: l.boxes }).collect();
    }
    Ok(ImageOutcome { prediction, logit_check, geometry: input.geometry, boxes, files })
}
