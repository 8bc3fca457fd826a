//! The values a head program computes: small float tensors on the data path, and the
//! integer tensors exporters compute shapes with (`Shape -> Gather -> Concat -> Reshape`).
//!
//! Heads are tiny (a pooled vector and a few dense layers), so values are plain owned
//! `ndarray` arrays in standard layout, and the helpers here follow ONNX's semantics
//! (numpy broadcasting, negative axes counted from the end) rather than speed.

use ndarray::{ArrayD, Axis, IxDyn, Zip};

/// One tensor of the head program.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    F(ArrayD<f32>),
    I(ArrayD<i64>),
}

impl Value {
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::F(a) => a.shape(),
            Value::I(a) => a.shape(),
        }
    }

    pub fn floats(&self) -> Result<&ArrayD<f32>, String> {
        match self {
            Value::F(a) => Ok(a),
            Value::I(_) => Err("expected a float tensor, found an integer one".into()),
        }
    }

    /// The values as integers (shapes, axes, indices), whichever the element type.
    pub fn ints(&self) -> Vec<i64> {
        match self {
            Value::F(a) => a.iter().map(|&v| v as i64).collect(),
            Value::I(a) => a.iter().copied().collect(),
        }
    }
}

/// An axis counted from the end when negative, checked against the rank.
pub fn axis(a: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let x = if a < 0 { a + r } else { a };
    if (0..r.max(1)).contains(&x) {
        Ok(x as usize)
    } else {
        Err(format!("axis {a} is out of range for rank {rank}"))
    }
}

/// The shape two shapes broadcast to, numpy's way.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let n = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| if i + s.len() >= n { s[i + s.len() - n] } else { 1 };
    (0..n)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            (x, y) => Err(format!("cannot broadcast shapes {a:?} and {b:?} ({x} against {y})")),
        })
        .collect()
}

/// `f(a, b)` element by element after broadcasting both to their common shape.
pub fn zip_with<T: Copy, U: Copy>(a: &ArrayD<T>, b: &ArrayD<T>, f: impl Fn(T, T) -> U) -> Result<ArrayD<U>, String> {
    let shape = broadcast_shape(a.shape(), b.shape())?;
    let (av, bv) = (a.broadcast(IxDyn(&shape)).expect("checked"), b.broadcast(IxDyn(&shape)).expect("checked"));
    Ok(Zip::from(&av).and(&bv).map_collect(|&x, &y| f(x, y)))
}

/// The gradient of a broadcast operand: `g` summed over the axes the operand was
/// stretched along, back to `shape`.
pub fn unbroadcast(mut g: ArrayD<f32>, shape: &[usize]) -> ArrayD<f32> {
    while g.ndim() > shape.len() {
        g = g.sum_axis(Axis(0));
    }
    for (ax, &d) in shape.iter().enumerate() {
        if d == 1 && g.shape()[ax] != 1 {
            g = g.sum_axis(Axis(ax)).insert_axis(Axis(ax));
        }
    }
    g
}

/// `a` in a new shape, element order kept.
pub fn reshaped<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>, String> {
    a.as_standard_layout()
        .into_owned()
        .into_shape_with_order(IxDyn(shape))
        .map_err(|_| format!("cannot reshape {:?} to {shape:?}", a.shape()))
}

/// ONNX Reshape's target: `0` copies the input's dimension (unless `allowzero`), one
/// `-1` takes what is left.
pub fn reshape_target(input: &[usize], spec: &[i64], allowzero: bool) -> Result<Vec<usize>, String> {
    let total: usize = input.iter().product();
    let mut out: Vec<i64> = spec
        .iter()
        .enumerate()
        .map(|(i, &d)| if d == 0 && !allowzero { input.get(i).map(|&x| x as i64).unwrap_or(0) } else { d })
        .collect();
    let known: i64 = out.iter().filter(|&&d| d >= 0).product();
    match out.iter().filter(|&&d| d == -1).count() {
        0 => {}
        1 if known > 0 => {
            let i = out.iter().position(|&d| d == -1).expect("one");
            out[i] = total as i64 / known;
        }
        _ => return Err(format!("reshape of {input:?} to {spec:?} is ambiguous")),
    }
    let out: Vec<usize> = out.into_iter().map(|d| d.max(0) as usize).collect();
    if out.iter().product::<usize>() != total {
        return Err(format!("cannot reshape {input:?} ({total} values) to {spec:?}"));
    }
    Ok(out)
}

/// The `[start, end)` and step of an ONNX Slice along an axis of length `n`, clamped.
pub fn slice_range(n: usize, start: i64, end: i64, step: i64) -> Result<(usize, usize, usize), String> {
    if step <= 0 {
        return Err(format!("Slice with step {step}: only positive steps are supported"));
    }
    let n = n as i64;
    let clamp = |v: i64| if v < 0 { (v + n).max(0) } else { v.min(n) };
    let (s, e) = (clamp(start), clamp(end));
    Ok((s as usize, e.max(s) as usize, step as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2};

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shape(&[1, 4], &[4]).unwrap(), vec![1, 4]);
        assert_eq!(broadcast_shape(&[2, 1, 3], &[4, 1]).unwrap(), vec![2, 4, 3]);
        assert!(broadcast_shape(&[2, 3], &[4]).is_err());
        let a = arr2(&[[1.0f32], [2.0]]).into_dyn();
        let b = arr1(&[10.0f32, 20.0, 30.0]).into_dyn();
        let s = zip_with(&a, &b, |x, y| x + y).unwrap();
        assert_eq!(s, arr2(&[[11.0, 21.0, 31.0], [12.0, 22.0, 32.0]]).into_dyn());
        assert_eq!(unbroadcast(s.clone(), &[2, 1]), arr2(&[[63.0], [66.0]]).into_dyn());
        assert_eq!(unbroadcast(s, &[3]), arr1(&[23.0, 43.0, 63.0]).into_dyn());
    }

    #[test]
    fn reshape_targets_follow_onnx() {
        assert_eq!(reshape_target(&[1, 6, 1, 1], &[0, -1], false).unwrap(), vec![1, 6]);
        assert_eq!(reshape_target(&[1, 6, 1, 1], &[-1, 3], false).unwrap(), vec![2, 3]);
        assert!(reshape_target(&[1, 6], &[4, -1], false).is_err());
        assert_eq!(slice_range(10, -3, i64::MAX, 1).unwrap(), (7, 10, 1));
        assert_eq!(slice_range(10, 2, -1, 2).unwrap(), (2, 9, 2));
    }
}
