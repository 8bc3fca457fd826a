//! What exporters write that tract or the cut cannot take as it is, rewritten once, before
//! anything reads the graph.
//!
//! Each rewrite keeps what the network computes and only changes how the file says it:
//!
//! - **Graph inputs no node reads.** Keras 3's `model.export(format="onnx")` lists the
//!   constants of its normalisation layers as graph inputs that nothing reads; the image
//!   is the one input the graph uses. They are dropped (tract would otherwise expect a
//!   tensor for each).
//! - **ConstantOfShape without a value.** ONNX's default is a float32 zero; tract 0.23
//!   takes a float64 one and then cannot reconcile it with the float32 the graph declares
//!   (PyTorch's torch.export exporter writes such nodes in Swin-T's attention masks). The
//!   default is written out.
//! - **Batch normalisations of constants.** Weight-standardised convolutions (timm's
//!   NF-ResNets, `ScaledStdConv2d`) normalise their own weights with a batch norm, in
//!   training mode (TorchScript exporter) or with statistics computed by ReduceMean
//!   (torch.export exporter). Its input and statistics are constants, so its output is
//!   one too: it is computed here and stored as an initializer, which tract, which
//!   refuses batch norms in training mode or with computed statistics, then folds like
//!   any weight.

use std::collections::HashSet;

use ndarray::{ArrayD, Axis};
use tract_onnx::pb::{attribute_proto, tensor_proto, AttributeProto, ModelProto, TensorProto};

use super::graph::{attr_f, attr_i, attr_t, OnnxGraph};
use super::head::{constant_value, Value};

/// The model with the rewrites applied.
pub fn rewrite(g: &OnnxGraph) -> Result<ModelProto, String> {
    let mut proto = g.proto.clone();
    drop_unread_inputs(g, &mut proto);
    default_constant_of_shape(&mut proto);
    fold_constant_batch_norms(g, &mut proto)?;
    Ok(proto)
}

/// Removes the graph inputs that no node reads and that are not outputs.
fn drop_unread_inputs(g: &OnnxGraph, proto: &mut ModelProto) {
    let outputs: Vec<&str> = g.outputs().iter().map(|o| o.name.as_str()).collect();
    let graph = proto.graph.as_mut().expect("a graph");
    graph.input.retain(|i| !g.consumers(&i.name).is_empty() || outputs.contains(&i.name.as_str()));
}

fn default_constant_of_shape(proto: &mut ModelProto) {
    for n in proto.graph.as_mut().expect("a graph").node.iter_mut() {
        if n.op_type == "ConstantOfShape" && attr_t(n, "value").is_none() {
            let zero = TensorProto {
                dims: vec![1],
                data_type: tensor_proto::DataType::Float as i32,
                float_data: vec![0.0],
                ..Default::default()
            };
            n.attribute.push(AttributeProto {
                name: "value".into(),
                r#type: attribute_proto::AttributeType::Tensor as i32,
                t: Some(zero),
                ..Default::default()
            });
        }
    }
}

/// Replaces every BatchNormalization whose inputs are all constants by its output, as an
/// initializer.
fn fold_constant_batch_norms(g: &OnnxGraph, proto: &mut ModelProto) -> Result<(), String> {
    let constant = constant_tensors(g);
    let mut folded = Vec::new();
    for (i, n) in g.nodes().iter().enumerate() {
        let all_constant = n.input.iter().filter(|t| !t.is_empty()).all(|t| constant.contains(t.as_str()));
        let extra_outputs_read = n.output.iter().skip(1).any(|o| !o.is_empty() && !g.consumers(o).is_empty());
        if n.op_type != "BatchNormalization" || !all_constant || extra_outputs_read {
            continue;
        }
        let value = |k: usize| -> Result<ArrayD<f32>, String> {
            match constant_value(g, &n.input[k]).map_err(|e| format!("{}: {e}", g.describe(i)))? {
                Value::F(a) => Ok(a),
                Value::I(_) => Err(format!("{}: integer input {k}", g.describe(i))),
            }
        };
        let training = attr_i(n, "training_mode", 0) != 0;
        let y = batch_norm(
            &value(0)?,
            &value(1)?,
            &value(2)?,
            &value(3)?,
            &value(4)?,
            attr_f(n, "epsilon", 1e-5),
            training,
        )
        .map_err(|e| format!("{}: {e}", g.describe(i)))?;
        folded.push((i, initializer(&n.output[0], &y)));
    }
    let graph = proto.graph.as_mut().expect("a graph");
    let gone: HashSet<usize> = folded.iter().map(|(i, _)| *i).collect();
    graph.initializer.extend(folded.into_iter().map(|(_, t)| t));
    let mut index = 0;
    graph.node.retain(|_| {
        index += 1;
        !gone.contains(&(index - 1))
    });
    Ok(())
}

/// The tensors computed from initializers and Constant nodes alone.
fn constant_tensors(g: &OnnxGraph) -> HashSet<&str> {
    let mut constant: HashSet<&str> = g.graph().initializer.iter().map(|t| t.name.as_str()).collect();
    for n in g.nodes() {
        let deterministic = !n.op_type.starts_with("Random") && n.op_type != "Multinomial";
        if deterministic && n.input.iter().filter(|t| !t.is_empty()).all(|t| constant.contains(t.as_str())) {
            constant.extend(n.output.iter().filter(|o| !o.is_empty()).map(String::as_str));
        }
    }
    constant
}

/// ONNX BatchNormalization along axis 1: with the given statistics, or in training mode
/// with the input's own (mean and population variance over every other axis).
fn batch_norm(
    x: &ArrayD<f32>,
    scale: &ArrayD<f32>,
    bias: &ArrayD<f32>,
    mean: &ArrayD<f32>,
    var: &ArrayD<f32>,
    eps: f32,
    training: bool,
) -> Result<ArrayD<f32>, String> {
    if x.ndim() < 2 {
        return Err(format!("a batch norm of a tensor of shape {:?}", x.shape()));
    }
    let c = x.shape()[1];
    let per_channel = |a: &ArrayD<f32>, what: &str| -> Result<Vec<f64>, String> {
        match a.len() {
            n if n == c => Ok(a.iter().map(|&v| v as f64).collect()),
            _ => Err(format!("{what} has {} values for {c} channels", a.len())),
        }
    };
    let (scale, bias) = (per_channel(scale, "scale")?, per_channel(bias, "bias")?);
    let (mean, var) = if training {
        let lanes: Vec<Vec<f64>> =
            x.axis_iter(Axis(1)).map(|ch| ch.iter().map(|&v| v as f64).collect::<Vec<f64>>()).collect();
        let m: Vec<f64> = lanes.iter().map(|l| l.iter().sum::<f64>() / l.len().max(1) as f64).collect();
        let v =
            lanes.iter().zip(&m).map(|(l, m)| l.iter().map(|v| (v - m).powi(2)).sum::<f64>() / l.len().max(1) as f64);
        (m.clone(), v.collect())
    } else {
        (per_channel(mean, "mean")?, per_channel(var, "variance")?)
    };
    let mut y = x.clone();
    for (ch, mut lane) in y.axis_iter_mut(Axis(1)).enumerate() {
        let k = scale[ch] / (var[ch] + eps as f64).sqrt();
        lane.mapv_inplace(|v| ((v as f64 - mean[ch]) * k + bias[ch]) as f32);
    }
    Ok(y)
}

fn initializer(name: &str, a: &ArrayD<f32>) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: a.shape().iter().map(|&d| d as i64).collect(),
        data_type: tensor_proto::DataType::Float as i32,
        float_data: a.iter().copied().collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn constant_of_shape_gets_onnx_default_value() {
        use tract_onnx::pb::{GraphProto, NodeProto};
        let node = |op: &str| NodeProto { op_type: op.into(), ..Default::default() };
        let mut proto = ModelProto {
            graph: Some(GraphProto { node: vec![node("ConstantOfShape"), node("Relu")], ..Default::default() }),
            ..Default::default()
        };
        default_constant_of_shape(&mut proto);
        let nodes = &proto.graph.as_ref().unwrap().node;
        let t = attr_t(&nodes[0], "value").expect("a value");
        assert_eq!((t.data_type, t.float_data.as_slice()), (tensor_proto::DataType::Float as i32, &[0.0f32][..]));
        assert!(nodes[1].attribute.is_empty());
    }

    #[test]
    fn training_mode_uses_the_inputs_own_statistics() {
        // Two channels of [1, 3] and [2, 2]: means 2 and 2, variances 1 and 0.
        let x = array![[[1.0f32, 3.0], [2.0, 2.0]]].into_dyn();
        let ones = ArrayD::from_elem(ndarray::IxDyn(&[2]), 1.0f32);
        let zeros = ArrayD::zeros(ndarray::IxDyn(&[2]));
        let y = batch_norm(&x, &ones, &zeros, &zeros, &ones, 1e-12, true).unwrap();
        assert_eq!(y, array![[[-1.0f32, 1.0], [0.0, 0.0]]].into_dyn());
        // Inference mode: the given statistics (mean 0, variance 1).
        let y = batch_norm(&x, &ones, &ones, &zeros, &ones, 0.0, false).unwrap();
        assert_eq!(y, x.mapv(|v| v + 1.0));
    }
}
