//! `[preprocess]`: the recipe that turns a decoded image into the network's input, as the
//! preprocessing stage's own types (the serde spellings are the TOML and `run.json` ones).

use serde::{Deserialize, Serialize};

use super::resample::Resampling;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeMode {
    /// Scale both axes independently to the network size (aspect ratio not kept).
    Stretch,
    /// Scale the shorter side to `resize_to`, then cut the centre `crop` (torchvision).
    ShorterSideThenCenterCrop,
    /// Scale to fit inside the network size keeping the aspect ratio, pad the rest.
    Letterbox,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelScale {
    /// Pixel values in [0, 1] before mean/std.
    Unit,
    /// Pixel values in [0, 255] before mean/std.
    Byte,
}

impl PixelScale {
    /// The value of a white pixel before mean and std.
    pub fn range(self) -> f32 {
        match self {
            PixelScale::Unit => 1.0,
            PixelScale::Byte => 255.0,
        }
    }
}

/// `[preprocess]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreprocessOptions {
    pub resize: ResizeMode,
    /// Shorter side after scaling, for `shorter-side-then-center-crop`.
    pub resize_to: Option<usize>,
    pub resampling: Resampling,
    pub channels: ChannelOrder,
    pub scale: PixelScale,
    /// Subtracted per channel after scaling (one value, or one per channel).
    pub mean: Vec<f32>,
    /// Divides per channel after subtracting the mean.
    pub std: Vec<f32>,
    /// Value of letterbox padding, in the scaled pixel range before mean/std.
    pub pad_value: f32,
}

impl Default for PreprocessOptions {
    fn default() -> Self {
        PreprocessOptions {
            resize: ResizeMode::Stretch,
            resize_to: None,
            resampling: Resampling::Bilinear,
            channels: ChannelOrder::Rgb,
            scale: PixelScale::Unit,
            mean: vec![0.0],
            std: vec![1.0],
            pad_value: 0.0,
        }
    }
}
