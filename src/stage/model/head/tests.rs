//! Head programs built by hand, checked against hand computations.

use ndarray::{array, Array1, Array2, ArrayD, IxDyn};

use super::*;

/// g (2) -> Dense 3 -> Relu -> Dense 2, on a pooled vector of shape [1, C].
fn mlp() -> HeadProgram {
    let dense = |w: Array2<f32>, b: Array1<f32>| HeadOp::Dense { w, b, axis: -1 };
    HeadProgram {
        nodes: vec![
            HeadNode {
                op: dense(array![[1.0, -1.0], [0.5, 2.0], [-1.0, 0.0]], array![0.0, -1.0, 0.5]),
                inputs: vec![Some(0)],
                output: 1,
                name: "fc1".into(),
            },
            HeadNode { op: HeadOp::Unary(Unary::Relu), inputs: vec![Some(1)], output: 2, name: "relu".into() },
            HeadNode {
                op: dense(array![[1.0, 1.0, 1.0], [2.0, -1.0, 0.0]], array![0.1, 0.2]),
                inputs: vec![Some(2)],
                output: 3,
                name: "fc2".into(),
            },
        ],
        constants: vec![],
        values: 4,
        input: 0,
        output: 3,
        input_shape: vec![Some(1), None],
        live: vec![true; 4],
        shape_inputs: vec![],
    }
}

#[test]
fn forward_and_gradient_by_hand() {
    let p = mlp();
    let g = array![2.0, 1.0];
    // z = [1, 2, -1.5] -> relu [1, 2, 0] -> y = [3.1, 0.2].
    let t = p.trace(&g).unwrap();
    assert_eq!(t.output, array![3.1, 0.2]);
    // dy0/dg = W1^T (relu'(z) * W2[0]) = W1^T [1, 1, 0] = [1.5, 1].
    assert_eq!(p.gradient(&t, 0).unwrap(), array![1.5, 1.0]);
    // dy1/dg = W1^T [2, -1, 0] = [1.5, -4].
    assert_eq!(p.gradient(&t, 1).unwrap(), array![1.5, -4.0]);
}

#[test]
fn relu_gradient_at_zero_is_zero() {
    let mut p = mlp();
    p.nodes.truncate(2);
    p.output = 2;
    p.values = 3;
    // z = W1 [0.5, 0.5] + b = [0, 0.25, -0.5]: ReLU'(0) = 0 for the first unit.
    let t = p.trace(&array![0.5, 0.5]).unwrap();
    assert_eq!(p.gradient(&t, 0).unwrap(), array![0.0, 0.0]);
}

#[test]
fn ablation_shortcut_equals_rerunning_the_head() {
    let p = mlp();
    assert_eq!(p.first_dense(), Some(0));
    let g = array![2.0, 1.0];
    for k in 0..2 {
        let fast = p.ablated_logits(&g, k).unwrap();
        for c in 0..2 {
            let mut gc = g.clone();
            gc[c] = 0.0;
            assert!((fast[c] - p.forward(&gc).unwrap()[k]).abs() < 1e-6);
        }
    }
}

/// x * HardSigmoid(x) -> Dense: a value read twice, the gradients of both reads summed.
#[test]
fn a_value_read_twice_gets_both_gradients() {
    let hs = HeadOp::Unary(Unary::HardSigmoid(1.0 / 6.0, 0.5));
    let p = HeadProgram {
        nodes: vec![
            HeadNode { op: hs, inputs: vec![Some(0)], output: 1, name: "hs".into() },
            HeadNode { op: HeadOp::Binary(Binary::Mul), inputs: vec![Some(0), Some(1)], output: 2, name: "mul".into() },
            HeadNode {
                op: HeadOp::Dense { w: array![[1.0, 2.0]], b: array![0.0], axis: 1 },
                inputs: vec![Some(2)],
                output: 3,
                name: "conv".into(),
            },
        ],
        constants: vec![],
        values: 4,
        input: 0,
        output: 3,
        input_shape: vec![Some(1), None, Some(1), Some(1)],
        live: vec![true; 4],
        shape_inputs: vec![],
    };
    let g = array![1.0, -1.0];
    let t = p.trace(&g).unwrap();
    // hardswish(1) = 2/3, hardswish(-1) = -1/3: y = 2/3 - 2/3 = 0.
    assert!(t.output[0].abs() < 1e-6);
    // d hardswish / dx = x / 3 + 1/2: [5/6, 1/6], times W = [1, 2].
    let d = p.gradient(&t, 0).unwrap();
    assert!((d[0] - 5.0 / 6.0).abs() < 1e-6 && (d[1] - 2.0 / 6.0).abs() < 1e-6, "{d}");
    // Not affine, so no shortcut for ablation: every channel reruns the head.
    assert_eq!(p.first_dense(), None);
}

#[test]
fn an_affine_head_gives_its_own_weights() {
    // Dense (K=3, C=2) then a constant bias Add, through a Reshape to [1, C].
    let w = array![[0.3f32, -0.7], [0.9, 0.1], [-0.2, 0.5]];
    let shape = Value::I(array![1, -1].into_dyn());
    let bias = Value::F(ArrayD::from_shape_vec(IxDyn(&[3]), vec![0.1, -0.2, 0.05]).unwrap());
    let p = HeadProgram {
        nodes: vec![
            HeadNode {
                op: HeadOp::Reshape { allowzero: false },
                inputs: vec![Some(0), Some(1)],
                output: 2,
                name: "r".into(),
            },
            HeadNode {
                op: HeadOp::Dense { w: w.clone(), b: Array1::zeros(3), axis: -1 },
                inputs: vec![Some(2)],
                output: 3,
                name: "mm".into(),
            },
            HeadNode { op: HeadOp::Binary(Binary::Add), inputs: vec![Some(3), Some(4)], output: 5, name: "add".into() },
        ],
        constants: vec![(1, shape), (4, bias)],
        values: 6,
        input: 0,
        output: 5,
        input_shape: vec![Some(1), None, Some(1), Some(1)],
        live: vec![true, false, true, true, false, true],
        shape_inputs: vec![],
    };
    let lin = p.linear(2).unwrap();
    assert_eq!(lin.weight, w);
    assert_eq!(lin.bias, array![0.1, -0.2, 0.05]);
}
