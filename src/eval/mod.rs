//! `cambox eval`: scores a run's boxes against ground-truth annotations.
//!
//! It reads what `cambox run` wrote (`images.csv`, `boxes.csv`, `run.json`, and `maps/`
//! when saved), the annotations ([`annotations`]: RSNA, NIH, generic CSV, VOC, COCO),
//! pairs the two ([`matching`]), computes the published metrics ([`metrics`], pure
//! functions checked against an independent numpy reference), sweeps the CAM threshold
//! over the saved maps ([`sweep`]), and writes `per_image.csv`, `summary.json`,
//! `unmatched.csv`, `report.html` and, with `--calibrate`, `calibrated.toml` ([`report`],
//! [`html`]).
//!
//! Which boxes count, and why:
//! - **Evaluated class.** `--class NAME|INDEX`; by default the one class present in
//!   `boxes.csv` (an error when there are several). Truth boxes are all boxes of the
//!   annotations, or those with `--truth-label`.
//! - **Localisation (BoxAcc, CorLoc, MaxBoxAcc): GT-known protocol** (wsolevaluation). Every
//!   box of the evaluated class counts whatever the class probability; images without
//!   truth take no part. The run must have localised that class on every image
//!   (`[localise] classes = ["name"]`); otherwise images where it was not localised are
//!   misses, and the summary says so.
//! - **Detection (RSNA, ChestX-ray8): the classifier decides.** An image's boxes count as
//!   predictions only when its probability of the evaluated class is `>= --min-score`
//!   (default 0.5): a box on a negative image is a false positive, a box the classifier
//!   would not draw is none. RSNA orders an image's boxes by confidence = class
//!   probability x `box_score` (the mean normalised map inside the box).
//! - **Classification accuracy**: an image is predicted positive when the evaluated class
//!   is its top-1 class in `images.csv`; truth positive when it has truth boxes. It means
//!   something only when the truth lists negatives (RSNA `Target 0`); the summary notes
//!   when it does not.
//! - **Which images**: annotated images the run processed successfully. Listed
//!   negatives are evaluated; processed images that the annotations do not mention are left
//!   out and listed (`--unannotated negative` evaluates them as negatives, for sources such
//!   as the NIH list that only name images with boxes). Annotated images the run did not
//!   process, or failed on, are listed too.
//! - **Box convention**: cambox's boxes are half-open. `--convention wsol-inclusive`
//!   reproduces wsolevaluation's arithmetic (+1 in areas, its clipping of predicted boxes
//!   to `width - 1`); every output says which was used.

pub mod annotations;
pub mod baseline;
pub mod error;
pub mod html;
pub mod matching;
pub mod metrics;
pub mod report;
pub mod run_files;
pub mod summary;
pub mod sweep;

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::defaults;
use crate::output::artefacts::Artefacts;
use annotations::Format;
pub use baseline::Baseline;
pub use error::EvalError;
use metrics::{as_predicted, Case, Convention, Rect, Scored, BOX_ACC_DELTAS};
use run_files::{RunFiles, RunImage};
pub use summary::{Classification, Counts, Cxr8Row, Listed, MaxBoxAcc, Protocol, Summary, Unmatched};
use sweep::{SweepInput, SweepResult};

/// Everything `cambox eval` is asked to do.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The output folder of `cambox run`.
    pub run: PathBuf,
    pub truth: PathBuf,
    /// `None`: detect from the header or extension.
    pub format: Option<Format>,
    /// Where to write; default `<run>/eval` (or `<run>/eval-<baseline>`).
    pub out: Option<PathBuf>,
    /// Class name or index whose boxes are evaluated.
    pub class: Option<String>,
    /// Only truth boxes with this label.
    pub truth_label: Option<String>,
    pub min_score: f64,
    pub convention: Convention,
    pub baseline: Option<Baseline>,
    pub calibrate: bool,
    pub sweep_step: f64,
    /// Evaluate processed images without annotations as negatives.
    pub unannotated_negative: bool,
    pub gallery: usize,
}

impl EvalOptions {
    pub fn new(run: PathBuf, truth: PathBuf) -> EvalOptions {
        EvalOptions {
            run,
            truth,
            format: None,
            out: None,
            class: None,
            truth_label: None,
            min_score: defaults::EVAL_MIN_SCORE,
            convention: Convention::HalfOpen,
            baseline: None,
            calibrate: false,
            sweep_step: defaults::SWEEP_STEP,
            unannotated_negative: false,
            gallery: defaults::GALLERY_MAX,
        }
    }
}

/// One evaluated image.
#[derive(Debug, Clone)]
pub struct ImageResult {
    pub rel: String,
    pub width: u32,
    pub height: u32,
    pub truth: Vec<Rect>,
    /// Boxes of the evaluated class (GT-known), as compared (convention applied).
    pub preds: Vec<Scored>,
    /// Probability of the evaluated class, when the run recorded it.
    pub probability: Option<f64>,
    /// The evaluated class is the image's top-1 class.
    pub predicted_positive: bool,
    pub best_iou: Option<f64>,
    pub best_iobb: Option<f64>,
    /// At delta 0.3, 0.5, 0.7; `None` without truth.
    pub hits: Option<[bool; 3]>,
    /// RSNA image score of the detections; `None` when left out.
    pub rsna: Option<f64>,
    /// Boxes that count as detections (probability >= min score).
    pub detections: usize,
}

/// What `run_eval` produced.
pub struct Evaluation {
    pub out_dir: PathBuf,
    pub summary: Summary,
    pub images: Vec<ImageResult>,
    pub unmatched: matching::Pairing,
}

/// The class to evaluate: `--class`, else the one class in `boxes.csv`.
fn resolve_class(run: &RunFiles, given: Option<&str>) -> Result<(usize, String), EvalError> {
    let name_of = |k: usize| run.class_names.get(&k).cloned().unwrap_or_else(|| format!("class_{k}"));
    if let Some(g) = given {
        if let Ok(k) = g.parse::<usize>() {
            return Ok((k, name_of(k)));
        }
        return run.class_names.iter().find(|(_, n)| n.as_str() == g).map(|(k, n)| (*k, n.clone())).ok_or_else(|| {
            EvalError::Usage(format!("--class '{g}': no class of that name in boxes.csv or the labels"))
        });
    }
    let present: BTreeSet<usize> = run.boxes.values().flatten().map(|b| b.class).collect();
    match present.len() {
        1 => {
            let k = *present.iter().next().expect("one");
            Ok((k, name_of(k)))
        }
        0 => Err(EvalError::Usage("boxes.csv has no boxes: give the evaluated class with --class NAME|INDEX".into())),
        _ => Err(EvalError::Usage(format!(
            "boxes.csv holds boxes of {} classes ({}): choose one with --class NAME|INDEX",
            present.len(),
            present.iter().map(|&k| format!("{k} '{}'", name_of(k))).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn check_options(o: &EvalOptions) -> Result<(), EvalError> {
    if !(0.0..=1.0).contains(&o.min_score) {
        return Err(EvalError::Usage(format!("--min-score {} must be in [0, 1]", o.min_score)));
    }
    let n = 1.0 / o.sweep_step;
    if !(o.sweep_step > 0.0 && o.sweep_step <= 0.1 && (n - n.round()).abs() < 1e-6) {
        return Err(EvalError::Usage(format!(
            "--sweep-step {} must divide 1 and be at most 0.1 (0.01 or 0.001)",
            o.sweep_step
        )));
    }
    if o.calibrate && o.baseline.is_some() {
        return Err(EvalError::Usage("--calibrate needs the run's maps; it does not apply to a --baseline".into()));
    }
    Ok(())
}

/// Runs the evaluation and writes its files.
pub fn run_eval(o: &EvalOptions) -> Result<Evaluation, EvalError> {
    check_options(o)?;
    let run = RunFiles::load(&o.run)?;
    let maps_dir = o.run.join("maps");
    if o.calibrate && !maps_dir.is_dir() {
        return Err(EvalError::Usage(
            "--calibrate needs the maps: run with [output] maps = true (and preset wsol-compatible classes)".into(),
        ));
    }
    let format = match o.format {
        Some(f) => f,
        None => annotations::detect(&o.truth)?,
    };
    let ann = annotations::load(&o.truth, format)?;
    let (class, class_name) = resolve_class(&run, o.class.as_deref())?;
    let out_dir = o.out.clone().unwrap_or_else(|| match o.baseline {
        Some(b) => o.run.join(format!("eval-{}", b.name())),
        None => o.run.join("eval"),
    });
    let mut issues = ann.issues.clone();
    let pairing = matching::pair(&ann, &run.images, &mut issues);
    let mut notes = Vec::new();
    let items = evaluated_items(&run, &pairing, o, &mut notes);
    let centre = match o.baseline {
        Some(Baseline::Centre) => Some(
            baseline::mean_relative_size(items.iter().flat_map(|i| i.truth.iter().map(|r| (*r, i.w, i.h))))
                .ok_or_else(|| {
                    EvalError::Usage("--baseline centre needs truth boxes to take their average size".into())
                })?,
        ),
        _ => None,
    };
    let scored = score_images(&run, &items, class, centre, o);
    let images = scored.images;
    notes.extend(image_notes(&run, &images, class, &class_name, o));

    let c = o.convention;
    let box_acc = BOX_ACC_DELTAS.map(|d| metrics::box_acc(&scored.known, d, c));
    let box_acc_mean = metrics::box_acc_mean(&scored.known, c);
    let (rsna_score, scored_rsna) = metrics::rsna_score(&scored.detect, c);
    let sweep = if o.baseline.is_none() && maps_dir.is_dir() {
        let s = threshold_sweep(&o.run, &images, class, o);
        if s.without_map > 0 {
            notes.push(format!("images with truth but no usable map (misses in the sweep): {}", s.without_map));
        }
        Some(s)
    } else {
        if o.baseline.is_none() {
            notes
                .push("no maps/ in the run folder: run with [output] maps = true for MaxBoxAcc and --calibrate".into());
        }
        None
    };
    let max_box_acc = max_box_acc(sweep.as_ref(), o.baseline, box_acc, box_acc_mean);
    let counts = Counts {
        processed: run.images.len(),
        processed_ok: run.images.iter().filter(|i| i.ok).count(),
        annotated_images: ann.images.len(),
        evaluated: images.len(),
        with_truth: images.iter().filter(|i| !i.truth.is_empty()).count(),
        negatives: images.iter().filter(|i| i.truth.is_empty()).count(),
        truth_boxes: images.iter().map(|i| i.truth.len()).sum(),
        predicted_boxes: images.iter().map(|i| i.preds.len()).sum(),
        detections: images.iter().map(|i| i.detections).sum(),
        scored_rsna,
    };
    let summary = Summary {
        cambox_version: env!("CARGO_PKG_VERSION"),
        run: o.run.clone(),
        truth: o.truth.clone(),
        format,
        protocol: protocol(class, class_name, o, centre),
        counts,
        classification: classification(&images),
        mean_best_iou: metrics::mean(images.iter().filter(|i| !i.truth.is_empty()).map(|i| i.best_iou.unwrap_or(0.0))),
        corloc: box_acc[1],
        box_acc,
        box_acc_mean,
        max_box_acc,
        chestxray8: chestxray8_rows(&scored.detect, c),
        rsna_score,
        annotation_issues: issues,
        unmatched: Unmatched {
            annotated_not_processed: Listed::of(&pairing.not_processed),
            annotated_failed_in_run: Listed::of(&pairing.failed_in_run),
            processed_not_annotated: Listed::of(&pairing.not_annotated),
        },
        notes,
        sweep,
    };
    let ev = Evaluation { out_dir, summary, images, unmatched: pairing };
    report::write_all(&ev, &run, o)?;
    Ok(ev)
}

/// An image taking part: its row of the run, its truth (label-filtered) and size.
struct Item<'a> {
    img: &'a RunImage,
    truth: Vec<Rect>,
    w: u32,
    h: u32,
}

/// The images evaluated: annotated (or, with `--unannotated-negative`, any processed) and
/// with a size; what is left out is said in `notes`.
fn evaluated_items<'a>(
    run: &'a RunFiles,
    pairing: &matching::Pairing,
    o: &EvalOptions,
    notes: &mut Vec<String>,
) -> Vec<Item<'a>> {
    let mut items = Vec::new();
    let mut label_dropped = 0usize;
    let mut no_size = Vec::new();
    for (img, t) in run.images.iter().zip(&pairing.truth) {
        let truth = match t {
            Some(t) => t
                .boxes
                .iter()
                .filter(|b| {
                    let keep = o.truth_label.as_ref().is_none_or(|l| b.label.as_deref() == Some(l.as_str()));
                    label_dropped += !keep as usize;
                    keep
                })
                .map(|b| b.rect)
                .collect(),
            None if o.unannotated_negative && img.ok => Vec::new(),
            None => continue,
        };
        let (Some(w), Some(h)) = (img.width, img.height) else {
            no_size.push(img.rel.clone());
            continue;
        };
        items.push(Item { img, truth, w, h });
    }
    if label_dropped > 0 {
        notes.push(format!(
            "truth boxes with another label than '{}', not used: {label_dropped}",
            o.truth_label.as_deref().unwrap_or("")
        ));
    }
    if !no_size.is_empty() {
        notes.push(format!("images without a size in images.csv, left out: {}", no_size.len()));
    }
    if let Some(l) = &o.truth_label {
        if items.iter().all(|i| i.truth.is_empty()) {
            notes.push(format!("no truth box has the label '{l}'"));
        }
    }
    items
}

/// Every evaluated image scored, with its cases for the GT-known metrics (every box) and
/// for the detection metrics (boxes the classifier would draw).
struct ScoredImages {
    images: Vec<ImageResult>,
    known: Vec<Case>,
    detect: Vec<Case>,
}

fn score_images(
    run: &RunFiles,
    items: &[Item],
    class: usize,
    centre: Option<(f64, f64)>,
    o: &EvalOptions,
) -> ScoredImages {
    let mut out = ScoredImages { images: Vec::new(), known: Vec::new(), detect: Vec::new() };
    for it in items {
        let rel = &it.img.rel;
        let run_boxes: Vec<&run_files::RunBox> =
            run.boxes.get(rel).map(|v| v.iter().filter(|b| b.class == class).collect()).unwrap_or_default();
        let probability = run_boxes
            .first()
            .map(|b| b.score)
            .or_else(|| it.img.top_k.iter().find(|(k, _)| *k == class).map(|(_, p)| *p));
        let raw: Vec<(Rect, f64)> = match (o.baseline, centre) {
            (Some(Baseline::Whole), _) => vec![(baseline::whole_box(it.w, it.h), 1.0)],
            (Some(Baseline::Centre), Some((rw, rh))) => vec![(baseline::centre_box(rw, rh, it.w, it.h), 1.0)],
            _ => run_boxes.iter().map(|b| (b.rect, b.box_score)).collect(),
        };
        let preds: Vec<Scored> = raw
            .iter()
            .map(|(r, bs)| Scored {
                rect: as_predicted(*r, it.w, it.h, o.convention),
                score: probability.unwrap_or(0.0) * bs,
            })
            .collect();
        let detected = probability.is_some_and(|p| p >= o.min_score);
        let known = Case { truth: it.truth.clone(), preds: preds.clone() };
        let detect = Case { truth: it.truth.clone(), preds: if detected { preds.clone() } else { Vec::new() } };
        let rects = known.pred_rects();
        let best_iou = metrics::best_iou(&rects, &it.truth, o.convention);
        out.images.push(ImageResult {
            rel: rel.clone(),
            width: it.w,
            height: it.h,
            truth: it.truth.clone(),
            best_iobb: metrics::best_iobb(&rects, &it.truth, o.convention),
            hits: (!it.truth.is_empty()).then(|| BOX_ACC_DELTAS.map(|d| metrics::hit(best_iou, d))),
            best_iou,
            rsna: metrics::rsna_image(&detect.truth, &detect.preds, o.convention),
            detections: detect.preds.len(),
            preds,
            probability,
            predicted_positive: it.img.top1 == Some(class),
        });
        out.known.push(known);
        out.detect.push(detect);
    }
    out
}

/// What a reader of the numbers must know about the images scored.
fn image_notes(run: &RunFiles, images: &[ImageResult], class: usize, class_name: &str, o: &EvalOptions) -> Vec<String> {
    let mut notes = Vec::new();
    let without_probability = images.iter().filter(|i| i.probability.is_none()).count();
    if without_probability > 0 {
        notes.push(format!(
            "images without a recorded probability of class {class} (not in top_k), taken as 0 for --min-score: {without_probability}"
        ));
    }
    if o.baseline.is_none() && run.always_localises(class) != Some(true) {
        notes.push(format!(
            "the run did not localise class '{class_name}' on every image ([localise] classes is not a list holding it): \
             GT-known metrics count images without its boxes as misses; set [localise] classes = [\"{class_name}\"]"
        ));
    }
    if images.iter().all(|i| !i.truth.is_empty()) {
        notes.push("the truth lists no negative images: classification accuracy is the sensitivity".into());
    }
    notes
}

/// Top-1 classification against the truth: positive when the image has truth boxes.
fn classification(images: &[ImageResult]) -> Classification {
    let count = |truth: bool, pred: bool| {
        images.iter().filter(|i| i.truth.is_empty() != truth && i.predicted_positive == pred).count()
    };
    let (tp, fp, tn, fn_) = (count(true, true), count(false, true), count(false, false), count(true, false));
    Classification {
        true_positive: tp,
        false_positive: fp,
        true_negative: tn,
        false_negative: fn_,
        accuracy: (!images.is_empty()).then(|| (tp + tn) as f64 / images.len() as f64),
    }
}

fn chestxray8_rows(detect: &[Case], c: Convention) -> Vec<Cxr8Row> {
    metrics::CXR8_IOBB_THRESHOLDS
        .iter()
        .map(|&t| {
            let a = metrics::chestxray8(detect, t, None, c);
            let b = metrics::chestxray8(detect, t, Some(metrics::CXR8_IOU_THRESHOLD), c);
            Cxr8Row {
                t_iobb: t,
                accuracy_iobb: a.accuracy,
                accuracy_or_iou: b.accuracy,
                avg_fp: a.avg_fp,
                avg_fp_or_iou: b.avg_fp,
            }
        })
        .collect()
}

/// The threshold sweep over the maps the run saved, for the images with truth.
fn threshold_sweep(run_dir: &std::path::Path, images: &[ImageResult], class: usize, o: &EvalOptions) -> SweepResult {
    // The same file names as `run` writes.
    let artefacts = Artefacts::new(run_dir, &Default::default());
    let inputs: Vec<SweepInput> = images
        .iter()
        .filter(|i| !i.truth.is_empty())
        .map(|i| SweepInput { rel: i.rel.clone(), truth: i.truth.clone(), map: artefacts.map_path(&i.rel) })
        .collect();
    sweep::sweep(&inputs, class, o.sweep_step, o.convention)
}

/// MaxBoxAcc from the sweep or, for a baseline, from its fixed boxes.
fn max_box_acc(
    sweep: Option<&SweepResult>,
    baseline: Option<Baseline>,
    box_acc: [Option<f64>; 3],
    box_acc_mean: Option<f64>,
) -> Option<MaxBoxAcc> {
    match (sweep, baseline) {
        (Some(s), _) => Some(MaxBoxAcc {
            source: "threshold sweep over the saved maps (wsol recipe)",
            v1: s.max_box_acc,
            v1_tau: Some(s.max_box_acc_tau),
            v2: s.max_box_acc_v2,
            v2_per_delta: s.max_box_acc_v2_per_delta,
            v2_tau_per_delta: Some(s.max_box_acc_v2_tau_per_delta),
            calibrated_tau: Some(s.calibrated_tau),
        }),
        (None, Some(_)) => box_acc_mean.map(|m| MaxBoxAcc {
            source: "baseline boxes do not depend on tau: MaxBoxAcc is their BoxAcc",
            v1: box_acc[1].unwrap_or(0.0),
            v1_tau: None,
            v2: m,
            v2_per_delta: box_acc.map(|a| a.unwrap_or(0.0)),
            v2_tau_per_delta: None,
            calibrated_tau: None,
        }),
        _ => None,
    }
}

fn protocol(class: usize, class_name: String, o: &EvalOptions, centre: Option<(f64, f64)>) -> Protocol {
    Protocol {
        class_index: class,
        class_name,
        truth_label: o.truth_label.clone(),
        convention: o.convention.name(),
        localisation: "GT-known: every box of the evaluated class, whatever its probability",
        detection: format!("boxes count when the class probability is >= {}", o.min_score),
        rsna_confidence: "class probability x box_score",
        classification: "predicted positive when the evaluated class is the top-1 class",
        box_acc_deltas: BOX_ACC_DELTAS,
        chestxray8_iobb_thresholds: metrics::CXR8_IOBB_THRESHOLDS,
        chestxray8_iou_threshold: metrics::CXR8_IOU_THRESHOLD,
        rsna_iou_thresholds: metrics::RSNA_IOU_THRESHOLDS,
        sweep_step: o.sweep_step,
        baseline: o.baseline,
        baseline_relative_size: centre.map(|(w, h)| [w, h]),
        unannotated: if o.unannotated_negative { "negative" } else { "skipped" },
    }
}
