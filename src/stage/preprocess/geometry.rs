//! The exact relation between original-image pixels and network-input pixels.
//!
//! Produced by the preprocessing for every image and used by every stage that draws on
//! the original image (maps back to pixels, boxes, masks, overlays): the mapping is
//! recorded, not re-derived, so a centre crop or a letterbox is part of what the network
//! saw.

use serde::{Deserialize, Serialize};

/// How original-image coordinates map to network-input coordinates:
/// `u = x * scale_x + offset_x`, `v = y * scale_y + offset_y`, in continuous pixel
/// coordinates (pixel i covers [i, i + 1)). A negative offset is a crop, a positive one
/// a letterbox pad.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    pub orig_w: u32,
    pub orig_h: u32,
    pub net_w: usize,
    pub net_h: usize,
    /// Size of the scaled image before cropping or padding.
    pub resized_w: usize,
    pub resized_h: usize,
    pub scale_x: f64,
    pub scale_y: f64,
    pub offset_x: f64,
    pub offset_y: f64,
}

impl Geometry {
    pub fn to_net(&self, x: f64, y: f64) -> (f64, f64) {
        (x * self.scale_x + self.offset_x, y * self.scale_y + self.offset_y)
    }
    pub fn to_orig(&self, u: f64, v: f64) -> (f64, f64) {
        ((u - self.offset_x) / self.scale_x, (v - self.offset_y) / self.scale_y)
    }
}
