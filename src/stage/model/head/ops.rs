//! The ops a head program is made of, each with its forward rule and its vector-Jacobian
//! product (the gradient of the op's inputs given the gradient of its output).
//!
//! Semantics are ONNX's. Derivatives at kinks follow PyTorch, so that Grad-CAM agrees
//! with the autograd users compare against: ReLU'(0) = 0, LeakyReLU'(0) = slope, Clip
//! passes the gradient on [min, max] inclusive, Hardsigmoid's on the open interval
//! (-3, 3) and Hardswish's `x / 3 + 1/2` on [-3, 3].

use ndarray::{Array1, Array2, ArrayD, ArrayView1, Axis, IxDyn, Slice};

use super::value::{axis, broadcast_shape, reshape_target, reshaped, slice_range, unbroadcast, zip_with, Value};

/// Element-wise functions of one tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unary {
    Relu,
    LeakyRelu(f32),
    Clip(f32, f32),
    Sigmoid,
    Tanh,
    /// `max(0, min(1, alpha x + beta))`.
    HardSigmoid(f32, f32),
    HardSwish,
    Erf,
    /// ONNX Gelu (opset 20); `true` for the tanh approximation.
    Gelu(bool),
    Sqrt,
    Exp,
    Log,
    Neg,
    Reciprocal,
    Abs,
    Softplus,
    Elu(f32),
}

/// Element-wise functions of two tensors, broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

/// The attributes of a Slice before opset 10.
#[derive(Debug, Clone)]
pub struct SliceAttrs {
    pub starts: Vec<i64>,
    pub ends: Vec<i64>,
    pub axes: Option<Vec<i64>>,
}

/// Mean and reciprocal standard deviation of each normalised row.
type RowStats = Vec<(f64, f64)>;

/// One op of the head program.
#[derive(Debug, Clone)]
pub enum HeadOp {
    /// `y = W x + b` contracting `axis` of x (W is out x in): Gemm, MatMul and 1x1
    /// convolutions with constant weights.
    Dense {
        w: Array2<f32>,
        b: Array1<f32>,
        axis: i64,
    },
    Unary(Unary),
    Binary(Binary),
    /// Normalises over the axes from `axis` on; inputs x, scale, bias (optional).
    LayerNorm {
        axis: i64,
        eps: f32,
    },
    /// Inference batch normalisation folded into `x * scale + shift` along axis 1.
    BatchNorm {
        scale: Array1<f32>,
        shift: Array1<f32>,
    },
    /// ReduceMean / ReduceSum; axes from the attribute or input 1.
    Reduce {
        mean: bool,
        axes: Option<Vec<i64>>,
        keepdims: bool,
    },
    Reshape {
        allowzero: bool,
    },
    Flatten {
        axis: i64,
    },
    Squeeze {
        axes: Option<Vec<i64>>,
    },
    Unsqueeze {
        axes: Option<Vec<i64>>,
    },
    Transpose {
        perm: Option<Vec<usize>>,
    },
    /// Identity, Dropout (inference), Cast between float types.
    Identity,
    Shape {
        start: i64,
        end: Option<i64>,
    },
    Gather {
        axis: i64,
    },
    /// Opset >= 10 takes starts, ends, axes, steps as inputs; older ones as attributes.
    Slice {
        attrs: Option<SliceAttrs>,
    },
    Concat {
        axis: i64,
    },
    Cast {
        to_float: bool,
    },
    Expand,
    ConstantOfShape(Value),
}

impl HeadOp {
    /// Whether the op is affine in each of its float inputs taken alone (so that a head
    /// made of such ops, with constants for all but one operand, is one affine map).
    pub fn is_affine(&self) -> bool {
        !matches!(
            self,
            HeadOp::Unary(u) if *u != Unary::Neg
        ) && !matches!(self, HeadOp::Binary(Binary::Pow) | HeadOp::LayerNorm { .. })
    }

    /// Whether the op only moves values (no arithmetic): what an identity head holds.
    pub fn moves_only(&self) -> bool {
        matches!(
            self,
            HeadOp::Reshape { .. }
                | HeadOp::Flatten { .. }
                | HeadOp::Squeeze { .. }
                | HeadOp::Unsqueeze { .. }
                | HeadOp::Transpose { .. }
                | HeadOp::Identity
                | HeadOp::Shape { .. }
                | HeadOp::Cast { .. }
        )
    }

    /// The op's output from its inputs (`None` for an omitted optional input).
    pub fn eval(&self, x: &[Option<&Value>]) -> Result<Value, String> {
        let arg = |i: usize| x.get(i).copied().flatten().ok_or_else(|| format!("missing input {i}"));
        let ints = |i: usize| x.get(i).copied().flatten().map(Value::ints);
        Ok(match self {
            HeadOp::Dense { w, b, axis } => Value::F(dense(arg(0)?.floats()?, w, b, *axis)?),
            HeadOp::Unary(u) => Value::F(arg(0)?.floats()?.mapv(|v| u.apply(v))),
            HeadOp::Binary(op) => binary(*op, arg(0)?, arg(1)?)?,
            HeadOp::LayerNorm { axis, eps } => {
                Value::F(layer_norm(arg(0)?.floats()?, opt_floats(x, 1)?, opt_floats(x, 2)?, *axis, *eps)?.0)
            }
            HeadOp::BatchNorm { scale, shift } => {
                let a = arg(0)?.floats()?;
                Value::F(along_channels(a, scale)? * a + along_channels(a, shift)?)
            }
            HeadOp::Reduce { mean, axes, keepdims } => {
                let a = arg(0)?.floats()?;
                let axes = reduce_axes(axes.clone().or_else(|| ints(1)), a.ndim())?;
                Value::F(reduce(a, &axes, *mean, *keepdims))
            }
            HeadOp::Reshape { allowzero } => {
                let a = arg(0)?;
                let to = reshape_target(a.shape(), &arg(1)?.ints(), *allowzero)?;
                map_value(a, |t| reshaped(t, &to), |t| reshaped(t, &to))?
            }
            HeadOp::Flatten { .. } | HeadOp::Squeeze { .. } | HeadOp::Unsqueeze { .. } => {
                let a = arg(0)?;
                let to = self.moved_shape(a.shape(), ints(1))?;
                map_value(a, |t| reshaped(t, &to), |t| reshaped(t, &to))?
            }
            HeadOp::Transpose { perm } => {
                let a = arg(0)?;
                let p = permutation(perm, a.shape().len())?;
                map_value(a, |t| Ok(permuted(t, &p)), |t| Ok(permuted(t, &p)))?
            }
            HeadOp::Identity => arg(0)?.clone(),
            HeadOp::Shape { start, end } => shape_of(arg(0)?, *start, *end),
            HeadOp::Gather { axis } => {
                let (a, idx) = (arg(0)?, arg(1)?);
                let ax = self::axis(*axis, a.shape().len())?;
                let idx = indices(idx, a.shape()[ax])?;
                map_value(a, |t| gather(t, &idx, ax), |t| gather(t, &idx, ax))?
            }
            HeadOp::Slice { .. } => {
                let a = arg(0)?;
                let ranges = self.slice_ranges(a.shape(), x)?;
                map_value(a, |t| Ok(sliced(t, &ranges)), |t| Ok(sliced(t, &ranges)))?
            }
            HeadOp::Concat { axis } => concat(x, *axis)?,
            HeadOp::Cast { to_float } => match (arg(0)?, to_float) {
                (Value::F(a), true) => Value::F(a.clone()),
                (Value::I(a), true) => Value::F(a.mapv(|v| v as f32)),
                (Value::F(a), false) => Value::I(a.mapv(|v| v as i64)),
                (Value::I(a), false) => Value::I(a.clone()),
            },
            HeadOp::Expand => expand(arg(0)?, &arg(1)?.ints())?,
            HeadOp::ConstantOfShape(v) => {
                let to: Vec<usize> = arg(0)?.ints().iter().map(|&d| d.max(0) as usize).collect();
                match v {
                    Value::F(c) => Value::F(ArrayD::from_elem(IxDyn(&to), c.iter().next().copied().unwrap_or(0.0))),
                    Value::I(c) => Value::I(ArrayD::from_elem(IxDyn(&to), c.iter().next().copied().unwrap_or(0))),
                }
            }
        })
    }

    /// The gradient with respect to float input `i`, given the inputs `x`, the output `y`
    /// and the gradient `gy` of the output.
    pub fn vjp(&self, x: &[Option<&Value>], y: &Value, gy: &ArrayD<f32>, i: usize) -> Result<ArrayD<f32>, String> {
        let f = |j: usize| x.get(j).copied().flatten().ok_or_else(|| format!("missing input {j}"))?.floats();
        let xi = f(i)?;
        let back_to_input = |g: &ArrayD<f32>| reshaped(g, xi.shape());
        match self {
            HeadOp::Dense { w, axis, .. } => dense_back(gy, w, *axis, xi.shape()),
            HeadOp::Unary(u) => Ok(ndarray::Zip::from(gy).and(xi).map_collect(|&g, &v| g * u.derivative(v))),
            HeadOp::Binary(op) => {
                let (a, b) = (f(0)?, f(1)?);
                let g = match (op, i) {
                    (Binary::Add, _) | (Binary::Sub, 0) => gy.clone(),
                    (Binary::Sub, _) => -gy,
                    (Binary::Mul, 0) => zip_with(gy, b, |g, v| g * v)?,
                    (Binary::Mul, _) => zip_with(gy, a, |g, v| g * v)?,
                    (Binary::Div, 0) => zip_with(gy, b, |g, v| g / v)?,
                    (Binary::Div, _) => zip_with(&zip_with(gy, y.floats()?, |g, q| -g * q)?, b, |g, v| g / v)?,
                    (Binary::Pow, 0) => {
                        zip_with(&zip_with(gy, b, |g, e| g * e)?, &zip_with(a, b, |v, e| v.powf(e - 1.0))?, |p, q| {
                            p * q
                        })?
                    }
                    (Binary::Pow, _) => zip_with(&zip_with(gy, y.floats()?, |g, p| g * p)?, a, |g, v| g * v.ln())?,
                };
                Ok(unbroadcast(g, xi.shape()))
            }
            HeadOp::LayerNorm { axis, eps } => {
                if i != 0 {
                    return Err("the gradient of a LayerNormalization's scale or bias is not supported".into());
                }
                layer_norm_back(xi, opt_floats(x, 1)?, gy, *axis, *eps)
            }
            HeadOp::BatchNorm { scale, .. } => Ok(along_channels(gy, scale)? * gy),
            HeadOp::Reduce { mean, axes, keepdims } => {
                let axes =
                    reduce_axes(axes.clone().or_else(|| x.get(1).copied().flatten().map(Value::ints)), xi.ndim())?;
                let mut g = gy.clone();
                if !keepdims {
                    for &a in &axes {
                        g = g.insert_axis(Axis(a));
                    }
                }
                let n: usize = axes.iter().map(|&a| xi.shape()[a]).product();
                let g = g.broadcast(xi.raw_dim()).ok_or("reduce: bad gradient shape")?.to_owned();
                Ok(if *mean { g / n as f32 } else { g })
            }
            HeadOp::Reshape { .. }
            | HeadOp::Flatten { .. }
            | HeadOp::Squeeze { .. }
            | HeadOp::Unsqueeze { .. }
            | HeadOp::Identity
            | HeadOp::Cast { .. } => back_to_input(gy),
            HeadOp::Expand => Ok(unbroadcast(gy.clone(), xi.shape())),
            HeadOp::Transpose { perm } => {
                let p = permutation(perm, xi.ndim())?;
                let mut inverse = vec![0; p.len()];
                p.iter().enumerate().for_each(|(k, &d)| inverse[d] = k);
                Ok(permuted(gy, &inverse))
            }
            HeadOp::Gather { axis } => {
                let ax = self::axis(*axis, xi.ndim())?;
                let idx = indices(x[1].ok_or("missing indices")?, xi.shape()[ax])?;
                Ok(scatter(gy, &idx, ax, xi.shape()))
            }
            HeadOp::Slice { .. } => {
                let ranges = self.slice_ranges(xi.shape(), x)?;
                let mut g = ArrayD::zeros(xi.raw_dim());
                g.slice_each_axis_mut(|a| slice_of(&ranges[a.axis.index()])).assign(gy);
                Ok(g)
            }
            HeadOp::Concat { axis } => {
                let ax = self::axis(*axis, xi.ndim())?;
                let start: usize = x[..i].iter().flatten().map(|v| v.shape()[ax]).sum();
                Ok(gy.slice_axis(Axis(ax), Slice::from(start..start + xi.shape()[ax])).to_owned())
            }
            HeadOp::Shape { .. } | HeadOp::ConstantOfShape(_) => Err("no gradient through a shape".into()),
        }
    }

    /// The output shape of Flatten, Squeeze and Unsqueeze.
    fn moved_shape(&self, s: &[usize], axes_input: Option<Vec<i64>>) -> Result<Vec<usize>, String> {
        match self {
            HeadOp::Flatten { axis } => {
                let a =
                    if *axis < 0 { (*axis + s.len() as i64).max(0) as usize } else { (*axis as usize).min(s.len()) };
                Ok(vec![s[..a].iter().product(), s[a..].iter().product()])
            }
            HeadOp::Squeeze { axes } => match axes.clone().or(axes_input) {
                Some(axes) => {
                    let axes: Vec<usize> = axes.iter().map(|&a| axis(a, s.len())).collect::<Result<_, _>>()?;
                    if let Some(&a) = axes.iter().find(|&&a| s[a] != 1) {
                        return Err(format!("cannot squeeze axis {a} of {s:?}"));
                    }
                    Ok(s.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect())
                }
                None => Ok(s.iter().copied().filter(|&d| d != 1).collect()),
            },
            HeadOp::Unsqueeze { axes } => {
                let axes = axes.clone().or(axes_input).ok_or("Unsqueeze without axes")?;
                let rank = s.len() + axes.len();
                let mut axes: Vec<usize> = axes.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?;
                axes.sort_unstable();
                let mut out = s.to_vec();
                for a in axes {
                    out.insert(a, 1);
                }
                Ok(out)
            }
            _ => unreachable!("moved_shape of {self:?}"),
        }
    }

    /// Per axis of a tensor of shape `s`, the `[start, end)` and step a Slice keeps.
    fn slice_ranges(&self, s: &[usize], x: &[Option<&Value>]) -> Result<Vec<(usize, usize, usize)>, String> {
        let input = |i: usize| x.get(i).copied().flatten().map(Value::ints);
        let (starts, ends, axes, steps) = match self {
            HeadOp::Slice { attrs: Some(a) } => (a.starts.clone(), a.ends.clone(), a.axes.clone(), None),
            _ => (input(1).ok_or("Slice without starts")?, input(2).ok_or("Slice without ends")?, input(3), input(4)),
        };
        let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let mut ranges: Vec<(usize, usize, usize)> = s.iter().map(|&n| (0, n, 1)).collect();
        for (k, &a) in axes.iter().enumerate() {
            let a = axis(a, s.len())?;
            let step = steps.as_ref().map(|st| st[k]).unwrap_or(1);
            ranges[a] = slice_range(s[a], starts[k], ends[k], step)?;
        }
        Ok(ranges)
    }
}

impl Unary {
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Unary::Relu => v.max(0.0),
            Unary::LeakyRelu(a) => {
                if v > 0.0 {
                    v
                } else {
                    a * v
                }
            }
            Unary::Clip(lo, hi) => v.clamp(lo, hi),
            Unary::Sigmoid => 1.0 / (1.0 + (-v).exp()),
            Unary::Tanh => v.tanh(),
            Unary::HardSigmoid(a, b) => (a * v + b).clamp(0.0, 1.0),
            Unary::HardSwish => v * (v / 6.0 + 0.5).clamp(0.0, 1.0),
            Unary::Erf => libm::erff(v),
            Unary::Gelu(false) => 0.5 * v * (1.0 + libm::erff(v / std::f32::consts::SQRT_2)),
            Unary::Gelu(true) => 0.5 * v * (1.0 + (GELU_C * (v + 0.044715 * v * v * v)).tanh()),
            Unary::Sqrt => v.sqrt(),
            Unary::Exp => v.exp(),
            Unary::Log => v.ln(),
            Unary::Neg => -v,
            Unary::Reciprocal => 1.0 / v,
            Unary::Abs => v.abs(),
            Unary::Softplus => v.max(0.0) + (-v.abs()).exp().ln_1p(),
            Unary::Elu(a) => {
                if v > 0.0 {
                    v
                } else {
                    a * v.exp_m1()
                }
            }
        }
    }

    /// d apply / dv at v.
    pub fn derivative(self, v: f32) -> f32 {
        let step = |c: bool, d: f32| if c { d } else { 0.0 };
        match self {
            Unary::Relu => step(v > 0.0, 1.0),
            Unary::LeakyRelu(a) => {
                if v > 0.0 {
                    1.0
                } else {
                    a
                }
            }
            Unary::Clip(lo, hi) => step(v >= lo && v <= hi, 1.0),
            Unary::Sigmoid => {
                let s = Unary::Sigmoid.apply(v);
                s * (1.0 - s)
            }
            Unary::Tanh => 1.0 - v.tanh() * v.tanh(),
            Unary::HardSigmoid(a, b) => step(a * v + b > 0.0 && a * v + b < 1.0, a),
            Unary::HardSwish => {
                if v < -3.0 {
                    0.0
                } else if v <= 3.0 {
                    v / 3.0 + 0.5
                } else {
                    1.0
                }
            }
            Unary::Erf => std::f32::consts::FRAC_2_SQRT_PI * (-v * v).exp(),
            Unary::Gelu(false) => {
                let cdf = 0.5 * (1.0 + libm::erff(v / std::f32::consts::SQRT_2));
                cdf + v * (-0.5 * v * v).exp() / (2.0 * std::f32::consts::PI).sqrt()
            }
            Unary::Gelu(true) => {
                let inner = GELU_C * (v + 0.044715 * v * v * v);
                let t = inner.tanh();
                0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * 0.044715 * v * v)
            }
            Unary::Sqrt => 0.5 / v.sqrt(),
            Unary::Exp => v.exp(),
            Unary::Log => 1.0 / v,
            Unary::Neg => -1.0,
            Unary::Reciprocal => -1.0 / (v * v),
            Unary::Abs => v.signum() * step(v != 0.0, 1.0),
            Unary::Softplus => Unary::Sigmoid.apply(v),
            Unary::Elu(a) => {
                if v > 0.0 {
                    1.0
                } else {
                    a * v.exp()
                }
            }
        }
    }
}

/// sqrt(2 / pi), of the tanh approximation of GELU.
const GELU_C: f32 = 0.797_884_6;

/// ONNX Shape: the dimensions of `a` from `start` to `end` (negative: from the end).
fn shape_of(a: &Value, start: i64, end: Option<i64>) -> Value {
    let s: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    let r = s.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let (lo, hi) = (clamp(start), clamp(end.unwrap_or(r)));
    Value::I(ArrayD::from_shape_vec(IxDyn(&[hi.saturating_sub(lo)]), s[lo..hi.max(lo)].to_vec()).expect("1-D"))
}

/// ONNX Expand: `a` broadcast with `shape`.
fn expand(a: &Value, shape: &[i64]) -> Result<Value, String> {
    let to: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    let to = broadcast_shape(a.shape(), &to)?;
    let grow = |t: &ArrayD<f32>| Ok(t.broadcast(IxDyn(&to)).expect("checked").to_owned());
    let grow_i = |t: &ArrayD<i64>| Ok(t.broadcast(IxDyn(&to)).expect("checked").to_owned());
    map_value(a, grow, grow_i)
}

fn opt_floats<'a>(x: &[Option<&'a Value>], i: usize) -> Result<Option<&'a ArrayD<f32>>, String> {
    x.get(i).copied().flatten().map(Value::floats).transpose()
}

fn map_value(
    v: &Value,
    f: impl FnOnce(&ArrayD<f32>) -> Result<ArrayD<f32>, String>,
    i: impl FnOnce(&ArrayD<i64>) -> Result<ArrayD<i64>, String>,
) -> Result<Value, String> {
    Ok(match v {
        Value::F(a) => Value::F(f(a)?),
        Value::I(a) => Value::I(i(a)?),
    })
}

fn binary(op: Binary, a: &Value, b: &Value) -> Result<Value, String> {
    match (a, b) {
        (Value::F(a), Value::F(b)) => Ok(Value::F(match op {
            Binary::Add => zip_with(a, b, |x, y| x + y)?,
            Binary::Sub => zip_with(a, b, |x, y| x - y)?,
            Binary::Mul => zip_with(a, b, |x, y| x * y)?,
            Binary::Div => zip_with(a, b, |x, y| x / y)?,
            Binary::Pow => zip_with(a, b, f32::powf)?,
        })),
        (Value::I(a), Value::I(b)) => Ok(Value::I(match op {
            Binary::Add => zip_with(a, b, |x, y| x + y)?,
            Binary::Sub => zip_with(a, b, |x, y| x - y)?,
            Binary::Mul => zip_with(a, b, |x, y| x * y)?,
            Binary::Div => zip_with(a, b, |x, y| if y == 0 { 0 } else { x / y })?,
            Binary::Pow => zip_with(a, b, |x, y| x.pow(y.max(0) as u32))?,
        })),
        _ => Err(format!("{op:?} of a float and an integer tensor")),
    }
}

/// The contracted axis of `x` moved last and the rest flattened: M x C.
fn rows(x: &ArrayD<f32>, ax: usize) -> Array2<f32> {
    let mut v = x.view();
    v.swap_axes(ax, x.ndim() - 1);
    let c = x.shape()[ax];
    let m = x.len() / c.max(1);
    v.as_standard_layout().into_owned().into_shape_with_order((m, c)).expect("m x c")
}

/// Undoes [`rows`]: M x K back to `shape` with the contracted axis of length K.
fn unrows(r: Array2<f32>, shape: &[usize], ax: usize) -> ArrayD<f32> {
    let mut swapped = shape.to_vec();
    swapped.swap(ax, shape.len() - 1);
    let mut a = r.into_shape_with_order(IxDyn(&swapped)).expect("shape");
    a.swap_axes(ax, shape.len() - 1);
    a.as_standard_layout().into_owned()
}

/// The one vector a tensor holds when every axis but `ax` has length 1.
fn as_vector(x: &ArrayD<f32>, ax: usize) -> Option<ArrayView1<'_, f32>> {
    let single = x.shape().iter().enumerate().all(|(i, &d)| i == ax || d == 1);
    single.then(|| x.view().into_shape_with_order(x.shape()[ax]).ok()).flatten()
}

fn dense(x: &ArrayD<f32>, w: &Array2<f32>, b: &Array1<f32>, axis: i64) -> Result<ArrayD<f32>, String> {
    let ax = self::axis(axis, x.ndim())?;
    if x.shape()[ax] != w.ncols() {
        return Err(format!("a dense layer of {} inputs reads a tensor of shape {:?}", w.ncols(), x.shape()));
    }
    let mut out_shape = x.shape().to_vec();
    out_shape[ax] = w.nrows();
    if let Some(v) = as_vector(x, ax) {
        // The usual case, one pooled vector: W v + b, as a plain matrix-vector product.
        let y = w.dot(&v) + b;
        return Ok(y.into_shape_with_order(IxDyn(&out_shape)).expect("shape"));
    }
    let y = rows(x, ax).dot(&w.t()) + b;
    Ok(unrows(y, &out_shape, ax))
}

fn dense_back(gy: &ArrayD<f32>, w: &Array2<f32>, axis: i64, x_shape: &[usize]) -> Result<ArrayD<f32>, String> {
    let ax = self::axis(axis, gy.ndim())?;
    if let Some(g) = as_vector(gy, ax) {
        // The gradient arriving at the last dense layer is one-hot (d logit_k): W^T gy is
        // then row k of W. Summing only the rows where gy is non-zero skips terms that are
        // exact zeros (for finite W) and reads a few contiguous rows instead of all K x C
        // weights column-wise: Grad-CAM on a 1000-class head went from 7.8 to well under
        // 1 ms per image.
        let nonzero: Vec<usize> = (0..g.len()).filter(|&i| g[i] != 0.0).collect();
        let gx = if nonzero.len() * 8 <= g.len() {
            let mut out = Array1::zeros(w.ncols());
            for i in nonzero {
                out.scaled_add(g[i], &w.row(i));
            }
            out
        } else {
            w.t().dot(&g)
        };
        return Ok(gx.into_shape_with_order(IxDyn(x_shape)).expect("shape"));
    }
    Ok(unrows(rows(gy, ax).dot(w), x_shape, ax))
}

/// A per-channel vector (axis 1) shaped to broadcast against `a`.
fn along_channels(a: &ArrayD<f32>, v: &Array1<f32>) -> Result<ArrayD<f32>, String> {
    if a.ndim() < 2 || a.shape()[1] != v.len() {
        return Err(format!("batch normalisation of {} channels reads a tensor of shape {:?}", v.len(), a.shape()));
    }
    let mut shape = vec![1; a.ndim()];
    shape[1] = v.len();
    Ok(v.clone().into_shape_with_order(IxDyn(&shape)).expect("shape"))
}

/// LayerNormalization's output and, per row, its mean and reciprocal standard deviation.
fn layer_norm(
    x: &ArrayD<f32>,
    scale: Option<&ArrayD<f32>>,
    bias: Option<&ArrayD<f32>>,
    axis: i64,
    eps: f32,
) -> Result<(ArrayD<f32>, RowStats), String> {
    let ax = self::axis(axis, x.ndim())?;
    let n: usize = x.shape()[ax..].iter().product();
    let flat = reshaped(x, &[x.len() / n.max(1), n])?;
    let mut y = flat.clone();
    let mut stats = Vec::new();
    for (mut out, row) in y.outer_iter_mut().zip(flat.outer_iter()) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        out.iter_mut().zip(row).for_each(|(o, &v)| *o = ((v as f64 - mean) * rstd) as f32);
        stats.push((mean, rstd));
    }
    let mut y = reshaped(&y, x.shape())?;
    if let Some(s) = scale {
        y = zip_with(&y, s, |a, b| a * b)?;
    }
    if let Some(b) = bias {
        y = zip_with(&y, b, |a, b| a + b)?;
    }
    Ok((y, stats))
}

fn layer_norm_back(
    x: &ArrayD<f32>,
    scale: Option<&ArrayD<f32>>,
    gy: &ArrayD<f32>,
    axis: i64,
    eps: f32,
) -> Result<ArrayD<f32>, String> {
    let ax = self::axis(axis, x.ndim())?;
    let n: usize = x.shape()[ax..].iter().product();
    let (_, stats) = layer_norm(x, None, None, axis, eps)?;
    // d xhat = gy * scale; dx = rstd (d xhat - mean(d xhat) - xhat mean(d xhat xhat)).
    let dxhat = match scale {
        Some(s) => unbroadcast_to(zip_with(gy, s, |g, s| g * s)?, x.shape())?,
        None => gy.clone(),
    };
    let m = x.len() / n.max(1);
    let (xf, gf) = (
        reshaped(x, &[m, n])?.into_dimensionality::<ndarray::Ix2>().expect("2-D"),
        reshaped(&dxhat, &[m, n])?.into_dimensionality::<ndarray::Ix2>().expect("2-D"),
    );
    let mut dx = Array2::<f32>::zeros((m, n));
    for (r, &(mean, rstd)) in stats.iter().enumerate() {
        let xhat: Vec<f64> = xf.row(r).iter().map(|&v| (v as f64 - mean) * rstd).collect();
        let g: Vec<f64> = gf.row(r).iter().map(|&v| v as f64).collect();
        let mg = g.iter().sum::<f64>() / n as f64;
        let mgx = g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / n as f64;
        for j in 0..n {
            dx[[r, j]] = (rstd * (g[j] - mg - xhat[j] * mgx)) as f32;
        }
    }
    reshaped(&dx.into_dyn(), x.shape())
}

/// `g` of a broadcast product back to the shape it was computed for (same rank or less).
fn unbroadcast_to(g: ArrayD<f32>, shape: &[usize]) -> Result<ArrayD<f32>, String> {
    if g.shape() == shape {
        Ok(g)
    } else {
        Ok(unbroadcast(g, shape))
    }
}

fn reduce_axes(axes: Option<Vec<i64>>, rank: usize) -> Result<Vec<usize>, String> {
    let mut out: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => a.iter().map(|&v| axis(v, rank)).collect::<Result<_, _>>()?,
        _ => (0..rank).collect(),
    };
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn reduce(a: &ArrayD<f32>, axes: &[usize], mean: bool, keepdims: bool) -> ArrayD<f32> {
    let n: usize = axes.iter().map(|&ax| a.shape()[ax]).product();
    let mut r = a.mapv(|v| v as f64);
    for &ax in axes.iter().rev() {
        r = r.sum_axis(Axis(ax));
        if keepdims {
            r = r.insert_axis(Axis(ax));
        }
    }
    r.mapv(|s| if mean { (s / n.max(1) as f64) as f32 } else { s as f32 })
}

fn permutation(perm: &Option<Vec<usize>>, rank: usize) -> Result<Vec<usize>, String> {
    let p = perm.clone().unwrap_or_else(|| (0..rank).rev().collect());
    let mut sorted = p.clone();
    sorted.sort_unstable();
    if sorted != (0..rank).collect::<Vec<_>>() {
        return Err(format!("Transpose permutation {p:?} does not fit rank {rank}"));
    }
    Ok(p)
}

fn permuted<T: Clone>(a: &ArrayD<T>, p: &[usize]) -> ArrayD<T> {
    a.view().permuted_axes(IxDyn(p)).as_standard_layout().into_owned()
}

/// Gather indices, negative ones counted from the end, checked against the axis length.
fn indices(v: &Value, n: usize) -> Result<ArrayD<usize>, String> {
    let shape = v.shape().to_vec();
    let idx: Vec<usize> = v
        .ints()
        .into_iter()
        .map(|i| {
            let j = if i < 0 { i + n as i64 } else { i };
            if (0..n as i64).contains(&j) {
                Ok(j as usize)
            } else {
                Err(format!("Gather index {i} is out of range for an axis of {n}"))
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), idx).expect("shape"))
}

fn gather<T: Clone>(a: &ArrayD<T>, idx: &ArrayD<usize>, ax: usize) -> Result<ArrayD<T>, String> {
    let flat: Vec<usize> = idx.iter().copied().collect();
    let picked = a.select(Axis(ax), &flat);
    let mut shape = a.shape()[..ax].to_vec();
    shape.extend_from_slice(idx.shape());
    shape.extend_from_slice(&a.shape()[ax + 1..]);
    reshaped(&picked, &shape)
}

/// The gradient of a Gather: each picked slice's gradient added back where it came from.
fn scatter(gy: &ArrayD<f32>, idx: &ArrayD<usize>, ax: usize, x_shape: &[usize]) -> ArrayD<f32> {
    let mut flat_shape = x_shape.to_vec();
    flat_shape[ax] = idx.len();
    let g = reshaped(gy, &flat_shape).expect("gather gradient shape");
    let mut out = ArrayD::zeros(IxDyn(x_shape));
    for (j, &i) in idx.iter().enumerate() {
        let mut dst = out.index_axis_mut(Axis(ax), i);
        dst += &g.index_axis(Axis(ax), j);
    }
    out
}

fn slice_of(r: &(usize, usize, usize)) -> Slice {
    Slice::new(r.0 as isize, Some(r.1 as isize), r.2 as isize)
}

fn sliced<T: Clone>(a: &ArrayD<T>, ranges: &[(usize, usize, usize)]) -> ArrayD<T> {
    a.slice_each_axis(|d| slice_of(&ranges[d.axis.index()])).to_owned()
}

fn concat(x: &[Option<&Value>], axis: i64) -> Result<Value, String> {
    let parts: Vec<&Value> = x.iter().flatten().copied().collect();
    let first = parts.first().ok_or("Concat of nothing")?;
    let ax = self::axis(axis, first.shape().len())?;
    let join = |e: ndarray::ShapeError| format!("cannot concatenate: {e}");
    Ok(match first {
        Value::F(_) => {
            let views: Vec<_> = parts.iter().map(|p| p.floats().map(|a| a.view())).collect::<Result<_, _>>()?;
            Value::F(ndarray::concatenate(Axis(ax), &views).map_err(join)?)
        }
        Value::I(_) => {
            let views: Vec<_> = parts
                .iter()
                .map(|p| match p {
                    Value::I(a) => Ok(a.view()),
                    Value::F(_) => Err("Concat of float and integer tensors".to_string()),
                })
                .collect::<Result<_, _>>()?;
            Value::I(ndarray::concatenate(Axis(ax), &views).map_err(join)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr1;

    fn f(v: &[f32], shape: &[usize]) -> Value {
        Value::F(ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).unwrap())
    }

    /// Central differences of `op` at `x` (input `i`) against its vjp, for every element.
    fn check_gradient(op: &HeadOp, inputs: &[Value], i: usize) {
        let refs: Vec<Option<&Value>> = inputs.iter().map(Some).collect();
        let y = op.eval(&refs).unwrap();
        let yf = y.floats().unwrap();
        // A fixed, uneven output gradient.
        let gy =
            ArrayD::from_shape_vec(yf.raw_dim(), (0..yf.len()).map(|i| 0.3 + 0.17 * (i % 5) as f32).collect()).unwrap();
        let got = op.vjp(&refs, &y, &gy, i).unwrap();
        let x = inputs[i].floats().unwrap();
        for k in 0..x.len() {
            let h = 1e-3f32;
            let bump = |d: f32| {
                let mut xs = inputs.to_vec();
                let mut a = x.clone();
                a.as_slice_mut().unwrap()[k] += d;
                xs[i] = Value::F(a);
                let r: Vec<Option<&Value>> = xs.iter().map(Some).collect();
                let out = op.eval(&r).unwrap();
                (out.floats().unwrap() * &gy).sum()
            };
            let fd = (bump(h) - bump(-h)) / (2.0 * h);
            let g = got.as_slice().unwrap()[k];
            assert!((fd - g).abs() < 2e-3 * fd.abs().max(1.0), "{op:?} input {i} element {k}: {fd} vs {g}");
        }
    }

    #[test]
    fn every_op_gradient_matches_finite_differences() {
        let x = f(&[0.4, -0.7, 1.3, 0.2, -2.1, 3.5], &[1, 6]);
        for u in [
            Unary::Relu,
            Unary::LeakyRelu(0.1),
            Unary::Clip(-0.5, 1.0),
            Unary::Sigmoid,
            Unary::Tanh,
            Unary::HardSigmoid(1.0 / 6.0, 0.5),
            Unary::HardSwish,
            Unary::Erf,
            Unary::Gelu(false),
            Unary::Gelu(true),
            Unary::Neg,
            Unary::Abs,
            Unary::Softplus,
            Unary::Elu(1.0),
        ] {
            check_gradient(&HeadOp::Unary(u), std::slice::from_ref(&x), 0);
        }
        let pos = f(&[0.4, 0.7, 1.3, 0.2, 2.1, 3.5], &[1, 6]);
        for u in [Unary::Sqrt, Unary::Exp, Unary::Log, Unary::Reciprocal] {
            check_gradient(&HeadOp::Unary(u), std::slice::from_ref(&pos), 0);
        }
        let c = f(&[2.0, -1.0, 0.5, 1.5, 3.0, -0.25], &[6]);
        for op in [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div] {
            check_gradient(&HeadOp::Binary(op), &[x.clone(), c.clone()], 0);
            check_gradient(&HeadOp::Binary(op), &[x.clone(), c.clone()], 1);
        }
        check_gradient(&HeadOp::Binary(Binary::Pow), &[pos.clone(), f(&[2.0], &[1])], 0);
        // x * hardsigmoid(x) reads x twice: each read is one operand of the Mul.
        check_gradient(&HeadOp::Binary(Binary::Mul), &[x.clone(), x.clone()], 1);
        let scale = f(&[1.0, 2.0, 0.5, -1.0, 1.5, 0.3], &[6]);
        let bias = f(&[0.1, 0.0, -0.2, 0.3, 0.0, 1.0], &[6]);
        check_gradient(&HeadOp::LayerNorm { axis: -1, eps: 1e-6 }, &[x.clone(), scale, bias], 0);
        let w = Array2::from_shape_fn((3, 6), |(i, j)| (i as f32 - 1.0) * 0.3 + j as f32 * 0.1);
        check_gradient(
            &HeadOp::Dense { w: w.clone(), b: arr1(&[0.1, 0.2, 0.3]), axis: -1 },
            std::slice::from_ref(&x),
            0,
        );
        let x4 = f(&[0.4, -0.7, 1.3, 0.2, -2.1, 3.5], &[1, 6, 1, 1]);
        check_gradient(&HeadOp::Dense { w, b: arr1(&[0.1, 0.2, 0.3]), axis: 1 }, std::slice::from_ref(&x4), 0);
        check_gradient(
            &HeadOp::Reduce { mean: true, axes: Some(vec![2, 3]), keepdims: false },
            std::slice::from_ref(&x4),
            0,
        );
        check_gradient(&HeadOp::Transpose { perm: Some(vec![0, 2, 3, 1]) }, &[x4], 0);
        let idx = Value::I(ArrayD::from_shape_vec(IxDyn(&[3]), vec![5, 0, 5]).unwrap());
        check_gradient(&HeadOp::Gather { axis: 1 }, &[x.clone(), idx], 0);
        let two = f(&[1.0, 2.0], &[1, 2]);
        check_gradient(&HeadOp::Concat { axis: 1 }, &[two.clone(), x.clone()], 1);
        let (st, en) = (Value::I(arr1(&[1]).into_dyn()), Value::I(arr1(&[5]).into_dyn()));
        let (ax, sp) = (Value::I(arr1(&[1]).into_dyn()), Value::I(arr1(&[2]).into_dyn()));
        check_gradient(&HeadOp::Slice { attrs: None }, &[x, st, en, ax, sp], 0);
    }

    #[test]
    fn hardswish_and_gelu_by_hand() {
        // Hardswish(1) = 1 * (1/6 + 1/2) = 2/3; Gelu(1) = 0.5 (1 + erf(1/sqrt 2)) = 0.841345.
        assert!((Unary::HardSwish.apply(1.0) - 2.0 / 3.0).abs() < 1e-7);
        assert!((Unary::Gelu(false).apply(1.0) - 0.841_344_7).abs() < 1e-6);
        assert_eq!(Unary::HardSwish.derivative(-3.5), 0.0);
        assert_eq!(Unary::HardSwish.derivative(4.0), 1.0);
    }

    #[test]
    fn shape_plumbing_computes_reshape_targets() {
        // Reshape(x, Concat(Gather(Shape(x), 0), [-1])): what exporters write for flatten.
        let x = f(&[1.0, 2.0, 3.0, 4.0], &[1, 4, 1, 1]);
        let s = HeadOp::Shape { start: 0, end: None }.eval(&[Some(&x)]).unwrap();
        let zero = Value::I(ArrayD::from_elem(IxDyn(&[]), 0));
        let n = HeadOp::Gather { axis: 0 }.eval(&[Some(&s), Some(&zero)]).unwrap();
        let n = HeadOp::Unsqueeze { axes: Some(vec![0]) }.eval(&[Some(&n)]).unwrap();
        let rest = Value::I(arr1(&[-1]).into_dyn());
        let target = HeadOp::Concat { axis: 0 }.eval(&[Some(&n), Some(&rest)]).unwrap();
        assert_eq!(target, Value::I(arr1(&[1, -1]).into_dyn()));
        let y = HeadOp::Reshape { allowzero: false }.eval(&[Some(&x), Some(&target)]).unwrap();
        assert_eq!(y.shape(), &[1, 4]);
    }
}
