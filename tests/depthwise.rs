//! cambox's depthwise convolution against tract's own op, on every depthwise node of the
//! real models at the shapes the plans run them: the same inputs (random data, the model's
//! own kernel and bias) through both ops, outputs within 1e-5 of the tensor's scale; and
//! the max poolings, which share the kernel's plane walk, equal to tract's. The
//! end-to-end references (onnxruntime, Keras) are in real_models.rs and gradcam_reference.rs.

mod common;

use std::collections::HashMap;

use cambox::stage::model::depthwise::{self, ConvWindow, DepthwiseConv, Isa};
use cambox::stage::model::{Layout, ModelPlan};
use common::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::EvalOp;

/// Relative tolerance: max |cambox - tract| / max |tract|.
const TOL: f32 = 1e-5;

/// The decluttered model's depthwise geometries and tract's optimised model.
fn models(path: &std::path::Path) -> (HashMap<String, ConvWindow>, TypedModel) {
    // The input shape as cambox plans it (batch 1, the declared size).
    let input = ModelPlan::open(path).unwrap().input;
    let shape = match input.layout {
        Layout::Nchw => [1, input.channels, input.height, input.width],
        Layout::Nhwc => [1, input.height, input.width, input.channels],
    };
    let typed = tract_onnx::onnx()
        .model_for_path(path)
        .and_then(|m| m.with_input_fact(0, f32::fact(shape).into()))
        .and_then(|m| m.into_typed())
        .and_then(|m| m.into_decluttered())
        .unwrap();
    let (model, known) = depthwise::optimise(typed).unwrap();
    (known, model)
}

fn pseudo(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * 4.0 - 2.0
        })
        .collect()
}

/// Every tract depthwise node of the model, evaluated by both ops with each ISA this CPU
/// has; returns how many nodes were compared.
fn compare_all(path: &std::path::Path) -> usize {
    let Some(best) = Isa::detect() else {
        eprintln!("no AVX2/FMA: cambox's kernel is not used on this CPU, nothing to compare");
        return usize::MAX;
    };
    let isas = if best == Isa::Avx512 { vec![Isa::Avx2Fma, Isa::Avx512] } else { vec![best] };
    let (known, model) = models(path);
    let mut compared = 0;
    for node in model.nodes().iter().filter(|n| n.op().name() == "DepthWiseConv") {
        let g = known.get(&node.name).unwrap_or_else(|| panic!("{}: no geometry", node.name));
        let facts = model.node_input_facts(node.id).unwrap();
        let shape = facts[0].shape.as_concrete().unwrap().to_vec();
        let x = Tensor::from_shape(&shape, &pseudo(shape.iter().product(), node.id as u64)).unwrap();
        let k = facts[1].konst.as_ref().map(|t| t.as_ref().clone()).expect("the kernel is a constant");
        let b = facts[2].konst.as_ref().map(|t| t.as_ref().clone()).expect("the bias is a constant");
        let inputs = || tvec![x.clone().into_tvalue(), k.clone().into_tvalue(), b.clone().into_tvalue()];
        let want = node.op.eval_out_of_plan(inputs()).unwrap().unwrap().remove(0).into_tensor();
        let want = want.to_plain_array_view::<f32>().unwrap().to_owned();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
        for &isa in &isas {
            let output_shape = node.outputs[0].fact.shape.as_concrete().unwrap().into();
            let op = DepthwiseConv { geometry: *g, isa, output_shape };
            let got = op.eval_out_of_plan(inputs()).unwrap().unwrap().remove(0).into_tensor();
            let got = got.to_plain_array_view::<f32>().unwrap().to_owned();
            assert_eq!(got.shape(), want.shape(), "{}", node.name);
            let d = max_abs_diff(got.iter(), want.iter()) / scale;
            assert!(d <= TOL, "{} {g:?} {isa:?}: relative difference {d:.2e}", node.name);
        }
        compared += 1;
    }
    compared
}

#[test]
fn every_depthwise_node_of_efficientnet_lite0_matches_tract() {
    let n = compare_all(&root().join("data/models/efficientnet-lite0.onnx"));
    assert!(n >= 16, "{n} depthwise nodes compared");
}

#[test]
fn every_depthwise_node_of_the_xception_model_matches_tract() {
    let local = root().join("data/models/pneumonia_xception.onnx");
    let path = if local.is_file() {
        local
    } else if let Some(s) = shared() {
        s.join("models/pneumonia_xception.onnx")
    } else {
        eprintln!("skipped: no Xception model (data/models/ or $CAMBOX_SHARED/models/)");
        return;
    };
    let n = compare_all(&path);
    assert!(n >= 34, "{n} depthwise nodes compared");
}

#[test]
fn only_known_depthwise_nodes_are_replaced() {
    let (known, mut model) = models(&root().join("data/models/efficientnet-lite0.onnx"));
    let tract_nodes = model.nodes().iter().filter(|n| n.op().name() == "DepthWiseConv").count();
    assert_eq!(depthwise::substitute(&mut model.clone(), &HashMap::new()).unwrap(), 0);
    let swapped = depthwise::substitute(&mut model, &known).unwrap();
    if Isa::detect().is_some() && std::env::var(depthwise::DEPTHWISE_ENV).map_or(true, |v| v != "tract") {
        assert_eq!(swapped, tract_nodes);
        assert!(model.nodes().iter().all(|n| n.op().name() != "DepthWiseConv"));
    } else {
        assert_eq!(swapped, 0);
    }
}

/// Every max pooling of the Xception model through tract's op (a model of the one node,
/// optimised by tract) and cambox's: equal, value for value (a maximum does not round).
#[test]
fn every_max_pooling_of_the_xception_model_matches_tract() {
    use cambox::stage::model::maxpool;
    let local = root().join("data/models/pneumonia_xception.onnx");
    let path = if local.is_file() {
        local
    } else if let Some(s) = shared() {
        s.join("models/pneumonia_xception.onnx")
    } else {
        eprintln!("skipped: no Xception model (data/models/ or $CAMBOX_SHARED/models/)");
        return;
    };
    let Some(best) = Isa::detect() else {
        eprintln!("no AVX2/FMA: cambox's kernel is not used on this CPU, nothing to compare");
        return;
    };
    let isas = if best == Isa::Avx512 { vec![Isa::Avx2Fma, Isa::Avx512] } else { vec![best] };
    let input = ModelPlan::open(&path).unwrap().input;
    let shape = match input.layout {
        Layout::Nchw => [1, input.channels, input.height, input.width],
        Layout::Nhwc => [1, input.height, input.width, input.channels],
    };
    let model = tract_onnx::onnx()
        .model_for_path(&path)
        .and_then(|m| m.with_input_fact(0, f32::fact(shape).into()))
        .and_then(|m| m.into_typed())
        .and_then(|m| m.into_decluttered())
        .unwrap();
    let mut compared = 0;
    for node in model.nodes() {
        let Some(ours) = maxpool::for_node(&model, node, best).unwrap() else { continue };
        let fact = model.outlet_fact(node.inputs[0]).unwrap().clone().without_value();
        let shape = fact.shape.as_concrete().unwrap().to_vec();
        let x = Tensor::from_shape(&shape, &pseudo(shape.iter().product(), node.id as u64)).unwrap();
        let mut single = TypedModel::default();
        let source = single.add_source("x", fact).unwrap();
        let out = single.wire_node(&node.name, node.op.clone(), &[source]).unwrap();
        single.select_output_outlets(&out).unwrap();
        let tract = single.into_optimized().unwrap().into_runnable().unwrap();
        let want = tract.run(tvec![x.clone().into_tvalue()]).unwrap().remove(0).into_tensor();
        for &isa in &isas {
            let op = maxpool::CamboxMaxPool { isa, ..ours.clone() };
            let got = op.eval_out_of_plan(tvec![x.clone().into_tvalue()]).unwrap().unwrap().remove(0).into_tensor();
            assert_eq!(got, want, "{} {isa:?}", node.name);
        }
        compared += 1;
    }
    assert_eq!(compared, 4, "Xception's four max poolings");
}
