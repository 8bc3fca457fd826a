//! Model surgery on tiny ONNX fixtures whose features, maps and logits were computed
//! independently with numpy (scripts/fixtures/make_fixtures.py, cross-checked with onnxruntime).

use crate::common::*;
use cambox::stage::maps::ClassMaps;
use cambox::stage::model::{Head, Layout, ModelPlan};
use ndarray::Ix4;

const TOL: f32 = 1e-5;

fn fixture(name: &str) -> (std::path::PathBuf, serde_json::Value) {
    let dir = root().join("tests/fixtures/models");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    (dir.join(format!("{name}.onnx")), meta)
}

fn load(path: &std::path::Path) -> cambox::Result<ModelPlan> {
    ModelPlan::open(path)
}

fn check_cam_fixture(name: &str) {
    let (path, meta) = fixture(name);
    let dir = path.parent().unwrap();
    let plan = load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(plan.head.kind(), meta["head"].as_str().unwrap(), "{name}: head kind");
    assert_eq!(plan.cut.feature, meta["feature_name"].as_str().unwrap(), "{name}: feature tensor");
    let want_layout = if meta["feature_layout"] == "nhwc" { Layout::Nhwc } else { Layout::Nchw };
    assert_eq!(plan.cut.pooling.layout, want_layout, "{name}: feature layout");

    let input = npy(dir.join(format!("{name}.input.npy"))).into_dimensionality::<Ix4>().unwrap();
    let inf = plan.infer(input).unwrap();

    // F, compared as C x positions.
    let f = npy(dir.join(format!("{name}.features.npy")));
    let s = f.shape().to_vec();
    let f = match want_layout {
        Layout::Nchw => f.into_shape_with_order((s[1], s[2] * s[3])).unwrap(),
        Layout::Nhwc => f.into_shape_with_order((s[1] * s[2], s[3])).unwrap().reversed_axes(),
    };
    let d = max_abs_diff(inf.features.matrix().iter(), f.iter());
    assert!(d <= TOL, "{name}: features differ by {d}");

    // Logits from the features, as the pipeline computes them.
    let logits = match &plan.head {
        Head::Linear(h) => cambox::stage::model::linear_logits(h, &inf.features),
        Head::Identity => inf.features.pooled().to_vec(),
        Head::Other { .. } => unreachable!(),
    };
    let want = npy(dir.join(format!("{name}.logits.npy")));
    let d = max_abs_diff(logits.iter(), want.iter());
    assert!(d <= TOL, "{name}: logits differ by {d}");

    // Maps of every class.
    let k = plan.num_classes();
    let classes: Vec<usize> = (0..k).collect();
    let maps = ClassMaps::cam(&plan.head, &inf.features, &classes).unwrap();
    let want = npy(dir.join(format!("{name}.maps.npy")));
    assert_eq!(maps.maps.shape(), want.shape(), "{name}: map shape");
    let d = max_abs_diff(maps.maps.iter(), want.iter());
    assert!(d <= TOL, "{name}: maps differ by {d}");
    assert!(maps.logit_check(&logits) <= TOL, "{name}: logit check");
}

#[test]
fn gap_gemm_transb1() {
    check_cam_fixture("gap_gemm_transb1");
}
#[test]
fn gap_gemm_transb0() {
    check_cam_fixture("gap_gemm_transb0");
}
#[test]
fn reducemean_matmul_add() {
    check_cam_fixture("reducemean_matmul_add");
}
#[test]
fn reducemean_keepdims_matmul_add() {
    check_cam_fixture("reducemean_keepdims_matmul_add");
}
#[test]
fn gap_flatten_dropout_gemm() {
    check_cam_fixture("gap_flatten_dropout_gemm");
}
#[test]
fn avgpool_full_gemm() {
    check_cam_fixture("avgpool_full_gemm");
}
#[test]
fn nhwc_reducemean_matmul() {
    check_cam_fixture("nhwc_reducemean_matmul");
}
#[test]
fn identity_head() {
    check_cam_fixture("identity_head");
}
#[test]
fn odd_size_gemm() {
    check_cam_fixture("odd_size_gemm");
}
#[test]
fn softmax_output_uses_the_logits_before_it() {
    check_cam_fixture("gap_gemm_softmax");
    let (path, _) = fixture("gap_gemm_softmax");
    let plan = load(&path).unwrap();
    assert_eq!(plan.cut.final_op, cambox::stage::model::FinalOp::Softmax);
    assert_eq!(plan.cut.logits, "scores_pre");
}

#[test]
fn mlp_head_is_other_naming_the_op_and_still_predicts() {
    let (path, meta) = fixture("mlp_head");
    let plan = load(&path).unwrap();
    match &plan.head {
        Head::Other { op, node_name, .. } => {
            assert_eq!(op, meta["other_op"].as_str().unwrap());
            assert_eq!(node_name, meta["other_node"].as_str().unwrap());
        }
        h => panic!("expected other, got {}", h.kind()),
    }
    let input = npy(path.with_extension("input.npy")).into_dimensionality::<Ix4>().unwrap();
    let inf = plan.infer(input).unwrap();
    let want = npy(path.with_extension("logits.npy"));
    // cambox evaluates the MLP itself on the pooled features.
    let logits = plan.program.as_ref().expect("Gemm-Relu-Gemm is evaluated").forward(&inf.features.pooled()).unwrap();
    let d = max_abs_diff(logits.iter(), want.iter());
    assert!(d <= TOL, "mlp logits differ by {d}");
    let d = max_abs_diff(inf.logits.iter(), want.iter());
    assert!(d <= TOL, "the network's own mlp logits differ by {d}");
    assert!(ClassMaps::cam(&plan.head, &inf.features, &[0]).is_none());
}

#[test]
fn model_without_pooling_is_refused_with_a_reason() {
    let (path, _) = fixture("no_pooling");
    let err = load(&path).err().expect("must be refused").to_string();
    assert!(err.contains("no global average pooling"), "{err}");
    assert!(err.contains("no_pooling.onnx"), "error names the file: {err}");
}

#[test]
fn inspect_prints_the_cut() {
    let (code, out, err) = cambox(&["inspect", "tests/fixtures/models/nhwc_reducemean_matmul.onnx"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("feature tensor: 'features'"), "{out}");
    assert!(out.contains("head:           linear (MatMul"), "{out}");
    assert!(out.contains("map methods:    cam"), "{out}");
    let (code, out, _) = cambox(&["inspect", "tests/fixtures/models/mlp_head.onnx"]);
    assert_eq!(code, 0);
    assert!(out.contains("MLP (other)"), "{out}");
    let (code, _, err) = cambox(&["inspect", "tests/fixtures/models/no_pooling.onnx"]);
    assert_eq!(code, 1);
    assert!(err.lines().count() == 1 && err.contains("no_pooling.onnx"), "{err}");
}
