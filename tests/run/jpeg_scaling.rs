//! `[decode] jpeg_scaling = "dct"` against `"exact"` on the 16 sample chest X-rays, with
//! the benchmark's settings (EfficientNet-Lite0, torchvision resize 256 / centre crop 224,
//! bilinear, cam-paper, masks on): what the reduced decode changes in the outputs, and
//! that every output stays in original pixels.
//!
//! With `DCT_MIN_OVERSAMPLE = 2` an X-ray is reduced (by 2) only when its shorter side is
//! at least 1024 pixels: 8 of the 16 samples; the other 8 are decoded exactly in both
//! runs and must give identical rows.

use std::collections::HashMap;
use std::path::Path;

use crate::common::*;

const XRAYS: &str = "data/samples/chest-xray";

/// Runs the bench recipe on the X-rays with `jpeg_scaling`; returns the output folder.
fn run(dir: &Path, scaling: &str) -> std::path::PathBuf {
    let r = root();
    let cfg = format!(
        r#"
[input]
paths = ["{xrays}"]

[model]
path = "{model}"
labels = "{labels}"

[preprocess]
resize = "shorter-side-then-center-crop"
resize_to = 256
resampling = "bilinear"
channels = "rgb"
scale = "unit"
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]

[output]
top_k = 5
masks = true
overlays = false

[localise]
classes = "top1"
preset = "cam-paper"

[decode]
jpeg_scaling = "{scaling}"
"#,
        xrays = r.join(XRAYS).display(),
        model = r.join("data/models/efficientnet-lite0.onnx").display(),
        labels = r.join("data/models/imagenet-classes.txt").display(),
    );
    let path = dir.join(format!("{scaling}.toml"));
    std::fs::write(&path, cfg).unwrap();
    let out = dir.join(scaling);
    let (code, _, err) = cambox(&["run", "-q", "-c", path.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{scaling}: {err}");
    out
}

type Row = HashMap<String, String>;

fn by_path(rows: Vec<Row>) -> HashMap<String, Row> {
    rows.into_iter().map(|r| (r["path"].clone(), r)).collect()
}

fn rect(r: &Row) -> [f64; 4] {
    ["x1", "y1", "x2", "y2"].map(|k| r[k].parse().unwrap())
}

fn mask(path: &Path) -> image::GrayImage {
    image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).into_luma8()
}

#[test]
fn dct_decoding_keeps_predictions_boxes_and_original_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let exact_dir = run(dir.path(), "exact");
    let dct_dir = run(dir.path(), "dct");

    let exact = by_path(read_csv(exact_dir.join("images.csv")));
    let dct = by_path(read_csv(dct_dir.join("images.csv")));
    assert_eq!(exact.len(), 16);
    assert_eq!(dct.len(), 16);
    let exact_boxes = by_path(read_csv(exact_dir.join("boxes.csv")));
    let dct_boxes = by_path(read_csv(dct_dir.join("boxes.csv")));

    let mut paths: Vec<&String> = exact.keys().collect();
    paths.sort();
    let (mut same_top1, mut ious, mut mask_ious, mut reduced) = (0, Vec::new(), Vec::new(), 0);
    for p in paths {
        let (e, d) = (&exact[p], &dct[p]);
        assert_eq!((e["status"].as_str(), d["status"].as_str()), ("ok", "ok"), "{p}");
        // Sizes are the original's, from the file header, in both runs.
        assert_eq!((&e["width"], &e["height"]), (&d["width"], &d["height"]), "{p}");
        let (w, h): (u32, u32) = (e["width"].parse().unwrap(), e["height"].parse().unwrap());
        let is_reduced = w.min(h) >= 1024;
        reduced += is_reduced as usize;
        if !is_reduced {
            // Decoded exactly in both runs: the same numbers.
            assert_eq!((&e["top_k"], &e["score"]), (&d["top_k"], &d["score"]), "{p} is not reduced");
        }
        same_top1 += (e["class_index"] == d["class_index"]) as usize;
        let (eb, db) = (&exact_boxes[p], &dct_boxes[p]);
        let box_iou = iou(rect(eb), rect(db));
        // Masks at original resolution, whatever the decode.
        let em = mask(&exact_dir.join("masks").join(format!("{p}.{}.png", e["class_index"])));
        let dm = mask(&dct_dir.join("masks").join(format!("{p}.{}.png", d["class_index"])));
        assert_eq!(em.dimensions(), (w, h), "{p}");
        assert_eq!(dm.dimensions(), (w, h), "{p}");
        let (mut inter, mut union) = (0u64, 0u64);
        for (a, b) in em.as_raw().iter().zip(dm.as_raw()) {
            inter += (*a > 0 && *b > 0) as u64;
            union += (*a > 0 || *b > 0) as u64;
        }
        let mask_iou = inter as f64 / union.max(1) as f64;
        eprintln!(
            "{p:34} {w}x{h} reduced={is_reduced:5} top1 {} -> {} (score {} -> {}) box IoU {box_iou:.4} mask IoU {mask_iou:.4}",
            e["class_index"], d["class_index"], e["score"], d["score"]
        );
        if e["class_index"] == d["class_index"] {
            assert!(box_iou >= 0.98, "{p}: same class, box IoU {box_iou}");
        }
        ious.push(box_iou);
        mask_ious.push(mask_iou);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    eprintln!(
        "reduced {reduced}/16; same top-1 {same_top1}/16; box IoU mean {:.4} min {:.4}; mask IoU mean {:.4} min {:.4}",
        mean(&ious),
        min(&ious),
        mean(&mask_ious),
        min(&mask_ious)
    );
    assert_eq!(reduced, 8, "samples with a shorter side >= 2 x 2 x 256 pixels");
    assert!(same_top1 >= 15, "same top-1 class on {same_top1}/16");
    assert!(mean(&ious) >= 0.9, "mean box IoU {}", mean(&ious));
    assert!(min(&ious) >= 0.8, "smallest box IoU {}", min(&ious));

    // The run records the setting (run.json's config echo) and the fingerprints differ.
    let manifest = |d: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("run.json")).unwrap()).unwrap()
    };
    let (me, md) = (manifest(&exact_dir), manifest(&dct_dir));
    assert_eq!(me["config"]["decode"]["jpeg_scaling"], "exact");
    assert_eq!(md["config"]["decode"]["jpeg_scaling"], "dct");
    assert_ne!(me["fingerprint"], md["fingerprint"]);
}

/// The network input itself, in grey levels (0-255) of the [0, 1] pixel: the reduced
/// decode against the exact one, on the X-rays the bench recipe reduces.
#[test]
fn dct_network_input_is_within_a_few_grey_levels_on_the_xrays() {
    use cambox::stage::decode::{Decoder, JpegScaling};
    use cambox::stage::model::{InputSpec, Layout};
    use cambox::stage::preprocess::{PreprocessOptions, Preprocessor, ResizeMode};
    let net = InputSpec { name: "input".into(), layout: Layout::Nchw, channels: 3, width: 224, height: 224 };
    let cfg =
        PreprocessOptions { resize: ResizeMode::ShorterSideThenCenterCrop, resize_to: Some(256), ..Default::default() };
    let pre = Preprocessor::new(&cfg, &net).unwrap();
    let target = |w: u32, h: u32| pre.resize_target(w, h);
    let exact = Decoder::default();
    let dct = Decoder { jpeg_scaling: JpegScaling::Dct, ..Decoder::default() };
    let mut files: Vec<_> = std::fs::read_dir(root().join(XRAYS))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpeg"))
        .collect();
    files.sort();
    let (mut worst, mut sum, mut n, mut reduced) = (0f32, 0f64, 0usize, 0);
    for f in &files {
        let a = exact.decode_file_for(f, Some(&target)).unwrap();
        let b = dct.decode_file_for(f, Some(&target)).unwrap();
        assert_eq!(a.original, b.original);
        if b.reduction == 1 {
            continue;
        }
        reduced += 1;
        let (ta, tb) = (pre.run(&a).unwrap(), pre.run(&b).unwrap());
        assert_eq!(ta.geometry, tb.geometry, "{}", f.display());
        let d: Vec<f32> = ta.tensor.iter().zip(tb.tensor.iter()).map(|(x, y)| (x - y).abs() * 255.0).collect();
        let max = d.iter().copied().fold(0.0, f32::max);
        let mean = d.iter().map(|&v| v as f64).sum::<f64>() / d.len() as f64;
        eprintln!(
            "{:34} 1/{}: max {max:.2}, mean {mean:.3} grey levels",
            f.file_name().unwrap().to_string_lossy(),
            b.reduction
        );
        worst = worst.max(max);
        sum += mean;
        n += 1;
    }
    let mean = sum / n as f64;
    eprintln!("{reduced} reduced X-rays: max {worst:.2}, mean of means {mean:.3} grey levels");
    assert_eq!(reduced, 8);
    assert!(worst < 3.0 && mean < 0.25, "max {worst}, mean {mean}");
}
