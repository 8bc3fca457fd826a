//! The report's two charts as geometry: the IoU histogram and BoxAcc against the CAM
//! threshold tau, every coordinate already placed and formatted.
//!
//! The arithmetic lives here rather than in the template so that the template only lays
//! out text, and so that a chart can be checked in a unit test without parsing SVG.
//! Coordinates are in SVG user units (pixels), each number formatted exactly as the page
//! has always shown it (mostly one decimal, a few fixed positions as plain numbers), so
//! that the page did not change when the template did.

use crate::eval::sweep::SweepResult;
use crate::eval::ImageResult;

/// Bins of the IoU histogram over [0, 1].
const IOU_HISTOGRAM_BINS: usize = 10;

/// Width of both charts; height of the histogram and of the sweep chart.
const WIDTH: f64 = 560.0;
const HISTOGRAM_HEIGHT: f64 = 220.0;
const SWEEP_HEIGHT: f64 = 240.0;
/// Room for the y labels on the left and the x labels below.
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 30.0;

/// A line from (x1, y1) to (x2, y2).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub x1: String,
    pub y1: String,
    pub x2: String,
    pub y2: String,
}

/// Text placed at (x, y).
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub x: String,
    pub y: String,
    pub text: String,
}

/// The IoU histogram: a bar for images without a box, then one per bin.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub width: String,
    pub height: String,
    pub axis: Line,
    pub bars: Vec<Bar>,
    /// The x axis's title.
    pub title: Label,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    pub fill: &'static str,
    /// The count, above the bar.
    pub count: Label,
    /// The bin's start (or `none`), below the axis.
    pub bin: Label,
}

/// BoxAcc against tau: four curves over a grid, and the calibrated tau.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepChart {
    pub width: String,
    pub height: String,
    pub grid: Vec<GridLine>,
    pub curves: Vec<Curve>,
    /// Dotted, at the calibrated tau.
    pub calibrated: Line,
}

/// A horizontal grid line at a value, with that value on both axes.
#[derive(Debug, Clone, PartialEq)]
pub struct GridLine {
    pub line: Line,
    pub y_label: Label,
    pub x_label: Label,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub colour: &'static str,
    /// The V1 curve is dashed, to tell it from the V2 curve at the same delta.
    pub dashed: bool,
    /// `x,y x,y ...`
    pub points: String,
    /// The curve's name, in its colour, below the chart.
    pub name: Label,
}

/// Counts of best IoU per bin over [0, 1] (the last bin holds 1), and pairs with truth
/// but no prediction.
pub fn iou_histogram(images: &[ImageResult], bins: usize) -> (Vec<usize>, usize) {
    let mut h = vec![0usize; bins];
    let mut none = 0;
    for i in images.iter().filter(|i| !i.truth.is_empty()) {
        match i.best_iou {
            Some(v) => h[((v * bins as f64) as usize).min(bins - 1)] += 1,
            None => none += 1,
        }
    }
    (h, none)
}

/// The histogram of the pairs' best IoU; the `none` bar (grey) counts pairs without a box.
pub fn histogram(images: &[ImageResult]) -> Histogram {
    let bins = IOU_HISTOGRAM_BINS;
    let (h, none) = iou_histogram(images, bins);
    let (w, ht) = (WIDTH, HISTOGRAM_HEIGHT);
    let base = ht - BOTTOM;
    let bw = (w - LEFT - 10.0) / (bins + 1) as f64;
    let max = h.iter().copied().chain([none]).max().unwrap_or(0).max(1) as f64;
    let plot_h = ht - BOTTOM - 20.0;
    let bars = std::iter::once(none)
        .chain(h)
        .enumerate()
        .map(|(k, c)| {
            let x = LEFT + k as f64 * bw;
            let bh = c as f64 / max * plot_h;
            let bin = if k == 0 { "none".to_string() } else { format!("{:.1}", (k - 1) as f64 / bins as f64) };
            Bar {
                x: format!("{:.1}", x + 2.0),
                y: format!("{:.1}", base - bh),
                width: format!("{:.1}", bw - 4.0),
                height: format!("{bh:.1}"),
                fill: if k == 0 { "#9aa3b2" } else { "#3d6fd1" },
                count: Label {
                    x: format!("{:.1}", x + bw / 2.0),
                    y: format!("{:.1}", base - bh - 4.0),
                    text: c.to_string(),
                },
                bin: Label { x: format!("{:.1}", x + bw / 2.0), y: (base + 14.0).to_string(), text: bin },
            }
        })
        .collect();
    Histogram {
        width: w.to_string(),
        height: ht.to_string(),
        axis: Line { x1: LEFT.to_string(), y1: base.to_string(), x2: (w - 10.0).to_string(), y2: base.to_string() },
        bars,
        title: Label {
            x: (LEFT + (w - LEFT) / 2.0).to_string(),
            y: (ht - 2.0).to_string(),
            text: "best IoU (bin start; 'none' = no box)".into(),
        },
    }
}

/// BoxAcc against tau from the threshold sweep: V2 at the three deltas, V1 at 0.5.
pub fn sweep_chart(sw: &SweepResult) -> SweepChart {
    let (w, ht) = (WIDTH, SWEEP_HEIGHT);
    let (pw, ph) = (w - LEFT - 10.0, ht - BOTTOM - 10.0);
    let px = |t: f64| LEFT + t * pw;
    let py = |v: f64| 10.0 + (1.0 - v) * ph;
    let grid = [0.0, 0.25, 0.5, 0.75, 1.0]
        .map(|g: f64| GridLine {
            line: Line {
                x1: LEFT.to_string(),
                y1: format!("{:.1}", py(g)),
                x2: format!("{:.1}", w - 10.0),
                y2: format!("{:.1}", py(g)),
            },
            y_label: Label { x: (LEFT - 4.0).to_string(), y: format!("{:.1}", py(g) + 3.0), text: g.to_string() },
            x_label: Label { x: format!("{:.1}", px(g)), y: (ht - BOTTOM + 14.0).to_string(), text: g.to_string() },
        })
        .into();
    let series: [(&str, &str, Vec<f64>); 4] = [
        ("V2 delta 0.3", "#2a9d8f", sw.box_acc_v2.iter().map(|a| a[0]).collect()),
        ("V2 delta 0.5", "#3d6fd1", sw.box_acc_v2.iter().map(|a| a[1]).collect()),
        ("V2 delta 0.7", "#7b3fbf", sw.box_acc_v2.iter().map(|a| a[2]).collect()),
        ("V1 delta 0.5", "#e07a1f", sw.box_acc_v1.iter().map(|a| a[1]).collect()),
    ];
    let curves = series
        .into_iter()
        .enumerate()
        .map(|(k, (name, colour, acc))| Curve {
            colour,
            dashed: k == 3,
            points: sw
                .taus
                .iter()
                .zip(acc)
                .map(|(&t, a)| format!("{:.1},{:.1}", px(t), py(a)))
                .collect::<Vec<_>>()
                .join(" "),
            name: Label {
                x: format!("{:.1}", LEFT + 8.0 + k as f64 * 120.0),
                y: (ht - 2.0).to_string(),
                text: name.into(),
            },
        })
        .collect();
    let tau = format!("{:.1}", px(sw.calibrated_tau));
    SweepChart {
        width: w.to_string(),
        height: ht.to_string(),
        grid,
        curves,
        calibrated: Line { x1: tau.clone(), y1: "10".into(), x2: tau, y2: format!("{:.1}", ht - BOTTOM) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::html::pair;

    #[test]
    fn histogram_bins() {
        let v = vec![
            pair("a", Some(0.95), true),
            pair("b", None, true),
            pair("c", Some(1.0), true),
            pair("d", Some(0.05), true),
            pair("e", None, false),
        ];
        let (h, none) = iou_histogram(&v, 10);
        assert_eq!((h[0], h[9], none), (1, 2, 1));
    }

    #[test]
    fn the_tallest_bar_fills_the_plot() {
        let v = vec![pair("a", Some(0.95), true), pair("b", Some(0.91), true), pair("c", None, true)];
        let h = histogram(&v);
        assert_eq!(h.bars.len(), IOU_HISTOGRAM_BINS + 1);
        let (none, top) = (&h.bars[0], &h.bars[10]);
        assert_eq!((none.bin.text.as_str(), none.count.text.as_str(), none.fill), ("none", "1", "#9aa3b2"));
        assert_eq!((top.bin.text.as_str(), top.count.text.as_str()), ("0.9", "2"));
        // Plot height 170 from the axis at 190 up to 20; half as tall for half the count.
        assert_eq!((top.y.as_str(), top.height.as_str(), none.height.as_str()), ("20.0", "170.0", "85.0"));
        assert_eq!(h.axis, Line { x1: "40".into(), y1: "190".into(), x2: "550".into(), y2: "190".into() });
        assert_eq!((h.bars[1].height.as_str(), h.bars[1].y.as_str()), ("0.0", "190.0"));
    }

    #[test]
    fn sweep_curves_map_tau_and_boxacc_to_the_plot() {
        let sw = SweepResult {
            step: 0.5,
            taus: vec![0.0, 0.5],
            images: 2,
            without_map: 0,
            without_map_examples: vec![],
            box_acc_v1: vec![[0.0, 0.5, 0.0], [0.0, 1.0, 0.0]],
            box_acc_v2: vec![[1.0, 0.0, 0.25], [0.5, 0.5, 0.75]],
            max_box_acc: 1.0,
            max_box_acc_tau: 0.5,
            max_box_acc_v2_per_delta: [1.0, 0.5, 0.75],
            max_box_acc_v2_tau_per_delta: [0.0, 0.5, 0.5],
            max_box_acc_v2: 0.75,
            calibrated_tau: 0.5,
            calibrated_box_acc_mean: 0.58,
        };
        let c = sweep_chart(&sw);
        // x: 40 + tau * 510; y: 10 + (1 - BoxAcc) * 200.
        assert_eq!(c.curves[0].points, "40.0,10.0 295.0,110.0");
        assert_eq!(c.curves[3].points, "40.0,110.0 295.0,10.0");
        assert!(c.curves[3].dashed && !c.curves[2].dashed);
        assert_eq!(c.calibrated, Line { x1: "295.0".into(), y1: "10".into(), x2: "295.0".into(), y2: "210.0".into() });
        let labels: Vec<&str> = c.grid.iter().map(|g| g.y_label.text.as_str()).collect();
        assert_eq!(labels, ["0", "0.25", "0.5", "0.75", "1"]);
    }
}
