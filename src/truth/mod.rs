//! Ground truth: annotation files, which image they name, and which model classes their
//! labels mean.
//!
//! Both `cambox run --truth` (to localise each image's true classes, whatever the
//! prediction) and `cambox eval` (to score the boxes) read annotations, so they live here,
//! apart from both: [`annotations`] parses the formats (RSNA, NIH, generic CSV, VOC, COCO),
//! [`matching`] finds which processed image an annotation names, and [`class_map`] ties
//! truth labels ("cat", "Infiltrate") to model classes (ImageNet 281-285, a model's
//! "Infiltration").

pub mod annotations;
pub mod class_map;
pub mod masks;
pub mod matching;

use serde::Serialize;

/// A box `[x1, x2) x [y1, y2)` in original-image pixels (or inclusive, depending on the
/// convention an evaluation reads it with).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rect {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

impl Rect {
    pub fn new(x1: f64, y1: f64, x2: f64, y2: f64) -> Rect {
        Rect { x1, y1, x2, y2 }
    }
}
