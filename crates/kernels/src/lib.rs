//! cambox's compute kernels, as tract ops put in place of tract's own in a decluttered
//! graph, and the one place that decides which instructions they run with.
//!
//! Why a crate of their own: the kernels are the only code of cambox that needs `unsafe`
//! (SIMD intrinsics behind run-time CPU detection, and one allocator setting), and they
//! have their own concern, speed, measured against tract's ops (`benches/network.rs`,
//! `tests/models/kernels.rs`). The cambox library forbids `unsafe` and calls [`substitute`] with
//! the user's [`KernelChoice`]; what ran is returned as a [`KernelReport`] for `run.json`.
//!
//! - [`isa`]: the vector instructions this CPU has, detected once. A value of [`isa::Isa`]
//!   exists only where detection found them, which is what makes the kernels' calls into
//!   intrinsics sound.
//! - [`fusion`]: reading the nodes a kernel replaces (the convolution and its bias, clamp
//!   and residual add) from tract's graph.
//! - `pointwise` (1x1 convolutions and stems, AVX-512), `depthwise` (AVX2 and FMA, or
//!   AVX-512) and `maxpool` (its plane walk): x86-64 only; elsewhere tract's ops stay.
//! - [`platform`]: process-wide settings that only make sense with the workers' memory
//!   use in mind (malloc arenas).

pub mod fusion;
pub mod isa;
pub mod platform;
pub mod window;

mod choice;
#[cfg(target_arch = "x86_64")]
pub mod depthwise;
#[cfg(target_arch = "x86_64")]
pub mod maxpool;
#[cfg(target_arch = "x86_64")]
pub mod pointwise;

pub use choice::{Kernel, KernelChoice, KernelReport};

use tract_onnx::prelude::*;

/// Puts cambox's kernels that `choice` allows and this CPU runs in place of tract's ops in
/// a decluttered model (before tract optimises it), and says how many nodes each took.
pub fn substitute(model: &mut TypedModel, choice: &KernelChoice) -> TractResult<KernelReport> {
    let isa = isa::Isa::detect();
    let mut report = KernelReport { isa: isa.map(|i| i.name().to_string()), ..KernelReport::default() };
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = isa {
        // Order matters: the pointwise kernel takes the 1x1 convolutions and stems first,
        // then the depthwise kernel the grouped ones; max pooling is independent.
        if choice.uses(Kernel::Pointwise) {
            if let Some(avx512) = isa.avx512() {
                report.pointwise = pointwise::substitute(model, avx512)?;
            }
        }
        if choice.uses(Kernel::Depthwise) {
            report.depthwise = depthwise::substitute(model, isa)?;
        }
        if choice.uses(Kernel::Maxpool) {
            report.maxpool = maxpool::substitute(model, isa)?;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (model, choice);
    Ok(report)
}
