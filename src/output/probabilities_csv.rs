//! `probabilities.csv` (`[output] probabilities = true`): `path`, then one column per
//! class with its probability (6 decimals; softmax, or the per-class sigmoid of a
//! multi-label model), one row per image processed ok. What per-class AUROC and the like
//! are computed from.
//!
//! Columns are named by the labels file; a name that occurs more than once (ImageNet has
//! two "crane" and two "maillot" classes) gets `#index` appended at each occurrence, so
//! every column name is unique.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::labels::Labels;

pub const FILE: &str = "probabilities.csv";

/// The header for a model with these labels.
pub fn header(labels: &Labels) -> Vec<String> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    (0..labels.len()).for_each(|k| *seen.entry(labels.name(k)).or_default() += 1);
    let mut h = vec!["path".to_string()];
    h.extend((0..labels.len()).map(|k| match seen[labels.name(k)] {
        1 => labels.name(k).to_string(),
        _ => format!("{}#{k}", labels.name(k)),
    }));
    h
}

/// Appends rows to the table.
pub struct ProbabilitiesCsv {
    path: PathBuf,
    w: csv::Writer<BufWriter<File>>,
}

impl ProbabilitiesCsv {
    pub fn create(path: &Path, header: &[String]) -> Result<ProbabilitiesCsv> {
        let f = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut w = csv::Writer::from_writer(BufWriter::new(f));
        w.write_record(header).map_err(|e| Error::output(path, e.to_string()))?;
        w.flush().map_err(|e| Error::io(path, e))?;
        Ok(ProbabilitiesCsv { path: path.to_path_buf(), w })
    }

    pub fn append(path: &Path) -> Result<ProbabilitiesCsv> {
        let f = std::fs::OpenOptions::new().append(true).open(path).map_err(|e| Error::io(path, e))?;
        let w = csv::WriterBuilder::new().has_headers(false).from_writer(BufWriter::new(f));
        Ok(ProbabilitiesCsv { path: path.to_path_buf(), w })
    }

    pub fn write(&mut self, rel: &str, probs: &[f32]) -> Result<()> {
        let row = std::iter::once(rel.to_string()).chain(probs.iter().map(|p| format!("{p:.6}")));
        self.w.write_record(row).map_err(|e| Error::output(&self.path, e.to_string()))
    }

    pub fn flush(&mut self) -> Result<()> {
        self.w.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// Rewrites the table keeping its header and the first complete row of each path `keep`
/// accepts (see `resume`); a header other than `header` is refused.
pub fn repair(path: &Path, header: &[String], mut keep: impl FnMut(&str) -> bool) -> Result<()> {
    let mut bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => bytes.truncate(i + 1),
        None => bytes.clear(),
    }
    let mut rd = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes.as_slice());
    let found: Vec<String> = rd.headers().map(|h| h.iter().map(str::to_string).collect()).unwrap_or_default();
    if !found.is_empty() && found != header {
        return Err(Error::output(path, "has other columns than this model's classes; use --force to start over"));
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).map_err(|e| Error::output(path, e.to_string()))?;
    let mut seen = std::collections::HashSet::new();
    for rec in rd.records().filter_map(|r| r.ok()) {
        let p = rec.get(0).unwrap_or("").to_string();
        if rec.len() == header.len() && !seen.contains(&p) && keep(&p) {
            w.write_record(&rec).map_err(|e| Error::output(path, e.to_string()))?;
            seen.insert(p);
        }
    }
    let data = w.into_inner().map_err(|e| Error::output(path, e.to_string()))?;
    super::atomic_write(path, &data).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_names_get_their_index() {
        let l = Labels::from_names(vec!["crane".into(), "cat".into(), "crane".into()]);
        assert_eq!(header(&l), vec!["path", "crane#0", "cat", "crane#2"]);
    }
}
