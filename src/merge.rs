//! `cambox merge`: the output folders of a sharded run (`--shard I/N`, one per cluster
//! job) into one folder, as if the run had been done in one piece.
//!
//! Refuses, naming the folder, anything that would make the result silently wrong: shards
//! of different configurations (fingerprints), a missing or duplicated shard, a shard that
//! did not complete, an image recorded by two shards. Per-image files are hard-linked
//! (no copy on the same file system; copied otherwise); the tables are rewritten sorted by
//! path, so the merged folder does not depend on the order jobs finished in.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::output::manifest::now;
use crate::output::{atomic_write, boxes_csv, images_csv};
use crate::resume::RUN_DIRS;

/// What was merged.
#[derive(Debug)]
pub struct MergeSummary {
    pub shards: usize,
    pub images: usize,
    pub boxes: usize,
    pub files: usize,
}

struct ShardRun {
    dir: PathBuf,
    manifest: serde_json::Value,
    index: u64,
    count: u64,
}

fn read_manifest(dir: &Path) -> Result<ShardRun> {
    let p = dir.join("run.json");
    let text = std::fs::read_to_string(&p)
        .map_err(|e| Error::output(dir, format!("not a cambox run folder (cannot read run.json: {e})")))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::output(&p, format!("unreadable: {e}")))?;
    let shard = &manifest["shard"];
    let (Some(index), Some(count)) = (shard["index"].as_u64(), shard["count"].as_u64()) else {
        return Err(Error::output(dir, "was not run with --shard I/N; nothing to merge"));
    };
    Ok(ShardRun { dir: dir.to_path_buf(), manifest, index, count })
}

fn read_rows(path: &Path, header: &[&str]) -> Result<Vec<csv::StringRecord>> {
    let mut r = csv::Reader::from_path(path).map_err(|e| Error::output(path, e.to_string()))?;
    let h: Vec<String> =
        r.headers().map_err(|e| Error::output(path, e.to_string()))?.iter().map(str::to_string).collect();
    if h != header {
        return Err(Error::output(path, "unexpected columns (another cambox version?)"));
    }
    r.records().map(|rec| rec.map_err(|e| Error::output(path, e.to_string()))).collect()
}

fn write_table(path: &Path, header: &[&str], rows: &[csv::StringRecord]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).map_err(|e| Error::output(path, e.to_string()))?;
    for r in rows {
        w.write_record(r).map_err(|e| Error::output(path, e.to_string()))?;
    }
    let data = w.into_inner().map_err(|e| Error::output(path, e.to_string()))?;
    atomic_write(path, &data).map_err(|e| Error::io(path, e))
}

pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<MergeSummary> {
    if dirs.is_empty() {
        return Err(Error::Usage("merge needs at least one shard folder".into()));
    }
    let shards: Vec<ShardRun> = dirs.iter().map(|d| read_manifest(d)).collect::<Result<_>>()?;
    let first = &shards[0];
    let fp = first.manifest["fingerprint"].as_str().unwrap_or("");
    for s in &shards {
        if s.manifest["fingerprint"].as_str().unwrap_or("") != fp {
            return Err(Error::output(&s.dir, format!("has a different configuration than {} (fingerprints differ); shards of one run share one configuration", first.dir.display())));
        }
        if s.count != first.count {
            return Err(Error::output(
                &s.dir,
                format!("is shard {}/{}, but {} is a shard of {}", s.index, s.count, first.dir.display(), first.count),
            ));
        }
        if s.manifest["state"] != "completed" {
            return Err(Error::output(
                &s.dir,
                format!(
                    "shard {}/{} is not complete (state {}): run it again to resume, then merge",
                    s.index, s.count, s.manifest["state"]
                ),
            ));
        }
    }
    let mut by_index: BTreeMap<u64, &Path> = BTreeMap::new();
    for s in &shards {
        if let Some(other) = by_index.insert(s.index, &s.dir) {
            return Err(Error::output(
                &s.dir,
                format!("and {} are both shard {}/{}", other.display(), s.index, s.count),
            ));
        }
    }
    let missing: Vec<String> = (0..first.count).filter(|i| !by_index.contains_key(i)).map(|i| i.to_string()).collect();
    if !missing.is_empty() {
        return Err(Error::Usage(format!(
            "the shard set is incomplete: missing shard {} of {}",
            missing.join(", "),
            first.count
        )));
    }
    if out.join("run.json").exists() {
        return Err(Error::output(out, "already holds a run; merge into a new folder"));
    }

    let mut images = Vec::new();
    let mut boxes = Vec::new();
    let mut owner: HashMap<String, &Path> = HashMap::new();
    for s in &shards {
        for r in read_rows(&s.dir.join("images.csv"), images_csv::HEADER)? {
            let path = r.get(0).unwrap_or("").to_string();
            if let Some(other) = owner.insert(path.clone(), &s.dir) {
                return Err(Error::output(&s.dir, format!("image '{path}' is also recorded by {}", other.display())));
            }
            images.push(r);
        }
        boxes.extend(read_rows(&s.dir.join("boxes.csv"), boxes_csv::HEADER)?);
    }
    images.sort_by(|a, b| a.get(0).cmp(&b.get(0)));
    boxes.sort_by(|a, b| a.get(0).cmp(&b.get(0)));

    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut files = 0;
    for s in &shards {
        for d in RUN_DIRS {
            let src = s.dir.join(d);
            if !src.is_dir() {
                continue;
            }
            for e in walkdir::WalkDir::new(&src).into_iter() {
                let e = e.map_err(|e| Error::output(&src, e.to_string()))?;
                if !e.file_type().is_file() {
                    continue;
                }
                let rel = e.path().strip_prefix(&s.dir).expect("under the shard");
                let dst = out.join(rel);
                if let Some(parent) = dst.parent() {
                    std::fs::create_dir_all(parent).map_err(|err| Error::io(parent, err))?;
                }
                if std::fs::hard_link(e.path(), &dst).is_err() {
                    std::fs::copy(e.path(), &dst).map_err(|err| Error::io(&dst, err))?;
                }
                files += 1;
            }
        }
    }
    write_table(&out.join("boxes.csv"), boxes_csv::HEADER, &boxes)?;
    write_table(&out.join("images.csv"), images_csv::HEADER, &images)?;

    let ok = images.iter().filter(|r| r.get(1) == Some("ok")).count();
    let mut manifest = first.manifest.clone();
    manifest["shard"] = serde_json::Value::Null;
    manifest["merged_from"] = serde_json::json!(shards.iter().map(|s| s.dir.display().to_string()).collect::<Vec<_>>());
    manifest["counts"] = serde_json::json!({ "ok": ok, "error": images.len() - ok });
    manifest["finished"] = serde_json::json!(now());
    manifest["config"]["output"]["dir"] = serde_json::json!(out.display().to_string());
    let mut text = serde_json::to_string_pretty(&manifest).expect("json");
    text.push('\n');
    let p = out.join("run.json");
    atomic_write(&p, text.as_bytes()).map_err(|e| Error::io(&p, e))?;
    Ok(MergeSummary { shards: shards.len(), images: images.len(), boxes: boxes.len(), files })
}
