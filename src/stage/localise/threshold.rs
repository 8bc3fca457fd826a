//! Threshold rules that turn a normalised map into a binary mask.
//!
//! All rules keep pixels *strictly above* the threshold, as wsolevaluation does
//! (`cv2.threshold(..., THRESH_BINARY)` keeps `value > thresh`), so a constant map of
//! zeros gives an empty mask rather than the whole image.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One threshold rule, written in configs as `fraction:0.2`, `absolute:0.5`, `otsu`,
/// `percentile:95` or `u8:60`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Threshold {
    /// A fraction of the map's maximum (CAM paper: 0.2). On an 8-bit map this is
    /// wsolevaluation's `int(tau * max)`.
    Fraction(f32),
    /// A value on the normalised map.
    Absolute(f32),
    /// Otsu's threshold over a 256-bin histogram of the map.
    Otsu,
    /// The P-th percentile of the map's values.
    Percentile(f32),
    /// A level on the 0-255 map (ChestX-ray8 uses 60 and 180).
    U8(u8),
}

impl FromStr for Threshold {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "otsu" {
            return Ok(Threshold::Otsu);
        }
        let (kind, val) = s
            .split_once(':')
            .ok_or_else(|| format!("threshold '{s}': expected fraction:F, absolute:T, otsu, percentile:P or u8:N"))?;
        let num = |lo: f32, hi: f32| -> Result<f32, String> {
            let v: f32 = val.trim().parse().map_err(|_| format!("threshold '{s}': '{val}' is not a number"))?;
            if !(lo..=hi).contains(&v) {
                return Err(format!("threshold '{s}': value must be in [{lo}, {hi}]"));
            }
            Ok(v)
        };
        match kind {
            "fraction" => Ok(Threshold::Fraction(num(0.0, 1.0)?)),
            "absolute" => Ok(Threshold::Absolute(num(f32::MIN, f32::MAX)?)),
            "percentile" => Ok(Threshold::Percentile(num(0.0, 100.0)?)),
            "u8" => Ok(Threshold::U8(num(0.0, 255.0)? as u8)),
            _ => Err(format!("threshold '{s}': unknown kind '{kind}'")),
        }
    }
}

impl TryFrom<String> for Threshold {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Threshold> for String {
    fn from(t: Threshold) -> String {
        t.to_string()
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Fraction(v) => write!(f, "fraction:{v}"),
            Threshold::Absolute(v) => write!(f, "absolute:{v}"),
            Threshold::Otsu => write!(f, "otsu"),
            Threshold::Percentile(v) => write!(f, "percentile:{v}"),
            Threshold::U8(v) => write!(f, "u8:{v}"),
        }
    }
}

/// wsolevaluation's 8-bit map: `(map * 255).astype(uint8)` (truncation).
pub fn to_u8(v: f32) -> u8 {
    (v * 255.0).clamp(0.0, 255.0) as u8
}

impl Threshold {
    /// The cut value for `values` (normalised, in [0, 1] for the 8-bit rules). With
    /// `quantised`, values are compared on the 8-bit scale and the cut is an 8-bit level.
    pub fn value(&self, values: &[f32], quantised: bool) -> f32 {
        let max = values.iter().copied().filter(|v| v.is_finite()).fold(f32::NEG_INFINITY, f32::max);
        match *self {
            Threshold::Fraction(f) if quantised => (f * to_u8(max.max(0.0)) as f32).floor(),
            Threshold::Fraction(f) => f * max,
            Threshold::Absolute(t) if quantised => (t * 255.0).floor(),
            Threshold::Absolute(t) => t,
            Threshold::U8(n) => n as f32,
            Threshold::Otsu => {
                let level = otsu_level(values);
                if quantised {
                    level as f32
                } else {
                    level as f32 / 255.0
                }
            }
            Threshold::Percentile(p) => {
                let mut v: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
                if v.is_empty() {
                    return f32::INFINITY;
                }
                v.sort_by(f32::total_cmp);
                // Linear interpolation between order statistics (numpy's default).
                let pos = p as f64 / 100.0 * (v.len() - 1) as f64;
                let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
                let t = (v[lo] as f64 + (v[hi] as f64 - v[lo] as f64) * (pos - lo as f64)) as f32;
                if quantised {
                    to_u8(t) as f32
                } else {
                    t
                }
            }
        }
    }

    /// Whether the cut depends on more than the maximum of the values (Otsu, percentiles);
    /// for the others, [`Threshold::value`] of the maximum alone is the same cut.
    pub fn needs_distribution(&self) -> bool {
        matches!(self, Threshold::Otsu | Threshold::Percentile(_))
    }

    /// Whether the rule is defined on the 8-bit map.
    pub fn needs_u8(&self) -> bool {
        matches!(self, Threshold::U8(_))
    }
}

/// The largest finite value (-inf when there is none): the same as folding `f32::max`
/// over the finite values, written as eight independent lanes so that it vectorises
/// (a whole X-ray map is scanned once per image for its maximum).
pub fn finite_max(values: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            // NaN and +inf fail the test and are skipped; -inf never raises the maximum.
            if c[i] > acc[i] && c[i] < f32::INFINITY {
                acc[i] = c[i];
            }
        }
    }
    let lanes = acc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    tail.iter().copied().filter(|v| v.is_finite()).fold(lanes, f32::max)
}

/// Otsu's level (0-255) on the 8-bit histogram: the level t maximising the between-class
/// variance of {v <= t} and {v > t}.
pub fn otsu_level(values: &[f32]) -> u8 {
    let mut hist = [0u64; 256];
    for &v in values.iter().filter(|v| v.is_finite()) {
        hist[to_u8(v) as usize] += 1;
    }
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return 0;
    }
    let sum_all: f64 = hist.iter().enumerate().map(|(i, &c)| i as f64 * c as f64).sum();
    let (mut w0, mut sum0) = (0f64, 0f64);
    let (mut best, mut best_t) = (-1f64, 0u8);
    for (t, &c) in hist.iter().enumerate() {
        w0 += c as f64;
        sum0 += t as f64 * c as f64;
        let w1 = total as f64 - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let (m0, m1) = (sum0 / w0, (sum_all - sum0) / w1);
        let between = w0 * w1 * (m0 - m1) * (m0 - m1);
        if between > best {
            best = between;
            best_t = t as u8;
        }
    }
    best_t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for s in ["fraction:0.2", "absolute:0.5", "otsu", "percentile:95", "u8:60"] {
            assert_eq!(s.parse::<Threshold>().unwrap().to_string(), s);
        }
        assert!("fraction:2".parse::<Threshold>().is_err());
        assert!("median".parse::<Threshold>().is_err());
    }

    #[test]
    fn values_by_hand() {
        let v = [0.0, 0.25, 0.5, 1.0];
        assert_eq!(Threshold::Fraction(0.2).value(&v, false), 0.2);
        // 8-bit: max 255, int(0.2 * 255) = 51.
        assert_eq!(Threshold::Fraction(0.2).value(&v, true), 51.0);
        // numpy.percentile([0, .25, .5, 1], 50) = 0.375.
        assert!((Threshold::Percentile(50.0).value(&v, false) - 0.375).abs() < 1e-7);
        assert_eq!(Threshold::U8(60).value(&v, true), 60.0);
    }

    #[test]
    fn finite_max_skips_nan_and_infinities() {
        assert_eq!(finite_max(&[]), f32::NEG_INFINITY);
        assert_eq!(finite_max(&[f32::NAN, f32::INFINITY]), f32::NEG_INFINITY);
        let mut v: Vec<f32> = (0..37).map(|i| ((i * 7) % 19) as f32 * 0.1 - 0.5).collect();
        v[5] = f32::NAN;
        v[20] = f32::INFINITY;
        v[36] = f32::NEG_INFINITY;
        let want = v.iter().copied().filter(|x| x.is_finite()).fold(f32::NEG_INFINITY, f32::max);
        for n in 0..v.len() {
            let want_n = v[..n].iter().copied().filter(|x| x.is_finite()).fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(finite_max(&v[..n]), want_n, "first {n}");
        }
        assert_eq!(finite_max(&v), want);
    }

    #[test]
    fn otsu_splits_two_modes() {
        let mut v = vec![0.1f32; 100];
        v.extend(vec![0.9f32; 50]);
        let t = otsu_level(&v);
        assert!((to_u8(0.1)..to_u8(0.9)).contains(&t), "{t}");
    }
}
