//! A pointwise (1x1) convolution kernel for NCHW data, with its bias, clamp and residual
//! add fused, put in place of tract's matrix product in the decluttered graph.
//!
//! Why: profiled on one thread, tract's matrix products were 68 % of EfficientNet-Lite0's
//! network time and 85 % of Xception's after cambox's depthwise kernel, at 18-98 GFLOP/s
//! (this CPU's FMA peak is about 117). Two things cost it the most. Every product first
//! packs its input into column panels (`OptMatMulPack`, about 1.1 ms an image on either
//! model); and its choice of which operand to vectorise is poor where the shapes are
//! lopsided (EfficientNet's first expansion, 16 -> 96 channels over 112 x 112 pixels, ran
//! at 18 GFLOP/s, and the 24- and 40-channel layers at 45-56). A 1x1 convolution over
//! NCHW data needs no packing of its input at all: each input channel is a contiguous
//! row of pixels. So cambox computes `y[o, p] = sum_i w[o, i] x[i, p]` two ways, and
//! picks per layer the one that wastes fewer vector lanes:
//!
//! - **by pixel** ([`Scheme::ByPixel`]): tiles of 6 output channels x 64 pixels, 24
//!   accumulators of 16 lanes; each step loads 4 vectors of one input row and broadcasts
//!   6 weights. Good wherever the plane is large; the last tile of a row is masked.
//! - **by channel** ([`Scheme::ByChannel`]): tiles of 32 output channels x up to 12
//!   pixels; each step loads 2 vectors of weights and broadcasts 12 input values. Good for
//!   the small planes (7 x 7, 9 x 9, 5 x 5) of the last stages, whose hundreds of channels
//!   fill vectors where 49 or 81 pixels do not.
//!
//! A one-group convolution with a larger window (the networks' stems: 3x3, stride 2 on
//! the 3 colour planes; Xception's second 3x3) runs the same kernel on its patch matrix
//! ([`patches`]: one row per input channel and tap, built per image), where tract ran it
//! at 27 and 62 GFLOP/s.
//!
//! The weights are packed once, when the plan is built. The node pattern is tract's own
//! decluttered form of a 1x1 `Conv` (stride 1, no padding, one group): an `EinSum` of the
//! input with a constant `O x I` weight matrix (or a one-group NCHW `Conv` with a constant
//! OIHW kernel and bias, without dilation), then optionally `Add` of a per-channel
//! constant (the bias), `Max` and `Min` of constant scalars (ReLU, ReLU6) and an `Add` of
//! another tensor of the output's shape (a residual); each node of the chain but the last
//! has one successor and is not a model output. It needs AVX-512 (tract's op stays on a
//! CPU without it), and `[model] kernels = "tract"` keeps tract's op everywhere. Sums run in
//! another order than tract's: outputs agree with tract's within 1e-5 of the tensor's
//! scale, which `tests/models/kernels.rs` checks on every layer of both models.

use std::sync::Arc;

use crate::fusion::{self, chw, Fusable, Tail};
use crate::isa::Avx512;
use crate::window::{window_of, ConvWindow};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::conv::Conv;
use tract_onnx::tract_core::ops::cnn::KernelFormat;
use tract_onnx::tract_core::ops::einsum::EinSum;

/// Lanes of a vector (AVX-512, f32).
const LANES: usize = 16;
/// By pixel: output channels per tile, and vectors of pixels per tile.
const PIXEL_TILE_ROWS: usize = 6;
const PIXEL_TILE_VECTORS: usize = 4;
/// By channel: output channels per tile (two vectors), and pixels per tile.
const CHANNEL_TILE_ROWS: usize = 32;
const CHANNEL_TILE_PIXELS: usize = 12;
/// By channel keeps the vector units busy less well than by pixel (12 broadcasts feed 24
/// FMAs, against 6 broadcasts and 4 loads for 24): it is chosen only where by pixel would
/// fill fewer than this fraction of the lanes by channel fills. Set from the per-node
/// profile of the two models (`PER_NODE=1 examples/op_profile`): on 196-pixel planes by
/// channel ran at 84-88 GFLOP/s where by pixel ran at 95-104.
const CHANNEL_SCHEME_HANDICAP: f32 = 0.85;

/// What one 1x1 convolution computes: `channels_out x pixels` from `channels_in x pixels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PointwiseGeometry {
    pub channels_in: usize,
    pub channels_out: usize,
    pub pixels: usize,
}

/// Which operand the vector lanes run along (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    ByPixel,
    ByChannel,
}

impl Scheme {
    /// The scheme that wastes fewer lanes on this geometry.
    pub fn for_geometry(g: &PointwiseGeometry) -> Scheme {
        let fill = |n: usize, tile: usize| n as f32 / (n.div_ceil(tile) * tile) as f32;
        let by_pixel = fill(g.pixels, LANES) * fill(g.channels_out, PIXEL_TILE_ROWS);
        let by_channel = fill(g.channels_out, CHANNEL_TILE_ROWS) * CHANNEL_SCHEME_HANDICAP;
        if by_channel > by_pixel {
            Scheme::ByChannel
        } else {
            Scheme::ByPixel
        }
    }

    fn tile_rows(self) -> usize {
        match self {
            Scheme::ByPixel => PIXEL_TILE_ROWS,
            Scheme::ByChannel => CHANNEL_TILE_ROWS,
        }
    }
}

/// What is applied to each output after the product: `min(max(y + bias, low), high)`, then
/// `+ residual` when the op has a second input.
#[derive(Debug, Clone, PartialEq)]
pub struct Epilogue {
    /// One value per output channel, padded with zeros to whole tiles.
    pub bias: Vec<f32>,
    pub low: f32,
    pub high: f32,
}

/// The weights, packed for a scheme: tile after tile of `tile_rows` output channels, each
/// `channels_in` steps of `tile_rows` values, zero past the last channel.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedWeights {
    pub scheme: Scheme,
    pub values: Vec<f32>,
}

impl PackedWeights {
    /// Packs an `channels_out x channels_in` row-major matrix.
    pub fn pack(g: &PointwiseGeometry, scheme: Scheme, weights: &[f32]) -> PackedWeights {
        assert_eq!(weights.len(), g.channels_out * g.channels_in);
        let rows = scheme.tile_rows();
        let tiles = g.channels_out.div_ceil(rows);
        let mut values = vec![0f32; tiles * rows * g.channels_in];
        for o in 0..g.channels_out {
            let (tile, r) = (o / rows, o % rows);
            for i in 0..g.channels_in {
                values[(tile * g.channels_in + i) * rows + r] = weights[o * g.channels_in + i];
            }
        }
        PackedWeights { scheme, values }
    }
}

/// cambox's 1x1 convolution op: input `x` (`[1,] C_in, H, W`) and, when `residual`, a
/// second input of the output's shape added last.
#[derive(Debug, Clone, PartialEq)]
pub struct PointwiseConv {
    /// The proof that this CPU runs the kernel.
    pub isa: Avx512,
    pub geometry: PointwiseGeometry,
    pub weights: Arc<PackedWeights>,
    pub epilogue: Arc<Epilogue>,
    pub residual: bool,
    pub output_shape: TVec<usize>,
    /// For a convolution with a window larger than 1x1: its window. The input is then the
    /// `C x H x W` planes, and the product runs on their patch matrix (see [`patches`]).
    pub window: Option<ConvWindow>,
}

// tract merges equal ops on equal inputs; float fields compared by value make a NaN
// weight never equal, which only forgoes a merge.
impl Eq for PointwiseConv {}

impl PointwiseConv {
    /// The op for `weights` (`channels_out x channels_in`), `bias` (one per output channel)
    /// and the clamp, with the scheme that suits the geometry.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        isa: Avx512,
        geometry: PointwiseGeometry,
        weights: &[f32],
        bias: &[f32],
        (low, high): (f32, f32),
        residual: bool,
        output_shape: TVec<usize>,
        scheme: Option<Scheme>,
    ) -> PointwiseConv {
        let scheme = scheme.unwrap_or_else(|| Scheme::for_geometry(&geometry));
        let weights = PackedWeights::pack(&geometry, scheme, weights);
        let padded = geometry.channels_out.div_ceil(scheme.tile_rows()) * scheme.tile_rows();
        let mut b = vec![0f32; padded];
        b[..geometry.channels_out].copy_from_slice(bias);
        PointwiseConv {
            isa,
            geometry,
            weights: Arc::new(weights),
            epilogue: Arc::new(Epilogue { bias: b, low, high }),
            residual,
            output_shape,
            window: None,
        }
    }

    /// The same op on the patch matrix of `window` (whose patches have `channels_in` values).
    pub fn with_window(self, window: Option<ConvWindow>) -> PointwiseConv {
        PointwiseConv { window, ..self }
    }
}

impl Op for PointwiseConv {
    fn name(&self) -> StaticName {
        "CamboxPointwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let e = &self.epilogue;
        Ok(vec![format!(
            "{:?}{} {:?} clamp [{}, {}]{}",
            self.geometry,
            self.window.map(|w| format!(" of {w:?}")).unwrap_or_default(),
            self.weights.scheme,
            e.low,
            e.high,
            if self.residual { " + residual" } else { "" }
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for PointwiseConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let g = &self.geometry;
        let x = inputs[0].to_plain_array_view::<f32>()?;
        let mut x = x.as_slice().context("pointwise input is not contiguous")?;
        let matrix;
        if let Some(w) = &self.window {
            ensure!(x.len() == w.channels * w.in_h * w.in_w, "convolution input of {} values", x.len());
            matrix = patches(w, x);
            x = &matrix;
        }
        ensure!(x.len() == g.channels_in * g.pixels, "pointwise input of {} values", x.len());
        let residual = match self.residual {
            true => {
                let r = inputs.get(1).context("pointwise residual input missing")?;
                ensure!(r.len() == g.channels_out * g.pixels, "pointwise residual of {} values", r.len());
                Some(r.to_plain_array_view::<f32>()?)
            }
            false => None,
        };
        let residual = match &residual {
            Some(r) => Some(r.as_slice().context("pointwise residual is not contiguous")?),
            None => None,
        };
        // SAFETY: `pointwise` writes every output value.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&self.output_shape)? };
        let mut view = out.to_plain_array_view_mut::<f32>()?;
        let y = view.as_slice_mut().context("fresh tensor is contiguous")?;
        pointwise(self.isa, g, &self.weights, &self.epilogue, x, residual, y);
        drop(view);
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for PointwiseConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 + self.residual as usize);
        Ok(tvec!(f32::fact(&*self.output_shape)))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.geometry;
        Ok(tvec!((Cost::FMA(f32::datum_type()), (g.channels_in * g.channels_out * g.pixels).to_dim())))
    }

    as_op!();
}

/// The patch matrix of a convolution: row `(c, ky, kx)` (the order of an OIHW kernel's
/// flattened rows), column `(oy, ox)`; zero where the window hangs over the padding.
pub fn patches(w: &ConvWindow, x: &[f32]) -> Vec<f32> {
    let pixels = w.out_h * w.out_w;
    let mut m = vec![0f32; w.channels * w.k_h * w.k_w * pixels];
    for (row, out) in m.chunks_exact_mut(pixels).enumerate() {
        let (c, ky, kx) = (row / (w.k_h * w.k_w), row / w.k_w % w.k_h, row % w.k_w);
        let plane = &x[c * w.in_h * w.in_w..(c + 1) * w.in_h * w.in_w];
        // The output columns whose input column lies inside the plane.
        let first = (w.pad_left.saturating_sub(kx)).div_ceil(w.stride_w);
        let end = ((w.in_w + w.pad_left).saturating_sub(kx)).div_ceil(w.stride_w).min(w.out_w);
        for oy in 0..w.out_h {
            let iy = oy * w.stride_h + ky;
            if iy < w.pad_top || iy - w.pad_top >= w.in_h || first >= end {
                continue;
            }
            let src = &plane[(iy - w.pad_top) * w.in_w..][..w.in_w];
            let dst = &mut out[oy * w.out_w + first..oy * w.out_w + end];
            let start = first * w.stride_w + kx - w.pad_left;
            if w.stride_w == 1 {
                dst.copy_from_slice(&src[start..start + dst.len()]);
            } else {
                for (d, s) in dst.iter_mut().zip(src[start..].iter().step_by(w.stride_w)) {
                    *d = *s;
                }
            }
        }
    }
    m
}

/// `y = clamp(w x + bias) (+ residual)` for one `channels_in x pixels` input, on a CPU
/// with AVX-512 (`isa` is the proof).
pub fn pointwise(
    isa: Avx512,
    g: &PointwiseGeometry,
    w: &PackedWeights,
    e: &Epilogue,
    x: &[f32],
    residual: Option<&[f32]>,
    y: &mut [f32],
) {
    let _ = isa;
    assert_eq!(x.len(), g.channels_in * g.pixels);
    assert_eq!(y.len(), g.channels_out * g.pixels);
    assert!(residual.is_none_or(|r| r.len() == y.len()));
    assert_eq!(w.values.len(), g.channels_out.div_ceil(w.scheme.tile_rows()) * w.scheme.tile_rows() * g.channels_in);
    // SAFETY: AVX-512 is present (`isa` exists only where it was detected), and the
    // slices have the lengths the tiles index (asserted above; the packed weights and the
    // bias cover whole tiles).
    unsafe {
        match w.scheme {
            Scheme::ByPixel => x86::by_pixel(g, w, e, x, residual, y),
            Scheme::ByChannel => x86::by_channel(g, w, e, x, residual, y),
        }
    }
}

mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    /// Tiles of 6 output channels x 64 pixels (the last tile of a row narrower, masked).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn by_pixel(
        g: &PointwiseGeometry,
        w: &PackedWeights,
        e: &Epilogue,
        x: &[f32],
        residual: Option<&[f32]>,
        y: &mut [f32],
    ) {
        const WIDTH: usize = PIXEL_TILE_VECTORS * LANES;
        let tiles = g.channels_out.div_ceil(PIXEL_TILE_ROWS);
        let r = residual.map_or(std::ptr::null(), |r| r.as_ptr());
        for p0 in (0..g.pixels).step_by(WIDTH) {
            let n = (g.pixels - p0).min(WIDTH);
            let vectors = n.div_ceil(LANES);
            let last = mask(n - (vectors - 1) * LANES);
            for t in 0..tiles {
                let o0 = t * PIXEL_TILE_ROWS;
                let rows = (g.channels_out - o0).min(PIXEL_TILE_ROWS);
                let a = w.values.as_ptr().add(t * PIXEL_TILE_ROWS * g.channels_in);
                let tile = Tile { g, e, a, x: x.as_ptr(), r, y: y.as_mut_ptr(), p0, o0, rows, last };
                match vectors {
                    4 => pixel_tile::<4>(tile),
                    3 => pixel_tile::<3>(tile),
                    2 => pixel_tile::<2>(tile),
                    _ => pixel_tile::<1>(tile),
                }
            }
        }
    }

    fn mask(n: usize) -> __mmask16 {
        if n >= LANES {
            0xffff
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    }

    /// Where one tile reads and writes: `rows` output channels from `o0` (their packed
    /// weights at `a`), pixels from `p0` (the last vector of a by-pixel tile masked by
    /// `last`); `r` is null without a residual.
    #[derive(Clone, Copy)]
    struct Tile<'a> {
        g: &'a PointwiseGeometry,
        e: &'a Epilogue,
        a: *const f32,
        x: *const f32,
        r: *const f32,
        y: *mut f32,
        p0: usize,
        o0: usize,
        rows: usize,
        last: __mmask16,
    }

    /// One by-pixel tile of `V` vectors of pixels.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn pixel_tile<const V: usize>(Tile { g, e, a, x, r, y, p0, o0, rows, last }: Tile) {
        const R: usize = PIXEL_TILE_ROWS;
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        let mut row = x.add(p0);
        let mut a = a;
        for _ in 0..g.channels_in {
            let mut b = [_mm512_setzero_ps(); V];
            for (v, b) in b.iter_mut().enumerate() {
                *b = if v + 1 == V {
                    _mm512_maskz_loadu_ps(last, row.add(v * LANES))
                } else {
                    _mm512_loadu_ps(row.add(v * LANES))
                };
            }
            for (i, acc) in acc.iter_mut().enumerate() {
                let wv = _mm512_set1_ps(*a.add(i));
                for v in 0..V {
                    acc[v] = _mm512_fmadd_ps(wv, b[v], acc[v]);
                }
            }
            row = row.add(g.pixels);
            a = a.add(R);
        }
        let (low, high) = (_mm512_set1_ps(e.low), _mm512_set1_ps(e.high));
        for (i, acc) in acc.iter().enumerate().take(rows) {
            let o = o0 + i;
            let bias = _mm512_set1_ps(*e.bias.get_unchecked(o));
            let at = o * g.pixels + p0;
            for (v, acc) in acc.iter().enumerate() {
                let m = if v + 1 == V { last } else { 0xffff };
                let mut out = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(*acc, bias), low), high);
                if !r.is_null() {
                    out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(m, r.add(at + v * LANES)));
                }
                _mm512_mask_storeu_ps(y.add(at + v * LANES), m, out);
            }
        }
    }

    /// Tiles of 32 output channels x 12 pixels; each tile's outputs are transposed through
    /// a small buffer into the channel-major output.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn by_channel(
        g: &PointwiseGeometry,
        w: &PackedWeights,
        e: &Epilogue,
        x: &[f32],
        residual: Option<&[f32]>,
        y: &mut [f32],
    ) {
        let tiles = g.channels_out.div_ceil(CHANNEL_TILE_ROWS);
        let r = residual.map_or(std::ptr::null(), |r| r.as_ptr());
        for t in 0..tiles {
            let o0 = t * CHANNEL_TILE_ROWS;
            let rows = (g.channels_out - o0).min(CHANNEL_TILE_ROWS);
            let a = w.values.as_ptr().add(t * CHANNEL_TILE_ROWS * g.channels_in);
            for p0 in (0..g.pixels).step_by(CHANNEL_TILE_PIXELS) {
                let tile = Tile { g, e, a, x: x.as_ptr(), r, y: y.as_mut_ptr(), p0, o0, rows, last: 0 };
                match g.pixels - p0 {
                    1 => channel_tile::<1>(tile),
                    2 => channel_tile::<2>(tile),
                    3 => channel_tile::<3>(tile),
                    4 => channel_tile::<4>(tile),
                    5 => channel_tile::<5>(tile),
                    6 => channel_tile::<6>(tile),
                    7 => channel_tile::<7>(tile),
                    8 => channel_tile::<8>(tile),
                    9 => channel_tile::<9>(tile),
                    10 => channel_tile::<10>(tile),
                    11 => channel_tile::<11>(tile),
                    _ => channel_tile::<12>(tile),
                }
            }
        }
    }

    /// One by-channel tile of `N` pixels.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn channel_tile<const N: usize>(Tile { g, e, a, x, r, y, p0, o0, rows, .. }: Tile) {
        let mut acc = [[_mm512_setzero_ps(); 2]; N];
        let mut col = x.add(p0);
        let mut a = a;
        for _ in 0..g.channels_in {
            let (w0, w1) = (_mm512_loadu_ps(a), _mm512_loadu_ps(a.add(LANES)));
            for (n, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(*col.add(n));
                acc[0] = _mm512_fmadd_ps(w0, xv, acc[0]);
                acc[1] = _mm512_fmadd_ps(w1, xv, acc[1]);
            }
            col = col.add(g.pixels);
            a = a.add(CHANNEL_TILE_ROWS);
        }
        let (low, high) = (_mm512_set1_ps(e.low), _mm512_set1_ps(e.high));
        let bias = e.bias.as_ptr().add(o0);
        let (b0, b1) = (_mm512_loadu_ps(bias), _mm512_loadu_ps(bias.add(LANES)));
        let mut block = [[0f32; CHANNEL_TILE_ROWS]; N];
        for (acc, out) in acc.iter().zip(block.iter_mut()) {
            let v0 = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(acc[0], b0), low), high);
            let v1 = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(acc[1], b1), low), high);
            _mm512_storeu_ps(out.as_mut_ptr(), v0);
            _mm512_storeu_ps(out.as_mut_ptr().add(LANES), v1);
        }
        for i in 0..rows {
            let at = (o0 + i) * g.pixels + p0;
            for (n, out) in block.iter().enumerate() {
                let v = out[i] + if r.is_null() { 0.0 } else { *r.add(at + n) };
                *y.add(at + n) = v;
            }
        }
    }
}

/// Puts [`PointwiseConv`] in place of every 1x1 convolution chain of a decluttered model
/// (see the module docs); returns how many.
pub fn substitute(model: &mut TypedModel, isa: Avx512) -> TractResult<usize> {
    let mut swapped = 0;
    // Patches append nodes and leave the replaced ones dead, so ids stay valid; each
    // chain is found on the graph as the previous patches left it (a residual input may
    // be the output of a chain replaced before).
    for id in 0..model.nodes().len() {
        let Some(chain) = PointwiseChain::find(model, id, isa)? else { continue };
        let name = format!("{}.cambox_pointwise", model.node(id).name);
        fusion::replace(model, &name, Box::new(chain.op), &chain.inputs, &chain.nodes)?;
        swapped += 1;
    }
    Ok(swapped)
}

/// A 1x1 convolution's node chain, read from the graph.
#[derive(Debug)]
pub struct PointwiseChain {
    /// What computes the whole chain.
    pub op: PointwiseConv,
    /// The op's inputs: the convolution's, then the residual's when there is one.
    pub inputs: TVec<OutletId>,
    /// The chain's nodes, the `EinSum` first; the last one's output is the op's.
    pub nodes: Vec<usize>,
}

impl PointwiseChain {
    /// The chain that starts at node `id`, when it is an `EinSum` of a 1x1 convolution or
    /// a one-group `Conv`.
    pub fn find(model: &TypedModel, id: usize, isa: Avx512) -> TractResult<Option<PointwiseChain>> {
        let node = model.node(id);
        let Some(Start { geometry, weights, bias: conv_bias, window, out }) = Start::of(model, node)? else {
            return Ok(None);
        };
        let out = &out[..];
        let co = geometry.channels_out;

        let fusable = Fusable { bias: conv_bias.is_none(), residual: true };
        let tail = Tail::after(model, id, out, co, fusable)?;
        let bias = conv_bias.or(tail.bias).unwrap_or_else(|| vec![0f32; co]);
        let residual = tail.residual;
        let nodes = std::iter::once(id).chain(tail.nodes).collect();
        let w = weights.to_plain_array_view::<f32>()?;
        let w = w.as_slice().context("constant weights are contiguous")?;
        let op =
            PointwiseConv::new(isa, geometry, w, &bias, (tail.low, tail.high), residual.is_some(), out.into(), None)
                .with_window(window);
        let inputs = std::iter::once(node.inputs[0]).chain(residual).collect();
        Ok(Some(PointwiseChain { op, inputs, nodes }))
    }
}

impl PointwiseChain {
    /// The chain's nodes alone, as tract optimises and runs them: its outside inputs as
    /// sources, its constants kept. What cambox's op is compared and timed against.
    pub fn tract_model(&self, model: &TypedModel) -> TractResult<TypedModel> {
        fusion::tract_model(model, &self.inputs, &self.nodes)
    }
}

/// What a chain's first node computes before its epilogue.
struct Start {
    geometry: PointwiseGeometry,
    /// `channels_out x channels_in`.
    weights: Arc<Tensor>,
    /// A `Conv`'s own bias.
    bias: Option<Vec<f32>>,
    window: Option<ConvWindow>,
    /// The output shape.
    out: Vec<usize>,
}

impl Start {
    fn of(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Start>> {
        if (!node.op_is::<EinSum>() && !node.op_is::<Conv>()) || node.inputs.len() < 2 {
            return Ok(None);
        }
        let facts = model.node_input_facts(node.id)?;
        let Some(out) = node.outputs[0].fact.shape.as_concrete().map(|s| s.to_vec()) else { return Ok(None) };
        let Some(x) = facts[0].shape.as_concrete() else { return Ok(None) };
        let floats = facts.iter().all(|f| f.datum_type == f32::datum_type());
        let (Some(weights), true) = (facts.get(1).and_then(|f| f.konst.clone()), floats) else { return Ok(None) };
        let (Some([xi, xh, xw]), Some([oc, oh, ow])) = (chw(x), chw(&out)) else { return Ok(None) };
        if let Some(einsum) = node.op_as::<EinSum>() {
            if einsum.q_params.is_some() || einsum.operating_dt != f32::datum_type() || node.inputs.len() != 2 {
                return Ok(None);
            }
            let fits = weights.rank() == 2
                && weights.shape() == [oc, xi]
                && (oh, ow) == (xh, xw)
                && is_pointwise(einsum, x.len(), out.len())?;
            let geometry = PointwiseGeometry { channels_in: xi, channels_out: oc, pixels: xh * xw };
            return Ok(fits.then_some(Start { geometry, weights, bias: None, window: None, out }));
        }
        let Some(conv) = node.op_as::<Conv>() else { return Ok(None) };
        let Some(w) = window_of(conv, facts[0]) else { return Ok(None) };
        let bias = facts.get(2).and_then(|f| f.konst.as_ref()).and_then(|k| {
            let v: Vec<f32> = k.to_plain_array_view::<f32>().ok()?.iter().copied().collect();
            match v.len() {
                1 => Some(vec![v[0]; oc]),
                n if n == oc => Some(v),
                _ => None,
            }
        });
        let fits = conv.group == 1
            && conv.kernel_fmt == KernelFormat::OIHW
            && weights.shape() == [oc, xi, w.k_h, w.k_w]
            && (w.channels, w.out_h, w.out_w) == (xi, oh, ow)
            && bias.is_some();
        let geometry = PointwiseGeometry { channels_in: xi * w.k_h * w.k_w, channels_out: oc, pixels: oh * ow };
        Ok(fits.then_some(Start { geometry, weights, bias, window: Some(w), out }))
    }
}

/// Whether the einsum sums the input's channel axis against the weights' second axis and
/// maps the weights' first axis, and the input's two last axes, to the output's last three.
fn is_pointwise(einsum: &EinSum, x_rank: usize, out_rank: usize) -> TractResult<bool> {
    let axes = &einsum.axes;
    let place = |axis: &Axis| -> (Vec<usize>, Vec<usize>, Vec<usize>) {
        (axis.inputs[0].to_vec(), axis.inputs[1].to_vec(), axis.outputs[0].to_vec())
    };
    let summed = place(axes.axis((InOut::In(1), 1))?);
    let channel = place(axes.axis((InOut::In(1), 0))?);
    let h = place(axes.axis((InOut::In(0), x_rank - 2))?);
    let w = place(axes.axis((InOut::In(0), x_rank - 1))?);
    Ok(summed == (vec![x_rank - 3], vec![1], vec![])
        && channel == (vec![], vec![0], vec![out_rank - 3])
        && h == (vec![x_rank - 2], vec![], vec![out_rank - 2])
        && w == (vec![x_rank - 1], vec![], vec![out_rank - 1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::pseudo;
    use crate::isa::Isa;

    /// The definition in f64.
    fn naive(g: &PointwiseGeometry, w: &[f32], x: &[f32], e: &Epilogue, r: Option<&[f32]>) -> Vec<f32> {
        let mut y = vec![0f32; g.channels_out * g.pixels];
        for o in 0..g.channels_out {
            for p in 0..g.pixels {
                let mut s = e.bias[o] as f64;
                for i in 0..g.channels_in {
                    s += w[o * g.channels_in + i] as f64 * x[i * g.pixels + p] as f64;
                }
                let v = (s as f32).max(e.low).min(e.high);
                y[o * g.pixels + p] = v + r.map_or(0.0, |r| r[o * g.pixels + p]);
            }
        }
        y
    }

    #[test]
    fn both_schemes_match_the_definition_on_ragged_shapes() {
        let Some(isa) = Isa::detect().and_then(Isa::avx512) else {
            eprintln!("no AVX-512: the kernel is not used on this CPU");
            return;
        };
        for &(ci, co, pixels) in
            &[(3, 5, 7), (16, 96, 130), (24, 40, 49), (33, 70, 81), (17, 7, 64), (40, 33, 25), (5, 1, 1)]
        {
            let g = PointwiseGeometry { channels_in: ci, channels_out: co, pixels };
            let w = pseudo(ci * co, 1);
            let x = pseudo(ci * pixels, 2);
            let r = pseudo(co * pixels, 3);
            let bias = pseudo(co, 4);
            for scheme in [Scheme::ByPixel, Scheme::ByChannel] {
                for (clamp, residual) in [((f32::NEG_INFINITY, f32::INFINITY), false), ((0.0, 0.5), true)] {
                    let op = PointwiseConv::new(isa, g, &w, &bias, clamp, residual, tvec![co, pixels], Some(scheme));
                    let want = naive(&g, &w, &x, &op.epilogue, residual.then_some(&r[..]));
                    let mut got = vec![f32::NAN; co * pixels];
                    pointwise(isa, &g, &op.weights, &op.epilogue, &x, residual.then_some(&r[..]), &mut got);
                    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                    assert!(worst < 1e-5, "{g:?} {scheme:?} {clamp:?}: {worst:e}");
                }
            }
        }
    }

    #[test]
    fn a_window_convolves_through_its_patch_matrix() {
        let Some(isa) = Isa::detect().and_then(Isa::avx512) else {
            eprintln!("no AVX-512: the kernel is not used on this CPU");
            return;
        };
        // (channels, in_h, in_w, k, stride, pad_top, pad_left, out_h, out_w): TF's "same"
        // padding of a stride-2 stem (0 before, 1 after), symmetric padding, none.
        for &(c, ih, iw, k, s, pt, pl, oh, ow) in &[
            (3, 12, 10, 3, 2, 0, 0, 6, 5),
            (4, 7, 9, 3, 1, 1, 1, 7, 9),
            (2, 9, 8, 3, 1, 0, 0, 7, 6),
            (3, 11, 11, 5, 2, 2, 2, 6, 6),
        ] {
            let window = ConvWindow {
                channels: c,
                in_h: ih,
                in_w: iw,
                out_h: oh,
                out_w: ow,
                k_h: k,
                k_w: k,
                stride_h: s,
                stride_w: s,
                pad_top: pt,
                pad_left: pl,
            };
            let co = 7;
            let g = PointwiseGeometry { channels_in: c * k * k, channels_out: co, pixels: oh * ow };
            let (w, x, bias) = (pseudo(co * c * k * k, 5), pseudo(c * ih * iw, 6), pseudo(co, 7));
            let mut want = vec![0f32; co * oh * ow];
            for o in 0..co {
                for (oy, ox) in (0..oh).flat_map(|y| (0..ow).map(move |x| (y, x))) {
                    let mut sum = bias[o] as f64;
                    for (i, ky, kx) in (0..c).flat_map(|i| (0..k).flat_map(move |y| (0..k).map(move |x| (i, y, x)))) {
                        let (iy, ix) = ((oy * s + ky) as isize - pt as isize, (ox * s + kx) as isize - pl as isize);
                        if (0..ih as isize).contains(&iy) && (0..iw as isize).contains(&ix) {
                            let xv = x[i * ih * iw + iy as usize * iw + ix as usize] as f64;
                            sum += w[((o * c + i) * k + ky) * k + kx] as f64 * xv;
                        }
                    }
                    want[o * oh * ow + oy * ow + ox] = sum as f32;
                }
            }
            let unclamped = (f32::NEG_INFINITY, f32::INFINITY);
            for scheme in [Scheme::ByPixel, Scheme::ByChannel] {
                let op = PointwiseConv::new(isa, g, &w, &bias, unclamped, false, tvec![co, oh, ow], Some(scheme))
                    .with_window(Some(window));
                let out = op.eval_out_of_plan(tvec![Tensor::from_shape(&[c, ih, iw], &x).unwrap().into_tvalue()]);
                let out = out.unwrap().unwrap().remove(0).into_tensor();
                let got = out.to_plain_array_view::<f32>().unwrap();
                let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(worst < 1e-5, "{window:?} {scheme:?}: {worst:e}");
            }
        }
    }

    #[test]
    fn scheme_follows_the_lanes_each_would_fill() {
        let g = |ci, co, pixels| PointwiseGeometry { channels_in: ci, channels_out: co, pixels };
        assert_eq!(Scheme::for_geometry(&g(16, 96, 12544)), Scheme::ByPixel);
        assert_eq!(Scheme::for_geometry(&g(728, 728, 81)), Scheme::ByChannel);
        assert_eq!(Scheme::for_geometry(&g(320, 1280, 49)), Scheme::ByChannel);
        assert_eq!(Scheme::for_geometry(&g(40, 24, 49)), Scheme::ByPixel);
    }
}
