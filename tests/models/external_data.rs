//! ONNX external data (PyTorch's default exporter writes the weights to `model.onnx.data`):
//! a model whose weights were moved to a data file, some past the 2 GB mark, gives the
//! numpy reference logits of the original (scripts/fixtures/make_fixtures.py); a missing or
//! truncated data file is refused naming the file.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::common::*;
use cambox::stage::model::ModelPlan;
use ndarray::Ix4;
use prost::Message;
use tract_onnx::pb::{tensor_proto, ModelProto, StringStringEntryProto};

/// Where the first tensor goes in the big data file: past 2 GiB (a hole before it).
const PAST_2_GIB: u64 = (5 << 30) / 2;

/// `fixture` with every initializer moved to `data` (a sparse file), the first at
/// `first`; returns the new model's path.
fn externalise(fixture: &str, dir: &Path, data: &str, first: u64) -> PathBuf {
    let src = root().join("tests/fixtures/models").join(format!("{fixture}.onnx"));
    let mut proto = ModelProto::decode(std::fs::read(&src).unwrap().as_slice()).unwrap();
    let mut file = std::fs::File::create(dir.join(data)).unwrap();
    let mut offset = first;
    for t in proto.graph.as_mut().unwrap().initializer.iter_mut() {
        let tensor = tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::MmapDataResolver, t, None).unwrap();
        let bytes = tensor.as_bytes().to_vec();
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.write_all(&bytes).unwrap();
        t.raw_data.clear();
        t.float_data.clear();
        t.int64_data.clear();
        t.int32_data.clear();
        t.data_location = Some(tensor_proto::DataLocation::External as i32);
        let entry = |k: &str, v: String| StringStringEntryProto { key: k.into(), value: v };
        t.external_data = vec![
            entry("location", data.into()),
            entry("offset", offset.to_string()),
            entry("length", bytes.len().to_string()),
        ];
        offset += bytes.len() as u64 + 4096;
    }
    let path = dir.join(format!("{fixture}.onnx"));
    std::fs::write(&path, proto.encode_to_vec()).unwrap();
    path
}

#[test]
fn weights_past_two_gigabytes_in_a_data_file_give_the_reference_logits() {
    let dir = tempfile::tempdir().unwrap();
    for fixture in ["gap_gemm_transb1", "mlp_head"] {
        let path = externalise(fixture, dir.path(), &format!("{fixture}.onnx.data"), PAST_2_GIB);
        assert!(std::fs::metadata(dir.path().join(format!("{fixture}.onnx.data"))).unwrap().len() > PAST_2_GIB);
        let plan = ModelPlan::open(&path).unwrap_or_else(|e| panic!("{fixture}: {e}"));
        assert_eq!(plan.data_files, vec![dir.path().join(format!("{fixture}.onnx.data"))]);
        let reference = root().join("tests/fixtures/models");
        let input = npy(reference.join(format!("{fixture}.input.npy"))).into_dimensionality::<Ix4>().unwrap();
        let logits = plan.infer(input).unwrap().logits;
        let want = npy(reference.join(format!("{fixture}.logits.npy")));
        let d = max_abs_diff(logits.iter(), want.iter());
        assert!(d <= 1e-5, "{fixture}: logits differ from numpy by {d}");
    }
}

#[test]
fn a_missing_or_truncated_data_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = externalise("gap_gemm_transb1", dir.path(), "weights.bin", 0);
    let data = dir.path().join("weights.bin");
    let model = path.to_str().unwrap();

    let len = std::fs::metadata(&data).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&data).unwrap().set_len(len - 8).unwrap();
    let (code, _, err) = cambox(&["inspect", model]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("weights.bin is truncated: tensor '"), "{err}");

    std::fs::remove_file(&data).unwrap();
    let (code, _, err) = cambox(&["inspect", model]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("external data file {}", data.display())), "{err}");
    assert!(err.contains("No such file"), "{err}");
}

/// A run over a model with external data: the model's hash in run.json covers its data
/// file, so new weights make a new model for resume.
#[test]
fn the_model_hash_covers_its_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = externalise("gap_gemm_transb1", dir.path(), "w.data", 0);
    let images = root().join("data/samples/natural/chelsea.png");
    // The demo's configuration with this model: only the model differs.
    let cfg = std::fs::read_to_string(root().join("configs/demo.toml"))
        .unwrap()
        .replace("../data/models/efficientnet-lite0.onnx", path.to_str().unwrap())
        .replace("labels = \"../data/models/imagenet-classes.txt\"", "")
        .replace("../data/", &format!("{}/data/", root().display()));
    let cfg_path = dir.path().join("c.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let sha = |out: &Path| {
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
        m["model"]["sha256"].as_str().unwrap().to_string()
    };
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let go = |out: &Path| {
        let (code, _, err) = cambox(&[
            "run",
            "-q",
            "-c",
            cfg_path.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            images.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
    };
    go(&a);
    // Other weights in the data file (a low bit of the last weight), same graph file.
    let data = dir.path().join("w.data");
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 4;
    bytes[last] ^= 1;
    std::fs::write(&data, bytes).unwrap();
    go(&b);
    assert_ne!(sha(&a), sha(&b), "the hash must change with the data file");
}
