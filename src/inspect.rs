//! What `cambox inspect` says about a model: its input, the cut (pooling, feature map,
//! head), how the logits become probabilities, the start-up proof, the kernels that run
//! it and the map methods it allows. Text for people; `run.json` holds the same facts for
//! programs.

use std::path::Path;

use crate::stage::maps::{MapMethod, MethodChoice};
use crate::stage::model::{ActivationChoice, FinalOp, Head, KernelReport, ModelPlan};

/// The report, one `name: value` line per fact.
pub fn describe(path: &Path, m: &ModelPlan) -> String {
    let (i, r) = (&m.input, &m.report);
    let mut lines = vec![
        format!("model:          {}", path.display()),
        format!("input:          '{}' {:?} {} channels, {}x{} (WxH)", i.name, i.layout, i.channels, i.width, i.height),
    ];
    if let Some([w, h]) = r.retyped_from {
        lines.push(format!(
            "re-typed:       the file declares {w}x{h}; the graph runs at {}x{} and the cut check below proves it there",
            i.width, i.height
        ));
        if r.same_padding > 0 {
            lines.push(format!(
                "                {} convolutions and poolings: TensorFlow's \"same\" padding, which tf2onnx wrote for {w}x{h}, recomputed for this size",
                r.same_padding
            ));
        }
    }
    let final_op = match r.output_activation {
        FinalOp::Softmax => " (the output is its softmax)",
        FinalOp::Sigmoid => " (the output is its per-class sigmoid)",
        FinalOp::None => "",
    };
    let methods: Vec<&str> = MapMethod::applicable(&m.head).iter().map(|m| m.name()).collect();
    let (auto, why) = MethodChoice::Auto.resolve(&m.head);
    lines.extend([
        format!("pooling:        {} '{}'", r.pooling_op, r.pooling_node),
        format!("feature tensor: '{}' shape {:?} ({:?})", r.feature_tensor, r.feature_shape, r.feature_layout),
        format!("head:           {}", head(&m.head, &r.head_ops)),
        format!("head ops:       {}", r.head_ops.join(" -> ")),
        format!("logits:         '{}'{final_op}", r.logits_tensor),
        format!("activation:     {}", activation(r.output_activation)),
        format!("classes:        {}", r.num_classes),
        format!(
            "cut check:      logits from the cut equal the full model's within {:.1e} (relative)",
            r.probe_rel_diff
        ),
        format!("kernels:        {}", kernels(&r.kernels)),
        format!("map methods:    {}", methods.join(", ")),
        format!("method auto:    {} ({})", auto.name(), why.unwrap_or_default()),
    ]);
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// The head, in words.
fn head(h: &Head, ops: &[String]) -> String {
    match h {
        Head::Linear(h) => {
            let dense: Vec<&str> =
                ops.iter().map(String::as_str).filter(|o| matches!(*o, "Gemm" | "MatMul" | "Conv")).collect();
            format!("linear ({}; W {}x{}, b {})", dense.join(", "), h.weight.nrows(), h.weight.ncols(), h.bias.len())
        }
        Head::Identity => "identity (no dense layer; one feature channel per class)".to_string(),
        Head::Other { op, node_name, ops, program } => {
            let dense = ops.iter().filter(|o| *o == "Gemm" || *o == "MatMul").count();
            let kind = if dense >= 2 { "MLP" } else { "not a single affine map" };
            let eval = match program {
                Ok(_) => "cambox evaluates and differentiates it".to_string(),
                Err(e) => format!("cambox cannot differentiate it: {e}"),
            };
            format!("{kind} (other): first non-linear op {op} '{node_name}'; {eval}")
        }
    }
}

/// How the logits become probabilities, as `auto` reads the graph.
fn activation(final_op: FinalOp) -> String {
    let activation = crate::plan::activation(ActivationChoice::Auto, final_op).expect("auto follows the graph");
    let how = match final_op {
        FinalOp::Sigmoid => "per-class sigmoid of the logits: multi-label",
        FinalOp::Softmax => "softmax over the classes",
        FinalOp::None => "the model outputs raw logits; set [model] activation = \"sigmoid\" if it is multi-label",
    };
    format!("{} ({how})", activation.name())
}

/// Which of cambox's kernels replaced tract's ops, and with which instructions.
fn kernels(k: &KernelReport) -> String {
    match &k.isa {
        None => "tract's ops (this CPU lacks AVX2 and FMA)".to_string(),
        Some(isa) => format!(
            "{isa}: pointwise {}, depthwise {}, max pooling {} (nodes replaced; tract's ops elsewhere)",
            k.pointwise, k.depthwise, k.maxpool
        ),
    }
}
