//! What the network expects as input: the one fact the preprocessing needs from the model.
//!
//! It lives apart from both stages because the model stage reads it from the ONNX file and
//! the preprocessing stage, which runs before the network, builds tensors to it: neither
//! stage imports the other for it.

use serde::{Deserialize, Serialize};

/// Axis order of a 4-D tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

/// What the network expects as input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub name: String,
    pub layout: Layout,
    pub channels: usize,
    pub width: usize,
    pub height: usize,
}
