//! Where to cut: find the last global average pooling and say what follows it.
//!
//! The class map identity `mean(M_k) + b_k = logit_k` holds exactly when the pooling is a
//! spatial mean and everything after it is one affine map. This module finds the pooling
//! in the graph (by node index and tensor name, never by matching strings in names) and
//! has [`super::head`] translate what follows it into a program and say whether that
//! program is affine; the effective `W` (K x C) and `b` (K) of an affine head are read off
//! the program once the number of channels is known ([`Head::resolve`]). Anything else is
//! an *other* head, naming the op that breaks linearity.

use super::graph::{attr_i, attr_ints, OnnxGraph};
use super::head::{analyse_head, HeadKind, HeadProgram, LinearHead};
use crate::error::{Error, Result};
use crate::stage::input_spec::Layout;

/// The global pooling the cut is made before.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pooling {
    pub node: usize,
    pub node_name: String,
    pub op: String,
    /// Layout of the pooling's input, i.e. of the feature map.
    pub layout: Layout,
    /// For `AveragePool`: the kernel, to be checked against the feature map's size.
    pub kernel: Option<[usize; 2]>,
    /// Whether the pooled tensor keeps the spatial axes (as 1 x 1).
    pub keepdims: bool,
}

impl Pooling {
    /// The pooled tensor's shape, `None` at the channel axis.
    pub fn pooled_shape(&self) -> Vec<Option<usize>> {
        match (self.layout, self.keepdims) {
            (_, false) => vec![Some(1), None],
            (Layout::Nchw, true) => vec![Some(1), None, Some(1), Some(1)],
            (Layout::Nhwc, true) => vec![Some(1), Some(1), Some(1), None],
        }
    }
}

/// What follows the pooling.
#[derive(Debug, Clone)]
pub enum Head {
    /// One affine map: CAM is exact.
    Linear(LinearHead),
    /// No dense layer: the feature map has one channel per class (SqueezeNet style).
    Identity,
    /// Anything else; `op` names the first node that is not part of a linear head.
    /// `program` is the head as cambox can run and differentiate it, or why it cannot.
    Other { op: String, node_name: String, ops: Vec<String>, program: std::result::Result<HeadProgram, String> },
}

impl Head {
    /// The head of `kind` on `channels` pooled features: an affine head's `W` and `b`
    /// are read off its program.
    pub fn resolve(
        kind: &HeadKind,
        ops: &[String],
        program: &std::result::Result<HeadProgram, String>,
        channels: usize,
    ) -> std::result::Result<Head, String> {
        Ok(match kind {
            HeadKind::Identity => Head::Identity,
            HeadKind::Linear => Head::Linear(program.as_ref().map_err(Clone::clone)?.linear(channels)?),
            HeadKind::Other { op, node_name } => Head::Other {
                op: op.clone(),
                node_name: node_name.clone(),
                ops: ops.to_vec(),
                program: program.clone(),
            },
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Head::Linear(_) => "linear",
            Head::Identity => "identity",
            Head::Other { .. } => "other",
        }
    }
}

/// The result of the analysis: where to cut and how to turn features into logits.
#[derive(Debug, Clone)]
pub struct FeatureCut {
    /// The tensor F (the pooling's input).
    pub feature: String,
    pub pooling: Pooling,
    /// What the head allows, from its ops (see [`Head::resolve`]).
    pub head_kind: HeadKind,
    /// The head as cambox runs and differentiates it, or why it cannot.
    pub program: std::result::Result<HeadProgram, String>,
    /// The ops of the head in order (for `inspect`).
    pub head_ops: Vec<String>,
    /// The tensor holding the logits: the model output, or the input of a final Softmax
    /// or Sigmoid.
    pub logits: String,
    /// What the model applies to the logits to give its output.
    pub final_op: FinalOp,
}

/// The op that turns the logits into the model's output, when there is one. Either is
/// applied after the logits, per class (Sigmoid) or over the classes (Softmax), so the
/// head before it is judged on its own and CAM stays exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinalOp {
    /// The output is the logits.
    None,
    Softmax,
    Sigmoid,
}

/// The shapes of the graph's tensors at the input size planned, by name.
pub type TensorShapes = std::collections::HashMap<String, Vec<usize>>;

/// Finds the cut. `feature_override` names F explicitly (it must feed a global pooling).
/// `shapes` gives the tensors' shapes when an AveragePool must be checked to cover its
/// whole map, or a refusal must say what the model has instead of a pooling; it is
/// called at most once, and only then.
pub fn analyse(
    g: &OnnxGraph,
    feature_override: Option<&str>,
    shapes: impl FnOnce() -> Option<TensorShapes>,
) -> Result<FeatureCut> {
    let out = g.outputs().first().ok_or_else(|| Error::model(&g.path, "the graph has no output"))?;
    let (logits, final_op) = match g.producer(&out.name).map(|i| g.node(i)) {
        Some(n) if n.op_type == "Softmax" => (n.input[0].clone(), FinalOp::Softmax),
        Some(n) if n.op_type == "Sigmoid" => (n.input[0].clone(), FinalOp::Sigmoid),
        _ => (out.name.clone(), FinalOp::None),
    };
    let mut pooling = find_pooling(g, &logits, feature_override, None);
    let shapes = match &pooling {
        Ok(p) if p.kernel.is_none() => None,
        _ => shapes(),
    };
    if let (Ok(Pooling { kernel: Some(_), .. }), Some(s)) = (&pooling, &shapes) {
        pooling = find_pooling(g, &logits, feature_override, Some(s));
    }
    let pooling = pooling.map_err(|mut msg| {
        if let Some(why) = shapes.as_ref().and_then(|s| missing_pooling(g, &logits, s)) {
            msg = format!("{msg}; instead {why}");
        }
        Error::model(&g.path, msg)
    })?;
    let pool_node = g.node(pooling.node);
    let feature = pool_node.input[0].clone();
    let pooled = pool_node.output[0].clone();
    let head = analyse_head(g, &pooled, &logits, pooling.pooled_shape()).map_err(|e| Error::model(&g.path, e))?;
    Ok(FeatureCut {
        feature,
        pooling,
        head_kind: head.kind,
        program: head.program,
        head_ops: head.op_types,
        logits,
        final_op,
    })
}

/// The last global average pooling the logits depend on; with `shapes`, an AveragePool
/// counts only if its window covers its whole input map. `Err`: the refusal.
fn find_pooling(
    g: &OnnxGraph,
    logits: &str,
    feature_override: Option<&str>,
    shapes: Option<&TensorShapes>,
) -> std::result::Result<Pooling, String> {
    let ancestors = ancestors_of(g, logits);
    let mut seen_other_pool = None;
    let whole_map = |p: &Pooling| match (p.kernel, shapes) {
        (Some(k), Some(s)) => s.get(&g.node(p.node).input[0]).is_some_and(|d| d.len() == 4 && [d[2], d[3]] == k),
        _ => true,
    };
    let pooling = (0..g.nodes().len())
        .rev()
        .filter(|&i| ancestors[i])
        .filter(|&i| match feature_override {
            Some(f) => g.node(i).input.first().map(|s| s == f).unwrap_or(false),
            None => true,
        })
        .find_map(|i| {
            let p = as_global_pooling(g, i).filter(whole_map);
            if p.is_none() && matches!(g.node(i).op_type.as_str(), "GlobalMaxPool" | "ReduceMax") {
                seen_other_pool.get_or_insert_with(|| g.describe(i));
            }
            p
        });
    pooling.ok_or_else(|| {
        let mut msg = match feature_override {
            Some(f) => format!("no global average pooling reads the tensor '{f}' named in the config"),
            None => "no global average pooling (GlobalAveragePool, ReduceMean over H and W, or a full-map AveragePool) before the output: CAM needs one".to_string(),
        };
        if let Some(o) = seen_other_pool {
            msg.push_str(&format!("; found {o}, a max pooling, for which the CAM identity does not hold"));
        }
        msg
    })
}

/// What a model without a global average pooling has instead, in words: the first node
/// on the data path back from the logits that decides it.
fn missing_pooling(g: &OnnxGraph, logits: &str, shapes: &TensorShapes) -> Option<String> {
    let mut t = logits.to_string();
    for _ in 0..256 {
        let i = g.producer(&t)?;
        let n = g.node(i);
        let data = n.input.iter().find(|s| !s.is_empty() && !g.is_constant(s) && g.initializer(s).is_none())?;
        let shape = shapes.get(data).cloned().unwrap_or_default();
        let dims = shape.iter().map(usize::to_string).collect::<Vec<_>>().join("x");
        match (n.op_type.as_str(), shape.len()) {
            ("Flatten" | "Reshape", 4) if shape[2] * shape[3] > 1 => {
                return Some(format!(
                    "the head flattens the {dims} feature map ({}) into a dense layer, which weighs every position on its own (VGG style)",
                    g.describe(i)
                ))
            }
            ("Gather" | "Slice", 3) => {
                return Some(format!(
                    "the head reads one token of a transformer's {} tokens ({}): a class token, not an average over image positions",
                    shape[1],
                    g.describe(i)
                ))
            }
            ("ReduceMean", 3) => {
                return Some(format!(
                    "the head averages a transformer's {} tokens ({}), a sequence rather than a feature map's rows and columns",
                    shape[1],
                    g.describe(i)
                ))
            }
            ("AveragePool", 4) => {
                let k = attr_ints(n, "kernel_shape").unwrap_or_default();
                return Some(format!("{} averages {k:?} windows of the {dims} map, not the whole map", g.describe(i)));
            }
            _ => t = data.clone(),
        }
    }
    None
}

/// Marks every node the tensor depends on.
pub(super) fn ancestors_of(g: &OnnxGraph, tensor: &str) -> Vec<bool> {
    let mut mark = vec![false; g.nodes().len()];
    let mut stack: Vec<String> = vec![tensor.to_string()];
    while let Some(t) = stack.pop() {
        if let Some(i) = g.producer(&t) {
            if !mark[i] {
                mark[i] = true;
                stack.extend(g.node(i).input.iter().filter(|s| !s.is_empty()).cloned());
            }
        }
    }
    mark
}

fn normalise_axes(axes: &[i64], rank: i64) -> Vec<i64> {
    let mut a: Vec<i64> = axes.iter().map(|&x| if x < 0 { x + rank } else { x }).collect();
    a.sort_unstable();
    a
}

/// Recognises a spatial mean over a 4-D tensor.
fn as_global_pooling(g: &OnnxGraph, i: usize) -> Option<Pooling> {
    let n = g.node(i);
    let keepdims = attr_i(n, "keepdims", 1) != 0;
    let mk = |layout, kernel| Pooling {
        node: i,
        node_name: n.name.clone(),
        op: n.op_type.clone(),
        layout,
        kernel,
        keepdims,
    };
    match n.op_type.as_str() {
        "GlobalAveragePool" => Some(mk(Layout::Nchw, None)),
        "ReduceMean" => {
            let axes = attr_ints(n, "axes").or_else(|| {
                n.input
                    .get(1)
                    .filter(|s| !s.is_empty())
                    .and_then(|s| g.constant(s))
                    .map(|a| a.iter().map(|&v| v as i64).collect())
            })?;
            match normalise_axes(&axes, 4).as_slice() {
                [2, 3] => Some(mk(Layout::Nchw, None)),
                [1, 2] => Some(mk(Layout::Nhwc, None)),
                _ => None,
            }
        }
        "AveragePool" => {
            let k = attr_ints(n, "kernel_shape")?;
            let pads = attr_ints(n, "pads").unwrap_or_default();
            if k.len() != 2 || pads.iter().any(|&p| p != 0) {
                return None;
            }
            Some(mk(Layout::Nchw, Some([k[0] as usize, k[1] as usize])))
        }
        _ => None,
    }
}
