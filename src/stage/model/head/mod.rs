//! The head after the global pooling, as a small program cambox runs and differentiates
//! itself.
//!
//! ONNX files carry no gradients, and the head after a global average pooling is tiny (a
//! few dense layers on one pooled vector), so cambox evaluates it on the pooled vector g
//! and differentiates it by the chain rule in closed form: that is what makes Grad-CAM and
//! its relatives possible for any ONNX classifier, and cheap (the backbone runs once, as
//! for CAM).
//!
//! The program is a graph, not a chain: exporters write heads whose tensors feed several
//! nodes (Hardswish as `x * HardSigmoid(x)`, GELU as `x * (1 + erf(x / sqrt 2)) / 2`,
//! LayerNorm unrolled into ReduceMean, Sub, Pow, Sqrt and Div) and compute reshape targets
//! from shapes (`Shape -> Gather -> Concat -> Reshape`). [`translate`] turns the ONNX nodes
//! between the pooling and the logits into [`HeadOp`]s over numbered values, folding
//! whatever depends on constants only; the backward pass accumulates each value's gradient
//! over all its readers.
//!
//! An affine head (dense layers, biases, batch norms, reshapes: no activation) is one
//! matrix: [`HeadProgram::linear`] reads its `W` and `b` off the program itself (b is the
//! program at 0, row k of W the gradient of logit k), so CAM is exact for every such head
//! whatever ops the exporter spelled it with.

mod ops;
mod translate;
mod value;

use ndarray::{Array1, Array2, ArrayD, IxDyn};

pub use ops::{Binary, HeadOp, Unary};
pub use translate::{analyse_head, constant_value, HeadAnalysis, HeadKind};
pub use value::Value;

/// The dense layer of a linear head, in effective form `logits = W g + b`.
#[derive(Debug, Clone)]
pub struct LinearHead {
    /// K x C.
    pub weight: Array2<f32>,
    /// K.
    pub bias: Array1<f32>,
}

/// One op of the program, reading and writing numbered values.
#[derive(Debug, Clone)]
pub struct HeadNode {
    pub op: HeadOp,
    /// `None` for an optional input the node omits.
    pub inputs: Vec<Option<usize>>,
    pub output: usize,
    /// The ONNX node, as messages name it.
    pub name: String,
}

/// The head as a graph of ops from the pooled tensor to the logits.
#[derive(Debug, Clone)]
pub struct HeadProgram {
    /// In an order where every value is written before it is read.
    nodes: Vec<HeadNode>,
    /// Values known before the head runs (constants, and what the exporter computed
    /// from constants only, folded).
    constants: Vec<(usize, Value)>,
    values: usize,
    input: usize,
    output: usize,
    /// The pooled tensor's shape; `None` at the channel axis.
    input_shape: Vec<Option<usize>>,
    /// Whether each value depends on the pooled tensor (gradients flow only there).
    live: Vec<bool>,
    /// Shapes of backbone tensors the head reads, set per input size ([`Self::bind_shapes`]).
    shape_inputs: Vec<ShapeInput>,
}

/// `Shape(tensor)[start..end]` of a tensor before the pooling: fixed by the input size,
/// known to the plan, not to the head.
#[derive(Debug, Clone)]
pub struct ShapeInput {
    value: usize,
    pub tensor: String,
    start: i64,
    end: Option<i64>,
}

/// Every value of one forward pass, kept for the backward pass.
pub struct Trace {
    values: Vec<Option<Value>>,
    /// The logits, flattened.
    pub output: Array1<f32>,
}

impl HeadProgram {
    /// The backbone tensors whose shapes the head reads.
    pub fn shape_tensors(&self) -> Vec<&str> {
        self.shape_inputs.iter().map(|s| s.tensor.as_str()).collect()
    }

    /// Sets the shapes of the backbone tensors the head reads (those of
    /// [`Self::shape_tensors`]), as the plan of one input size has them.
    pub fn bind_shapes(&mut self, shapes: &std::collections::HashMap<String, Vec<usize>>) -> Result<(), String> {
        for s in &self.shape_inputs {
            let dims = shapes.get(&s.tensor).ok_or_else(|| format!("the shape of '{}' is unknown", s.tensor))?;
            let whole = Value::F(ArrayD::zeros(IxDyn(dims)));
            let v = HeadOp::Shape { start: s.start, end: s.end }.eval(&[Some(&whole)])?;
            self.constants.retain(|(id, _)| *id != s.value);
            self.constants.push((s.value, v));
        }
        Ok(())
    }

    /// The values computed without the pooled data (from constants and bound shapes) that
    /// the data path reads: what must agree between input sizes for one program to
    /// serve them all.
    pub fn fixed_inputs(&self) -> Result<Vec<(usize, Value)>, String> {
        let mut values: Vec<Option<Value>> = vec![None; self.values];
        for (v, c) in &self.constants {
            values[*v] = Some(c.clone());
        }
        for n in self.nodes.iter().filter(|n| !self.live[n.output]) {
            let y = self.eval_node(n, |v| values[v].as_ref())?;
            values[n.output] = Some(y);
        }
        let mut read: Vec<usize> = self
            .nodes
            .iter()
            .filter(|n| self.live[n.output])
            .flat_map(|n| n.inputs.iter().flatten().copied())
            .filter(|&v| !self.live[v])
            .collect();
        read.sort_unstable();
        read.dedup();
        Ok(read.into_iter().filter_map(|v| values[v].take().map(|x| (v, x))).collect())
    }

    /// The logits for the pooled vector `g`.
    pub fn forward(&self, g: &Array1<f32>) -> Result<Array1<f32>, String> {
        Ok(self.trace(g)?.output)
    }

    /// Forward pass keeping every value.
    pub fn trace(&self, g: &Array1<f32>) -> Result<Trace, String> {
        let mut values: Vec<Option<Value>> = vec![None; self.values];
        for (v, c) in &self.constants {
            values[*v] = Some(c.clone());
        }
        values[self.input] = Some(self.input_value(g));
        if let Some(s) = self.shape_inputs.iter().find(|s| values[s.value].is_none()) {
            return Err(format!("the head reads the shape of '{}', which is not set", s.tensor));
        }
        for n in &self.nodes {
            let y = self.eval_node(n, |v| values[v].as_ref())?;
            values[n.output] = Some(y);
        }
        let output = flat(values[self.output].as_ref().expect("the output is computed"))?;
        Ok(Trace { values, output })
    }

    /// d logit_k / d g, by the chain rule.
    pub fn gradient(&self, trace: &Trace, k: usize) -> Result<Array1<f32>, String> {
        let value = |v: usize| trace.values[v].as_ref().expect("traced");
        let out = value(self.output).floats()?;
        if k >= out.len() {
            return Err(format!("class {k} is not among the head's {} logits", out.len()));
        }
        let mut grads: Vec<Option<ArrayD<f32>>> = vec![None; self.values];
        let mut seed = ArrayD::zeros(out.raw_dim());
        seed.as_slice_mut().expect("standard layout")[k] = 1.0;
        grads[self.output] = Some(seed);
        for n in self.nodes.iter().rev() {
            let Some(gy) = grads[n.output].take() else { continue };
            let xs: Vec<Option<&Value>> = n.inputs.iter().map(|i| i.map(value)).collect();
            for (j, input) in n.inputs.iter().enumerate() {
                let Some(v) = *input else { continue };
                if !self.live[v] {
                    continue;
                }
                let g = n.op.vjp(&xs, value(n.output), &gy, j).map_err(|e| format!("{}: {e}", n.name))?;
                grads[v] = Some(match grads[v].take() {
                    Some(acc) => acc + g,
                    None => g,
                });
            }
        }
        match grads[self.input].take() {
            Some(g) => flat(&Value::F(g)),
            None => Ok(Array1::zeros(value(self.input).shape().iter().product::<usize>())),
        }
    }

    /// Logit k for every single-channel ablation of g (channel c set to 0), exact.
    /// When the pooled vector reaches a dense layer through reshapes only, ablating
    /// channel c shifts that layer's output by `-W[:, c] g_c`, so each ablation costs one
    /// pass over what follows the layer.
    pub fn ablated_logits(&self, g: &Array1<f32>, k: usize) -> Result<Vec<f32>, String> {
        if let Some(d) = self.first_dense() {
            let trace = self.trace(g)?;
            let HeadOp::Dense { w, .. } = &self.nodes[d].op else { unreachable!("first_dense") };
            let z = trace.values[self.nodes[d].output].as_ref().expect("traced").floats()?;
            if z.len() == w.nrows() {
                return (0..g.len())
                    .map(|c| {
                        let shift = w.column(c).mapv(|v| v * g[c]);
                        let zc = z - &shift.into_shape_with_order(z.raw_dim()).expect("one vector");
                        Ok(self.rerun_after(&trace, d, Value::F(zc))?[k])
                    })
                    .collect();
            }
        }
        (0..g.len())
            .map(|c| {
                let mut gc = g.clone();
                gc[c] = 0.0;
                Ok(self.forward(&gc)?[k])
            })
            .collect()
    }

    /// `W` and `b` of an affine head on `channels` pooled features: b is the program at
    /// g = 0 and row k of W the gradient of logit k (constant for an affine map). For a
    /// dense layer both are its own numbers, copied: no arithmetic touches them.
    pub fn linear(&self, channels: usize) -> Result<LinearHead, String> {
        let trace = self.trace(&Array1::zeros(channels))?;
        let k = trace.output.len();
        let mut weight = Array2::zeros((k, channels));
        for i in 0..k {
            weight.row_mut(i).assign(&self.gradient(&trace, i)?);
        }
        Ok(LinearHead { weight, bias: trace.output })
    }

    /// The pooled vector in the pooled tensor's shape.
    fn input_value(&self, g: &Array1<f32>) -> Value {
        let shape: Vec<usize> = self.input_shape.iter().map(|d| d.unwrap_or(g.len())).collect();
        Value::F(g.clone().into_shape_with_order(IxDyn(&shape)).expect("one free axis").into_dyn())
    }

    fn eval_node<'a>(&self, n: &HeadNode, value: impl Fn(usize) -> Option<&'a Value>) -> Result<Value, String> {
        let xs: Vec<Option<&Value>> = n.inputs.iter().map(|i| i.and_then(&value)).collect();
        n.op.eval(&xs).map_err(|e| format!("{}: {e}", n.name))
    }

    /// The dense layer the pooled vector reaches through reshapes alone, when nothing
    /// else reads it on the way (shapes aside: ablation does not change them).
    fn first_dense(&self) -> Option<usize> {
        let mut at = self.input;
        loop {
            let readers: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].inputs.contains(&Some(at)))
                .filter(|&i| !matches!(self.nodes[i].op, HeadOp::Shape { .. }))
                .collect();
            let [i] = readers.as_slice() else { return None };
            let n = &self.nodes[*i];
            if n.inputs.first() != Some(&Some(at)) {
                return None;
            }
            match &n.op {
                HeadOp::Dense { .. } => return Some(*i),
                op if op.moves_only() => at = n.output,
                _ => return None,
            }
        }
    }

    /// The logits when node `from` outputs `value` instead of what `trace` holds: the
    /// nodes after it are run again where one of their inputs changed.
    fn rerun_after(&self, trace: &Trace, from: usize, value: Value) -> Result<Array1<f32>, String> {
        let mut changed: Vec<Option<Value>> = vec![None; self.values];
        changed[self.nodes[from].output] = Some(value);
        for n in &self.nodes[from + 1..] {
            if n.inputs.iter().flatten().any(|&v| changed[v].is_some()) {
                let y = self.eval_node(n, |v| changed[v].as_ref().or(trace.values[v].as_ref()))?;
                changed[n.output] = Some(y);
            }
        }
        match &changed[self.output] {
            Some(v) => flat(v),
            None => Ok(trace.output.clone()),
        }
    }
}

fn flat(v: &Value) -> Result<Array1<f32>, String> {
    let a = v.floats()?;
    Ok(Array1::from_iter(a.iter().copied()))
}

#[cfg(test)]
mod tests;
