//! The vector instructions the kernels run with: detected once, in one place.
//!
//! An [`Isa`] can only be had from [`Isa::detect`] (or from another `Isa`, downwards), so
//! holding one proves the CPU has its instructions: the kernels take it as that proof
//! before they call intrinsics compiled for them, and no safe function of this crate can
//! run an instruction the CPU lacks. Likewise [`Avx512`] for the pointwise kernel.

use std::sync::OnceLock;

/// The levels of vector instructions the kernels are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// AVX2 and FMA (Haswell, 2013; Zen, 2017): 8-lane vectors.
    Avx2Fma,
    /// AVX-512F on top of them: 16-lane vectors.
    Avx512,
}

/// Instructions this CPU was found to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Isa(Level);

/// Proof that this CPU has AVX-512F (and AVX2 and FMA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Avx512(Isa);

impl Isa {
    /// The best level this CPU has, or `None` without AVX2 and FMA (tract's ops stay).
    pub fn detect() -> Option<Isa> {
        static DETECTED: OnceLock<Option<Isa>> = OnceLock::new();
        *DETECTED.get_or_init(|| detect_level().map(Isa))
    }

    /// Every level this CPU runs, lowest first (tests compare each with tract's op).
    pub fn available() -> Vec<Isa> {
        match Isa::detect() {
            Some(best) if best.0 == Level::Avx512 => vec![best.at_most_avx2(), best],
            Some(best) => vec![best],
            None => vec![],
        }
    }

    pub fn level(self) -> Level {
        self.0
    }

    /// AVX2 and FMA alone: every level this crate detects includes them.
    pub fn at_most_avx2(self) -> Isa {
        Isa(Level::Avx2Fma)
    }

    /// The AVX-512 proof, when this is that level.
    pub fn avx512(self) -> Option<Avx512> {
        (self.0 == Level::Avx512).then_some(Avx512(self))
    }

    /// f32 lanes of a vector.
    pub fn lanes(self) -> usize {
        match self.0 {
            Level::Avx2Fma => 8,
            Level::Avx512 => 16,
        }
    }

    /// As `run.json` names it.
    pub fn name(self) -> &'static str {
        match self.0 {
            Level::Avx2Fma => "avx2+fma",
            Level::Avx512 => "avx512",
        }
    }
}

impl Avx512 {
    pub fn isa(self) -> Isa {
        self.0
    }
}

#[cfg(target_arch = "x86_64")]
fn detect_level() -> Option<Level> {
    use std::arch::is_x86_feature_detected as has;
    let avx2 = has!("avx2") && has!("fma");
    match (avx2, has!("avx512f")) {
        (true, true) => Some(Level::Avx512),
        (true, false) => Some(Level::Avx2Fma),
        _ => None,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_level() -> Option<Level> {
    None
}
