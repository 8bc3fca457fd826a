//! The run: discover -> decode -> preprocess -> infer -> map -> localise -> write, images
//! in parallel.
//!
//! The walk is a lazy iterator bridged into rayon, so work in flight is bounded by the
//! worker count and the channel to the single writer, never by the dataset size. Each
//! image makes its trip ([`crate::run::image`]) on a worker; the one writer thread turns
//! the records into rows, in the order they arrive.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use crate::error::{Error, ImageError, Result};
use crate::output::boxes_csv::BoxRow;
use crate::output::fields::{ClassProbs, Fixed, Sci3, Shortest, Spacing};
use crate::output::images_csv::{ImageRow, Status};
use crate::output::manifest::{now, Counts, RunManifest, RunState, Shard};
use crate::output::probabilities_csv::{self, ProbabilitiesCsv};
use crate::output::sync_file;
use crate::output::table::TableWriter;
use crate::plan::RunPlan;
use crate::run::image::{process, ImageRecord};
use crate::run::lock::FolderLock;
use crate::run::progress::Progress;
use crate::run::resume::{self, Previous};
use crate::run::timing::TimeReport;
use crate::stage::discover::Discovered;
use crate::stage::maps::MapMethod;
use crate::stage::preprocess::{CamRecipe, ResizeMode};

/// Rows buffered by the CSV writers before an explicit flush; a run killed in between
/// loses at most this many finished rows (they are redone on resume).
const FLUSH_EVERY_ROWS: usize = 16;

/// Images in flight between the parallel workers and the single writer.
const CHANNEL_CAPACITY: usize = 64;

/// How the run ended.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Rows in `images.csv` at the end, including those of earlier runs resumed.
    pub counts: Counts,
    /// Stopped by a signal before every image was done.
    pub interrupted: bool,
    /// Why there was nothing to process at all: no file under the inputs is an image by
    /// the configured extensions (a scheduler must see that: exit status 3).
    pub nothing_found: Option<String>,
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
    if out.exists() && !out.is_dir() {
        return Err(Error::output(out, "the output path is a file, not a folder"));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::output(out, format!("cannot create the output folder: {e}")))?;
    // Held until the run returns: no other run (or merge) writes this folder meanwhile.
    let _lock = FolderLock::acquire(out, "run")?;
    let prob_header = plan.config.output.probabilities.then(|| probabilities_csv::header(&plan.labels));
    if opts.force {
        let removed = resume::force_clear(out)?;
        if !opts.quiet {
            eprintln!("cambox: --force: removed {removed} of the previous run in {}", out.display());
        }
    }
    let shard = plan.shard.map(|(index, count)| Shard { index, count });
    let previous = resume::prepare(out, &plan.fingerprint, shard, opts.retry_errors, prob_header.as_deref())?;
    let resumed = previous.is_some();
    let previous = previous.unwrap_or_default();
    let mut manifest = start_manifest(plan, &previous);
    if let (Some(why), false) = (&plan.method_reason, opts.quiet) {
        eprintln!("cambox: method {} (auto: {why})", plan.method.name());
    }
    if !plan.method.class_specific() {
        eprintln!("cambox: note: {}", method_note(plan.method));
    }
    if plan.config.decode.jpeg_scaling != plan.decoder.jpeg_scaling {
        eprintln!("cambox: note: [decode] jpeg_scaling = \"dct\" is not applied: overlays are drawn on full-resolution images");
    }
    if plan.config.cam.recipe == Some(CamRecipe::Sharp)
        && plan.config.preprocess.resize == ResizeMode::ShorterSideThenCenterCrop
    {
        eprintln!("cambox: note: [cam] recipe = \"sharp\" with a centre crop: the network never sees the image's edges; [preprocess] resize = \"stretch\" or \"letterbox\" shows it the whole image");
    }
    if let Some(note) = plan.truth.as_ref().and_then(|t| t.unmapped_note()) {
        eprintln!("cambox: note: {note}");
    }
    manifest.write(out)?;
    let tables = Tables::open(out, resumed, prob_header.as_deref())?;
    let cancelled = || opts.cancel.as_ref().map(|c| c.load(Ordering::Relaxed)).unwrap_or(false);
    // The walk, restricted to this shard and to what is not done yet; lazy, so nothing
    // proportional to the dataset is held beyond the set of finished paths.
    let todo = || {
        plan.discovery
            .iter()
            .filter(|d| plan.shard.map(|(i, n)| resume::shard_of(d.rel(), n) == i).unwrap_or(true))
            .filter(|d| !previous.done.contains(d.rel()))
    };
    let total = todo().count() as u64;
    let nothing_found = (total == 0 && plan.discovery.iter().next().is_none()).then(|| no_images(plan));
    if resumed && !opts.quiet {
        eprintln!("cambox: resuming: {} images already done, {total} to go", previous.done.len());
    }
    let progress = Progress::new(total, opts.quiet);
    let done = process_all(plan, todo(), &cancelled, tables, progress, manifest.counts)?;

    let interrupted = cancelled() && done.result.is_ok();
    manifest.time = Some(done.time);
    manifest.counts = done.counts;
    manifest.finished = Some(now());
    manifest.interrupted = interrupted;
    manifest.state = match (&done.result, interrupted) {
        (Err(_), _) => RunState::Failed,
        (Ok(_), true) => RunState::Interrupted,
        (Ok(_), false) => RunState::Completed,
    };
    let manifest_result = manifest.write(out);
    done.result?;
    manifest_result?;
    Ok(RunSummary { counts: done.counts, interrupted, nothing_found })
}

/// "no images found under ...", with what was looked for.
fn no_images(plan: &RunPlan) -> String {
    let i = &plan.config.input;
    let roots: Vec<String> = i.paths.iter().map(|p| p.display().to_string()).collect();
    format!(
        "no images found under {} (extensions {}{}{})",
        roots.join(", "),
        i.extensions.join(", "),
        if i.sniff_dicom { ", and files without one that are DICOM" } else { "" },
        if i.include_hidden { "" } else { "; hidden files and folders skipped" }
    )
}

/// What [`process_all`] did.
struct Processed {
    /// `Err` when writing stopped the run (the rows of the images in flight are lost, and
    /// the folder stays resumable).
    result: Result<()>,
    counts: Counts,
    time: TimeReport,
}

/// Processes `todo` on the plan's worker threads, the calling thread writing each
/// image's rows as its record arrives, until the walk ends, `cancelled` turns true, or a
/// write fails. `counts` are those of earlier runs in the folder.
fn process_all(
    plan: &RunPlan,
    todo: impl Iterator<Item = Discovered> + Send,
    cancelled: &(dyn Fn() -> bool + Sync),
    mut tables: Tables,
    mut progress: Progress,
    mut counts: Counts,
) -> Result<Processed> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(plan.threads)
        .build()
        .map_err(|e| Error::Usage(format!("cannot start {} worker threads: {e}", plan.threads)))?;
    let stop = AtomicBool::new(false);
    let (tx, rx) = crossbeam_channel::bounded::<ImageRecord>(CHANNEL_CAPACITY);
    let mut time = TimeReport { threads: plan.threads, ..TimeReport::default() };
    let started = Instant::now();
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            pool.install(|| {
                todo.take_while(|_| !stop.load(Ordering::Relaxed) && !cancelled()).par_bridge().for_each_with(
                    tx,
                    |tx, item| {
                        if !stop.load(Ordering::Relaxed) {
                            let _ = tx.send(process(plan, item));
                        }
                    },
                )
            })
        });
        let result = rx.iter().try_for_each(|rec| {
            let failed = tables.record(plan, &rec)?;
            if failed {
                counts.error += 1;
            } else {
                counts.ok += 1;
            }
            progress.inc(failed);
            time.images += 1;
            time.stage_seconds.add(&rec.stages);
            Ok(())
        });
        if result.is_err() {
            // Stop the workers and let those in flight finish.
            stop.store(true, Ordering::Relaxed);
            for _ in rx.iter() {}
        }
        result.and_then(|_| tables.flush())
    });
    progress.finish();
    time.wall_seconds = started.elapsed().as_secs_f64();
    Ok(Processed { result, counts, time })
}

/// `run.json` as the run starts.
fn start_manifest(plan: &RunPlan, previous: &Previous) -> RunManifest {
    RunManifest {
        cambox_version: env!("CARGO_PKG_VERSION").to_string(),
        started: now(),
        finished: None,
        state: RunState::Running,
        interrupted: false,
        fingerprint: plan.fingerprint.clone(),
        shard: plan.shard.map(|(index, count)| Shard { index, count }),
        resumed_rows: previous.ok + previous.error,
        config: plan.config.clone(),
        model: plan.model_report(),
        method: match &plan.method_reason {
            Some(why) => format!("{} (auto: {why})", method_note(plan.method)),
            None => method_note(plan.method),
        },
        localise: plan.localiser.recipe.clone(),
        counts: Counts { ok: previous.ok, error: previous.error },
        time: None,
        truth: plan.truth.as_ref().map(|t| t.report.clone()),
        merged_from: None,
    }
}

/// The method, with what a reader must know about it.
fn method_note(method: MapMethod) -> String {
    match method {
        MapMethod::EigenCam => "eigencam: the maps are class-agnostic (first principal component of the feature map); every class gets the same map".to_string(),
        m => m.name().to_string(),
    }
}

/// The tables, written by the one writer thread.
struct Tables {
    images: TableWriter<ImageRow>,
    boxes: TableWriter<BoxRow>,
    probabilities: Option<ProbabilitiesCsv>,
    since_flush: usize,
}

impl Tables {
    /// Opens the tables (`probabilities.csv` when `prob_header` is given).
    fn open(out: &Path, resumed: bool, prob_header: Option<&[String]>) -> Result<Tables> {
        let (images, boxes) = (out.join("images.csv"), out.join("boxes.csv"));
        let probs = out.join(probabilities_csv::FILE);
        let (images, boxes, probabilities) = if resumed {
            let probabilities = match prob_header {
                Some(_) if probs.exists() => Some(ProbabilitiesCsv::append(&probs)?),
                Some(h) => Some(ProbabilitiesCsv::create(&probs, h)?),
                None => None,
            };
            (TableWriter::append(&images)?, TableWriter::append(&boxes)?, probabilities)
        } else {
            let probabilities = prob_header.map(|h| ProbabilitiesCsv::create(&probs, h)).transpose()?;
            (TableWriter::create(&images)?, TableWriter::create(&boxes)?, probabilities)
        };
        Ok(Tables { images, boxes, probabilities, since_flush: 0 })
    }

    /// Writes the rows of one image; returns whether it is an error row. An `Err` stops
    /// the run: an output file that cannot be written (disk full, permissions) would fail
    /// the same way for every later image. The image then gets no row, so a resumed run
    /// does it again.
    fn record(&mut self, plan: &RunPlan, rec: &ImageRecord) -> Result<bool> {
        if let Err(ImageError::Write(msg)) = &rec.outcome {
            return Err(Error::output(&plan.out_dir, msg.clone()));
        }
        // The row promises its files: they reach the disk before the row is written
        // (the workers wrote them without waiting; see output::atomic_write_unsynced).
        if let Ok(o) = &rec.outcome {
            if let Some((f, e)) = o.files.iter().find_map(|f| sync_file(f).err().map(|e| (f, e))) {
                return Err(Error::io(f, e));
            }
        }
        let (image, boxes) = rows(plan, rec);
        for b in &boxes {
            self.boxes.write(b)?;
        }
        if let (Some(t), Ok(o)) = (self.probabilities.as_mut(), &rec.outcome) {
            t.write(&rec.rel, &o.prediction.probs)?;
        }
        self.images.write(&image)?;
        // Boxes before images: a row in images.csv promises its boxes are on disk, so a
        // kill between the two flushes costs a redo, never a lost box.
        self.since_flush += 1;
        if self.since_flush >= FLUSH_EVERY_ROWS {
            self.flush()?;
        }
        Ok(image.status == Status::Error)
    }

    fn flush(&mut self) -> Result<()> {
        self.since_flush = 0;
        self.boxes.flush()?;
        if let Some(t) = self.probabilities.as_mut() {
            t.flush()?;
        }
        self.images.flush()
    }
}

/// The `images.csv` row and the `boxes.csv` rows of one record.
pub fn rows(plan: &RunPlan, r: &ImageRecord) -> (ImageRow, Vec<BoxRow>) {
    let meta = r.info.as_ref().map(|i| i.meta.clone()).unwrap_or_default();
    let mut image = ImageRow {
        path: r.rel.clone(),
        status: Status::Ok,
        error: String::new(),
        width: r.info.as_ref().map(|i| i.width),
        height: r.info.as_ref().map(|i| i.height),
        class_index: None,
        class_name: String::new(),
        score: None,
        top_k: ClassProbs::default(),
        logit_check: None,
        ms: Fixed(r.ms),
        frames: meta.frames,
        pixel_spacing: meta.pixel_spacing.map(|(r, c)| Spacing(r, c)),
        patient_id: meta.patient_id.unwrap_or_default(),
        study_uid: meta.study_uid.unwrap_or_default(),
        sop_instance_uid: meta.sop_instance_uid.unwrap_or_default(),
    };
    let o = match &r.outcome {
        Ok(o) => o,
        Err(e) => {
            image.status = Status::Error;
            image.error = e.one_line();
            return (image, Vec::new());
        }
    };
    let p = &o.prediction;
    let k = p.top1();
    image.class_index = Some(k);
    image.class_name = plan.labels.name(k).to_string();
    image.score = Some(Fixed(p.probs[k] as f64));
    image.top_k = ClassProbs(p.top.iter().map(|&i| (i, p.probs[i] as f64)).collect());
    image.logit_check = o.logit_check.map(|v| Sci3(v as f64));
    let preset = plan.localiser.recipe.preset;
    let boxes = o
        .boxes
        .iter()
        .flat_map(|set| set.boxes.iter().map(move |b| (set.class, b)))
        .map(|(class, b)| BoxRow {
            path: r.rel.clone(),
            class_index: class,
            class_name: plan.labels.name(class).to_string(),
            score: Fixed(p.probs[class] as f64),
            box_score: Fixed(b.box_score as f64),
            x1: b.x1,
            y1: b.y1,
            x2: b.x2,
            y2: b.y2,
            component_area: b.area,
            threshold: Shortest(b.threshold_value),
            threshold_rule: b.threshold,
            preset,
            method: plan.method,
        })
        .collect();
    (image, boxes)
}
