//! The `cambox` command. It parses flags, asks the library to build and run a plan, and
//! maps the outcome to an exit status; nothing else lives here.
//!
//! Exit status: 0 every image ok; 3 the run completed but some images failed; 1 a fatal
//! error (bad configuration, model refused, output not writable); 2 bad usage; 130
//! interrupted by SIGINT or SIGTERM (the next run in the same folder resumes).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use cambox::config::{Config, LayoutChoice};
use cambox::model::{Head, ModelPlan};
use cambox::pipeline::{self, RunOptions};
use cambox::plan::{Overrides, RunPlan};

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
        /// Map method (overrides [cam] method): cam, gradcam, gradcam++, hirescam, eigencam, ablationcam.
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
        /// Input size WIDTHxHEIGHT when the model leaves it symbolic.
        #[arg(long, value_parser = parse_size)]
        input_size: Option<[usize; 2]>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LayoutArg {
    Auto,
    Nchw,
    Nhwc,
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
const EXIT_SOME_FAILED: u8 = 3;
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("cambox: error: {e:#}");
            ExitCode::from(EXIT_FATAL)
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run { config, out, threads, quiet, method, shard, force, retry_errors, inputs } => {
            let cfg = Config::load(&config)?;
            let plan = RunPlan::build(cfg, &config, Overrides { out, inputs, threads, method, shard })?;
            // SIGINT / SIGTERM: stop taking images, finish those in flight, write run.json.
            let cancel = Arc::new(AtomicBool::new(false));
            let flag = cancel.clone();
            ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).context("installing the signal handler")?;
            let opts = RunOptions { quiet, cancel: Some(cancel), force, retry_errors };
            let summary =
                pipeline::run(&plan, opts).with_context(|| format!("run into {} stopped", plan.out_dir.display()))?;
            let c = summary.counts;
            if summary.interrupted {
                eprintln!("cambox: interrupted: {} images ok, {} errors so far; run again to resume", c.ok, c.error);
                return Ok(EXIT_INTERRUPTED);
            }
            eprintln!("cambox: {} images ok, {} errors; results in {}", c.ok, c.error, plan.out_dir.display());
            Ok(if c.error > 0 { EXIT_SOME_FAILED } else { EXIT_OK })
        }
        Command::Merge { shards, out } => {
            let m = cambox::merge::merge(&shards, &out)?;
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
            let plan = ModelPlan::load(&model, layout, input_size, None, &|_, v| v)?;
            print_inspect(&model, &plan);
            Ok(EXIT_OK)
        }
    }
}

fn print_inspect(path: &std::path::Path, m: &ModelPlan) {
    let i = &m.input;
    let r = &m.report;
    println!("model:          {}", path.display());
    println!("input:          '{}' {:?} {} channels, {}x{} (WxH)", i.name, i.layout, i.channels, i.width, i.height);
    println!("pooling:        {} '{}'", r.pooling_op, r.pooling_node);
    println!("feature tensor: '{}' shape {:?} ({:?})", r.feature_tensor, r.feature_shape, r.feature_layout);
    let head = match &m.cut.head {
        Head::Linear(h) => {
            format!("linear ({}; W {}x{}, b {})", h.dense_op, h.weight.nrows(), h.weight.ncols(), h.bias.len())
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
        if r.output_is_softmax { " (the output is its softmax)" } else { "" }
    );
    println!("classes:        {}", r.num_classes);
    println!("cut check:      logits from the cut equal the full model's within {:.1e} (relative)", r.probe_rel_diff);
    let methods = r.map_methods.join(", ");
    println!("map methods:    {methods}");
}
