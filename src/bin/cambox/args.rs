//! The command line: clap's structs, and their conversions into the library's own option
//! types.
//!
//! Values with a fixed set of spellings (`--format voc`, `--convention wsol-inclusive`,
//! `--layout nhwc`, `--method gradcam`, `--kernels tract`) are parsed by the library's
//! types themselves, through the spellings they have in the TOML configuration and in
//! `run.json` ([`spelled`]): one list of names, not a mirror enum per flag. A value clap
//! refuses is a usage error (exit status 2), as every other bad option is.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::de::DeserializeOwned;

use cambox::eval::metrics::Convention;
use cambox::eval::{Baseline, EvalOptions};
use cambox::faith::measure::Fill;
use cambox::faith::{BaselineMap, FaithOptions};
use cambox::plan::Overrides;
use cambox::stage::maps::MethodChoice;
use cambox::stage::model::{KernelChoice, LayoutChoice, ModelOptions};
use cambox::truth::annotations::Format;

#[derive(Parser)]
#[command(name = "cambox", version, about = "Class activation maps, boxes and masks from ONNX image classifiers")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Process folders of images with a classifier.
    Run(RunArgs),
    /// Merge the output folders of a sharded run into one.
    Merge(MergeArgs),
    /// Describe a model: input, pooling, feature tensor, head and applicable map methods.
    Inspect(InspectArgs),
    /// Score a run's boxes against ground-truth annotations.
    Eval(EvalArgs),
    /// Are a run's maps faithful? Deletion / insertion, ROAD and confidence drop, beside baseline maps.
    Faithfulness(FaithArgs),
    /// Sanity check of the maps: randomise the model's layers top-down and see the maps change.
    Sanity(SanityArgs),
}

#[derive(Args)]
pub struct SanityArgs {
    /// TOML run configuration (the model, preprocessing and map method to check).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Where to write sanity.csv and the randomised models.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Randomisation stages: the last 1, 2, ... N parameterised layers.
    #[arg(long, default_value_t = cambox::faith::sanity::DEFAULT_LAYERS)]
    pub layers: usize,
    /// Seed of the re-initialisation and of the random class.
    #[arg(long, default_value_t = cambox::eval::bootstrap::DEFAULT_SEED)]
    pub seed: u64,
    /// Map method (overrides [cam] method).
    #[arg(long, value_parser = method)]
    pub method: Option<MethodChoice>,
    /// Image files or folders (replace [input] paths).
    pub inputs: Vec<PathBuf>,
}

#[derive(Args)]
pub struct FaithArgs {
    /// The output folder of `cambox run` (run with [output] maps = true).
    #[arg(long)]
    pub run: PathBuf,
    /// Where to write faithfulness.csv, .json and .html.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Deletion / insertion steps.
    #[arg(long, default_value_t = cambox::faith::DEFAULT_STEPS)]
    pub steps: usize,
    /// What deletion puts in place of a pixel: black, mean, blur, zero (RISE's: zero in network units).
    #[arg(long, value_parser = spelled::<Fill>, default_value = "black")]
    pub fill: Fill,
    /// Baseline maps scored the same way (repeat for several): random, centre.
    #[arg(long = "baseline-map", value_parser = spelled::<BaselineMap>, default_values = ["random"])]
    pub baseline_maps: Vec<BaselineMap>,
    /// No baseline map (only the run's own maps).
    #[arg(long, conflicts_with = "baseline_maps")]
    pub no_baseline: bool,
    /// Skip ROAD (its imputation is the slowest part).
    #[arg(long)]
    pub no_road: bool,
    /// Seed of the random map, ROAD's noise and the bootstrap.
    #[arg(long, default_value_t = cambox::eval::bootstrap::DEFAULT_SEED)]
    pub seed: u64,
    /// Bootstrap resamples of images for the 95 % intervals (0: none).
    #[arg(long, default_value_t = cambox::eval::bootstrap::DEFAULT_RESAMPLES)]
    pub bootstrap: usize,
    /// Worker threads (0 = one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

impl From<&FaithArgs> for FaithOptions {
    fn from(a: &FaithArgs) -> FaithOptions {
        FaithOptions {
            run: a.run.clone(),
            out: a.out.clone(),
            steps: a.steps,
            fill: a.fill,
            baselines: if a.no_baseline { Vec::new() } else { a.baseline_maps.clone() },
            road: !a.no_road,
            seed: a.seed,
            bootstrap: a.bootstrap,
            threads: a.threads,
            quiet: a.quiet,
        }
    }
}

#[derive(Args)]
pub struct RunArgs {
    /// TOML run configuration.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Output folder (overrides [output] dir).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Worker threads (0 = one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    /// Map method (overrides [cam] method): auto, cam, gradcam, gradcam++, hirescam, eigencam, ablationcam.
    #[arg(long, value_parser = method)]
    pub method: Option<MethodChoice>,
    /// cambox's kernels (overrides [model] kernels): cambox, tract, or a list such as depthwise,maxpool.
    #[arg(long, value_parser = KernelChoice::parse)]
    pub kernels: Option<KernelChoice>,
    /// Process only the images whose relative path hashes to shard I of N (FNV-1a 64).
    #[arg(long, value_parser = shard, value_name = "I/N")]
    pub shard: Option<(u32, u32)>,
    /// Start over in an output folder that holds a run (deletes its results).
    #[arg(long)]
    pub force: bool,
    /// On resume, process again the images recorded as errors.
    #[arg(long)]
    pub retry_errors: bool,
    /// Annotations: every image they name also gets boxes for its true classes (replaces [truth] annotations).
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Format of --truth: auto, rsna, nih, generic, voc, coco (default: told from the file).
    #[arg(long, value_parser = format)]
    pub truth_format: Option<AnnotationFormat>,
    /// CSV `truth_label,model_class` tying truth labels to model classes (default: same names).
    #[arg(long)]
    pub class_map: Option<PathBuf>,
    /// Input folders or files (replace [input] paths).
    pub inputs: Vec<PathBuf>,
}

#[derive(Args)]
pub struct MergeArgs {
    /// The shard output folders (one per `--shard I/N`).
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
    /// The merged output folder (new).
    #[arg(long, short)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct InspectArgs {
    pub model: PathBuf,
    /// Input layout when the shape does not tell: auto, nchw, nhwc.
    #[arg(long, value_parser = spelled::<LayoutChoice>, default_value = "auto")]
    pub layout: LayoutChoice,
    /// Input size WIDTHxHEIGHT: needed when the model leaves it symbolic; another size
    /// than the file declares is re-typed and proved, or refused naming the node that
    /// pins the size.
    #[arg(long, value_parser = size)]
    pub input_size: Option<[usize; 2]>,
    /// cambox's kernels: cambox, tract, or a list such as depthwise,maxpool.
    #[arg(long, value_parser = KernelChoice::parse, default_value = "cambox")]
    pub kernels: KernelChoice,
}

#[derive(Args)]
pub struct EvalArgs {
    /// The output folder of `cambox run` (boxes.csv, images.csv, maps/).
    #[arg(long)]
    pub run: PathBuf,
    /// Annotations: RSNA or NIH CSV, generic CSV, VOC folder or .xml, COCO .json.
    #[arg(long)]
    pub truth: PathBuf,
    /// auto, rsna, nih, generic, voc, coco.
    #[arg(long, value_parser = format, default_value = "auto")]
    pub format: AnnotationFormat,
    /// CSV `truth_label,model_class` tying truth labels to model classes (default: same names).
    #[arg(long)]
    pub class_map: Option<PathBuf>,
    /// Output folder (default RUN/eval, or RUN/eval-BASELINE).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Class whose boxes are evaluated, by name or index (default: the only class in boxes.csv).
    #[arg(long)]
    pub class: Option<String>,
    /// Use only truth boxes with this label.
    #[arg(long)]
    pub truth_label: Option<String>,
    /// Boxes count as detections (RSNA, ChestX-ray8) when the class probability is at least this.
    #[arg(long, default_value_t = cambox::defaults::EVAL_MIN_SCORE)]
    pub min_score: f64,
    /// Box arithmetic: half-open (cambox's), or wsol-inclusive (wsolevaluation's +1).
    #[arg(long, value_parser = spelled::<Convention>, default_value = "half-open")]
    pub convention: Convention,
    /// Replace the run's boxes by a baseline box on every processed image: centre, whole.
    #[arg(long, value_parser = spelled::<Baseline>)]
    pub baseline: Option<Baseline>,
    /// Write the best threshold tau as a [localise] snippet (calibrated.toml).
    #[arg(long)]
    pub calibrate: bool,
    /// Step of the tau sweep (0.01, or 0.001 for a fine sweep).
    #[arg(long, default_value_t = cambox::defaults::SWEEP_STEP)]
    pub sweep_step: f64,
    /// Evaluate processed images missing from the annotations as negatives (default: leave them out).
    #[arg(long)]
    pub unannotated_negative: bool,
    /// Images in report.html's gallery.
    #[arg(long, default_value_t = cambox::defaults::GALLERY_MAX)]
    pub gallery: usize,
    /// Pointing game: a hit when the map's peak is within this many original pixels of a truth box.
    #[arg(long, default_value_t = cambox::defaults::POINTING_TOLERANCE)]
    pub pointing_tolerance: f64,
    /// Folder of truth masks named like the images (PNG, 0 background): PxAP and pixel IoU.
    #[arg(long)]
    pub truth_masks: Option<PathBuf>,
    /// Bootstrap resamples of images for the 95 % intervals (0: none).
    #[arg(long, default_value_t = cambox::eval::bootstrap::DEFAULT_RESAMPLES)]
    pub bootstrap: usize,
    /// Seed of the bootstrap resamples.
    #[arg(long, default_value_t = cambox::eval::bootstrap::DEFAULT_SEED)]
    pub bootstrap_seed: u64,
    /// Cut the saved maps at the taus of this calibrated.toml (written by --calibrate on another split).
    #[arg(long)]
    pub taus_from: Option<PathBuf>,
    /// Evaluate only the images this file lists (one path per line, as in images.csv).
    #[arg(long)]
    pub split: Option<PathBuf>,
}

impl From<&RunArgs> for Overrides {
    fn from(a: &RunArgs) -> Overrides {
        Overrides {
            out: a.out.clone(),
            inputs: a.inputs.clone(),
            threads: a.threads,
            method: a.method,
            kernels: a.kernels.clone(),
            shard: a.shard,
            truth: a.truth.clone(),
            truth_format: a.truth_format.and_then(|f| f.0),
            class_map: a.class_map.clone(),
        }
    }
}

impl From<&InspectArgs> for ModelOptions {
    fn from(a: &InspectArgs) -> ModelOptions {
        ModelOptions {
            path: a.model.clone(),
            layout: a.layout,
            input_size: a.input_size,
            kernels: a.kernels.clone(),
            ..ModelOptions::default()
        }
    }
}

impl From<EvalArgs> for EvalOptions {
    fn from(a: EvalArgs) -> EvalOptions {
        EvalOptions {
            format: a.format.0,
            class_map: a.class_map,
            out: a.out,
            class: a.class,
            truth_label: a.truth_label,
            min_score: a.min_score,
            convention: a.convention,
            baseline: a.baseline,
            calibrate: a.calibrate,
            sweep_step: a.sweep_step,
            unannotated_negative: a.unannotated_negative,
            gallery: a.gallery,
            pointing_tolerance: a.pointing_tolerance,
            truth_masks: a.truth_masks,
            bootstrap: a.bootstrap,
            bootstrap_seed: a.bootstrap_seed,
            taus_from: a.taus_from,
            split: a.split,
            ..EvalOptions::new(a.run, a.truth)
        }
    }
}

/// A value by the spelling the library's type has in the configuration and `run.json`.
fn spelled<T: DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| e.to_string())
}

/// An annotation format, or `None` for `auto` (told from the file).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnnotationFormat(pub Option<Format>);

fn format(s: &str) -> Result<AnnotationFormat, String> {
    if s == "auto" {
        Ok(AnnotationFormat(None))
    } else {
        spelled(s).map(|f| AnnotationFormat(Some(f)))
    }
}

fn method(s: &str) -> Result<MethodChoice, String> {
    MethodChoice::try_from(s.to_string())
}

fn shard(s: &str) -> Result<(u32, u32), String> {
    let (i, n) = s.split_once('/').ok_or("expected I/N, e.g. 0/4")?;
    let (i, n): (u32, u32) = (i.parse().map_err(|_| "bad shard index")?, n.parse().map_err(|_| "bad shard count")?);
    if n == 0 || i >= n {
        return Err(format!("shard {i}/{n}: need 0 <= I < N"));
    }
    Ok((i, n))
}

fn size(s: &str) -> Result<[usize; 2], String> {
    let (w, h) = s.split_once('x').ok_or("expected WIDTHxHEIGHT, e.g. 224x224")?;
    Ok([w.parse().map_err(|_| "bad width")?, h.parse().map_err(|_| "bad height")?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_spellings_are_the_library_types_own() {
        assert_eq!(spelled::<Convention>("wsol-inclusive").unwrap(), Convention::WsolInclusive);
        assert_eq!(spelled::<LayoutChoice>("nhwc").unwrap(), LayoutChoice::Nhwc);
        assert_eq!(format("auto").unwrap(), AnnotationFormat(None));
        assert_eq!(format("voc").unwrap(), AnnotationFormat(Some(Format::Voc)));
        assert!(format("pascal").unwrap_err().contains("unknown variant"));
        assert_eq!(shard("1/4").unwrap(), (1, 4));
        assert!(shard("4/4").is_err());
        assert_eq!(size("480x320").unwrap(), [480, 320]);
    }
}
