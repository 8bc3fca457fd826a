//! Every faithfulness figure of one (image, class, map): deletion and insertion curves and
//! their areas, ROAD at each percentile, and the confidence drop and increase.
//!
//! A figure is a function of the network input, the map at network-input resolution and a
//! score (the class probability of a perturbed input); it knows nothing of files, so the
//! numpy reference and the tests call the same steps on fixed inputs.

use serde::Serialize;

use super::impute::{impute, ROAD_NOISE};
use super::perturb::{auc, blur, order_by, replacement_curve, road_removed, times_map, Planes};
use crate::eval::bootstrap::SplitMix64;

/// ROAD's percentiles (pytorch-grad-cam's `ROADCombined` default).
pub const ROAD_PERCENTILES: [u32; 9] = [10, 20, 30, 40, 50, 60, 70, 80, 90];

/// What deletion replaces pixels with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fill {
    /// A black image as the network sees it (the normalisation of 0).
    Black,
    /// The input's own per-channel mean.
    Mean,
    /// Zero in network units: the data set's mean colour when the input is standardised
    /// (RISE's `torch.zeros_like`).
    Zero,
    /// The blurred input (insertion's start).
    Blur,
}

/// The figures of one (image, class, map).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Measures {
    /// Probability of the class on the unperturbed input.
    pub probability: f64,
    pub deletion: Vec<f64>,
    pub insertion: Vec<f64>,
    pub deletion_auc: f64,
    pub insertion_auc: f64,
    /// Probability change (after - before) at each of [`ROAD_PERCENTILES`]; `None` when the
    /// percentile removes every pixel (a constant map).
    pub road_morf: Vec<Option<f64>>,
    pub road_lerf: Vec<Option<f64>>,
    /// `max(0, Y - O) / Y`, O the probability of the input times the map.
    pub drop: f64,
    /// O > Y.
    pub increase: bool,
}

impl Measures {
    fn mean(v: &[Option<f64>]) -> Option<f64> {
        let d: Vec<f64> = v.iter().flatten().copied().collect();
        (!d.is_empty()).then(|| d.iter().sum::<f64>() / d.len() as f64)
    }
    pub fn road_morf_mean(&self) -> Option<f64> {
        Self::mean(&self.road_morf)
    }
    pub fn road_lerf_mean(&self) -> Option<f64> {
        Self::mean(&self.road_lerf)
    }
    /// `(LeRF - MoRF) / 2`, pytorch-grad-cam's `ROADCombined`.
    pub fn road_combined(&self) -> Option<f64> {
        Some((self.road_lerf_mean()? - self.road_morf_mean()?) / 2.0)
    }
}

/// How to measure.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub steps: usize,
    pub fill: Fill,
    /// The normalised value of black, per channel (for [`Fill::Black`]).
    pub black: [f32; 3],
    pub road: bool,
    /// Seed of ROAD's noise for this (image, class, map).
    pub seed: u64,
}

/// The seed of one use of randomness: `parts` folded through SplitMix64.
pub fn derive_seed(parts: &[u64]) -> u64 {
    parts.iter().fold(0x243F_6A88_85A3_08D3, |h, &p| SplitMix64::new(h ^ p).next_u64())
}

/// Every figure of `x` under `map` (network-input resolution, row-major, in [0, 1]).
pub fn measure(
    x: &Planes,
    map: &[f32],
    s: &Settings,
    score: &mut dyn FnMut(&Planes) -> Result<f64, String>,
) -> Result<Measures, String> {
    let mut err = None;
    let mut scored = |p: &Planes| match score(p) {
        Ok(v) => v,
        Err(e) => {
            err.get_or_insert(e);
            f64::NAN
        }
    };
    let order = order_by(map);
    let blurred = blur(x);
    let filler = match s.fill {
        Fill::Black => x.filled_like(&s.black[..x.c]),
        Fill::Mean => x.filled_like(&x.channel_means()),
        Fill::Zero => x.filled_like(&[0.0; 3][..x.c]),
        Fill::Blur => blurred.clone(),
    };
    let deletion = replacement_curve(x, &filler, &order, s.steps, &mut scored);
    let insertion = replacement_curve(&blurred, x, &order, s.steps, &mut scored);
    let probability = deletion[0];
    let road = |morf: bool, scored: &mut dyn FnMut(&Planes) -> f64| -> Result<Vec<Option<f64>>, String> {
        if !s.road {
            return Ok(Vec::new());
        }
        ROAD_PERCENTILES
            .iter()
            .map(|&p| {
                let removed = road_removed(map, p as f64, morf);
                let seed = derive_seed(&[s.seed, p as u64, morf as u64]);
                Ok(impute(x, &removed, ROAD_NOISE, seed)?.map(|y| scored(&y) - probability))
            })
            .collect()
    };
    let road_morf = road(true, &mut scored)?;
    let road_lerf = road(false, &mut scored)?;
    let after = scored(&times_map(x, map));
    if let Some(e) = err {
        return Err(e);
    }
    Ok(Measures {
        probability,
        deletion_auc: auc(&deletion),
        insertion_auc: auc(&insertion),
        deletion,
        insertion,
        road_morf,
        road_lerf,
        drop: if probability > 0.0 { (probability - after).max(0.0) / probability } else { 0.0 },
        increase: after > probability,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "network" whose score is the mean of channel 0 over the left half: a map on the
    /// left half is faithful, one on the right half is not.
    #[test]
    fn a_faithful_map_deletes_faster_than_an_unfaithful_one() {
        let (h, w) = (8, 8);
        let x = Planes { c: 1, h, w, data: vec![1.0; h * w] };
        let mut score = |p: &Planes| -> Result<f64, String> {
            Ok((0..h)
                .flat_map(|y| (0..w / 2).map(move |xx| (y, xx)))
                .map(|(y, xx)| p.data[y * w + xx] as f64)
                .sum::<f64>()
                / (h * w / 2) as f64)
        };
        let left: Vec<f32> = (0..h * w).map(|p| if p % w < w / 2 { 1.0 } else { 0.0 }).collect();
        let right: Vec<f32> = left.iter().map(|v| 1.0 - v).collect();
        let s = Settings { steps: 8, fill: Fill::Black, black: [0.0; 3], road: true, seed: 1 };
        let good = measure(&x, &left, &s, &mut score).unwrap();
        let bad = measure(&x, &right, &s, &mut score).unwrap();
        assert!(good.deletion_auc < bad.deletion_auc, "{} vs {}", good.deletion_auc, bad.deletion_auc);
        assert_eq!(good.probability, 1.0);
        assert_eq!(good.deletion.len(), 9);
        // The map times the input keeps the left half: no drop; the right map drops it all.
        assert_eq!((good.drop, bad.drop), (0.0, 1.0));
        assert_eq!(good.road_morf.len(), 9);
    }
}
