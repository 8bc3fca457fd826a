//! `cambox eval`: scores a run's boxes against ground-truth annotations.
//!
//! It reads what `cambox run` wrote (`images.csv`, `boxes.csv`, `run.json`, and `maps/`
//! when saved), the annotations ([`crate::truth::annotations`]: RSNA, NIH, generic CSV,
//! VOC, COCO), pairs the two ([`crate::truth::matching`]), computes the published metrics
//! ([`metrics`], pure functions checked against an independent numpy reference), sweeps
//! the CAM threshold over the saved maps ([`sweep`]), and writes `per_image.csv`,
//! `summary.json`, `unmatched.csv`, `report.html` and, with `--calibrate`,
//! `calibrated.toml` ([`report`], [`html`]).
//!
//! Which boxes count, and why:
//! - **Evaluated classes.** When the truth labels its boxes (NIH findings, VOC and COCO
//!   names, a generic `label` column) and the labels mean model classes (by the class
//!   map, `--class-map`, or by name), every such label is evaluated: each (image, label)
//!   pair is scored against the boxes of the label's model class, and the metrics are
//!   given per label, as their mean over labels (macro), and over all pairs (the top
//!   level of `summary.json`, micro). A label that means several model classes (VOC's
//!   "cat": ImageNet 281-285) is scored with the boxes of the one most probable on the
//!   image among those the run localised; its probability is the sum of its classes'
//!   for a softmax model (they exclude each other), the chosen class's for a multi-label
//!   one. Labels that mean no class are reported, not
//!   dropped silently. Otherwise (unlabelled truth such as RSNA's, or `--class
//!   NAME|INDEX`) one class is evaluated against every truth box (or those with
//!   `--truth-label`), by default the one class present in `boxes.csv`.
//! - **GT-known, Top-1 and Top-5 localisation** (ILSVRC, wsolevaluation): GT-known Loc is
//!   BoxAcc at 0.5 of each pair's own class; Top-1 Loc also needs the classifier right:
//!   the top-1 class is one of the label's classes and its box reaches IoU 0.5 (for a
//!   multi-label model, whose classes are decided one by one, the label's class has
//!   probability >= `--min-score` and its box reaches 0.5); Top-5 Loc (softmax models)
//!   takes any of the five most probable classes that is one of the label's.
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

pub mod baseline;
pub mod bootstrap;
pub mod chosen_taus;
pub mod figures;
pub mod html;
pub mod intervals;
pub mod map_figures;
pub mod metrics;
pub mod report;
pub mod run_files;
pub mod summary;
pub mod sweep;

use crate::error::Error;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::defaults;
use crate::labels::Labels;
use crate::output::artefacts::Artefacts;
use crate::stage::maps::Activation;
use crate::truth::annotations::{self, Format, TruthBox};
use crate::truth::class_map::ClassMap;
use crate::truth::matching::{Pairing, Processed};
pub use baseline::Baseline;
use chosen_taus::{ChosenTaus, Recut};
use map_figures::{MapPass, PassRequest};
use metrics::{as_predicted, Case, Convention, Rect, Scored, BOX_ACC_DELTAS};
use run_files::{RunBox, RunFiles, RunImage};
pub use summary::{
    ClassSummary, Classification, Counts, Cxr8Row, Listed, MaxBoxAcc, MeanMetrics, Metrics, PairCounts, Protocol,
    Summary, Unmatched,
};
use summary::{MaskUse, SplitUse};
use sweep::{PassOptions, SweepResult};

/// Everything `cambox eval` is asked to do.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The output folder of `cambox run`.
    pub run: PathBuf,
    pub truth: PathBuf,
    /// `None`: detect from the header or extension.
    pub format: Option<Format>,
    /// `truth_label,model_class` CSV; without it labels mean the classes of the same name.
    pub class_map: Option<PathBuf>,
    /// Where to write; default `<run>/eval` (or `<run>/eval-<baseline>`).
    pub out: Option<PathBuf>,
    /// Class name or index whose boxes are evaluated (one class only).
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
    /// The pointing game's tolerance, in original-image pixels.
    pub pointing_tolerance: f64,
    /// Folder of truth masks (PxAP, pixel IoU).
    pub truth_masks: Option<PathBuf>,
    /// Bootstrap resamples for the 95 % intervals; 0: none.
    pub bootstrap: usize,
    pub bootstrap_seed: u64,
    /// A `calibrated.toml` whose taus cut the saved maps in place of the run's boxes.
    pub taus_from: Option<PathBuf>,
    /// A file of image paths (one per line) the evaluation is restricted to.
    pub split: Option<PathBuf>,
}

impl EvalOptions {
    pub fn new(run: PathBuf, truth: PathBuf) -> EvalOptions {
        EvalOptions {
            run,
            truth,
            format: None,
            class_map: None,
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
            pointing_tolerance: defaults::POINTING_TOLERANCE,
            truth_masks: None,
            bootstrap: bootstrap::DEFAULT_RESAMPLES,
            bootstrap_seed: bootstrap::DEFAULT_SEED,
            taus_from: None,
            split: None,
        }
    }
}

/// One class of an evaluation: a truth label and the model classes it means, or one
/// model class scored against every truth box (`truth_label` then filters, if given).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalClass {
    /// The label, or the model class's name: the key of `per_class`.
    pub name: String,
    /// The truth boxes of this class are those with this label; `None`: every box.
    pub truth_label: Option<String>,
    /// The model classes it means (at least one).
    pub classes: Vec<usize>,
}

/// One evaluated (image, class) pair.
#[derive(Debug, Clone)]
pub struct ImageResult {
    pub rel: String,
    /// The [`EvalClass`] name.
    pub label: String,
    /// Index of the evaluation class (in `Evaluation::classes`).
    pub class_index: usize,
    pub width: u32,
    pub height: u32,
    pub truth: Vec<Rect>,
    /// The model class whose boxes are scored: the most probable of the class's that the
    /// run localised on this image.
    pub class: Option<usize>,
    /// Boxes of the evaluated class (GT-known), as compared (convention applied).
    pub preds: Vec<Scored>,
    /// Probability of the evaluated class, when the run recorded it.
    pub probability: Option<f64>,
    /// The classifier says yes: the top-1 class is one of the class's (softmax), or its
    /// probability is at least `--min-score` (sigmoid).
    pub predicted_positive: bool,
    /// The boxes count as detections (probability >= min score).
    pub detected: bool,
    pub best_iou: Option<f64>,
    pub best_iobb: Option<f64>,
    /// At delta 0.3, 0.5, 0.7; `None` without truth.
    pub hits: Option<[bool; 3]>,
    /// Top-1 / Top-5 localisation of the pair; `None` without truth (Top-5: or for a
    /// sigmoid model).
    pub top1_loc: Option<bool>,
    pub top5_loc: Option<bool>,
    /// RSNA image score of the detections; `None` when left out.
    pub rsna: Option<f64>,
    /// Boxes that count as detections (probability >= min score).
    pub detections: usize,
    /// The map's peak, pointing hit and energy, when the maps were read.
    pub pointing: Option<figures::Pointing>,
}

impl ImageResult {
    /// The pair as the GT-known metrics see it (every box).
    pub fn known_case(&self) -> Case {
        Case { truth: self.truth.clone(), preds: self.preds.clone() }
    }

    /// The pair as the detection metrics see it (boxes only when the classifier says yes).
    pub fn detect_case(&self) -> Case {
        Case { truth: self.truth.clone(), preds: if self.detected { self.preds.clone() } else { Vec::new() } }
    }
}

/// What `run_eval` produced.
pub struct Evaluation {
    pub out_dir: PathBuf,
    pub summary: Summary,
    pub classes: Vec<EvalClass>,
    /// Evaluated per truth label (else one class against every truth box).
    pub per_label: bool,
    /// Pairs, image by image (in `images.csv` order), each image's classes in class order.
    pub images: Vec<ImageResult>,
    pub unmatched: Pairing,
}

fn check_options(o: &EvalOptions) -> Result<(), Error> {
    if !(0.0..=1.0).contains(&o.min_score) {
        return Err(Error::Usage(format!("--min-score {} must be in [0, 1]", o.min_score)));
    }
    let n = 1.0 / o.sweep_step;
    if !(o.sweep_step > 0.0 && o.sweep_step <= 0.1 && (n - n.round()).abs() < 1e-6) {
        return Err(Error::Usage(format!(
            "--sweep-step {} must divide 1 and be at most 0.1 (0.01 or 0.001)",
            o.sweep_step
        )));
    }
    if o.calibrate && o.baseline.is_some() {
        return Err(Error::Usage("--calibrate needs the run's maps; it does not apply to a --baseline".into()));
    }
    if o.taus_from.is_some() && (o.baseline.is_some() || o.calibrate) {
        return Err(Error::Usage(
            "--taus-from applies taus chosen elsewhere: it goes with neither --baseline nor --calibrate".into(),
        ));
    }
    if !(o.pointing_tolerance.is_finite() && o.pointing_tolerance >= 0.0) {
        return Err(Error::Usage(format!(
            "--pointing-tolerance {} must be a number of pixels >= 0",
            o.pointing_tolerance
        )));
    }
    if let Some(d) = o.truth_masks.as_ref().filter(|d| !d.is_dir()) {
        return Err(Error::Usage(format!("--truth-masks {}: not a folder", d.display())));
    }
    Ok(())
}

/// The model's class names as the run knew them (its labels file, else the names in
/// `boxes.csv`; unknown names are empty and mean nothing).
fn run_labels(run: &RunFiles) -> Labels {
    let n = run
        .manifest
        .as_ref()
        .map(|m| m.model.cut.report.num_classes)
        .unwrap_or(0)
        .max(run.class_names.keys().next_back().map_or(0, |k| k + 1));
    Labels::from_names((0..n).map(|k| run.class_names.get(&k).cloned().unwrap_or_default()).collect())
}

/// The one model class of a single-class evaluation: `--class`, else the one class in
/// `boxes.csv`.
fn single_class(run: &RunFiles, given: Option<&str>) -> Result<(usize, String), Error> {
    let name_of = |k: usize| run.class_names.get(&k).cloned().unwrap_or_else(|| format!("class_{k}"));
    if let Some(g) = given {
        if let Ok(k) = g.parse::<usize>() {
            return Ok((k, name_of(k)));
        }
        return run
            .class_names
            .iter()
            .find(|(_, n)| n.as_str() == g)
            .map(|(k, n)| (*k, n.clone()))
            .ok_or_else(|| Error::Usage(format!("--class '{g}': no class of that name in boxes.csv or the labels")));
    }
    let present: BTreeSet<usize> = run.boxes.values().flatten().map(|b| b.class).collect();
    match present.len() {
        1 => {
            let k = *present.iter().next().expect("one");
            Ok((k, name_of(k)))
        }
        0 => Err(Error::Usage("boxes.csv has no boxes: give the evaluated class with --class NAME|INDEX".into())),
        _ => Err(Error::Usage(format!(
            "boxes.csv holds boxes of {} classes ({}) and the truth names none of them: choose one with --class \
             NAME|INDEX, or tie the truth labels to classes with --class-map",
            present.len(),
            present.iter().map(|&k| format!("{k} '{}'", name_of(k))).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// What an evaluation scores.
struct Classes {
    classes: Vec<EvalClass>,
    /// Truth labels that mean no model class, with their box counts.
    unmapped: BTreeMap<String, usize>,
    /// Per truth label (else one class against every truth box).
    per_label: bool,
}

/// The classes to evaluate: per label when the truth's labels mean model classes (or a
/// class map is given) and `--class` is not; otherwise one class.
fn eval_classes(
    run: &RunFiles,
    ann: &annotations::Annotations,
    o: &EvalOptions,
    notes: &mut Vec<String>,
) -> Result<Classes, Error> {
    let labels: Vec<&str> = ann.images.iter().flat_map(|i| &i.boxes).filter_map(|b| b.label.as_deref()).collect();
    if o.class.is_none() && !labels.is_empty() {
        let map = ClassMap::load(o.class_map.as_deref(), &run_labels(run))?;
        let r = map.resolve(labels.iter().copied());
        if !r.mapped.is_empty() || o.class_map.is_some() {
            let classes: Vec<EvalClass> = r
                .mapped
                .into_iter()
                .filter(|(l, _)| o.truth_label.as_ref().is_none_or(|t| t == l))
                .map(|(l, classes)| EvalClass { name: l.clone(), truth_label: Some(l), classes })
                .collect();
            if classes.is_empty() {
                return Err(Error::Usage(match &o.truth_label {
                    Some(t) => format!("--truth-label '{t}' is not a truth label that means a model class"),
                    None => "no truth label means a model class: check the class map".into(),
                }));
            }
            let unlabelled = ann.images.iter().flat_map(|i| &i.boxes).filter(|b| b.label.is_none()).count();
            if unlabelled > 0 {
                notes.push(format!("truth boxes without a label, not evaluated per label: {unlabelled}"));
            }
            return Ok(Classes { classes, unmapped: r.unmapped, per_label: true });
        }
        notes.push(format!(
            "the truth labels ({}) name no model class: every truth box is scored against one class; give \
             --class-map to evaluate per label",
            r.unmapped.keys().take(5).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let (k, name) = single_class(run, o.class.as_deref())?;
    let classes = vec![EvalClass { name, truth_label: o.truth_label.clone(), classes: vec![k] }];
    Ok(Classes { classes, unmapped: BTreeMap::new(), per_label: false })
}

/// Runs the evaluation and writes its files.
pub fn run_eval(o: &EvalOptions) -> Result<Evaluation, Error> {
    check_options(o)?;
    let run = RunFiles::load(&o.run)?;
    let maps_dir = o.run.join("maps");
    if (o.calibrate || o.taus_from.is_some()) && !maps_dir.is_dir() {
        return Err(Error::Usage(
            "--calibrate and --taus-from need the maps: run with [output] maps = true (and preset wsol-compatible \
             classes)"
                .into(),
        ));
    }
    let format = match o.format {
        Some(f) => f,
        None => annotations::detect(&o.truth)?,
    };
    let ann = annotations::load(&o.truth, format)?;
    let mut notes = Vec::new();
    let Classes { classes, unmapped, per_label } = eval_classes(&run, &ann, o, &mut notes)?;
    let mut issues = ann.issues.clone();
    let processed: Vec<Processed> =
        run.images.iter().map(|i| Processed { rel: &i.rel, ok: i.ok, width: i.width, height: i.height }).collect();
    let pairing = crate::truth::matching::pair(&ann, &processed, &mut issues);
    let mut items = evaluated_items(&run, &pairing, o, &mut notes);
    let split = restrict_to_split(o, &mut items)?;
    add_probabilities(&run, &classes, &mut items)?;
    let params = ScoreParams {
        min_score: o.min_score,
        convention: o.convention,
        activation: run.manifest.as_ref().and_then(|m| m.model.activation).unwrap_or_default(),
        baseline: o.baseline,
    };
    let centres = centre_sizes(&items, &classes, o.baseline)?;
    let chosen = o.taus_from.as_deref().map(|p| ChosenTaus::load(p, &run.class_names)).transpose()?;
    let recut = chosen.as_ref().map(|t| recut_boxes(&o.run, &items, &classes, t, &run.boxes));
    let mut images = score(&items, recut.as_ref().unwrap_or(&run.boxes), &classes, &centres, &params);
    notes.extend(image_notes(&run, &images, &classes, per_label, &params, o));
    let masks = o.truth_masks.clone().map(|dir| crate::truth::masks::TruthMasks { dir });
    let pass = map_pass_if_maps(o, &maps_dir, &mut images, &classes, chosen.as_ref(), masks.as_ref(), &mut notes);
    let all: Vec<&ImageResult> = images.iter().collect();
    let mut metrics = metrics_of(&all, &params);
    add_map_metrics(&mut metrics, pass.as_ref(), &images, None, o.baseline);
    let per_class = class_summaries(&run, &classes, &images, &centres, pass.as_ref(), &params, o);
    let counts = Counts {
        processed: run.images.len(),
        processed_ok: run.images.iter().filter(|i| i.ok).count(),
        annotated_images: ann.images.len(),
        evaluated_images: items.len(),
        pairs: pair_counts(&all),
    };
    let plan = bootstrap::BootstrapPlan { resamples: o.bootstrap, seed: o.bootstrap_seed, unit: "image" };
    let summary = Summary {
        cambox_version: env!("CARGO_PKG_VERSION"),
        run: o.run.clone(),
        truth: o.truth.clone(),
        format,
        protocol: protocol(&classes, per_label, o, &centres, params.activation, chosen.as_ref()),
        counts,
        metrics,
        mean_over_classes: MeanMetrics::of(per_class.values().map(|c| &c.metrics)),
        per_class,
        unmapped_labels: unmapped,
        annotation_issues: issues,
        unmatched: Unmatched {
            annotated_not_processed: Listed::of(&pairing.not_processed),
            annotated_failed_in_run: Listed::of(&pairing.failed_in_run),
            processed_not_annotated: Listed::of(&pairing.not_annotated),
        },
        notes,
        sweep: pass.as_ref().map(|p| p.sweep_of(&images, |_| true)),
        ci95: (o.bootstrap > 0).then(|| intervals::ci95(&images, &classes, pass.as_ref(), o.convention, plan)),
        truth_masks: masks_use(o, pass.as_ref()),
        split,
    };
    let ev = Evaluation { out_dir: eval_dir(o), summary, classes, per_label, images, unmatched: pairing };
    report::write_all(&ev, &run, o)?;
    Ok(ev)
}

/// Where the evaluation writes: `--out`, else `<run>/eval` (or `<run>/eval-<baseline>`).
fn eval_dir(o: &EvalOptions) -> PathBuf {
    o.out.clone().unwrap_or_else(|| match o.baseline {
        Some(b) => o.run.join(format!("eval-{}", b.name())),
        None => o.run.join("eval"),
    })
}

/// Keeps the images `--split` lists (paths relative to the run's input roots, as in
/// `images.csv`, one per line; blank lines and `#` comments skipped).
fn restrict_to_split(o: &EvalOptions, items: &mut Vec<Item>) -> Result<Option<SplitUse>, Error> {
    let Some(file) = &o.split else { return Ok(None) };
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let listed: BTreeSet<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    if listed.is_empty() {
        return Err(Error::Usage(format!("--split {}: lists no image", file.display())));
    }
    let before = items.len();
    items.retain(|i| listed.contains(i.img.rel.as_str()));
    let kept: BTreeSet<&str> = items.iter().map(|i| i.img.rel.as_str()).collect();
    let missing: Vec<String> = listed.iter().filter(|l| !kept.contains(**l)).map(|l| l.to_string()).collect();
    Ok(Some(SplitUse {
        file: file.clone(),
        listed: listed.len(),
        left_out: before - items.len(),
        not_evaluated: Listed::of(&missing),
    }))
}

/// The boxes a run with the chosen taus would have written, for the evaluated images.
fn recut_boxes(
    run_dir: &Path,
    items: &[Item],
    classes: &[EvalClass],
    taus: &ChosenTaus,
    run_boxes: &HashMap<String, Vec<RunBox>>,
) -> HashMap<String, Vec<RunBox>> {
    let artefacts = Artefacts::new(run_dir, &Default::default());
    let wanted: Vec<usize> =
        classes.iter().flat_map(|c| c.classes.iter().copied()).collect::<BTreeSet<_>>().into_iter().collect();
    let recuts: Vec<Recut> = items
        .iter()
        .map(|it| Recut { rel: &it.img.rel, classes: &wanted, map: artefacts.map_path(&it.img.rel) })
        .collect();
    let by_rel: HashMap<&str, &Item> = items.iter().map(|it| (it.img.rel.as_str(), it)).collect();
    chosen_taus::recut(&recuts, taus, |rel, k| {
        let it = by_rel[rel];
        let boxes: Vec<&RunBox> = run_boxes.get(rel).map(|v| v.iter().collect()).unwrap_or_default();
        probability_of(it, &boxes, k).unwrap_or(0.0)
    })
}

/// The pass over the run's maps (sweep, pointing, pixels), when there are maps and no
/// baseline replaces them; fills each pair's pointing figures. Otherwise a note says why
/// the map figures are missing.
fn map_pass_if_maps(
    o: &EvalOptions,
    maps_dir: &Path,
    images: &mut [ImageResult],
    classes: &[EvalClass],
    chosen: Option<&ChosenTaus>,
    masks: Option<&crate::truth::masks::TruthMasks>,
    notes: &mut Vec<String>,
) -> Option<MapPass> {
    if o.baseline.is_some() {
        return None;
    }
    if !maps_dir.is_dir() {
        notes.push(
            "no maps/ in the run folder: run with [output] maps = true for MaxBoxAcc, the pointing game, energy, PxAP \
             and --calibrate"
                .into(),
        );
        return None;
    }
    let request = PassRequest {
        options: PassOptions { step: o.sweep_step, convention: o.convention, tolerance: o.pointing_tolerance, masks },
        fixed_taus: classes.iter().map(|c| chosen.map(|t| t.tau_of(c.classes[0]))).collect(),
    };
    let pass = map_figures::map_pass(&o.run, images, classes, &request);
    for (i, e) in images.iter_mut().zip(&pass.entry) {
        i.pointing = e.map(|e| pass.curves.pointing(e));
    }
    let without = pass.sweep_of(images, |_| true).without_map;
    if without > 0 {
        notes
            .push(format!("pairs with truth but no usable map (misses in the sweep and the pointing game): {without}"));
    }
    if pass.mask_error_count > 0 {
        notes.push(format!("truth masks that could not be used: {}", pass.mask_error_count));
    }
    Some(pass)
}

/// The figures read off the maps, over all pairs (`class` None) or one class's.
fn add_map_metrics(
    m: &mut Metrics,
    pass: Option<&MapPass>,
    images: &[ImageResult],
    class: Option<usize>,
    baseline: Option<Baseline>,
) {
    let keep = |i: &ImageResult| class.is_none_or(|c| i.class_index == c);
    let sweep = pass.map(|p| p.sweep_of(images, keep));
    m.max_box_acc = max_box_acc(sweep.as_ref(), baseline, m);
    let Some(pass) = pass else { return };
    let pairs: Vec<usize> = (0..images.len()).filter(|&p| keep(&images[p])).collect();
    m.pxap = pass.pxap(&pairs);
    m.pixel_iou = pass.pixel_iou(images, &pairs);
    let taus: BTreeSet<u64> = (0..pass.pixel_tau.len())
        .filter(|&c| class.is_none_or(|k| k == c))
        .map(|c| pass.pixel_tau_value(c).to_bits())
        .collect();
    m.pixel_iou_tau = match (m.pixel_iou, taus.len()) {
        (Some(_), 1) => taus.first().map(|b| f64::from_bits(*b)),
        _ => None,
    };
}

/// `summary.json`'s account of the truth masks.
fn masks_use(o: &EvalOptions, pass: Option<&MapPass>) -> Option<MaskUse> {
    let dir = o.truth_masks.clone()?;
    Some(MaskUse {
        dir,
        pairs_with_mask: pass.map_or(0, |p| p.with_mask),
        unusable: Listed {
            count: pass.map_or(0, |p| p.mask_error_count),
            examples: pass.map(|p| p.mask_errors.clone()).unwrap_or_default(),
        },
    })
}

/// The probabilities of the evaluated classes from `probabilities.csv`, when the run
/// wrote one.
fn add_probabilities(run: &RunFiles, classes: &[EvalClass], items: &mut [Item]) -> Result<(), Error> {
    let wanted: BTreeSet<usize> = classes.iter().flat_map(|c| c.classes.iter().copied()).collect();
    let mut probabilities = run.probabilities(&wanted)?;
    for it in items {
        it.probs = probabilities.remove(&it.img.rel).unwrap_or_default();
    }
    Ok(())
}

/// Each evaluated class's metrics over its own pairs.
fn class_summaries(
    run: &RunFiles,
    classes: &[EvalClass],
    images: &[ImageResult],
    centres: &[Option<(f64, f64)>],
    pass: Option<&MapPass>,
    params: &ScoreParams,
    o: &EvalOptions,
) -> BTreeMap<String, ClassSummary> {
    classes
        .iter()
        .enumerate()
        .map(|(c, class)| {
            let pairs: Vec<&ImageResult> = images.iter().filter(|i| i.class_index == c).collect();
            let mut m = metrics_of(&pairs, params);
            add_map_metrics(&mut m, pass, images, Some(c), o.baseline);
            let names = class.classes.iter().map(|k| run.class_names.get(k).cloned().unwrap_or_default()).collect();
            let summary = ClassSummary {
                model_classes: class.classes.clone(),
                model_class_names: names,
                centre_baseline_size: centres[c].map(|(w, h)| [w, h]),
                counts: pair_counts(&pairs),
                metrics: m,
            };
            (class.name.clone(), summary)
        })
        .collect()
}

/// An image taking part: its row of the run, its truth boxes and size.
pub struct Item<'a> {
    pub img: &'a RunImage,
    pub truth: Vec<TruthBox>,
    pub w: u32,
    pub h: u32,
    /// Probabilities of the evaluated classes from `probabilities.csv`, when written.
    pub probs: HashMap<usize, f64>,
}

/// The images evaluated: annotated (or, with `--unannotated-negative`, any processed) and
/// with a size; what is left out is said in `notes`.
fn evaluated_items<'a>(
    run: &'a RunFiles,
    pairing: &Pairing,
    o: &EvalOptions,
    notes: &mut Vec<String>,
) -> Vec<Item<'a>> {
    let mut items = Vec::new();
    let mut no_size = Vec::new();
    for (img, t) in run.images.iter().zip(&pairing.truth) {
        let truth = match t {
            Some(t) => t.boxes.clone(),
            None if o.unannotated_negative && img.ok => Vec::new(),
            None => continue,
        };
        let (Some(w), Some(h)) = (img.width, img.height) else {
            no_size.push(img.rel.clone());
            continue;
        };
        items.push(Item { img, truth, w, h, probs: HashMap::new() });
    }
    if !no_size.is_empty() {
        notes.push(format!("images without a size in images.csv, left out: {}", no_size.len()));
    }
    if let Some(l) = &o.truth_label {
        let dropped = items.iter().flat_map(|i| &i.truth).filter(|b| b.label.as_deref() != Some(l.as_str())).count();
        if dropped > 0 {
            notes.push(format!("truth boxes with another label than '{l}', not used: {dropped}"));
        }
        if items.iter().all(|i| i.truth.iter().all(|b| b.label.as_deref() != Some(l.as_str()))) {
            notes.push(format!("no truth box has the label '{l}'"));
        }
    }
    items
}

/// The centre baseline's box size per class: the mean relative size of that class's
/// truth boxes.
fn centre_sizes(
    items: &[Item],
    classes: &[EvalClass],
    baseline: Option<Baseline>,
) -> Result<Vec<Option<(f64, f64)>>, Error> {
    if baseline != Some(Baseline::Centre) {
        return Ok(vec![None; classes.len()]);
    }
    classes
        .iter()
        .map(|c| {
            baseline::mean_relative_size(
                items.iter().flat_map(|i| truth_of(&i.truth, c).into_iter().map(|r| (r, i.w, i.h))),
            )
            .map(Some)
            .ok_or_else(|| Error::Usage("--baseline centre needs truth boxes to take their average size".into()))
        })
        .collect()
}

/// The truth boxes of class `c` among an image's boxes.
fn truth_of(boxes: &[TruthBox], c: &EvalClass) -> Vec<Rect> {
    boxes
        .iter()
        .filter(|b| c.truth_label.as_ref().is_none_or(|l| b.label.as_deref() == Some(l)))
        .map(|b| b.rect)
        .collect()
}

/// How pairs are scored.
#[derive(Debug, Clone, Copy)]
pub struct ScoreParams {
    pub min_score: f64,
    pub convention: Convention,
    pub activation: Activation,
    pub baseline: Option<Baseline>,
}

/// The probability of model class `k` on an image: from its boxes, else
/// `probabilities.csv`, else its `top_k` entry.
fn probability_of(it: &Item, boxes: &[&RunBox], k: usize) -> Option<f64> {
    boxes
        .iter()
        .find(|b| b.class == k)
        .map(|b| b.score)
        .or_else(|| it.probs.get(&k).copied())
        .or_else(|| it.img.top_k.iter().find(|(c, _)| *c == k).map(|(_, p)| *p))
}

/// The class's model class on an image: the most probable one with boxes (ties: the
/// first in the class's list).
fn chosen_class(it: &Item, boxes: &[&RunBox], c: &EvalClass) -> Option<usize> {
    c.classes
        .iter()
        .copied()
        .filter(|&k| boxes.iter().any(|b| b.class == k))
        .map(|k| (k, probability_of(it, boxes, k).unwrap_or(0.0)))
        .fold(None, |best: Option<(usize, f64)>, (k, pk)| match best {
            Some((_, pb)) if pb >= pk => best,
            _ => Some((k, pk)),
        })
        .map(|(k, _)| k)
}

/// The probability of an evaluated class (a truth label that may mean several model
/// classes). A softmax model's classes are mutually exclusive, so the label's probability
/// is the sum of its classes' (VOC "cat" is ImageNet 281 or 282 or 285 or 287); a
/// multi-label model's are not, so it is the chosen class's, else the largest.
/// Probabilities not recorded (a class outside `top_k` without `probabilities.csv`)
/// count as 0 in the sum.
fn label_probability(
    it: &Item,
    boxes: &[&RunBox],
    c: &EvalClass,
    chosen: Option<usize>,
    activation: Activation,
) -> Option<f64> {
    let distinct: std::collections::BTreeSet<usize> = c.classes.iter().copied().collect();
    let known = || distinct.iter().filter_map(|&k| probability_of(it, boxes, k));
    match (activation, chosen) {
        (Activation::Softmax, _) => known().reduce(|a, b| a + b),
        (Activation::Sigmoid, Some(k)) => probability_of(it, boxes, k),
        (Activation::Sigmoid, None) => known().reduce(f64::max),
    }
}

/// Best IoU of model class `k`'s boxes (or the baseline's) with `truth`.
fn best_iou_of(
    boxes: &[&RunBox],
    k: usize,
    baseline: &[Scored],
    truth: &[Rect],
    p: &ScoreParams,
    w: u32,
    h: u32,
) -> Option<f64> {
    let rects: Vec<Rect> = match p.baseline {
        Some(_) => baseline.iter().map(|s| s.rect).collect(),
        None => boxes.iter().filter(|b| b.class == k).map(|b| as_predicted(b.rect, w, h, p.convention)).collect(),
    };
    if rects.is_empty() {
        return None;
    }
    metrics::best_iou(&rects, truth, p.convention)
}

/// Scores every (image, class) pair: images in order, each image's classes in order.
pub fn score(
    items: &[Item],
    boxes: &HashMap<String, Vec<RunBox>>,
    classes: &[EvalClass],
    centres: &[Option<(f64, f64)>],
    p: &ScoreParams,
) -> Vec<ImageResult> {
    let mut out = Vec::with_capacity(items.len() * classes.len());
    for it in items {
        let rel = &it.img.rel;
        let run_boxes: Vec<&RunBox> = boxes.get(rel).map(|v| v.iter().collect()).unwrap_or_default();
        let has_boxes = |k: usize| run_boxes.iter().any(|b| b.class == k);
        for (ci, c) in classes.iter().enumerate() {
            let truth = truth_of(&it.truth, c);
            let chosen = chosen_class(it, &run_boxes, c);
            let probability = label_probability(it, &run_boxes, c, chosen, p.activation);
            let raw: Vec<(Rect, f64)> = match (p.baseline, centres[ci]) {
                (Some(Baseline::Whole), _) => vec![(baseline::whole_box(it.w, it.h), 1.0)],
                (Some(Baseline::Centre), Some((rw, rh))) => vec![(baseline::centre_box(rw, rh, it.w, it.h), 1.0)],
                _ => match chosen {
                    Some(k) => run_boxes.iter().filter(|b| b.class == k).map(|b| (b.rect, b.box_score)).collect(),
                    None => Vec::new(),
                },
            };
            let preds: Vec<Scored> = raw
                .iter()
                .map(|(r, bs)| Scored {
                    rect: as_predicted(*r, it.w, it.h, p.convention),
                    score: probability.unwrap_or(0.0) * bs,
                })
                .collect();
            // The classifier says yes to the class; its boxes count as detections when
            // there are any (the run's, of the class it localised, or a baseline's).
            let says_yes = probability.is_some_and(|v| v >= p.min_score);
            let detected = says_yes && !raw.is_empty();
            let rects: Vec<Rect> = preds.iter().map(|s| s.rect).collect();
            let best_iou = metrics::best_iou(&rects, &truth, p.convention);
            let has_truth = !truth.is_empty();
            let top1 = it.img.top1;
            let (top1_loc, top5_loc) = match p.activation {
                Activation::Softmax => {
                    let loc = |k: usize| {
                        c.classes.contains(&k)
                            && (p.baseline.is_some() || has_boxes(k))
                            && best_iou_of(&run_boxes, k, &preds, &truth, p, it.w, it.h).is_some_and(|v| v >= 0.5)
                    };
                    (top1.is_some_and(loc), Some(it.img.top_k.iter().take(5).any(|&(k, _)| loc(k))))
                }
                Activation::Sigmoid => (detected && best_iou.is_some_and(|v| v >= 0.5), None),
            };
            let detect_preds: &[Scored] = if detected { &preds } else { &[] };
            out.push(ImageResult {
                rel: rel.clone(),
                label: c.name.clone(),
                class_index: ci,
                width: it.w,
                height: it.h,
                best_iobb: metrics::best_iobb(&rects, &truth, p.convention),
                hits: has_truth.then(|| BOX_ACC_DELTAS.map(|d| metrics::hit(best_iou, d))),
                top1_loc: has_truth.then_some(top1_loc),
                top5_loc: if has_truth { top5_loc } else { None },
                best_iou,
                rsna: metrics::rsna_image(&truth, detect_preds, p.convention),
                detections: detect_preds.len(),
                truth,
                class: chosen,
                preds,
                probability,
                predicted_positive: match p.activation {
                    Activation::Softmax => top1.is_some_and(|t| c.classes.contains(&t)),
                    Activation::Sigmoid => says_yes,
                },
                detected,
                pointing: None,
            });
        }
    }
    out
}

/// What a reader of the numbers must know about the pairs scored.
fn image_notes(
    run: &RunFiles,
    images: &[ImageResult],
    classes: &[EvalClass],
    per_label: bool,
    p: &ScoreParams,
    o: &EvalOptions,
) -> Vec<String> {
    let mut notes = Vec::new();
    let without_probability = images.iter().filter(|i| i.probability.is_none()).count();
    if without_probability > 0 {
        let what = match classes {
            [c] => format!("class {}", c.classes[0]),
            _ => "their class".to_string(),
        };
        notes.push(format!(
            "images without a recorded probability of {what} (not in top_k), taken as 0 for --min-score: {without_probability}"
        ));
    }
    match (o.baseline, per_label, classes) {
        (Some(_), _, _) => {}
        (None, true, _) if !run.localises_truth() => notes.push(
            "the run was not given the truth (run --truth): pairs whose class the run did not localise are misses"
                .into(),
        ),
        (None, false, [c]) if run.always_localises(c.classes[0]) != Some(true) => notes.push(format!(
            "the run did not localise class '{}' on every image ([localise] classes is not a list holding it): \
             GT-known metrics count images without its boxes as misses; set [localise] classes = [\"{}\"]",
            c.name, c.name
        )),
        _ => {}
    }
    if images.iter().all(|i| !i.truth.is_empty()) {
        notes.push("the truth lists no negative images: classification accuracy is the sensitivity".into());
    }
    if p.activation == Activation::Softmax && images.iter().any(|i| i.top5_loc.is_some()) {
        let k = run.images.iter().map(|i| i.top_k.len()).max().unwrap_or(0);
        if k < 5 {
            notes.push(format!("images.csv lists {k} classes per image (top_k): Top-5 Loc uses those"));
        }
    }
    notes
}

/// Pair counts of a set of pairs.
fn pair_counts(pairs: &[&ImageResult]) -> PairCounts {
    PairCounts {
        evaluated: pairs.len(),
        with_truth: pairs.iter().filter(|i| !i.truth.is_empty()).count(),
        negatives: pairs.iter().filter(|i| i.truth.is_empty()).count(),
        truth_boxes: pairs.iter().map(|i| i.truth.len()).sum(),
        predicted_boxes: pairs.iter().map(|i| i.preds.len()).sum(),
        detections: pairs.iter().map(|i| i.detections).sum(),
        scored_rsna: pairs.iter().filter(|i| i.rsna.is_some()).count(),
    }
}

/// The metrics of a set of pairs (all, or one class's); MaxBoxAcc is added by the caller.
pub fn metrics_of(pairs: &[&ImageResult], p: &ScoreParams) -> Metrics {
    let c = p.convention;
    let known: Vec<Case> = pairs.iter().map(|i| i.known_case()).collect();
    let detect: Vec<Case> = pairs.iter().map(|i| i.detect_case()).collect();
    let box_acc = BOX_ACC_DELTAS.map(|d| metrics::box_acc(&known, d, c));
    let rate = |v: Vec<bool>| (!v.is_empty()).then(|| v.iter().filter(|&&b| b).count() as f64 / v.len() as f64);
    Metrics {
        classification: classification(pairs),
        mean_best_iou: metrics::mean(pairs.iter().filter(|i| !i.truth.is_empty()).map(|i| i.best_iou.unwrap_or(0.0))),
        corloc: box_acc[1],
        box_acc,
        box_acc_mean: metrics::box_acc_mean(&known, c),
        max_box_acc: None,
        chestxray8: chestxray8_rows(&detect, c),
        rsna_score: metrics::rsna_score(&detect, c).0,
        gt_known_loc: box_acc[1],
        top1_loc: rate(pairs.iter().filter_map(|i| i.top1_loc).collect()),
        top5_loc: rate(pairs.iter().filter_map(|i| i.top5_loc).collect()),
        pointing_game: rate(pairs.iter().filter_map(|i| i.pointing.and_then(|p| p.hit)).collect()),
        energy_pointing_game: metrics::mean(pairs.iter().filter_map(|i| i.pointing.and_then(|p| p.energy))),
        pxap: None,
        pixel_iou: None,
        pixel_iou_tau: None,
    }
}

/// Classification against the truth: positive when the pair has truth boxes.
fn classification(pairs: &[&ImageResult]) -> Classification {
    let count = |truth: bool, pred: bool| {
        pairs.iter().filter(|i| i.truth.is_empty() != truth && i.predicted_positive == pred).count()
    };
    let (tp, fp, tn, fn_) = (count(true, true), count(false, true), count(false, false), count(true, false));
    Classification {
        true_positive: tp,
        false_positive: fp,
        true_negative: tn,
        false_negative: fn_,
        accuracy: (!pairs.is_empty()).then(|| (tp + tn) as f64 / pairs.len() as f64),
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

/// MaxBoxAcc from the sweep or, for a baseline, from its fixed boxes.
fn max_box_acc(sweep: Option<&SweepResult>, baseline: Option<Baseline>, m: &Metrics) -> Option<MaxBoxAcc> {
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
        (None, Some(_)) => m.box_acc_mean.map(|mean| MaxBoxAcc {
            source: "baseline boxes do not depend on tau: MaxBoxAcc is their BoxAcc",
            v1: m.box_acc[1].unwrap_or(0.0),
            v1_tau: None,
            v2: mean,
            v2_per_delta: m.box_acc.map(|a| a.unwrap_or(0.0)),
            v2_tau_per_delta: None,
            calibrated_tau: None,
        }),
        _ => None,
    }
}

fn protocol(
    classes: &[EvalClass],
    per_label: bool,
    o: &EvalOptions,
    centres: &[Option<(f64, f64)>],
    activation: Activation,
    chosen: Option<&ChosenTaus>,
) -> Protocol {
    let single = if per_label { None } else { classes.first() };
    Protocol {
        mode: if per_label { "per-label" } else { "single-class" },
        class_index: single.map(|c| c.classes[0]),
        class_name: single.map(|c| c.name.clone()),
        classes: classes.iter().map(|c| (c.name.clone(), c.classes.clone())).collect(),
        class_map: o.class_map.clone(),
        activation: activation.name(),
        truth_label: o.truth_label.clone(),
        convention: o.convention.name(),
        localisation: "GT-known: every box of the pair's class, whatever its probability",
        detection: format!("boxes count when the class probability is >= {}", o.min_score),
        rsna_confidence: "class probability x box_score",
        classification: match activation {
            Activation::Softmax => "predicted positive when the top-1 class is one of the pair's classes",
            Activation::Sigmoid => "predicted positive when the class probability is >= --min-score",
        },
        box_acc_deltas: BOX_ACC_DELTAS,
        chestxray8_iobb_thresholds: metrics::CXR8_IOBB_THRESHOLDS,
        chestxray8_iou_threshold: metrics::CXR8_IOU_THRESHOLD,
        rsna_iou_thresholds: metrics::RSNA_IOU_THRESHOLDS,
        sweep_step: o.sweep_step,
        baseline: o.baseline,
        baseline_relative_size: match (per_label, centres) {
            (false, [Some((w, h))]) => Some([*w, *h]),
            _ => None,
        },
        unannotated: if o.unannotated_negative { "negative" } else { "skipped" },
        pointing_tolerance: o.pointing_tolerance,
        pointing: "hit rate over pairs with truth boxes (CheXlocalize); pairs without truth are not scored",
        taus: match chosen {
            Some(t) => format!(
                "boxes cut at the taus of {} (chosen on another split); MaxBoxAcc and the calibrated tau are still \
                 chosen on this set",
                t.path.display()
            ),
            None => "tau chosen on this set: MaxBoxAcc, the calibrated tau and pixel IoU's tau (optimistic; choose \
                     them on another split with --calibrate there and --taus-from here)"
                .into(),
        },
    }
}
