//! Map methods against the established implementations: pytorch-grad-cam 1.5.7 on a small
//! network with an MLP head (tests/fixtures/gradcam, scripts/reference/gradcam_reference.py),
//! and, with the shared material, Keras GradientTape Grad-CAM on the Xception pneumonia
//! model (tests/fixtures/gradcam/xception).

use crate::common::*;
use cambox::stage::maps::{channel_weights, eigen_projection, ClassMaps, MapMethod};
use cambox::stage::model::{FeatureMap, ModelPlan};
use ndarray::{Array1, ArrayD, Ix4};

const TOL: f32 = 1e-4;

fn load(path: &std::path::Path) -> ModelPlan {
    ModelPlan::open(path).unwrap()
}

/// pytorch-grad-cam's post-processing at feature resolution: ReLU, min-max with its 1e-7,
/// twice (per layer, then after combining layers).
fn library_post(raw: &[f32]) -> Vec<f32> {
    let s = |m: Vec<f32>| -> Vec<f32> {
        let m: Vec<f32> = m.into_iter().map(|v| v.max(0.0)).collect();
        let lo = m.iter().copied().fold(f32::INFINITY, f32::min);
        let shifted: Vec<f32> = m.iter().map(|v| v - lo).collect();
        let hi = shifted.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        shifted.iter().map(|v| v / (1e-7 + hi)).collect()
    };
    s(s(raw.to_vec()))
}

fn raw_map(w: &Array1<f32>, f: &FeatureMap) -> Vec<f32> {
    w.dot(&f.matrix()).to_vec()
}

fn refnpy(name: &str) -> ArrayD<f32> {
    npy(root().join("tests/fixtures/gradcam").join(name))
}

#[test]
fn gradient_methods_match_pytorch_grad_cam() {
    let plan = load(&root().join("tests/fixtures/gradcam/mlp_net.onnx"));
    assert_eq!(plan.head.kind(), "other");
    let prog = plan.program.as_ref().expect("the MLP head is evaluated by cambox");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("tests/fixtures/gradcam/reference.json")).unwrap())
            .unwrap();
    let mut compared = 0;
    for case in reference["cases"].as_array().unwrap() {
        let i = case["input"].as_u64().unwrap();
        // EigenCAM cases have no target class; they are checked below.
        let Some(k) = case["target_class"].as_u64().map(|k| k as usize) else { continue };
        let input = refnpy(&format!("input_{i}.npy")).into_dimensionality::<Ix4>().unwrap();
        let inf = plan.infer(input).unwrap();
        let f = &inf.features;
        let d = max_abs_diff(f.matrix().iter(), refnpy(&format!("features_{i}.npy")).iter());
        assert!(d <= TOL, "input {i}: features differ by {d}");
        let logits = prog.forward(&f.pooled()).unwrap();
        let d = max_abs_diff(logits.iter(), refnpy(&format!("logits_{i}.npy")).iter());
        assert!(d <= TOL, "input {i}: head logits differ from torch by {d}");

        // dy/dF: the closed-form gradient, spread evenly over the positions.
        let gw = &channel_weights(MapMethod::GradCam, Some(prog), f, &[k]).unwrap()[0];
        let grad = refnpy(&format!("grad_{i}_class{k}.npy"));
        let grad = grad.into_shape_with_order((32, 64)).unwrap();
        for c in 0..32 {
            for p in 0..64 {
                assert!((grad[[c, p]] - gw[c]).abs() <= 1e-6, "input {i} class {k}: dy/dF[{c},{p}]");
            }
        }
        for (method, key) in [
            (MapMethod::GradCam, "gradcam"),
            (MapMethod::GradCamPlusPlus, "gradcampp"),
            (MapMethod::HiResCam, "hirescam"),
            (MapMethod::AblationCam, "ablationcam"),
        ] {
            let files = &case["methods"][key];
            let w = &channel_weights(method, Some(prog), f, &[k]).unwrap()[0];
            if let Some(wf) = files["weights"].as_str() {
                let want = refnpy(wf);
                // Relative to the weights' scale: Grad-CAM++'s are ~1e-2, ablation's ~1.
                let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
                let d = max_abs_diff(w.iter(), want.iter());
                assert!(d <= TOL * scale, "{key} input {i} class {k}: weights differ by {d} (scale {scale})");
            }
            let raw = raw_map(w, f);
            let want_raw = refnpy(files["raw"].as_str().unwrap());
            let d = max_abs_diff(raw.iter(), want_raw.iter());
            assert!(d <= TOL, "{key} input {i} class {k}: raw map differs by {d}");
            let post = library_post(&raw);
            let d = max_abs_diff(post.iter(), refnpy(files["post"].as_str().unwrap()).iter());
            assert!(d <= TOL, "{key} input {i} class {k}: normalised map differs by {d}");
            // What the pipeline uses: the ReLU'd map.
            let maps = ClassMaps::by_method(method, Some(prog), f, &[k]).unwrap();
            let d = max_abs_diff(library_post(maps.maps.as_slice().unwrap()).iter(), post.iter());
            assert!(d <= 1e-6, "{key}: pipeline map");
            compared += 1;
        }
    }
    assert_eq!(compared, 24, "3 inputs x 2 classes x 4 methods");
}

#[test]
fn eigencam_matches_pytorch_grad_cam_up_to_sign() {
    let plan = load(&root().join("tests/fixtures/gradcam/mlp_net.onnx"));
    for i in 0..3 {
        let input = refnpy(&format!("input_{i}.npy")).into_dimensionality::<Ix4>().unwrap();
        let f = plan.infer(input).unwrap().features;
        let ours = eigen_projection(&f);
        let want = refnpy(&format!("eigencam_{i}_raw.npy"));
        let same = max_abs_diff(ours.iter(), want.iter());
        let flipped: Vec<f32> = ours.iter().map(|v| -v).collect();
        let opposite = max_abs_diff(flipped.iter(), want.iter());
        // numpy's SVD picks an arbitrary sign; cambox fixes it (positive correlation with
        // the mean activation), so compare up to one global sign.
        assert!(same.min(opposite) <= TOL, "input {i}: eigencam differs by {same} / {opposite}");
        let mean_act: Vec<f32> = (0..64).map(|p| f.matrix().column(p).sum() / 32.0).collect();
        let m = mean_act.iter().sum::<f32>() / 64.0;
        let corr: f32 = ours.iter().zip(&mean_act).map(|(a, b)| a * (b - m)).sum();
        assert!(corr >= 0.0, "sign convention");
    }
}

#[test]
fn gradcam_equals_cam_after_relu_and_minmax_for_a_linear_head() {
    let dir = root().join("tests/fixtures/models");
    let plan = load(&dir.join("gap_gemm_transb1.onnx"));
    let input = npy(dir.join("gap_gemm_transb1.input.npy")).into_dimensionality::<Ix4>().unwrap();
    let f = plan.infer(input).unwrap().features;
    let prog = plan.program.clone().unwrap();
    for k in 0..plan.num_classes() {
        let cam = ClassMaps::cam(&plan.head, &f, &[k]).unwrap();
        let grad = ClassMaps::by_method(MapMethod::GradCam, Some(&prog), &f, &[k]).unwrap();
        let hires = ClassMaps::by_method(MapMethod::HiResCam, Some(&prog), &f, &[k]).unwrap();
        let cam_post = library_post(cam.maps.as_slice().unwrap());
        let grad_post = library_post(grad.maps.as_slice().unwrap());
        let d = max_abs_diff(cam_post.iter(), grad_post.iter());
        assert!(d <= 1e-5, "class {k}: Grad-CAM vs CAM after ReLU and min-max: {d}");
        assert_eq!(grad.maps, hires.maps, "with GAP, HiResCAM is Grad-CAM");
    }
}

#[test]
fn cam_is_refused_for_an_mlp_head_with_a_pointer_to_gradcam() {
    let plan = load(&root().join("tests/fixtures/gradcam/mlp_net.onnx"));
    let e = MapMethod::Cam.applies(&plan.head).unwrap_err();
    assert!(e.contains("gradcam"), "{e}");
    let map_methods = MapMethod::applicable(&plan.head);
    assert!(map_methods.contains(&MapMethod::GradCam));
    assert!(!map_methods.contains(&MapMethod::Cam));
}

/// Grad-CAM through the Xception pneumonia model's MLP head against Keras GradientTape.
#[test]
fn xception_gradcam_matches_keras_gradient_tape() {
    let Some(shared) = shared() else {
        eprintln!("CAMBOX_SHARED not set: skipping the Xception Grad-CAM check");
        return;
    };
    let plan = ModelPlan::open(&shared.join("models/pneumonia_xception.onnx")).unwrap();
    let prog = plan.program.as_ref().expect("Dense-ReLU-Dense head is evaluated by cambox");
    let inputs = npy(shared.join("reference/pneumonia-xception/inputs_nhwc.npy")).into_dimensionality::<Ix4>().unwrap();
    let refdir = root().join("tests/fixtures/gradcam/xception");
    for k in 0..2 {
        let maps = npy(refdir.join(format!("maps_class{k}_raw.npy")));
        let pooled = npy(refdir.join(format!("pooled_grads_class{k}.npy")));
        for i in 0..16 {
            let x = inputs.slice(ndarray::s![i..i + 1, .., .., ..]).to_owned();
            let f = plan.infer(x).unwrap().features;
            let w = &channel_weights(MapMethod::GradCam, Some(prog), &f, &[k]).unwrap()[0];
            let want_w = pooled.index_axis(ndarray::Axis(0), i);
            let scale = want_w.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = max_abs_diff(w.iter(), want_w.iter());
            assert!(d <= 1e-4 * scale, "image {i} class {k}: pooled gradients differ by {d} (scale {scale})");
            let raw = raw_map(w, &f);
            let want = maps.index_axis(ndarray::Axis(0), i);
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
            let d = max_abs_diff(raw.iter(), want.iter());
            assert!(d <= 1e-4 * scale, "image {i} class {k}: Grad-CAM map differs by {d} (scale {scale})");
        }
    }
}
