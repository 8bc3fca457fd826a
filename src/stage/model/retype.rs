//! Running a network at an input size its file does not declare.
//!
//! Many exports fix the input at 1x3x224x224 although nothing in the graph depends on it: a
//! network that ends in a global average pooling accepts any size, and its feature map
//! grows with the input, which is what sharper class maps need. So `[model] input_size`
//! may differ from the declared size. Whether the graph really allows it is not guessed:
//! the plan is built at the new size and the start-up proof (the cut network's logits
//! equal the full model's) runs there, as it does at the declared size. When either fails,
//! this module names the node that pins the size, found on the data path from the input
//! to the feature map by op and by which of its inputs are constants (a Reshape to a
//! constant shape, a Flatten, a dense layer before the pooling, a fixed-window
//! AveragePool, a constant with a spatial extent combined with the features).

use super::graph::{attr_ints, OnnxGraph};
use super::surgery::{ancestors_of, FeatureCut};

/// A node whose computation depends on the declared input size.
#[derive(Debug, Clone, PartialEq)]
pub struct SizePin {
    /// The node, as [`OnnxGraph::describe`] names it.
    pub node: String,
    /// What it does that fixes the size.
    pub why: String,
}

impl std::fmt::Display for SizePin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.node, self.why)
    }
}

/// The nodes between the input and the pooling (the pooling included) that fix the
/// spatial size, in graph order.
pub fn size_pins(g: &OnnxGraph, cut: &FeatureCut) -> Vec<SizePin> {
    let on_feature_path = ancestors_of(g, &cut.feature);
    let from_input = input_dependent(g);
    let mut pins = Vec::new();
    for (i, n) in g.nodes().iter().enumerate() {
        let data_path =
            (on_feature_path[i] || i == cut.pooling.node) && n.input.iter().any(|t| from_input.contains(t.as_str()));
        if !data_path {
            continue;
        }
        let why = match n.op_type.as_str() {
            "Reshape" if n.input.get(1).is_some_and(|s| g.is_constant(s)) => {
                let shape = g.constant(&n.input[1]).map(|a| a.iter().map(|&v| v as i64).collect::<Vec<_>>());
                Some(format!("reshapes the feature path to the constant shape {:?}", shape.unwrap_or_default()))
            }
            "Flatten" => Some("flattens the feature map, so what follows is sized for the declared input".into()),
            "Gemm" | "MatMul" => Some("is a dense layer over the unpooled feature map".into()),
            "Resize" | "Upsample" if n.input.get(3).is_some_and(|s| !s.is_empty() && g.is_constant(s)) => {
                Some("resizes to a constant size".into())
            }
            "AveragePool" if i == cut.pooling.node => attr_ints(n, "kernel_shape").map(|k| {
                format!("averages a fixed {k:?} window, which is a global pooling only at the declared input size")
            }),
            "Add" | "Sub" | "Mul" | "Div" | "Concat" | "Where" => n
                .input
                .iter()
                .filter(|t| g.is_constant(t))
                .filter_map(|t| g.constant(t))
                .find(|c| c.ndim() == 4 && c.shape()[1..].iter().filter(|&&d| d > 1).count() >= 2)
                .map(|c| format!("combines the features with a constant of fixed shape {:?}", c.shape())),
            _ => None,
        };
        if let Some(why) = why {
            pins.push(SizePin { node: g.describe(i), why });
        }
    }
    pins
}

/// The tensors computed from the graph's real inputs (ONNX lists nodes in topological
/// order, so one pass suffices).
fn input_dependent(g: &OnnxGraph) -> std::collections::HashSet<&str> {
    let mut set: std::collections::HashSet<&str> = g.real_inputs().iter().map(|i| i.name.as_str()).collect();
    for n in g.nodes() {
        if n.input.iter().any(|t| set.contains(t.as_str())) {
            set.extend(n.output.iter().filter(|o| !o.is_empty()).map(String::as_str));
        }
    }
    set
}

/// Why the model does not run at `size` although its file declares `declared`: the pins
/// found, or else what tract or the proof said.
pub fn refusal(size: [usize; 2], declared: [usize; 2], pins: &[SizePin], cause: &str) -> String {
    let [w, h] = size;
    let [dw, dh] = declared;
    match pins.first() {
        Some(p) => format!(
            "cannot run the model at input_size {w}x{h}: its graph depends on the declared {dw}x{dh} input: {p}{} ({cause})",
            if pins.len() > 1 { format!(" (and {} more such nodes)", pins.len() - 1) } else { String::new() }
        ),
        None => format!("cannot run the model at input_size {w}x{h} (its file declares {dw}x{dh}): {cause}"),
    }
}
