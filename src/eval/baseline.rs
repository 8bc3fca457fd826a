//! Baseline boxes that any localiser must beat (wsolevaluation reports a centre box:
//! 52.5 MaxBoxAccV2 on ImageNet, 59.7 on CUB).
//!
//! `--baseline centre` puts one box of the average truth size (as a fraction of the image
//! side, averaged over all truth boxes evaluated) at the centre of every processed image;
//! `--baseline whole` boxes the whole image. They replace the run's boxes and nothing
//! else: the class probabilities stay the run's, so the detection metrics (RSNA,
//! ChestX-ray8) compare boxes at equal classification.

use serde::{Deserialize, Serialize};

use super::metrics::Rect;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    Centre,
    Whole,
}

impl Baseline {
    pub fn name(self) -> &'static str {
        match self {
            Baseline::Centre => "centre",
            Baseline::Whole => "whole",
        }
    }
}

/// Mean width and height of truth boxes as fractions of their image's width and height,
/// from `(box, image width, image height)`; `None` without boxes.
pub fn mean_relative_size(boxes: impl IntoIterator<Item = (Rect, u32, u32)>) -> Option<(f64, f64)> {
    let (sw, sh, n) = boxes.into_iter().fold((0.0, 0.0, 0usize), |(sw, sh, n), (r, w, h)| {
        (sw + (r.x2 - r.x1) / w as f64, sh + (r.y2 - r.y1) / h as f64, n + 1)
    });
    (n > 0).then(|| (sw / n as f64, sh / n as f64))
}

/// A box of `rel_w` x `rel_h` of the image, centred, on whole pixels (at least one).
pub fn centre_box(rel_w: f64, rel_h: f64, width: u32, height: u32) -> Rect {
    let side = |rel: f64, n: u32| -> (f64, f64) {
        let s = (rel * n as f64).round().clamp(1.0, n as f64) as u32;
        let a = (n - s) / 2;
        (a as f64, (a + s) as f64)
    };
    let ((x1, x2), (y1, y2)) = (side(rel_w, width), side(rel_h, height));
    Rect::new(x1, y1, x2, y2)
}

pub fn whole_box(width: u32, height: u32) -> Rect {
    Rect::new(0.0, 0.0, width as f64, height as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_and_whole() {
        let m = mean_relative_size([
            (Rect::new(0.0, 0.0, 50.0, 20.0), 100, 100),
            (Rect::new(0.0, 0.0, 10.0, 20.0), 50, 200),
        ])
        .unwrap();
        assert_eq!(m, ((0.5 + 0.2) / 2.0, (0.2 + 0.1) / 2.0));
        // 35 % of 100 = 35 wide, starting at (100 - 35) / 2 = 32.
        assert_eq!(centre_box(0.35, 0.15, 100, 100), Rect::new(32.0, 42.0, 67.0, 57.0));
        assert_eq!(centre_box(0.0, 2.0, 10, 10), Rect::new(4.0, 0.0, 5.0, 10.0));
        assert_eq!(whole_box(7, 9), Rect::new(0.0, 0.0, 7.0, 9.0));
        assert_eq!(mean_relative_size([]), None);
    }
}
