//! `boxes.csv`: one row per box, in original-image pixels, half-open (`x2 - x1` is the
//! width).

use serde::{Deserialize, Serialize};

use super::fields::{Prob, Shortest};
use super::table::Row;
use crate::stage::localise::{Preset, Threshold};
use crate::stage::maps::MapMethod;

/// One row of `boxes.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxRow {
    pub path: String,
    pub class_index: usize,
    pub class_name: String,
    /// Probability of the class for the image.
    pub score: Prob,
    /// Mean of the normalised map inside the component.
    pub box_score: Prob,
    pub x1: u32,
    pub y1: u32,
    pub x2: u32,
    pub y2: u32,
    /// Pixels of the component.
    pub component_area: u64,
    /// The cut value on this map (0-1 map, or 0-255 for quantised recipes).
    pub threshold: Shortest,
    pub threshold_rule: Threshold,
    pub preset: Preset,
    pub method: MapMethod,
}

impl Row for BoxRow {
    const HEADER: &'static [&'static str] = &[
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::table::{read_bytes, to_bytes};
    use std::path::Path;

    #[test]
    fn rows_read_back_to_the_same_bytes() {
        let text = "path,class_index,class_name,score,box_score,x1,y1,x2,y2,component_area,threshold,threshold_rule,preset,method\n\
                    a.png,1,lesion,0.900000,0.700000,3,4,10,20,50,51,fraction:0.2,wsol,cam\n\
                    b/c.png,285,\"cat, egyptian\",0.123457,0.654321,0,0,224,200,40000,0.2,fraction:0.2,cam-paper,gradcam++\n\
                    d.png,0,NORMAL,0.010000,0.500000,1,2,3,4,4,180,u8:180,chestxray8,eigencam\n";
        let read = read_bytes::<BoxRow>(text.as_bytes()).unwrap();
        assert_eq!(read.header, BoxRow::HEADER);
        let rows: Vec<BoxRow> = read.rows.into_iter().map(Result::unwrap).collect();
        assert_eq!((rows[1].method, rows[2].threshold_rule), (MapMethod::GradCamPlusPlus, Threshold::U8(180)));
        assert_eq!(String::from_utf8(to_bytes(Path::new("t"), &rows).unwrap()).unwrap(), text);
    }
}
