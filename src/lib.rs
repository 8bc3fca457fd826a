//! cambox: turn image classifiers into weak localisers.
//!
//! For a CNN that ends in global average pooling followed by a dense layer, the class
//! activation map of class k is `M_k = sum_c W[k, c] F_c`, F being the feature map before
//! pooling. cambox cuts the ONNX graph at F ([`model`]), runs the cut network with tract,
//! and gets the maps of the classes it needs with one matrix product ([`cam`]). The mean
//! of `M_k` plus `b_k` is exactly logit k, which proves the cut right at start-up and on
//! every image.
//!
//! Data flows one way, one module per stage:
//! [`discover`] -> [`decode`] -> [`preprocess`] -> [`model`] (infer) -> [`cam`] (map) ->
//! [`output`] (write), driven by [`pipeline`] from a validated [`plan::RunPlan`].

pub mod cam;
pub mod config;
pub mod decode;
pub mod defaults;
pub mod dicom;
pub mod discover;
pub mod error;
pub mod eval;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod plan;
pub mod preprocess;
pub mod progress;
pub mod resample;
pub mod stages;

pub use error::{Error, ImageError, Result};
pub mod localise;
pub mod merge;
pub mod resume;
