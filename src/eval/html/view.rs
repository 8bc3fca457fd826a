//! Everything `report.html` shows, gathered before any of it is rendered: texts and
//! numbers formatted as the page shows them, the charts' geometry, the gallery's
//! thumbnails encoded.
//!
//! Building first and rendering second keeps the template a plain layout (no decisions,
//! no arithmetic, no image work), lets the contents be tested without parsing HTML, and
//! leaves the slow and fallible part (reading images) in one place.

use super::charts::{histogram, sweep_chart, Histogram, SweepChart};
use super::gallery::{gallery, Gallery};
use crate::eval::run_files::RunFiles;
use crate::eval::summary::{class_table, summary_rows, Summary};
use crate::eval::Evaluation;

/// The whole page's contents.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportView {
    /// The evaluated class, or `N classes`.
    pub title: String,
    /// `cambox eval`, and the baseline when it is one.
    pub heading: String,
    /// What was evaluated against what, how, and how many.
    pub meta: Vec<String>,
    pub notes: Vec<String>,
    /// Per label only.
    pub per_class: Option<ClassTable>,
    pub metrics: MetricsTable,
    pub histogram: Histogram,
    /// Only when the run's maps were swept.
    pub sweep: Option<SweepChart>,
    /// Files the run and the truth do not share, and annotation issues.
    pub unmatched: Vec<UnmatchedRow>,
    pub gallery: Gallery,
}

/// The per-class table: one row per class, the mean over classes, all pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassTable {
    pub head: Vec<&'static str>,
    /// The first cell names the row (the class filter's key).
    pub rows: Vec<Vec<String>>,
    /// Truth labels that mean no model class, with their box counts.
    pub unmapped: Option<String>,
}

/// The metrics over all pairs: (metric, value, detail) rows, as on stdout.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsTable {
    pub title: &'static str,
    pub rows: Vec<(String, String, String)>,
}

/// One kind of unmatched file or annotation issue.
#[derive(Debug, Clone, PartialEq)]
pub struct UnmatchedRow {
    pub kind: String,
    pub count: usize,
    /// The first few, `; `-separated.
    pub examples: String,
}

impl ReportView {
    /// The view of an evaluation; reads the run's images for the gallery.
    pub fn build(ev: &Evaluation, run: &RunFiles, gallery_cap: usize) -> ReportView {
        let s = &ev.summary;
        ReportView {
            title: s.protocol.class_name.clone().unwrap_or_else(|| format!("{} classes", s.per_class.len())),
            heading: match s.protocol.baseline {
                Some(b) => format!("cambox eval — baseline '{}'", b.name()),
                None => "cambox eval".into(),
            },
            meta: meta_lines(s),
            notes: s.notes.iter().map(|n| format!("note: {n}")).collect(),
            per_class: ev.per_label.then(|| per_class(s)),
            metrics: MetricsTable {
                title: if ev.per_label { "Metrics over all pairs" } else { "Metrics" },
                rows: summary_rows(s),
            },
            histogram: histogram(&ev.images),
            sweep: s.sweep.as_ref().map(sweep_chart),
            unmatched: unmatched_rows(s),
            gallery: gallery(ev, run, gallery_cap),
        }
    }
}

/// The lines under the heading: run, truth, class and protocol, counts.
fn meta_lines(s: &Summary) -> Vec<String> {
    let p = &s.protocol;
    let c = &s.counts.pairs;
    vec![
        format!("run: {}", s.run.display()),
        format!("truth: {} ({})", s.truth.display(), s.format.name()),
        match (p.class_index, &p.class_name) {
            (Some(k), Some(n)) => format!("class {k} '{n}'; box convention: {}; {}", p.convention, p.detection),
            _ => format!(
                "{} classes, per truth label ({} model); box convention: {}; {}",
                s.per_class.len(),
                p.activation,
                p.convention,
                p.detection
            ),
        },
        format!("localisation: {}; RSNA confidence: {}", p.localisation, p.rsna_confidence),
        format!(
            "{} images evaluated ({} pairs): {} with truth, {} negatives; {} truth boxes, {} predicted boxes",
            s.counts.evaluated_images, c.evaluated, c.with_truth, c.negatives, c.truth_boxes, c.predicted_boxes
        ),
        format!("taus: {}", p.taus),
        match &s.ci95 {
            Some(ci) => format!(
                "[lo, hi]: 95 % bootstrap intervals, {} resamples of images (seed {})",
                ci.plan.resamples, ci.plan.seed
            ),
            None => "no intervals (--bootstrap 0)".into(),
        },
    ]
}

fn per_class(s: &Summary) -> ClassTable {
    let (head, rows) = class_table(s);
    let unmapped = (!s.unmapped_labels.is_empty()).then(|| {
        let l: Vec<String> = s.unmapped_labels.iter().map(|(l, n)| format!("'{l}' ({n} boxes)")).collect();
        format!("truth labels that mean no model class, not evaluated: {}", l.join(", "))
    });
    ClassTable { head, rows, unmapped }
}

fn unmatched_rows(s: &Summary) -> Vec<UnmatchedRow> {
    let u = &s.unmatched;
    let row =
        |kind: &str, count: usize, ex: &[String]| UnmatchedRow { kind: kind.into(), count, examples: ex.join("; ") };
    let mut rows = vec![
        row("annotated, not processed", u.annotated_not_processed.count, &u.annotated_not_processed.examples),
        row("annotated, failed in the run", u.annotated_failed_in_run.count, &u.annotated_failed_in_run.examples),
        row("processed, not annotated", u.processed_not_annotated.count, &u.processed_not_annotated.examples),
    ];
    rows.extend(s.annotation_issues.0.iter().map(|(k, v)| row(k, v.count, &v.examples)));
    rows
}
