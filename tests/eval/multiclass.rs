//! cambox's per-label evaluation against the independent numpy reference
//! (`scripts/reference/metrics_reference.py --multiclass`): the cases of
//! `tests/fixtures/metrics/cases_multiclass.json` (a softmax set and a sigmoid set) go through
//! `eval::score` and `eval::metrics_of`, and every pair, every label's metrics, their mean
//! over labels, the all-pairs BoxAcc and GT-known / Top-1 / Top-5 Loc must equal
//! `expected_multiclass.json` within 1e-12, under both box conventions.

use std::collections::HashMap;

use crate::common::*;
use cambox::eval::metrics::Convention;
use cambox::eval::run_files::{RunBox, RunImage};
use cambox::eval::{metrics_of, score, EvalClass, ImageResult, Item, MeanMetrics, Metrics, ScoreParams};
use cambox::stage::maps::Activation;
use cambox::truth::annotations::TruthBox;
use cambox::truth::Rect;
use serde_json::Value;

fn load(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("tests/fixtures/metrics").join(name)).unwrap()).unwrap()
}

fn close(a: Option<f64>, b: &Value, what: &str) {
    match (a, b.as_f64()) {
        (Some(x), Some(y)) => assert!((x - y).abs() <= 1e-12, "{what}: {x} vs {y}"),
        (None, None) => {}
        other => panic!("{what}: {other:?} vs {b}"),
    }
}

fn rect(v: &Value) -> Rect {
    let n = |i: usize| v[i].as_f64().unwrap();
    Rect::new(n(0), n(1), n(2), n(3))
}

/// The reference's order of classes: probability descending, ties by lower index.
fn ranked(probs: &[f64]) -> Vec<usize> {
    let mut k: Vec<usize> = (0..probs.len()).collect();
    k.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    k
}

fn check_metrics(m: &Metrics, e: &Value, what: &str) {
    for (i, d) in ["0.3", "0.5", "0.7"].iter().enumerate() {
        close(m.box_acc[i], &e["box_acc"][d], &format!("{what} box_acc {d}"));
    }
    close(m.corloc, &e["corloc"], &format!("{what} corloc"));
    close(m.box_acc_mean, &e["box_acc_mean"], &format!("{what} box_acc_mean"));
    close(m.rsna_score, &e["rsna_score"], &format!("{what} rsna"));
    for r in &m.chestxray8 {
        let t = &e["chestxray8"][format!("{}", r.t_iobb)];
        close(r.accuracy_iobb, &t["accuracy_iobb"], &format!("{what} cxr8 {} acc", r.t_iobb));
        close(r.accuracy_or_iou, &t["accuracy_iobb_or_iou_0.5"], &format!("{what} cxr8 {} acc or", r.t_iobb));
        close(r.avg_fp, &t["avg_fp"], &format!("{what} cxr8 {} fp", r.t_iobb));
        close(r.avg_fp_or_iou, &t["avg_fp_iobb_or_iou_0.5"], &format!("{what} cxr8 {} fp or", r.t_iobb));
    }
}

fn check_pair(p: &ImageResult, e: &Value, what: &str) {
    assert_eq!(p.class.map(|k| k as u64), e["k_star"].as_u64(), "{what} k*");
    if p.class.is_some() {
        close(p.probability, &e["prob"], &format!("{what} prob"));
    }
    assert_eq!(p.detected, e["detection"].as_bool().unwrap(), "{what} detection");
    assert_eq!(p.truth.len() as u64, e["truth"].as_u64().unwrap(), "{what} truth");
    assert_eq!(p.preds.len() as u64, e["pred"].as_u64().unwrap(), "{what} pred");
    close(p.best_iou, &e["best_iou"], &format!("{what} best_iou"));
    close(p.best_iobb, &e["best_iobb"], &format!("{what} best_iobb"));
    close(p.rsna, &e["rsna"], &format!("{what} rsna"));
    let hits = p.hits.map(|h| serde_json::json!({"0.3": h[0], "0.5": h[1], "0.7": h[2]}));
    assert_eq!(hits.unwrap_or(Value::Null), e["hits"], "{what} hits");
    assert_eq!(p.top1_loc.map(Value::Bool).unwrap_or(Value::Null), e["top1_hit"], "{what} top1");
    assert_eq!(p.top5_loc.map(Value::Bool).unwrap_or(Value::Null), e["top5_hit"], "{what} top5");
}

#[test]
fn per_label_evaluation_matches_the_numpy_reference() {
    let cases = load("cases_multiclass.json");
    let expected = load("expected_multiclass.json");
    let mut checked = 0;
    for (set, case) in cases["sets"].as_object().unwrap() {
        let exp = &expected["sets"][set];
        let activation = match case["activation"].as_str().unwrap() {
            "softmax" => Activation::Softmax,
            _ => Activation::Sigmoid,
        };
        // The run, as its tables would hold it.
        let images: Vec<RunImage> = case["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|im| {
                let probs: Vec<f64> = im["probs"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect();
                let order = ranked(&probs);
                RunImage {
                    rel: im["id"].as_str().unwrap().into(),
                    ok: true,
                    error: String::new(),
                    width: im["width"].as_u64().map(|v| v as u32),
                    height: im["height"].as_u64().map(|v| v as u32),
                    top1: Some(order[0]),
                    top_k: order.iter().take(5).map(|&k| (k, probs[k])).collect(),
                }
            })
            .collect();
        let mut boxes: HashMap<String, Vec<RunBox>> = HashMap::new();
        let mut items = Vec::new();
        for (im, run) in case["images"].as_array().unwrap().iter().zip(&images) {
            let probs: Vec<f64> = im["probs"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect();
            for (k, list) in im["pred"].as_object().unwrap() {
                let k: usize = k.parse().unwrap();
                for b in list.as_array().unwrap() {
                    boxes.entry(run.rel.clone()).or_default().push(RunBox {
                        class: k,
                        score: probs[k],
                        box_score: b[4].as_f64().unwrap(),
                        rect: rect(b),
                    });
                }
            }
            let truth = im["truth"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| TruthBox { rect: rect(t), label: t[4].as_str().map(String::from) })
                .collect();
            // The reference compares boxes as given; cambox clips predicted boxes to the image
            // under wsol-inclusive, as wsolevaluation does (README): an image too large to clip
            // anything compares the same boxes.
            let (w, h) = (1 << 30, 1 << 30);
            items.push(Item { img: run, truth, w, h, probs: probs.iter().copied().enumerate().collect() });
        }
        let labels: Vec<String> =
            exp["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect();
        let classes: Vec<EvalClass> = labels
            .iter()
            .map(|l| EvalClass {
                name: l.clone(),
                truth_label: Some(l.clone()),
                classes: case["class_map"][l]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k.as_u64().unwrap() as usize)
                    .collect(),
            })
            .collect();
        for (conv_name, convention) in
            [("half_open", Convention::HalfOpen), ("wsol_inclusive", Convention::WsolInclusive)]
        {
            let e = &exp["conventions"][conv_name];
            let params =
                ScoreParams { min_score: case["min_score"].as_f64().unwrap(), convention, activation, baseline: None };
            let pairs = score(&items, &boxes, &classes, &vec![None; classes.len()], &params);
            assert_eq!(pairs.len(), items.len() * classes.len());
            for p in &pairs {
                check_pair(p, &e["per_image"][&p.rel][&p.label], &format!("{set}/{conv_name} {} {}", p.rel, p.label));
                checked += 1;
            }
            let per_class: Vec<Metrics> = (0..classes.len())
                .map(|c| {
                    let of: Vec<&ImageResult> = pairs.iter().filter(|p| p.class_index == c).collect();
                    let m = metrics_of(&of, &params);
                    check_metrics(&m, &e["per_label"][&labels[c]], &format!("{set}/{conv_name} {}", labels[c]));
                    m
                })
                .collect();
            let mean = MeanMetrics::of(per_class.iter());
            let em = &e["mean_over_classes"];
            assert_eq!(mean.classes as u64, em["labels"].as_u64().unwrap());
            for (i, d) in ["0.3", "0.5", "0.7"].iter().enumerate() {
                close(mean.box_acc[i], &em["box_acc"][d], &format!("{set}/{conv_name} mean box_acc {d}"));
            }
            close(mean.corloc, &em["corloc"], "mean corloc");
            close(mean.box_acc_mean, &em["box_acc_mean"], "mean box_acc_mean");
            close(mean.rsna_score, &em["rsna_score"], "mean rsna");
            for r in &mean.chestxray8 {
                let t = &em["chestxray8"][format!("{}", r.t_iobb)];
                close(r.accuracy_iobb, &t["accuracy_iobb"], "mean cxr8 acc");
                close(r.avg_fp, &t["avg_fp"], "mean cxr8 fp");
                close(r.accuracy_or_iou, &t["accuracy_iobb_or_iou_0.5"], "mean cxr8 acc or");
                close(r.avg_fp_or_iou, &t["avg_fp_iobb_or_iou_0.5"], "mean cxr8 fp or");
            }
            let all: Vec<&ImageResult> = pairs.iter().collect();
            let m = metrics_of(&all, &params);
            let micro = &e["micro"];
            for (i, d) in ["0.3", "0.5", "0.7"].iter().enumerate() {
                close(m.box_acc[i], &micro["box_acc"][d], &format!("{set}/{conv_name} micro box_acc {d}"));
            }
            close(m.box_acc_mean, &micro["box_acc_mean"], "micro box_acc_mean");
            assert_eq!(all.iter().filter(|p| !p.truth.is_empty()).count() as u64, micro["pairs"].as_u64().unwrap());
            close(m.gt_known_loc, &e["gt_known_loc"], &format!("{set}/{conv_name} gt_known_loc"));
            close(m.top1_loc, &e["top1_loc"], &format!("{set}/{conv_name} top1_loc"));
            close(m.top5_loc, &e["top5_loc"], &format!("{set}/{conv_name} top5_loc"));
        }
    }
    assert!(checked > 400, "{checked} pairs checked");
}
