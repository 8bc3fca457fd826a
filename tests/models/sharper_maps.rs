//! Sharper maps: the network at an input size its file does not declare, proved
//! or refused by name; mirrored and multi-size passes averaged.
//!
//! Golden values are independent: numpy (scripts/fixtures/make_fixtures.py, the `.resized.` files)
//! and onnxruntime on a copy of EfficientNet-Lite0 re-typed to 480x320
//! (scripts/reference/retype_reference.py, tests/fixtures/retype/).

use crate::common::*;
use cambox::stage::localise::{Localiser, Recipe};
use cambox::stage::model::{Head, ModelOptions, ModelPlan};
use cambox::stage::preprocess::Normaliser;
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
        // Localised again from the saved map alone (the sharp recipe's own preset, since
        // configs/sharp.toml names none): the run's box, to the pixel.
        assert_eq!(b["preset"], "sharp");
        assert_eq!(b["threshold_rule"], "fraction:0.3");
        let l = Localiser::new(Recipe::sharp()).localise(class, map.view(), &geo);
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

/// The Keras pneumonia Xception (trained at 150x150) re-typed to 299x299 and 448x448 equals
/// the Keras network built at those sizes with the same weights
/// (scripts/reference/xception_retype_reference.py), given the exact inputs Keras saw. tf2onnx
/// baked TensorFlow's "same" paddings for 150x150 into the file; they are made "same" again.
#[test]
fn retyped_xception_equals_keras_built_at_that_size() {
    let Some(model) = xception_model() else {
        eprintln!("no Xception model (CAMBOX_SHARED): skipping the re-typed Xception check");
        return;
    };
    let refdir = root().join("tests/fixtures/reference/pneumonia-xception-retyped");
    let probe = cambox::stage::preprocess::PreprocessOptions {
        scale: cambox::stage::preprocess::PixelScale::Byte,
        mean: vec![127.5],
        std: vec![127.5],
        ..Default::default()
    };
    for size in [299usize, 448] {
        let options = ModelOptions { path: model.clone(), input_size: Some([size, size]), ..Default::default() };
        let plan = ModelPlan::load(&options, &Normaliser::new(&probe).unwrap()).unwrap();
        assert_eq!(plan.report.retyped_from, Some([150, 150]));
        assert!(plan.report.same_padding > 0, "the baked paddings are made 'same' again");
        let grey: ndarray::ArrayD<u8> = ndarray_npy::read_npy(refdir.join(format!("grey_{size}.npy"))).unwrap();
        let keras = npy(refdir.join(format!("logits_{size}.npy")));
        for i in 0..grey.shape()[0] {
            let x =
                ndarray::Array4::from_shape_fn((1, size, size, 3), |(_, y, x, _)| grey[[i, y, x]] as f32 / 127.5 - 1.0);
            let logits = plan.infer(x).unwrap().logits;
            let want = keras.index_axis(ndarray::Axis(0), i);
            let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
            let d = max_abs_diff(logits.iter(), want.iter());
            assert!(d <= 1e-4 * scale, "{size}x{size} image {i}: logits differ from Keras by {d}");
        }
    }
}

/// `recipe = "sharp"` on the pneumonia model: several re-typed sizes and mirrored passes,
/// on real X-rays, with no error row.
#[test]
fn sharp_recipe_runs_on_the_pneumonia_xrays() {
    let Some(model) = xception_model() else {
        eprintln!("no Xception model (CAMBOX_SHARED): skipping");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("xrays");
    std::fs::create_dir_all(&images).unwrap();
    for f in ["NORMAL2-IM-1427-0001.jpeg", "person1946_bacteria_4874.jpeg"] {
        std::fs::copy(root().join("data/samples/chest-xray").join(f), images.join(f)).unwrap();
    }
    let text = std::fs::read_to_string(root().join("configs/pneumonia-xception.toml"))
        .unwrap()
        .replace("../data/models/pneumonia_xception.onnx", model.to_str().unwrap())
        .replace("../data/samples/chest-xray", images.to_str().unwrap())
        .replace("../data/", &format!("{}/data/", root().display()))
        .replace("method = \"gradcam\"", "method = \"gradcam\"\nrecipe = \"sharp\"");
    let cfg = dir.path().join("sharp.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = dir.path().join("out");
    let (code, _, err) = cambox(&["run", "-q", "-c", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let rows = read_csv(out.join("images.csv"));
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["status"] == "ok"), "{rows:?}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert!(!manifest["model"]["cut"]["other_sizes"].as_array().unwrap().is_empty());
}

/// A graph whose two branches disagree at a new size is refused in seconds, naming the node,
/// instead of tract's symbolic analysis running for hours: the pneumonia Xception with its
/// producer renamed, so that its baked "same" paddings are taken as written.
#[test]
fn a_graph_that_disagrees_with_itself_at_a_new_size_is_refused_quickly() {
    use prost::Message;
    let Some(model) = xception_model() else {
        eprintln!("no Xception model (CAMBOX_SHARED): skipping");
        return;
    };
    let mut proto = tract_onnx::pb::ModelProto::decode(std::fs::read(&model).unwrap().as_slice()).unwrap();
    proto.producer_name = "not-tf2onnx".into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xception.onnx");
    std::fs::write(&path, proto.encode_to_vec()).unwrap();
    let started = std::time::Instant::now();
    let (code, _, err) = cambox(&["inspect", path.to_str().unwrap(), "--input-size", "160x160"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("at 160x160 the graph does not agree with itself: Add"), "{err}");
    assert!(err.contains("combines tensors of shapes"), "{err}");
    assert!(started.elapsed().as_secs() < 30, "took {:?}", started.elapsed());
}
