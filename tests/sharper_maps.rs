//! Sharper maps (issue 15): the network at an input size its file does not declare, proved
//! or refused by name; mirrored and multi-size passes averaged.
//!
//! Golden values are independent: numpy (scripts/make_fixtures.py, the `.resized.` files)
//! and onnxruntime on a copy of EfficientNet-Lite0 re-typed to 480x320
//! (scripts/reference/retype_reference.py, tests/fixtures/retype/).

mod common;

use cambox::stage::localise::{Localiser, Recipe};
use cambox::stage::model::{Head, ModelOptions, ModelPlan};
use cambox::stage::preprocess::Normaliser;
use common::*;
use ndarray::Ix4;

fn fixture_model(name: &str) -> String {
    format!("tests/fixtures/models/{name}.onnx")
}

#[test]
fn efficientnet_is_retyped_to_480x320_and_proved() {
    let (code, out, err) = cambox(&["inspect", "data/models/efficientnet-lite0.onnx", "--input-size", "480x320"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("480x320 (WxH)"), "{out}");
    assert!(out.contains("re-typed:       the file declares 224x224"), "{out}");
    // 480 / 32 x 320 / 32 cells, and the cut proved at that size.
    assert!(out.contains("shape [1, 1280, 10, 15]"), "{out}");
    assert!(out.contains("cut check:      logits from the cut equal the full model's within"), "{out}");
}

#[test]
fn a_size_pinned_graph_is_refused_naming_the_node() {
    for (model, node) in [
        ("size_pinned_reshape", "Reshape 'pin_reshape' reshapes the feature path to the constant shape [1, 6, 8, 8]"),
        ("avgpool_full_gemm", "AveragePool 'avgpool' averages a fixed [8, 8] window"),
    ] {
        let (code, _, err) = cambox(&["inspect", &fixture_model(model), "--input-size", "24x20"]);
        assert_eq!(code, 1, "{model}: {err}");
        assert!(err.contains("cannot run the model at input_size 24x20"), "{model}: {err}");
        assert!(err.contains("depends on the declared 16x16 input"), "{model}: {err}");
        assert!(err.contains(node), "{model}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{model}: one line: {err}");
        // At the declared size both are ordinary models.
        let (code, _, err) = cambox(&["inspect", &fixture_model(model), "--input-size", "16x16"]);
        assert_eq!(code, 0, "{model}: {err}");
    }
}

#[test]
fn a_retyped_fixture_reproduces_numpy_at_the_new_size() {
    let dir = root().join("tests/fixtures/models");
    let o =
        ModelOptions { path: dir.join("gap_gemm_transb1.onnx"), input_size: Some([24, 20]), ..ModelOptions::default() };
    let plan = ModelPlan::load(&o, &Normaliser::identity()).unwrap();
    assert_eq!(plan.report.retyped_from, Some([16, 16]));
    let input = npy(dir.join("gap_gemm_transb1.resized.input.npy")).into_dimensionality::<Ix4>().unwrap();
    assert_eq!(input.shape(), &[1, 3, 20, 24]);
    let inf = plan.infer(input).unwrap();
    let f = npy(dir.join("gap_gemm_transb1.resized.features.npy"));
    assert_eq!((inf.features.height, inf.features.width), (10, 12));
    let d = max_abs_diff(inf.features.matrix().iter(), f.iter());
    assert!(d <= 1e-5, "features differ by {d}");
    let Head::Linear(h) = &plan.head else { panic!("linear head") };
    let logits = cambox::stage::model::linear_logits(h, &inf.features);
    let d = max_abs_diff(logits.iter(), npy(dir.join("gap_gemm_transb1.resized.logits.npy")).iter());
    assert!(d <= 1e-5, "logits differ by {d}");
    assert!(max_abs_diff(inf.logits.iter(), logits.iter()) <= 1e-5);
}

/// The onnxruntime reference of tests/fixtures/retype/.
fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("tests/fixtures/retype/chelsea-480x320.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn softmax(l: &[f64]) -> Vec<f64> {
    let m = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = l.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

fn logits(r: &serde_json::Value, which: &str) -> Vec<f64> {
    r[which]["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

/// Runs EfficientNet-Lite0 at 480x320 on the reference PNG with `[cam]` `cam` and
/// returns the probabilities cambox wrote and its images.csv row.
fn run_480x320(cam: &str, tag: &str) -> (Vec<f64>, std::collections::HashMap<String, String>) {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    std::fs::create_dir(&input).unwrap();
    std::fs::copy(root().join("tests/fixtures/retype/chelsea-480x320.png"), input.join("chelsea.png")).unwrap();
    let cfg = tmp.path().join("c.toml");
    let model = root().join("data/models/efficientnet-lite0.onnx");
    std::fs::write(
        &cfg,
        format!(
            "[model]\npath = {model:?}\ninput_size = [480, 320]\n[preprocess]\nresize = \"stretch\"\n\
             mean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n[output]\nprobabilities = true\n\
             maps = true\n[cam]\n{cam}\n"
        ),
    )
    .unwrap();
    let (code, _, err) =
        cambox(&["run", "-q", "-c", cfg.to_str().unwrap(), "-o", out.to_str().unwrap(), input.to_str().unwrap()]);
    assert_eq!(code, 0, "{tag}: {err}");
    // Columns: path, then the classes in model order.
    let mut rows = csv::Reader::from_path(out.join("probabilities.csv")).unwrap();
    let row = rows.records().next().unwrap().unwrap();
    let p: Vec<f64> = row.iter().skip(1).map(|v| v.parse().unwrap()).collect();
    assert_eq!(p.len(), 1000);
    (p, read_csv(out.join("images.csv")).remove(0))
}

#[test]
fn efficientnet_at_480x320_and_its_mirrored_pass_match_onnxruntime() {
    let r = reference();
    let (plain, flipped) = (softmax(&logits(&r, "plain")), softmax(&logits(&r, "flipped")));
    // One pass: cambox's probabilities are onnxruntime's softmax (6 decimals written).
    let (p, row) = run_480x320("", "one pass");
    let d = p.iter().zip(&plain).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(d < 1e-5, "one pass: probabilities differ from onnxruntime's by {d}");
    assert!(row["logit_check"].parse::<f64>().unwrap() < 1e-3);
    // With the mirrored pass: the mean of the two passes' softmaxes.
    let (p, row) = run_480x320("flip = true", "flip");
    let want: Vec<f64> = plain.iter().zip(&flipped).map(|(a, b)| (a + b) / 2.0).collect();
    let d = p.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(d < 1e-5, "flip: probabilities differ from the mean of onnxruntime's by {d}");
    // Each pass's maps are checked against its own logits.
    assert!(row["logit_check"].parse::<f64>().unwrap() < 1e-3, "{row:?}");
    let top1 = want.iter().enumerate().fold(0, |b, (i, v)| if *v > want[b] { i } else { b });
    assert_eq!(row["class_index"], top1.to_string());
}

#[test]
fn the_sharp_recipe_saves_the_averaged_map_that_gave_its_boxes() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("s"));
    std::fs::create_dir(&input).unwrap();
    for f in ["chelsea.png", "coffee.png"] {
        std::fs::copy(root().join("data/samples/natural").join(f), input.join(f)).unwrap();
    }
    let (code, _, err) =
        cambox(&["run", "-q", "-c", "configs/sharp.toml", "-o", out.to_str().unwrap(), input.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let other: Vec<_> =
        run["model"]["cut"]["other_sizes"].as_array().unwrap().iter().map(|s| s["input_size"].clone()).collect();
    assert_eq!(run["model"]["input"]["width"], 336);
    assert_eq!(other, vec![serde_json::json!([480, 320]), serde_json::json!([624, 416])]);
    assert_eq!(run["model"]["cut"]["retyped_from"], serde_json::json!([224, 224]));
    let boxes = read_csv(out.join("boxes.csv"));
    for (image, side) in [("chelsea", 0), ("coffee", 1)] {
        let side_json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(format!("maps/{image}.png.json"))).unwrap())
                .unwrap();
        // Three sizes, each mirrored; averaged on the largest pass's 624x416 input.
        assert_eq!(side_json["averaged_passes"], 6, "{side_json}");
        assert_eq!(side_json["shape"], serde_json::json!([416, 624]));
        let b = boxes.iter().find(|b| b["path"] == format!("{image}.png")).unwrap();
        let class: usize = b["class_index"].parse().unwrap();
        let (map, geo) = cambox::eval::sweep::load_map(&out.join(format!("maps/{image}.png.npy")), class).unwrap();
        // Localised again from the saved map alone: the run's box, to the pixel.
        let l = Localiser::new(Recipe::cam_paper()).localise(class, map.view(), &geo);
        let got = [l.boxes[0].x1, l.boxes[0].y1, l.boxes[0].x2, l.boxes[0].y2].map(|v| v.to_string());
        let want = ["x1", "y1", "x2", "y2"].map(|k| b[k].clone());
        assert_eq!(got, want, "image {side}: {image}");
    }
}

#[test]
fn scales_must_be_positive() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[input]\npaths = [{:?}]\n[model]\npath = {:?}\n[output]\ndir = {:?}\n[cam]\nscales = [224, 0]\n",
            root().join("data/samples/natural"),
            root().join("data/models/efficientnet-lite0.onnx"),
            tmp.path().join("o")
        ),
    )
    .unwrap();
    let (code, _, err) = cambox(&["run", "-q", "-c", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("[cam] scales: every size must be positive"), "{err}");
}
