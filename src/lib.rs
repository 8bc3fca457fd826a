//! cambox: turn image classifiers into weak localisers.
//!
//! For a CNN that ends in global average pooling followed by a dense layer, the class
//! activation map of class k is `M_k = sum_c W[k, c] F_c`, F being the feature map before
//! pooling. cambox cuts the ONNX graph at F ([`stage::model`]), runs the cut network with
//! tract, and gets the maps of the classes it needs with one matrix product
//! ([`stage::maps`]). The mean of `M_k` plus `b_k` is exactly logit k, which proves the cut
//! right at start-up and on every image.
//!
//! The crate, in the order a run uses it:
//! - [`config`] parses the TOML run configuration into the stages' own option types;
//!   [`plan`] resolves it with the command line into a validated [`plan::RunPlan`] of
//!   ready-built parts.
//! - [`stage`] holds the stages, data flowing one way: [`stage::discover`] ->
//!   [`stage::decode`] -> [`stage::preprocess`] -> [`stage::model`] (infer) ->
//!   [`stage::maps`] -> [`stage::localise`]; each imports only the plain types of the
//!   stages before it.
//! - [`output`] writes (and owns the formats of) `images.csv`, `boxes.csv`, `run.json`
//!   and the per-image artefacts.
//! - [`run`] drives a plan: the parallel [`run::pipeline`], [`run::resume`],
//!   [`run::merge`] of shards, progress and per-stage timing.
//! - [`explain`] takes one image at a time, a file or pixels in memory, through the same
//!   steps as a run and hands back what the run would write: the Python binding's entry.
//! - [`truth`] reads annotations and maps their labels to model classes, for `run --truth`
//!   and for [`eval`], which scores a finished run against them.
//!
//! No module imports one that imports it back (`tests/architecture/module_graph.rs` keeps it so).
//!
//! The library has no `unsafe` code: what needs it (SIMD kernels, allocator tuning) is in
//! the `cambox-kernels` crate, and the 12-bit JPEG decoder in `cambox-jpeg12`.

#![forbid(unsafe_code)]

pub mod error;
pub mod faults;
pub mod defaults;
pub mod labels;
pub mod config;
pub mod plan;
pub mod stage;
pub mod output;
pub mod run;
pub mod explain;
pub mod truth;
pub mod eval;
pub mod faith;
pub mod inspect;

pub use error::{Error, ErrorKind, ImageError, Result};
