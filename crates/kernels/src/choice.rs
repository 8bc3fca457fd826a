//! Which kernels a run uses (`[model] kernels`, `--kernels`), and what it got.
//!
//! A typed choice rather than environment variables read deep inside the library, so that
//! `run.json` records which kernels ran and a benchmark compares variants by saying so.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// One of cambox's kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kernel {
    /// 1x1 convolutions and one-group stems (AVX-512).
    Pointwise,
    /// Depthwise convolutions with their clamp (AVX2 and FMA, or AVX-512).
    Depthwise,
    /// Max pooling (AVX2 and FMA, or AVX-512).
    Maxpool,
}

impl Kernel {
    pub const ALL: [Kernel; 3] = [Kernel::Pointwise, Kernel::Depthwise, Kernel::Maxpool];

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Pointwise => "pointwise",
            Kernel::Depthwise => "depthwise",
            Kernel::Maxpool => "maxpool",
        }
    }
}

/// Which of cambox's kernels may replace tract's ops: `"cambox"` (all of them, each where
/// the CPU has its instructions; the default), `"tract"` (none: tract's ops everywhere,
/// to compare), or a list of kernel names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Spec", into = "Spec")]
pub struct KernelChoice {
    enabled: BTreeSet<Kernel>,
}

/// How the choice is written.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Spec {
    Word(String),
    List(Vec<Kernel>),
}

impl Default for KernelChoice {
    fn default() -> Self {
        KernelChoice { enabled: Kernel::ALL.into_iter().collect() }
    }
}

impl KernelChoice {
    /// tract's ops everywhere.
    pub fn tract() -> KernelChoice {
        KernelChoice { enabled: BTreeSet::new() }
    }

    pub fn only(kernels: impl IntoIterator<Item = Kernel>) -> KernelChoice {
        KernelChoice { enabled: kernels.into_iter().collect() }
    }

    pub fn uses(&self, k: Kernel) -> bool {
        self.enabled.contains(&k)
    }

    /// Whether this is the default (every kernel).
    pub fn is_default(&self) -> bool {
        *self == KernelChoice::default()
    }

    /// `cambox`, `tract`, or kernel names separated by commas (the command line's form).
    pub fn parse(s: &str) -> Result<KernelChoice, String> {
        match s {
            "cambox" => Ok(KernelChoice::default()),
            "tract" => Ok(KernelChoice::tract()),
            list => list
                .split(',')
                .map(|k| kernel(k.trim()))
                .collect::<Result<BTreeSet<_>, _>>()
                .map(|enabled| KernelChoice { enabled }),
        }
    }
}

fn kernel(name: &str) -> Result<Kernel, String> {
    Kernel::ALL
        .into_iter()
        .find(|k| k.name() == name)
        .ok_or_else(|| format!("unknown kernel '{name}': cambox, tract, or a list of pointwise, depthwise, maxpool"))
}

impl TryFrom<Spec> for KernelChoice {
    type Error = String;
    fn try_from(s: Spec) -> Result<KernelChoice, String> {
        match s {
            Spec::Word(w) => KernelChoice::parse(&w),
            Spec::List(l) => Ok(KernelChoice::only(l)),
        }
    }
}

impl From<KernelChoice> for Spec {
    fn from(c: KernelChoice) -> Spec {
        if c.is_default() {
            Spec::Word("cambox".into())
        } else if c.enabled.is_empty() {
            Spec::Word("tract".into())
        } else {
            Spec::List(c.enabled.into_iter().collect())
        }
    }
}

/// What [`crate::substitute`] did to a model: the instructions detected and how many
/// nodes (chains of nodes, for the convolutions) each kernel took.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelReport {
    /// `avx512`, `avx2+fma`, or none (tract's ops everywhere).
    pub isa: Option<String>,
    pub pointwise: usize,
    pub depthwise: usize,
    pub maxpool: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_spellings_read_and_write_back() {
        assert_eq!(KernelChoice::parse("cambox").unwrap(), KernelChoice::default());
        assert!(!KernelChoice::parse("tract").unwrap().uses(Kernel::Depthwise));
        let some = KernelChoice::parse("depthwise, maxpool").unwrap();
        assert!(some.uses(Kernel::Maxpool) && !some.uses(Kernel::Pointwise));
        assert!(KernelChoice::parse("winograd").unwrap_err().contains("unknown kernel 'winograd'"));
        let json = |c: &KernelChoice| serde_json::to_string(c).unwrap();
        assert_eq!(json(&KernelChoice::default()), "\"cambox\"");
        assert_eq!(json(&KernelChoice::tract()), "\"tract\"");
        assert_eq!(json(&some), "[\"depthwise\",\"maxpool\"]");
        assert_eq!(
            serde_json::from_str::<KernelChoice>("[\"pointwise\"]").unwrap(),
            KernelChoice::only([Kernel::Pointwise])
        );
    }
}
