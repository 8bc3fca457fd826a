//! The head after the global pooling, translated once from ONNX nodes into typed steps,
//! and run by cambox itself as a small program, forward and backward.
//!
//! [`translate`] turns each ONNX node on the head's data path into one [`HeadStep`]: a
//! reshape, a dense layer in effective form (`W g + b`, honouring Gemm's `transB`/
//! `alpha`/`beta` and MatMul's operand order), or element-wise [`HeadOp`]s. Both uses of
//! the head read these steps: the surgery classifies the head (linear, identity, other)
//! from them, and [`HeadProgram`] is their ops in order. tract, too, converts every node
//! once into a typed op and analyses the typed graph.
//!
//! ONNX files carry no gradients, and the head after global average pooling is tiny
//! (a few dense layers), so cambox evaluates it on the pooled vector g and differentiates
//! it by the chain rule in closed form. That is what makes Grad-CAM and its relatives
//! possible for any ONNX classifier whose head is built from the ops below, and cheap:
//! the backbone runs once, as for CAM.
//!
//! Supported ops: Gemm, MatMul, Add/Sub/Mul/Div by a constant, Relu, LeakyRelu, Clip,
//! Sigmoid, Tanh, BatchNormalization (inference), the shape-only ops (Flatten, Reshape,
//! Squeeze, Unsqueeze, Identity, Dropout) and a final Softmax (ignored: logits are taken
//! before it). Derivatives at kinks follow PyTorch: ReLU'(0) = 0, LeakyReLU'(0) = slope,
//! Clip passes the gradient on [min, max] inclusive.

use ndarray::{Array1, Array2, ArrayD, Ix2};

use super::graph::{attr_f, attr_i, OnnxGraph};

/// The dense layer of a head, in effective form `logits = W g + b`.
#[derive(Debug, Clone)]
pub struct LinearHead {
    /// K x C.
    pub weight: Array2<f32>,
    /// K.
    pub bias: Array1<f32>,
    /// The op that holds W (`Gemm` or `MatMul`).
    pub dense_op: String,
}

impl LinearHead {
    /// Whether the ONNX op carries its own bias (Gemm's C); a MatMul's comes from an Add.
    pub fn has_bias(&self) -> bool {
        self.dense_op == "Gemm"
    }
}

/// One ONNX node of the head, typed.
#[derive(Debug, Clone)]
pub enum HeadStep {
    /// Flatten, Reshape, Squeeze, Unsqueeze, Identity, Dropout: no arithmetic.
    /// `data_first`: the head vector is the node's first input, as a reshape's data is.
    Reshape { data_first: bool },
    /// Gemm or MatMul with constant weights reading the head vector.
    Dense(LinearHead),
    /// Element-wise arithmetic: Add/Sub/Mul/Div by a constant, activations, BatchNorm.
    Elementwise(Vec<HeadOp>),
}

impl HeadStep {
    /// The step as program ops.
    pub fn ops(&self) -> Vec<HeadOp> {
        match self {
            HeadStep::Reshape { .. } => vec![],
            HeadStep::Dense(d) => vec![HeadOp::Dense { w: d.weight.clone(), b: d.bias.clone() }],
            HeadStep::Elementwise(ops) => ops.clone(),
        }
    }
}

/// One step on a vector.
#[derive(Debug, Clone)]
pub enum HeadOp {
    /// y = W x + b, W is out x in.
    Dense {
        w: Array2<f32>,
        b: Array1<f32>,
    },
    /// y = x + c (c of length 1 broadcasts).
    Add(Array1<f32>),
    /// y = x * c (c of length 1 broadcasts).
    Mul(Array1<f32>),
    Relu,
    LeakyRelu(f32),
    Clip(f32, f32),
    Sigmoid,
    Tanh,
}

/// The head as a sequence of ops from g (C) to the logits (K).
#[derive(Debug, Clone, Default)]
pub struct HeadProgram {
    pub ops: Vec<HeadOp>,
}

/// Values kept by the forward pass for the backward pass: the input of each op.
pub struct Trace {
    inputs: Vec<Array1<f32>>,
    pub output: Array1<f32>,
}

fn bcast(c: &Array1<f32>, i: usize) -> f32 {
    if c.len() == 1 {
        c[0]
    } else {
        c[i]
    }
}

impl HeadOp {
    fn apply(&self, x: &Array1<f32>) -> Array1<f32> {
        match self {
            HeadOp::Dense { w, b } => w.dot(x) + b,
            HeadOp::Add(c) => Array1::from_shape_fn(x.len(), |i| x[i] + bcast(c, i)),
            HeadOp::Mul(c) => Array1::from_shape_fn(x.len(), |i| x[i] * bcast(c, i)),
            HeadOp::Relu => x.mapv(|v| v.max(0.0)),
            HeadOp::LeakyRelu(a) => x.mapv(|v| if v > 0.0 { v } else { a * v }),
            HeadOp::Clip(lo, hi) => x.mapv(|v| v.clamp(*lo, *hi)),
            HeadOp::Sigmoid => x.mapv(|v| 1.0 / (1.0 + (-v).exp())),
            HeadOp::Tanh => x.mapv(f32::tanh),
        }
    }

    /// Gradient with respect to the op's input, given its input and the gradient of its
    /// output.
    fn back(&self, x: &Array1<f32>, gy: &Array1<f32>) -> Array1<f32> {
        match self {
            HeadOp::Dense { w, .. } => {
                // The gradient arriving at the last dense layer is one-hot (d logit_k): W^T gy
                // is then row k of W. Summing only the rows where gy is non-zero skips terms
                // that are exact zeros (for finite W) and reads a few contiguous rows instead
                // of all K x C weights column-wise: Grad-CAM on a 1000-class head went from
                // 7.8 to well under 1 ms per image.
                let nonzero: Vec<usize> = (0..gy.len()).filter(|&i| gy[i] != 0.0).collect();
                if nonzero.len() * 8 <= gy.len() {
                    let mut out = Array1::zeros(w.ncols());
                    for i in nonzero {
                        out.scaled_add(gy[i], &w.row(i));
                    }
                    out
                } else {
                    w.t().dot(gy)
                }
            }
            HeadOp::Add(_) => gy.clone(),
            HeadOp::Mul(c) => Array1::from_shape_fn(gy.len(), |i| gy[i] * bcast(c, i)),
            HeadOp::Relu => Array1::from_shape_fn(gy.len(), |i| if x[i] > 0.0 { gy[i] } else { 0.0 }),
            HeadOp::LeakyRelu(a) => Array1::from_shape_fn(gy.len(), |i| if x[i] > 0.0 { gy[i] } else { a * gy[i] }),
            HeadOp::Clip(lo, hi) => {
                Array1::from_shape_fn(gy.len(), |i| if x[i] >= *lo && x[i] <= *hi { gy[i] } else { 0.0 })
            }
            HeadOp::Sigmoid => Array1::from_shape_fn(gy.len(), |i| {
                let s = 1.0 / (1.0 + (-x[i]).exp());
                gy[i] * s * (1.0 - s)
            }),
            HeadOp::Tanh => Array1::from_shape_fn(gy.len(), |i| {
                let t = x[i].tanh();
                gy[i] * (1.0 - t * t)
            }),
        }
    }
}

impl HeadProgram {
    pub fn forward(&self, g: &Array1<f32>) -> Array1<f32> {
        self.ops.iter().fold(g.clone(), |x, op| op.apply(&x))
    }

    /// Forward pass keeping each op's input.
    pub fn trace(&self, g: &Array1<f32>) -> Trace {
        let mut inputs = Vec::with_capacity(self.ops.len());
        let mut x = g.clone();
        for op in &self.ops {
            let y = op.apply(&x);
            inputs.push(std::mem::replace(&mut x, y));
        }
        Trace { inputs, output: x }
    }

    /// d logit_k / d g, by the chain rule.
    pub fn gradient(&self, trace: &Trace, k: usize) -> Array1<f32> {
        let mut gy = Array1::zeros(trace.output.len());
        gy[k] = 1.0;
        for (op, x) in self.ops.iter().zip(&trace.inputs).rev() {
            gy = op.back(x, &gy);
        }
        gy
    }

    /// Logit k for every single-channel ablation of g (channel c set to 0), exact.
    /// When the first op is dense, ablating channel c shifts its output by
    /// `-W[:, c] g_c`, so each ablation costs one pass over the rest of the head.
    pub fn ablated_logits(&self, g: &Array1<f32>, k: usize) -> Vec<f32> {
        match self.ops.first() {
            Some(HeadOp::Dense { w, b }) => {
                let z = w.dot(g) + b;
                let rest = HeadProgram { ops: self.ops[1..].to_vec() };
                (0..g.len())
                    .map(|c| {
                        let zc = &z - &(&w.column(c) * g[c]);
                        rest.forward(&zc)[k]
                    })
                    .collect()
            }
            _ => (0..g.len())
                .map(|c| {
                    let mut gc = g.clone();
                    gc[c] = 0.0;
                    self.forward(&gc)[k]
                })
                .collect(),
        }
    }
}

/// Translates ONNX node `id`, which reads the head vector `t`, into its typed step;
/// `Err` names what is not supported.
pub fn translate(g: &OnnxGraph, id: usize, t: &str) -> Result<HeadStep, String> {
    let n = g.node(id);
    let name = g.describe(id);
    let cst = |i: usize| -> Result<Array1<f32>, String> {
        let s = n.input.get(i).filter(|s| !s.is_empty()).ok_or_else(|| format!("{name}: missing input {i}"))?;
        g.constant(s)
            .map(|a| Array1::from_iter(a.iter().copied()))
            .ok_or_else(|| format!("{name}: input '{s}' is not a constant"))
    };
    // The constant operand of a binary op, and whether the data is the first operand.
    let other_operand = || -> Result<(Array1<f32>, bool), String> {
        if n.input[0] == t {
            Ok((cst(1)?, true))
        } else {
            Ok((cst(0)?, false))
        }
    };
    let ops = match n.op_type.as_str() {
        "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" | "Identity" | "Dropout" => {
            return Ok(HeadStep::Reshape { data_first: n.input[0] == t })
        }
        "Gemm" | "MatMul" => {
            return dense_params(g, id, t).map(HeadStep::Dense).ok_or_else(|| {
                format!("{name}: only a dense layer with constant weights reading the head vector is supported")
            })
        }
        "Add" => vec![HeadOp::Add(other_operand()?.0)],
        "Mul" => vec![HeadOp::Mul(other_operand()?.0)],
        "Sub" => {
            let (c, data_first) = other_operand()?;
            if data_first {
                vec![HeadOp::Add(-c)]
            } else {
                vec![HeadOp::Mul(Array1::from_elem(1, -1.0)), HeadOp::Add(c)]
            }
        }
        "Div" => {
            let (c, data_first) = other_operand()?;
            if !data_first {
                return Err(format!("{name}: division by the head vector is not supported"));
            }
            vec![HeadOp::Mul(c.mapv(|v| 1.0 / v))]
        }
        "Relu" => vec![HeadOp::Relu],
        "LeakyRelu" => vec![HeadOp::LeakyRelu(attr_f(n, "alpha", 0.01))],
        "Sigmoid" => vec![HeadOp::Sigmoid],
        "Tanh" => vec![HeadOp::Tanh],
        "Clip" => {
            // Opset >= 11: min and max are optional inputs; before: attributes.
            let bound = |i: usize, attr: &str, default: f32| -> f32 {
                n.input
                    .get(i)
                    .filter(|s| !s.is_empty())
                    .and_then(|s| g.constant(s))
                    .and_then(|a| a.iter().next().copied())
                    .unwrap_or_else(|| attr_f(n, attr, default))
            };
            vec![HeadOp::Clip(bound(1, "min", f32::NEG_INFINITY), bound(2, "max", f32::INFINITY))]
        }
        "BatchNormalization" => {
            let (scale, bias, mean, var) = (cst(1)?, cst(2)?, cst(3)?, cst(4)?);
            let eps = attr_f(n, "epsilon", 1e-5);
            let s: Array1<f32> = Array1::from_shape_fn(scale.len(), |i| scale[i] / (var[i] + eps).sqrt());
            let shift = Array1::from_shape_fn(scale.len(), |i| bias[i] - mean[i] * s[i]);
            vec![HeadOp::Mul(s), HeadOp::Add(shift)]
        }
        "Softmax" => return Err(format!("{name}: a Softmax inside the head (only a final one is allowed)")),
        other => return Err(format!("{name}: op {other} is not supported in a head cambox can differentiate")),
    };
    Ok(HeadStep::Elementwise(ops))
}

fn as_matrix(a: ArrayD<f32>) -> Option<Array2<f32>> {
    match a.ndim() {
        2 => a.into_dimensionality::<Ix2>().ok(),
        _ => None,
    }
}

/// Effective W (K x C) and b for a Gemm or MatMul reading `t`.
fn dense_params(g: &OnnxGraph, id: usize, t: &str) -> Option<LinearHead> {
    let n = g.node(id);
    match n.op_type.as_str() {
        "Gemm" => {
            if n.input[0] != t || attr_i(n, "transA", 0) != 0 {
                return None;
            }
            let b = as_matrix(g.constant(&n.input[1])?)?;
            let alpha = attr_f(n, "alpha", 1.0);
            let beta = attr_f(n, "beta", 1.0);
            let w = if attr_i(n, "transB", 0) != 0 { b } else { b.t().to_owned() };
            let w = w * alpha;
            let k = w.nrows();
            let bias = match n.input.get(2).filter(|s| !s.is_empty()) {
                Some(c) => {
                    let c = g.constant(c)?;
                    let v: Vec<f32> = c.iter().map(|&x| x * beta).collect();
                    match v.len() {
                        1 => Array1::from_elem(k, v[0]),
                        l if l == k => Array1::from(v),
                        _ => return None,
                    }
                }
                None => Array1::zeros(k),
            };
            Some(LinearHead { weight: w, bias, dense_op: "Gemm".into() })
        }
        "MatMul" => {
            let w = if n.input[0] == t {
                as_matrix(g.constant(&n.input[1])?)?.t().to_owned()
            } else {
                as_matrix(g.constant(&n.input[0])?)?
            };
            let k = w.nrows();
            Some(LinearHead { weight: w, bias: Array1::zeros(k), dense_op: "MatMul".into() })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn mlp() -> HeadProgram {
        HeadProgram {
            ops: vec![
                HeadOp::Dense { w: array![[1.0, -1.0], [0.5, 2.0], [-1.0, 0.0]], b: array![0.0, -1.0, 0.5] },
                HeadOp::Relu,
                HeadOp::Dense { w: array![[1.0, 1.0, 1.0], [2.0, -1.0, 0.0]], b: array![0.1, 0.2] },
            ],
        }
    }

    #[test]
    fn forward_and_gradient_by_hand() {
        let p = mlp();
        let g = array![2.0, 1.0];
        // z = [1, 2, -1.5] -> relu [1, 2, 0] -> y = [3.1, 0.2].
        let t = p.trace(&g);
        assert_eq!(t.output, array![3.1, 0.2]);
        // dy0/dg = W1^T (relu'(z) * W2[0]) = W1^T [1, 1, 0] = [1.5, 1].
        assert_eq!(p.gradient(&t, 0), array![1.5, 1.0]);
        // dy1/dg = W1^T [2, -1, 0] = [1.5, -4].
        assert_eq!(p.gradient(&t, 1), array![1.5, -4.0]);
    }

    #[test]
    fn gradient_matches_finite_differences_for_every_op() {
        let p = HeadProgram {
            ops: vec![
                HeadOp::Dense {
                    w: array![[0.3, -0.7, 0.2], [0.9, 0.1, -0.4], [-0.2, 0.5, 0.6]],
                    b: array![0.1, -0.2, 0.05],
                },
                HeadOp::Mul(array![1.5, -0.5, 2.0]),
                HeadOp::Add(array![0.1]),
                HeadOp::LeakyRelu(0.2),
                HeadOp::Sigmoid,
                HeadOp::Tanh,
                HeadOp::Clip(-0.3, 0.45),
                HeadOp::Dense { w: array![[1.0, -2.0, 0.5]], b: array![0.0] },
            ],
        };
        let g = array![0.4f32, -0.3, 0.8];
        let grad = p.gradient(&p.trace(&g), 0);
        for i in 0..3 {
            let h = 1e-3;
            let (mut a, mut b) = (g.clone(), g.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (p.forward(&a)[0] - p.forward(&b)[0]) / (2.0 * h);
            assert!((fd - grad[i]).abs() < 2e-3, "input {i}: {fd} vs {}", grad[i]);
        }
    }

    #[test]
    fn sparse_dense_backward_equals_the_full_product() {
        let w = Array2::from_shape_fn((40, 7), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.37 - 1.5);
        let x = Array1::zeros(7);
        let op = HeadOp::Dense { w: w.clone(), b: Array1::zeros(40) };
        for hot in [vec![3], vec![0, 39], vec![5, 6, 7, 8, 9]] {
            let gy = Array1::from_shape_fn(40, |i| if hot.contains(&i) { 0.5 + i as f32 } else { 0.0 });
            let want = w.t().dot(&gy);
            let got = op.back(&x, &gy);
            assert!(want.iter().zip(&got).all(|(a, b)| (a - b).abs() <= 1e-5 * a.abs().max(1.0)), "{hot:?}");
        }
    }

    #[test]
    fn relu_gradient_at_zero_is_zero() {
        let p = HeadProgram { ops: vec![HeadOp::Relu] };
        assert_eq!(p.gradient(&p.trace(&array![0.0, 1.0]), 0), array![0.0, 0.0]);
    }

    #[test]
    fn ablation_shortcut_equals_rerunning_the_head() {
        let p = mlp();
        let g = array![2.0, 1.0];
        for k in 0..2 {
            let fast = p.ablated_logits(&g, k);
            for c in 0..2 {
                let mut gc = g.clone();
                gc[c] = 0.0;
                assert!((fast[c] - p.forward(&gc)[k]).abs() < 1e-6);
            }
        }
    }
}
