//! From the ONNX nodes between the pooling and the logits to a [`HeadProgram`].
//!
//! The head is the set of nodes the logits depend on, walked back from the logits and
//! stopped at the pooled tensor. Each tensor it reads is either computed from the pooled
//! tensor (a value of the program), or from constants alone (folded here, once: weights
//! an exporter transposes, shapes it builds with ConstantOfShape), or a tensor of the
//! backbone, which makes the model something other than "pooling, then head" and is
//! refused by name. Nodes are addressed by index and tensors by name, never by
//! matching strings in names.

use std::collections::{BTreeSet, HashMap, HashSet};

use ndarray::{Array1, Array2, ArrayD, Ix2, IxDyn};
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;

use super::ops::{Binary, HeadOp, SliceAttrs, Unary};
use super::value::Value;
use super::{HeadNode, HeadProgram, ShapeInput};
use crate::stage::model::graph::{attr_f, attr_floats, attr_i, attr_ints, attr_s, attr_t, has_attr, OnnxGraph};

/// What kind of map the head allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadKind {
    /// No arithmetic: the feature map has one channel per class (SqueezeNet style).
    Identity,
    /// One affine map (dense layers, biases, batch norms, reshapes): CAM is exact.
    Linear,
    /// Anything else; the first node that is not affine, by ONNX op type and node name.
    Other { op: String, node_name: String },
}

/// The head as the graph spells it.
#[derive(Debug, Clone)]
pub struct HeadAnalysis {
    /// The ONNX op types of the head's nodes on the data path, in order.
    pub op_types: Vec<String>,
    pub kind: HeadKind,
    /// The head as cambox runs and differentiates it, or why it cannot.
    pub program: Result<HeadProgram, String>,
}

/// Analyses the head reading `pooled` (of shape `pooled_shape`, `None` at the channel
/// axis) and writing `logits`. `Err` when the logits depend on more than the pooled
/// tensor and constants: the message names the node and the tensor.
pub fn analyse_head(
    g: &OnnxGraph,
    pooled: &str,
    logits: &str,
    pooled_shape: Vec<Option<usize>>,
) -> Result<HeadAnalysis, String> {
    let (live, constant) = classify_tensors(g, pooled);
    let nodes = head_nodes(g, pooled, logits, &live, &constant)?;
    let mut b = Builder::new(g, pooled, pooled_shape);
    let mut failure: Option<(usize, String)> = None;
    for &i in &nodes {
        if let Err(e) = b.add(i, &live) {
            failure.get_or_insert((i, format!("{}: {e}", g.describe(i))));
        }
    }
    let on_data: Vec<usize> =
        nodes.iter().copied().filter(|&i| g.node(i).output.iter().any(|o| live.contains(o.as_str()))).collect();
    let op_types = on_data.iter().map(|&i| g.node(i).op_type.clone()).collect();
    let other = |i: usize| HeadKind::Other { op: g.node(i).op_type.clone(), node_name: g.node(i).name.clone() };
    let (kind, program) = match failure {
        Some((i, e)) => (other(i), Err(e)),
        None => {
            let program = b.finish(logits)?;
            (program_kind(g, &program, &on_data), Ok(program))
        }
    };
    Ok(HeadAnalysis { op_types, kind, program })
}

/// The value of `tensor` when it is computed from the file's constants alone (the
/// folding the head's translation does, for the graph's other constant subgraphs).
pub fn constant_value(g: &OnnxGraph, tensor: &str) -> Result<Value, String> {
    let mut nodes = BTreeSet::new();
    let mut stack = vec![tensor.to_string()];
    while let Some(t) = stack.pop() {
        if g.initializer(&t).is_some() {
            continue;
        }
        let p = g.producer(&t).ok_or_else(|| format!("'{t}' is a graph input, not a constant"))?;
        if nodes.insert(p) {
            stack.extend(g.node(p).input.iter().filter(|s| !s.is_empty()).cloned());
        }
    }
    let mut b = Builder::new(g, "", Vec::new());
    let none = HashSet::new();
    for i in nodes {
        b.add(i, &none).map_err(|e| format!("{}: {e}", g.describe(i)))?;
    }
    b.constant(tensor).ok_or_else(|| format!("'{tensor}' is not a constant"))
}

/// The tensors computed from `pooled`, and those fixed once the input size is: computed
/// from constants and from the shapes of any tensors (exporters flatten with
/// `Reshape(x, [Shape(input)[0], -1])`).
fn classify_tensors<'a>(g: &'a OnnxGraph, pooled: &'a str) -> (HashSet<&'a str>, HashSet<&'a str>) {
    let mut live: HashSet<&str> = HashSet::from([pooled]);
    let mut fixed: HashSet<&str> = g.graph().initializer.iter().map(|t| t.name.as_str()).collect();
    for n in g.nodes() {
        let inputs = || n.input.iter().filter(|s| !s.is_empty());
        let outputs = n.output.iter().filter(|s| !s.is_empty()).map(String::as_str);
        if inputs().any(|t| live.contains(t.as_str())) {
            live.extend(outputs);
        } else if n.op_type == "Shape" || (inputs().all(|t| fixed.contains(t.as_str())) && !is_random(&n.op_type)) {
            fixed.extend(outputs);
        }
    }
    (live, fixed)
}

fn is_random(op: &str) -> bool {
    op.starts_with("Random") || op == "Multinomial" || op == "Bernoulli"
}

/// The nodes the logits depend on, after the pooling, in graph order (ONNX lists nodes
/// in topological order).
fn head_nodes(
    g: &OnnxGraph,
    pooled: &str,
    logits: &str,
    live: &HashSet<&str>,
    constant: &HashSet<&str>,
) -> Result<Vec<usize>, String> {
    if !live.contains(logits) {
        return Err(format!("the logits '{logits}' do not depend on the pooled tensor '{pooled}'"));
    }
    let mut needed = BTreeSet::new();
    let mut stack: Vec<(String, Option<usize>)> = vec![(logits.to_string(), None)];
    while let Some((t, reader)) = stack.pop() {
        if t == pooled || g.initializer(&t).is_some() {
            continue;
        }
        let known = live.contains(t.as_str()) || constant.contains(t.as_str());
        match (g.producer(&t), known) {
            (Some(p), true) => {
                let n = g.node(p);
                // The shape of a backbone tensor is read from the plan, not computed.
                let known = |s: &String| live.contains(s.as_str()) || constant.contains(s.as_str());
                let reads_backbone_shape = n.op_type == "Shape" && !n.input.iter().all(known);
                if needed.insert(p) && !reads_backbone_shape {
                    stack.extend(n.input.iter().filter(|s| !s.is_empty()).map(|s| (s.clone(), Some(p))));
                }
            }
            (from, _) => {
                let from = from.map(|p| g.describe(p)).unwrap_or_else(|| format!("graph input '{t}'"));
                let by = reader.map(|r| g.describe(r)).unwrap_or_else(|| "the output".into());
                return Err(format!(
                    "the pooling is not followed only by a head: {by} reads '{t}' from {from}, before the pooling; \
                     set [model] feature to the tensor a global average pooling reads last"
                ));
            }
        }
    }
    Ok(needed.into_iter().collect())
}

/// Identity when the head only moves values, linear when every op is affine in the
/// data (a product or quotient of two data tensors is not), else the first node that is
/// neither.
fn program_kind(g: &OnnxGraph, p: &HeadProgram, on_data: &[usize]) -> HeadKind {
    let live_inputs = |n: &HeadNode| n.inputs.iter().flatten().filter(|&&v| p.live[v]).count();
    let mut moves_only = true;
    for (n, &onnx) in p.nodes.iter().zip(on_data) {
        if n.op.moves_only() {
            continue;
        }
        moves_only = false;
        let affine = n.op.is_affine()
            && match n.op {
                HeadOp::Binary(Binary::Mul) => live_inputs(n) == 1,
                HeadOp::Binary(Binary::Div) => n.inputs.get(1).copied().flatten().is_some_and(|v| !p.live[v]),
                _ => true,
            };
        if !affine {
            return HeadKind::Other { op: g.node(onnx).op_type.clone(), node_name: g.node(onnx).name.clone() };
        }
    }
    if moves_only {
        HeadKind::Identity
    } else {
        HeadKind::Linear
    }
}

/// Builds the program node by node.
struct Builder<'a> {
    g: &'a OnnxGraph,
    /// Folded constants by tensor name.
    folded: HashMap<String, Value>,
    /// Value ids by tensor name.
    ids: HashMap<String, usize>,
    program: HeadProgram,
}

impl<'a> Builder<'a> {
    fn new(g: &'a OnnxGraph, pooled: &str, input_shape: Vec<Option<usize>>) -> Builder<'a> {
        let program = HeadProgram {
            nodes: Vec::new(),
            constants: Vec::new(),
            values: 1,
            input: 0,
            output: 0,
            input_shape,
            live: vec![true],
            shape_inputs: Vec::new(),
        };
        Builder { g, folded: HashMap::new(), ids: HashMap::from([(pooled.to_string(), 0)]), program }
    }

    /// The value of a constant tensor: folded, or an initializer read from the file.
    fn constant(&self, t: &str) -> Option<Value> {
        if let Some(v) = self.folded.get(t) {
            return Some(v.clone());
        }
        self.g.initializer(t).and_then(|p| to_value(self.g.load_tensor(p).ok()?).ok())
    }

    fn constant_floats(&self, n: &NodeProto, i: usize) -> Result<ArrayD<f32>, String> {
        let t = n.input.get(i).filter(|s| !s.is_empty()).ok_or_else(|| format!("missing input {i}"))?;
        match self.constant(t) {
            Some(Value::F(a)) => Ok(a),
            Some(Value::I(a)) => Ok(a.mapv(|v| v as f32)),
            None => Err(format!("input '{t}' is not a constant")),
        }
    }

    /// The value id of tensor `t`, registering constants on first use.
    fn id(&mut self, t: &str) -> Result<usize, String> {
        if let Some(&v) = self.ids.get(t) {
            return Ok(v);
        }
        let c =
            self.constant(t).ok_or_else(|| format!("tensor '{t}' is neither computed by the head nor a constant"))?;
        let v = self.new_value(false);
        self.program.constants.push((v, c));
        self.ids.insert(t.to_string(), v);
        Ok(v)
    }

    fn new_value(&mut self, live: bool) -> usize {
        self.program.live.push(live);
        self.program.values += 1;
        self.program.values - 1
    }

    /// Adds ONNX node `i`: folded when it reads constants only, else one program node.
    fn add(&mut self, i: usize, live: &HashSet<&str>) -> Result<(), String> {
        let n = self.g.node(i);
        let data = n.input.iter().find(|t| live.contains(t.as_str())).map(String::as_str);
        if let Some(extra) = n.output.iter().skip(1).find(|o| !o.is_empty() && !self.g.consumers(o).is_empty()) {
            return Err(format!("its output '{extra}' is read, and only a node's first output is supported"));
        }
        let op = match translate(self, n, data)? {
            Translated::Const(v) => {
                self.folded.insert(n.output[0].clone(), v);
                return Ok(());
            }
            Translated::Op(op) => op,
        };
        let reads = value_inputs(n, &op);
        if let HeadOp::Shape { start, end } = &op {
            if data.is_none() && self.constant(reads[0]).is_none() && !self.ids.contains_key(reads[0]) {
                let v = self.new_value(false);
                self.program.shape_inputs.push(ShapeInput {
                    value: v,
                    tensor: reads[0].to_string(),
                    start: *start,
                    end: *end,
                });
                self.ids.insert(n.output[0].clone(), v);
                return Ok(());
            }
        }
        let foldable = reads.iter().all(|t| t.is_empty() || !self.ids.contains_key(*t));
        if data.is_none() && foldable {
            let xs: Vec<Option<Value>> = reads
                .iter()
                .map(|t| match t.is_empty() {
                    true => Ok(None),
                    false => self.constant(t).map(Some).ok_or_else(|| format!("'{t}' is not a constant")),
                })
                .collect::<Result<_, String>>()?;
            let y = op.eval(&xs.iter().map(Option::as_ref).collect::<Vec<_>>())?;
            self.folded.insert(n.output[0].clone(), y);
            return Ok(());
        }
        let inputs = reads
            .iter()
            .map(|t| if t.is_empty() { Ok(None) } else { self.id(t).map(Some) })
            .collect::<Result<_, String>>()?;
        let output = self.new_value(data.is_some());
        self.ids.insert(n.output[0].clone(), output);
        self.program.nodes.push(HeadNode { op, inputs, output, name: self.g.describe(i) });
        Ok(())
    }

    fn finish(mut self, logits: &str) -> Result<HeadProgram, String> {
        self.program.output = *self.ids.get(logits).ok_or_else(|| format!("the head never computes '{logits}'"))?;
        Ok(self.program)
    }
}

/// The inputs an op reads as values: all of the node's but those the translation
/// consumed (a dense layer's weights and bias, a batch norm's statistics, Clip's bounds,
/// axes given as attributes).
fn value_inputs<'n>(n: &'n NodeProto, op: &HeadOp) -> Vec<&'n str> {
    let first = n.input.iter().take(1).map(String::as_str).collect();
    match op {
        HeadOp::Dense { axis: -2, .. } => vec![n.input[1].as_str()],
        HeadOp::Dense { .. } | HeadOp::BatchNorm { .. } | HeadOp::Unary(_) | HeadOp::Identity => first,
        HeadOp::Reduce { axes: Some(_), .. }
        | HeadOp::Squeeze { axes: Some(_) }
        | HeadOp::Unsqueeze { axes: Some(_) } => first,
        _ => n.input.iter().map(String::as_str).collect(),
    }
}

enum Translated {
    Op(HeadOp),
    /// A node whose value is known without running anything (`Constant`).
    Const(Value),
}

/// The op of node `n`, whose data input is `data` (`None` for a node of constants).
fn translate(b: &Builder, n: &NodeProto, data: Option<&str>) -> Result<Translated, String> {
    if let Some(u) = unary_of(b, n)? {
        return Ok(Translated::Op(HeadOp::Unary(u)));
    }
    let binary = |o: Binary| Ok(Translated::Op(HeadOp::Binary(o)));
    let axes_attr = || attr_ints(n, "axes").filter(|_| has_attr(n, "axes"));
    let op = match n.op_type.as_str() {
        "Constant" => return constant_node(b.g, n).map(Translated::Const),
        "Gemm" | "MatMul" | "Conv" => dense(b, n, data)?,
        "BatchNormalization" => batch_norm(b, n)?,
        "LayerNormalization" => HeadOp::LayerNorm { axis: attr_i(n, "axis", -1), eps: attr_f(n, "epsilon", 1e-5) },
        "Add" => return binary(Binary::Add),
        "Sub" => return binary(Binary::Sub),
        "Mul" => return binary(Binary::Mul),
        "Div" => return binary(Binary::Div),
        "Pow" => return binary(Binary::Pow),
        "ReduceMean" | "ReduceSum" => {
            if attr_i(n, "noop_with_empty_axes", 0) == 1 && axes_attr().is_none() && n.input.len() < 2 {
                HeadOp::Identity
            } else {
                HeadOp::Reduce {
                    mean: n.op_type == "ReduceMean",
                    axes: axes_attr(),
                    keepdims: attr_i(n, "keepdims", 1) != 0,
                }
            }
        }
        "Reshape" => HeadOp::Reshape { allowzero: attr_i(n, "allowzero", 0) != 0 },
        "Flatten" => HeadOp::Flatten { axis: attr_i(n, "axis", 1) },
        "Squeeze" => HeadOp::Squeeze { axes: axes_attr() },
        "Unsqueeze" => HeadOp::Unsqueeze { axes: axes_attr() },
        "Transpose" => {
            HeadOp::Transpose { perm: attr_ints(n, "perm").map(|p| p.iter().map(|&v| v as usize).collect()) }
        }
        "Identity" | "Dropout" => HeadOp::Identity,
        "Shape" => HeadOp::Shape { start: attr_i(n, "start", 0), end: has_attr(n, "end").then(|| attr_i(n, "end", 0)) },
        "Gather" => HeadOp::Gather { axis: attr_i(n, "axis", 0) },
        "Slice" => HeadOp::Slice {
            attrs: has_attr(n, "starts").then(|| SliceAttrs {
                starts: attr_ints(n, "starts").unwrap_or_default(),
                ends: attr_ints(n, "ends").unwrap_or_default(),
                axes: axes_attr(),
            }),
        },
        "Concat" => HeadOp::Concat { axis: attr_i(n, "axis", 0) },
        "Cast" => HeadOp::Cast { to_float: matches!(attr_i(n, "to", 1), 1 | 10 | 11 | 16) },
        "Expand" => HeadOp::Expand,
        "ConstantOfShape" => HeadOp::ConstantOfShape(match attr_t(n, "value") {
            Some(t) => to_value(b.g.load_tensor(t)?)?,
            None => Value::F(ArrayD::zeros(IxDyn(&[1]))),
        }),
        "Softmax" | "LogSoftmax" => return Err("a Softmax inside the head (only a final one is allowed)".into()),
        other => return Err(format!("op {other} is not supported in a head cambox can differentiate")),
    };
    Ok(Translated::Op(op))
}

/// The element-wise op of node `n`, when it is one.
fn unary_of(b: &Builder, n: &NodeProto) -> Result<Option<Unary>, String> {
    Ok(match n.op_type.as_str() {
        "Relu" => Some(Unary::Relu),
        "LeakyRelu" => Some(Unary::LeakyRelu(attr_f(n, "alpha", 0.01))),
        "Sigmoid" => Some(Unary::Sigmoid),
        "Tanh" => Some(Unary::Tanh),
        "HardSigmoid" => Some(Unary::HardSigmoid(attr_f(n, "alpha", 0.2), attr_f(n, "beta", 0.5))),
        "HardSwish" => Some(Unary::HardSwish),
        "Erf" => Some(Unary::Erf),
        "Gelu" => Some(Unary::Gelu(attr_s(n, "approximate") == Some("tanh"))),
        "Sqrt" => Some(Unary::Sqrt),
        "Exp" => Some(Unary::Exp),
        "Log" => Some(Unary::Log),
        "Neg" => Some(Unary::Neg),
        "Reciprocal" => Some(Unary::Reciprocal),
        "Abs" => Some(Unary::Abs),
        "Softplus" => Some(Unary::Softplus),
        "Elu" => Some(Unary::Elu(attr_f(n, "alpha", 1.0))),
        "Clip" => {
            // Opset >= 11: min and max are optional inputs; before: attributes.
            let bound = |i: usize, attr: &str, default: f32| -> Result<f32, String> {
                match n.input.get(i).filter(|s| !s.is_empty()) {
                    Some(_) => b.constant_floats(n, i).map(|a| a.iter().next().copied().unwrap_or(default)),
                    None => Ok(attr_f(n, attr, default)),
                }
            };
            Some(Unary::Clip(bound(1, "min", f32::NEG_INFINITY)?, bound(2, "max", f32::INFINITY)?))
        }
        _ => None,
    })
}

/// A tract tensor as a head value: floats stay floats, integers and booleans become i64.
fn to_value(t: Tensor) -> Result<Value, String> {
    let err = |e: TractError| format!("{e:#}");
    if t.datum_type().is_float() {
        Ok(Value::F(t.cast_to::<f32>().map_err(err)?.into_owned().into_plain_array::<f32>().map_err(err)?))
    } else {
        Ok(Value::I(t.cast_to::<i64>().map_err(err)?.into_owned().into_plain_array::<i64>().map_err(err)?))
    }
}

fn constant_node(g: &OnnxGraph, n: &NodeProto) -> Result<Value, String> {
    if let Some(t) = attr_t(n, "value") {
        return to_value(g.load_tensor(t)?);
    }
    let attr = n.attribute.first().ok_or("a Constant without a value")?;
    let ints = |v: Vec<i64>| Value::I(Array1::from(v).into_dyn());
    Ok(match attr.name.as_str() {
        "value_float" => Value::F(ArrayD::from_elem(IxDyn(&[]), attr.f)),
        "value_floats" => Value::F(Array1::from(attr_floats(n, "value_floats").unwrap_or_default()).into_dyn()),
        "value_int" => Value::I(ArrayD::from_elem(IxDyn(&[]), attr.i)),
        "value_ints" => ints(attr.ints.clone()),
        other => return Err(format!("a Constant with attribute {other} is not supported")),
    })
}

fn matrix(a: ArrayD<f32>) -> Result<Array2<f32>, String> {
    let shape = a.shape().to_vec();
    a.into_dimensionality::<Ix2>().map_err(|_| format!("weights of shape {shape:?} are not a matrix"))
}

/// Gemm, MatMul and 1x1 convolutions with constant weights reading the head's data, in
/// effective form: `W` (out x in), `b`, and the axis of the data they contract.
fn dense(b: &Builder, n: &NodeProto, data: Option<&str>) -> Result<HeadOp, String> {
    let Some(data) = data else {
        return Err("a dense layer of constants only".into());
    };
    let (w, bias, axis) = match n.op_type.as_str() {
        "Gemm" => {
            if n.input[0] != data || attr_i(n, "transA", 0) != 0 {
                return Err("only a Gemm whose first operand is the head's data, untransposed, is supported".into());
            }
            let m = matrix(b.constant_floats(n, 1)?)?;
            let w = if attr_i(n, "transB", 0) != 0 { m } else { m.t().to_owned() } * attr_f(n, "alpha", 1.0);
            let beta = attr_f(n, "beta", 1.0);
            let c = if n.input.get(2).is_some_and(|s| !s.is_empty()) {
                Some(b.constant_floats(n, 2)? * beta)
            } else {
                None
            };
            (w, c, -1)
        }
        "MatMul" if n.input[0] == data => (matrix(b.constant_floats(n, 1)?)?.t().to_owned(), None, -1),
        "MatMul" => (matrix(b.constant_floats(n, 0)?)?, None, -2),
        _ => {
            let w = b.constant_floats(n, 1)?;
            let pads = attr_ints(n, "pads").unwrap_or_default();
            let strides = attr_ints(n, "strides").unwrap_or_default();
            let pointwise = w.ndim() >= 3 && w.shape()[2..].iter().all(|&k| k == 1);
            if !pointwise
                || attr_i(n, "group", 1) != 1
                || pads.iter().any(|&p| p != 0)
                || strides.iter().any(|&s| s != 1)
            {
                return Err("only 1x1 convolutions (one group, no padding, stride 1) are supported in a head".into());
            }
            let k = w.shape()[0];
            let c = w.len() / k;
            let w = w.into_shape_with_order((k, c)).map_err(|e| e.to_string())?;
            let c = if n.input.get(2).is_some_and(|s| !s.is_empty()) { Some(b.constant_floats(n, 2)?) } else { None };
            (w, c, 1)
        }
    };
    let k = w.nrows();
    let bias = match bias {
        None => Array1::zeros(k),
        Some(c) if c.len() == k => Array1::from_iter(c.iter().copied()),
        Some(c) if c.len() == 1 => Array1::from_elem(k, c.iter().next().copied().unwrap_or(0.0)),
        Some(c) => return Err(format!("a bias of shape {:?} for {k} outputs", c.shape())),
    };
    Ok(HeadOp::Dense { w, b: bias, axis })
}

/// Inference batch normalisation folded into a scale and a shift.
fn batch_norm(b: &Builder, n: &NodeProto) -> Result<HeadOp, String> {
    if attr_i(n, "training_mode", 0) != 0 {
        return Err("a BatchNormalization in training mode".into());
    }
    let v = |i| b.constant_floats(n, i).map(|a| Array1::from_iter(a.iter().copied()));
    let (scale, bias, mean, var) = (v(1)?, v(2)?, v(3)?, v(4)?);
    let eps = attr_f(n, "epsilon", 1e-5);
    let s: Array1<f32> = Array1::from_shape_fn(scale.len(), |i| scale[i] / (var[i] + eps).sqrt());
    let shift = Array1::from_shape_fn(scale.len(), |i| bias[i] - mean[i] * s[i]);
    Ok(HeadOp::BatchNorm { scale: s, shift })
}
