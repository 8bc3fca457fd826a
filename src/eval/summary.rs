//! `summary.json`: what an evaluation found, and the rows of metrics the stdout table and
//! `report.html` both show.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::baseline::Baseline;
use super::intervals::{Ci95, Figures};
use super::sweep::SweepResult;
use crate::truth::annotations::{Format, Issues};

#[derive(Debug, Clone, Serialize)]
pub struct Protocol {
    /// `per-label` (each truth label against its model classes) or `single-class`.
    pub mode: &'static str,
    /// The evaluated class of a single-class evaluation.
    pub class_index: Option<usize>,
    pub class_name: Option<String>,
    /// Every evaluated class and the model classes it means.
    pub classes: BTreeMap<String, Vec<usize>>,
    pub class_map: Option<PathBuf>,
    /// `softmax` or `sigmoid` (multi-label): how the run's probabilities were made.
    pub activation: &'static str,
    pub truth_label: Option<String>,
    pub convention: &'static str,
    pub localisation: &'static str,
    pub detection: String,
    pub rsna_confidence: &'static str,
    pub classification: &'static str,
    pub box_acc_deltas: [f64; 3],
    pub chestxray8_iobb_thresholds: [f64; 5],
    pub chestxray8_iou_threshold: f64,
    pub rsna_iou_thresholds: [f64; 8],
    pub sweep_step: f64,
    pub baseline: Option<Baseline>,
    /// The centre baseline's box: width and height as fractions of the image's.
    pub baseline_relative_size: Option<[f64; 2]>,
    pub unannotated: &'static str,
    /// The pointing game's tolerance, in original-image pixels.
    pub pointing_tolerance: f64,
    /// Which pairs the pointing game and energy score.
    pub pointing: &'static str,
    /// Where the taus of the tau-dependent figures come from.
    pub taus: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Rows of images.csv.
    pub processed: usize,
    pub processed_ok: usize,
    pub annotated_images: usize,
    /// Images taking part (each in one pair per evaluated class).
    pub evaluated_images: usize,
    #[serde(flatten)]
    pub pairs: PairCounts,
}

/// Counts of (image, class) pairs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PairCounts {
    /// Pairs evaluated (rows of per_image.csv).
    pub evaluated: usize,
    /// Pairs whose image has truth boxes of the class, and pairs without.
    pub with_truth: usize,
    pub negatives: usize,
    pub truth_boxes: usize,
    pub predicted_boxes: usize,
    pub detections: usize,
    pub scored_rsna: usize,
}

/// The metrics of a set of pairs: all of them (the top level of `summary.json`), or one
/// class's (`per_class`).
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub classification: Classification,
    /// Mean over pairs with truth of the best IoU (0 without prediction).
    pub mean_best_iou: Option<f64>,
    pub box_acc: [Option<f64>; 3],
    pub corloc: Option<f64>,
    pub box_acc_mean: Option<f64>,
    pub max_box_acc: Option<MaxBoxAcc>,
    pub chestxray8: Vec<Cxr8Row>,
    pub rsna_score: Option<f64>,
    /// BoxAcc at 0.5 of each pair's own class (= CorLoc).
    pub gt_known_loc: Option<f64>,
    /// The classifier right and the box at IoU >= 0.5 (see the module docs).
    pub top1_loc: Option<f64>,
    /// Softmax models: one of the five most probable classes right, with its box.
    pub top5_loc: Option<f64>,
    /// Hit rate of the map's peak over pairs with truth (TorchRay's tolerance).
    pub pointing_game: Option<f64>,
    /// Mean share of the map's positive mass inside the truth boxes, over pairs with truth.
    pub energy_pointing_game: Option<f64>,
    /// wsolevaluation's pixel AP against the truth masks (a fraction).
    pub pxap: Option<f64>,
    /// Pooled pixel IoU of the normalised map above `pixel_iou_tau` against the truth masks.
    pub pixel_iou: Option<f64>,
    pub pixel_iou_tau: Option<f64>,
}

/// One evaluated class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassSummary {
    pub model_classes: Vec<usize>,
    pub model_class_names: Vec<String>,
    /// The centre baseline's box for this class (fractions of the image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub centre_baseline_size: Option<[f64; 2]>,
    pub counts: PairCounts,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// The mean over classes (macro) of each class's metric, over the classes where it is
/// defined.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MeanMetrics {
    pub classes: usize,
    pub classification_accuracy: Option<f64>,
    pub mean_best_iou: Option<f64>,
    pub box_acc: [Option<f64>; 3],
    pub corloc: Option<f64>,
    pub box_acc_mean: Option<f64>,
    pub max_box_acc_v1: Option<f64>,
    pub max_box_acc_v2: Option<f64>,
    pub chestxray8: Vec<Cxr8Row>,
    pub rsna_score: Option<f64>,
    pub gt_known_loc: Option<f64>,
    pub top1_loc: Option<f64>,
    pub top5_loc: Option<f64>,
    pub pointing_game: Option<f64>,
    pub energy_pointing_game: Option<f64>,
    pub pxap: Option<f64>,
    pub pixel_iou: Option<f64>,
}

impl MeanMetrics {
    pub fn of<'a>(per_class: impl Iterator<Item = &'a Metrics> + Clone) -> MeanMetrics {
        let mean = |f: &dyn Fn(&Metrics) -> Option<f64>| super::metrics::mean(per_class.clone().filter_map(f));
        let rows = per_class.clone().next().map(|m| m.chestxray8.len()).unwrap_or(0);
        MeanMetrics {
            classes: per_class.clone().count(),
            classification_accuracy: mean(&|m| m.classification.accuracy),
            mean_best_iou: mean(&|m| m.mean_best_iou),
            box_acc: [0, 1, 2].map(|d| mean(&|m| m.box_acc[d])),
            corloc: mean(&|m| m.corloc),
            box_acc_mean: mean(&|m| m.box_acc_mean),
            max_box_acc_v1: mean(&|m| m.max_box_acc.as_ref().map(|x| x.v1)),
            max_box_acc_v2: mean(&|m| m.max_box_acc.as_ref().map(|x| x.v2)),
            chestxray8: (0..rows)
                .map(|r| Cxr8Row {
                    t_iobb: per_class.clone().next().map(|m| m.chestxray8[r].t_iobb).unwrap_or(0.0),
                    accuracy_iobb: mean(&|m| m.chestxray8[r].accuracy_iobb),
                    accuracy_or_iou: mean(&|m| m.chestxray8[r].accuracy_or_iou),
                    avg_fp: mean(&|m| m.chestxray8[r].avg_fp),
                    avg_fp_or_iou: mean(&|m| m.chestxray8[r].avg_fp_or_iou),
                })
                .collect(),
            rsna_score: mean(&|m| m.rsna_score),
            gt_known_loc: mean(&|m| m.gt_known_loc),
            top1_loc: mean(&|m| m.top1_loc),
            top5_loc: mean(&|m| m.top5_loc),
            pointing_game: mean(&|m| m.pointing_game),
            energy_pointing_game: mean(&|m| m.energy_pointing_game),
            pxap: mean(&|m| m.pxap),
            pixel_iou: mean(&|m| m.pixel_iou),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Classification {
    pub true_positive: usize,
    pub false_positive: usize,
    pub true_negative: usize,
    pub false_negative: usize,
    pub accuracy: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cxr8Row {
    pub t_iobb: f64,
    pub accuracy_iobb: Option<f64>,
    #[serde(rename = "accuracy_iobb_or_iou_0.5")]
    pub accuracy_or_iou: Option<f64>,
    pub avg_fp: Option<f64>,
    #[serde(rename = "avg_fp_iobb_or_iou_0.5")]
    pub avg_fp_or_iou: Option<f64>,
}

/// MaxBoxAcc numbers, from the sweep or, for a baseline, from its fixed boxes.
#[derive(Debug, Clone, Serialize)]
pub struct MaxBoxAcc {
    pub source: &'static str,
    pub v1: f64,
    pub v1_tau: Option<f64>,
    pub v2: f64,
    pub v2_per_delta: [f64; 3],
    pub v2_tau_per_delta: Option<[f64; 3]>,
    pub calibrated_tau: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub count: usize,
    pub examples: Vec<String>,
}

impl Listed {
    pub(super) fn of(v: &[String]) -> Listed {
        Listed { count: v.len(), examples: v.iter().take(crate::truth::annotations::ISSUE_EXAMPLES).cloned().collect() }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Unmatched {
    pub annotated_not_processed: Listed,
    pub annotated_failed_in_run: Listed,
    pub processed_not_annotated: Listed,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub cambox_version: &'static str,
    pub run: PathBuf,
    pub truth: PathBuf,
    pub format: Format,
    pub protocol: Protocol,
    pub counts: Counts,
    /// Over all (image, class) pairs.
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Each evaluated class's metrics, under the same keys, by class name (truth label).
    pub per_class: BTreeMap<String, ClassSummary>,
    pub mean_over_classes: MeanMetrics,
    /// Truth labels that mean no model class, with their box counts (not evaluated).
    pub unmapped_labels: BTreeMap<String, usize>,
    pub annotation_issues: Issues,
    pub unmatched: Unmatched,
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepResult>,
    /// 95 % bootstrap intervals (`--bootstrap 0`: none).
    pub ci95: Option<Ci95>,
    /// The truth masks (`--truth-masks`) and how many pairs had one.
    pub truth_masks: Option<MaskUse>,
    /// The split the evaluation was restricted to (`--split`).
    pub split: Option<SplitUse>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MaskUse {
    pub dir: PathBuf,
    pub pairs_with_mask: usize,
    pub unusable: Listed,
}

#[derive(Debug, Clone, Serialize)]
pub struct SplitUse {
    pub file: PathBuf,
    /// Paths the file lists.
    pub listed: usize,
    /// Evaluated images left out because the split does not list them.
    pub left_out: usize,
    /// Listed paths that are no evaluated image.
    pub not_evaluated: Listed,
}

pub fn f4(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into())
}

/// A figure with its 95 % interval when there is one: `0.6200 [0.5500, 0.6900]`.
pub fn with_ci(v: Option<f64>, ci: Option<&Figures>, key: &str) -> String {
    match (v, ci.and_then(|c| c.get(key))) {
        (Some(_), Some([lo, hi])) => format!("{} [{lo:.4}, {hi:.4}]", f4(v)),
        _ => f4(v),
    }
}

/// The metric rows over all pairs, with their intervals.
pub fn summary_rows(s: &Summary) -> Vec<(String, String, String)> {
    let ci = s.ci95.as_ref().map(|c| &c.all);
    metric_rows(&s.metrics, &s.counts.pairs, &s.protocol, ci)
}

/// The rows of the figures read off the maps: pointing game, energy, PxAP, pixel IoU.
fn map_rows(m: &Metrics, p: &Protocol, ci: Option<&Figures>) -> Vec<(String, String, String)> {
    let tau_here = p.taus.starts_with("tau chosen on this set");
    let mut rows = vec![
        (
            format!("pointing game (tolerance {} px)", p.pointing_tolerance),
            with_ci(m.pointing_game, ci, "pointing_game"),
            "hit rate over pairs with truth".to_string(),
        ),
        (
            "energy pointing game".to_string(),
            with_ci(m.energy_pointing_game, ci, "energy_pointing_game"),
            "mean share of the map's positive mass inside the truth boxes".to_string(),
        ),
    ];
    if m.pxap.is_some() || m.pixel_iou.is_some() {
        rows.push(("PxAP (truth masks)".into(), with_ci(m.pxap, ci, "pxap"), "wsolevaluation's pixel AP".into()));
        rows.push((
            "pixel IoU (truth masks)".into(),
            with_ci(m.pixel_iou, ci, "pixel_iou"),
            match m.pixel_iou_tau {
                Some(t) if tau_here => format!("tau {t} (chosen on this set)"),
                Some(t) => format!("tau {t} (--taus-from)"),
                None => "each class at its own tau".into(),
            },
        ));
    }
    rows
}

/// The MaxBoxAcc rows (V1 and V2), or one saying why they are missing.
fn max_box_acc_rows(m: &Metrics, sweep_step: f64, ci: Option<&Figures>) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    match &m.max_box_acc {
        Some(x) => {
            let digits = (-sweep_step.log10()).ceil().max(0.0) as usize;
            let t = |t: f64| format!("{t:.digits$}");
            let tau = |v: Option<f64>| v.map(|v| format!("tau {}", t(v))).unwrap_or_else(|| "no tau".into());
            rows.push(("MaxBoxAcc (V1: delta 0.5, largest component)".into(), f4(Some(x.v1)), tau(x.v1_tau)));
            let detail = match (x.v2_tau_per_delta, x.calibrated_tau) {
                (Some(ts), Some(c)) => format!(
                    "per delta {} / {} / {} at tau {} / {} / {}; best single tau {}",
                    f4(Some(x.v2_per_delta[0])),
                    f4(Some(x.v2_per_delta[1])),
                    f4(Some(x.v2_per_delta[2])),
                    t(ts[0]),
                    t(ts[1]),
                    t(ts[2]),
                    t(c)
                ),
                _ => x.source.to_string(),
            };
            let detail = match x.v2_tau_per_delta {
                Some(_) => format!("{detail} (taus chosen on this set)"),
                None => detail,
            };
            rows.push(("MaxBoxAccV2 (all components)".into(), with_ci(Some(x.v2), ci, "max_box_acc_v2"), detail));
        }
        None => rows.push((
            "MaxBoxAcc / MaxBoxAccV2".into(),
            "-".into(),
            "needs maps (run with [output] maps = true)".into(),
        )),
    }
    rows
}

/// The metric rows shared by the stdout table and report.html: (metric, value, detail),
/// for the metrics of a set of pairs.
pub fn metric_rows(
    m: &Metrics,
    counts: &PairCounts,
    p: &Protocol,
    ci: Option<&Figures>,
) -> Vec<(String, String, String)> {
    let sweep_step = p.sweep_step;
    let mut rows = Vec::new();
    let c = &m.classification;
    rows.push((
        "classification accuracy (top-1)".into(),
        f4(c.accuracy),
        format!("TP {} FP {} TN {} FN {}", c.true_positive, c.false_positive, c.true_negative, c.false_negative),
    ));
    rows.push(("mean best IoU (GT-known)".into(), f4(m.mean_best_iou), String::new()));
    rows.push((
        "BoxAcc @0.3 / @0.5 / @0.7 (GT-known)".into(),
        m.box_acc.iter().map(|v| f4(*v)).collect::<Vec<_>>().join(" / "),
        format!("mean {}", f4(m.box_acc_mean)),
    ));
    rows.push(("CorLoc (BoxAcc @0.5)".into(), with_ci(m.corloc, ci, "gt_known_loc"), String::new()));
    rows.extend(max_box_acc_rows(m, sweep_step, ci));
    rows.extend(map_rows(m, p, ci));
    rows.push((
        "RSNA score".into(),
        with_ci(m.rsna_score, ci, "rsna_score"),
        format!("mean over {} images; IoU 0.40..0.75", counts.scored_rsna),
    ));
    for r in &m.chestxray8 {
        rows.push((
            format!("ChestX-ray8 @T(IoBB) {}: accuracy / avg FP", r.t_iobb),
            format!(
                "{} / {}",
                with_ci(r.accuracy_iobb, ci, &format!("chestxray8_accuracy@{}", r.t_iobb)),
                f4(r.avg_fp)
            ),
            format!("with IoU > 0.5: {} / {}", f4(r.accuracy_or_iou), f4(r.avg_fp_or_iou)),
        ));
    }
    rows.push((
        "GT-known Loc / Top-1 Loc / Top-5 Loc".into(),
        format!(
            "{} / {} / {}",
            with_ci(m.gt_known_loc, ci, "gt_known_loc"),
            with_ci(m.top1_loc, ci, "top1_loc"),
            f4(m.top5_loc)
        ),
        String::new(),
    ));
    rows
}

/// The per-class table (stdout and report.html): a header and one row per class, then the
/// mean over classes and the value over all pairs.
pub fn class_table(s: &Summary) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let head = vec![
        "class",
        "model classes",
        "pairs +/-",
        "CorLoc",
        "BoxAcc .3/.5/.7",
        "MaxBoxAccV2",
        "RSNA",
        "CXR8 acc@0.5",
        "CXR8 FP@0.5",
        "Top-1 Loc",
        "Top-5 Loc",
        "Pointing",
        "Energy",
        "PxAP",
    ];
    let cxr =
        |rows: &[Cxr8Row], f: &dyn Fn(&Cxr8Row) -> Option<f64>| f4(rows.iter().find(|r| r.t_iobb == 0.5).and_then(f));
    let row = |name: String, classes: String, counts: String, m: &Metrics, ci: Option<&Figures>| {
        vec![
            name,
            classes,
            counts,
            with_ci(m.corloc, ci, "gt_known_loc"),
            m.box_acc.iter().map(|v| f4(*v)).collect::<Vec<_>>().join(" / "),
            f4(m.max_box_acc.as_ref().map(|x| x.v2)),
            f4(m.rsna_score),
            cxr(&m.chestxray8, &|r| r.accuracy_iobb),
            cxr(&m.chestxray8, &|r| r.avg_fp),
            f4(m.top1_loc),
            f4(m.top5_loc),
            with_ci(m.pointing_game, ci, "pointing_game"),
            f4(m.energy_pointing_game),
            f4(m.pxap),
        ]
    };
    let mut rows: Vec<Vec<String>> = s
        .per_class
        .iter()
        .map(|(name, c)| {
            let classes = c
                .model_classes
                .iter()
                .zip(&c.model_class_names)
                .map(|(k, n)| if n.is_empty() { k.to_string() } else { format!("{k} {n}") })
                .collect::<Vec<_>>()
                .join(", ");
            let ci = s.ci95.as_ref().and_then(|c| c.per_class.get(name));
            row(name.clone(), classes, format!("{} / {}", c.counts.with_truth, c.counts.negatives), &c.metrics, ci)
        })
        .collect();
    let m = &s.mean_over_classes;
    rows.push(vec![
        format!("mean of {} classes", m.classes),
        String::new(),
        String::new(),
        f4(m.corloc),
        m.box_acc.iter().map(|v| f4(*v)).collect::<Vec<_>>().join(" / "),
        f4(m.max_box_acc_v2),
        f4(m.rsna_score),
        cxr(&m.chestxray8, &|r| r.accuracy_iobb),
        cxr(&m.chestxray8, &|r| r.avg_fp),
        f4(m.top1_loc),
        f4(m.top5_loc),
        f4(m.pointing_game),
        f4(m.energy_pointing_game),
        f4(m.pxap),
    ]);
    rows.push(row(
        "all pairs".into(),
        String::new(),
        format!("{} / {}", s.counts.pairs.with_truth, s.counts.pairs.negatives),
        &s.metrics,
        s.ci95.as_ref().map(|c| &c.all),
    ));
    (head, rows)
}
