//! The box metrics against the independent numpy reference
//! (`scripts/reference/metrics_reference.py`): `tests/fixtures/metrics/cases.json` in,
//! `expected.json` out, both box conventions, per image and aggregate, within 1e-12.

use crate::common::root;
use cambox::eval::metrics::{self, Case, Convention, Rect, Scored};
use cambox::eval::metrics::{BOX_ACC_DELTAS, CXR8_IOBB_THRESHOLDS, CXR8_IOU_THRESHOLD};
use serde_json::Value;

const TOL: f64 = 1e-12;

fn load(name: &str) -> Value {
    let p = root().join("tests/fixtures/metrics").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn rect(v: &Value) -> Rect {
    let a: Vec<f64> = v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    Rect::new(a[0], a[1], a[2], a[3])
}

fn cases() -> Vec<(String, Case)> {
    load("cases.json")["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|im| {
            let truth = im["truth"].as_array().unwrap().iter().map(rect).collect();
            let preds = im["pred"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| Scored { rect: rect(p), score: p[4].as_f64().unwrap() })
                .collect();
            (im["id"].as_str().unwrap().to_string(), Case { truth, preds })
        })
        .collect()
}

fn close(got: Option<f64>, want: &Value, what: &str) {
    match (got, want.as_f64()) {
        (None, None) => assert!(want.is_null(), "{what}: want {want}"),
        (Some(g), Some(w)) => assert!((g - w).abs() <= TOL, "{what}: got {g}, want {w}"),
        _ => panic!("{what}: got {got:?}, want {want}"),
    }
}

/// Threshold keys as Python writes them.
fn key(x: f64) -> String {
    format!("{x}")
}

fn check(conv: Convention, block: &Value) {
    let cases = cases();
    let name = conv.name();
    let per = &block["per_image"];
    assert_eq!(per.as_object().unwrap().len(), cases.len());
    for (id, c) in &cases {
        let e = &per[id];
        let rects = c.pred_rects();
        let best = metrics::best_iou(&rects, &c.truth, conv);
        close(best, &e["best_iou"], &format!("{name} {id} best_iou"));
        close(metrics::best_iobb(&rects, &c.truth, conv), &e["best_iobb"], &format!("{name} {id} best_iobb"));
        close(metrics::rsna_image(&c.truth, &c.preds, conv), &e["rsna"], &format!("{name} {id} rsna"));
        if c.truth.is_empty() {
            assert!(e["hits"].is_null(), "{name} {id}: hits");
        } else {
            for d in BOX_ACC_DELTAS {
                assert_eq!(Some(metrics::hit(best, d)), e["hits"][key(d)].as_bool(), "{name} {id} hit {d}");
            }
        }
    }
    let all: Vec<Case> = cases.into_iter().map(|(_, c)| c).collect();
    for d in BOX_ACC_DELTAS {
        close(metrics::box_acc(&all, d, conv), &block["box_acc"][key(d)], &format!("{name} box_acc {d}"));
    }
    close(metrics::box_acc(&all, 0.5, conv), &block["corloc"], &format!("{name} corloc"));
    close(metrics::box_acc_mean(&all, conv), &block["box_acc_mean"], &format!("{name} box_acc_mean"));
    let (rsna, scored) = metrics::rsna_score(&all, conv);
    close(rsna, &block["rsna_score"], &format!("{name} rsna_score"));
    assert_eq!(scored as u64, block["counts"]["scored_rsna"].as_u64().unwrap());
    assert_eq!(all.len() as u64, block["counts"]["images"].as_u64().unwrap());
    for t in CXR8_IOBB_THRESHOLDS {
        let e = &block["chestxray8"][key(t)];
        let a = metrics::chestxray8(&all, t, None, conv);
        let b = metrics::chestxray8(&all, t, Some(CXR8_IOU_THRESHOLD), conv);
        close(a.accuracy, &e["accuracy_iobb"], &format!("{name} cxr8 {t} accuracy"));
        close(a.avg_fp, &e["avg_fp"], &format!("{name} cxr8 {t} avg_fp"));
        close(b.accuracy, &e["accuracy_iobb_or_iou_0.5"], &format!("{name} cxr8 {t} accuracy or IoU"));
        close(b.avg_fp, &e["avg_fp_iobb_or_iou_0.5"], &format!("{name} cxr8 {t} avg_fp or IoU"));
    }
}

#[test]
fn metrics_match_the_numpy_reference_half_open() {
    let e = load("expected.json");
    check(Convention::HalfOpen, &e["conventions"]["half_open"]);
}

#[test]
fn metrics_match_the_numpy_reference_wsol_inclusive() {
    let e = load("expected.json");
    check(Convention::WsolInclusive, &e["conventions"]["wsol_inclusive"]);
}

#[test]
fn reference_thresholds_are_ours() {
    let meta = &load("expected.json")["meta"];
    let f = |k: &str| -> Vec<f64> { meta[k].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect() };
    assert_eq!(f("box_acc_deltas"), BOX_ACC_DELTAS.to_vec());
    assert_eq!(f("chestxray8_iobb_thresholds"), CXR8_IOBB_THRESHOLDS.to_vec());
    assert_eq!(f("rsna_thresholds"), cambox::eval::metrics::RSNA_IOU_THRESHOLDS.to_vec());
    assert_eq!(meta["chestxray8_iou_threshold"].as_f64(), Some(CXR8_IOU_THRESHOLD));
}
