//! cambox's 1x1 convolution against tract's own ops, on every 1x1 convolution chain of the
//! real models at the shapes the plans run them (and the one-group convolutions with
//! larger windows, the stems, run through their patch matrices): each chain (the `EinSum`
//! or `Conv`, its bias, clamps and residual add) is copied into a model of its own, which tract optimises and
//! runs as it would in the network ([`PointwiseChain::tract_model`]), and cambox's op gets
//! the same random inputs (by each scheme, whichever the plan would pick); outputs
//! agree within 1e-5 of the tensor's scale. The end-to-end references (onnxruntime, Keras)
//! are in real_models.rs and gradcam_reference.rs.

mod common;

use cambox::stage::model::decluttered;
use cambox::stage::model::pointwise::{self, PointwiseChain, PointwiseConv, Scheme};
use common::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::EvalOp;

/// Relative tolerance: max |cambox - tract| / max |tract|.
const TOL: f32 = 1e-5;

/// Every 1x1 convolution chain of the model, through tract's ops and through cambox's op
/// with each scheme; returns how many chains were compared.
fn compare_all(path: &std::path::Path) -> usize {
    if !pointwise::available() {
        eprintln!("no AVX-512: cambox's kernel is not used on this CPU, nothing to compare");
        return usize::MAX;
    }
    let model = decluttered(path).unwrap();
    let mut compared = 0;
    for id in 0..model.nodes().len() {
        let Some(chain) = PointwiseChain::find(&model, id).unwrap() else { continue };
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
            let op = PointwiseConv::new(g, w, bias, (e.low, e.high), chain.op.residual, shape, Some(scheme))
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
    let n = compare_all(&root().join("data/models/efficientnet-lite0.onnx"));
    assert!(n >= 33, "{n} pointwise chains compared");
}

#[test]
fn every_pointwise_chain_of_the_xception_model_matches_tract() {
    let Some(path) = xception_model() else { return };
    let n = compare_all(&path);
    assert!(n >= 40, "{n} pointwise chains compared");
}

#[test]
fn the_chains_take_the_bias_clamps_and_residuals_of_efficientnet() {
    let mut model = decluttered(&root().join("data/models/efficientnet-lite0.onnx")).unwrap();
    let chains: Vec<PointwiseChain> =
        (0..model.nodes().len()).filter_map(|id| PointwiseChain::find(&model, id).unwrap()).collect();
    // The stem's 3x3 convolution; 16 blocks: a projection each, an expansion in all but
    // the first; the head's 1x1.
    assert_eq!(chains.len(), 33);
    assert_eq!(chains.iter().filter(|c| c.op.window.is_some()).count(), 1, "the stem");
    let relu6 = chains.iter().filter(|c| (c.op.epilogue.low, c.op.epilogue.high) == (0.0, 6.0)).count();
    let residual = chains.iter().filter(|c| c.op.residual).count();
    assert_eq!(relu6, 17, "the stem, 15 expansions and the head");
    assert_eq!(residual, 9, "the blocks whose input and output shapes agree");
    let swapped = pointwise::substitute(&mut model).unwrap();
    if pointwise::available() && std::env::var(pointwise::POINTWISE_ENV).map_or(true, |v| v != "tract") {
        assert_eq!(swapped, 33);
    } else {
        assert_eq!(swapped, 0);
    }
}
