//! Resuming `cambox faithfulness`: every image's rows are appended to
//! `faithfulness.rows.jsonl` (one JSON line an image, curves included) as soon as they are
//! measured, beside `faithfulness.options.json`. A later call into the same `--out` with the
//! same options reads them back and measures only the images not yet there, so an overnight
//! job that is killed loses at most the images in flight. Other options in the same folder
//! are refused: their rows would not be comparable.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{FaithOptions, FaithRow};
use crate::error::Error;

/// What must match for rows to be reused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Key {
    run: PathBuf,
    steps: usize,
    fill: super::measure::Fill,
    baselines: Vec<super::BaselineMap>,
    road: bool,
    seed: u64,
}

/// The rows measured so far, and the file new ones go to.
pub struct Journal {
    path: PathBuf,
    rows: Vec<FaithRow>,
    file: std::fs::File,
}

impl Journal {
    pub fn open(o: &FaithOptions) -> Result<Journal, Error> {
        std::fs::create_dir_all(&o.out).map_err(|e| Error::io(&o.out, e))?;
        let key = Key {
            run: o.run.clone(),
            steps: o.steps,
            fill: o.fill,
            baselines: o.baselines.clone(),
            road: o.road,
            seed: o.seed,
        };
        let key_path = o.out.join("faithfulness.options.json");
        let path = o.out.join("faithfulness.rows.jsonl");
        let mut rows = Vec::new();
        if let Ok(text) = std::fs::read_to_string(&key_path) {
            let old: Option<Key> = serde_json::from_str(&text).ok();
            if old.as_ref() != Some(&key) {
                return Err(Error::output(
                    &o.out,
                    "holds faithfulness results of other options (or another run): give another --out",
                ));
            }
            rows = read_rows(&path)?;
            // Rewritten with the complete lines only: a line a crash cut must not be
            // continued by the next append.
            let mut text = String::new();
            let mut by_image: Vec<Vec<&FaithRow>> = Vec::new();
            for r in &rows {
                match by_image.last_mut() {
                    Some(last) if last[0].rel == r.rel => last.push(r),
                    _ => by_image.push(vec![r]),
                }
            }
            for image in by_image {
                text.push_str(&serde_json::to_string(&image).expect("serialisable"));
                text.push('\n');
            }
            crate::output::atomic_write(&path, text.as_bytes()).map_err(|e| Error::io(&path, e))?;
        } else {
            let text = serde_json::to_string_pretty(&key).expect("serialisable");
            crate::output::atomic_write(&key_path, text.as_bytes()).map_err(|e| Error::io(&key_path, e))?;
            let _ = std::fs::remove_file(&path);
        }
        let file =
            std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io(&path, e))?;
        Ok(Journal { path, rows, file })
    }

    /// Images whose rows are already recorded.
    pub fn done_images(&self) -> BTreeSet<String> {
        self.rows.iter().map(|r| r.rel.clone()).collect()
    }

    /// Records one image's rows (synced, so a row on disk is a row that counts).
    pub fn append(&mut self, rows: &[FaithRow]) -> Result<(), String> {
        let mut text = serde_json::to_string(rows).expect("serialisable");
        text.push('\n');
        let e = |e: std::io::Error| format!("{}: {e}", self.path.display());
        self.file.write_all(text.as_bytes()).map_err(e)?;
        self.file.sync_data().map_err(e)
    }

    /// The rows read back at start.
    pub fn take_rows(&mut self) -> Vec<FaithRow> {
        std::mem::take(&mut self.rows)
    }
}

/// The complete lines of the journal (a line cut by a crash is dropped: its image is
/// measured again).
fn read_rows(path: &std::path::Path) -> Result<Vec<FaithRow>, Error> {
    let Ok(f) = std::fs::File::open(path) else { return Ok(Vec::new()) };
    let mut rows = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if let Ok(r) = serde_json::from_str::<Vec<FaithRow>>(&line) {
            rows.extend(r);
        }
    }
    Ok(rows)
}
