//! The real models against independent references: EfficientNet-Lite0 against the
//! onnxruntime oracle (tests/fixtures/reference), and, when the shared material is available
//! (`CAMBOX_SHARED`, set by .ci/run), the Xception pneumonia model against Keras.

use crate::common::*;
use cambox::config::Config;
use cambox::stage::model::{linear_logits, Head, ModelOptions, ModelPlan};
use cambox::stage::preprocess::{Normaliser, PixelScale, PreprocessOptions};
use ndarray::{s, Axis, Ix4};

#[test]
fn efficientnet_matches_onnxruntime_on_the_same_input() {
    let plan = ModelPlan::open(&root().join("data/models/efficientnet-lite0.onnx")).unwrap();
    assert_eq!(plan.report.feature_tensor, "/_swish_1/Clip_output_0");
    assert_eq!(plan.report.feature_shape, vec![1, 1280, 7, 7]);
    let Head::Linear(head) = &plan.head else { panic!("EfficientNet's head is linear") };
    let refdir = root().join("tests/fixtures/reference/efficientnet-lite0");
    for name in ["chelsea", "coffee"] {
        let input = npy(refdir.join(format!("{name}_input.npy"))).into_dimensionality::<Ix4>().unwrap();
        let inf = plan.infer(input).unwrap();
        let want_f = npy(refdir.join(format!("{name}_ort_featmap.npy")));
        let want_f = want_f.into_shape_with_order((1280, 49)).unwrap();
        let df = max_abs_diff(inf.features.matrix().iter(), want_f.iter());
        assert!(df <= 1e-4, "{name}: feature map differs from onnxruntime by {df}");
        let logits = linear_logits(head, &inf.features);
        let want_l = npy(refdir.join(format!("{name}_ort_logits.npy")));
        let dl = max_abs_diff(logits.iter(), want_l.iter());
        assert!(dl <= 1e-4, "{name}: logits differ from onnxruntime by {dl}");
    }
}

#[test]
fn demo_run_predicts_cat_and_espresso_and_passes_the_logit_check() {
    let out = tempfile::tempdir().unwrap();
    let (code, _, err) =
        cambox(&["run", "--config", "configs/demo.toml", "--out", out.path().to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let rows = read_csv(out.path().join("images.csv"));
    let n_images = std::fs::read_dir(root().join("data/samples/natural"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().map(|x| x != "md").unwrap_or(false))
        .count();
    assert_eq!(rows.len(), n_images, "one row per sample image");
    for r in &rows {
        assert_eq!(r["status"], "ok", "{r:?}");
        let check: f32 = r["logit_check"].parse().unwrap();
        assert!(check < 1e-4, "logit check {check} on {}", r["path"]);
    }
    let row = |p: &str| rows.iter().find(|r| r["path"] == p).unwrap_or_else(|| panic!("no row for {p}"));
    let top3 = |p: &str| -> Vec<usize> {
        row(p)["top_k"].split(';').take(3).map(|t| t.split(':').next().unwrap().parse().unwrap()).collect()
    };
    assert!(top3("chelsea.png").iter().any(|k| [281, 282, 285].contains(k)), "{:?}", row("chelsea.png"));
    assert_eq!(row("coffee.png")["class_index"], "967");
    assert_eq!(row("coffee.png")["class_name"], "espresso");
    assert_eq!((row("chelsea.png")["width"].as_str(), row("chelsea.png")["height"].as_str()), ("451", "300"));

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("run.json")).unwrap()).unwrap();
    assert_eq!(manifest["state"], "completed");
    assert_eq!(manifest["counts"]["ok"], n_images as u64);
    assert_eq!(manifest["model"]["cut"]["feature_tensor"], "/_swish_1/Clip_output_0");
    assert_eq!(manifest["model"]["cut"]["head"], "linear");
    assert_eq!(manifest["model"]["sha256"].as_str().unwrap().len(), 64);
    assert!(manifest["config"]["preprocess"]["resize_to"] == 256);
    // Where the time went: every stage an ok image passes through took some time, and the
    // stages add up to no more than the workers had.
    let time = &manifest["time"];
    assert_eq!(time["images"], n_images as u64);
    let stages = time["stage_seconds"].as_object().unwrap();
    for s in ["decode", "preprocess", "network", "maps", "localise", "write"] {
        assert!(stages[s].as_f64().unwrap() > 0.0, "stage {s}: {time}");
    }
    let busy: f64 = stages.values().map(|v| v.as_f64().unwrap()).sum();
    let wall = time["wall_seconds"].as_f64().unwrap();
    assert!(busy <= wall * time["threads"].as_f64().unwrap() * 1.05 + 0.01, "{time}");

    // Localisation: a box per image, masks and overlays for the top-1 class, and the boxes
    // of chelsea and coffee on the hand-annotated cat head and espresso cup.
    let boxes = read_csv(out.path().join("boxes.csv"));
    for r in &rows {
        let k = &r["class_index"];
        assert!(boxes.iter().any(|b| b["path"] == r["path"] && &b["class_index"] == k), "no box for {}", r["path"]);
        assert!(out.path().join(format!("masks/{}.{k}.png", r["path"])).is_file());
        let ov = image::open(out.path().join(format!("overlays/{}.{k}.jpg", r["path"]))).unwrap();
        assert_eq!(ov.width().to_string(), r["width"], "overlay at original size");
    }
    let truth = read_csv(root().join("data/annotations/natural.csv"));
    for t in &truth {
        let b = boxes.iter().find(|b| b["path"] == t["path"]).unwrap();
        let f = |m: &std::collections::HashMap<String, String>, k: &str| m[k].parse::<f64>().unwrap();
        let (ix, iy) = (
            (f(b, "x2").min(f(t, "x2")) - f(b, "x1").max(f(t, "x1"))).max(0.0),
            (f(b, "y2").min(f(t, "y2")) - f(b, "y1").max(f(t, "y1"))).max(0.0),
        );
        let area =
            |m: &std::collections::HashMap<String, String>| (f(m, "x2") - f(m, "x1")) * (f(m, "y2") - f(m, "y1"));
        let iou = ix * iy / (area(b) + area(t) - ix * iy);
        assert!(iou >= 0.5, "{}: IoU {iou:.3} with the hand-annotated {}", t["path"], t["label"]);
    }
    let mask = image::open(out.path().join("masks/coffee.png.967.png")).unwrap().to_luma8();
    assert_eq!(mask.dimensions(), (600, 400));
    assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255), "binary mask");
}

/// The Keras original, through tract, on the exact inputs Keras saw.
#[test]
fn xception_matches_keras_given_the_same_inputs() {
    let Some(shared) = shared() else {
        eprintln!("CAMBOX_SHARED not set: skipping the Xception check (it needs the non-redistributable model)");
        return;
    };
    let model = shared.join("models/pneumonia_xception.onnx");
    // Probed like the model's real inputs, x / 127.5 - 1.
    let probe =
        PreprocessOptions { scale: PixelScale::Byte, mean: vec![127.5], std: vec![127.5], ..Default::default() };
    let options = ModelOptions { path: model, ..Default::default() };
    let plan = ModelPlan::load(&options, &Normaliser::new(&probe).unwrap()).unwrap();
    assert_eq!(plan.head.kind(), "other");
    let refdir = shared.join("reference/pneumonia-xception");
    let inputs = npy(refdir.join("inputs_nhwc.npy")).into_dimensionality::<Ix4>().unwrap();
    let keras = npy(refdir.join("keras_logits.npy"));
    for i in 0..inputs.shape()[0] {
        let x = inputs.slice(s![i..i + 1, .., .., ..]).to_owned();
        let inf = plan.infer(x).unwrap();
        // The MLP head evaluated by cambox on the pooled features.
        let logits = plan.program.as_ref().unwrap().forward(&inf.features.pooled()).unwrap();
        let d = max_abs_diff(logits.iter(), keras.index_axis(Axis(0), i).iter());
        assert!(d <= 1e-4, "image {i}: logits differ from Keras by {d}");
        if i == 0 {
            let f = npy(refdir.join("keras_featmap_00.npy"));
            let f = f.into_shape_with_order((25, 2048)).unwrap().reversed_axes();
            let d = max_abs_diff(inf.features.matrix().iter(), f.iter());
            assert!(d <= 1e-4, "feature map differs from Keras by {d}");
        }
    }
}

/// Our decoding + Pillow-exact NEAREST + x/127.5 - 1 against the inputs Keras was given.
#[test]
fn xception_preprocessing_matches_the_reference_inputs() {
    let Some(shared) = shared() else {
        eprintln!("CAMBOX_SHARED not set: skipping");
        return;
    };
    let cfg = Config::load(&root().join("configs/pneumonia-xception.toml")).unwrap();
    let spec = cambox::stage::model::InputSpec {
        name: "input_layer_1".into(),
        layout: cambox::stage::model::Layout::Nhwc,
        channels: 3,
        width: 150,
        height: 150,
    };
    let pre = cambox::stage::preprocess::Preprocessor::new(&cfg.preprocess, &spec).unwrap();
    let refdir = shared.join("reference/pneumonia-xception");
    let files: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(refdir.join("files.json")).unwrap()).unwrap();
    let inputs = npy(refdir.join("inputs_nhwc.npy"));
    let dec = cambox::stage::decode::Decoder { max_pixels: u64::MAX, max_file_bytes: u64::MAX, ..Default::default() };
    for (i, f) in files.iter().enumerate() {
        let img = dec.decode_file(&root().join("data/samples/chest-xray").join(f)).unwrap();
        let x = pre.run(&img).unwrap().tensor;
        let want = inputs.index_axis(Axis(0), i);
        let diffs: Vec<f32> = x.iter().zip(want.iter()).map(|(a, b)| (a - b).abs()).collect();
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        let max = diffs.iter().copied().fold(0.0, f32::max);
        eprintln!("{f}: mean |diff| {mean:.2e}, max {max:.2e}");
        // One grey level is 2/255 = 7.8e-3 after x / 127.5 - 1. JPEG decoders (zune-jpeg
        // here, libjpeg in Pillow) differ by a level on a few pixels (measured: max one
        // level, mean ~3e-5); the sampling grid must be Pillow's exactly, or whole rows and
        // columns shift and the mean grows by orders of magnitude.
        assert!(mean < 2e-4 && max <= 2.0 * 2.0 / 255.0 + 1e-6, "{f}: mean {mean}, max {max}");
    }
}

/// The pneumonia acceptance run: Grad-CAM through the MLP head, PNEUMONIA boxes and
/// overlays on all 16 X-rays, and the predictions of MODELS.md (13/16 correct; normal
/// 1438 and bacteria 4880, 4881 wrong).
#[test]
fn xception_run_localises_pneumonia_with_gradcam() {
    let Some(shared) = shared() else {
        eprintln!("CAMBOX_SHARED not set: skipping");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("configs/pneumonia-xception.toml")).unwrap();
    let text = text
        .replace(
            "../data/models/pneumonia_xception.onnx",
            shared.join("models/pneumonia_xception.onnx").to_str().unwrap(),
        )
        .replace("../data/", &format!("{}/data/", root().display()));
    let cfg = dir.path().join("px.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = dir.path().join("out");
    let (code, _, err) = cambox(&["run", "-q", "-c", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let rows = read_csv(out.join("images.csv"));
    assert_eq!(rows.len(), 16);
    let wrong: Vec<&str> = rows
        .iter()
        .filter(|r| (r["class_name"] == "PNEUMONIA") != r["path"].contains("bacteria"))
        .map(|r| r["path"].as_str())
        .collect();
    let mut wrong = wrong;
    wrong.sort();
    assert_eq!(
        wrong,
        vec!["NORMAL2-IM-1438-0001.jpeg", "person1949_bacteria_4880.jpeg", "person1950_bacteria_4881.jpeg"]
    );
    let boxes = read_csv(out.join("boxes.csv"));
    for r in &rows {
        assert!(boxes
            .iter()
            .any(|b| b["path"] == r["path"] && b["class_name"] == "PNEUMONIA" && b["method"] == "gradcam"));
        assert!(out.join(format!("overlays/{}.1.jpg", r["path"])).is_file());
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(manifest["method"], "gradcam");
}

#[test]
fn every_map_method_runs_from_the_command_line() {
    for method in ["gradcam", "gradcam++", "hirescam", "eigencam", "ablationcam"] {
        let out = tempfile::tempdir().unwrap();
        let (code, _, err) = cambox(&[
            "run",
            "-q",
            "-c",
            "configs/demo.toml",
            "-o",
            out.path().to_str().unwrap(),
            "--method",
            method,
            "data/samples/natural/coffee.png",
        ]);
        assert_eq!(code, 0, "{method}: {err}");
        let boxes = read_csv(out.path().join("boxes.csv"));
        assert!(!boxes.is_empty() && boxes.iter().all(|b| b["method"] == method), "{method}: {boxes:?}");
        if method == "eigencam" {
            assert!(err.contains("class-agnostic"), "{err}");
        }
    }
    // A bad flag value is a usage error.
    let (code, _, err) = cambox(&["run", "-q", "-c", "configs/demo.toml", "-o", "/tmp/x", "--method", "scorecam"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown map method 'scorecam'"), "{err}");
}

/// Files named on the command line are named by their file names (the second of two with
/// the same name gets `-2`), their masks lie side by side, and the closing line names the
/// output folder resolved (no `sub/../`); `auto` says it chose CAM and why.
#[test]
fn files_given_on_the_command_line_keep_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(root().join("data/samples/natural/chelsea.png"), other.join("chelsea.png")).unwrap();
    let out = dir.path().join("other/../out");
    let (code, _, err) = cambox(&[
        "run",
        "-c",
        "configs/demo.toml",
        "-o",
        out.to_str().unwrap(),
        "data/samples/natural/chelsea.png",
        "data/samples/natural/coffee.png",
        other.join("chelsea.png").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.lines().next().unwrap().starts_with("cambox: method cam (auto: the head is one affine map"), "{err}");
    let resolved = dir.path().canonicalize().unwrap().join("out");
    assert!(err.contains(&format!("results in {}\n", resolved.display())), "{err}");
    let mut paths: Vec<String> = read_csv(out.join("images.csv")).into_iter().map(|r| r["path"].clone()).collect();
    paths.sort();
    assert_eq!(paths, vec!["chelsea-2.png", "chelsea.png", "coffee.png"]);
    let masks: Vec<String> = std::fs::read_dir(out.join("masks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(masks.iter().any(|m| m.starts_with("chelsea-2.png.") && m.ends_with(".png")), "{masks:?}");
    assert!(masks.iter().all(|m| !m.contains('/')), "{masks:?}");
}
