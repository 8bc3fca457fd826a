//! Resuming a run: an output folder that already holds a run of the same configuration
//! is continued, not redone.
//!
//! The configuration is identified by a fingerprint: the SHA-256 of the model file's hash
//! and every setting that changes results (preprocessing, method, localisation, outputs,
//! limits), but not where inputs and outputs live, the thread count or the shard. On
//! resume, `images.csv` and `boxes.csv` are repaired and rewritten atomically: a torn last
//! line (a run killed mid-write) is dropped, rows are kept once per image, `error` rows are
//! dropped with `--retry-errors`, and boxes are kept only for images whose row survived,
//! so the finished folder has exactly one row per image whatever happened before.

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{Config, JpegScaling};
use crate::error::{Error, Result};
use crate::output::{atomic_write, boxes_csv, images_csv};

/// Files a run owns in its output folder (removed by `--force`).
pub const RUN_FILES: &[&str] = &["images.csv", "boxes.csv", "run.json"];
pub const RUN_DIRS: &[&str] = &["masks", "overlays", "maps"];

/// The fingerprint of the result-affecting configuration.
pub fn fingerprint(config: &Config, model_sha256: &str) -> String {
    Sha256::digest(fingerprint_text(config, model_sha256).as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// What [`fingerprint`] hashes: the model's hash and the configuration as JSON, without
/// where things live and how fast they run (neither changes results).
fn fingerprint_text(config: &Config, model_sha256: &str) -> String {
    #[derive(Serialize)]
    struct Parts<'a> {
        model_sha256: &'a str,
        config: Config,
    }
    let mut c = config.clone();
    c.input.paths.clear();
    c.output.dir = None;
    c.run.threads = 0;
    c.model.path = Default::default();
    c.model.labels = None;
    let text = serde_json::to_string(&Parts { model_sha256, config: c }).expect("config serialises");
    // `[decode] jpeg_scaling` changes results, but its default is what every run did
    // before the option existed: the default is left out, so those runs still resume.
    // The key and value are written by serde (a quote inside a user's string would be
    // escaped), so this text occurs exactly once, as the last field of `decode`.
    debug_assert_eq!(JpegScaling::default(), JpegScaling::Exact);
    text.replacen(",\"jpeg_scaling\":\"exact\"}", "}", 1)
}

/// What an earlier run left.
#[derive(Debug, Default)]
pub struct Previous {
    /// Relative paths already recorded (and therefore skipped).
    pub done: HashSet<String>,
    pub ok: u64,
    pub error: u64,
}

/// How to start in `out`.
pub fn prepare(out: &Path, fingerprint: &str, force: bool, retry_errors: bool) -> Result<Option<Previous>> {
    let manifest = out.join("run.json");
    let images = out.join("images.csv");
    if force {
        for f in RUN_FILES {
            let p = out.join(f);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        for d in RUN_DIRS {
            let p = out.join(d);
            if p.is_dir() {
                std::fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        return Ok(None);
    }
    if !manifest.exists() {
        if images.exists() {
            return Err(Error::output(out, "holds an images.csv but no run.json: not a cambox run folder cambox can resume; use --force to start over"));
        }
        return Ok(None);
    }
    let text = std::fs::read_to_string(&manifest).map_err(|e| Error::io(&manifest, e))?;
    let old: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::output(&manifest, format!("unreadable run.json: {e}")))?;
    let old_fp = old["fingerprint"].as_str().unwrap_or("");
    if old_fp != fingerprint {
        return Err(Error::output(
            out,
            format!(
                "holds a run with a different configuration (fingerprint {} here, {} now: model, preprocessing, method or localisation differ); use --force to start over, or another --out",
                short(old_fp),
                short(fingerprint)
            ),
        ));
    }
    if !images.exists() {
        return Ok(None);
    }
    let mut prev = Previous::default();
    let mut ok_paths = HashSet::new();
    let kept_images = repair(&images, images_csv::HEADER, |rec| {
        let path = rec.get(0).unwrap_or("").to_string();
        let status = rec.get(1).unwrap_or("");
        if prev.done.contains(&path) || (status == "error" && retry_errors) || !(status == "ok" || status == "error") {
            return false;
        }
        if status == "ok" {
            prev.ok += 1;
            ok_paths.insert(path.clone());
        } else {
            prev.error += 1;
        }
        prev.done.insert(path);
        true
    })?;
    debug_assert!(kept_images as u64 == prev.ok + prev.error);
    let boxes = out.join("boxes.csv");
    if boxes.exists() {
        repair(&boxes, boxes_csv::HEADER, |rec| ok_paths.contains(rec.get(0).unwrap_or("")))?;
    }
    Ok(Some(prev))
}

fn short(fp: &str) -> &str {
    &fp[..fp.len().min(12)]
}

/// Rewrites a CSV table keeping its header and the complete rows `keep` accepts; a last
/// line without its newline (torn by a kill) and rows of the wrong width are dropped.
/// Returns the number of rows kept.
fn repair(path: &Path, header: &[&str], mut keep: impl FnMut(&csv::StringRecord) -> bool) -> Result<usize> {
    let mut bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => bytes.truncate(i + 1),
        None => bytes.clear(),
    }
    let mut r = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes.as_slice());
    let found: Vec<String> = r.headers().map(|h| h.iter().map(str::to_string).collect()).unwrap_or_default();
    if !found.is_empty() && found != header {
        return Err(Error::output(
            path,
            "was written by another cambox version (different columns); use --force to start over",
        ));
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).map_err(|e| Error::output(path, e.to_string()))?;
    let mut kept = 0;
    for rec in r.records() {
        let Ok(rec) = rec else { continue };
        if rec.len() != header.len() || !keep(&rec) {
            continue;
        }
        w.write_record(&rec).map_err(|e| Error::output(path, e.to_string()))?;
        kept += 1;
    }
    let data = w.into_inner().map_err(|e| Error::output(path, e.to_string()))?;
    atomic_write(path, &data).map_err(|e| Error::io(path, e))?;
    Ok(kept)
}

/// Stable shard of a relative path: FNV-1a 64-bit over its UTF-8 bytes, modulo the
/// shard count. Fixed by definition, so identical on every platform and version.
pub fn shard_of(rel: &str, count: u32) -> u32 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in rel.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    (h % count as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_published_function() {
        // FNV-1a 64 test vectors (Fowler, Noll, Vo): "" -> cbf29ce484222325,
        // "a" -> af63dc4c8601ec8c, "foobar" -> 85944171f73967e8.
        assert_eq!(shard_of("", u32::MAX), (0xcbf29ce484222325u64 % u32::MAX as u64) as u32);
        assert_eq!(shard_of("a", u32::MAX), (0xaf63dc4c8601ec8cu64 % u32::MAX as u64) as u32);
        assert_eq!(shard_of("foobar", 7), (0x85944171f73967e8u64 % 7) as u32);
    }

    #[test]
    fn repair_drops_torn_lines_duplicates_and_wrong_widths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "a,b\n1,x\n2,y\n1,z\n3\n4,w\n5,tor").unwrap();
        let mut seen = HashSet::new();
        let n = repair(&p, &["a", "b"], |r| seen.insert(r.get(0).unwrap().to_string())).unwrap();
        assert_eq!(n, 3);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a,b\n1,x\n2,y\n4,w\n");
    }

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
}
