//! What `cambox run` left in its output folder, read back: `images.csv` (which images
//! were processed, their size, top-1 class and top-k probabilities), `boxes.csv` (the
//! boxes) and `run.json` (inputs, model labels, recipe). Columns are found by name, so
//! a later column added to either table does not break `eval`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::metrics::Rect;
use crate::config::{ClassRef, ClassesSpec};
use crate::error::Error;
use crate::labels::Labels;
use crate::output::boxes_csv::BoxRow;
use crate::output::images_csv::ImageRow;
use crate::output::manifest::RunManifest;
use crate::output::table;
use crate::stage::decode::{Decoder, JpegScaling};

/// One row of `images.csv`, as `eval` uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunImage {
    pub rel: String,
    pub ok: bool,
    pub error: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub top1: Option<usize>,
    /// Probabilities of the top-k classes.
    pub top_k: Vec<(usize, f64)>,
}

impl From<ImageRow> for RunImage {
    fn from(r: ImageRow) -> RunImage {
        RunImage {
            ok: r.ok(),
            rel: r.path,
            error: r.error,
            width: r.width,
            height: r.height,
            top1: r.class_index,
            top_k: r.top_k.0,
        }
    }
}

/// One row of `boxes.csv`, as `eval` uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunBox {
    pub class: usize,
    /// Probability of `class` for the image.
    pub score: f64,
    /// Mean of the normalised map inside the component.
    pub box_score: f64,
    pub rect: Rect,
}

impl From<&BoxRow> for RunBox {
    fn from(r: &BoxRow) -> RunBox {
        RunBox {
            class: r.class_index,
            score: r.score.0,
            box_score: r.box_score.0,
            rect: Rect::new(r.x1 as f64, r.y1 as f64, r.x2 as f64, r.y2 as f64),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunFiles {
    pub dir: PathBuf,
    /// In `images.csv` order.
    pub images: Vec<RunImage>,
    pub boxes: HashMap<String, Vec<RunBox>>,
    /// Class names seen in `boxes.csv` or the model's labels file.
    pub class_names: BTreeMap<usize, String>,
    /// `run.json`, when present and readable.
    pub manifest: Option<RunManifest>,
}

impl RunFiles {
    pub fn load(dir: &Path) -> Result<RunFiles, Error> {
        if !dir.is_dir() {
            return Err(Error::run_folder(dir, "not a folder (give the --out folder of `cambox run`)"));
        }
        let images_path = dir.join("images.csv");
        let images: Vec<RunImage> = table::read_file::<ImageRow>(&images_path)
            .map_err(|e| Error::run_folder(&images_path, e))?
            .into_iter()
            .map(RunImage::from)
            .collect();
        let boxes_path = dir.join("boxes.csv");
        let rows = table::read_file::<BoxRow>(&boxes_path).map_err(|e| Error::run_folder(&boxes_path, e))?;
        let mut boxes: HashMap<String, Vec<RunBox>> = HashMap::new();
        let mut class_names = BTreeMap::new();
        for r in &rows {
            class_names.entry(r.class_index).or_insert_with(|| r.class_name.clone());
            boxes.entry(r.path.clone()).or_default().push(RunBox::from(r));
        }
        let manifest = RunManifest::read(dir).ok();
        // Names of classes without boxes come from the labels file the run used.
        if let Some(labels) = manifest.as_ref().and_then(|m| m.config.model.labels.as_ref()) {
            if let Ok(names) = Labels::read(labels) {
                for (i, l) in names.into_iter().enumerate() {
                    class_names.entry(i).or_insert(l);
                }
            }
        }
        Ok(RunFiles { dir: dir.to_path_buf(), images, boxes, class_names, manifest })
    }

    /// A decoder set up as the run's was (DICOM window, high-bit-depth scaling, limits),
    /// so report thumbnails show the images the way the network saw them; always at full
    /// resolution, which thumbnails are drawn from.
    pub fn decoder(&self) -> Decoder {
        match &self.manifest {
            Some(m) => m.config.decoder(JpegScaling::Exact),
            None => Decoder::default(),
        }
    }

    /// The input folders or files of the run (to find original images).
    pub fn input_paths(&self) -> Vec<PathBuf> {
        self.manifest.as_ref().map(|m| m.config.input.paths.clone()).unwrap_or_default()
    }

    /// The original file of `rel`, if it can still be found.
    pub fn original(&self, rel: &str) -> Option<PathBuf> {
        let discovery = crate::stage::discover::Discovery::new(self.input_paths(), &[], false, false);
        discovery.original(rel)
    }

    /// The probabilities of `classes` for every image, from `probabilities.csv` when the
    /// run wrote one (`[output] probabilities = true`); empty otherwise.
    pub fn probabilities(&self, classes: &BTreeSet<usize>) -> Result<HashMap<String, HashMap<usize, f64>>, Error> {
        let path = self.dir.join(crate::output::probabilities_csv::FILE);
        if !path.is_file() {
            return Ok(HashMap::new());
        }
        let mut rd = csv::Reader::from_path(&path).map_err(|e| Error::run_folder(&path, e.to_string()))?;
        let width = rd.headers().map_err(|e| Error::run_folder(&path, e.to_string()))?.len();
        let mut out = HashMap::new();
        for (i, rec) in rd.records().enumerate() {
            let rec = rec.map_err(|e| Error::run_folder(&path, format!("row {}: {e}", i + 2)))?;
            if rec.len() != width {
                return Err(Error::run_folder(
                    &path,
                    format!("row {}: {} fields for {width} columns", i + 2, rec.len()),
                ));
            }
            let probs: HashMap<usize, f64> =
                classes.iter().filter_map(|&k| rec.get(k + 1).and_then(|v| v.parse().ok()).map(|v| (k, v))).collect();
            out.insert(rec.get(0).unwrap_or("").to_string(), probs);
        }
        Ok(out)
    }

    /// Whether the run was given the truth (`run --truth`), so that every annotated
    /// image has boxes of the classes its labels mean.
    pub fn localises_truth(&self) -> bool {
        self.manifest.as_ref().is_some_and(|m| m.truth.is_some())
    }

    /// Whether the run localised `class` on every image (a fixed class list that holds
    /// it), which the GT-known protocol needs.
    pub fn always_localises(&self, class: usize) -> Option<bool> {
        let ClassesSpec::List(list) = &self.manifest.as_ref()?.config.localise.classes else {
            return Some(false);
        };
        let name = self.class_names.get(&class).map(String::as_str);
        Some(list.iter().any(|c| match c {
            ClassRef::Index(i) => *i == class,
            ClassRef::Name(n) => Some(n.as_str()) == name,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_run_folder() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("images.csv"),
            "path,status,error,width,height,class_index,class_name,score,top_k,logit_check,ms\n\
             a.png,ok,,64,48,1,lesion,0.900000,1:0.900000;0:0.100000,1e-6,3.0\n\
             b.png,error,cannot decode: x,,,,,,,,0.1\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("boxes.csv"),
            "path,class_index,class_name,score,box_score,x1,y1,x2,y2,component_area,threshold,threshold_rule,preset,method\n\
             a.png,1,lesion,0.900000,0.700000,3,4,10,20,50,51,fraction:0.2,wsol,cam\n",
        )
        .unwrap();
        let r = RunFiles::load(d.path()).unwrap();
        assert_eq!(r.images.len(), 2);
        assert_eq!(r.images[0].top_k, vec![(1, 0.9), (0, 0.1)]);
        assert_eq!((r.images[0].width, r.images[0].top1, r.images[1].ok), (Some(64), Some(1), false));
        let b = &r.boxes["a.png"][0];
        assert_eq!((b.class, b.rect), (1, Rect::new(3.0, 4.0, 10.0, 20.0)));
        assert_eq!(r.class_names[&1], "lesion");
        std::fs::remove_file(d.path().join("boxes.csv")).unwrap();
        assert!(RunFiles::load(d.path()).unwrap_err().to_string().contains("boxes.csv"));
    }
}
