//! Max pooling over NCHW planes, put in place of tract's op in the decluttered graph.
//!
//! Why: profiled on one thread, tract's `OptMaxPool` took 2.0-2.5 ms of the Xception
//! pneumonia model's network time (its four 3x3 stride-2 poolings), where onnxruntime
//! takes 0.35 ms. It is the depthwise convolution's plane walk with `max` in place of the
//! multiply-add and minus infinity as the padding ([`depthwise::max_pool`]), so it needs
//! AVX2 (tract's op stays on a CPU without it, with `[model] kernels = "tract"`, and for any
//! pooling it does not cover: dilation, index outputs, NHWC). The result is exact: a
//! maximum does not round.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::MaxPool;

use crate::depthwise;
use crate::isa::Isa;
use crate::window::{pool_window, ConvWindow};

/// cambox's max pooling op: input `[1,] C, H, W`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CamboxMaxPool {
    pub window: ConvWindow,
    pub isa: Isa,
    pub output_shape: TVec<usize>,
}

impl Op for CamboxMaxPool {
    fn name(&self) -> StaticName {
        "CamboxMaxPool".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} {:?}", self.window, self.isa)])
    }

    op_as_typed_op!();
}

impl EvalOp for CamboxMaxPool {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let w = &self.window;
        let x = inputs[0].to_plain_array_view::<f32>()?;
        let x = x.as_slice().context("max pooling input is not contiguous")?;
        ensure!(x.len() == w.channels * w.in_h * w.in_w, "max pooling input of {} values", x.len());
        // SAFETY: `max_pool` writes every output value.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&self.output_shape)? };
        let mut view = out.to_plain_array_view_mut::<f32>()?;
        depthwise::max_pool(w, self.isa, x, view.as_slice_mut().context("fresh tensor is contiguous")?);
        drop(view);
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for CamboxMaxPool {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1);
        Ok(tvec!(f32::fact(&*self.output_shape)))
    }

    as_op!();
}

/// The op for a decluttered `MaxPool` node, when cambox covers it.
pub fn for_node(model: &TypedModel, node: &TypedNode, isa: Isa) -> TractResult<Option<CamboxMaxPool>> {
    let Some(pool) = node.op_as::<MaxPool>() else { return Ok(None) };
    if pool.with_index_outputs.is_some() || node.inputs.len() != 1 || node.outputs.len() != 1 {
        return Ok(None);
    }
    let Some(window) = pool_window(&pool.pool_spec, model.outlet_fact(node.inputs[0])?) else { return Ok(None) };
    let Some(out) = node.outputs[0].fact.shape.as_concrete() else { return Ok(None) };
    let n = out.len();
    let fits = n >= 3
        && out[..n - 3].iter().all(|&d| d == 1)
        && out[n - 3..] == [window.channels, window.out_h, window.out_w]
        && node.outputs[0].fact.datum_type == f32::datum_type();
    Ok(fits.then(|| CamboxMaxPool { window, isa, output_shape: out.into() }))
}

/// Puts [`CamboxMaxPool`] in place of every `MaxPool` of a decluttered model it covers;
/// returns how many.
pub fn substitute(model: &mut TypedModel, isa: Isa) -> TractResult<usize> {
    let mut swapped = 0;
    for id in 0..model.nodes().len() {
        if let Some(op) = for_node(model, model.node(id), isa)? {
            // Same input, same output: the op is swapped in place.
            model.node_mut(id).op = Box::new(op);
            swapped += 1;
        }
    }
    Ok(swapped)
}
