//! Resuming a run: an output folder that already holds a run of the same configuration
//! is continued, not redone.
//!
//! The configuration is identified by its fingerprint ([`crate::plan::fingerprint`]). On
//! resume, `images.csv` and `boxes.csv` are repaired and rewritten atomically: a torn last
//! line (a run killed mid-write) is dropped, rows are kept once per image, `error` rows are
//! dropped with `--retry-errors`, and boxes are kept only for images whose row survived,
//! so the finished folder has exactly one row per image whatever happened before.

use std::collections::HashSet;
use std::path::Path;

use crate::error::{Error, Result};
use crate::output::artefacts::Artefacts;
use crate::output::boxes_csv::BoxRow;
use crate::output::images_csv::{ImageRow, Status};
use crate::output::manifest::{ManifestError, RunManifest, Shard};
use crate::output::probabilities_csv;
use crate::output::table::{self, Row};

/// Files a run owns in its output folder (removed by `--force`).
pub const RUN_FILES: &[&str] = &["images.csv", "boxes.csv", "probabilities.csv", "run.json"];
/// Folders of per-image artefacts (merge links their files).
pub const RUN_DIRS: &[&str] = &["masks", "overlays", "maps"];

/// What an earlier run left.
#[derive(Debug, Default)]
pub struct Previous {
    /// Relative paths already recorded (and therefore skipped).
    pub done: HashSet<String>,
    pub ok: u64,
    pub error: u64,
}

/// What `--force` removed of a previous run.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Removed {
    pub tables: Vec<&'static str>,
    pub masks: usize,
    pub overlays: usize,
    pub maps: usize,
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self.tables.iter().map(|t| t.to_string()).collect();
        for (n, what) in [(self.masks, "masks"), (self.overlays, "overlays"), (self.maps, "map files")] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if parts.is_empty() {
            write!(f, "nothing")
        } else {
            write!(f, "{}", parts.join(", "))
        }
    }
}

/// `--force`: removes exactly what a previous run in `out` wrote: its tables, `run.json`,
/// and the masks, overlays and maps of the images its tables list. Anything else in the
/// folder (a user's `masks/my_annotation.png`, the lock file) stays, and so do folders
/// left with anything in them.
pub fn force_clear(out: &Path) -> Result<Removed> {
    let mut paths: HashSet<String> = HashSet::new();
    let read = |name: &str| std::fs::read(out.join(name)).ok();
    if let Some(rows) = read("images.csv").and_then(|b| table::read_bytes::<ImageRow>(&b).ok()) {
        paths.extend(rows.rows.into_iter().flatten().map(|r| r.path));
    }
    if let Some(rows) = read("boxes.csv").and_then(|b| table::read_bytes::<BoxRow>(&b).ok()) {
        paths.extend(rows.rows.into_iter().flatten().map(|r| r.path));
    }
    let artefacts = Artefacts::new(out, &Default::default());
    let mut removed = Removed::default();
    let mut dirs = HashSet::new();
    for rel in &paths {
        let [masks, overlays, maps] = artefacts.existing(rel);
        removed.masks += masks.len();
        removed.overlays += overlays.len();
        removed.maps += maps.len();
        for p in masks.iter().chain(&overlays).chain(&maps) {
            std::fs::remove_file(p).map_err(|e| Error::io(p, e))?;
            dirs.extend(p.parent().map(Path::to_path_buf));
        }
    }
    // Folders the removal emptied, deepest first, up to the artefact folders themselves.
    let mut dirs: Vec<_> =
        dirs.into_iter().flat_map(|d| d.ancestors().map(Path::to_path_buf).collect::<Vec<_>>()).collect();
    dirs.retain(|d| d.starts_with(out) && d != out);
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.dedup();
    for d in dirs {
        let _ = std::fs::remove_dir(d); // only succeeds when empty
    }
    for f in RUN_FILES {
        let p = out.join(f);
        if p.is_file() {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            removed.tables.push(f);
        }
    }
    Ok(removed)
}

/// How to start in `out`; `probabilities` is the header of `probabilities.csv` when the
/// run writes one.
pub fn prepare(
    out: &Path,
    fingerprint: &str,
    shard: Option<Shard>,
    retry_errors: bool,
    probabilities: Option<&[String]>,
) -> Result<Option<Previous>> {
    let manifest = out.join("run.json");
    let images = out.join("images.csv");
    if !manifest.exists() {
        if images.exists() {
            return Err(Error::output(out, "holds an images.csv but no run.json: not a cambox run folder cambox can resume; use --force to start over"));
        }
        return Ok(None);
    }
    let old = RunManifest::read(out).map_err(|e| match e {
        ManifestError::Missing(e) => Error::io(&manifest, e),
        ManifestError::Unreadable(e) => Error::output(&manifest, format!("unreadable run.json: {e}")),
    })?;
    if old.fingerprint != fingerprint {
        return Err(Error::output(
            out,
            format!(
                "holds a run with a different configuration (fingerprint {} here, {} now: model, preprocessing, method or localisation differ); use --force to start over, or another --out",
                short(&old.fingerprint),
                short(fingerprint)
            ),
        ));
    }
    // A folder holds one shard of one study: resuming it as another shard (or unsharded)
    // would mix the two sets of images under one shard's name.
    if old.shard != shard {
        let say = |s: Option<Shard>| match s {
            Some(s) => format!("shard {}/{}", s.index, s.count),
            None => "no shard (the whole input)".to_string(),
        };
        return Err(Error::output(
            out,
            format!(
                "holds {} of a run, and this run is {}; use the shard's own folder, --force to start over, or another --out",
                say(old.shard),
                say(shard)
            ),
        ));
    }
    if !images.exists() {
        return Ok(None);
    }
    let mut prev = Previous::default();
    let mut ok_paths = HashSet::new();
    let kept_images = repair::<ImageRow>(&images, |row| {
        if prev.done.contains(&row.path) || (row.status == Status::Error && retry_errors) {
            return false;
        }
        match row.status {
            Status::Ok => {
                prev.ok += 1;
                ok_paths.insert(row.path.clone());
            }
            Status::Error => prev.error += 1,
        }
        prev.done.insert(row.path.clone());
        true
    })?;
    debug_assert!(kept_images as u64 == prev.ok + prev.error);
    let boxes = out.join("boxes.csv");
    if boxes.exists() {
        repair::<BoxRow>(&boxes, |row| ok_paths.contains(&row.path))?;
    }
    let probs = out.join(probabilities_csv::FILE);
    if let (Some(header), true) = (probabilities, probs.exists()) {
        probabilities_csv::repair(&probs, header, |p| ok_paths.contains(p))?;
    }
    Ok(Some(prev))
}

fn short(fp: &str) -> &str {
    &fp[..fp.len().min(12)]
}

/// Rewrites a table keeping its header and the complete rows `keep` accepts; a last line
/// without its newline (torn by a kill) and rows that do not read as `R` (wrong width,
/// bad values) are dropped. Returns the number of rows kept.
fn repair<R: Row>(path: &Path, mut keep: impl FnMut(&R) -> bool) -> Result<usize> {
    let mut bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => bytes.truncate(i + 1),
        None => bytes.clear(),
    }
    let read = table::read_bytes::<R>(&bytes).map_err(|e| Error::output(path, e))?;
    if !read.header.is_empty() && read.header != R::HEADER {
        return Err(Error::output(
            path,
            "was written by another cambox version (different columns); use --force to start over",
        ));
    }
    let kept: Vec<R> = read.rows.into_iter().filter_map(|r| r.ok()).filter(|r| keep(r)).collect();
    table::write_all(path, &kept)?;
    Ok(kept.len())
}

/// Stable shard of a relative path: FNV-1a 64-bit over its UTF-8 bytes, modulo the
/// shard count. Fixed by definition, so identical on every platform and version.
pub fn shard_of(rel: &str, count: u32) -> u32 {
    (fnv1a(rel) % count as u64) as u32
}

/// FNV-1a 64-bit of a string's UTF-8 bytes: a hash fixed by definition.
pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
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

    /// A two-column row type for the repair test.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Pair {
        a: u32,
        b: String,
    }

    impl Row for Pair {
        const HEADER: &'static [&'static str] = &["a", "b"];
    }

    #[test]
    fn repair_drops_torn_lines_duplicates_and_wrong_widths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "a,b\n1,x\n2,y\n1,z\n3\n4,w\nq,v\n5,tor").unwrap();
        let mut seen = HashSet::new();
        let n = repair::<Pair>(&p, |r| seen.insert(r.a)).unwrap();
        assert_eq!(n, 3);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a,b\n1,x\n2,y\n4,w\n");
        std::fs::write(&p, "a,c\n1,x\n").unwrap();
        assert!(repair::<Pair>(&p, |_| true).unwrap_err().to_string().contains("another cambox version"));
    }
}
