//! ONNX external data: weights kept in files beside the graph.
//!
//! PyTorch's default exporter (torch.export, `dynamo=True`, the default since 2.9) writes
//! the initializers to `model.onnx.data` and leaves in the graph only where each tensor
//! lies (`location`, `offset`, `length`, relative to the model's folder). Models above
//! protobuf's 2 GB limit can only be stored that way. tract reads such tensors when it is
//! told the model's folder; this module finds that folder and checks every reference
//! before tract or the head analysis reads one, so that a missing, truncated or
//! misplaced data file is refused by its name rather than by a parser's message.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use tract_onnx::pb::{tensor_proto, ModelProto, TensorProto};

/// The folder external data locations are relative to: the model file's own folder
/// (`.` for a bare file name).
pub fn model_dir(model: &Path) -> PathBuf {
    match model.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether the tensor's bytes live in another file.
pub fn is_external(t: &TensorProto) -> bool {
    t.data_location == Some(tensor_proto::DataLocation::External as i32) && t.raw_data.is_empty()
}

/// Every external data file the model's initializers and `Constant` nodes read, in the
/// order first referenced, after checking that each file exists inside the model's
/// folder and holds every byte range the graph names. The error is one line naming the
/// file and the tensor.
pub fn data_files(model: &Path, proto: &ModelProto) -> Result<Vec<PathBuf>, String> {
    let dir = model_dir(model);
    // The end of the largest range read from each file, and the tensor that reads it.
    let mut needs: BTreeMap<PathBuf, (u64, String)> = BTreeMap::new();
    let mut order = Vec::new();
    for t in external_tensors(proto) {
        let r = reference(t)?;
        if !order.contains(&r.location) {
            order.push(r.location.clone());
        }
        let entry = needs.entry(r.location).or_insert((0, String::new()));
        if r.end > entry.0 {
            *entry = (r.end, t.name.clone());
        }
    }
    let mut files = Vec::with_capacity(order.len());
    for location in order {
        let file = dir.join(&location);
        let (end, tensor) = &needs[&location];
        let len = std::fs::metadata(&file)
            .map_err(|e| format!("external data file {} (weights of '{tensor}'): {e}", file.display()))?
            .len();
        if len < *end {
            return Err(format!(
                "external data file {} is truncated: tensor '{tensor}' needs bytes up to {end}, the file has {len}",
                file.display()
            ));
        }
        files.push(file);
    }
    Ok(files)
}

/// Where one external tensor's bytes are.
struct Reference {
    location: PathBuf,
    /// One past the last byte read.
    end: u64,
}

fn reference(t: &TensorProto) -> Result<Reference, String> {
    let key = |k: &str| t.external_data.iter().find(|e| e.key == k).map(|e| e.value.as_str());
    let location = key("location").ok_or_else(|| format!("tensor '{}' is external but names no file", t.name))?;
    let rel = Path::new(location);
    if rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(format!(
            "tensor '{}' reads external data from '{location}': only files inside the model's folder are read",
            t.name
        ));
    }
    let number = |k: &str| -> Result<Option<u64>, String> {
        key(k)
            .map(|v| {
                v.parse::<u64>().map_err(|_| format!("tensor '{}': external data {k} '{v}' is not a number", t.name))
            })
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let length = match number("length")? {
        Some(l) => l,
        None => expected_bytes(t).ok_or_else(|| {
            format!("tensor '{}' is external with no length, and its type {} has no fixed size", t.name, t.data_type)
        })?,
    };
    let end =
        offset.checked_add(length).ok_or_else(|| format!("tensor '{}': external data range overflows", t.name))?;
    Ok(Reference { location: rel.to_path_buf(), end })
}

/// Bytes of a tensor of fixed-size elements.
fn expected_bytes(t: &TensorProto) -> Option<u64> {
    use tensor_proto::DataType as D;
    let size = match D::try_from(t.data_type).ok()? {
        D::Bool | D::Int8 | D::Uint8 => 1,
        D::Int16 | D::Uint16 | D::Float16 | D::Bfloat16 => 2,
        D::Int32 | D::Uint32 | D::Float => 4,
        D::Int64 | D::Uint64 | D::Double | D::Complex64 => 8,
        D::Complex128 => 16,
        _ => return None,
    };
    t.dims.iter().try_fold(size, |n: u64, &d| n.checked_mul(u64::try_from(d).ok()?))
}

/// The tensors of the main graph that keep their bytes elsewhere.
fn external_tensors(proto: &ModelProto) -> impl Iterator<Item = &TensorProto> {
    let graph = proto.graph.iter();
    let initializers = graph.clone().flat_map(|g| g.initializer.iter());
    let constants = graph.flat_map(|g| g.node.iter()).flat_map(|n| n.attribute.iter()).filter_map(|a| a.t.as_ref());
    initializers.chain(constants).filter(|t| is_external(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::{GraphProto, StringStringEntryProto};

    fn external(name: &str, location: &str, offset: Option<u64>, dims: &[i64]) -> TensorProto {
        let mut entries = vec![("location", location.to_string())];
        if let Some(o) = offset {
            entries.push(("offset", o.to_string()));
        }
        TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: tensor_proto::DataType::Float as i32,
            data_location: Some(tensor_proto::DataLocation::External as i32),
            external_data: entries
                .into_iter()
                .map(|(k, v)| StringStringEntryProto { key: k.into(), value: v })
                .collect(),
            ..Default::default()
        }
    }

    fn model(tensors: Vec<TensorProto>) -> ModelProto {
        ModelProto { graph: Some(GraphProto { initializer: tensors, ..Default::default() }), ..Default::default() }
    }

    #[test]
    fn a_bare_file_name_is_relative_to_the_working_folder() {
        assert_eq!(model_dir(Path::new("m.onnx")), PathBuf::from("."));
        assert_eq!(model_dir(Path::new("a/m.onnx")), PathBuf::from("a"));
    }

    #[test]
    fn every_range_must_lie_inside_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let onnx = dir.path().join("m.onnx");
        std::fs::write(dir.path().join("m.onnx.data"), vec![0u8; 40]).unwrap();
        // 2 x 3 floats = 24 bytes at offset 16: ends at 40, the file's size.
        let ok = model(vec![external("w", "m.onnx.data", Some(16), &[2, 3]), external("b", "m.onnx.data", None, &[2])]);
        assert_eq!(data_files(&onnx, &ok).unwrap(), vec![dir.path().join("m.onnx.data")]);
        let short = model(vec![external("w", "m.onnx.data", Some(20), &[2, 3])]);
        let e = data_files(&onnx, &short).unwrap_err();
        assert!(e.contains("m.onnx.data is truncated: tensor 'w' needs bytes up to 44, the file has 40"), "{e}");
        let missing = model(vec![external("w", "other.data", None, &[1])]);
        let e = data_files(&onnx, &missing).unwrap_err();
        assert!(e.contains("other.data (weights of 'w')"), "{e}");
        let outside = model(vec![external("w", "../m.onnx.data", None, &[1])]);
        assert!(data_files(&onnx, &outside).unwrap_err().contains("only files inside the model's folder"));
    }
}
