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

use crate::config::{CamConfig, Config, LocaliseConfig};
use crate::error::{Error, Result};
use crate::output::OutputOptions;
use crate::stage::decode::{DecodeOptions, HighBitDepth, JpegScaling, WindowChoice};
use crate::stage::discover::InputOptions;
use crate::stage::model::ModelOptions;
use crate::stage::preprocess::{CamRecipe, PreprocessOptions};

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

/// Hex SHA-256 of a model: its file's, or, when its weights live in external data files,
/// that of the graph file's hash followed by each data file's name and hash (in the order
/// the graph first reads them), so that new weights in `model.onnx.data` are a new model.
pub fn sha256_model(path: &Path, data_files: &[std::path::PathBuf]) -> Result<String> {
    let graph = sha256_file(path)?;
    if data_files.is_empty() {
        return Ok(graph);
    }
    let mut text = format!("{graph}\n");
    for f in data_files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        text.push_str(&format!("{name}\0{}\n", sha256_file(f)?));
    }
    Ok(hex(&Sha256::digest(text.as_bytes())))
}

/// Hex SHA-256 of a file, or of a folder's files (each file's path relative to the folder
/// and its hash, sorted by path): an annotation source may be either.
pub fn sha256_path(path: &Path) -> Result<String> {
    if !path.is_dir() {
        return sha256_file(path);
    }
    let mut entries = Vec::new();
    for e in walkdir::WalkDir::new(path).sort_by_file_name() {
        let e = e.map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?;
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(path).unwrap_or(e.path()).to_string_lossy().into_owned();
            entries.push(format!("{rel}\0{}\n", sha256_file(e.path())?));
        }
    }
    Ok(hex(&Sha256::digest(entries.concat().as_bytes())))
}

/// The content of the ground truth a run localises (`[truth]`), by hash.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthDigest {
    pub annotations_sha256: String,
    pub class_map_sha256: Option<String>,
}

/// The fingerprint of the result-affecting configuration; `truth` is the digest of the
/// `[truth]` files, when there are any.
pub fn fingerprint(config: &Config, model_sha256: &str, truth: Option<&TruthDigest>) -> String {
    hex(&Sha256::digest(fingerprint_text(config, model_sha256, truth).as_bytes()))
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
    /// `threads` set to 0; the memory budget left out (neither changes results).
    run: HashedRun,
    decode: HashedDecode,
    /// Only with `[truth]`: the files' content and format, not where they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    truth: Option<HashedTruth<'a>>,
    /// Only when the map recipe chose the preset (`sharp`): `localise` shows an absent
    /// preset as `cam-paper`, as earlier versions did.
    #[serde(skip_serializing_if = "Option::is_none")]
    recipe_preset: Option<&'static str>,
}

#[derive(Serialize)]
struct HashedTruth<'a> {
    #[serde(flatten)]
    digest: &'a TruthDigest,
    format: Option<crate::truth::annotations::Format>,
}

/// `[run]` as hashed: the limits that refuse images; `threads` always 0 (as earlier
/// versions wrote it).
#[derive(Serialize)]
struct HashedRun {
    threads: usize,
    max_pixels: u64,
    max_file_bytes: u64,
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

fn fingerprint_text(config: &Config, model_sha256: &str, truth_digest: Option<&TruthDigest>) -> String {
    // Destructured so that a new section cannot be forgotten here.
    let Config { input, model, preprocess, output, localise, cam, run, decode, truth } = config;
    let DecodeOptions { window, high_bit_depth, jpeg_scaling } = decode.clone();
    let hashed = Hashed {
        input: InputOptions { paths: Vec::new(), ..input.clone() },
        model: ModelOptions { path: Default::default(), labels: None, ..model.clone() },
        preprocess,
        output: OutputOptions { dir: None, ..output.clone() },
        localise,
        cam,
        run: HashedRun { threads: 0, max_pixels: run.max_pixels, max_file_bytes: run.max_file_bytes },
        decode: HashedDecode { window, high_bit_depth, jpeg_scaling },
        truth: truth_digest.map(|digest| HashedTruth { digest, format: truth.as_ref().and_then(|t| t.format) }),
        recipe_preset: match (localise.preset, cam.recipe.unwrap_or_default()) {
            (None, CamRecipe::Sharp) => Some(localise.preset(CamRecipe::Sharp).name()),
            _ => None,
        },
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
        b.run.memory_budget = crate::config::ByteSize(1 << 30);
        b.output.dir = Some("elsewhere".into());
        assert_eq!(fingerprint(&a, "m", None), fingerprint(&b, "m", None));
        b.preprocess.resize_to = Some(300);
        assert_ne!(fingerprint(&a, "m", None), fingerprint(&b, "m", None));
        assert_ne!(fingerprint(&a, "m", None), fingerprint(&a, "other model", None));
        let mut d = a.clone();
        d.decode.jpeg_scaling = JpegScaling::Dct;
        assert_ne!(fingerprint(&a, "m", None), fingerprint(&d, "m", None));
        // The truth enters by content: moved files resume, edited ones do not.
        let t = TruthDigest { annotations_sha256: "t".into(), class_map_sha256: None };
        let t2 = TruthDigest { annotations_sha256: "t2".into(), class_map_sha256: None };
        let mut e = a.clone();
        e.truth = Some(crate::config::TruthConfig { annotations: "x.csv".into(), format: None, class_map: None });
        let mut f = e.clone();
        f.truth.as_mut().unwrap().annotations = "elsewhere/x.csv".into();
        assert_eq!(fingerprint(&e, "m", Some(&t)), fingerprint(&f, "m", Some(&t)));
        assert_ne!(fingerprint(&e, "m", Some(&t)), fingerprint(&e, "m", Some(&t2)));
        assert_ne!(fingerprint(&e, "m", Some(&t)), fingerprint(&a, "m", None));
    }

    #[test]
    fn new_settings_at_their_defaults_keep_earlier_fingerprints() {
        // The text of the default configuration as cambox 0.1.0 of bd5fab8 hashed it.
        let before = "{\"model_sha256\":\"m\",\"config\":{\"input\":{\"paths\":[],\"extensions\":[\"jpg\",\"jpeg\",\"png\",\"bmp\",\"tif\",\"tiff\",\"dcm\"],\"follow_symlinks\":false,\"include_hidden\":false,\"sniff_dicom\":false},\"model\":{\"path\":\"\",\"labels\":null,\"layout\":\"auto\",\"input_size\":null,\"feature\":null},\"preprocess\":{\"resize\":\"stretch\",\"resize_to\":null,\"resampling\":\"bilinear\",\"channels\":\"rgb\",\"scale\":\"unit\",\"mean\":[0.0],\"std\":[1.0],\"pad_value\":0.0},\"output\":{\"dir\":null,\"top_k\":5,\"masks\":false,\"overlays\":false,\"maps\":false},\"localise\":{\"classes\":\"top1\",\"preset\":\"cam-paper\",\"tau\":null,\"relu\":null,\"normalise\":null,\"upsample\":null,\"quantise\":null,\"thresholds\":null,\"components\":null,\"min_area\":null},\"cam\":{\"method\":\"cam\"},\"run\":{\"threads\":0,\"max_pixels\":100000000,\"max_file_bytes\":536870912},\"decode\":{\"window\":\"dicom\",\"high_bit_depth\":\"bit-depth\"}}}";
        // A plan hashes the method `auto` resolved to: `cam` on a linear head.
        let mut c = Config::default();
        c.cam.method = crate::stage::maps::MethodChoice::Method(crate::stage::maps::MapMethod::Cam);
        assert_eq!(fingerprint_text(&c, "m", None), before);
    }

    #[test]
    fn the_sharp_recipes_own_preset_enters_the_fingerprint() {
        let mut sharp = Config::default();
        sharp.cam.recipe = Some(CamRecipe::Sharp);
        // Before the sharp preset, this text meant boxes at 20 %: a folder of such a run must
        // not be resumed as one cut at 30 %.
        assert!(fingerprint_text(&sharp, "m", None).ends_with("\"recipe_preset\":\"sharp\"}}"));
        let mut named = sharp.clone();
        named.localise.preset = Some(crate::stage::localise::Preset::CamPaper);
        assert!(!fingerprint_text(&named, "m", None).contains("recipe_preset"));
        assert!(!fingerprint_text(&Config::default(), "m", None).contains("recipe_preset"));
    }

    #[test]
    fn default_jpeg_scaling_keeps_earlier_fingerprints() {
        // Hashed as before `[decode] jpeg_scaling` existed: `decode` ends with the
        // setting before it.
        let text = fingerprint_text(&Config::default(), "m", None);
        assert!(text.contains("\"high_bit_depth\":\"bit-depth\"}"), "{text}");
        assert!(!text.contains("jpeg_scaling"), "{text}");
        let mut c = Config::default();
        c.decode.jpeg_scaling = JpegScaling::Dct;
        assert!(fingerprint_text(&c, "m", None).contains("\"jpeg_scaling\":\"dct\"}"));
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
        let text = fingerprint_text(&c, "h", None);
        c.input.paths.clear();
        c.output.dir = None;
        c.run.threads = 0;
        c.model.path = Default::default();
        c.model.labels = None;
        let mut whole = serde_json::json!({ "model_sha256": "h", "config": c });
        // Settings added since that change no result are not hashed at all.
        whole["config"]["run"].as_object_mut().unwrap().remove("memory_budget");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), whole);
    }
}
