//! What exporters write that tract or the cut cannot take as it is, rewritten once, before
//! anything reads the graph.
//!
//! Each rewrite keeps what the network computes and only changes how the file says it:
//!
//! - **Graph inputs no node reads.** Keras 3's `model.export(format="onnx")` lists the
//!   constants of its normalisation layers as graph inputs that nothing reads; the image
//!   is the one input the graph uses. They are dropped (tract would otherwise expect a
//!   tensor for each).

use tract_onnx::pb::ModelProto;

use super::graph::OnnxGraph;

/// The model with the rewrites applied.
pub fn rewrite(g: &OnnxGraph) -> Result<ModelProto, String> {
    let mut proto = g.proto.clone();
    drop_unread_inputs(g, &mut proto);
    Ok(proto)
}

/// Removes the graph inputs that no node reads and that are not outputs.
fn drop_unread_inputs(g: &OnnxGraph, proto: &mut ModelProto) {
    let outputs: Vec<&str> = g.outputs().iter().map(|o| o.name.as_str()).collect();
    let graph = proto.graph.as_mut().expect("a graph");
    graph.input.retain(|i| !g.consumers(&i.name).is_empty() || outputs.contains(&i.name.as_str()));
}
