//! Models: loading, the feature cut, the head program, the kernels and the maps, each against an independent reference (onnxruntime, numpy, autograd, tract).
//!
//! One test binary per concern (each binary links the library once, so a few
//! binaries build and start faster than one per file).

#[path = "../common/mod.rs"]
mod common;

mod exporter_fixtures;
mod external_data;
mod faithfulness;
mod gradcam_reference;
mod kernels;
mod model_fixtures;
mod real_models;
mod sharper_maps;
