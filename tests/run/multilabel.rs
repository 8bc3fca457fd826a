//! Multi-label (sigmoid) models: a small GAP + Linear net exported with its final Sigmoid
//! and as raw logits (`tests/fixtures/models/multilabel_*.onnx`, made by
//! `scripts/fixtures/make_multilabel_fixtures.py` with onnxruntime's outputs). cambox finds the
//! Sigmoid, offers CAM, gives onnxruntime's per-class probabilities, and its CAM maps are
//! the numpy maps with the logit identity holding; the raw-logits export run with
//! `activation = "sigmoid"` gives the same.

use crate::common::*;
use cambox::plan::activation;
use cambox::stage::maps::{Activation, ClassMaps, Prediction};
use cambox::stage::model::{ActivationChoice, FinalOp, ModelPlan};
use ndarray::{s, Ix2, Ix4};

fn fixture(name: &str) -> std::path::PathBuf {
    root().join("tests/fixtures/models").join(name)
}

#[test]
fn inspect_finds_the_sigmoid_and_offers_cam() {
    let (code, out, err) = cambox(&["inspect", "tests/fixtures/models/multilabel_sigmoid.onnx"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("activation:     sigmoid"), "{out}");
    assert!(out.contains("map methods:    cam,"), "{out}");
    assert!(out.contains("head:           linear"), "{out}");
    let (_, out, _) = cambox(&["inspect", "tests/fixtures/models/multilabel_logits.onnx"]);
    assert!(out.contains("activation:     softmax") && out.contains("activation = \"sigmoid\""), "{out}");
}

#[test]
fn probabilities_and_maps_match_onnxruntime_and_numpy() {
    let inputs = npy(fixture("multilabel.inputs.npy")).into_dimensionality::<Ix4>().unwrap();
    let probs = npy(fixture("multilabel.probs.npy")).into_dimensionality::<Ix2>().unwrap();
    let maps = npy(fixture("multilabel.maps.npy")).into_dimensionality::<Ix4>().unwrap();
    for (file, choice) in
        [("multilabel_sigmoid.onnx", ActivationChoice::Auto), ("multilabel_logits.onnx", ActivationChoice::Sigmoid)]
    {
        let plan = ModelPlan::open(&fixture(file)).unwrap();
        let act = activation(choice, plan.cut.final_op).unwrap();
        assert_eq!(act, Activation::Sigmoid, "{file}");
        assert_eq!(plan.cut.final_op == FinalOp::Sigmoid, file.contains("sigmoid"));
        for i in 0..inputs.shape()[0] {
            let inf = plan.infer(inputs.slice(s![i..i + 1, .., .., ..]).to_owned()).unwrap();
            let p = Prediction::new(inf.logits.clone(), 14, act);
            let d = max_abs_diff(p.probs.iter(), probs.row(i).iter());
            assert!(d <= 1e-5, "{file} case {i}: probabilities differ from onnxruntime's by {d}");
            let classes: Vec<usize> = (0..14).collect();
            let cm = ClassMaps::cam(&plan.head, &inf.features, &classes).unwrap();
            assert!(cm.logit_check(&inf.logits) < 1e-4, "{file} case {i}: the CAM identity");
            let want = maps.slice(s![i, .., .., ..]);
            let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
            let d = max_abs_diff(cm.maps.iter(), want.iter());
            assert!(d <= 1e-4 * scale, "{file} case {i}: maps differ from numpy's by {d}");
        }
    }
    // A model ending in a Sigmoid is not a softmax model, nor the reverse.
    assert!(activation(ActivationChoice::Softmax, FinalOp::Sigmoid).unwrap_err().contains("multi-label"));
    assert!(activation(ActivationChoice::Sigmoid, FinalOp::Softmax).is_err());
    assert_eq!(activation(ActivationChoice::Auto, FinalOp::None).unwrap(), Activation::Softmax);
}

#[test]
fn a_run_gives_per_class_probabilities_and_boxes_for_every_class_above_one_half() {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in");
    std::fs::create_dir_all(&inp).unwrap();
    let inputs = npy(fixture("multilabel.inputs.npy")).into_dimensionality::<Ix4>().unwrap();
    for i in 0..inputs.shape()[0] {
        let img = image::RgbImage::from_fn(32, 32, |x, y| {
            image::Rgb([0, 1, 2].map(|c| (inputs[[i, c, y as usize, x as usize]] * 255.0).round() as u8))
        });
        img.save(inp.join(format!("case{i}.png"))).unwrap();
    }
    let run = |model: &str, activation: &str, out: &str| {
        let cfg = dir.path().join(format!("{out}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[input]\npaths = [{:?}]\n[model]\npath = {:?}\nlabels = {:?}\n{activation}\n\
                 [output]\ndir = {:?}\ntop_k = 3\nprobabilities = true\nmasks = true\n[localise]\nclasses = \"above:0.5\"\n",
                inp,
                fixture(model),
                fixture("multilabel-classes.txt"),
                dir.path().join(out)
            ),
        )
        .unwrap();
        cambox(&["run", "-q", "-c", cfg.to_str().unwrap()])
    };
    let (code, _, err) = run("multilabel_sigmoid.onnx", "", "a");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run("multilabel_logits.onnx", "activation = \"sigmoid\"", "b");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run("multilabel_sigmoid.onnx", "activation = \"softmax\"", "c");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("ends in a Sigmoid"), "{err}");
    let a = read_csv(dir.path().join("a/probabilities.csv"));
    let b = read_csv(dir.path().join("b/probabilities.csv"));
    assert_eq!(a.len(), 3);
    let sorted = |mut v: Vec<std::collections::HashMap<String, String>>| {
        v.sort_by(|x, y| x["path"].cmp(&y["path"]));
        v
    };
    assert_eq!(sorted(a.clone()), sorted(b), "the raw-logits export, run as sigmoid, gives the same probabilities");
    let boxes = read_csv(dir.path().join("a/boxes.csv"));
    let images = read_csv(dir.path().join("a/images.csv"));
    for row in &a {
        let above: std::collections::BTreeSet<String> = row
            .iter()
            .filter(|(k, v)| *k != "path" && v.parse::<f64>().unwrap() >= 0.5)
            .map(|(k, _)| k.clone())
            .collect();
        assert!(above.len() >= 3, "several findings per case: {above:?}");
        let boxed: std::collections::BTreeSet<String> =
            boxes.iter().filter(|b| b["path"] == row["path"]).map(|b| b["class_name"].clone()).collect();
        assert!(boxed.is_subset(&above) && !boxed.is_empty(), "{:?} vs {above:?}", boxed);
        let masks = std::fs::read_dir(dir.path().join("a/masks"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_str().unwrap().starts_with(&format!("{}.", row["path"])));
        assert_eq!(masks.count(), above.len(), "one mask per class above one half");
        let im = images.iter().find(|i| i["path"] == row["path"]).unwrap();
        assert_eq!(im["score"], row[&im["class_name"]], "images.csv's score is the top class's sigmoid");
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("a/run.json")).unwrap()).unwrap();
    assert_eq!(m["model"]["activation"], "sigmoid");
    assert_eq!(m["model"]["cut"]["output_activation"], "sigmoid");
}
