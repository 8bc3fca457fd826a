//! The map figures (pointing game, energy, PxAP, pixel IoU) and the bootstrap intervals
//! against an independent numpy implementation of their definitions
//! (`scripts/reference/eval_figures_reference.py`; `tests/fixtures/eval-figures/`), on
//! hand-computable edge cases and random ones.

use cambox::eval::bootstrap::{mean_of_units, Resamples, SplitMix64};
use cambox::eval::figures::{self, MapView, PixelHistograms};
use cambox::eval::metrics::Rect;
use cambox::eval::sweep::taus;
use serde_json::Value;

use crate::common::root;

fn fixture(name: &str) -> Value {
    let p = root().join("tests/fixtures/eval-figures").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn grid_f32(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|x| match x {
            Value::String(s) if s == "nan" => f32::NAN,
            x => x.as_f64().unwrap() as f32,
        })
        .collect()
}

fn grid_u8(v: &Value) -> Vec<u8> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|x| x.as_u64().unwrap() as u8)
        .collect()
}

struct Case {
    id: String,
    w: usize,
    h: usize,
    seen: (usize, usize, usize, usize),
    map: Vec<f32>,
    truth: Vec<Rect>,
    tolerance: f64,
    tau: f64,
    mask: Option<Vec<u8>>,
    score: Option<Vec<f32>>,
}

fn cases(v: &Value) -> Vec<Case> {
    v["maps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s: Vec<usize> = c["seen"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
            let truth = c["truth"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    let b: Vec<f64> = b.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
                    Rect::new(b[0], b[1], b[2], b[3])
                })
                .collect();
            Case {
                id: c["id"].as_str().unwrap().to_string(),
                w: c["width"].as_u64().unwrap() as usize,
                h: c["height"].as_u64().unwrap() as usize,
                seen: (s[0], s[1], s[2], s[3]),
                map: grid_f32(&c["map"]),
                truth,
                tolerance: c["tolerance"].as_f64().unwrap(),
                tau: c["tau"].as_f64().unwrap(),
                mask: (!c["mask"].is_null()).then(|| grid_u8(&c["mask"])),
                score: (!c["score"].is_null()).then(|| grid_f32(&c["score"])),
            }
        })
        .collect()
}

#[test]
fn pointing_energy_and_pixel_counts_match_numpy() {
    let (input, expected) = (fixture("cases.json"), fixture("expected.json"));
    let cases = cases(&input);
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for c in &cases {
        let e = &expected["maps"][&c.id];
        let view = MapView { values: &c.map, width: c.w, height: c.h, seen: c.seen };
        let p = figures::pointing(&view, &c.truth, c.tolerance);
        let peak = p.peak.map(|(x, y)| serde_json::json!([x, y])).unwrap_or(Value::Null);
        assert_eq!(peak, e["peak"], "{}: peak", c.id);
        assert_eq!(p.hit.map(Value::Bool).unwrap_or(Value::Null), e["pointing_hit"], "{}: hit", c.id);
        match (p.energy, e["energy"].as_f64()) {
            (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-12, "{}: energy {a} vs {b}", c.id),
            (None, None) => {}
            (a, b) => panic!("{}: energy {a:?} vs {b:?}", c.id),
        }
        let counts = match (&c.score, &c.mask) {
            (Some(s), Some(m)) => serde_json::json!(figures::pixel_counts(s, m, c.tau)),
            _ => Value::Null,
        };
        assert_eq!(counts, e["pixel_iou_counts"], "{}: pixel counts", c.id);
    }
}

#[test]
fn pxap_matches_numpy() {
    let (input, expected) = (fixture("cases.json"), fixture("expected.json"));
    let cases = cases(&input);
    let sets = input["pxap_sets"].as_array().unwrap();
    assert!(sets.len() >= 8);
    for set in sets {
        let id = set["id"].as_str().unwrap();
        let t = taus(set["step"].as_f64().unwrap());
        let mut h = PixelHistograms::new(&t);
        for m in set["members"].as_array().unwrap() {
            let c = cases.iter().find(|c| c.id == m.as_str().unwrap()).unwrap();
            h.add(&t, c.score.as_ref().unwrap(), c.mask.as_ref().unwrap());
        }
        let e = &expected["pxap_sets"][id];
        assert_eq!(serde_json::json!(h.foreground), e["hist_fg"], "{id}: foreground histogram");
        assert_eq!(serde_json::json!(h.background), e["hist_bg"], "{id}: background histogram");
        match (h.pxap(), e["pxap"].as_f64()) {
            (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-12, "{id}: pxap {a} vs {b}"),
            (None, None) => {}
            (a, b) => panic!("{id}: pxap {a:?} vs {b:?}"),
        }
    }
}

#[test]
fn bootstrap_intervals_match_numpy_and_are_reproducible() {
    let (input, expected) = (fixture("cases.json"), fixture("expected.json"));
    let first: Vec<u64> =
        expected["meta"]["splitmix64"]["first_next"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    let mut r = SplitMix64::new(20231207);
    assert_eq!((0..first.len()).map(|_| r.next_u64()).collect::<Vec<_>>(), first);
    for b in input["bootstrap"].as_array().unwrap() {
        let id = b["id"].as_str().unwrap();
        let units: Vec<Vec<Option<f64>>> = b["units"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_array().unwrap().iter().map(Value::as_f64).collect())
            .collect();
        let (n, resamples, seed) =
            (units.len(), b["resamples"].as_u64().unwrap() as usize, b["seed"].as_u64().unwrap());
        let e = &expected["bootstrap"][id];
        let all: Vec<u32> = (0..n as u32).collect();
        assert_eq!(mean_of_units(&all, &units), e["point"].as_f64(), "{id}: point");
        let draws = Resamples::draw(n, resamples, seed);
        let stat = |d: &[u32]| mean_of_units(d, &units);
        assert_eq!(draws.defined(stat) as u64, e["defined"].as_u64().unwrap(), "{id}: defined resamples");
        let got = draws.interval(stat);
        match (got, e["ci95"].as_array()) {
            (Some([lo, hi]), Some(w)) => {
                let (wl, wh) = (w[0].as_f64().unwrap(), w[1].as_f64().unwrap());
                assert!((lo - wl).abs() <= 1e-12 && (hi - wh).abs() <= 1e-12, "{id}: [{lo}, {hi}] vs [{wl}, {wh}]");
            }
            (None, None) => {}
            (a, b) => panic!("{id}: {a:?} vs {b:?}"),
        }
        // Same seed, same figures.
        assert_eq!(Resamples::draw(n, resamples, seed).interval(stat), got, "{id}: not reproducible");
    }
}
