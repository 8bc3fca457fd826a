//! `images.csv`: one row per input file, in the order results arrive.

use serde::{Deserialize, Serialize};

use super::fields::{ClassProbs, Millis, Prob, Sci3, Spacing};
use super::table::Row;

/// Whether the file was processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Error,
}

/// One row of `images.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRow {
    /// Relative to its input root, `/`-separated.
    pub path: String,
    pub status: Status,
    /// Why the file failed, in one line (empty when ok).
    pub error: String,
    /// Original size, when the file could be decoded.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The top-1 class.
    pub class_index: Option<usize>,
    pub class_name: String,
    /// Probability of the top-1 class.
    pub score: Option<Prob>,
    /// The top-k classes and their probabilities, best first.
    pub top_k: ClassProbs,
    /// max |mean(M_k) + b_k - logit_k| over the top-k classes (CAM heads only).
    pub logit_check: Option<Sci3>,
    /// Processing time of the image.
    pub ms: Millis,
    #[serde(default)]
    pub frames: Option<u32>,
    #[serde(default)]
    pub pixel_spacing: Option<Spacing>,
    #[serde(default)]
    pub patient_id: String,
    #[serde(default)]
    pub study_uid: String,
    #[serde(default)]
    pub sop_instance_uid: String,
}

impl ImageRow {
    pub fn ok(&self) -> bool {
        self.status == Status::Ok
    }
}

impl Row for ImageRow {
    const HEADER: &'static [&'static str] = &[
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::table::{read_bytes, to_bytes};
    use std::path::Path;

    #[test]
    fn rows_read_back_to_the_same_bytes() {
        let text = "path,status,error,width,height,class_index,class_name,score,top_k,logit_check,ms,frames,pixel_spacing,patient_id,study_uid,sop_instance_uid\n\
                    d/a.png,ok,,517,333,285,Egyptian cat,0.912345,285:0.912345;281:0.050000,1.234e-6,12.3,,,,,\n\
                    \"b, c.dcm\",ok,,536,356,1,\"x, \"\"y\"\"\",0.500000,1:0.500000;0:0.500000,0.000e0,3.0,1,0.139\\0.139,P1,1.2.3,1.2.3.4\n\
                    e.png,error,cannot decode: not an image,,,,,,,,0.1,,,,,\n";
        let read = read_bytes::<ImageRow>(text.as_bytes()).unwrap();
        assert_eq!(read.header, ImageRow::HEADER);
        let rows: Vec<ImageRow> = read.rows.into_iter().map(Result::unwrap).collect();
        assert_eq!(rows[1].pixel_spacing, Some(Spacing(0.139, 0.139)));
        assert_eq!(rows[0].top_k, ClassProbs(vec![(285, 0.912345), (281, 0.05)]));
        assert!(!rows[2].ok() && rows[2].width.is_none());
        assert_eq!(String::from_utf8(to_bytes(Path::new("t"), &rows).unwrap()).unwrap(), text);
    }
}
