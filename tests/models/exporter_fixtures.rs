//! Models as PyTorch's two exporters and Keras 3's `model.export(format="onnx")` write
//! them, in miniature (tests/fixtures/exporters, made by scripts/fixtures/exporters.sh):
//! external data, torch.export's ops (ReduceMean pooling, inline LayerNormalization and
//! HardSwish), TorchScript's GELU as Erf arithmetic, weight standardisation as a batch
//! norm over constants, tf2onnx's NHWC graphs with baked "same" paddings, a Hardswish
//! head reading its input twice, and unread Normalization inputs.
//!
//! Golden values come from the frameworks and onnxruntime, never from cambox: the
//! network's logits (onnxruntime), the feature map before the pooling and the gradient of
//! every logit with respect to the pooled vector (PyTorch autograd, TensorFlow's
//! GradientTape).

use crate::common::*;
use cambox::stage::maps::{MapMethod, MethodChoice};
use cambox::stage::model::{Head, ModelPlan};
use ndarray::{Array2, Axis, Ix4};
use serde_json::Value;

fn dir() -> std::path::PathBuf {
    root().join("tests/fixtures/exporters")
}

fn manifest() -> Vec<Value> {
    serde_json::from_str::<Vec<Value>>(&std::fs::read_to_string(dir().join("manifest.json")).unwrap()).unwrap()
}

/// Largest |a - b| relative to the largest |b| (floored at 1).
fn rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    max_abs_diff(a.iter(), b.iter()) / scale
}

/// The reference feature map as channels x positions.
fn features(e: &Value) -> Array2<f32> {
    let f = npy(dir().join(e["files"]["features"].as_str().unwrap()));
    let s = f.shape().to_vec();
    match e["features_layout"].as_str().unwrap() {
        "nhwc" => f.into_shape_with_order((s[1] * s[2], s[3])).unwrap().reversed_axes(),
        _ => f.into_shape_with_order((s[1], s[2] * s[3])).unwrap(),
    }
}

#[test]
fn every_exporter_pattern_matches_its_framework() {
    let entries = manifest();
    assert!(entries.len() >= 10);
    for e in &entries {
        let name = e["name"].as_str().unwrap();
        assert_eq!(e["expect"], "runs", "{name}");
        let plan =
            ModelPlan::open(&dir().join(e["model"].as_str().unwrap())).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(plan.head.kind(), e["head"].as_str().unwrap(), "{name}: head kind");
        assert_eq!(!plan.data_files.is_empty(), e["external_data"].as_bool().unwrap(), "{name}: external data");
        let input = npy(dir().join(e["files"]["input"].as_str().unwrap())).into_dimensionality::<Ix4>().unwrap();
        let inf = plan.infer(input).unwrap();

        let want = npy(dir().join(e["files"]["logits"].as_str().unwrap()));
        let d = rel(&inf.logits, want.as_slice().unwrap());
        assert!(d <= 1e-5, "{name}: logits differ from onnxruntime by {d} (relative)");
        let f = features(e);
        let d = max_abs_diff(inf.features.matrix().iter(), f.iter());
        assert!(d <= 1e-5 * f.iter().fold(1f32, |m, v| m.max(v.abs())), "{name}: feature map differs by {d}");

        // The head as cambox runs it: the logits from the pooled vector, and the gradient
        // of each logit, against autograd.
        let program = plan.program.as_ref().unwrap_or_else(|| panic!("{name}: no head program"));
        let g = inf.features.pooled();
        let d = rel(program.forward(&g).unwrap().as_slice().unwrap(), want.as_slice().unwrap());
        assert!(d <= 1e-5, "{name}: head program logits differ by {d} (relative)");
        let grads = npy(dir().join(e["files"]["pooled_grad"].as_str().unwrap()));
        let trace = program.trace(&g).unwrap();
        for (k, want) in grads.axis_iter(Axis(0)).enumerate() {
            let got = program.gradient(&trace, k).unwrap();
            let d = rel(got.as_slice().unwrap(), want.as_slice().unwrap());
            assert!(d <= 1e-5, "{name}: d logit {k} / d pooled differs from autograd by {d} (relative)");
            if let Head::Linear(h) = &plan.head {
                let d = rel(h.weight.row(k).as_slice().unwrap(), want.as_slice().unwrap());
                assert!(d <= 1e-6, "{name}: row {k} of W differs from autograd's gradient by {d}");
            }
        }
        let (auto, _) = MethodChoice::Auto.resolve(&plan.head);
        let want_method = if e["head"] == "linear" { MapMethod::Cam } else { MapMethod::GradCam };
        assert_eq!(auto, want_method, "{name}: auto method");
    }
}

/// Every fixture through the command line: inspect names the head, and the tf2onnx graph
/// re-types to another size with its baked "same" paddings made "same" again.
#[test]
fn inspect_and_retype_from_the_command_line() {
    for e in manifest() {
        let name = e["name"].as_str().unwrap();
        let model = dir().join(e["model"].as_str().unwrap());
        let (code, out, err) = cambox(&["inspect", model.to_str().unwrap()]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(
            out.contains(&format!("head:           {}", if e["head"] == "linear" { "linear" } else { "" })),
            "{name}: {out}"
        );
        assert!(out.contains("method auto:"), "{name}: {out}");
        let (code, out, err) = cambox(&["inspect", model.to_str().unwrap(), "--input-size", "48x48"]);
        assert_eq!(code, 0, "{name} at 48x48: {err}");
        if e["exporter"] == "tf2onnx" && name.contains("mobilenetv3") {
            assert!(out.contains("TensorFlow's \"same\" padding, which tf2onnx wrote for 32x32"), "{name}: {out}");
        }
    }
}
