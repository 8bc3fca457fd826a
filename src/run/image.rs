//! One image's trip through the stages, each step a function from its input type to its
//! output type: [`decode`] -> [`passes`] (the network inputs: one, or one per `[cam]`
//! scale and mirror) -> [`infer`] (a [`Look`] per pass) -> [`Scores`] (the prediction
//! and the classes to map) -> [`PassMaps`] (the class maps of every pass, and the logit
//! check) -> [`localise`] (boxes, and the artefacts written on the way). [`process`] runs
//! the trip inside `catch_unwind`, so that whatever goes wrong with one file becomes its
//! `error` row and the run goes on.
//!
//! Several passes are localised on the average of their maps, on the grid of the largest
//! input; one pass on its own map, at feature resolution. That is decided in one place,
//! [`PassMaps`].
//!
//! The steps are public so that [`crate::explain`] takes an image handed over in memory
//! through the same ones, without the files.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array2, Array3, ArrayView2, Axis};

use crate::error::ImageError;
use crate::faults;
use crate::output::artefacts::{ArtefactError, ImageArtefacts};
use crate::plan::RunPlan;
use crate::run::timing::{StageTimes, Stopwatch};
use crate::stage::decode::SourceImage;
use crate::stage::decode::{ImageMeta, SourceImage as DecodedImage};
use crate::stage::discover::Discovered;
use crate::stage::localise::{BoxSet, ClassLocalisation, ClassSelection, PassMap};
use crate::stage::maps::{logit_check_limit, ClassMaps, MapMethod, Prediction};
use crate::stage::model::FeatureMap;
use crate::stage::preprocess::{Geometry, NetInput as PassInput};

/// The result of one input file.
pub struct ImageRecord {
    pub rel: String,
    /// Original size and file facts, when the file could be decoded.
    pub info: Option<ImageInfo>,
    pub outcome: Result<ImageOutcome, ImageError>,
    pub ms: f64,
    /// Time per stage (stages not reached are 0).
    pub stages: StageTimes,
}

/// What decoding learnt about a file.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub width: u32,
    pub height: u32,
    pub meta: ImageMeta,
}

/// What a successfully processed image produced.
pub struct ImageOutcome {
    pub prediction: Prediction,
    /// max |mean(M_k) + b_k - logit_k| over the top-k classes (CAM heads only).
    pub logit_check: Option<f32>,
    pub geometry: Geometry,
    /// Boxes of each localised class (empty when the head has no maps).
    pub boxes: Vec<BoxSet>,
    /// Masks, overlays and maps written for this image, not yet synced to disk.
    pub files: Vec<PathBuf>,
}

/// What the record keeps of an image whatever happens later in its trip (a panic
/// included): the file's facts once decoded, and the time of each stage reached.
#[derive(Default)]
struct Trail {
    info: Option<ImageInfo>,
    stages: StageTimes,
}

/// Processes one discovered item into its record; never panics.
pub fn process(plan: &RunPlan, item: Discovered) -> ImageRecord {
    let t0 = Instant::now();
    let (rel, path) = match item {
        Discovered::Image(f) => (f.rel, f.path),
        Discovered::Unwalkable { rel, reason, .. } => {
            let outcome = Err(ImageError::Read(reason));
            return ImageRecord { rel, info: None, outcome, ms: 0.0, stages: StageTimes::default() };
        }
    };
    let mut trail = Trail::default();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        faults::panic_if_asked(&rel);
        trip(plan, &rel, &path, &mut trail)
    }))
    .unwrap_or_else(|p| Err(ImageError::Panic(panic_message(p.as_ref()))));
    let Trail { info, stages } = trail;
    ImageRecord { rel, info, outcome, ms: t0.elapsed().as_secs_f64() * 1e3, stages }
}

/// What a caught panic said.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The steps, in order, timed.
fn trip(plan: &RunPlan, rel: &str, path: &Path, trail: &mut Trail) -> Result<ImageOutcome, ImageError> {
    // Held until the image is done: a large image waits for room, and holds it. The wait
    // is not a stage's time.
    let _credit = plan.budget.acquire(plan.image_bytes(path));
    let mut clock = Stopwatch::start();
    let (img, info) = decode(plan, path)?;
    trail.info = Some(info);
    trail.stages.decode = clock.lap();
    let (inputs, img) = passes(plan, img)?;
    trail.stages.preprocess = clock.lap();
    let looks = infer(plan, inputs)?;
    trail.stages.network = clock.lap();
    let scores = Scores::of(plan, rel, &looks);
    let maps = PassMaps::of(plan, looks, &scores.needed)?;
    trail.stages.maps = clock.lap();
    let geometry = maps.geometry();
    let (boxes, files) = match &maps.maps {
        Some(_) => localise(plan, rel, &maps, &scores, img, &mut trail.stages)?,
        None => (Vec::new(), Vec::new()),
    };
    Ok(ImageOutcome { prediction: scores.prediction, logit_check: maps.logit_check, geometry, boxes, files })
}

/// The file decoded, and what the record says of it. A large JPEG may be decoded
/// reduced, keeping enough pixels for what the preprocessing resizes to; the sizes
/// reported are the original's either way.
pub fn decode(plan: &RunPlan, path: &Path) -> Result<(DecodedImage, ImageInfo), ImageError> {
    let target = |w: u32, h: u32| plan.resize_target(w, h);
    let img = plan.decoder.decode_file_for(path, Some(&target))?;
    let (width, height) = img.original;
    let info = ImageInfo { width, height, meta: img.meta.clone() };
    Ok((img, info))
}

/// The network input of every pass, and the decoded image when an overlay will be drawn
/// on it; otherwise it is freed here, before the class maps at original resolution are
/// made.
pub fn passes(plan: &RunPlan, img: DecodedImage) -> Result<(Vec<PassInput>, Option<SourceImage>), ImageError> {
    let inputs = plan.passes.iter().map(|pass| pass.run(&img)).collect::<Result<Vec<_>, _>>()?;
    let kept = if plan.artefacts.overlays { Some(img) } else { None };
    Ok((inputs, kept))
}

/// What one pass of the network made of an image.
pub struct Look {
    geometry: Geometry,
    features: FeatureMap,
    logits: Vec<f32>,
    mirrored: bool,
}

/// The network on every pass's input.
pub fn infer(plan: &RunPlan, inputs: Vec<PassInput>) -> Result<Vec<Look>, ImageError> {
    let mut looks = Vec::with_capacity(inputs.len());
    for (input, pass) in inputs.into_iter().zip(&plan.passes) {
        let inf = plan.model.infer(input.tensor).map_err(ImageError::Inference)?;
        // The network's own logits: the per-image check holds the maps against them.
        if inf.logits.iter().any(|v| !v.is_finite()) {
            return Err(ImageError::Inference("the network produced non-finite logits".into()));
        }
        looks.push(Look { geometry: input.geometry, features: inf.features, logits: inf.logits, mirrored: pass.flip });
    }
    Ok(looks)
}

/// The prediction (the passes' mean probabilities; one pass's own), the classes that get
/// boxes, and the classes whose maps are needed.
pub struct Scores {
    pub prediction: Prediction,
    pub localised: Vec<usize>,
    /// The top-k (for the logit check) and the localised.
    pub needed: Vec<usize>,
}

impl Scores {
    fn of(plan: &RunPlan, rel: &str, looks: &[Look]) -> Scores {
        Scores::selecting(plan, &plan.classes, rel, looks)
    }

    /// The scores, localising the classes `classes` selects (rather than the plan's).
    pub fn selecting(plan: &RunPlan, classes: &ClassSelection, rel: &str, looks: &[Look]) -> Scores {
        let prediction = Prediction::averaged(looks.iter().map(|l| l.logits.as_slice()), plan.top_k, plan.activation);
        let mut localised = classes.select(&prediction);
        // The classes the image's truth names, whatever the prediction (`[truth]`).
        for k in plan.truth.iter().flat_map(|t| t.classes(rel, &prediction.probs)) {
            if !localised.contains(&k) {
                localised.push(k);
            }
        }
        let mut needed = prediction.top.clone();
        needed.extend(localised.iter().filter(|c| !prediction.top.contains(c)));
        Scores { prediction, localised, needed }
    }
}

/// Every pass with its class maps (of the `needed` classes, in that order), and where a
/// class's map is read from: the one pass's own map, or the passes' average on the grid
/// of the largest input.
pub struct PassMaps {
    pub looks: Vec<Look>,
    /// One per look; `None` when the head has no maps for the method.
    pub maps: Option<Vec<ClassMaps>>,
    needed: Vec<usize>,
    /// The look whose geometry is the grid several passes are averaged on.
    grid: usize,
    pub logit_check: Option<f32>,
}

/// A class's map as the localiser reads it.
pub enum ClassMap<'a> {
    /// One pass: its map at feature resolution.
    Pass(ArrayView2<'a, f32>),
    /// Several: their average on the grid.
    Fused(Array2<f32>),
}

impl PassMaps {
    pub fn of(plan: &RunPlan, looks: Vec<Look>, needed: &[usize]) -> Result<PassMaps, ImageError> {
        let mut maps = Vec::with_capacity(looks.len());
        let mut logit_check: Option<f32> = None;
        for look in &looks {
            let (m, check) = class_maps(plan, &look.features, needed, &look.logits)?;
            logit_check = check.map(|c| logit_check.map_or(c, |w| w.max(c)));
            maps.extend(m);
        }
        let maps = (maps.len() == looks.len()).then_some(maps);
        Ok(PassMaps { looks, maps, needed: needed.to_vec(), grid: plan.grid_pass(), logit_check })
    }

    fn several(&self) -> bool {
        self.looks.len() > 1
    }

    /// The geometry boxes are placed by.
    pub fn geometry(&self) -> Geometry {
        if self.several() {
            self.looks[self.grid].geometry
        } else {
            self.looks[0].geometry
        }
    }

    fn index(&self, k: usize) -> usize {
        self.needed.iter().position(|&n| n == k).expect("a needed class")
    }

    /// Class `k`'s map.
    pub fn map_of(&self, plan: &RunPlan, k: usize) -> ClassMap<'_> {
        let maps = self.maps.as_ref().expect("localised only with maps");
        let i = self.index(k);
        if !self.several() {
            return ClassMap::Pass(maps[0].map(i));
        }
        let passes: Vec<PassMap> = (self.looks.iter().zip(maps))
            .map(|(l, m)| PassMap { raw: m.map(i), geometry: &l.geometry, mirrored: l.mirrored })
            .collect();
        ClassMap::Fused(plan.localiser(k).fuse(&passes, &self.geometry()))
    }

    /// The maps `maps/` keeps: the localised classes' (the fused ones for several passes).
    pub fn kept(&self, classes: &[usize], fused: Vec<Array2<f32>>) -> ClassMaps {
        let g = self.geometry();
        let maps = match (self.several(), self.maps.as_deref()) {
            (false, Some([m])) => m.maps.select(Axis(0), &classes.iter().map(|&k| self.index(k)).collect::<Vec<_>>()),
            _ => ndarray::stack(Axis(0), &fused.iter().map(|m| m.view()).collect::<Vec<_>>())
                .unwrap_or_else(|_| Array3::zeros((0, g.net_h, g.net_w))),
        };
        ClassMaps { classes: classes.to_vec(), maps, bias: Vec::new() }
    }
}

/// The maps of the `needed` classes by the plan's method, and for CAM the logit check
/// against the network's own logits (an error above [`logit_check_limit`]).
fn class_maps(
    plan: &RunPlan,
    features: &FeatureMap,
    needed: &[usize],
    logits: &[f32],
) -> Result<(Option<ClassMaps>, Option<f32>), ImageError> {
    let (maps, logit_check) = match plan.method {
        MapMethod::Cam => {
            let m = ClassMaps::cam(&plan.model.head, features, needed);
            let check = m.as_ref().map(|m| m.logit_check(logits));
            (m, check)
        }
        method => {
            let m = ClassMaps::by_method(method, plan.model.program.as_ref(), features, needed)
                .map_err(ImageError::Maps)?;
            (Some(m), None)
        }
    };
    if let Some(c) = logit_check {
        let limit = logit_check_limit(logits);
        if c.is_nan() || c > limit {
            return Err(ImageError::Maps(format!(
                "logit check failed: mean(map) + bias differs from the logit by {c:.3e} (> {limit:.1e}, 1e-3 of the logits' scale)"
            )));
        }
    }
    Ok((maps, logit_check))
}

/// The boxes of every localised class and the artefacts written for the image. A class's
/// artefacts are written before the next class is localised: its maps at original
/// resolution are the largest buffers of an image, and only one is held. A file that
/// cannot be written costs the image its row (the folder as a whole: the run).
fn localise(
    plan: &RunPlan,
    rel: &str,
    maps: &PassMaps,
    scores: &Scores,
    mut img: Option<SourceImage>,
    stages: &mut StageTimes,
) -> Result<(Vec<BoxSet>, Vec<PathBuf>), ImageError> {
    let mut out = plan.artefacts.for_image(rel);
    match write_classes(plan, maps, &scores.localised, &mut img, &mut out, stages) {
        Ok(boxes) => Ok((boxes, out.finish())),
        Err(ArtefactError::Folder(m)) => Err(ImageError::Write(m)),
        Err(ArtefactError::Image(m)) => {
            out.abandon();
            Err(ImageError::Artefact(m))
        }
    }
}

fn write_classes(
    plan: &RunPlan,
    maps: &PassMaps,
    classes: &[usize],
    img: &mut Option<SourceImage>,
    out: &mut ImageArtefacts,
    stages: &mut StageTimes,
) -> Result<Vec<BoxSet>, ArtefactError> {
    let geometry = maps.geometry();
    let (mut boxes, mut fused) = (Vec::new(), Vec::new());
    for (n, &k) in classes.iter().enumerate() {
        let t = Stopwatch::start();
        let loc: ClassLocalisation = match maps.map_of(plan, k) {
            ClassMap::Pass(m) => plan.localiser(k).localise(k, m, &geometry),
            ClassMap::Fused(m) => {
                let loc = plan.localiser(k).localise(k, m.view(), &geometry);
                fused.push(m);
                loc
            }
        };
        stages.localise += t.elapsed();
        let t = Stopwatch::start();
        out.class(img, n + 1 == classes.len(), &loc)?;
        stages.write += t.elapsed();
        boxes.push(BoxSet { class: loc.class, boxes: loc.boxes });
    }
    let t = Stopwatch::start();
    out.maps(&maps.kept(classes, fused), &geometry, maps.looks.len())?;
    stages.write += t.elapsed();
    Ok(boxes)
}
