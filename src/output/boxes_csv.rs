//! `boxes.csv`: one row per box, in original-image pixels, half-open (`x2 - x1` is the
//! width).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::pipeline::ImageRecord;
use crate::plan::Labels;

pub const HEADER: &[&str] = &[
    "path",
    "class_index",
    "class_name",
    "score",
    "box_score",
    "x1",
    "y1",
    "x2",
    "y2",
    "component_area",
    "threshold",
    "threshold_rule",
    "preset",
    "method",
];

pub struct BoxesCsv {
    path: PathBuf,
    w: csv::Writer<BufWriter<File>>,
}

impl BoxesCsv {
    /// Opens an existing table (repaired by `resume`) to append rows.
    pub fn append(path: &Path) -> Result<BoxesCsv> {
        let f = std::fs::OpenOptions::new().append(true).open(path).map_err(|e| Error::io(path, e))?;
        let w = csv::WriterBuilder::new().has_headers(false).from_writer(BufWriter::new(f));
        Ok(BoxesCsv { path: path.to_path_buf(), w })
    }

    pub fn create(path: &Path) -> Result<BoxesCsv> {
        let f = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut w = csv::Writer::from_writer(BufWriter::new(f));
        w.write_record(HEADER).map_err(|e| Error::output(path, e.to_string()))?;
        w.flush().map_err(|e| Error::io(path, e))?;
        Ok(BoxesCsv { path: path.to_path_buf(), w })
    }

    pub fn write(&mut self, r: &ImageRecord, labels: &Labels, preset: &str, method: &str) -> Result<()> {
        let Ok(o) = &r.outcome else { return Ok(()) };
        for set in &o.boxes {
            for b in &set.boxes {
                let rec = [
                    r.rel.clone(),
                    set.class.to_string(),
                    labels.name(set.class).to_string(),
                    format!("{:.6}", o.prediction.probs[set.class]),
                    format!("{:.6}", b.box_score),
                    b.x1.to_string(),
                    b.y1.to_string(),
                    b.x2.to_string(),
                    b.y2.to_string(),
                    b.area.to_string(),
                    format!("{}", b.threshold_value),
                    b.threshold.to_string(),
                    preset.to_string(),
                    method.to_string(),
                ];
                self.w.write_record(&rec).map_err(|e| Error::output(&self.path, e.to_string()))?;
            }
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.w.flush().map_err(|e| Error::io(&self.path, e))
    }
}
