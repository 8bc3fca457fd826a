//! `cambox faithfulness`: do the maps show what the model used?
//!
//! Boxes measure whether a map lands on the object; they do not measure whether the model
//! decided from there. The perturbation metrics of the XAI literature ask that, at the price
//! of extra forward passes per image, which cambox's network makes cheap enough for a whole
//! data set. For every image of a run and every class the run saved a map of, on the network
//! input the map was made on ([`perturb`], [`impute`], [`measure`]):
//! - **deletion / insertion** (RISE): the class probability as the most relevant pixels
//!   are removed (set to black, the image's mean or its blurred copy), or inserted into the
//!   blurred image, in `--steps` steps, and the areas under the curves;
//! - **ROAD** (pytorch-grad-cam): the probability change when the most (MoRF) or least
//!   (LeRF) relevant pixels are removed at 10 ... 90 % and filled by noisy linear
//!   imputation, and `(LeRF - MoRF) / 2`;
//! - **confidence drop and increase** (Grad-CAM++, torchcam's Average Drop): the input
//!   multiplied by the map.
//!
//! Each figure is also computed for baseline maps (`--baseline-map`: a seeded random map,
//! and a centred Gaussian), so every number has its floor beside it. The extra passes run
//! through the run's own plan (model, kernels, preprocessing), one image per worker
//! (batching was slower, `docs/performance.md`). Perturbations are computed on the map
//! upsampled to the network input exactly as the localisation upsamples it.

pub mod impute;
pub mod measure;
pub mod perturb;
pub mod report;
pub mod resume;
pub mod sanity;

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, ImageError};
use crate::eval::bootstrap::SplitMix64;
use crate::eval::run_files::RunFiles;
use crate::eval::sweep::load_map;
use crate::output::artefacts::Artefacts;
use crate::plan::{Overrides, RunPlan};
use crate::run::progress::Progress;
use crate::stage::localise::minmax_in_place;
use measure::{derive_seed, measure, Fill, Measures, Settings};
use perturb::Planes;

/// A map every figure is also computed for, as a floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaselineMap {
    /// Independent uniform values, seeded per (image, class).
    Random,
    /// A Gaussian centred on the input, sigma a quarter of each side.
    Centre,
}

impl BaselineMap {
    pub fn name(self) -> &'static str {
        match self {
            BaselineMap::Random => "random",
            BaselineMap::Centre => "centre",
        }
    }
}

/// Everything `cambox faithfulness` is asked to do.
#[derive(Debug, Clone)]
pub struct FaithOptions {
    /// The output folder of `cambox run` (with `maps/`).
    pub run: PathBuf,
    pub out: PathBuf,
    pub steps: usize,
    pub fill: Fill,
    pub baselines: Vec<BaselineMap>,
    pub road: bool,
    pub seed: u64,
    pub bootstrap: usize,
    pub threads: Option<usize>,
    pub quiet: bool,
}

/// Deletion / insertion steps by default (`--steps`), RISE's and torchcam's usual count.
pub const DEFAULT_STEPS: usize = 50;

/// One (image, class, map) measured.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FaithRow {
    pub rel: String,
    pub class: usize,
    pub class_name: String,
    /// The run's method (`cam`, `gradcam`, ...) or a baseline's name.
    pub map: String,
    #[serde(flatten)]
    pub measures: Measures,
}

/// What a faithfulness run produced.
pub struct Faithfulness {
    pub rows: Vec<FaithRow>,
    /// Images that could not be measured, with the reason (one line each).
    pub errors: Vec<String>,
    pub method: String,
}

/// Measures every (image, class) the run saved a map of, then writes the files.
pub fn run_faithfulness(o: &FaithOptions) -> Result<Faithfulness, Error> {
    if o.steps == 0 {
        return Err(Error::Usage("--steps must be at least 1".into()));
    }
    let run = RunFiles::load(&o.run)?;
    let manifest = run.manifest.clone().ok_or_else(|| Error::run_folder(&o.run, "no readable run.json"))?;
    if !o.run.join("maps").is_dir() {
        return Err(Error::Usage(format!(
            "{}: no maps/ (run with [output] maps = true): the perturbations follow the saved maps",
            o.run.display()
        )));
    }
    let ov = Overrides { out: Some(o.out.clone()), threads: o.threads, ..Overrides::default() };
    let plan = RunPlan::build(manifest.config.clone(), &o.run.join("run.json"), ov)?;
    let mut journal = resume::Journal::open(o)?;
    let done = journal.done_images();
    let images: Vec<&str> =
        run.images.iter().filter(|i| i.ok && !done.contains(i.rel.as_str())).map(|i| i.rel.as_str()).collect();
    let journal_lock = std::sync::Mutex::new(&mut journal);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(plan.threads)
        .build()
        .map_err(|e| Error::Usage(format!("cannot start {} worker threads: {e}", plan.threads)))?;
    let progress = std::sync::Mutex::new(Progress::new(images.len() as u64, o.quiet));
    let results: Vec<Result<Vec<FaithRow>, String>> = pool.install(|| {
        images
            .par_iter()
            .map(|rel| {
                let r = image_rows(&plan, &run, rel, o);
                if let Ok(rows) = &r {
                    // Recorded as soon as measured: an interrupted run resumes after it.
                    if let Err(e) = journal_lock.lock().expect("journal").append(rows) {
                        return Err(format!("{rel}: {e}"));
                    }
                }
                progress.lock().expect("progress").inc(r.is_err());
                r.map_err(|e| format!("{rel}: {e}"))
            })
            .collect()
    });
    progress.lock().expect("progress").finish();
    let (mut rows, mut errors) = (journal.take_rows(), Vec::new());
    for r in results {
        match r {
            Ok(v) => rows.extend(v),
            Err(e) => errors.push(e),
        }
    }
    // One order whatever the journal held and the workers finished: the same figures to
    // the last digit, resumed or not.
    rows.sort_by(|a, b| (&a.rel, a.class, &a.map).cmp(&(&b.rel, b.class, &b.map)));
    let f = Faithfulness { rows, errors, method: plan.method.name().to_string() };
    report::write_all(&f, o)?;
    Ok(f)
}

/// The rows of one image: each class with a saved map, under that map and the baselines.
fn image_rows(plan: &RunPlan, run: &RunFiles, rel: &str, o: &FaithOptions) -> Result<Vec<FaithRow>, String> {
    let artefacts = Artefacts::new(&o.run, &Default::default());
    let npy = artefacts.map_path(rel);
    let classes = saved_classes(&npy)?;
    let path = run.original(rel).ok_or("the original image is not under the run's inputs")?;
    let img = plan.decoder.decode_file(&path).map_err(|e: ImageError| e.to_string())?;
    let mut rows = Vec::new();
    for k in classes {
        let (raw, geo) = load_map(&npy, k)?;
        let pass = plan
            .passes
            .iter()
            .find(|p| p.size() == [geo.net_w, geo.net_h] && !p.flip)
            .ok_or_else(|| format!("no pass of the plan is {}x{}", geo.net_w, geo.net_h))?;
        let input = pass.run(&img).map_err(|e| e.to_string())?;
        let layout = plan.model.input.layout;
        let x = Planes::from_tensor(&input.tensor, layout);
        let mut map = plan.localiser.network_map(raw.view(), geo.net_w, geo.net_h);
        minmax_in_place(&mut map);
        let mut score = |p: &Planes| -> Result<f64, String> {
            let out = plan.model.infer(p.to_tensor(layout))?;
            Ok(plan.activation.probabilities(&out.logits)[k] as f64)
        };
        let image_seed = derive_seed(&[o.seed, crate::run::resume::fnv1a(rel), k as u64]);
        let mut maps = vec![(plan.method.name().to_string(), map)];
        for b in &o.baselines {
            maps.push((b.name().to_string(), baseline_map(*b, geo.net_w, geo.net_h, image_seed)));
        }
        for (name, m) in maps {
            let s = settings(plan, o, derive_seed(&[image_seed, crate::run::resume::fnv1a(&name)]));
            let measures = measure(&x, &m, &s, &mut score)?;
            rows.push(FaithRow {
                rel: rel.to_string(),
                class: k,
                class_name: plan.labels.name(k).to_string(),
                map: name,
                measures,
            });
        }
    }
    Ok(rows)
}

fn settings(plan: &RunPlan, o: &FaithOptions, seed: u64) -> Settings {
    let n = crate::stage::preprocess::Normaliser::new(&plan.config.preprocess).ok();
    let black = [0, 1, 2].map(|c| n.as_ref().map_or(0.0, |n| n.value(c, 0.0)));
    Settings { steps: o.steps, fill: o.fill, black, road: o.road, seed }
}

/// The model classes whose maps `run` saved for an image (its `.json` sidecar).
fn saved_classes(npy: &Path) -> Result<Vec<usize>, String> {
    let side = npy.with_extension("json");
    let text = std::fs::read_to_string(&side).map_err(|e| format!("no saved map ({}: {e})", side.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", side.display()))?;
    v["classes"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_u64().map(|c| c as usize)).collect())
        .ok_or_else(|| format!("{}: no classes", side.display()))
}

/// A baseline map at network-input resolution, in [0, 1].
pub fn baseline_map(b: BaselineMap, w: usize, h: usize, seed: u64) -> Vec<f32> {
    match b {
        BaselineMap::Random => {
            let mut r = SplitMix64::new(seed);
            (0..w * h).map(|_| ((r.next_u64() >> 40) as f32) / (1u64 << 24) as f32).collect()
        }
        BaselineMap::Centre => {
            let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
            let (sx, sy) = (w as f64 / 4.0, h as f64 / 4.0);
            (0..w * h)
                .map(|p| {
                    let (x, y) = ((p % w) as f64 + 0.5 - cx, (p / w) as f64 + 0.5 - cy);
                    (-(x * x / (2.0 * sx * sx) + y * y / (2.0 * sy * sy))).exp() as f32
                })
                .collect()
        }
    }
}
