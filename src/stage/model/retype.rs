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

use std::collections::HashMap;

use tract_onnx::pb::{attribute_proto, AttributeProto, ModelProto};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::{Factoid, InferenceFact};

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
/// spatial size, in graph order. With the tensors' shapes at the declared size, a dense
/// layer counts only when it reads a flattened map (rank 2): one applied to every
/// position of a map (a transformer's MLP) does not depend on its size.
pub fn size_pins(g: &OnnxGraph, cut: &FeatureCut, shapes: Option<&HashMap<String, Vec<usize>>>) -> Vec<SizePin> {
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
            "Gemm" | "MatMul"
                if shapes.is_none_or(|s| n.input.iter().any(|t| s.get(t).is_some_and(|d| d.len() <= 2))) =>
            {
                Some("is a dense layer over the unpooled feature map".into())
            }
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

/// The concrete shape of every labelled tensor at the input size the model's input fact
/// fixes, from one forward pass over the nodes in evaluation order.
///
/// Why not tract's own analysis: at an input size the graph was not made for, two
/// branches may disagree (a residual `Add` of 36x36 and 37x37 maps, when the exporter
/// baked the declared size into paddings). tract keeps such a dimension as a symbolic
/// `broadcast(36, 37)`, every later shape grows from it, and the analysis runs for
/// hours in symbolic arithmetic. This pass stops at the first node whose output shape
/// is not a number and names it, in milliseconds.
pub fn forward_shapes(model: &InferenceModel) -> Result<HashMap<String, Vec<usize>>, String> {
    let mut m = model.clone();
    let order = m.eval_order().map_err(|e| format!("{e:#}"))?;
    let mut shapes = HashMap::new();
    for id in order {
        let inferred = infer_node(&mut m, id).map_err(|e| format!("{}: {e:#}", m.node(id)))?;
        for (slot, fact) in inferred.into_iter().enumerate() {
            let outlet = OutletId::new(id, slot);
            if fact.shape.dims().any(|d| d.concretize().is_some_and(|d| d.to_i64().is_err())) {
                let inputs: Vec<String> =
                    m.node_input_facts(id).map(|f| f.iter().map(|f| fmt_shape(f)).collect()).unwrap_or_default();
                let n = m.node(id);
                return Err(format!(
                    "{} '{}' combines tensors of shapes {}: a padding, pooling or reshape is sized for the declared input",
                    n.op.name(),
                    n.name,
                    inputs.join(" and ")
                ));
            }
            if let (Some(label), Some(dims)) = (m.outlet_label(outlet), fact.shape.concretize()) {
                if let Ok(dims) =
                    dims.iter().map(|d| d.to_i64().map(|v| v as usize)).collect::<std::result::Result<Vec<usize>, _>>()
                {
                    shapes.insert(label.to_string(), dims);
                }
            }
            m.set_outlet_fact(outlet, fact).map_err(|e| format!("{e:#}"))?;
        }
    }
    Ok(shapes)
}

/// One node's output facts from its input facts, as tract's analyser infers them.
fn infer_node(m: &mut InferenceModel, id: usize) -> TractResult<TVec<InferenceFact>> {
    let observed_outlets = m.node(id).op.observe_outlets(m, m.node(id))?;
    let observed: TVec<InferenceFact> =
        observed_outlets.iter().map(|o| m.outlet_fact(*o).cloned()).collect::<TractResult<_>>()?;
    let (inputs, outputs) = m.node_facts(id)?;
    let inputs: TVec<InferenceFact> = inputs.into_iter().cloned().collect();
    let outputs: TVec<InferenceFact> = outputs.into_iter().cloned().collect();
    let (_, inferred, _) =
        m.node_mut(id).op.infer(inputs.iter().collect(), outputs.iter().collect(), observed.iter().collect())?;
    outputs.iter().zip(inferred.iter()).map(|(old, new)| old.unify(new)).collect()
}

fn fmt_shape(f: &InferenceFact) -> String {
    let dims: Vec<String> = f.shape.dims().map(|d| d.concretize().map_or("?".into(), |d| d.to_string())).collect();
    format!("[{}]", dims.join(", "))
}

/// tf2onnx writes TensorFlow's `padding="same"` as explicit `pads` computed for the
/// declared input size. At another size TensorFlow would pad differently (the padding
/// depends on the parity of each layer's input), so the network the user trained is the
/// one that pads the same way at every size: `auto_pad = "SAME_UPPER"`, which is what
/// TensorFlow's "same" is. Rewrites every Conv, MaxPool and AveragePool of a tf2onnx
/// graph whose non-zero pads equal SAME_UPPER's at the declared size (`declared`: each
/// tensor's shape there); returns the rewritten model and how many nodes changed.
///
/// A zero padding is left alone: "valid" and "same" agree on it at the declared size, and
/// nothing tells them apart. So is a file from any other exporter: PyTorch's paddings are
/// fixed numbers at every size.
pub fn tf_same_padding(g: &OnnxGraph, declared: &HashMap<String, Vec<usize>>) -> (ModelProto, usize) {
    let mut proto = g.proto.clone();
    if g.proto.producer_name != "tf2onnx" {
        return (proto, 0);
    }
    let mut changed = 0;
    for (i, n) in proto.graph.as_mut().expect("a graph").node.iter_mut().enumerate() {
        if !matches!(n.op_type.as_str(), "Conv" | "MaxPool" | "AveragePool") {
            continue;
        }
        let Some(input) = declared.get(&n.input[0]) else { continue };
        let kernel = attr_ints(n, "kernel_shape").or_else(|| {
            let w = g.node(i).input.get(1).and_then(|t| declared.get(t).cloned())?;
            Some(w[2..].iter().map(|&k| k as i64).collect())
        });
        let (Some(pads), Some(kernel)) = (attr_ints(n, "pads"), kernel) else { continue };
        let same = same_upper_pads(&input[2..], &kernel, &attr_ints(n, "strides"), &attr_ints(n, "dilations"));
        if pads.iter().any(|&p| p != 0) && same.as_deref() == Some(pads.as_slice()) {
            n.attribute.retain(|a| a.name != "pads" && a.name != "auto_pad");
            n.attribute.push(AttributeProto {
                name: "auto_pad".into(),
                r#type: attribute_proto::AttributeType::String as i32,
                s: b"SAME_UPPER".to_vec(),
                ..Default::default()
            });
            changed += 1;
        }
    }
    (proto, changed)
}

/// ONNX's SAME_UPPER pads (begins, then ends) for `input` spatial dims.
fn same_upper_pads(
    input: &[usize],
    kernel: &[i64],
    strides: &Option<Vec<i64>>,
    dilations: &Option<Vec<i64>>,
) -> Option<Vec<i64>> {
    if kernel.len() != input.len() {
        return None;
    }
    let at = |v: &Option<Vec<i64>>, i: usize| v.as_ref().and_then(|v| v.get(i).copied()).unwrap_or(1);
    let (mut begins, mut ends) = (Vec::new(), Vec::new());
    for (i, &n) in input.iter().enumerate() {
        let (n, s, d) = (n as i64, at(strides, i), at(dilations, i));
        let out = (n + s - 1) / s;
        let total = ((out - 1) * s + (kernel[i] - 1) * d + 1 - n).max(0);
        begins.push(total / 2);
        ends.push(total - total / 2);
    }
    begins.extend(ends);
    Some(begins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_upper_puts_the_odd_pixel_at_the_end() {
        // 3x3 stride 2 on 150: out 75, total (74 * 2 + 3 - 150) = 1 -> [0, 1].
        assert_eq!(same_upper_pads(&[150, 150], &[3, 3], &Some(vec![2, 2]), &None), Some(vec![0, 0, 1, 1]));
        // On 73: out 37, total 2 -> [1, 1]; 1x1 convolutions never pad.
        assert_eq!(same_upper_pads(&[73], &[3], &Some(vec![2]), &None), Some(vec![1, 1]));
        assert_eq!(same_upper_pads(&[73], &[1], &Some(vec![2]), &None), Some(vec![0, 0]));
        // Stride 1: k - 1 in all, whatever the size.
        assert_eq!(same_upper_pads(&[10], &[5], &None, &None), Some(vec![2, 2]));
    }
}
