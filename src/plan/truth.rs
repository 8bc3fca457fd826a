//! `[truth]` resolved for a run: the annotations indexed by image, their labels mapped to
//! the model's classes, and the classes each image must be localised for.

use super::fingerprint::{sha256_path, TruthDigest};
use crate::config::TruthConfig;
use crate::error::Result;
use crate::labels::Labels;
use crate::output::manifest::TruthReport;
use crate::stage::maps::ranked;
use crate::truth::annotations;
use crate::truth::class_map::{ClassMap, Resolution};
use crate::truth::matching::TruthIndex;

/// The ground truth of a run.
pub struct TruthPlan {
    index: TruthIndex,
    class_map: ClassMap,
    /// What `run.json` says about it.
    pub report: TruthReport,
}

impl TruthPlan {
    /// Reads the annotations and the class map for a model with these labels.
    pub fn load(c: &TruthConfig, labels: &Labels) -> Result<TruthPlan> {
        let format = match c.format {
            Some(f) => f,
            None => annotations::detect(&c.annotations)?,
        };
        let ann = annotations::load(&c.annotations, format)?;
        let class_map = ClassMap::load(c.class_map.as_deref(), labels)?;
        let boxes = || ann.images.iter().flat_map(|i| &i.boxes);
        let Resolution { mapped, unmapped } = class_map.resolve(boxes().filter_map(|b| b.label.as_deref()));
        let report = TruthReport {
            annotations: c.annotations.clone(),
            format,
            class_map: c.class_map.clone(),
            mapped,
            unmapped,
            unlabelled_boxes: boxes().filter(|b| b.label.is_none()).count(),
            issues: ann.issues.0.iter().map(|(k, v)| (k.clone(), v.count)).collect(),
        };
        Ok(TruthPlan { index: TruthIndex::new(&ann), class_map, report })
    }

    /// The hashes of the files, for the run's fingerprint.
    pub fn digest(&self) -> Result<TruthDigest> {
        Ok(TruthDigest {
            annotations_sha256: sha256_path(&self.report.annotations)?,
            class_map_sha256: self.report.class_map.as_deref().map(sha256_path).transpose()?,
        })
    }

    /// The classes the truth of the image at `rel` names, given its probabilities: for
    /// each label of its boxes, the mapped class with the highest probability (ties: the
    /// lower index). In label order; none for an image the annotations do not name.
    pub fn classes(&self, rel: &str, probs: &[f32]) -> Vec<usize> {
        let Some(boxes) = self.index.boxes(rel) else { return Vec::new() };
        let labels: std::collections::BTreeSet<&str> = boxes.iter().filter_map(|b| b.label.as_deref()).collect();
        let mut out = Vec::new();
        for l in labels {
            let mapped: Vec<usize> = self.class_map.classes(l).into_iter().filter(|&k| k < probs.len()).collect();
            if let Some(&k) = ranked(probs, mapped).first() {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
        out
    }

    /// A one-line account of labels that mean no class, when there are any.
    pub fn unmapped_note(&self) -> Option<String> {
        let r = &self.report;
        let mut parts: Vec<String> = r.unmapped.iter().map(|(l, n)| format!("'{l}' ({n} boxes)")).collect();
        if r.unlabelled_boxes > 0 {
            parts.push(format!("{} boxes without a label", r.unlabelled_boxes));
        }
        (!parts.is_empty()).then(|| {
            format!(
                "truth labels that name no model class, not localised: {}{}",
                parts.join(", "),
                if r.class_map.is_none() { "; give a class map (--class-map) to tie them to classes" } else { "" }
            )
        })
    }
}
