//! The geometry of a 2-D convolution or pooling window over NCHW planes, read from
//! tract's ops: what the depthwise, pointwise and max pooling kernels all compute over.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::conv::Conv;
use tract_onnx::tract_core::ops::cnn::PoolSpec;
use tract_onnx::tract_core::ops::nn::DataFormat;

/// The window of one 2-D convolution over a `channels x in_h x in_w` plane stack (for a
/// depthwise convolution, also its output channels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvWindow {
    pub channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

/// The window of a float, unquantised NCHW 2-D `Conv` without dilation, with a concrete
/// input; any number of groups.
pub fn window_of(conv: &Conv, x: &TypedFact) -> Option<ConvWindow> {
    let w = pool_window(&conv.pool_spec, x)?;
    (conv.q_params.is_none() && w.channels == conv.pool_spec.input_channels).then_some(w)
}

/// The window of a float NCHW (or CHW, or with more leading axes of 1) 2-D pooling
/// specification without dilation, with a concrete input.
pub fn pool_window(spec: &PoolSpec, x: &TypedFact) -> Option<ConvWindow> {
    let nchw = matches!(spec.data_format, DataFormat::NCHW | DataFormat::CHW);
    if !nchw || x.datum_type != f32::datum_type() || spec.kernel_shape.len() != 2 {
        return None;
    }
    if spec.dilations.as_ref().is_some_and(|d| d.iter().any(|&v| v != 1)) {
        return None;
    }
    let shape = x.shape.as_concrete()?;
    if shape.len() < 3 || shape[..shape.len() - 3].iter().any(|&d| d != 1) {
        return None;
    }
    let hw = &shape[shape.len() - 2..];
    let strides = spec.strides.clone().unwrap_or_else(|| tvec![1, 1]);
    let padding = spec.padding.compute(hw, &spec.kernel_shape, &[1, 1], &strides);
    Some(ConvWindow {
        channels: shape[shape.len() - 3],
        in_h: hw[0],
        in_w: hw[1],
        out_h: padding[0].convoluted,
        out_w: padding[1].convoluted,
        k_h: spec.kernel_shape[0],
        k_w: spec.kernel_shape[1],
        stride_h: strides[0],
        stride_w: strides[1],
        pad_top: padding[0].pad_before,
        pad_left: padding[1].pad_before,
    })
}
