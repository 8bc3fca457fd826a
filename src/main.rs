//! The `cambox` command. It parses flags, asks the library to build and run a plan, and
//! maps the outcome to an exit status; nothing else lives here.
//!
//! Exit status: 0 every image ok; 3 the run completed but some images failed, or it found
//! no image at all; 1 a fatal error (bad configuration, model refused, output not
//! writable, output folder in use); 2 bad usage; 130 interrupted by SIGINT or SIGTERM (the
//! next run in the same folder resumes).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use cambox::config::Config;
use cambox::eval::metrics::Convention;
use cambox::eval::{run_eval, Baseline, EvalError, EvalOptions};
use cambox::plan::{Overrides, RunPlan};
use cambox::run::pipeline::{self, RunOptions};
use cambox::stage::maps::MapMethod;
use cambox::stage::model::{ActivationChoice, FinalOp, Head, LayoutChoice, ModelOptions, ModelPlan};
use cambox::stage::preprocess::Normaliser;
use cambox::truth::annotations::Format;

/// Refuses to go on, with a message, on a CPU without the instructions this binary was
/// compiled for (`.cargo/config.toml` builds for x86-64-v3), rather than die later of an
/// illegal instruction. Called first thing in `main`; it only reads CPUID.
#[inline(never)]
fn check_cpu() -> Result<(), String> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut missing = Vec::new();
        if cfg!(target_feature = "avx2") && !std::arch::is_x86_feature_detected!("avx2") {
            missing.push("AVX2");
        }
        if cfg!(target_feature = "fma") && !std::arch::is_x86_feature_detected!("fma") {
            missing.push("FMA");
        }
        if cfg!(target_feature = "bmi2") && !std::arch::is_x86_feature_detected!("bmi2") {
            missing.push("BMI2");
        }
        if !missing.is_empty() {
            return Err(format!(
                "this cambox was built for x86-64-v3 but this CPU lacks {}; rebuild it with \
                 RUSTFLAGS=\"-C target-cpu=x86-64\" cargo build --release",
                missing.join(", ")
            ));
        }
    }
    Ok(())
}

/// One glibc malloc arena per worker, instead of glibc's default of up to eight per core.
///
/// Why: tract allocates every intermediate tensor on every run (1-2 MB activations, per
/// layer, per worker). glibc gives each thread that meets contention an arena of its own
/// and keeps the freed memory of each, so peak RSS crept up over a run (175-200 MB on the
/// 200 X-ray benchmark); with one arena per worker it is about 150 MB, at the same speed
/// (README, Performance). Set before the workers start; other allocators ignore it.
fn limit_malloc_arenas(workers: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called from the main thread before
    // the worker threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, workers.clamp(1, i32::MAX as usize) as i32);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = workers;
}

#[derive(Parser)]
#[command(name = "cambox", version, about = "Class activation maps, boxes and masks from ONNX image classifiers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Process folders of images with a classifier.
    Run {
        /// TOML run configuration.
        #[arg(long, short)]
        config: PathBuf,
        /// Output folder (overrides [output] dir).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Worker threads (0 = one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// No progress output.
        #[arg(long, short)]
        quiet: bool,
        /// Map method (overrides [cam] method): auto, cam, gradcam, gradcam++, hirescam, eigencam, ablationcam.
        #[arg(long)]
        method: Option<String>,
        /// Process only the images whose relative path hashes to shard I of N (FNV-1a 64).
        #[arg(long, value_parser = parse_shard, value_name = "I/N")]
        shard: Option<(u32, u32)>,
        /// Start over in an output folder that holds a run (deletes its results).
        #[arg(long)]
        force: bool,
        /// On resume, process again the images recorded as errors.
        #[arg(long)]
        retry_errors: bool,
        /// Annotations: every image they name also gets boxes for its true classes (replaces [truth] annotations).
        #[arg(long)]
        truth: Option<PathBuf>,
        /// Format of --truth (default: told from the file).
        #[arg(long, value_enum)]
        truth_format: Option<FormatArg>,
        /// CSV `truth_label,model_class` tying truth labels to model classes (default: same names).
        #[arg(long)]
        class_map: Option<PathBuf>,
        /// Input folders or files (replace [input] paths).
        inputs: Vec<PathBuf>,
    },
    /// Merge the output folders of a sharded run into one.
    Merge {
        /// The shard output folders (one per `--shard I/N`).
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// The merged output folder (new).
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Describe a model: input, pooling, feature tensor, head and applicable map methods.
    Inspect {
        model: PathBuf,
        /// Input layout when the shape does not tell.
        #[arg(long, value_enum, default_value = "auto")]
        layout: LayoutArg,
        /// Input size WIDTHxHEIGHT: needed when the model leaves it symbolic; another size
        /// than the file declares is re-typed and proved, or refused naming the node that
        /// pins the size.
        #[arg(long, value_parser = parse_size)]
        input_size: Option<[usize; 2]>,
    },
    /// Score a run's boxes against ground-truth annotations.
    Eval {
        /// The output folder of `cambox run` (boxes.csv, images.csv, maps/).
        #[arg(long)]
        run: PathBuf,
        /// Annotations: RSNA or NIH CSV, generic CSV, VOC folder or .xml, COCO .json.
        #[arg(long)]
        truth: PathBuf,
        #[arg(long, value_enum, default_value = "auto")]
        format: FormatArg,
        /// CSV `truth_label,model_class` tying truth labels to model classes (default: same names).
        #[arg(long)]
        class_map: Option<PathBuf>,
        /// Output folder (default RUN/eval, or RUN/eval-BASELINE).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Class whose boxes are evaluated, by name or index (default: the only class in boxes.csv).
        #[arg(long)]
        class: Option<String>,
        /// Use only truth boxes with this label.
        #[arg(long)]
        truth_label: Option<String>,
        /// Boxes count as detections (RSNA, ChestX-ray8) when the class probability is at least this.
        #[arg(long, default_value_t = cambox::defaults::EVAL_MIN_SCORE)]
        min_score: f64,
        /// Box arithmetic: cambox's half-open boxes, or wsolevaluation's inclusive +1.
        #[arg(long, value_enum, default_value = "half-open")]
        convention: ConventionArg,
        /// Replace the run's boxes by a baseline box on every processed image.
        #[arg(long, value_enum)]
        baseline: Option<BaselineArg>,
        /// Write the best threshold tau as a [localise] snippet (calibrated.toml).
        #[arg(long)]
        calibrate: bool,
        /// Step of the tau sweep (0.01, or 0.001 for a fine sweep).
        #[arg(long, default_value_t = cambox::defaults::SWEEP_STEP)]
        sweep_step: f64,
        /// Evaluate processed images missing from the annotations as negatives (default: leave them out).
        #[arg(long)]
        unannotated_negative: bool,
        /// Images in report.html's gallery.
        #[arg(long, default_value_t = cambox::defaults::GALLERY_MAX)]
        gallery: usize,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Auto,
    Rsna,
    Nih,
    Generic,
    Voc,
    Coco,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BaselineArg {
    Centre,
    Whole,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ConventionArg {
    HalfOpen,
    WsolInclusive,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LayoutArg {
    Auto,
    Nchw,
    Nhwc,
}

fn format_of(f: FormatArg) -> Option<Format> {
    match f {
        FormatArg::Auto => None,
        FormatArg::Rsna => Some(Format::Rsna),
        FormatArg::Nih => Some(Format::Nih),
        FormatArg::Generic => Some(Format::Generic),
        FormatArg::Voc => Some(Format::Voc),
        FormatArg::Coco => Some(Format::Coco),
    }
}

fn parse_shard(s: &str) -> Result<(u32, u32), String> {
    let (i, n) = s.split_once('/').ok_or("expected I/N, e.g. 0/4")?;
    let (i, n): (u32, u32) = (i.parse().map_err(|_| "bad shard index")?, n.parse().map_err(|_| "bad shard count")?);
    if n == 0 || i >= n {
        return Err(format!("shard {i}/{n}: need 0 <= I < N"));
    }
    Ok((i, n))
}

fn parse_size(s: &str) -> Result<[usize; 2], String> {
    let (w, h) = s.split_once('x').ok_or("expected WIDTHxHEIGHT, e.g. 224x224")?;
    Ok([w.parse().map_err(|_| "bad width")?, h.parse().map_err(|_| "bad height")?])
}

/// Exit statuses.
const EXIT_OK: u8 = 0;
const EXIT_FATAL: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_SOME_FAILED: u8 = 3;
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    if let Err(e) = check_cpu() {
        eprintln!("cambox: error: {e}");
        return ExitCode::from(EXIT_FATAL);
    }
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("cambox: error: {e:#}");
            let usage = matches!(e.downcast_ref::<EvalError>(), Some(EvalError::Usage(_)));
            ExitCode::from(if usage { EXIT_USAGE } else { EXIT_FATAL })
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run {
            config,
            out,
            threads,
            quiet,
            method,
            shard,
            force,
            retry_errors,
            truth,
            truth_format,
            class_map,
            inputs,
        } => {
            // The method is parsed here rather than by clap so that a wrong one is a
            // configuration error (exit 1) like the same mistake in `[cam] method`.
            let method = method
                .map(cambox::stage::maps::MethodChoice::try_from)
                .transpose()
                .map_err(|e| cambox::Error::config(&config, format!("--method: {e}")))?;
            // SIGINT / SIGTERM: stop taking images, finish those in flight, write run.json.
            // Installed first: a scheduler may signal while the model is still loading, and
            // the run must then end as interrupted (130, resumable), not killed (143).
            let cancel = Arc::new(AtomicBool::new(false));
            let flag = cancel.clone();
            ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).context("installing the signal handler")?;
            let cfg = Config::load(&config)?;
            let truth_format = truth_format.and_then(format_of);
            let overrides = Overrides { out, inputs, threads, method, shard, truth, truth_format, class_map };
            let plan = RunPlan::build(cfg, &config, overrides)?;
            if cancel.load(Ordering::SeqCst) {
                eprintln!("cambox: interrupted while starting, before any image; run again to start");
                return Ok(EXIT_INTERRUPTED);
            }
            limit_malloc_arenas(plan.threads);
            let opts = RunOptions { quiet, cancel: Some(cancel), force, retry_errors };
            let summary =
                pipeline::run(&plan, opts).with_context(|| format!("run into {} stopped", plan.out_dir.display()))?;
            let c = summary.counts;
            if let Some(why) = &summary.nothing_found {
                eprintln!("cambox: {why}");
                return Ok(EXIT_SOME_FAILED);
            }
            if summary.interrupted {
                eprintln!("cambox: interrupted: {} images ok, {} errors so far; run again to resume", c.ok, c.error);
                return Ok(EXIT_INTERRUPTED);
            }
            eprintln!("cambox: {} images ok, {} errors; results in {}", c.ok, c.error, shown(&plan.out_dir).display());
            Ok(if c.error > 0 { EXIT_SOME_FAILED } else { EXIT_OK })
        }
        Command::Merge { shards, out } => {
            let m = cambox::run::merge::merge(&shards, &out)?;
            eprintln!(
                "cambox: merged {} shards: {} images, {} boxes, {} files into {}",
                m.shards,
                m.images,
                m.boxes,
                m.files,
                out.display()
            );
            Ok(EXIT_OK)
        }
        Command::Inspect { model, layout, input_size } => {
            let layout = match layout {
                LayoutArg::Auto => LayoutChoice::Auto,
                LayoutArg::Nchw => LayoutChoice::Nchw,
                LayoutArg::Nhwc => LayoutChoice::Nhwc,
            };
            let options = ModelOptions { path: model.clone(), layout, input_size, ..ModelOptions::default() };
            // The probe is a plain [0, 1] image: no mean or std to apply.
            let plan = ModelPlan::load(&options, &Normaliser::identity())?;
            print_inspect(&model, &plan);
            Ok(EXIT_OK)
        }
        Command::Eval {
            run,
            truth,
            format,
            class_map,
            out,
            class,
            truth_label,
            min_score,
            convention,
            baseline,
            calibrate,
            sweep_step,
            unannotated_negative,
            gallery,
        } => {
            let mut o = EvalOptions::new(run, truth);
            o.format = format_of(format);
            o.class_map = class_map;
            o.baseline = baseline.map(|b| match b {
                BaselineArg::Centre => Baseline::Centre,
                BaselineArg::Whole => Baseline::Whole,
            });
            o.convention = match convention {
                ConventionArg::HalfOpen => Convention::HalfOpen,
                ConventionArg::WsolInclusive => Convention::WsolInclusive,
            };
            (o.out, o.class, o.truth_label, o.min_score) = (out, class, truth_label, min_score);
            (o.calibrate, o.sweep_step, o.unannotated_negative, o.gallery) =
                (calibrate, sweep_step, unannotated_negative, gallery);
            let ev = run_eval(&o)?;
            print!("{}", cambox::eval::report::table(&ev));
            Ok(EXIT_OK)
        }
    }
}

/// A path as a user would type it: resolved (no `configs/../`), relative to the working
/// folder when it lies under it.
fn shown(path: &std::path::Path) -> std::path::PathBuf {
    let Ok(full) = path.canonicalize() else { return path.to_path_buf() };
    let here = std::env::current_dir().and_then(|d| d.canonicalize());
    match here.as_ref().map(|h| full.strip_prefix(h)) {
        Ok(Ok(rel)) if !rel.as_os_str().is_empty() => rel.to_path_buf(),
        _ => full,
    }
}

fn print_inspect(path: &std::path::Path, m: &ModelPlan) {
    let i = &m.input;
    let r = &m.report;
    println!("model:          {}", path.display());
    println!("input:          '{}' {:?} {} channels, {}x{} (WxH)", i.name, i.layout, i.channels, i.width, i.height);
    if let Some([w, h]) = r.retyped_from {
        println!(
            "re-typed:       the file declares {w}x{h}; the graph runs at {}x{} and the cut check below proves it there",
            i.width, i.height
        );
        if r.same_padding > 0 {
            println!(
                "                {} convolutions and poolings: TensorFlow's \"same\" padding, which tf2onnx wrote for {w}x{h}, recomputed for this size",
                r.same_padding
            );
        }
    }
    println!("pooling:        {} '{}'", r.pooling_op, r.pooling_node);
    println!("feature tensor: '{}' shape {:?} ({:?})", r.feature_tensor, r.feature_shape, r.feature_layout);
    let head = match &m.head {
        Head::Linear(h) => {
            let dense: Vec<&str> =
                r.head_ops.iter().map(String::as_str).filter(|o| matches!(*o, "Gemm" | "MatMul" | "Conv")).collect();
            format!("linear ({}; W {}x{}, b {})", dense.join(", "), h.weight.nrows(), h.weight.ncols(), h.bias.len())
        }
        Head::Identity => "identity (no dense layer; one feature channel per class)".to_string(),
        Head::Other { op, node_name, ops, program } => {
            let dense = ops.iter().filter(|o| *o == "Gemm" || *o == "MatMul").count();
            let kind = if dense >= 2 { "MLP" } else { "not a single affine map" };
            let eval = match program {
                Ok(_) => "cambox evaluates and differentiates it".to_string(),
                Err(e) => format!("cambox cannot differentiate it: {e}"),
            };
            format!("{kind} (other): first non-linear op {op} '{node_name}'; {eval}")
        }
    };
    println!("head:           {head}");
    println!("head ops:       {}", r.head_ops.join(" -> "));
    println!(
        "logits:         '{}'{}",
        r.logits_tensor,
        match r.output_activation {
            FinalOp::Softmax => " (the output is its softmax)",
            FinalOp::Sigmoid => " (the output is its per-class sigmoid)",
            FinalOp::None => "",
        }
    );
    let activation =
        cambox::plan::activation(ActivationChoice::Auto, r.output_activation).expect("auto follows the graph");
    let how = match r.output_activation {
        FinalOp::Sigmoid => "per-class sigmoid of the logits: multi-label",
        FinalOp::Softmax => "softmax over the classes",
        FinalOp::None => "the model outputs raw logits; set [model] activation = \"sigmoid\" if it is multi-label",
    };
    println!("activation:     {} ({how})", activation.name());
    println!("classes:        {}", r.num_classes);
    println!("cut check:      logits from the cut equal the full model's within {:.1e} (relative)", r.probe_rel_diff);
    let methods: Vec<&str> = MapMethod::applicable(&m.head).iter().map(|m| m.name()).collect();
    let methods = methods.join(", ");
    println!("map methods:    {methods}");
    let (auto, why) = cambox::stage::maps::MethodChoice::Auto.resolve(&m.head);
    println!("method auto:    {} ({})", auto.name(), why.unwrap_or_default());
}
