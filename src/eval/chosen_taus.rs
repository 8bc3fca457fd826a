//! Thresholds chosen on one split and applied to another (`eval --taus-from`).
//!
//! MaxBoxAcc picks its best tau on the very set it scores, which flatters it;
//! wsolevaluation chooses thresholds on a held-out split and reports on another. Here
//! `eval --calibrate` on a validation split writes `calibrated.toml` (`[localise]
//! preset = "wsol"`, `tau`, and per class `taus`); `eval --taus-from` on the test split
//! reads it and cuts every evaluated pair's saved map at its class's tau exactly as `run`
//! with that file would ([`Localiser::localise`] with the `wsol` recipe), and those boxes
//! are scored in place of `boxes.csv`'s. The summary and the report name the file the
//! taus came from; without it, figures that choose their own tau say so.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::metrics::Rect;
use super::run_files::RunBox;
use super::sweep::load_map;
use crate::error::Error;
use crate::stage::localise::{Localiser, Recipe};

/// The taus of a `calibrated.toml`.
#[derive(Debug, Clone)]
pub struct ChosenTaus {
    pub path: PathBuf,
    /// `[localise] tau`: for every class without its own.
    pub tau: f64,
    /// `[localise] taus`, resolved to model class indices.
    pub per_class: BTreeMap<usize, f64>,
}

#[derive(Deserialize)]
struct File {
    localise: Localise,
}

#[derive(Deserialize)]
struct Localise {
    preset: Option<String>,
    tau: Option<f64>,
    taus: Option<BTreeMap<String, f64>>,
}

impl ChosenTaus {
    /// Reads `path`; class keys are model class names (`class_names`) or indices.
    pub fn load(path: &Path, class_names: &BTreeMap<usize, String>) -> Result<ChosenTaus, Error> {
        let bad = |m: String| Error::config(path, m);
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let f: File = toml::from_str(&text).map_err(|e| bad(format!("{e}")))?;
        if f.localise.preset.as_deref().is_some_and(|p| p != "wsol") {
            return Err(bad("[localise] preset must be \"wsol\" (what eval --calibrate writes)".into()));
        }
        let tau = f.localise.tau.ok_or_else(|| bad("[localise] tau is missing".into()))?;
        let check = |what: &str, t: f64| {
            if (0.0..1.0).contains(&t) {
                Ok(t)
            } else {
                Err(bad(format!("{what} = {t} must be in [0, 1)")))
            }
        };
        check("[localise] tau", tau)?;
        let mut per_class = BTreeMap::new();
        for (key, t) in f.localise.taus.unwrap_or_default() {
            let k = key
                .parse::<usize>()
                .ok()
                .or_else(|| class_names.iter().find(|(_, n)| **n == key).map(|(k, _)| *k))
                .ok_or_else(|| bad(format!("[localise] taus: no class named '{key}' in the run")))?;
            per_class.insert(k, check(&format!("[localise] taus.{key}"), t)?);
        }
        Ok(ChosenTaus { path: path.to_path_buf(), tau, per_class })
    }

    /// The tau of model class `k`.
    pub fn tau_of(&self, k: usize) -> f64 {
        self.per_class.get(&k).copied().unwrap_or(self.tau)
    }
}

/// One image to cut again: its relative path, the model classes wanted, and the saved
/// maps file.
pub struct Recut<'a> {
    pub rel: &'a str,
    pub classes: &'a [usize],
    pub map: PathBuf,
}

/// The boxes `run` would have written with the chosen taus, from the saved maps, per image;
/// each box keeps the class probability of the run's own boxes (`probability`). Classes
/// whose map was not saved get no boxes (a miss, as for a run that did not localise them).
pub fn recut(
    images: &[Recut],
    taus: &ChosenTaus,
    probability: impl Fn(&str, usize) -> f64 + Sync,
) -> HashMap<String, Vec<RunBox>> {
    use rayon::prelude::*;
    images
        .par_iter()
        .map(|im| {
            let mut boxes = Vec::new();
            for &k in im.classes {
                let Ok((raw, geo)) = load_map(&im.map, k) else { continue };
                let l = Localiser::new(Recipe::wsol(taus.tau_of(k) as f32)).localise(k, raw.view(), &geo);
                let score = probability(im.rel, k);
                boxes.extend(l.boxes.iter().map(|b| RunBox {
                    class: k,
                    score,
                    box_score: b.box_score as f64,
                    rect: Rect::new(b.x1 as f64, b.y1 as f64, b.x2 as f64, b.y2 as f64),
                }));
            }
            (im.rel.to_string(), boxes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taus_by_name_or_index() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[localise]\npreset = \"wsol\"\ntau = 0.25\ntaus = { \"cat\" = 0.4, \"7\" = 0.1 }\n")
            .unwrap();
        let names = BTreeMap::from([(3, "cat".to_string())]);
        let t = ChosenTaus::load(&p, &names).unwrap();
        assert_eq!((t.tau_of(3), t.tau_of(7), t.tau_of(9)), (0.4, 0.1, 0.25));
        std::fs::write(&p, "[localise]\npreset = \"wsol\"\ntau = 1.5\n").unwrap();
        assert!(ChosenTaus::load(&p, &names).unwrap_err().to_string().contains("must be in [0, 1)"));
    }
}
