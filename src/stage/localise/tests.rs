//! Hand-made maps with known answers.

use super::*;
use crate::stage::input_spec::{InputSpec, Layout};
use crate::stage::preprocess::{PreprocessOptions, Preprocessor, ResizeMode};
use ndarray::Array2;

/// Geometry that maps an image onto itself (network input = image).
fn identity_geo(w: u32, h: u32) -> Geometry {
    Geometry {
        orig_w: w,
        orig_h: h,
        net_w: w as usize,
        net_h: h as usize,
        resized_w: w as usize,
        resized_h: h as usize,
        scale_x: 1.0,
        scale_y: 1.0,
        offset_x: 0.0,
        offset_y: 0.0,
    }
}

fn recipe(thresholds: &[&str], keep: Keep) -> Recipe {
    Recipe {
        preset: Preset::Custom,
        thresholds: thresholds.iter().map(|t| t.parse().unwrap()).collect(),
        keep,
        ..Recipe::cam_paper()
    }
}

/// A 12 x 10 map with two blobs: a big one (value 1) top-left, a small one (0.6)
/// bottom-right that touches the right border.
fn two_blobs() -> Array2<f32> {
    let mut m = Array2::<f32>::zeros((10, 12));
    for y in 1..5 {
        for x in 1..6 {
            m[[y, x]] = 1.0;
        }
    }
    for y in 7..9 {
        for x in 10..12 {
            m[[y, x]] = 0.6;
        }
    }
    m
}

fn boxes(l: &ClassLocalisation) -> Vec<(u32, u32, u32, u32)> {
    l.boxes.iter().map(|b| (b.x1, b.y1, b.x2, b.y2)).collect()
}

#[test]
fn two_blobs_largest_and_all_for_each_threshold_mode() {
    let m = two_blobs();
    let geo = identity_geo(12, 10);
    for t in ["fraction:0.2", "absolute:0.5", "otsu", "percentile:80"] {
        let all = Localiser::new(recipe(&[t], Keep::All)).localise(0, m.view(), &geo);
        assert_eq!(boxes(&all), vec![(1, 1, 6, 5), (10, 7, 12, 9)], "{t}");
        assert_eq!(all.boxes[0].area, 20);
        assert!((all.boxes[1].box_score - 0.6).abs() < 1e-6, "{t}: mean of the normalised map inside");
        let largest = Localiser::new(recipe(&[t], Keep::Largest)).localise(0, m.view(), &geo);
        assert_eq!(boxes(&largest), vec![(1, 1, 6, 5)], "{t}");
        assert_eq!(largest.mask.iter().filter(|&&b| b == 255).count(), 20);
    }
    // Above the small blob's level only the big one survives.
    let high = Localiser::new(recipe(&["absolute:0.6"], Keep::All)).localise(0, m.view(), &geo);
    assert_eq!(boxes(&high), vec![(1, 1, 6, 5)], "strictly above 0.6");
    // The minimum area drops the small blob (4 px < 5 % of 120 px).
    let mut r = recipe(&["fraction:0.2"], Keep::All);
    r.min_area = 0.05;
    assert_eq!(boxes(&Localiser::new(r).localise(0, m.view(), &geo)), vec![(1, 1, 6, 5)]);
}

#[test]
fn ring_gives_its_outer_box() {
    let mut m = Array2::<f32>::zeros((9, 9));
    for y in 1..8 {
        for x in 1..8 {
            if y == 1 || y == 7 || x == 1 || x == 7 {
                m[[y, x]] = 1.0;
            }
        }
    }
    let l = Localiser::new(recipe(&["fraction:0.5"], Keep::All)).localise(0, m.view(), &identity_geo(9, 9));
    assert_eq!(boxes(&l), vec![(1, 1, 8, 8)]);
    assert_eq!(l.boxes[0].area, 24);
}

#[test]
fn empty_constant_and_nan_maps_give_no_box_and_no_nan() {
    let geo = identity_geo(6, 5);
    for m in [Array2::<f32>::zeros((5, 6)), Array2::<f32>::from_elem((5, 6), 3.0), {
        let mut m = two_blobs().slice_each_axis(|a| ndarray::Slice::from(0..[5, 6][a.axis.index()])).to_owned();
        m[[2, 2]] = f32::NAN;
        m
    }] {
        for t in ["fraction:0.2", "absolute:0.0", "otsu", "percentile:50"] {
            let l = Localiser::new(recipe(&[t], Keep::All)).localise(0, m.view(), &geo);
            assert!(l.boxes.is_empty(), "{t}: {:?}", l.boxes);
            assert!(l.map.iter().all(|v| *v == 0.0), "normalised map is zeros");
        }
    }
}

#[test]
fn chestxray8_preset_gives_boxes_at_both_levels() {
    let m = two_blobs();
    let l = Localiser::new(Recipe::chestxray8()).localise(0, m.view(), &identity_geo(12, 10));
    // u8 map: big blob 255, small 153 (0.6 * 255 = 153): both above 60, only the big above 180.
    assert_eq!(boxes(&l), vec![(1, 1, 6, 5), (10, 7, 12, 9), (1, 1, 6, 5)]);
    assert_eq!(l.boxes[0].threshold, Threshold::U8(60));
    assert_eq!(l.boxes[2].threshold, Threshold::U8(180));
    assert_eq!(l.boxes[2].threshold_value, 180.0);
}

fn geometry(mode: ResizeMode, w: u32, h: u32) -> Geometry {
    let net = InputSpec { name: "x".into(), layout: Layout::Nchw, channels: 3, width: 224, height: 224 };
    let cfg = PreprocessOptions { resize: mode, resize_to: Some(256), ..Default::default() };
    Preprocessor::new(&cfg, &net).unwrap().geometry(w, h)
}

/// A map that is 1 on one cell of a 7 x 7 grid must land on the original pixels that
/// the network saw at that cell, for every resize mode, on odd sizes.
#[test]
fn one_hot_feature_cell_lands_on_the_right_original_pixels() {
    for mode in [ResizeMode::Stretch, ResizeMode::ShorterSideThenCenterCrop, ResizeMode::Letterbox] {
        for (w, h) in [(333u32, 517u32), (517, 333), (224, 224), (101, 37)] {
            let geo = geometry(mode, w, h);
            for (cy, cx) in [(0usize, 0usize), (3, 5), (6, 6), (2, 0)] {
                let mut m = Array2::<f32>::zeros((7, 7));
                m[[cy, cx]] = 1.0;
                let l = Localiser::new(recipe(&["fraction:0.5"], Keep::Largest)).localise(0, m.view(), &geo);
                // The cell covers network pixels [32 cx, 32 cx + 32) x [32 cy, 32 cy + 32).
                let (ux0, uy0) = geo.to_orig(32.0 * cx as f64, 32.0 * cy as f64);
                let (ux1, uy1) = geo.to_orig(32.0 * (cx + 1) as f64, 32.0 * (cy + 1) as f64);
                // Clip to the image: a crop may cut the cell, letterbox pads never hold image.
                let (ex0, ey0) = (ux0.max(0.0), uy0.max(0.0));
                let (ex1, ey1) = (ux1.min(w as f64), uy1.min(h as f64));
                if ex1 <= ex0 || ey1 <= ey0 {
                    // The cell lies in padding or outside the crop: nothing of the image.
                    assert!(l.boxes.is_empty() || mode == ResizeMode::Letterbox, "{mode:?} {w}x{h} cell {cy},{cx}");
                    continue;
                }
                assert_eq!(l.boxes.len(), 1, "{mode:?} {w}x{h} cell {cy},{cx}");
                let b = &l.boxes[0];
                // Bilinear upsampling makes the region above 50 % exactly the cell, up to one
                // network pixel of rounding on each side, mapped to original pixels.
                let tol_x = 1.0 / geo.scale_x + 1.0;
                let tol_y = 1.0 / geo.scale_y + 1.0;
                let near = |a: u32, e: f64, tol: f64| (a as f64 - e).abs() <= tol;
                assert!(
                    near(b.x1, ex0, tol_x) && near(b.x2, ex1, tol_x) && near(b.y1, ey0, tol_y) && near(b.y2, ey1, tol_y),
                    "{mode:?} {w}x{h} cell ({cy},{cx}): box {:?} expected about ({ex0:.1},{ey0:.1})-({ex1:.1},{ey1:.1})",
                    (b.x1, b.y1, b.x2, b.y2)
                );
            }
        }
    }
}

#[test]
fn centre_crop_never_marks_pixels_the_network_did_not_see() {
    // 517 x 333: resized to 397 x 256, crop 224 x 224 from (86, 16). A pixel is seen when
    // its centre maps inside the crop: columns 112..404 ((i + 0.5) * 397 / 517 - 86 in
    // [0, 224)) and rows 21..312 ((i + 0.5) * 256 / 333 - 16 in [0, 224)).
    let geo = geometry(ResizeMode::ShorterSideThenCenterCrop, 517, 333);
    let m = Array2::<f32>::ones((7, 7)) + Array2::<f32>::from_shape_fn((7, 7), |(y, x)| (x + y) as f32);
    let l = Localiser::new(recipe(&["absolute:-1"], Keep::All)).localise(0, m.view(), &geo);
    let row = &l.map[100 * 517..101 * 517];
    assert!(row[..111].iter().all(|&v| v == 0.0));
    assert!(row[404..].iter().all(|&v| v == 0.0));
    assert_eq!(boxes(&l), vec![(112, 21, 404, 312)], "exactly the seen region");
    assert!(l.map[10 * 517 + 200] == 0.0, "row 10 is above the crop");
}

#[test]
fn class_selection() {
    let p = Prediction::from_logits(vec![0.0, 2.0, 1.0, -1.0], 2);
    assert_eq!(ClassSelection::parse("top1").unwrap().select(&p), vec![1]);
    assert_eq!(ClassSelection::parse("topk:3").unwrap().select(&p), vec![1, 2, 0]);
    // probs: e^2/(1 + e^2 + e + e^-1) = 0.6103, e/... = 0.2245
    assert_eq!(ClassSelection::parse("above:0.2").unwrap().select(&p), vec![1, 2]);
    assert!(ClassSelection::parse("topk:0").is_err());
    assert!(ClassSelection::parse("best").is_err());
}

/// wsolevaluation cuts its 8-bit map at `int(tau * np.max(map_u8))`. At original
/// resolution the map's maximum can be below 1 (the network-resolution peak falls between
/// sampled pixel centres), so the cut must use the 8-bit maximum of this map, not 255.
#[test]
fn quantised_fraction_uses_the_maps_own_eight_bit_maximum() {
    let loc = Localiser::new(Recipe::wsol(0.5));
    // 8-bit levels 153 (0.6) and 102 (0.4): int(0.5 * 153) = 76 keeps both.
    let map = vec![0.6, 0.4, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let p = loc.prepare_original(map, 4, 2, (0, 0, 4, 2));
    let cut = loc.cut(&p, &Threshold::Fraction(0.5));
    assert_eq!(cut, 76.0);
    let comps = loc.components_above(&p, cut).components;
    assert_eq!(comps.len(), 1);
    assert_eq!(comps[0].area, 2);
    // Otsu and percentiles on the 8-bit map see the levels, not saturated values.
    let custom = Localiser::new(Recipe { quantise: true, thresholds: vec![Threshold::Otsu], ..Recipe::cam_paper() });
    let q = custom.prepare_original(vec![0.2, 0.2, 0.2, 0.2, 0.6, 0.6, 0.6, 0.6], 4, 2, (0, 0, 4, 2));
    let c = custom.cut(&q, &Threshold::Otsu);
    assert!((51.0..153.0).contains(&c), "Otsu level {c} must separate 51 from 153");
}
