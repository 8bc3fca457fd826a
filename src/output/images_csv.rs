//! `images.csv`: one row per input file, in the order results arrive.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::pipeline::ImageRecord;
use crate::plan::Labels;

pub const HEADER: &[&str] = &[
    "path",
    "status",
    "error",
    "width",
    "height",
    "class_index",
    "class_name",
    "score",
    "top_k",
    "logit_check",
    "ms",
    "frames",
    "pixel_spacing",
    "patient_id",
    "study_uid",
    "sop_instance_uid",
];

pub struct ImagesCsv {
    path: PathBuf,
    w: csv::Writer<BufWriter<File>>,
}

impl ImagesCsv {
    /// Opens an existing table (repaired by `resume`) to append rows.
    pub fn append(path: &Path) -> Result<ImagesCsv> {
        let f = std::fs::OpenOptions::new().append(true).open(path).map_err(|e| Error::io(path, e))?;
        let w = csv::WriterBuilder::new().has_headers(false).from_writer(BufWriter::new(f));
        Ok(ImagesCsv { path: path.to_path_buf(), w })
    }

    pub fn create(path: &Path) -> Result<ImagesCsv> {
        let f = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut w = csv::Writer::from_writer(BufWriter::new(f));
        w.write_record(HEADER).map_err(|e| Error::output(path, e.to_string()))?;
        w.flush().map_err(|e| Error::io(path, e))?;
        Ok(ImagesCsv { path: path.to_path_buf(), w })
    }

    pub fn write(&mut self, r: &ImageRecord, labels: &Labels) -> Result<()> {
        let (status, error) = match &r.outcome {
            Ok(_) => ("ok", String::new()),
            Err(e) => ("error", e.one_line()),
        };
        let dims = r.info.as_ref().map(|i| (i.width.to_string(), i.height.to_string())).unwrap_or_default();
        let mut fields: Vec<String> = vec![r.rel.clone(), status.into(), error, dims.0, dims.1];
        match &r.outcome {
            Ok(o) => {
                let p = &o.prediction;
                let k = p.top1();
                fields.push(k.to_string());
                fields.push(labels.name(k).to_string());
                fields.push(format!("{:.6}", p.probs[k]));
                fields.push(p.top.iter().map(|&i| format!("{i}:{:.6}", p.probs[i])).collect::<Vec<_>>().join(";"));
                fields.push(o.logit_check.map(|v| format!("{v:.3e}")).unwrap_or_default());
            }
            Err(_) => fields.extend(std::iter::repeat_n(String::new(), 5)),
        }
        fields.push(format!("{:.1}", r.ms));
        let meta = r.info.as_ref().map(|i| i.meta.clone()).unwrap_or_default();
        fields.push(meta.frames.map(|f| f.to_string()).unwrap_or_default());
        // Row spacing \ column spacing in mm, as DICOM writes Pixel Spacing.
        fields.push(meta.pixel_spacing.map(|(r, c)| format!("{r}\\{c}")).unwrap_or_default());
        fields.push(meta.patient_id.unwrap_or_default());
        fields.push(meta.study_uid.unwrap_or_default());
        fields.push(meta.sop_instance_uid.unwrap_or_default());
        self.w.write_record(&fields).map_err(|e| Error::output(&self.path, e.to_string()))
    }

    pub fn flush(&mut self) -> Result<()> {
        self.w.flush().map_err(|e| Error::io(&self.path, e))
    }
}
