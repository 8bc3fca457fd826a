//! Box extraction against wsolevaluation's `compute_bboxes_from_scoremaps` (OpenCV
//! contours), on maps and outputs stored by scripts/reference/wsol_boxes.py.
//!
//! Conventions, which this test pins down:
//! - Same quantisation (`(map * 255)` truncated to u8), same cut (`int(tau * max_u8)`),
//!   same strict `>`: the masks are identical, so every 8-connected component box equals
//!   the bounding box of the matching outer OpenCV contour.
//! - wsolevaluation writes `[x, y, x + w, y + h]` and then clips `x + w` to `width - 1`
//!   (and `y + h` to `height - 1`); its IoU adds +1 as if the box were inclusive. cambox
//!   keeps the half-open box, so a box touching the right or bottom border is one pixel
//!   wider here than in wsolevaluation's output.
//! - OpenCV's RETR_TREE also returns the contours of holes (a ring gives an extra box
//!   around its hole in V2); cambox boxes components, not holes.
//! - V1 keeps the contour with the largest polygon area in OpenCV and the component with
//!   the most pixels in cambox; they differ only on degenerate shapes (a one-pixel-wide
//!   line has polygon area 0) and on exact ties.

use crate::common::*;
use cambox::stage::localise::{Keep, Localiser, Recipe};
use cambox::stage::preprocess::Geometry;
use ndarray::Ix2;

fn sorted(mut v: Vec<[u32; 4]>) -> Vec<[u32; 4]> {
    v.sort();
    v
}

fn boxes_of(j: &serde_json::Value) -> Vec<[u32; 4]> {
    j.as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let b: Vec<u32> = b.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            [b[0], b[1], b[2], b[3]]
        })
        .collect()
}

#[test]
fn boxes_match_wsolevaluation() {
    let dir = root().join("tests/fixtures/wsol");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let mut checked = 0;
    for entry in expected.as_array().unwrap() {
        let map = npy(dir.join(entry["map"].as_str().unwrap())).into_dimensionality::<Ix2>().unwrap();
        let (h, w) = map.dim();
        // The map is taken as the network input itself: no resampling, no crop.
        let geo = Geometry {
            orig_w: w as u32,
            orig_h: h as u32,
            net_w: w,
            net_h: h,
            resized_w: w,
            resized_h: h,
            scale_x: 1.0,
            scale_y: 1.0,
            offset_x: 0.0,
            offset_y: 0.0,
        };
        for case in entry["cases"].as_array().unwrap() {
            let tau = case["tau"].as_f64().unwrap() as f32;
            let name = format!("{} tau {tau}", entry["map"]);
            let all = Localiser::new(Recipe::wsol(tau)).localise(0, map.view(), &geo);
            assert_eq!(all.boxes[0].threshold_value as u64, case["thresh_u8"].as_u64().unwrap(), "{name}: cut");
            let ours: Vec<[u32; 4]> = all.boxes.iter().map(|b| [b.x1, b.y1, b.x2, b.y2]).collect();
            // Identical to the 8-connected components of OpenCV's own mask...
            assert_eq!(sorted(ours.clone()), sorted(boxes_of(&case["component_boxes_8"])), "{name}");
            assert_eq!(
                all.mask.iter().filter(|&&m| m == 255).count() as u64,
                case["mask_pixels"].as_u64().unwrap(),
                "{name}: mask"
            );
            // ...and to wsolevaluation's contour boxes after its border clipping, holes aside.
            let clipped: Vec<[u32; 4]> =
                ours.iter().map(|b| [b[0], b[1], b[2].min(w as u32 - 1), b[3].min(h as u32 - 1)]).collect();
            let outer: Vec<[u32; 4]> = case["contours"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| !c["is_hole"].as_bool().unwrap())
                .map(|c| {
                    let b: Vec<u32> = c["box"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
                    [b[0], b[1], b[2], b[3]]
                })
                .collect();
            assert_eq!(sorted(clipped), sorted(outer), "{name}: contour boxes");
            // V1.
            let mut r = Recipe::wsol(tau);
            r.keep = Keep::Largest;
            let v1 = Localiser::new(r).localise(0, map.view(), &geo);
            if case["v1_is_most_pixels_component"].as_bool().unwrap() && !case["v1_area_tie"].as_bool().unwrap() {
                let b = &v1.boxes[0];
                let want = boxes_of(&case["v1_boxes"])[0];
                assert_eq!([b.x1, b.y1, b.x2.min(w as u32 - 1), b.y2.min(h as u32 - 1)], want, "{name}: V1");
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "{checked} cases");
}
