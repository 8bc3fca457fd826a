//! A read-only index over an ONNX graph: who produces and who consumes each tensor, and the
//! value of every constant.
//!
//! Head analysis needs ONNX's own semantics (Gemm's `transB`, `alpha`, `beta`; MatMul's
//! operand order), which tract rewrites while it translates the graph, so the surgery
//! reads the protobuf directly and addresses nodes by index and tensors by name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use tract_onnx::data_resolver::MmapDataResolver;
use tract_onnx::pb::{self, type_proto, ModelProto, NodeProto};
use tract_onnx::prelude::*;

use super::{external, normalise};
use crate::error::{Error, Result};

/// Parsed ONNX model plus lookup tables.
pub struct OnnxGraph {
    pub path: PathBuf,
    pub proto: ModelProto,
    /// The files holding the weights that are not in the graph file (ONNX external
    /// data), checked at load; usually none.
    pub data_files: Vec<PathBuf>,
    dir: PathBuf,
    producer: HashMap<String, usize>,
    consumers: HashMap<String, Vec<usize>>,
    initializers: HashMap<String, usize>,
}

impl OnnxGraph {
    pub fn load(path: &Path) -> Result<OnnxGraph> {
        if !path.is_file() {
            return Err(Error::model(path, "no such file"));
        }
        let proto = tract_onnx::onnx()
            .proto_model_for_path(path)
            .map_err(|e| Error::model(path, format!("not a readable ONNX model: {e:#}")))?;
        if proto.graph.is_none() {
            return Err(Error::model(path, "the file holds no graph"));
        }
        let data_files = external::data_files(path, &proto).map_err(|e| Error::model(path, e))?;
        let g = OnnxGraph::index(path, proto, data_files);
        let proto = normalise::rewrite(&g).map_err(|e| Error::model(path, e))?;
        Ok(OnnxGraph::index(path, proto, g.data_files))
    }

    /// The same model file read as `proto` says (a rewrite of this graph).
    pub fn with_proto(&self, proto: ModelProto) -> OnnxGraph {
        OnnxGraph::index(&self.path, proto, self.data_files.clone())
    }

    /// The lookup tables of a parsed model.
    fn index(path: &Path, proto: ModelProto, data_files: Vec<PathBuf>) -> OnnxGraph {
        let graph = proto.graph.as_ref().expect("checked at load");
        let mut producer = HashMap::new();
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                producer.insert(o.clone(), i);
            }
            for inp in n.input.iter().filter(|o| !o.is_empty()) {
                consumers.entry(inp.clone()).or_default().push(i);
            }
        }
        let initializers = graph.initializer.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        OnnxGraph {
            path: path.to_path_buf(),
            proto,
            data_files,
            dir: external::model_dir(path),
            producer,
            consumers,
            initializers,
        }
    }

    /// The model's folder, which external data locations are relative to, as tract takes
    /// it (`None` when the path is not UTF-8: only models without external data load then).
    pub fn dir(&self) -> Option<&str> {
        self.dir.to_str()
    }

    pub fn graph(&self) -> &pb::GraphProto {
        self.proto.graph.as_ref().expect("checked at load")
    }

    pub fn nodes(&self) -> &[NodeProto] {
        &self.graph().node
    }

    pub fn node(&self, id: usize) -> &NodeProto {
        &self.graph().node[id]
    }

    /// Index of the node producing `tensor`, if any (graph inputs and initializers have none).
    pub fn producer(&self, tensor: &str) -> Option<usize> {
        self.producer.get(tensor).copied()
    }

    pub fn consumers(&self, tensor: &str) -> &[usize] {
        self.consumers.get(tensor).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Graph inputs that are real inputs (not initializers listed as inputs, as old
    /// exporters do).
    pub fn real_inputs(&self) -> Vec<&pb::ValueInfoProto> {
        self.graph().input.iter().filter(|i| !self.initializers.contains_key(&i.name)).collect()
    }

    pub fn outputs(&self) -> &[pb::ValueInfoProto] {
        &self.graph().output
    }

    /// Value of a constant tensor: an initializer or the output of a `Constant` node.
    pub fn constant(&self, tensor: &str) -> Option<ArrayD<f32>> {
        let t = if let Some(&i) = self.initializers.get(tensor) {
            &self.graph().initializer[i]
        } else {
            let n = self.node(self.producer(tensor)?);
            if n.op_type != "Constant" {
                return None;
            }
            n.attribute.iter().find(|a| a.name == "value")?.t.as_ref()?
        };
        let tensor = tract_onnx::tensor::load_tensor(&MmapDataResolver, t, self.dir()).ok()?;
        let tensor = tensor.cast_to::<f32>().ok()?.into_owned();
        tensor.into_plain_array::<f32>().ok()
    }

    /// The initializer named `tensor`, if there is one.
    pub fn initializer(&self, tensor: &str) -> Option<&pb::TensorProto> {
        self.initializers.get(tensor).map(|&i| &self.graph().initializer[i])
    }

    /// A tensor of the file (an initializer or an attribute), read from wherever it lies.
    pub fn load_tensor(&self, t: &pb::TensorProto) -> std::result::Result<Tensor, String> {
        tract_onnx::tensor::load_tensor(&MmapDataResolver, t, self.dir())
            .map_err(|e| format!("tensor '{}': {e:#}", t.name))
    }

    pub fn is_constant(&self, tensor: &str) -> bool {
        self.initializers.contains_key(tensor)
            || self.producer(tensor).map(|i| self.node(i).op_type == "Constant").unwrap_or(false)
    }

    /// The static shape of a graph input as written in the file (`None` for symbolic dims).
    pub fn declared_shape(v: &pb::ValueInfoProto) -> Option<Vec<Option<i64>>> {
        let type_proto::Value::TensorType(tt) = v.r#type.as_ref()?.value.as_ref()?;
        Some(
            tt.shape
                .as_ref()?
                .dim
                .iter()
                .map(|d| match d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => Some(v),
                    _ => None,
                })
                .collect(),
        )
    }

    /// A readable name for node `id`: its name, or its op and first output.
    pub fn describe(&self, id: usize) -> String {
        let n = self.node(id);
        if n.name.is_empty() {
            format!("{} -> {}", n.op_type, n.output.first().map(String::as_str).unwrap_or("?"))
        } else {
            format!("{} '{}'", n.op_type, n.name)
        }
    }
}

/// Integer attribute with a default.
pub fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i).unwrap_or(default)
}

/// Float attribute with a default.
pub fn attr_f(node: &NodeProto, name: &str, default: f32) -> f32 {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.f).unwrap_or(default)
}

/// Integer-list attribute.
pub fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.ints.clone())
}

/// String attribute.
pub fn attr_s<'a>(node: &'a NodeProto, name: &str) -> Option<&'a str> {
    node.attribute.iter().find(|a| a.name == name).and_then(|a| std::str::from_utf8(&a.s).ok())
}

/// Float-list attribute.
pub fn attr_floats(node: &NodeProto, name: &str) -> Option<Vec<f32>> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.floats.clone())
}

/// Tensor attribute.
pub fn attr_t<'a>(node: &'a NodeProto, name: &str) -> Option<&'a pb::TensorProto> {
    node.attribute.iter().find(|a| a.name == name).and_then(|a| a.t.as_ref())
}

/// Whether the node sets the attribute.
pub fn has_attr(node: &NodeProto, name: &str) -> bool {
    node.attribute.iter().any(|a| a.name == name)
}
