//! The evaluation's files: `per_image.csv`, `summary.json`, `unmatched.csv`,
//! `calibrated.toml` (with `--calibrate`), `report.html` ([`super::html`]), and the table
//! printed on stdout. Every file is written atomically, like `run`'s outputs.

use std::fmt::Write as _;
use std::path::Path;

use super::run_files::RunFiles;
use super::summary::{class_table, summary_rows};
use super::{EvalOptions, Evaluation, Summary};
use crate::error::Error;
use crate::output::atomic_write;

pub const PER_IMAGE_HEADER: &[&str] = &[
    "path",
    "label",
    "class",
    "truth",
    "truth_count",
    "pred_count",
    "probability",
    "top1_is_class",
    "best_iou",
    "best_iobb",
    "hit_0.3",
    "hit_0.5",
    "hit_0.7",
    "detections",
    "rsna",
    "model_class",
    "top1_loc",
    "top5_loc",
    "peak_x",
    "peak_y",
    "pointing_hit",
    "energy_in_box",
];

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    atomic_write(path, bytes).map_err(|e| Error::output(path, e.to_string()))
}

/// Writes every file of the evaluation into its folder.
pub fn write_all(ev: &Evaluation, run: &RunFiles, o: &EvalOptions) -> Result<(), Error> {
    let dir = &ev.out_dir;
    std::fs::create_dir_all(dir).map_err(|e| Error::output(dir, format!("cannot create: {e}")))?;
    write(&dir.join("per_image.csv"), per_image_csv(ev)?.as_bytes())?;
    let mut json = serde_json::to_string_pretty(&ev.summary).map_err(|e| Error::output(dir, e.to_string()))?;
    json.push('\n');
    write(&dir.join("summary.json"), json.as_bytes())?;
    write(&dir.join("unmatched.csv"), unmatched_csv(ev)?.as_bytes())?;
    if o.calibrate {
        write(&dir.join("calibrated.toml"), calibrated_toml(&ev.summary, o).as_bytes())?;
    }
    write(&dir.join("report.html"), super::html::render(ev, run, o.gallery).as_bytes())?;
    Ok(())
}

fn csv_text(rows: impl FnOnce(&mut csv::Writer<Vec<u8>>) -> csv::Result<()>) -> Result<String, Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    rows(&mut w).map_err(|e| Error::output("csv", e.to_string()))?;
    let bytes = w.into_inner().map_err(|e| Error::output("csv", e.to_string()))?;
    Ok(String::from_utf8(bytes).expect("utf-8 fields"))
}

/// One row per evaluated (image, class) pair, in `images.csv` order. `label` is the
/// evaluated class (truth label, or the one class's name), `class` the name of the model
/// class whose boxes were scored (`model_class` its index).
pub fn per_image_csv(ev: &Evaluation) -> Result<String, Error> {
    let s = &ev.summary;
    let name_of = |i: &super::ImageResult| -> String {
        match (i.class, s.per_class.get(&i.label)) {
            (Some(k), Some(c)) => c
                .model_classes
                .iter()
                .position(|&m| m == k)
                .map(|j| c.model_class_names[j].clone())
                .unwrap_or_else(|| k.to_string()),
            _ => String::new(),
        }
    };
    csv_text(|w| {
        w.write_record(PER_IMAGE_HEADER)?;
        for i in &ev.images {
            let hit = |k: usize| opt(i.hits.map(|h| h[k]));
            let class = if ev.per_label { name_of(i) } else { i.label.clone() };
            w.write_record([
                i.rel.clone(),
                i.label.clone(),
                class,
                if i.truth.is_empty() { "negative" } else { "positive" }.to_string(),
                i.truth.len().to_string(),
                i.preds.len().to_string(),
                opt(i.probability),
                i.predicted_positive.to_string(),
                opt(i.best_iou),
                opt(i.best_iobb),
                hit(0),
                hit(1),
                hit(2),
                i.detections.to_string(),
                opt(i.rsna),
                opt(i.class),
                opt(i.top1_loc),
                opt(i.top5_loc),
                opt(i.pointing.and_then(|p| p.peak).map(|p| p.0)),
                opt(i.pointing.and_then(|p| p.peak).map(|p| p.1)),
                opt(i.pointing.and_then(|p| p.hit)),
                opt(i.pointing.and_then(|p| p.energy)),
            ])?;
        }
        Ok(())
    })
}

/// Every file that did not pair up, with the reason.
pub fn unmatched_csv(ev: &Evaluation) -> Result<String, Error> {
    let u = &ev.unmatched;
    csv_text(|w| {
        w.write_record(["kind", "name"])?;
        for (kind, list) in [
            ("annotated_not_processed", &u.not_processed),
            ("annotated_failed_in_run", &u.failed_in_run),
            ("processed_not_annotated", &u.not_annotated),
        ] {
            for n in list {
                w.write_record([kind, n.as_str()])?;
            }
        }
        Ok(())
    })
}

/// The `[localise]` snippet that reuses the calibrated threshold: the best single tau
/// over all pairs and, evaluated per label, each class's own (`taus`, keyed by model
/// class name, or index where the name is unknown).
pub fn calibrated_toml(s: &Summary, o: &EvalOptions) -> String {
    let sw = s.sweep.as_ref().expect("calibrate needs the sweep (checked)");
    let digits = (-sw.step.log10()).ceil().max(0.0) as usize;
    let what = match &s.protocol.class_name {
        Some(c) => format!("class '{c}'"),
        None => format!("{} classes", s.per_class.len()),
    };
    let mut t = format!(
        "# Written by `cambox eval --calibrate` (cambox {}).\n\
         # Run: {}; truth: {} ({} pairs with truth, {what}, boxes {}).\n\
         # Criterion: the tau maximising the mean over delta in {{0.3, 0.5, 0.7}} of BoxAcc(tau, delta) with all\n\
         # components (the MaxBoxAccV2 curve; ties go to the smallest tau), sweep step {}.\n\
         # Mean BoxAcc at this tau: {:.4}; MaxBoxAccV2 (each delta at its own best tau): {:.4}.\n\
         [localise]\n\
         preset = \"wsol\"\n\
         tau = {:.digits$}\n",
        s.cambox_version,
        o.run.display(),
        o.truth.display(),
        sw.images,
        s.protocol.convention,
        sw.step,
        sw.calibrated_box_acc_mean,
        sw.max_box_acc_v2,
        sw.calibrated_tau,
    );
    if s.protocol.mode == "per-label" {
        let mut taus: std::collections::BTreeMap<String, (f64, &str)> = std::collections::BTreeMap::new();
        let mut clashes = Vec::new();
        for (label, c) in &s.per_class {
            let Some(tau) = c.metrics.max_box_acc.as_ref().and_then(|m| m.calibrated_tau) else { continue };
            for (k, name) in c.model_classes.iter().zip(&c.model_class_names) {
                let key = if name.is_empty() { k.to_string() } else { name.clone() };
                match taus.get(&key) {
                    Some((t, other)) if *t != tau => clashes.push(format!("{key} ('{other}' and '{label}')")),
                    Some(_) => {}
                    None => {
                        taus.insert(key, (tau, label));
                    }
                }
            }
        }
        let _ = writeln!(t, "# Each class's own best tau, by the same criterion over that class's pairs.");
        if !clashes.is_empty() {
            let _ = writeln!(
                t,
                "# Classes of two labels with different taus (the first label's is kept): {}",
                clashes.join(", ")
            );
        }
        let entries: Vec<String> = taus.iter().map(|(k, (v, _))| format!("{:?} = {v:.digits$}", k)).collect();
        let _ = writeln!(t, "taus = {{ {} }}", entries.join(", "));
    }
    t
}

/// The per-label part of [`table`]: one row per evaluated truth label, aligned.
fn per_label_table(out: &mut String, s: &Summary) {
    let (head, rows) = class_table(s);
    let widths: Vec<usize> = (0..head.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([head[c].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<String>| {
        cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string()
    };
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", line(head.iter().map(|h| h.to_string()).collect()));
    let _ = writeln!(out, "{}", line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    for r in rows {
        let _ = writeln!(out, "{}", line(r));
    }
    if !s.unmapped_labels.is_empty() {
        let l: Vec<String> = s.unmapped_labels.iter().map(|(l, n)| format!("'{l}' ({n} boxes)")).collect();
        let _ = writeln!(out, "truth labels that mean no model class, not evaluated: {}", l.join(", "));
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "over all pairs:");
}

/// The readable table for stdout.
pub fn table(ev: &Evaluation) -> String {
    let s = &ev.summary;
    let p = &s.protocol;
    let n = &s.counts;
    let u = &s.unmatched;
    let mut out = String::new();
    let _ = writeln!(out, "cambox eval: run {}, truth {} ({})", s.run.display(), s.truth.display(), s.format.name());
    let what = match (p.class_index, &p.class_name) {
        (Some(k), Some(n)) => format!("class {k} '{n}'"),
        _ => format!("{} classes, per truth label ({})", s.per_class.len(), p.activation),
    };
    let _ = writeln!(
        out,
        "{what}; boxes {}; {}{}",
        p.convention,
        p.detection,
        p.baseline
            .map(|b| format!(
                "; BASELINE '{}' boxes{}",
                b.name(),
                p.baseline_relative_size.map(|[w, h]| format!(" ({w:.4} x {h:.4} of the image)")).unwrap_or_default()
            ))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "images: {} evaluated ({} pairs: {} with truth, {} negatives; {} truth boxes, {} predicted, {} detections); \
         unmatched: {} annotated not processed, {} failed in run, {} processed not annotated; {} annotation issues",
        n.evaluated_images,
        n.pairs.evaluated,
        n.pairs.with_truth,
        n.pairs.negatives,
        n.pairs.truth_boxes,
        n.pairs.predicted_boxes,
        n.pairs.detections,
        u.annotated_not_processed.count,
        u.annotated_failed_in_run.count,
        u.processed_not_annotated.count,
        s.annotation_issues.total()
    );
    let _ = writeln!(out, "taus: {}", p.taus);
    if let Some(ci) = &s.ci95 {
        let _ = writeln!(out, "[lo, hi]: 95 % bootstrap intervals, {} resamples of images", ci.plan.resamples);
    }
    if ev.per_label {
        per_label_table(&mut out, s);
    }
    let rows = summary_rows(s);
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let _ = writeln!(out);
    let _ = writeln!(out, "{:w0$}  {:w1$}  detail", "metric", "value");
    let _ = writeln!(out, "{}  {}  {}", "-".repeat(w0), "-".repeat(w1), "-".repeat(6));
    for (m, v, d) in rows {
        let _ = writeln!(out, "{m:w0$}  {v:>w1$}  {d}");
    }
    for (kind, k) in &s.annotation_issues.0 {
        let _ =
            writeln!(out, "issue {kind}: {} (e.g. {})", k.count, k.examples.first().map(String::as_str).unwrap_or(""));
    }
    for note in &s.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let _ = writeln!(out, "written: {}", ev.out_dir.display());
    out
}
