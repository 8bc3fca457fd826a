//! `report.html`: one static page that opens anywhere, offline, and can be mailed.
//!
//! No external resources: inline CSS and script, inline SVG charts (IoU histogram, BoxAcc
//! against tau), and thumbnails embedded as base64 JPEG. The gallery shows the pairs with
//! truth worst IoU first (the failures are what one looks at), each with the truth boxes
//! in green and the predicted boxes in red.
//!
//! Made in two steps: [`view`] gathers everything the page shows (numbers formatted,
//! [`charts`] placed, [`gallery`] thumbnails made by [`thumbs`]), then [`page`] lays it
//! out with maud, section by section. The image work and every decision stay out of the
//! template, and the template escapes whatever it inserts.

pub mod charts;
pub mod gallery;
pub mod page;
pub mod thumbs;
pub mod view;

pub use charts::iou_histogram;
pub use gallery::{gallery_by_class, gallery_order};
pub use view::ReportView;

use super::run_files::RunFiles;
use super::Evaluation;

/// The whole page.
pub fn render(ev: &Evaluation, run: &RunFiles, gallery_cap: usize) -> String {
    page::page(&ReportView::build(ev, run, gallery_cap))
}

/// A pair for the tests of the report's modules.
#[cfg(test)]
fn pair(rel: &str, iou: Option<f64>, truth: bool) -> super::ImageResult {
    super::ImageResult {
        rel: rel.into(),
        label: "c".into(),
        class_index: 0,
        class: None,
        detected: false,
        top1_loc: None,
        top5_loc: None,
        width: 10,
        height: 10,
        truth: if truth { vec![super::metrics::Rect::new(0.0, 0.0, 5.0, 5.0)] } else { vec![] },
        preds: vec![],
        probability: None,
        predicted_positive: false,
        best_iou: iou,
        best_iobb: None,
        hits: None,
        rsna: None,
        detections: 0,
        pointing: None,
    }
}
