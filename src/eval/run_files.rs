//! What `cambox run` left in its output folder, read back: `images.csv` (which images
//! were processed, their size, top-1 class and top-k probabilities), `boxes.csv` (the
//! boxes) and `run.json` (inputs, model labels, recipe). Columns are found by name, so
//! a later column added to either table does not break `eval`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::error::EvalError;
use super::metrics::Rect;

/// One row of `images.csv`.
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

/// One row of `boxes.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunBox {
    pub class: usize,
    /// Probability of `class` for the image.
    pub score: f64,
    /// Mean of the normalised map inside the component.
    pub box_score: f64,
    pub rect: Rect,
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
    pub manifest: Option<serde_json::Value>,
}

impl RunFiles {
    pub fn load(dir: &Path) -> Result<RunFiles, EvalError> {
        if !dir.is_dir() {
            return Err(EvalError::run(dir, "not a folder (give the --out folder of `cambox run`)"));
        }
        let images = read_images(&dir.join("images.csv"))?;
        let (boxes, mut class_names) = read_boxes(&dir.join("boxes.csv"))?;
        let manifest = std::fs::read_to_string(dir.join("run.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        // Names of classes without boxes come from the labels file the run used.
        if let Some(labels) = manifest.as_ref().and_then(|m| m.pointer("/config/model/labels")).and_then(|l| l.as_str())
        {
            if let Ok(text) = std::fs::read_to_string(labels) {
                for (i, l) in text.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
                    class_names.entry(i).or_insert_with(|| l.to_string());
                }
            }
        }
        Ok(RunFiles { dir: dir.to_path_buf(), images, boxes, class_names, manifest })
    }

    /// A decoder set up as the run's was (DICOM window, high-bit-depth scaling, limits),
    /// so report thumbnails show the images the way the network saw them.
    pub fn decoder(&self) -> crate::decode::Decoder {
        let cfg = self
            .manifest
            .as_ref()
            .and_then(|m| m.get("config"))
            .and_then(|c| serde_json::from_value::<crate::config::Config>(c.clone()).ok());
        match cfg {
            Some(c) => crate::decode::Decoder {
                max_pixels: c.run.max_pixels,
                max_file_bytes: c.run.max_file_bytes,
                sniff_dicom: c.input.sniff_dicom,
                window: c.decode.window,
                high_bit_depth: c.decode.high_bit_depth,
                // Thumbnails are drawn from the full-resolution image.
                jpeg_scaling: crate::config::JpegScaling::Exact,
            },
            None => crate::decode::Decoder::default(),
        }
    }

    /// The input folders or files of the run (to find original images).
    pub fn input_paths(&self) -> Vec<PathBuf> {
        self.manifest
            .as_ref()
            .and_then(|m| m.pointer("/config/input/paths"))
            .and_then(|p| p.as_array())
            .map(|a| a.iter().filter_map(|p| p.as_str()).map(PathBuf::from).collect())
            .unwrap_or_default()
    }

    /// The original file of `rel`, if it can still be found.
    pub fn original(&self, rel: &str) -> Option<PathBuf> {
        self.input_paths().into_iter().find_map(|root| {
            if root.is_file() {
                let name = root.file_name()?.to_string_lossy().into_owned();
                return (name == rel).then_some(root);
            }
            let p = rel.split('/').fold(root, |p, part| p.join(part));
            p.is_file().then_some(p)
        })
    }

    /// Whether the run localised `class` on every image (a fixed class list that holds
    /// it), which the GT-known protocol needs.
    pub fn always_localises(&self, class: usize) -> Option<bool> {
        let classes = self.manifest.as_ref()?.pointer("/config/localise/classes")?;
        let Some(list) = classes.as_array() else { return Some(false) };
        let name = self.class_names.get(&class).map(String::as_str);
        Some(list.iter().any(|c| c.as_u64() == Some(class as u64) || (c.is_string() && c.as_str() == name)))
    }
}

fn reader(path: &Path) -> Result<(csv::Reader<std::fs::File>, HashMap<String, usize>), EvalError> {
    let mut rd = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| EvalError::run(path, format!("cannot read: {e}")))?;
    let headers = rd.headers().map_err(|e| EvalError::run(path, e.to_string()))?;
    let cols = headers.iter().enumerate().map(|(i, h)| (h.to_string(), i)).collect();
    Ok((rd, cols))
}

fn need(cols: &HashMap<String, usize>, path: &Path, name: &str) -> Result<usize, EvalError> {
    cols.get(name).copied().ok_or_else(|| EvalError::run(path, format!("no '{name}' column")))
}

fn read_images(path: &Path) -> Result<Vec<RunImage>, EvalError> {
    let (mut rd, cols) = reader(path)?;
    let c = |n| need(&cols, path, n);
    let (cp, cs, ce, cw, ch, ck, ct) =
        (c("path")?, c("status")?, c("error")?, c("width")?, c("height")?, c("class_index")?, c("top_k")?);
    let mut out = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let rec = rec.map_err(|e| EvalError::run(path, format!("row {}: {e}", i + 2)))?;
        let get = |c: usize| rec.get(c).unwrap_or("");
        let top_k = get(ct)
            .split(';')
            .filter_map(|p| {
                let (k, v) = p.split_once(':')?;
                Some((k.trim().parse().ok()?, v.trim().parse().ok()?))
            })
            .collect();
        out.push(RunImage {
            rel: get(cp).to_string(),
            ok: get(cs) == "ok",
            error: get(ce).to_string(),
            width: get(cw).parse().ok(),
            height: get(ch).parse().ok(),
            top1: get(ck).parse().ok(),
            top_k,
        });
    }
    Ok(out)
}

type Boxes = (HashMap<String, Vec<RunBox>>, BTreeMap<usize, String>);

fn read_boxes(path: &Path) -> Result<Boxes, EvalError> {
    let (mut rd, cols) = reader(path)?;
    let c = |n| need(&cols, path, n);
    let (cp, ck, cn, cs, cb) = (c("path")?, c("class_index")?, c("class_name")?, c("score")?, c("box_score")?);
    let (c1, c2, c3, c4) = (c("x1")?, c("y1")?, c("x2")?, c("y2")?);
    let mut boxes: HashMap<String, Vec<RunBox>> = HashMap::new();
    let mut names = BTreeMap::new();
    for (i, rec) in rd.records().enumerate() {
        let row = i + 2;
        let rec = rec.map_err(|e| EvalError::run(path, format!("row {row}: {e}")))?;
        let get = |c: usize| rec.get(c).unwrap_or("");
        let f = |c: usize| -> Result<f64, EvalError> {
            get(c).parse::<f64>().map_err(|_| EvalError::run(path, format!("row {row}: '{}' is not a number", get(c))))
        };
        let class: usize =
            get(ck).parse().map_err(|_| EvalError::run(path, format!("row {row}: bad class_index '{}'", get(ck))))?;
        names.entry(class).or_insert_with(|| get(cn).to_string());
        boxes.entry(get(cp).to_string()).or_default().push(RunBox {
            class,
            score: f(cs)?,
            box_score: f(cb)?,
            rect: Rect::new(f(c1)?, f(c2)?, f(c3)?, f(c4)?),
        });
    }
    Ok((boxes, names))
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
