//! The report's gallery as data: which pairs it shows, in which order, and each card's
//! caption and thumbnail, ready to render.
//!
//! The failures are what one looks at, so the pairs with truth come worst best-IoU first
//! (no box at all first), capped so the page stays small. An evaluation of several
//! classes gives each class its share of the cap, so that filtering the page by a class
//! still shows that class's failures.

use super::thumbs::{key_style, thumbnail, Thumbnail, PEAK, PRED, TRUTH};
use crate::eval::run_files::RunFiles;
use crate::eval::{Evaluation, ImageResult};

/// A class a share of the gallery is never smaller than.
const MIN_CLASS_SHARE: usize = 6;

/// The gallery section.
#[derive(Debug, Clone, PartialEq)]
pub struct Gallery {
    /// Cards shown (the page's script updates it when filtering).
    pub shown: usize,
    /// Pairs with truth, of which `shown` are shown.
    pub with_truth: usize,
    /// `pairs` (per label) or `images`.
    pub noun: &'static str,
    /// CSS backgrounds of the legend's keys: truth, predicted.
    pub truth_key: String,
    pub pred_key: String,
    /// The map's peak, drawn when the maps were read.
    pub peak_key: Option<String>,
    /// The class filter's choices (per label only).
    pub filter: Option<Vec<String>>,
    pub cards: Vec<Card>,
}

/// One pair of the gallery.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    /// The pair's class: what the filter matches.
    pub class: String,
    /// The image's path, the thumbnail's alt text.
    pub alt: String,
    /// `None`: the image could not be read (the caption says so).
    pub thumbnail: Option<Thumbnail>,
    pub caption: String,
}

/// The gallery's images: with truth, worst best-IoU first (no box first), then by path.
pub fn gallery_order(images: &[ImageResult], cap: usize) -> Vec<&ImageResult> {
    let mut v: Vec<&ImageResult> = images.iter().filter(|i| !i.truth.is_empty()).collect();
    v.sort_by(|a, b| {
        a.best_iou
            .unwrap_or(-1.0)
            .total_cmp(&b.best_iou.unwrap_or(-1.0))
            .then(a.rel.cmp(&b.rel))
            .then(a.label.cmp(&b.label))
    });
    v.truncate(cap);
    v
}

/// The gallery of an evaluation of several classes: each class's worst pairs (its share
/// of the cap, at least [`MIN_CLASS_SHARE`]), worst first over all.
pub fn gallery_by_class(images: &[ImageResult], classes: usize, cap: usize) -> Vec<&ImageResult> {
    let share = cap.div_ceil(classes.max(1)).max(MIN_CLASS_SHARE);
    let mut v: Vec<&ImageResult> = (0..classes).flat_map(|c| gallery_order_of(images, c, share)).collect();
    v.sort_by(|a, b| a.best_iou.unwrap_or(-1.0).total_cmp(&b.best_iou.unwrap_or(-1.0)).then(a.rel.cmp(&b.rel)));
    v
}

fn gallery_order_of(images: &[ImageResult], class: usize, cap: usize) -> Vec<&ImageResult> {
    let mut v: Vec<&ImageResult> = images.iter().filter(|i| i.class_index == class && !i.truth.is_empty()).collect();
    v.sort_by(|a, b| a.best_iou.unwrap_or(-1.0).total_cmp(&b.best_iou.unwrap_or(-1.0)).then(a.rel.cmp(&b.rel)));
    v.truncate(cap);
    v
}

/// A card's caption: path (and class, per label), best IoU, probability, box counts, and
/// what the thumbnail shows (`None`: no thumbnail).
pub fn caption(im: &ImageResult, per_label: bool, source: Option<&str>) -> String {
    format!(
        "{}{} — IoU {} · p {} · truth {} · boxes {} ({})",
        im.rel,
        if per_label { format!(" · {}", im.label) } else { String::new() },
        im.best_iou.map(|v| format!("{v:.3}")).unwrap_or_else(|| "none".into()),
        im.probability.map(|v| format!("{v:.3}")).unwrap_or_else(|| "?".into()),
        im.truth.len(),
        im.preds.len(),
        source.unwrap_or("image not found")
    )
}

/// The gallery of an evaluation, thumbnails made (the slow part of building the report).
pub fn gallery(ev: &Evaluation, run: &RunFiles, cap: usize) -> Gallery {
    let shown =
        if ev.per_label { gallery_by_class(&ev.images, ev.classes.len(), cap) } else { gallery_order(&ev.images, cap) };
    let overlay = ev.summary.protocol.baseline.is_none();
    let cards = shown
        .iter()
        .map(|im| {
            let class = im.class.unwrap_or(ev.classes[im.class_index].classes[0]);
            let thumbnail = thumbnail(run, im, class, overlay);
            let caption = caption(im, ev.per_label, thumbnail.as_ref().map(|t| t.source));
            Card { class: im.label.clone(), alt: im.rel.clone(), thumbnail, caption }
        })
        .collect();
    Gallery {
        shown: shown.len(),
        with_truth: ev.summary.counts.pairs.with_truth,
        noun: if ev.per_label { "pairs" } else { "images" },
        truth_key: key_style(TRUTH),
        pred_key: key_style(PRED),
        peak_key: ev.images.iter().any(|i| i.pointing.is_some_and(|p| p.peak.is_some())).then(|| key_style(PEAK)),
        filter: ev.per_label.then(|| ev.classes.iter().map(|c| c.name.clone()).collect()),
        cards,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::html::pair as im;
    use crate::eval::metrics::{Rect, Scored};

    #[test]
    fn worst_first_then_by_path() {
        let v = vec![
            im("a", Some(0.95), true),
            im("b", None, true),
            im("c", Some(1.0), true),
            im("d", Some(0.05), true),
            im("e", None, false),
        ];
        let order: Vec<&str> = gallery_order(&v, 3).iter().map(|i| i.rel.as_str()).collect();
        assert_eq!(order, vec!["b", "d", "a"]);
    }

    #[test]
    fn every_class_gets_its_share() {
        // Class 1's pairs are all better than class 0's, yet each class keeps its share.
        let mut v: Vec<ImageResult> = (0..10).map(|k| im(&format!("a{k}"), Some(k as f64 / 100.0), true)).collect();
        v.extend((0..10).map(|k| ImageResult { class_index: 1, ..im(&format!("b{k}"), Some(0.5), true) }));
        let shown = gallery_by_class(&v, 2, 4);
        assert_eq!(shown.len(), 2 * MIN_CLASS_SHARE);
        assert_eq!(shown.iter().filter(|i| i.class_index == 1).count(), MIN_CLASS_SHARE);
        assert_eq!(shown[0].rel, "a0");
    }

    #[test]
    fn captions_say_what_is_missing() {
        let mut i = im("x/y.png", None, true);
        assert_eq!(caption(&i, false, None), "x/y.png — IoU none · p ? · truth 1 · boxes 0 (image not found)");
        i.best_iou = Some(0.12345);
        i.probability = Some(0.9);
        i.preds = vec![Scored { rect: Rect::new(1.0, 1.0, 2.0, 2.0), score: 0.5 }];
        assert_eq!(
            caption(&i, true, Some("overlay")),
            "x/y.png · c — IoU 0.123 · p 0.900 · truth 1 · boxes 1 (overlay)"
        );
    }
}
