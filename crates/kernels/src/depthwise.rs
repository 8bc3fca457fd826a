//! A depthwise convolution kernel for the shapes EfficientNet and Xception use, with the
//! clamp that follows it (ReLU6) fused, put in place of tract's ops in the decluttered
//! graph.
//!
//! Why: profiled on one thread, tract's `DepthWiseConv` ran at 4.5-7 GFLOP/s (its NCHW
//! path is generic scalar Rust that walks the kernel taps per output point), and took
//! 43 % of EfficientNet-Lite0's network time and 19 % of Xception's, where the matrix
//! products run at 60-70 GFLOP/s. A depthwise convolution is 9 or 25 multiply-adds per
//! output per channel over planes that fit in L2, so it can be had at a good fraction of
//! the CPU's vector throughput with the right loop order:
//!
//! - each channel's input plane is copied once into a zero-padded scratch plane, split by
//!   column phase for a stride of 2 (`phase p` holds padded columns `p, p + s, ...`), so
//!   that every tap of every output row reads a *contiguous* run of the scratch;
//! - outputs are computed in blocks of 4 rows x 16 columns (AVX2: eight 8-lane
//!   accumulators) or 4 rows x 32 columns (AVX-512: eight 16-lane accumulators), kept in
//!   registers over all the taps: eight independent FMA chains, enough to hide the FMA
//!   latency, and one store per output.
//!
//! The op replaces, before tract optimises the graph, each decluttered float `Conv` over
//! NCHW (or CHW) data with one group per channel, constant kernel and bias, and no
//! dilation, together with the `Max` and `Min` of constants that follow it
//! ([`DepthwiseChain`], read by [`fusion::Tail`]): the clamp is applied to each channel's
//! plane while it is in cache, where tract ran it as a pass of its own over the output.
//! Only on a CPU with AVX2 and FMA; anywhere else tract's ops stay.
//! `[model] kernels = "tract"` keeps tract's ops everywhere (to compare the two end to end).
//! The sums run in another order than tract's (and with fused multiply-adds): outputs
//! agree with tract's ops within 1e-5 of the tensor's scale, which `tests/models/kernels.rs`
//! checks on every depthwise chain of both models.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::conv::Conv;
use tract_onnx::tract_core::ops::cnn::KernelFormat;

use crate::fusion::{self, Fusable, Tail};
use crate::isa::{Isa, Level};
use crate::window::window_of;
pub use crate::window::ConvWindow;

/// Output rows of a block.
const BLOCK_ROWS: usize = 4;

/// Planes narrower than this are computed with the vector lanes across channels
/// ([`packed`]): a row of 7, 9 or 14 outputs fills a vector badly, and such layers have
/// hundreds of channels (EfficientNet's last stages, Xception's middle flow).
const PACKED_BELOW_WIDTH: usize = 16;

/// How a plane is cut into blocks of [`BLOCK_ROWS`] rows x `vectors` vectors of `isa`.
/// Narrow planes (EfficientNet's last stages are 14 and 7 wide) take one vector per row,
/// and 8 lanes rather than 16 when the row fits in 8: a block computes its whole width,
/// so a 7-wide plane in 32-column blocks would compute 4.6 times the outputs it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Blocking {
    isa: Isa,
    vectors: usize,
}

impl Blocking {
    fn for_width(isa: Isa, out_w: usize) -> Blocking {
        let isa = if out_w <= 8 { isa.at_most_avx2() } else { isa };
        let vectors = if out_w <= isa.lanes() { 1 } else { 2 };
        Blocking { isa, vectors }
    }

    fn cols(self) -> usize {
        self.vectors * self.isa.lanes()
    }
}

/// cambox's depthwise convolution op: inputs `x` (`[1,] C, H, W`), kernel (`C x 1 x kh x
/// kw`, or any shape of that many values in that order), bias (`C` values, any shape, or
/// one); outputs clamped to `clamp`.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthwiseConv {
    pub geometry: ConvWindow,
    pub isa: Isa,
    /// The output shape (the input's rank: with or without the batch axis).
    pub output_shape: TVec<usize>,
    /// `(low, high)`: infinite bounds for none.
    pub clamp: (f32, f32),
}

// tract merges equal ops on equal inputs; a NaN bound never equals, which only forgoes a
// merge.
impl Eq for DepthwiseConv {}

impl Op for DepthwiseConv {
    fn name(&self) -> StaticName {
        "CamboxDepthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} {:?} clamp [{}, {}]", self.geometry, self.isa, self.clamp.0, self.clamp.1)])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for DepthwiseConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, kernel, bias) = args_3!(inputs);
        let g = &self.geometry;
        let x = x.to_plain_array_view::<f32>()?;
        let x = x.as_slice().context("depthwise input is not contiguous")?;
        let kernel = kernel.to_plain_array_view::<f32>()?;
        let kernel = kernel.as_slice().context("depthwise kernel is not contiguous")?;
        let bias = bias.to_plain_array_view::<f32>()?;
        let bias = bias.as_slice().context("depthwise bias is not contiguous")?;
        ensure!(x.len() == g.channels * g.in_h * g.in_w, "depthwise input of {} values", x.len());
        ensure!(kernel.len() == g.channels * g.k_h * g.k_w, "depthwise kernel of {} values", kernel.len());
        ensure!(bias.len() == g.channels || bias.len() == 1, "depthwise bias of {} values", bias.len());
        // SAFETY: every output value is written by `depthwise` before it is read.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&self.output_shape)? };
        let mut view = out.to_plain_array_view_mut::<f32>()?;
        let slice = view.as_slice_mut().context("fresh tensor is contiguous")?;
        depthwise(g, self.isa, x, kernel, bias, self.clamp, slice);
        drop(view);
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for DepthwiseConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 3);
        Ok(tvec!(f32::fact(&*self.output_shape)))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.geometry;
        Ok(tvec!((Cost::FMA(f32::datum_type()), (g.channels * g.out_h * g.out_w * g.k_h * g.k_w).to_dim())))
    }

    as_op!();
}

/// The geometry of a float NCHW depthwise `Conv` without dilation, with a concrete input.
fn geometry_of(conv: &Conv, x: &TypedFact) -> Option<ConvWindow> {
    let spec = &conv.pool_spec;
    let channels = spec.input_channels;
    let depthwise = conv.group == channels && spec.output_channels == channels;
    depthwise.then(|| window_of(conv, x)).flatten()
}

/// A depthwise convolution and the clamps after it, read from the decluttered graph.
#[derive(Debug)]
pub struct DepthwiseChain {
    /// What computes the whole chain.
    pub op: DepthwiseConv,
    /// The op's inputs: the convolution's (data, kernel, bias).
    pub inputs: TVec<OutletId>,
    /// The chain's nodes, the `Conv` first; the last one's output is the op's.
    pub nodes: Vec<usize>,
}

impl DepthwiseChain {
    /// The chain that starts at node `id`, when it is a depthwise `Conv` cambox covers,
    /// for the instructions `isa`.
    pub fn find(model: &TypedModel, id: usize, isa: Isa) -> TractResult<Option<DepthwiseChain>> {
        let node = model.node(id);
        let Some(conv) = node.op_as::<Conv>() else { return Ok(None) };
        if node.inputs.len() != 3 {
            return Ok(None);
        }
        let facts = model.node_input_facts(id)?;
        let Some(g) = geometry_of(conv, facts[0]) else { return Ok(None) };
        let Some(out) = node.outputs[0].fact.shape.as_concrete().map(|s| s.to_vec()) else { return Ok(None) };
        let constant = |i: usize, len: &[usize]| {
            facts[i].konst.as_ref().is_some_and(|k| k.datum_type() == f32::datum_type() && len.contains(&k.len()))
        };
        let fits = fusion::chw(&out) == Some([g.channels, g.out_h, g.out_w])
            && facts[0].shape.as_concrete().and_then(fusion::chw) == Some([g.channels, g.in_h, g.in_w])
            && conv.kernel_fmt == KernelFormat::OIHW
            && constant(1, &[g.channels * g.k_h * g.k_w])
            && constant(2, &[g.channels, 1]);
        if !fits {
            return Ok(None);
        }
        let tail = Tail::after(model, id, &out, g.channels, Fusable { bias: false, residual: false })?;
        let op = DepthwiseConv { geometry: g, isa, output_shape: out.into(), clamp: (tail.low, tail.high) };
        let nodes = std::iter::once(id).chain(tail.nodes).collect();
        Ok(Some(DepthwiseChain { op, inputs: node.inputs.iter().copied().collect(), nodes }))
    }

    /// The chain's nodes alone, as tract optimises and runs them (the data as the source,
    /// kernel and bias constants).
    pub fn tract_model(&self, model: &TypedModel) -> TractResult<TypedModel> {
        fusion::tract_model(model, &self.inputs[..1], &self.nodes)
    }
}

/// Puts [`DepthwiseConv`] in place of every depthwise chain of a decluttered model
/// ([`DepthwiseChain`]); returns how many.
pub fn substitute(model: &mut TypedModel, isa: Isa) -> TractResult<usize> {
    let mut swapped = 0;
    // Patches append nodes and leave the replaced ones dead, so ids stay valid.
    for id in 0..model.nodes().len() {
        let Some(chain) = DepthwiseChain::find(model, id, isa)? else { continue };
        let name = format!("{}.cambox_depthwise", model.node(id).name);
        fusion::replace(model, &name, Box::new(chain.op), &chain.inputs, &chain.nodes)?;
        swapped += 1;
    }
    Ok(swapped)
}

/// The convolution of every channel: `out[c] = bias[c] + sum_taps kernel[c][tap] * x[c]
/// shifted`, zero padding, the geometry's strides.
pub fn depthwise(
    g: &ConvWindow,
    isa: Isa,
    x: &[f32],
    kernel: &[f32],
    bias: &[f32],
    clamp: (f32, f32),
    out: &mut [f32],
) {
    if g.out_w < PACKED_BELOW_WIDTH {
        return packed::depthwise(g, isa, x, kernel, bias, clamp, out);
    }
    planes(g, isa, Reduce::MultiplyAdd { kernel, bias, clamp }, x, out)
}

/// Max pooling of every channel over the window (the padding never wins), with the same
/// plane walk as [`depthwise`]; narrow planes too (pooling is a small share of any
/// network, and the lanes-across-channels path has no max variant).
pub fn max_pool(g: &ConvWindow, isa: Isa, x: &[f32], out: &mut [f32]) {
    planes(g, isa, Reduce::Max, x, out)
}

/// What a window computes over its taps.
#[derive(Clone, Copy)]
enum Reduce<'a> {
    /// `bias[c] + sum kernel[c][tap] * x`, padding zero, then clamped.
    MultiplyAdd { kernel: &'a [f32], bias: &'a [f32], clamp: (f32, f32) },
    /// `max x`, padding minus infinity.
    Max,
}

/// Each channel's plane: copied into the padded scratch, then reduced block by block.
fn planes(g: &ConvWindow, isa: Isa, reduce: Reduce, x: &[f32], out: &mut [f32]) {
    let blocking = Blocking::for_width(isa, g.out_w);
    let s = Scratch::new(g, blocking.cols());
    // The padding is the same for every channel: written once, and each channel
    // overwrites only the interior.
    let pad = match reduce {
        Reduce::MultiplyAdd { .. } => 0.0,
        Reduce::Max => f32::NEG_INFINITY,
    };
    let mut plane = vec![pad; s.len()];
    let taps = g.k_h * g.k_w;
    let offsets: Vec<usize> = (0..taps)
        .map(|t| {
            let (ky, kx) = (t / g.k_w, t % g.k_w);
            ky * s.row_stride + (kx % g.stride_w) * s.phase_w + kx / g.stride_w
        })
        .collect();
    let unweighted = vec![0f32; taps];
    for c in 0..g.channels {
        s.fill(g, isa, &x[c * g.in_h * g.in_w..(c + 1) * g.in_h * g.in_w], &mut plane);
        let (w, b, max, clamp) = match reduce {
            Reduce::MultiplyAdd { kernel, bias, clamp } => {
                let b = if bias.len() == 1 { bias[0] } else { bias[c] };
                (&kernel[c * taps..(c + 1) * taps], b, false, clamp)
            }
            Reduce::Max => (&unweighted[..], f32::NEG_INFINITY, true, (f32::NEG_INFINITY, f32::INFINITY)),
        };
        let o = &mut out[c * g.out_h * g.out_w..(c + 1) * g.out_h * g.out_w];
        // SAFETY: the ISA was detected on this CPU (an AVX-512 CPU also has AVX2 and FMA),
        // and `Scratch` sizes the plane so that every block, full or not, reads inside it.
        unsafe {
            match (blocking.isa.level(), blocking.vectors, max) {
                (Level::Avx2Fma, 1, false) => x86::plane_avx2::<1>(g, &s, &plane, &offsets, w, b, o),
                (Level::Avx2Fma, _, false) => x86::plane_avx2::<2>(g, &s, &plane, &offsets, w, b, o),
                (Level::Avx512, 1, false) => x86::plane_avx512::<1>(g, &s, &plane, &offsets, w, b, o),
                (Level::Avx512, _, false) => x86::plane_avx512::<2>(g, &s, &plane, &offsets, w, b, o),
                (Level::Avx2Fma, 1, true) => x86::max_plane_avx2::<1>(g, &s, &plane, &offsets, w, b, o),
                (Level::Avx2Fma, _, true) => x86::max_plane_avx2::<2>(g, &s, &plane, &offsets, w, b, o),
                (Level::Avx512, 1, true) => x86::max_plane_avx512::<1>(g, &s, &plane, &offsets, w, b, o),
                (Level::Avx512, _, true) => x86::max_plane_avx512::<2>(g, &s, &plane, &offsets, w, b, o),
            }
        }
        // While the plane is in cache (the compiler vectorises this loop).
        if clamp != (f32::NEG_INFINITY, f32::INFINITY) {
            o.iter_mut().for_each(|v| *v = v.max(clamp.0).min(clamp.1));
        }
    }
}

/// The padded, phase-split copy of one channel's plane.
struct Scratch {
    /// Floats per phase row.
    phase_w: usize,
    /// Floats per padded row (all phases).
    row_stride: usize,
    rows: usize,
}

impl Scratch {
    fn new(g: &ConvWindow, cols: usize) -> Scratch {
        // Blocks cover whole multiples of BLOCK_ROWS x cols outputs; the rows and columns
        // past the output are computed from zeros and not stored.
        let out_h = g.out_h.div_ceil(BLOCK_ROWS) * BLOCK_ROWS;
        let out_w = g.out_w.div_ceil(cols) * cols;
        let rows = (out_h - 1) * g.stride_h + g.k_h;
        let phase_w = out_w + (g.k_w - 1) / g.stride_w;
        Scratch { phase_w, row_stride: phase_w * g.stride_w, rows }
    }

    fn len(&self) -> usize {
        self.rows * self.row_stride
    }

    /// Copies the `in_h x in_w` plane into the padded rows, each split by column phase:
    /// padded column `j` goes to phase `j % stride`, position `j / stride`. Writes the
    /// same positions for every plane of a geometry, so the zeros around them stay.
    fn fill(&self, g: &ConvWindow, isa: Isa, x: &[f32], plane: &mut [f32]) {
        for iy in 0..g.in_h {
            let r = iy + g.pad_top;
            if r >= self.rows {
                break;
            }
            let row = &mut plane[r * self.row_stride..(r + 1) * self.row_stride];
            let src = &x[iy * g.in_w..(iy + 1) * g.in_w];
            if g.stride_w == 1 {
                let n = g.in_w.min(self.phase_w.saturating_sub(g.pad_left));
                row[g.pad_left..g.pad_left + n].copy_from_slice(&src[..n]);
            } else if g.stride_w == 2 {
                // Pairs of padded columns (2q, 2q + 1) go to the two phases at q: a loop
                // with a constant stride, which the compiler turns into shuffles.
                let (even, odd) = row.split_at_mut(self.phase_w);
                let (q0, src) = if g.pad_left % 2 == 1 {
                    // Source column 0 is padded column pad_left, odd: the first pair has
                    // only its odd half.
                    odd[g.pad_left / 2] = src[0];
                    (g.pad_left / 2 + 1, &src[1..])
                } else {
                    (g.pad_left / 2, src)
                };
                let pairs = src.len() / 2;
                let n = pairs.min(self.phase_w.saturating_sub(q0));
                let (to_even, to_odd) = (&mut even[q0..q0 + n], &mut odd[q0..q0 + n]);
                let done = match isa.level() {
                    // SAFETY: AVX-512 was detected; the slices hold `n` pairs and `n` slots.
                    Level::Avx512 => unsafe { x86::deinterleave_avx512(&src[..2 * n], to_even, to_odd) },
                    _ => 0,
                };
                for (i, pair) in src.chunks_exact(2).enumerate().take(n).skip(done) {
                    to_even[i] = pair[0];
                    to_odd[i] = pair[1];
                }
                if src.len() % 2 == 1 && q0 + pairs < self.phase_w {
                    even[q0 + pairs] = src[src.len() - 1];
                }
            } else {
                for (ix, &v) in src.iter().enumerate() {
                    let j = ix + g.pad_left;
                    let (p, q) = (j % g.stride_w, j / g.stride_w);
                    if q < self.phase_w {
                        row[p * self.phase_w + q] = v;
                    }
                }
            }
        }
    }
}

/// The narrow planes, vector lanes across channels: a group of `lanes` channels is
/// transposed into a zero-padded `rows x cols x lanes` scratch, every output position is
/// one vector (its group's channels), accumulated over the taps with the taps' weights as
/// vectors, eight positions at a time (eight independent FMA chains), and transposed back
/// (with AVX-512, both transposes are gathers).
mod packed {
    use super::{ConvWindow, Isa, Level};

    pub(super) fn depthwise(
        g: &ConvWindow,
        isa: Isa,
        x: &[f32],
        kernel: &[f32],
        bias: &[f32],
        (low, high): (f32, f32),
        out: &mut [f32],
    ) {
        let lanes = isa.lanes();
        let taps = g.k_h * g.k_w;
        let rows = (g.out_h - 1) * g.stride_h + g.k_h;
        let cols = ((g.out_w - 1) * g.stride_w + g.k_w).max(g.pad_left + g.in_w);
        let rows = rows.max(g.pad_top + g.in_h);
        // Every vector the kernel loads or stores is a whole position of `lanes` floats:
        // 64-byte aligned buffers keep each in one cache line.
        let (mut scratch_buf, mut weights_buf, mut out_buf) = (Vec::new(), Vec::new(), Vec::new());
        let scratch = aligned_zeros(&mut scratch_buf, rows * cols * lanes);
        let weights = aligned_zeros(&mut weights_buf, (taps + 1) * lanes);
        let packed_out = aligned_zeros(&mut out_buf, g.out_h * g.out_w * lanes);
        let offsets: Vec<usize> = (0..taps).map(|t| ((t / g.k_w) * cols + t % g.k_w) * lanes).collect();
        let plane = g.in_h * g.in_w;
        let out_plane = g.out_h * g.out_w;
        for c0 in (0..g.channels).step_by(lanes) {
            // The last group may have fewer channels: its other lanes get zero weights and
            // whatever data is left from the group before; they are never stored.
            let n = lanes.min(g.channels - c0);
            weights.iter_mut().for_each(|w| *w = 0.0);
            for l in 0..n {
                let c = c0 + l;
                for t in 0..taps {
                    weights[t * lanes + l] = kernel[c * taps + t];
                }
                weights[taps * lanes + l] = if bias.len() == 1 { bias[0] } else { bias[c] };
            }
            let group = &x[c0 * plane..(c0 + n) * plane];
            for iy in 0..g.in_h {
                let row = ((iy + g.pad_top) * cols + g.pad_left) * lanes;
                let dst = &mut scratch[row..row + g.in_w * lanes];
                let src = &group[iy * g.in_w..];
                match isa.level() {
                    // SAFETY: AVX-512 was detected; `src` holds `n` planes from this row on.
                    Level::Avx512 => unsafe { x86::interleave_avx512(src, plane, n, dst) },
                    _ => {
                        for (ix, position) in dst.chunks_exact_mut(lanes).enumerate() {
                            for (l, v) in position.iter_mut().enumerate().take(n) {
                                *v = src[l * plane + ix];
                            }
                        }
                    }
                }
            }
            // SAFETY: the ISA was detected on this CPU; the scratch holds every position a
            // tap of an output reads.
            unsafe {
                match isa.level() {
                    Level::Avx2Fma => x86::group_avx2(g, cols, scratch, &offsets, weights, packed_out),
                    Level::Avx512 => x86::group_avx512(g, cols, scratch, &offsets, weights, packed_out),
                }
            }
            let outs = &mut out[c0 * out_plane..(c0 + n) * out_plane];
            for (l, o) in outs.chunks_exact_mut(out_plane).enumerate() {
                match isa.level() {
                    // SAFETY: AVX-512 was detected; `packed_out` holds `out_plane` positions.
                    Level::Avx512 => unsafe { x86::lane_avx512(packed_out, l, (low, high), o) },
                    _ => {
                        for (v, position) in o.iter_mut().zip(packed_out.chunks_exact(lanes)) {
                            *v = position[l].max(low).min(high);
                        }
                    }
                }
            }
        }
    }

    /// `len` zeros in `buf`, starting at a 64-byte boundary.
    fn aligned_zeros(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
        const FLOATS: usize = 64 / std::mem::size_of::<f32>();
        *buf = vec![0f32; len + FLOATS - 1];
        let skip = buf.as_ptr().align_offset(64).min(FLOATS - 1);
        &mut buf[skip..skip + len]
    }

    mod x86 {
        use super::super::ConvWindow;
        use std::arch::x86_64::*;

        macro_rules! group {
            ($name:ident, $feature:literal, $lanes:expr, $vec:ty, $load:ident, $fma:ident, $store:ident) => {
                /// One group of channels: every output position, eight at a time in the
                /// order of the output (a block may span rows: each position has its own
                /// base), the last block moved back to end at the last position (it then
                /// computes some positions twice, to the same values).
                #[target_feature(enable = $feature)]
                pub(in super::super) unsafe fn $name(
                    g: &ConvWindow,
                    cols: usize,
                    scratch: &[f32],
                    offsets: &[usize],
                    weights: &[f32],
                    out: &mut [f32],
                ) {
                    const L: usize = $lanes;
                    const B: usize = 8;
                    let taps = offsets.len();
                    let (s, w, o) = (scratch.as_ptr(), weights.as_ptr(), out.as_mut_ptr());
                    let bias = $load(w.add(taps * L));
                    let at = |p: usize| ((p / g.out_w) * g.stride_h * cols + (p % g.out_w) * g.stride_w) * L;
                    let positions = g.out_h * g.out_w;
                    let mut next = 0;
                    while next < positions && positions >= B {
                        let p0 = next.min(positions - B);
                        let base: [usize; B] = std::array::from_fn(|i| at(p0 + i));
                        let mut acc: [$vec; B] = [bias; B];
                        for (t, &off) in offsets.iter().enumerate() {
                            let wv = $load(w.add(t * L));
                            for i in 0..B {
                                acc[i] = $fma(wv, $load(s.add(base[i] + off)), acc[i]);
                            }
                        }
                        for i in 0..B {
                            $store(o.add((p0 + i) * L), acc[i]);
                        }
                        next = p0 + B;
                    }
                    // Fewer positions than a block.
                    for p in next..positions {
                        let base = at(p);
                        let mut acc = bias;
                        for (t, &off) in offsets.iter().enumerate() {
                            acc = $fma($load(w.add(t * L)), $load(s.add(base + off)), acc);
                        }
                        $store(o.add(p * L), acc);
                    }
                }
            };
        }

        group!(group_avx2, "avx2,fma", 8, __m256, _mm256_loadu_ps, _mm256_fmadd_ps, _mm256_storeu_ps);
        group!(group_avx512, "avx512f,avx2,fma", 16, __m512, _mm512_loadu_ps, _mm512_fmadd_ps, _mm512_storeu_ps);

        /// `dst[ix * 16 + l] = src[l * plane + ix]` for the `n` planes of a group, one
        /// gather per position (lanes past `n` zero).
        #[target_feature(enable = "avx512f")]
        pub(in super::super) unsafe fn interleave_avx512(src: &[f32], plane: usize, n: usize, dst: &mut [f32]) {
            let index = _mm512_mullo_epi32(
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                _mm512_set1_epi32(plane as i32),
            );
            let mask = ((1u32 << n) - 1) as __mmask16;
            let zero = _mm512_setzero_ps();
            for (ix, position) in dst.chunks_exact_mut(16).enumerate() {
                let v = _mm512_mask_i32gather_ps::<4>(zero, mask, index, src.as_ptr().add(ix));
                _mm512_storeu_ps(position.as_mut_ptr(), v);
            }
        }

        /// `out[i] = packed[i * 16 + lane]`, clamped: one channel out of the interleaved
        /// outputs, sixteen positions per gather.
        #[target_feature(enable = "avx512f")]
        pub(in super::super) unsafe fn lane_avx512(
            packed: &[f32],
            lane: usize,
            (low, high): (f32, f32),
            out: &mut [f32],
        ) {
            let index = _mm512_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240);
            let base = packed.as_ptr().add(lane);
            for (i, chunk) in out.chunks_mut(16).enumerate() {
                let mask = ((1u32 << chunk.len()) - 1) as __mmask16;
                let v = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, index, base.add(i * 256));
                let v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(low)), _mm512_set1_ps(high));
                _mm512_mask_storeu_ps(chunk.as_mut_ptr(), mask, v);
            }
        }
    }
}

mod x86 {
    use super::{ConvWindow, Scratch, BLOCK_ROWS};
    use std::arch::x86_64::*;

    macro_rules! plane {
        ($name:ident, $feature:literal, $lanes:expr, $set1:ident, $load:ident, $step:ident, $store:ident, $store_first:ident) => {
            /// One channel: blocks of 4 rows x `V` vectors of `$lanes` lanes; each tap
            /// folds its input into the block with `$step(weight, input, accumulator)`.
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn $name<const V: usize>(
                g: &ConvWindow,
                s: &Scratch,
                plane: &[f32],
                offsets: &[usize],
                w: &[f32],
                bias: f32,
                out: &mut [f32],
            ) {
                const L: usize = $lanes;
                let base = plane.as_ptr();
                let row_step = g.stride_h * s.row_stride;
                for oy in (0..g.out_h).step_by(BLOCK_ROWS) {
                    for ox in (0..g.out_w).step_by(V * L) {
                        let mut acc = [$set1(bias); 2 * BLOCK_ROWS];
                        let row0 = oy * row_step + ox;
                        for (&off, &wt) in offsets.iter().zip(w) {
                            let wv = $set1(wt);
                            for r in 0..BLOCK_ROWS {
                                let p = base.add(row0 + r * row_step + off);
                                for v in 0..V {
                                    acc[V * r + v] = $step(wv, $load(p.add(v * L)), acc[V * r + v]);
                                }
                            }
                        }
                        if oy + BLOCK_ROWS <= g.out_h && ox + V * L <= g.out_w {
                            // A whole block inside the plane: straight to the output.
                            let o = out.as_mut_ptr();
                            for r in 0..BLOCK_ROWS {
                                for v in 0..V {
                                    $store(o.add((oy + r) * g.out_w + ox + v * L), acc[V * r + v]);
                                }
                            }
                        } else {
                            // The block's rows and lanes inside the plane, by masked stores.
                            let o = out.as_mut_ptr();
                            for r in 0..BLOCK_ROWS.min(g.out_h - oy) {
                                for v in 0..V {
                                    let n = (g.out_w - ox).saturating_sub(v * L).min(L);
                                    if n > 0 {
                                        $store_first(o.add((oy + r) * g.out_w + ox + v * L), n, acc[V * r + v]);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
    }

    plane!(plane_avx2, "avx2,fma", 8, _mm256_set1_ps, _mm256_loadu_ps, _mm256_fmadd_ps, _mm256_storeu_ps, first_avx2);
    plane!(
        plane_avx512,
        "avx512f,avx2,fma",
        16,
        _mm512_set1_ps,
        _mm512_loadu_ps,
        _mm512_fmadd_ps,
        _mm512_storeu_ps,
        first_avx512
    );
    plane!(max_plane_avx2, "avx2,fma", 8, _mm256_set1_ps, _mm256_loadu_ps, max_avx2, _mm256_storeu_ps, first_avx2);
    plane!(
        max_plane_avx512,
        "avx512f,avx2,fma",
        16,
        _mm512_set1_ps,
        _mm512_loadu_ps,
        max_avx512,
        _mm512_storeu_ps,
        first_avx512
    );

    /// `even[i] = src[2i]`, `odd[i] = src[2i + 1]` sixteen pairs at a time (two loads and
    /// two permutes); returns how many pairs it did (the rest is left to the caller).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn deinterleave_avx512(src: &[f32], even: &mut [f32], odd: &mut [f32]) -> usize {
        let pick_even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let pick_odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let blocks = (src.len() / 2).min(even.len()).min(odd.len()) / 16;
        for b in 0..blocks {
            let lo = _mm512_loadu_ps(src.as_ptr().add(32 * b));
            let hi = _mm512_loadu_ps(src.as_ptr().add(32 * b + 16));
            _mm512_storeu_ps(even.as_mut_ptr().add(16 * b), _mm512_permutex2var_ps(lo, pick_even, hi));
            _mm512_storeu_ps(odd.as_mut_ptr().add(16 * b), _mm512_permutex2var_ps(lo, pick_odd, hi));
        }
        16 * blocks
    }

    /// Stores the first `n` (1 to 8) lanes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn first_avx2(p: *mut f32, n: usize, v: __m256) {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes), v);
    }

    /// Stores the first `n` (1 to 16) lanes.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn first_avx512(p: *mut f32, n: usize, v: __m512) {
        _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as __mmask16, v);
    }

    /// Max pooling's step: the weight is not used.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn max_avx2(_w: __m256, x: __m256, acc: __m256) -> __m256 {
        _mm256_max_ps(acc, x)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn max_avx512(_w: __m512, x: __m512, acc: __m512) -> __m512 {
        _mm512_max_ps(acc, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::pseudo;

    /// The definition, one output at a time, in f64.
    fn naive(g: &ConvWindow, x: &[f32], k: &[f32], b: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; g.channels * g.out_h * g.out_w];
        for c in 0..g.channels {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let mut s = b[c] as f64;
                    for ky in 0..g.k_h {
                        for kx in 0..g.k_w {
                            let iy = (oy * g.stride_h + ky) as isize - g.pad_top as isize;
                            let ix = (ox * g.stride_w + kx) as isize - g.pad_left as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < g.in_h && (ix as usize) < g.in_w {
                                let v = x[(c * g.in_h + iy as usize) * g.in_w + ix as usize];
                                s += v as f64 * k[c * g.k_h * g.k_w + ky * g.k_w + kx] as f64;
                            }
                        }
                    }
                    out[(c * g.out_h + oy) * g.out_w + ox] = s as f32;
                }
            }
        }
        out
    }

    /// Max pooling by its definition: the largest input under the window.
    fn naive_max(g: &ConvWindow, x: &[f32]) -> Vec<f32> {
        let mut out = vec![f32::NEG_INFINITY; g.channels * g.out_h * g.out_w];
        for (c, oy, ox, ky, kx) in (0..g.channels).flat_map(|c| {
            (0..g.out_h).flat_map(move |oy| {
                (0..g.out_w)
                    .flat_map(move |ox| (0..g.k_h).flat_map(move |ky| (0..g.k_w).map(move |kx| (c, oy, ox, ky, kx))))
            })
        }) {
            let iy = (oy * g.stride_h + ky) as isize - g.pad_top as isize;
            let ix = (ox * g.stride_w + kx) as isize - g.pad_left as isize;
            if iy >= 0 && ix >= 0 && (iy as usize) < g.in_h && (ix as usize) < g.in_w {
                let o = &mut out[(c * g.out_h + oy) * g.out_w + ox];
                *o = o.max(x[(c * g.in_h + iy as usize) * g.in_w + ix as usize]);
            }
        }
        out
    }

    #[test]
    fn every_isa_matches_the_definition_on_odd_shapes() {
        let isas = Isa::available();
        // (in_h, in_w, k, stride, pad_top, pad_left, pad after): SAME-like and asymmetric
        // pads, sizes that leave partial blocks, stride 2 with odd and even sizes.
        for &(h, w, k, s, pt, pl, pa) in &[
            (7, 9, 3, 1, 1, 1, 1),
            (11, 5, 5, 2, 1, 2, 2),
            (12, 12, 3, 2, 0, 0, 1),
            (13, 37, 5, 1, 2, 2, 2),
            (3, 3, 3, 1, 0, 0, 0),
            (20, 33, 3, 2, 1, 1, 1),
            // Narrow planes (lanes across channels): 7x7 5x5, 9x9 3x3, 14 -> 7 stride 2.
            (7, 7, 5, 1, 2, 2, 2),
            (9, 9, 3, 1, 1, 1, 1),
            (14, 14, 5, 2, 1, 1, 2),
        ] {
            let g = ConvWindow {
                channels: 19,
                in_h: h,
                in_w: w,
                out_h: (h + pt + pa - k) / s + 1,
                out_w: (w + pl + pa - k) / s + 1,
                k_h: k,
                k_w: k,
                stride_h: s,
                stride_w: s,
                pad_top: pt,
                pad_left: pl,
            };
            let x = pseudo(19 * h * w, 1);
            let kern = pseudo(19 * k * k, 2);
            let b = pseudo(19, 3);
            let want = naive(&g, &x, &kern, &b);
            let want_max = naive_max(&g, &x);
            for &isa in &isas {
                let mut got = vec![f32::NAN; want.len()];
                depthwise(&g, isa, &x, &kern, &b, (f32::NEG_INFINITY, f32::INFINITY), &mut got);
                let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(d < 1e-5, "{isa:?} {g:?}: differs by {d}");
                max_pool(&g, isa, &x, &mut got);
                assert_eq!(got, want_max, "{isa:?} {g:?}: max pooling");
            }
        }
    }
}
