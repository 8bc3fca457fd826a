//! cambox's depthwise convolution against tract's own ops, on every depthwise chain of
//! the real models at the shapes the plans run them (the `Conv` and the clamp after it):
//! the same inputs (random data, the model's own kernel and bias) through tract's ops
//! (the chain alone, optimised by tract) and cambox's op with each instruction set,
//! outputs within 1e-5 of the tensor's scale; and the max poolings, which share the
//! kernel's plane walk, equal to tract's. The end-to-end references (onnxruntime, Keras)
//! are in real_models.rs and gradcam_reference.rs.

mod common;

use cambox::stage::model::decluttered;
use cambox::stage::model::depthwise::{self, DepthwiseChain, Isa};
use common::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::EvalOp;

/// Relative tolerance: max |cambox - tract| / max |tract|.
const TOL: f32 = 1e-5;

/// Every depthwise chain of the model, through tract's ops and cambox's op with each ISA
/// this CPU has; returns how many chains were compared.
fn compare_all(path: &std::path::Path) -> usize {
    let Some(best) = Isa::detect() else {
        eprintln!("no AVX2/FMA: cambox's kernel is not used on this CPU, nothing to compare");
        return usize::MAX;
    };
    let isas = if best == Isa::Avx512 { vec![Isa::Avx2Fma, Isa::Avx512] } else { vec![best] };
    let model = decluttered(path).unwrap();
    let mut compared = 0;
    for id in 0..model.nodes().len() {
        let Some(chain) = DepthwiseChain::find(&model, id, best).unwrap() else { continue };
        let name = &model.node(id).name;
        let shape = model.outlet_fact(chain.inputs[0]).unwrap().shape.as_concrete().unwrap().to_vec();
        let x = Tensor::from_shape(&shape, &pseudo(shape.iter().product(), id as u64)).unwrap();
        let tract = chain.tract_model(&model).unwrap().into_runnable().unwrap();
        let want = tract.run(tvec![x.clone().into_tvalue()]).unwrap().remove(0).into_tensor();
        let want = want.to_plain_array_view::<f32>().unwrap().to_owned();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
        let konst = |i: usize| model.outlet_fact(chain.inputs[i]).unwrap().konst.clone().unwrap().into_tvalue();
        for &isa in &isas {
            let op = depthwise::DepthwiseConv { isa, ..chain.op.clone() };
            let got = op.eval_out_of_plan(tvec![x.clone().into_tvalue(), konst(1), konst(2)]).unwrap().unwrap();
            let got = got[0].to_plain_array_view::<f32>().unwrap().to_owned();
            assert_eq!(got.shape(), want.shape(), "{name}");
            let d = max_abs_diff(got.iter(), want.iter()) / scale;
            assert!(d <= TOL, "{name} {:?} {isa:?}: relative difference {d:.2e}", chain.op.geometry);
        }
        compared += 1;
    }
    compared
}

#[test]
fn every_depthwise_chain_of_efficientnet_lite0_matches_tract() {
    let n = compare_all(&root().join("data/models/efficientnet-lite0.onnx"));
    assert!(n >= 16, "{n} depthwise chains compared");
}

#[test]
fn every_depthwise_chain_of_the_xception_model_matches_tract() {
    let Some(path) = xception_model() else { return };
    let n = compare_all(&path);
    assert!(n >= 34, "{n} depthwise chains compared");
}

#[test]
fn every_depthwise_convolution_of_efficientnet_is_replaced_with_its_relu6() {
    let mut model = decluttered(&root().join("data/models/efficientnet-lite0.onnx")).unwrap();
    let Some(isa) = Isa::detect() else { return };
    let chains: Vec<DepthwiseChain> =
        (0..model.nodes().len()).filter_map(|id| DepthwiseChain::find(&model, id, isa).unwrap()).collect();
    assert_eq!(chains.len(), 16);
    assert!(chains.iter().all(|c| c.op.clamp == (0.0, 6.0) && c.nodes.len() == 3), "Conv, Max, Min");
    let swapped = depthwise::substitute(&mut model).unwrap();
    if std::env::var(depthwise::DEPTHWISE_ENV).map_or(true, |v| v != "tract") {
        assert_eq!(swapped, 16);
        let optimised = model.into_optimized().unwrap();
        assert!(optimised.nodes().iter().all(|n| n.op().name() != "DepthWiseConv"));
    } else {
        assert_eq!(swapped, 0);
    }
}

/// Every max pooling of the Xception model through tract's op (a model of the one node,
/// optimised by tract) and cambox's: equal, value for value (a maximum does not round).
#[test]
fn every_max_pooling_of_the_xception_model_matches_tract() {
    use cambox::stage::model::maxpool;
    let Some(path) = xception_model() else { return };
    let Some(best) = Isa::detect() else {
        eprintln!("no AVX2/FMA: cambox's kernel is not used on this CPU, nothing to compare");
        return;
    };
    let isas = if best == Isa::Avx512 { vec![Isa::Avx2Fma, Isa::Avx512] } else { vec![best] };
    let model = decluttered(&path).unwrap();
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
