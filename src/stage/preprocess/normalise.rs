//! Pixel values in [0, 1] to network values: scale, then subtract the mean and divide by
//! the standard deviation of the channel.
//!
//! One type, because two parts of cambox need it: the preprocessing of every image, and
//! the model stage's start-up probe, which must be normalised like a real image before
//! the network (and so its channel count) is known.

use super::options::PreprocessOptions;

/// Validated `scale`, `mean` and `std` of `[preprocess]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Normaliser {
    range: f32,
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normaliser {
    /// Checks that mean and std are given, finite, and std non-zero; how many values the
    /// network's channels need is checked by [`super::Preprocessor::new`].
    pub fn new(o: &PreprocessOptions) -> Result<Normaliser, String> {
        if o.mean.is_empty()
            || o.std.is_empty()
            || o.std.iter().any(|s| !(s.is_finite() && *s != 0.0))
            || o.mean.iter().any(|m| !m.is_finite())
        {
            return Err(
                "[preprocess] mean must be finite and std finite and non-zero (1 value, or one per channel)".into()
            );
        }
        Ok(Normaliser { range: o.scale.range(), mean: o.mean.clone(), std: o.std.clone() })
    }

    /// Pixel values as they are: scale 1, mean 0, std 1.
    pub fn identity() -> Normaliser {
        Normaliser { range: 1.0, mean: vec![0.0], std: vec![1.0] }
    }

    /// How many values `mean` and `std` hold (the larger).
    pub fn values(&self) -> (usize, usize) {
        (self.mean.len(), self.std.len())
    }

    /// The mean and std of channel `c`: its own value, or the first when fewer are given.
    fn channel(&self, c: usize) -> (f32, f32) {
        let pick = |a: &[f32]| if a.len() > c { a[c] } else { a[0] };
        (pick(&self.mean), pick(&self.std))
    }

    /// Network value of channel `c` for a pixel value `v` in [0, 1].
    pub fn value(&self, c: usize, v: f32) -> f32 {
        let (m, s) = self.channel(c);
        (v * self.range - m) / s
    }

    /// Network value of channel `c` for a value already in the scaled range (letterbox
    /// padding is given that way).
    pub fn scaled_value(&self, c: usize, v: f32) -> f32 {
        let (m, s) = self.channel(c);
        (v - m) / s
    }
}
