//! Where to cut: find the last global average pooling and say what follows it.
//!
//! The class map identity `mean(M_k) + b_k = logit_k` holds exactly when the pooling is a
//! spatial mean and everything after it is one affine map. This module proves that from
//! the graph (by node index and tensor name, never by matching strings in names): it walks
//! the data path from the pooling to the logits, has [`super::head`] translate each node
//! into a typed step once, and classifies the head from those steps, keeping the
//! effective `W` (K x C) and `b` (K) of a linear one. Anything else is reported as an
//! *other* head, naming the op that breaks linearity.

use ndarray::Array1;

use super::graph::{attr_ints, OnnxGraph};
use super::head::{translate, HeadOp, HeadProgram, HeadStep, LinearHead};
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
    /// The head as a program over the pooled vector: one dense op for a linear head,
    /// nothing for an identity head.
    pub fn program(&self) -> std::result::Result<HeadProgram, String> {
        match self {
            Head::Linear(l) => Ok(HeadProgram { ops: vec![HeadOp::Dense { w: l.weight.clone(), b: l.bias.clone() }] }),
            Head::Identity => Ok(HeadProgram::default()),
            Head::Other { program, .. } => program.clone(),
        }
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
    pub head: Head,
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

/// Finds the cut. `feature_override` names F explicitly (it must feed a global pooling).
pub fn analyse(g: &OnnxGraph, feature_override: Option<&str>) -> Result<FeatureCut> {
    let out = g.outputs().first().ok_or_else(|| Error::model(&g.path, "the graph has no output"))?;
    let (logits, final_op) = match g.producer(&out.name).map(|i| g.node(i)) {
        Some(n) if n.op_type == "Softmax" => (n.input[0].clone(), FinalOp::Softmax),
        Some(n) if n.op_type == "Sigmoid" => (n.input[0].clone(), FinalOp::Sigmoid),
        _ => (out.name.clone(), FinalOp::None),
    };
    let ancestors = ancestors_of(g, &logits);

    let mut seen_other_pool = None;
    let pooling = (0..g.nodes().len())
        .rev()
        .filter(|&i| ancestors[i])
        .filter(|&i| match feature_override {
            Some(f) => g.node(i).input.first().map(|s| s == f).unwrap_or(false),
            None => true,
        })
        .find_map(|i| {
            let p = as_global_pooling(g, i);
            if p.is_none() && matches!(g.node(i).op_type.as_str(), "GlobalMaxPool" | "MaxPool" | "ReduceMax") {
                seen_other_pool.get_or_insert_with(|| g.describe(i));
            }
            p
        });
    let pooling = match pooling {
        Some(p) => p,
        None => {
            let mut msg = match feature_override {
                Some(f) => format!("no global average pooling reads the tensor '{f}' named in the config"),
                None => "no global average pooling (GlobalAveragePool, ReduceMean over H and W, or a full-map AveragePool) before the output: CAM needs one".to_string(),
            };
            if let Some(o) = seen_other_pool {
                msg.push_str(&format!("; found {o}, a max pooling, for which the CAM identity does not hold"));
            }
            return Err(Error::model(&g.path, msg));
        }
    };
    let pool_node = g.node(pooling.node);
    let feature = pool_node.input[0].clone();
    let pooled = pool_node.output[0].clone();
    let (head, head_ops) = walk_head(g, &pooled, &logits)?;
    Ok(FeatureCut { feature, pooling, head, head_ops, logits, final_op })
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
    let mk = |layout, kernel| Pooling { node: i, node_name: n.name.clone(), op: n.op_type.clone(), layout, kernel };
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

/// Follows the data path from the pooled vector to the logits, translates each node once
/// ([`translate`]) and classifies the head from the typed steps.
fn walk_head(g: &OnnxGraph, pooled: &str, logits: &str) -> Result<(Head, Vec<String>)> {
    let mut t = pooled.to_string();
    let mut op_types = Vec::new();
    let mut steps: Vec<(usize, std::result::Result<HeadStep, String>)> = Vec::new();
    let model_err = |m: String| Error::model(&g.path, m);

    while t != logits {
        // Shape ops reading the data only compute Reshape targets; they are not the data path.
        let data_consumers: Vec<usize> =
            g.consumers(&t).iter().copied().filter(|&c| g.node(c).op_type != "Shape").collect();
        let c = match data_consumers.as_slice() {
            [c] => *c,
            [] => {
                return Err(model_err(format!(
                    "tensor '{t}' after the pooling leads nowhere: it does not reach the output"
                )))
            }
            many => {
                let names: Vec<String> = many.iter().map(|&c| g.describe(c)).collect();
                return Err(model_err(format!(
                    "the pooling is not followed only by a head: tensor '{t}' feeds several nodes ({})",
                    names.join(", ")
                )));
            }
        };
        let n = g.node(c);
        // Every other input must be a constant or derived from shapes only.
        for (pos, inp) in n.input.iter().enumerate() {
            if inp.is_empty() || *inp == t || g.is_constant(inp) || is_shape_plumbing(g, inp) {
                continue;
            }
            let from = g.producer(inp).map(|p| g.describe(p)).unwrap_or_else(|| format!("graph input '{inp}'"));
            return Err(model_err(format!(
                "the pooling is not followed only by a head: {} (input {pos}) also reads '{inp}' from {from}",
                g.describe(c)
            )));
        }
        op_types.push(n.op_type.clone());
        steps.push((c, translate(g, c, &t)));
        t = n.output[0].clone();
    }
    let program: std::result::Result<HeadProgram, String> = steps
        .iter()
        .map(|(_, s)| s.clone().map(|s| s.ops()))
        .collect::<std::result::Result<Vec<Vec<HeadOp>>, String>>()
        .map(|ops| HeadProgram { ops: ops.into_iter().flatten().collect() });
    let head = match classify(&steps, &op_types) {
        Err(first_other) => {
            let n = g.node(first_other);
            Head::Other { op: n.op_type.clone(), node_name: n.name.clone(), ops: op_types.clone(), program }
        }
        Ok(Some(dense)) => Head::Linear(dense),
        Ok(None) => Head::Identity,
    };
    Ok((head, op_types))
}

/// A linear head: reshapes around one dense layer, whose bias may come from an `Add` of a
/// constant vector right after a MatMul. `Ok(None)`: reshapes only (an identity head).
/// `Err(node)`: the first node that is not part of a linear head.
fn classify(
    steps: &[(usize, std::result::Result<HeadStep, String>)],
    op_types: &[String],
) -> std::result::Result<Option<LinearHead>, usize> {
    let mut dense: Option<LinearHead> = None;
    let mut has_bias = false;
    for ((node, step), op) in steps.iter().zip(op_types) {
        match (step, dense.as_mut()) {
            (Ok(HeadStep::Reshape { data_first: true }), _) => {}
            (Ok(HeadStep::Dense(d)), None) => {
                has_bias = d.has_bias();
                dense = Some(d.clone());
            }
            (Ok(HeadStep::Elementwise(ops)), Some(d)) if !has_bias => match ops.as_slice() {
                [HeadOp::Add(b)] if op == "Add" && b.len() == d.bias.len() => {
                    d.bias = &d.bias + &Array1::from_iter(b.iter().copied());
                    has_bias = true;
                }
                _ => return Err(*node),
            },
            _ => return Err(*node),
        }
    }
    Ok(dense)
}
/// True when `tensor` is computed from shapes and constants only (Shape -> Gather -> Concat ...).
fn is_shape_plumbing(g: &OnnxGraph, tensor: &str) -> bool {
    let mut stack = vec![tensor.to_string()];
    let mut steps = 0;
    while let Some(t) = stack.pop() {
        steps += 1;
        if steps > 64 {
            return false;
        }
        if g.is_constant(&t) {
            continue;
        }
        let Some(p) = g.producer(&t) else {
            return false;
        };
        let n = g.node(p);
        if n.op_type == "Shape" {
            continue;
        }
        if !matches!(
            n.op_type.as_str(),
            "Gather" | "Unsqueeze" | "Concat" | "Cast" | "Slice" | "Squeeze" | "Mul" | "Div" | "Add" | "Sub"
        ) {
            return false;
        }
        stack.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
    }
    true
}
