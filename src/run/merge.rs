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
use crate::output::boxes_csv::BoxRow;
use crate::output::images_csv::ImageRow;
use crate::output::manifest::{now, Counts, ManifestError, RunManifest, RunState, Shard};
use crate::output::probabilities_csv;
use crate::output::table::{self, Row};
use crate::run::lock::FolderLock;
use crate::run::resume::RUN_DIRS;

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
    manifest: RunManifest,
    shard: Shard,
}

fn read_manifest(dir: &Path) -> Result<ShardRun> {
    let manifest = RunManifest::read(dir).map_err(|e| match e {
        ManifestError::Missing(_) => Error::output(dir, format!("not a cambox run folder ({e})")),
        ManifestError::Unreadable(m) => Error::output(dir.join(RunManifest::FILE), format!("unreadable: {m}")),
    })?;
    let Some(shard) = manifest.shard else {
        return Err(Error::output(dir, "was not run with --shard I/N; nothing to merge"));
    };
    Ok(ShardRun { dir: dir.to_path_buf(), manifest, shard })
}

fn read_rows<R: Row>(path: &Path) -> Result<Vec<R>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let read = table::read_bytes::<R>(&bytes).map_err(|e| Error::output(path, e))?;
    if read.header != R::HEADER {
        return Err(Error::output(path, "unexpected columns (another cambox version?)"));
    }
    read.rows.into_iter().map(|r| r.map_err(|e| Error::output(path, e))).collect()
}

/// Checks that the shards are one complete run: one configuration, one count, each
/// index once, all completed.
fn check_shards(shards: &[ShardRun]) -> Result<()> {
    let first = &shards[0];
    let (fp, count) = (&first.manifest.fingerprint, first.shard.count);
    for s in shards {
        if s.manifest.fingerprint != *fp {
            return Err(Error::output(&s.dir, format!("has a different configuration than {} (fingerprints differ); shards of one run share one configuration", first.dir.display())));
        }
        if s.shard.count != count {
            return Err(Error::output(
                &s.dir,
                format!(
                    "is shard {}/{}, but {} is a shard of {count}",
                    s.shard.index,
                    s.shard.count,
                    first.dir.display()
                ),
            ));
        }
        if s.manifest.state != RunState::Completed {
            return Err(Error::output(
                &s.dir,
                format!(
                    "shard {}/{} is not complete (state {}): run it again to resume, then merge",
                    s.shard.index,
                    s.shard.count,
                    serde_json::to_string(&s.manifest.state).expect("state")
                ),
            ));
        }
    }
    let mut by_index: BTreeMap<u32, &Path> = BTreeMap::new();
    for s in shards {
        if let Some(other) = by_index.insert(s.shard.index, &s.dir) {
            return Err(Error::output(
                &s.dir,
                format!("and {} are both shard {}/{}", other.display(), s.shard.index, s.shard.count),
            ));
        }
    }
    let missing: Vec<String> = (0..count).filter(|i| !by_index.contains_key(i)).map(|i| i.to_string()).collect();
    if !missing.is_empty() {
        return Err(Error::Usage(format!(
            "the shard set is incomplete: missing shard {} of {count}",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// Hard-links (or copies) every artefact of the shards into `out`; returns how many.
fn link_artefacts(shards: &[ShardRun], out: &Path) -> Result<usize> {
    let mut files = 0;
    for s in shards {
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
    Ok(files)
}

/// `probabilities.csv` of every shard, when they wrote one, joined and sorted by path.
fn merge_probabilities(shards: &[ShardRun], out: &Path) -> Result<()> {
    let files: Vec<PathBuf> = shards.iter().map(|s| s.dir.join(probabilities_csv::FILE)).collect();
    if !files.iter().any(|f| f.exists()) {
        return Ok(());
    }
    let mut header: Option<csv::StringRecord> = None;
    let mut rows = Vec::new();
    for f in &files {
        let mut rd = csv::Reader::from_path(f).map_err(|e| Error::output(f, e.to_string()))?;
        let h = rd.headers().map_err(|e| Error::output(f, e.to_string()))?.clone();
        if header.as_ref().is_some_and(|first| *first != h) {
            return Err(Error::output(f, "has other columns than the first shard's probabilities.csv"));
        }
        header = Some(h);
        for r in rd.records() {
            rows.push(r.map_err(|e| Error::output(f, e.to_string()))?);
        }
    }
    rows.sort_by(|a, b| a.get(0).cmp(&b.get(0)));
    let path = out.join(probabilities_csv::FILE);
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in header.iter().chain(&rows) {
        w.write_record(r).map_err(|e| Error::output(&path, e.to_string()))?;
    }
    let data = w.into_inner().map_err(|e| Error::output(&path, e.to_string()))?;
    crate::output::atomic_write(&path, &data).map_err(|e| Error::io(&path, e))
}

pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<MergeSummary> {
    if dirs.is_empty() {
        return Err(Error::Usage("merge needs at least one shard folder".into()));
    }
    let shards: Vec<ShardRun> = dirs.iter().map(|d| read_manifest(d)).collect::<Result<_>>()?;
    check_shards(&shards)?;
    if out.join(RunManifest::FILE).exists() {
        return Err(Error::output(out, "already holds a run; merge into a new folder"));
    }

    let mut images: Vec<ImageRow> = Vec::new();
    let mut boxes: Vec<BoxRow> = Vec::new();
    let mut owner: HashMap<String, &Path> = HashMap::new();
    for s in &shards {
        for r in read_rows::<ImageRow>(&s.dir.join("images.csv"))? {
            if let Some(other) = owner.insert(r.path.clone(), &s.dir) {
                return Err(Error::output(
                    &s.dir,
                    format!("image '{}' is also recorded by {}", r.path, other.display()),
                ));
            }
            images.push(r);
        }
        boxes.extend(read_rows::<BoxRow>(&s.dir.join("boxes.csv"))?);
    }
    images.sort_by(|a, b| a.path.cmp(&b.path));
    boxes.sort_by(|a, b| a.path.cmp(&b.path));

    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let _lock = FolderLock::acquire(out, "merge")?;
    if out.join(RunManifest::FILE).exists() {
        return Err(Error::output(out, "already holds a run; merge into a new folder"));
    }
    let files = link_artefacts(&shards, out)?;
    table::write_all(&out.join("boxes.csv"), &boxes)?;
    merge_probabilities(&shards, out)?;
    table::write_all(&out.join("images.csv"), &images)?;

    let ok = images.iter().filter(|r| r.ok()).count() as u64;
    let mut manifest = shards[0].manifest.clone();
    manifest.shard = None;
    manifest.merged_from = Some(shards.iter().map(|s| s.dir.display().to_string()).collect());
    manifest.counts = Counts { ok, error: images.len() as u64 - ok };
    manifest.finished = Some(now());
    manifest.config.output.dir = Some(out.to_path_buf());
    manifest.write(out)?;
    Ok(MergeSummary { shards: shards.len(), images: images.len(), boxes: boxes.len(), files })
}
