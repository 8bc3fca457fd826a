//! The feature map F of one image: the tensor the network is cut at, seen as channels x
//! positions whatever its layout, and its global average (what the pooling computes).

use ndarray::{Array2, ArrayView2, Axis};
use tract_onnx::prelude::*;

use crate::stage::input_spec::Layout;

/// The feature map F of one image, as a C x (h*w) matrix view over the tensor tract
/// returned (positions in row-major order, y * w + x), whatever the layout.
pub struct FeatureMap {
    data: ndarray::ArrayD<f32>,
    pub layout: Layout,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl FeatureMap {
    pub(super) fn from_tensor(tensor: Tensor, layout: Layout) -> std::result::Result<FeatureMap, String> {
        let shape = tensor.shape().to_vec();
        if shape.len() != 4 || shape[0] != 1 {
            return Err(format!("feature map has shape {shape:?}, expected 1 x C x H x W or 1 x H x W x C"));
        }
        let (c, h, w) = match layout {
            Layout::Nchw => (shape[1], shape[2], shape[3]),
            Layout::Nhwc => (shape[3], shape[1], shape[2]),
        };
        let data = tensor
            .cast_to::<f32>()
            .and_then(|t| t.into_owned().into_plain_array::<f32>())
            .map_err(|e| format!("{e:#}"))?
            .as_standard_layout()
            .into_owned();
        Ok(FeatureMap { data, layout, channels: c, height: h, width: w })
    }

    /// Builds a feature map from plain data (tests, tools).
    pub fn from_chw(data: Array2<f32>, height: usize, width: usize) -> FeatureMap {
        let c = data.nrows();
        let data = data
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(vec![1, c, height, width])
            .expect("C x (h*w) data");
        FeatureMap { data, layout: Layout::Nchw, channels: c, height, width }
    }

    /// F as C x positions.
    pub fn matrix(&self) -> ArrayView2<'_, f32> {
        let s = self.data.as_slice().expect("standard layout");
        let hw = self.height * self.width;
        match self.layout {
            Layout::Nchw => ArrayView2::from_shape((self.channels, hw), s).expect("shape"),
            Layout::Nhwc => ArrayView2::from_shape((hw, self.channels), s).expect("shape").reversed_axes(),
        }
    }

    /// The pooled vector g = mean of F over positions (what the global pooling computes).
    pub fn pooled(&self) -> ndarray::Array1<f32> {
        // Sum in f64: 1280 x 49 values, and the logit check compares to 1e-4.
        let m = self.matrix();
        let n = (self.height * self.width) as f64;
        m.map(|&v| v as f64).sum_axis(Axis(1)).mapv(|s| (s / n) as f32)
    }
}
