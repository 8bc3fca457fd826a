//! The validated run plan: configuration and flags resolved once into ready-built parts.
//!
//! This is the "high" half of the LowArgs -> HiArgs split. Everything that can be wrong
//! about a run (paths, model, preprocessing, labels, output folder) is found here, before
//! the first image, and reported as one [`Error`]. The pipeline only executes a plan.

pub mod fingerprint;
mod truth;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{ClassRef, ClassesSpec, Config, TruthConfig};
use crate::error::{Error, Result};
use crate::labels::Labels;
use crate::output::artefacts::Artefacts;
use crate::output::manifest::{CutSection, ModelReport};
use crate::run::budget::{ImageCost, MemoryBudget};
use crate::stage::decode::Decoder;
use crate::stage::discover::Discovery;
use crate::stage::localise::{ClassSelection, Localiser, Recipe};
use crate::stage::maps::{Activation, MapMethod, MethodChoice};
use crate::stage::model::{ActivationChoice, FinalOp, ModelPlan};
use crate::stage::preprocess::passes::{pass_sizes, passes};
use crate::stage::preprocess::{Normaliser, Pass, Scale};
use crate::truth::annotations::Format;
pub use truth::TruthPlan;

/// Command-line values that override the configuration file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub out: Option<PathBuf>,
    /// When non-empty, replaces `[input] paths`.
    pub inputs: Vec<PathBuf>,
    pub threads: Option<usize>,
    /// Replaces `[cam] method`.
    pub method: Option<MethodChoice>,
    /// Replaces `[model] kernels`.
    pub kernels: Option<crate::stage::model::KernelChoice>,
    /// Process only shard `index` of `count` (`--shard I/N`).
    pub shard: Option<(u32, u32)>,
    /// Replaces `[truth] annotations` (`--truth`).
    pub truth: Option<PathBuf>,
    /// Replaces `[truth] format` (`--truth-format`).
    pub truth_format: Option<Format>,
    /// Replaces `[truth] class_map` (`--class-map`).
    pub class_map: Option<PathBuf>,
}

/// Everything a run needs, built and checked.
pub struct RunPlan {
    /// The configuration after overrides, as recorded in `run.json`.
    pub config: Config,
    pub discovery: Discovery,
    pub decoder: Decoder,
    pub model: ModelPlan,
    pub model_sha256: String,
    pub labels: Labels,
    /// What the network is fed for each image: one pass, or one per `[cam] scales`
    /// size and mirrored (`[cam] flip`); never empty.
    pub passes: Vec<Pass>,
    pub out_dir: PathBuf,
    pub top_k: usize,
    pub threads: usize,
    pub classes: ClassSelection,
    /// The recipe of every class without a tau of its own.
    pub localiser: Localiser,
    /// Classes with their own tau (`[localise] taus`).
    pub class_localisers: BTreeMap<usize, Localiser>,
    pub artefacts: Artefacts,
    pub method: MapMethod,
    /// Why `[cam] method = "auto"` chose `method`; `None` when the method was named.
    pub method_reason: Option<String>,
    /// How the logits become probabilities.
    pub activation: Activation,
    /// The classes each annotated image's truth names (`[truth]`).
    pub truth: Option<TruthPlan>,
    /// The image memory the workers may hold at once (`[run] memory_budget`).
    pub budget: MemoryBudget,
    /// What an image will hold, per pixel, by what this run makes of it.
    pub image_cost: ImageCost,
    pub shard: Option<(u32, u32)>,
    /// Identifies the result-affecting configuration, for resume and merge.
    pub fingerprint: String,
}

impl RunPlan {
    pub fn build(config: Config, config_path: &Path, ov: Overrides) -> Result<RunPlan> {
        let config = apply_overrides(config, &ov);
        let out_dir = check_config(&config, config_path, &ov)?;
        RunPlan::assemble(config, config_path, out_dir, ov.shard)
    }

    /// A plan for images handed over one at a time rather than walked ([`crate::explain`]):
    /// the configuration's model, preprocessing, passes, map method and recipe, without
    /// inputs to walk, an output folder or truth. `[input]`, `[output] dir` and `[truth]`
    /// are not read, and no artefact is written (`[output] overlays` only keeps the decoded
    /// image for an overlay in memory).
    pub fn for_images(mut config: Config, config_path: &Path) -> Result<RunPlan> {
        check_model_keys(&config, config_path)?;
        config.truth = None;
        let mut plan = RunPlan::assemble(config, config_path, PathBuf::new(), None)?;
        plan.artefacts.masks = false;
        plan.artefacts.maps = false;
        Ok(plan)
    }

    /// The parts, built from a configuration whose inputs and output were checked.
    fn assemble(config: Config, config_path: &Path, out_dir: PathBuf, shard: Option<(u32, u32)>) -> Result<RunPlan> {
        let cfg_err = |e: String| Error::config(config_path, e);

        // The start-up probe is normalised like a real image, so mean/std must be sane
        // before the model is built; the rest of the recipe is checked against the
        // network's input size afterwards.
        let normaliser = Normaliser::new(&config.preprocess).map_err(cfg_err)?;
        let (scales, flip) = config.cam.passes();
        if scales.iter().any(|s| matches!(s, Scale::Shorter(0) | Scale::Size([0, _] | [_, 0]))) {
            return Err(cfg_err("[cam] scales: every size must be positive".into()));
        }
        let model = ModelPlan::load_sizes(&config.model, &normaliser, |input| pass_sizes(input, &scales))?;
        let (method, method_reason) = config.cam.method.resolve(&model.head);
        method.applies(&model.head).map_err(|e| Error::model(&config.model.path, e))?;
        // The resolved method is what run.json and the fingerprint record: `auto` on a
        // linear head is the same run as `cam`.
        let mut config = config;
        config.cam.method = MethodChoice::Method(method);
        let sizes: Vec<[usize; 2]> = model.sizes().collect();
        let passes = passes(&config.preprocess, &model.input, &sizes, flip).map_err(cfg_err)?;
        let activation =
            activation(config.model.activation, model.cut.final_op).map_err(|e| Error::model(&config.model.path, e))?;
        let labels = Labels::load(config.model.labels.as_deref(), model.num_classes())?;
        let classes = class_selection(&config.localise.classes, &labels, model.num_classes()).map_err(cfg_err)?;
        let recipe = config.localise.recipe(config.cam.recipe.unwrap_or_default()).map_err(cfg_err)?;
        let class_localisers = class_taus(config.localise.taus.as_ref(), &labels, &recipe).map_err(cfg_err)?;
        let truth = config.truth.as_ref().map(|t| TruthPlan::load(t, &labels)).transpose()?;
        let model_sha256 = fingerprint::sha256_model(&config.model.path, &model.data_files)?;
        let truth_digest = truth.as_ref().map(TruthPlan::digest).transpose()?;
        let fingerprint = fingerprint::fingerprint(&config, &model_sha256, truth_digest.as_ref());
        let threads = match config.run.threads {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            n => n,
        };
        let image_cost = image_cost(&config, &recipe);
        Ok(RunPlan {
            budget: MemoryBudget::new(config.run.memory_budget.0),
            image_cost,
            discovery: Discovery::from_options(&config.input),
            decoder: config.decoder(config.run_jpeg_scaling()),
            top_k: config.output.top_k.min(model.num_classes()),
            artefacts: Artefacts::new(&out_dir, &config.output),
            config,
            model,
            model_sha256,
            labels,
            passes,
            out_dir,
            threads,
            classes,
            localiser: Localiser::new(recipe),
            class_localisers,
            method,
            method_reason,
            activation,
            truth,
            shard,
            fingerprint,
        })
    }

    /// The bytes the image at `path` will need at most (see [`crate::run::budget`]): from
    /// its header; for a DICOM file, whose header is not read here, from its size (at
    /// most `max_pixels` of 32-bit samples).
    pub fn image_bytes(&self, path: &Path) -> u64 {
        let grey_copy = |channels: u32| if channels == 3 && self.model.input.channels == 1 { 4.0 } else { 0.0 };
        match self.decoder.probe(path) {
            Some((w, h, c, bps)) => {
                ImageCost { per_pixel: self.image_cost.per_pixel + grey_copy(c) }.bytes(w, h, c, bps)
            }
            None => {
                let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                let pixels = (len.saturating_mul(4)).min(self.config.run.max_pixels);
                ImageCost { per_pixel: self.image_cost.per_pixel + 4.0 }.bytes(pixels as u32, 1, 1, 1)
            }
        }
    }

    /// The size an image of `w` x `h` pixels is resampled to by the pass that needs the
    /// most of it (what a reduced JPEG decode must keep enough pixels for).
    pub fn resize_target(&self, w: u32, h: u32) -> (usize, usize) {
        self.passes
            .iter()
            .map(|p| p.preprocessor.resize_target(w, h))
            .max_by_key(|&(rw, rh)| rw * rh)
            .expect("one pass")
    }

    /// The pass whose network input is the largest: its geometry is the grid the passes'
    /// maps are averaged on ([`crate::stage::localise::fuse`]).
    pub fn grid_pass(&self) -> usize {
        let area = |i: usize| self.passes[i].size()[0] * self.passes[i].size()[1];
        (0..self.passes.len()).fold(0, |best, i| if area(i) > area(best) { i } else { best })
    }

    /// The localiser of class `k`: its own tau's, or the run's.
    pub fn localiser(&self, k: usize) -> &Localiser {
        self.class_localisers.get(&k).unwrap_or(&self.localiser)
    }

    /// What `run.json` says about the model.
    pub fn model_report(&self) -> ModelReport {
        ModelReport {
            path: self.config.model.path.clone(),
            sha256: self.model_sha256.clone(),
            input: self.model.input.clone(),
            activation: Some(self.activation),
            cut: CutSection {
                report: self.model.report.clone(),
                map_methods: MapMethod::applicable(&self.model.head).iter().map(|m| m.name().into()).collect(),
            },
        }
    }
}

/// The configuration with the command line's values in place.
fn apply_overrides(mut config: Config, ov: &Overrides) -> Config {
    if !ov.inputs.is_empty() {
        config.input.paths = ov.inputs.clone();
    }
    if let Some(o) = &ov.out {
        config.output.dir = Some(o.clone());
    }
    if let Some(t) = ov.threads {
        config.run.threads = t;
    }
    if let Some(m) = ov.method {
        config.cam.method = m;
    }
    if let Some(k) = &ov.kernels {
        config.model.kernels = k.clone();
    }
    if let Some(t) = &ov.truth {
        let format = config.truth.as_ref().and_then(|c| c.format);
        let class_map = config.truth.as_ref().and_then(|c| c.class_map.clone());
        config.truth = Some(TruthConfig { annotations: t.clone(), format, class_map });
    }
    if let Some(truth) = config.truth.as_mut() {
        if let Some(f) = ov.truth_format {
            truth.format = Some(f);
        }
        if let Some(m) = &ov.class_map {
            truth.class_map = Some(m.clone());
        }
    }
    config
}

/// Bytes per original pixel an image holds besides its decoded samples, by the recipe and
/// the outputs: see [`ImageCost`].
fn image_cost(config: &Config, recipe: &Recipe) -> ImageCost {
    let mut per_pixel = 4.0 + 1.0; // the normalised map at original resolution, the mask
    if recipe.quantise {
        per_pixel += 1.0;
    }
    if recipe.thresholds.iter().any(|t| t.needs_distribution()) {
        per_pixel += 4.0;
    }
    if config.output.overlays {
        per_pixel += 3.0;
    }
    ImageCost { per_pixel }
}

/// The probabilities the run gives: what `[model] activation` says, or with `auto` what
/// the graph ends in. A choice that contradicts the graph's final op is refused: it would
/// not be the model's own probabilities.
pub fn activation(choice: ActivationChoice, graph: FinalOp) -> std::result::Result<Activation, String> {
    match (choice, graph) {
        (ActivationChoice::Auto, FinalOp::Sigmoid) | (ActivationChoice::Sigmoid, FinalOp::None | FinalOp::Sigmoid) => {
            Ok(Activation::Sigmoid)
        }
        (ActivationChoice::Auto, _) | (ActivationChoice::Softmax, FinalOp::None | FinalOp::Softmax) => {
            Ok(Activation::Softmax)
        }
        (ActivationChoice::Softmax, FinalOp::Sigmoid) => {
            Err("[model] activation = \"softmax\", but the model ends in a Sigmoid: it is multi-label; use \"sigmoid\" or \"auto\"".into())
        }
        (ActivationChoice::Sigmoid, FinalOp::Softmax) => {
            Err("[model] activation = \"sigmoid\", but the model ends in a Softmax over its classes; use \"softmax\" or \"auto\"".into())
        }
    }
}

/// A localiser for every class `[localise] taus` names (by name or index).
fn class_taus(
    taus: Option<&BTreeMap<String, f32>>,
    labels: &Labels,
    base: &Recipe,
) -> std::result::Result<BTreeMap<usize, Localiser>, String> {
    let mut out = BTreeMap::new();
    for (key, &tau) in taus.into_iter().flatten() {
        let k = labels
            .index_of(key)
            .or_else(|| key.parse::<usize>().ok().filter(|&k| k < labels.len()))
            .ok_or_else(|| format!("[localise] taus: no class named '{key}' (nor a class index)"))?;
        out.insert(k, Localiser::new(Recipe { thresholds: Recipe::wsol(tau).thresholds, ..base.clone() }));
    }
    Ok(out)
}

/// What can be checked without the model; returns the output folder.
fn check_config(config: &Config, config_path: &Path, ov: &Overrides) -> Result<PathBuf> {
    if config.input.paths.is_empty() {
        return Err(Error::config(config_path, "no input: set [input] paths or give folders on the command line"));
    }
    for p in &config.input.paths {
        if !p.exists() {
            return Err(Error::config(config_path, format!("input {} does not exist", p.display())));
        }
    }
    if config.input.extensions.is_empty() {
        return Err(Error::config(config_path, "[input] extensions is empty"));
    }
    check_model_keys(config, config_path)?;
    let out_dir = config
        .output
        .dir
        .clone()
        .ok_or_else(|| Error::config(config_path, "no output folder: set [output] dir or pass --out"))?;
    if config.truth.is_none() && ov.class_map.is_some() {
        return Err(Error::Usage("--class-map needs annotations: give --truth or a [truth] section".into()));
    }
    if let Some((i, n)) = ov.shard {
        if n == 0 || i >= n {
            return Err(Error::Usage(format!("--shard {i}/{n}: the index must be below the count")));
        }
    }
    Ok(out_dir)
}

/// What must hold of the keys every plan reads, walked or not.
fn check_model_keys(config: &Config, config_path: &Path) -> Result<()> {
    if config.model.path.as_os_str().is_empty() {
        return Err(Error::config(config_path, "[model] path is missing"));
    }
    if config.output.top_k == 0 {
        return Err(Error::config(config_path, "[output] top_k must be at least 1"));
    }
    Ok(())
}

/// Resolves `[localise] classes` against the model's classes and names.
pub fn class_selection(spec: &ClassesSpec, labels: &Labels, k: usize) -> std::result::Result<ClassSelection, String> {
    match spec {
        ClassesSpec::Rule(r) => ClassSelection::parse(r),
        ClassesSpec::List(list) => {
            if list.is_empty() {
                return Err("[localise] classes is an empty list".into());
            }
            list.iter()
                .map(|c| match c {
                    ClassRef::Index(i) if *i < k => Ok(*i),
                    ClassRef::Index(i) => {
                        Err(format!("[localise] classes: index {i} is out of range (the model has {k} classes)"))
                    }
                    ClassRef::Name(n) => labels
                        .index_of(n)
                        .ok_or_else(|| format!("[localise] classes: no class named '{n}' in the labels")),
                })
                .collect::<std::result::Result<Vec<usize>, String>>()
                .map(ClassSelection::List)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LocaliseConfig;

    #[test]
    fn class_lists_resolve_names_and_check_indices() {
        let labels = Labels::from_names(vec!["NORMAL".into(), "PNEUMONIA".into()]);
        let spec = ClassesSpec::List(vec![ClassRef::Name("PNEUMONIA".into()), ClassRef::Index(0)]);
        assert_eq!(class_selection(&spec, &labels, 2).unwrap(), ClassSelection::List(vec![1, 0]));
        let bad = ClassesSpec::List(vec![ClassRef::Index(2)]);
        assert!(class_selection(&bad, &labels, 2).unwrap_err().contains("out of range"));
        let bad = ClassesSpec::List(vec![ClassRef::Name("COVID".into())]);
        assert!(class_selection(&bad, &labels, 2).unwrap_err().contains("COVID"));
        let toml: LocaliseConfig = toml::from_str("classes = [\"PNEUMONIA\", 0]").unwrap();
        assert_eq!(class_selection(&toml.classes, &labels, 2).unwrap(), ClassSelection::List(vec![1, 0]));
    }
}
