//! How values are spelled in cambox's CSV tables, one type per spelling, each read back
//! exactly as it was written.
//!
//! A table row read and written again must give the same bytes (resume rewrites its
//! tables, merge joins them), so every number has a fixed spelling: probabilities with 6
//! decimals, the logit check in scientific notation with 3, times with 1, threshold cut
//! values as the shortest decimal that reads back to the same `f32`. Each reads back into
//! `f64` (or `f32`) from its text, which is what `eval` computes with.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

fn parse<'de, D: Deserializer<'de>, T: std::str::FromStr>(d: D, what: &str) -> Result<T, D::Error> {
    let s = String::deserialize(d)?;
    s.trim().parse().map_err(|_| serde::de::Error::custom(format!("'{s}' is not {what}")))
}

/// A value written with `D` decimals (`{:.D}`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Fixed<const D: usize>(pub f64);

impl<const D: usize> Serialize for Fixed<D> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:.*}", D, self.0))
    }
}

impl<'de, const D: usize> Deserialize<'de> for Fixed<D> {
    fn deserialize<De: Deserializer<'de>>(d: De) -> Result<Self, De::Error> {
        parse(d, "a number").map(Fixed)
    }
}

/// A probability or score, 6 decimals.
pub type Prob = Fixed<6>;

/// Milliseconds, 1 decimal.
pub type Millis = Fixed<1>;

/// A value in scientific notation with 3 decimals (`{:.3e}`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Sci3(pub f64);

impl Serialize for Sci3 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:.3e}", self.0))
    }
}

impl<'de> Deserialize<'de> for Sci3 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse(d, "a number").map(Sci3)
    }
}

/// An `f32` as the shortest decimal that reads back to it (Rust's `Display`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Shortest(pub f32);

impl Serialize for Shortest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Shortest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse(d, "a number").map(Shortest)
    }
}

/// `index:probability;...` (probabilities with 6 decimals); empty when there are none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassProbs(pub Vec<(usize, f64)>);

impl Serialize for ClassProbs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = self.0.iter().map(|(k, p)| format!("{k}:{p:.6}")).collect();
        s.collect_str(&text.join(";"))
    }
}

impl<'de> Deserialize<'de> for ClassProbs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.split(';')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                let (k, v) = p.split_once(':')?;
                Some((k.trim().parse().ok()?, v.trim().parse().ok()?))
            })
            .collect::<Option<Vec<_>>>()
            .map(ClassProbs)
            .ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not index:probability;...")))
    }
}

/// DICOM Pixel Spacing: row spacing `\` column spacing, in mm, as DICOM writes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spacing(pub f64, pub f64);

impl Serialize for Spacing {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}\\{}", self.0, self.1))
    }
}

impl<'de> Deserialize<'de> for Spacing {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let pair = s.split_once('\\').and_then(|(r, c)| Some((r.parse().ok()?, c.parse().ok()?)));
        pair.map(|(r, c)| Spacing(r, c)).ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not row\\column")))
    }
}
