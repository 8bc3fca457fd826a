//! 8-connected components of a binary mask, with their tight boxes.
//!
//! 8-connectivity is what OpenCV's contour tracing (used by wsolevaluation) and the CAM
//! paper's region growing treat as one region. Boxes are half-open pixel boxes:
//! `x2 - x1` is the width.

/// One connected region.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// Half-open box `[x1, x2) x [y1, y2)` in mask pixels.
    pub x1: u32,
    pub y1: u32,
    pub x2: u32,
    pub y2: u32,
    /// Number of pixels.
    pub area: u64,
    /// Sum of the score map over the component's pixels.
    pub score_sum: f64,
    /// Label in the label image (1-based, raster order of first pixel).
    pub label: u32,
}

impl Component {
    pub fn mean_score(&self) -> f64 {
        if self.area == 0 {
            0.0
        } else {
            self.score_sum / self.area as f64
        }
    }
}

/// Labels the 8-connected components of `mask` (row-major, `w` x `h`); returns the label
/// image (0 = background) and the components in raster order of their first pixel.
pub fn label_components(mask: &[bool], scores: &[f32], w: usize, h: usize) -> (Vec<u32>, Vec<Component>) {
    debug_assert_eq!(mask.len(), w * h);
    let mut labels = vec![0u32; w * h];
    let mut comps: Vec<Component> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    for start in 0..w * h {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        let label = comps.len() as u32 + 1;
        let (sx, sy) = ((start % w) as u32, (start / w) as u32);
        let mut c = Component { x1: sx, y1: sy, x2: sx + 1, y2: sy + 1, area: 0, score_sum: 0.0, label };
        labels[start] = label;
        stack.push(start);
        while let Some(p) = stack.pop() {
            let (x, y) = (p % w, p / w);
            c.area += 1;
            c.score_sum += scores[p] as f64;
            c.x1 = c.x1.min(x as u32);
            c.x2 = c.x2.max(x as u32 + 1);
            c.y1 = c.y1.min(y as u32);
            c.y2 = c.y2.max(y as u32 + 1);
            let (x0, x1) = (x.saturating_sub(1), (x + 1).min(w - 1));
            let (y0, y1) = (y.saturating_sub(1), (y + 1).min(h - 1));
            for ny in y0..=y1 {
                for nx in x0..=x1 {
                    let q = ny * w + nx;
                    if mask[q] && labels[q] == 0 {
                        labels[q] = label;
                        stack.push(q);
                    }
                }
            }
        }
        comps.push(c);
    }
    (labels, comps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        let h = rows.len();
        let w = rows[0].len();
        (rows.iter().flat_map(|r| r.chars().map(|c| c == '#')).collect(), w, h)
    }

    #[test]
    fn two_blobs_diagonal_touch_and_border() {
        let (m, w, h) = parse(&[
            "##......", "##......", "..#....#", // touches the first blob diagonally: same component
            ".......#", "....##..", // touches (7,3)? no: (5,4) and (7,3) are two apart
        ]);
        let s = vec![1.0f32; w * h];
        let (_, c) = label_components(&m, &s, w, h);
        assert_eq!(c.len(), 3);
        assert_eq!((c[0].x1, c[0].y1, c[0].x2, c[0].y2, c[0].area), (0, 0, 3, 3, 5));
        assert_eq!((c[1].x1, c[1].y1, c[1].x2, c[1].y2, c[1].area), (7, 2, 8, 4, 2));
        assert_eq!((c[2].x1, c[2].y1, c[2].x2, c[2].y2, c[2].area), (4, 4, 6, 5, 2));
    }

    #[test]
    fn ring_is_one_component_with_the_outer_box() {
        let (m, w, h) = parse(&["#####", "#...#", "#...#", "#####"]);
        let (labels, c) = label_components(&m, &vec![0.5; w * h], w, h);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].x1, c[0].y1, c[0].x2, c[0].y2, c[0].area), (0, 0, 5, 4, 14));
        assert!((c[0].mean_score() - 0.5).abs() < 1e-12);
        assert_eq!(labels[6], 0, "the hole is background");
    }

    #[test]
    fn empty_mask_has_no_components() {
        let (_, c) = label_components(&[false; 12], &[0.0; 12], 4, 3);
        assert!(c.is_empty());
    }
}
