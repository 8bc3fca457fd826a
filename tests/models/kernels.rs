//! cambox's kernels (the cambox-kernels crate) against tract's own ops, on every chain of
//! the real models they replace, at the shapes the plans run them:
//!
//! - depthwise convolutions with their clamp, with each instruction set this CPU has,
//!   within 1e-5 of the tensor's scale; the max poolings, which share the depthwise plane
//!   walk, equal value for value (a maximum does not round);
//! - 1x1 convolutions (and the one-group stems, through their patch matrices) with their
//!   bias, clamps and residual add, by each scheme, within 1e-5 of the tensor's scale.
//!
//! Each chain is copied into a model of its own, which tract optimises and runs as it
//! would in the network, and cambox's op gets the same random inputs. The end-to-end
//! references (onnxruntime, Keras) are in real_models.rs and gradcam_reference.rs.

use crate::common::*;
use cambox::stage::model::decluttered;
use cambox_kernels::depthwise::{self, DepthwiseChain};
use cambox_kernels::isa::Isa;
use cambox_kernels::maxpool;
use cambox_kernels::pointwise::{self, PointwiseChain, PointwiseConv, Scheme};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::EvalOp;

/// Relative tolerance: max |cambox - tract| / max |tract|.
const TOL: f32 = 1e-5;

fn efficientnet() -> std::path::PathBuf {
    root().join("data/models/efficientnet-lite0.onnx")
}

/// Every depthwise chain of the model, through tract's ops and cambox's op with each ISA
/// this CPU has; returns how many chains were compared.
fn compare_depthwise(path: &std::path::Path) -> usize {
    let Some(best) = Isa::detect() else {
        eprintln!("no AVX2/FMA: cambox's kernel is not used on this CPU, nothing to compare");
        return usize::MAX;
    };
    let isas = Isa::available();
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
    let n = compare_depthwise(&efficientnet());
    assert!(n >= 16, "{n} depthwise chains compared");
}

#[test]
fn every_depthwise_chain_of_the_xception_model_matches_tract() {
    let Some(path) = xception_model() else { return };
    let n = compare_depthwise(&path);
    assert!(n >= 34, "{n} depthwise chains compared");
}

#[test]
fn every_depthwise_convolution_of_efficientnet_is_replaced_with_its_relu6() {
    let mut model = decluttered(&efficientnet()).unwrap();
    let Some(isa) = Isa::detect() else { return };
    let chains: Vec<DepthwiseChain> =
        (0..model.nodes().len()).filter_map(|id| DepthwiseChain::find(&model, id, isa).unwrap()).collect();
    assert_eq!(chains.len(), 16);
    assert!(chains.iter().all(|c| c.op.clamp == (0.0, 6.0) && c.nodes.len() == 3), "Conv, Max, Min");
    assert_eq!(depthwise::substitute(&mut model, isa).unwrap(), 16);
    let optimised = model.into_optimized().unwrap();
    assert!(optimised.nodes().iter().all(|n| n.op().name() != "DepthWiseConv"));
}

/// Every max pooling of the Xception model through tract's op (a model of the one node,
/// optimised by tract) and cambox's: equal, value for value (a maximum does not round).
#[test]
fn every_max_pooling_of_the_xception_model_matches_tract() {
    let Some(path) = xception_model() else { return };
    let Some(best) = Isa::detect() else {
        eprintln!("no AVX2/FMA: cambox's kernel is not used on this CPU, nothing to compare");
        return;
    };
    let isas = Isa::available();
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

/// Every 1x1 convolution chain of the model, through tract's ops and through cambox's op
/// with each scheme; returns how many chains were compared.
fn compare_pointwise(path: &std::path::Path) -> usize {
    let Some(isa) = Isa::detect().and_then(Isa::avx512) else {
        eprintln!("no AVX-512: cambox's kernel is not used on this CPU, nothing to compare");
        return usize::MAX;
    };
    let model = decluttered(path).unwrap();
    let mut compared = 0;
    for id in 0..model.nodes().len() {
        let Some(chain) = PointwiseChain::find(&model, id, isa).unwrap() else { continue };
        let inputs: TVec<Tensor> = chain
            .inputs
            .iter()
            .enumerate()
            .map(|(i, &o)| {
                let shape = model.outlet_fact(o).unwrap().shape.as_concrete().unwrap().to_vec();
                Tensor::from_shape(&shape, &pseudo(shape.iter().product(), (id * 2 + i) as u64)).unwrap()
            })
            .collect();
        let values = || inputs.iter().map(|t| t.clone().into_tvalue()).collect::<TVec<_>>();
        let tract = chain.tract_model(&model).unwrap().into_runnable().unwrap();
        let want = tract.run(values()).unwrap().remove(0).into_tensor();
        let want = want.to_plain_array_view::<f32>().unwrap().to_owned();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
        let w = model.outlet_fact(model.node(id).inputs[1]).unwrap().konst.clone().unwrap();
        let w = w.to_plain_array_view::<f32>().unwrap().to_owned();
        let (g, e) = (chain.op.geometry, &chain.op.epilogue);
        for scheme in [Scheme::ByPixel, Scheme::ByChannel] {
            let bias = &e.bias[..g.channels_out];
            let shape = chain.op.output_shape.clone();
            let w = w.as_slice().unwrap();
            let op = PointwiseConv::new(isa, g, w, bias, (e.low, e.high), chain.op.residual, shape, Some(scheme))
                .with_window(chain.op.window);
            let got = op.eval_out_of_plan(values()).unwrap().unwrap().remove(0).into_tensor();
            let got = got.to_plain_array_view::<f32>().unwrap().to_owned();
            assert_eq!(got.shape(), want.shape(), "{}", model.node(id).name);
            let d = max_abs_diff(got.iter(), want.iter()) / scale;
            assert!(d <= TOL, "{} {:?} {scheme:?}: relative difference {d:.2e}", model.node(id).name, op.geometry);
        }
        compared += 1;
    }
    compared
}

#[test]
fn every_pointwise_chain_of_efficientnet_lite0_matches_tract() {
    let n = compare_pointwise(&efficientnet());
    assert!(n >= 33, "{n} pointwise chains compared");
}

#[test]
fn every_pointwise_chain_of_the_xception_model_matches_tract() {
    let Some(path) = xception_model() else { return };
    let n = compare_pointwise(&path);
    assert!(n >= 40, "{n} pointwise chains compared");
}

#[test]
fn the_chains_take_the_bias_clamps_and_residuals_of_efficientnet() {
    let Some(isa) = Isa::detect().and_then(Isa::avx512) else { return };
    let mut model = decluttered(&efficientnet()).unwrap();
    let chains: Vec<PointwiseChain> =
        (0..model.nodes().len()).filter_map(|id| PointwiseChain::find(&model, id, isa).unwrap()).collect();
    // The stem's 3x3 convolution; 16 blocks: a projection each, an expansion in all but
    // the first; the head's 1x1.
    assert_eq!(chains.len(), 33);
    assert_eq!(chains.iter().filter(|c| c.op.window.is_some()).count(), 1, "the stem");
    let relu6 = chains.iter().filter(|c| (c.op.epilogue.low, c.op.epilogue.high) == (0.0, 6.0)).count();
    let residual = chains.iter().filter(|c| c.op.residual).count();
    assert_eq!(relu6, 17, "the stem, 15 expansions and the head");
    assert_eq!(residual, 9, "the blocks whose input and output shapes agree");
    assert_eq!(pointwise::substitute(&mut model, isa).unwrap(), 33);
}

/// The choice a run makes: `tract` leaves tract's ops everywhere, and the report says which
/// kernels took how many nodes.
#[test]
fn the_kernel_choice_decides_and_is_reported() {
    use cambox_kernels::{Kernel, KernelChoice};
    let model = decluttered(&efficientnet()).unwrap();
    let mut plain = model.clone();
    let none = cambox_kernels::substitute(&mut plain, &KernelChoice::tract()).unwrap();
    assert_eq!((none.pointwise, none.depthwise, none.maxpool), (0, 0, 0));
    let mut ours = model.clone();
    let all = cambox_kernels::substitute(&mut ours, &KernelChoice::default()).unwrap();
    let mut some = model;
    let depthwise_only = cambox_kernels::substitute(&mut some, &KernelChoice::only([Kernel::Depthwise])).unwrap();
    assert_eq!(depthwise_only.pointwise, 0);
    match Isa::detect() {
        None => assert_eq!((all.isa, all.depthwise), (None, 0)),
        Some(isa) => {
            assert_eq!(all.isa.as_deref(), Some(isa.name()));
            assert_eq!((all.depthwise, depthwise_only.depthwise), (16, 16));
            assert_eq!(all.pointwise, if isa.avx512().is_some() { 33 } else { 0 });
        }
    }
}
