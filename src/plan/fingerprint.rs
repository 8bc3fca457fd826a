//! The run fingerprint: what identifies a run's results, so that a folder is resumed
//! only by the configuration that started it, and merged only with its own shards.
//!
//! It is the SHA-256 of the model file's hash and of every setting that changes results
//! (preprocessing, method, localisation, outputs, limits), but not of where inputs and
//! outputs live, the thread count or the shard. The hashed text is JSON written from
//! `Hashed`, a struct that names what enters and how: a new setting whose default is
//! what every earlier run did is left out when it has its default, so the runs made
//! before it existed still resume (`[decode] jpeg_scaling` is the first such).

use std::io::Read;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{CamConfig, Config, LocaliseConfig, RunConfig};
use crate::error::{Error, Result};
use crate::output::OutputOptions;
use crate::stage::decode::{DecodeOptions, HighBitDepth, JpegScaling, WindowChoice};
use crate::stage::discover::InputOptions;
use crate::stage::model::ModelOptions;
use crate::stage::preprocess::PreprocessOptions;

/// Lower-case hexadecimal of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// The fingerprint of the result-affecting configuration.
pub fn fingerprint(config: &Config, model_sha256: &str) -> String {
    hex(&Sha256::digest(fingerprint_text(config, model_sha256).as_bytes()))
}

/// What [`fingerprint`] hashes: `{"model_sha256": ..., "config": Hashed}`.
#[derive(Serialize)]
struct Parts<'a> {
    model_sha256: &'a str,
    config: Hashed<'a>,
}

/// The configuration as hashed: every section, in `Config`'s order, with where things
/// live and how fast they run reset to fixed values (neither changes results).
#[derive(Serialize)]
struct Hashed<'a> {
    /// `paths` emptied.
    input: InputOptions,
    /// `path` and `labels` emptied (the model enters by its hash).
    model: ModelOptions,
    preprocess: &'a PreprocessOptions,
    /// `dir` emptied.
    output: OutputOptions,
    localise: &'a LocaliseConfig,
    cam: &'a CamConfig,
    /// `threads` set to 0.
    run: RunConfig,
    decode: HashedDecode,
}

/// `[decode]` as hashed: `jpeg_scaling` only when it is not `exact`.
#[derive(Serialize)]
struct HashedDecode {
    window: WindowChoice,
    high_bit_depth: HighBitDepth,
    #[serde(skip_serializing_if = "is_exact")]
    jpeg_scaling: JpegScaling,
}

fn is_exact(j: &JpegScaling) -> bool {
    *j == JpegScaling::Exact
}

fn fingerprint_text(config: &Config, model_sha256: &str) -> String {
    // Destructured so that a new section cannot be forgotten here.
    let Config { input, model, preprocess, output, localise, cam, run, decode } = config;
    let DecodeOptions { window, high_bit_depth, jpeg_scaling } = decode.clone();
    let hashed = Hashed {
        input: InputOptions { paths: Vec::new(), ..input.clone() },
        model: ModelOptions { path: Default::default(), labels: None, ..model.clone() },
        preprocess,
        output: OutputOptions { dir: None, ..output.clone() },
        localise,
        cam,
        run: RunConfig { threads: 0, ..run.clone() },
        decode: HashedDecode { window, high_bit_depth, jpeg_scaling },
    };
    serde_json::to_string(&Parts { model_sha256, config: hashed }).expect("config serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_locations_and_threads_but_not_results() {
        let mut a = Config::default();
        a.input.paths = vec!["x".into()];
        let mut b = a.clone();
        b.input.paths = vec!["y".into()];
        b.run.threads = 7;
        b.output.dir = Some("elsewhere".into());
        assert_eq!(fingerprint(&a, "m"), fingerprint(&b, "m"));
        b.preprocess.resize_to = Some(300);
        assert_ne!(fingerprint(&a, "m"), fingerprint(&b, "m"));
        assert_ne!(fingerprint(&a, "m"), fingerprint(&a, "other model"));
        let mut d = a.clone();
        d.decode.jpeg_scaling = JpegScaling::Dct;
        assert_ne!(fingerprint(&a, "m"), fingerprint(&d, "m"));
    }

    #[test]
    fn default_jpeg_scaling_keeps_earlier_fingerprints() {
        // Hashed as before `[decode] jpeg_scaling` existed: `decode` ends with the
        // setting before it.
        let text = fingerprint_text(&Config::default(), "m");
        assert!(text.contains("\"high_bit_depth\":\"bit-depth\"}"), "{text}");
        assert!(!text.contains("jpeg_scaling"), "{text}");
        let mut c = Config::default();
        c.decode.jpeg_scaling = JpegScaling::Dct;
        assert!(fingerprint_text(&c, "m").contains("\"jpeg_scaling\":\"dct\"}"));
    }

    #[test]
    fn the_hashed_text_is_the_config_as_written_before() {
        // The fingerprint of earlier versions hashed the whole configuration as JSON with
        // the locations reset: the struct must give the very same text.
        let mut c: Config = toml::from_str(
            "[input]\npaths = [\"a\"]\n[model]\npath = \"m.onnx\"\nlabels = \"l.txt\"\n[output]\ndir = \"o\"\n\
             [run]\nthreads = 3\n[decode]\njpeg_scaling = \"dct\"",
        )
        .unwrap();
        let text = fingerprint_text(&c, "h");
        c.input.paths.clear();
        c.output.dir = None;
        c.run.threads = 0;
        c.model.path = Default::default();
        c.model.labels = None;
        let whole = serde_json::json!({ "model_sha256": "h", "config": c });
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), whole);
        assert_eq!(text, format!("{{\"model_sha256\":\"h\",\"config\":{}}}", serde_json::to_string(&c).unwrap()));
    }
}
