//! `summary.json`: what an evaluation found, and the rows of metrics the stdout table and
//! `report.html` both show.

use std::path::PathBuf;

use serde::Serialize;

use super::annotations::{Format, Issues};
use super::baseline::Baseline;
use super::sweep::SweepResult;

#[derive(Debug, Clone, Serialize)]
pub struct Protocol {
    pub class_index: usize,
    pub class_name: String,
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
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Rows of images.csv.
    pub processed: usize,
    pub processed_ok: usize,
    pub annotated_images: usize,
    pub evaluated: usize,
    pub with_truth: usize,
    pub negatives: usize,
    pub truth_boxes: usize,
    pub predicted_boxes: usize,
    pub detections: usize,
    pub scored_rsna: usize,
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
        Listed { count: v.len(), examples: v.iter().take(super::annotations::ISSUE_EXAMPLES).cloned().collect() }
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
    pub classification: Classification,
    /// Mean over images with truth of the best IoU (0 without prediction).
    pub mean_best_iou: Option<f64>,
    pub box_acc: [Option<f64>; 3],
    pub corloc: Option<f64>,
    pub box_acc_mean: Option<f64>,
    pub max_box_acc: Option<MaxBoxAcc>,
    pub chestxray8: Vec<Cxr8Row>,
    pub rsna_score: Option<f64>,
    pub annotation_issues: Issues,
    pub unmatched: Unmatched,
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepResult>,
}

pub fn f4(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into())
}

/// The metric rows shared by the stdout table and report.html: (metric, value, detail).
pub fn metric_rows(s: &Summary) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    let c = &s.classification;
    rows.push((
        "classification accuracy (top-1)".into(),
        f4(c.accuracy),
        format!("TP {} FP {} TN {} FN {}", c.true_positive, c.false_positive, c.true_negative, c.false_negative),
    ));
    rows.push(("mean best IoU (GT-known)".into(), f4(s.mean_best_iou), String::new()));
    rows.push((
        "BoxAcc @0.3 / @0.5 / @0.7 (GT-known)".into(),
        s.box_acc.iter().map(|v| f4(*v)).collect::<Vec<_>>().join(" / "),
        format!("mean {}", f4(s.box_acc_mean)),
    ));
    rows.push(("CorLoc (BoxAcc @0.5)".into(), f4(s.corloc), String::new()));
    match &s.max_box_acc {
        Some(m) => {
            let digits = (-s.protocol.sweep_step.log10()).ceil().max(0.0) as usize;
            let t = |t: f64| format!("{t:.digits$}");
            let tau = |v: Option<f64>| v.map(|v| format!("tau {}", t(v))).unwrap_or_else(|| "no tau".into());
            rows.push(("MaxBoxAcc (V1: delta 0.5, largest component)".into(), f4(Some(m.v1)), tau(m.v1_tau)));
            let detail = match (m.v2_tau_per_delta, m.calibrated_tau) {
                (Some(ts), Some(c)) => format!(
                    "per delta {} / {} / {} at tau {} / {} / {}; best single tau {}",
                    f4(Some(m.v2_per_delta[0])),
                    f4(Some(m.v2_per_delta[1])),
                    f4(Some(m.v2_per_delta[2])),
                    t(ts[0]),
                    t(ts[1]),
                    t(ts[2]),
                    t(c)
                ),
                _ => m.source.to_string(),
            };
            rows.push(("MaxBoxAccV2 (all components)".into(), f4(Some(m.v2)), detail));
        }
        None => rows.push((
            "MaxBoxAcc / MaxBoxAccV2".into(),
            "-".into(),
            "needs maps (run with [output] maps = true)".into(),
        )),
    }
    rows.push((
        "RSNA score".into(),
        f4(s.rsna_score),
        format!("mean over {} images; IoU 0.40..0.75", s.counts.scored_rsna),
    ));
    for r in &s.chestxray8 {
        rows.push((
            format!("ChestX-ray8 @T(IoBB) {}: accuracy / avg FP", r.t_iobb),
            format!("{} / {}", f4(r.accuracy_iobb), f4(r.avg_fp)),
            format!("with IoU > 0.5: {} / {}", f4(r.accuracy_or_iou), f4(r.avg_fp_or_iou)),
        ));
    }
    rows
}
