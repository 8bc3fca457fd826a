//! Reading tract's decluttered graph for cambox's kernels: the element-wise nodes that
//! follow a convolution (bias, clamps, a residual add), taken into the kernel as one
//! epilogue, and the chain of nodes a kernel replaces, rebuilt alone for comparisons.
//!
//! Why one place: the pointwise and depthwise kernels both replace a convolution together
//! with what follows it (EfficientNet's ReLU6 after every expansion and depthwise
//! convolution, its residual adds after projections), so that the output is written once
//! instead of once per op; the rules of what may be fused are the same for both.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::math::{Add, Max, Min};

/// Which of the fusable nodes a kernel takes.
#[derive(Debug, Clone, Copy)]
pub struct Fusable {
    /// An `Add` of a per-channel constant, before any clamp.
    pub bias: bool,
    /// An `Add` of another tensor of the output's shape, last.
    pub residual: bool,
}

/// The nodes after a convolution, read as one epilogue:
/// `min(max(y + bias, low), high) + residual`.
#[derive(Debug, Clone)]
pub struct Tail {
    /// The per-channel constant added first, when there is one.
    pub bias: Option<Vec<f32>>,
    pub low: f32,
    pub high: f32,
    /// The tensor added last, when there is one.
    pub residual: Option<OutletId>,
    /// The nodes, in order (the convolution itself not included).
    pub nodes: Vec<usize>,
}

impl Tail {
    /// The epilogue after node `id`, whose output has the concrete shape `out` (`[.., C,
    /// H, W]`, `channels` = C). Each node of the chain but the last has one successor and
    /// is not a model output, and keeps the shape; clamps are constants of one value.
    pub fn after(model: &TypedModel, id: usize, out: &[usize], channels: usize, fusable: Fusable) -> TractResult<Tail> {
        let mut tail = Tail { bias: None, low: f32::NEG_INFINITY, high: f32::INFINITY, residual: None, nodes: vec![] };
        let outputs = model.output_outlets()?;
        let (mut seen_low, mut seen_high) = (false, false);
        loop {
            let last = *tail.nodes.last().unwrap_or(&id);
            let here = model.node(last);
            if here.outputs[0].successors.len() != 1 || outputs.contains(&OutletId::new(last, 0)) {
                break;
            }
            let next = model.node(here.outputs[0].successors[0].node);
            let Some(bin) = next.op_as::<TypedBinOp>() else { break };
            let next_facts = model.node_input_facts(next.id)?;
            let other = (next.inputs[0].node == last) as usize;
            if next.inputs[1 - other].node != last
                || next.inputs[other].node == last
                || next.outputs[0].fact.shape.as_concrete() != Some(out)
            {
                break;
            }
            let konst = next_facts[other].konst.as_ref().filter(|k| k.datum_type() == f32::datum_type());
            let single = konst.and_then(|k| single_value(k));
            if bin.0.is::<Add>() && fusable.bias && tail.bias.is_none() && !seen_low && !seen_high && konst.is_some() {
                let Some(values) = konst.and_then(|k| per_channel(k, channels)) else { break };
                tail.bias = Some(values);
            } else if bin.0.is::<Max>() && !seen_low && single.is_some() {
                tail.low = single.unwrap_or_default();
                seen_low = true;
            } else if bin.0.is::<Min>() && !seen_high && single.is_some() {
                tail.high = single.unwrap_or_default();
                seen_high = true;
            } else if bin.0.is::<Add>()
                && fusable.residual
                && konst.is_none()
                && next_facts[other].datum_type == f32::datum_type()
                && next_facts[other].shape.as_concrete() == Some(out)
            {
                tail.residual = Some(next.inputs[other]);
                tail.nodes.push(next.id);
                break;
            } else {
                break;
            }
            tail.nodes.push(next.id);
        }
        // max(min(y, h), l) is min(max(y, l), h) only when l <= h: otherwise no clamp is
        // taken (nor what follows it).
        if tail.low > tail.high {
            let first_clamp = tail
                .nodes
                .iter()
                .position(|&n| model.node(n).op_as::<TypedBinOp>().is_some_and(|b| b.0.is::<Max>() || b.0.is::<Min>()));
            tail.nodes.truncate(first_clamp.unwrap_or(0));
            tail.low = f32::NEG_INFINITY;
            tail.high = f32::INFINITY;
            tail.residual = None;
        }
        Ok(tail)
    }
}

/// A chain of nodes alone, as tract optimises and runs them: `inputs` (outlets of
/// `model`) as sources, the other inputs of the nodes as constants. What cambox's op for
/// the chain is compared and timed against.
pub fn tract_model(model: &TypedModel, inputs: &[OutletId], nodes: &[usize]) -> TractResult<TypedModel> {
    let mut m = TypedModel::default();
    let mut mapped = std::collections::HashMap::new();
    for (i, &outlet) in inputs.iter().enumerate() {
        let fact = model.outlet_fact(outlet)?.clone().without_value();
        mapped.insert(outlet, m.add_source(format!("input{i}"), fact)?);
    }
    for &id in nodes {
        let node = model.node(id);
        let mut wires = tvec![];
        for o in &node.inputs {
            let wire = match mapped.get(o) {
                Some(w) => *w,
                None => {
                    let k = model.outlet_fact(*o)?.konst.clone().context("outside inputs are constants")?;
                    m.add_const(format!("{}.const{}", node.name, o.node), k)?
                }
            };
            wires.push(wire);
        }
        let out = m.wire_node(&node.name, node.op.clone(), &wires)?[0];
        mapped.insert(OutletId::new(id, 0), out);
    }
    let last = nodes.last().and_then(|&id| mapped.get(&OutletId::new(id, 0))).context("empty chain")?;
    m.select_output_outlets(&[*last])?;
    m.into_optimized()
}

/// Replaces the chain `nodes` of `model` (its last node's output) by `op` on `inputs`.
pub fn replace(
    model: &mut TypedModel,
    name: &str,
    op: Box<dyn TypedOp>,
    inputs: &[OutletId],
    nodes: &[usize],
) -> TractResult<()> {
    let last = *nodes.last().context("empty chain")?;
    let mut patch = TypedModelPatch::new(format!("cambox {name}"));
    let taps = inputs.iter().map(|&o| patch.tap_model(model, o)).collect::<TractResult<TVec<_>>>()?;
    let wire = patch.wire_node(name, op, &taps)?[0];
    patch.shunt_outside(model, OutletId::new(last, 0), wire)?;
    patch.apply(model)
}

/// `[C, H, W]` of a shape that is that with leading axes of 1.
pub fn chw(shape: &[usize]) -> Option<[usize; 3]> {
    let n = shape.len();
    if n < 3 || shape[..n - 3].iter().any(|&d| d != 1) {
        return None;
    }
    Some([shape[n - 3], shape[n - 2], shape[n - 1]])
}

/// The value of a constant of one element (of any rank).
fn single_value(k: &Tensor) -> Option<f32> {
    if k.shape().iter().any(|&d| d != 1) {
        return None;
    }
    k.to_plain_array_view::<f32>().ok()?.iter().next().copied()
}

/// A constant broadcast along the channel axis of a `[C, H, W]` tensor: `channels`
/// values, or one repeated.
fn per_channel(k: &Tensor, channels: usize) -> Option<Vec<f32>> {
    let s = k.shape();
    let values: Vec<f32> = k.to_plain_array_view::<f32>().ok()?.iter().copied().collect();
    if s.iter().all(|&d| d == 1) {
        return Some(vec![values[0]; channels]);
    }
    // A shorter shape would broadcast along the last axes, not the channels.
    let [c, h, w] = chw(s)?;
    (c == channels && h == 1 && w == 1).then_some(values)
}

/// Reproducible values in [-1, 1) for the kernels' unit tests.
#[cfg(test)]
pub(crate) fn pseudo(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        })
        .collect()
}
