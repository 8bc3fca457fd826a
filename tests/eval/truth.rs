//! Studies with many classes, end to end on the demo photos: `run --truth --class-map`
//! localises each annotated image's true classes whatever the prediction, `eval` scores
//! every truth label against its model classes (per class, their mean, all pairs, GT-known
//! / Top-1 / Top-5 Loc), `--calibrate` writes a tau per class that `run` reads back.
//! Expected values are computed here from the run's own tables with an independent IoU.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::common::*;

/// Hand-drawn boxes (half-open) on three photos, one with a label no ImageNet class means.
const TRUTH: &str = "path,x1,y1,x2,y2,label\n\
    chelsea.png,30,0,385,300,cat\n\
    coffee.png,172,18,410,300,cup\n\
    camera.png,90,60,420,512,tripod\n\
    astronaut.png,100,20,450,512,person\n";

/// "cat" is the five domestic cats; "cup" is ImageNet's cup and coffee mug; "tripod" is
/// left to the by-name rule; "person" means nothing.
const CLASS_MAP: &str = "truth_label,model_class\ncat,281\ncat,282\ncat,283\ncat,284\ncat,Egyptian cat\n\
    cup,968\ncup,coffee mug\n";

fn config(dir: &Path, extra: &str) -> PathBuf {
    let r = root();
    let text = format!(
        "[input]\npaths = [{:?}]\n[model]\npath = {:?}\nlabels = {:?}\n\
         [preprocess]\nresize = \"shorter-side-then-center-crop\"\nresize_to = 256\nmean = [0.485, 0.456, 0.406]\n\
         std = [0.229, 0.224, 0.225]\n[output]\ntop_k = 5\nmaps = true\nprobabilities = true\n{extra}",
        r.join("data/samples/natural"),
        r.join("data/models/efficientnet-lite0.onnx"),
        r.join("data/models/imagenet-classes.txt"),
    );
    let p = dir.join(format!("run{}.toml", extra.len()));
    std::fs::write(&p, text).unwrap();
    p
}

fn rows_by(path: &Path, key: &str) -> HashMap<String, Vec<HashMap<String, String>>> {
    let mut m: HashMap<String, Vec<HashMap<String, String>>> = HashMap::new();
    for r in read_csv(path) {
        m.entry(r[key].clone()).or_default().push(r);
    }
    m
}

fn rect(r: &HashMap<String, String>) -> [f64; 4] {
    ["x1", "y1", "x2", "y2"].map(|k| r[k].parse().unwrap())
}

#[test]
fn truth_classes_are_localised_and_evaluated_per_label() {
    let tmp = tempfile::tempdir().unwrap();
    let (truth, map) = (tmp.path().join("truth.csv"), tmp.path().join("map.csv"));
    std::fs::write(&truth, TRUTH).unwrap();
    std::fs::write(&map, CLASS_MAP).unwrap();
    let out = tmp.path().join("run");
    let cfg = config(tmp.path(), "");
    let (t, m) = (truth.to_str().unwrap(), map.to_str().unwrap());
    let (code, _, err) = cambox(&[
        "run",
        "-q",
        "-c",
        cfg.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--truth",
        t,
        "--class-map",
        m,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("'person' (1 boxes)"), "unmapped labels are said: {err}");

    // The run's own probabilities decide which of a label's classes is localised.
    let images: HashMap<String, HashMap<String, String>> =
        read_csv(out.join("images.csv")).into_iter().map(|r| (r["path"].clone(), r)).collect();
    let probs: HashMap<String, HashMap<String, String>> =
        read_csv(out.join("probabilities.csv")).into_iter().map(|r| (r["path"].clone(), r)).collect();
    assert_eq!(probs.len(), 6);
    let p = |img: &str, class: &str| probs[img][class].parse::<f64>().unwrap();
    for (img, r) in &images {
        // probabilities.csv agrees with images.csv's top-1 score.
        assert_eq!(format!("{:.6}", p(img, &r["class_name"])), r["score"], "{img}");
    }
    let cats = ["tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"];
    let best_cat = cats.iter().copied().max_by(|a, b| p("chelsea.png", a).total_cmp(&p("chelsea.png", b))).unwrap();
    let best_cup =
        ["cup", "coffee mug"].into_iter().max_by(|a, b| p("coffee.png", a).total_cmp(&p("coffee.png", b))).unwrap();
    let boxes = rows_by(&out.join("boxes.csv"), "path");
    let classes_of = |img: &str| boxes[img].iter().map(|b| b["class_name"].clone()).collect::<Vec<_>>();
    assert!(classes_of("chelsea.png").contains(&best_cat.to_string()));
    assert!(classes_of("coffee.png").contains(&best_cup.to_string()), "{:?}", classes_of("coffee.png"));
    assert_ne!(images["coffee.png"]["class_name"], best_cup, "localised although not the prediction");
    assert!(classes_of("camera.png").contains(&"tripod".to_string()));
    assert_eq!(classes_of("astronaut.png").len(), 1, "only the top-1 class: its label means nothing");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(manifest["truth"]["unmapped"]["person"], 1);
    assert_eq!(manifest["truth"]["mapped"]["cup"], serde_json::json!([968, 504]));
    assert_eq!(manifest["model"]["activation"], "softmax");

    // eval, per label.
    let ev = tmp.path().join("eval");
    let (code, stdout, err) = cambox(&[
        "eval",
        "--run",
        out.to_str().unwrap(),
        "--truth",
        t,
        "--class-map",
        m,
        "--out",
        ev.to_str().unwrap(),
        "--calibrate",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("mean of 3 classes") && stdout.contains("Top-1 Loc"), "{stdout}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ev.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["protocol"]["mode"], "per-label");
    assert_eq!(s["unmapped_labels"]["person"], 1);
    let per_class = s["per_class"].as_object().unwrap();
    assert_eq!(per_class.keys().collect::<Vec<_>>(), vec!["cat", "cup", "tripod"]);
    let rows = rows_by(&ev.join("per_image.csv"), "label");
    assert_eq!(rows.values().map(Vec::len).sum::<usize>(), 12, "4 annotated images x 3 classes");

    // Each pair by hand: its class's boxes against its truth box.
    let truth_box = |img: &str| -> [f64; 4] {
        let line = TRUTH.lines().find(|l| l.starts_with(img)).unwrap();
        let v: Vec<f64> = line.split(',').skip(1).take(4).map(|x| x.parse().unwrap()).collect();
        [v[0], v[1], v[2], v[3]]
    };
    let best_iou = |img: &str, class: &str| -> Option<f64> {
        let b: Vec<f64> =
            boxes[img].iter().filter(|b| b["class_name"] == class).map(|b| iou(rect(b), truth_box(img))).collect();
        (!b.is_empty()).then(|| b.into_iter().fold(0.0, f64::max))
    };
    let top5 = |img: &str| -> Vec<usize> {
        images[img]["top_k"].split(';').map(|e| e.split(':').next().unwrap().parse().unwrap()).collect()
    };
    let name_to_index: HashMap<String, usize> =
        std::fs::read_to_string(root().join("data/models/imagenet-classes.txt"))
            .unwrap()
            .lines()
            .enumerate()
            .map(|(i, l)| (l.trim().to_string(), i))
            .collect();
    let mut want = Vec::new();
    for (label, img, classes) in [
        ("cat", "chelsea.png", cats.to_vec()),
        ("cup", "coffee.png", vec!["cup", "coffee mug"]),
        ("tripod", "camera.png", vec!["tripod"]),
    ] {
        let chosen = match label {
            "cat" => best_cat,
            "cup" => best_cup,
            _ => "tripod",
        };
        let gt = best_iou(img, chosen).unwrap_or(0.0);
        let top1 = images[img]["class_name"].as_str();
        let top1_loc = classes.contains(&top1) && best_iou(img, top1).is_some_and(|v| v >= 0.5);
        let top5_loc = top5(img).into_iter().any(|k| {
            let n = name_to_index.iter().find(|(_, &i)| i == k).unwrap().0.as_str();
            classes.contains(&n) && best_iou(img, n).is_some_and(|v| v >= 0.5)
        });
        let row = &rows[label].iter().find(|r| r["path"] == img).unwrap();
        assert_eq!(row["class"], chosen, "{label}");
        assert!((row["best_iou"].parse::<f64>().unwrap() - gt).abs() < 1e-12, "{label}: {} vs {gt}", row["best_iou"]);
        assert_eq!(row["top1_loc"], top1_loc.to_string(), "{label}");
        assert_eq!(row["top5_loc"], top5_loc.to_string(), "{label}");
        let c = &per_class[label];
        assert_eq!(c["gt_known_loc"].as_f64(), Some(if gt >= 0.5 { 1.0 } else { 0.0 }), "{label}");
        assert_eq!(c["top1_loc"].as_f64(), Some(top1_loc as u8 as f64), "{label}");
        want.push((gt >= 0.5, top1_loc, top5_loc));
    }
    let rate = |f: &dyn Fn(&(bool, bool, bool)) -> bool| want.iter().filter(|w| f(w)).count() as f64 / 3.0;
    assert_eq!(s["gt_known_loc"].as_f64(), Some(rate(&|w| w.0)));
    assert_eq!(s["top1_loc"].as_f64(), Some(rate(&|w| w.1)));
    assert_eq!(s["top5_loc"].as_f64(), Some(rate(&|w| w.2)));
    assert_eq!(s["mean_over_classes"]["gt_known_loc"].as_f64(), Some(rate(&|w| w.0)), "one pair per class");

    // --calibrate: a tau per model class of each label, which run reads back.
    let cal: toml::Value = toml::from_str(&std::fs::read_to_string(ev.join("calibrated.toml")).unwrap()).unwrap();
    let taus = cal["localise"]["taus"].as_table().unwrap();
    for n in cats.iter().chain(&["cup", "coffee mug", "tripod"]) {
        assert!(taus.contains_key(*n), "{n}: {taus:?}");
    }
    let cup_tau = taus["cup"].as_float().unwrap();
    let cfg2 = config(tmp.path(), &std::fs::read_to_string(ev.join("calibrated.toml")).unwrap());
    let out2 = tmp.path().join("run2");
    let (code, _, err) = cambox(&[
        "run",
        "-q",
        "-c",
        cfg2.to_str().unwrap(),
        "-o",
        out2.to_str().unwrap(),
        "--truth",
        t,
        "--class-map",
        m,
    ]);
    assert_eq!(code, 0, "{err}");
    let cup_rows: Vec<_> = read_csv(out2.join("boxes.csv")).into_iter().filter(|b| b["class_index"] == "968").collect();
    assert!(!cup_rows.is_empty());
    for b in cup_rows {
        assert_eq!(b["threshold_rule"], format!("fraction:{}", cup_tau as f32));
    }
}

#[test]
fn a_class_map_that_names_no_class_is_refused_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (truth, map) = (tmp.path().join("truth.csv"), tmp.path().join("map.csv"));
    std::fs::write(&truth, TRUTH).unwrap();
    std::fs::write(&map, "truth_label,model_class\ncat,281\ncup,teacup\n").unwrap();
    let cfg = config(tmp.path(), "");
    let (code, _, err) = cambox(&[
        "run",
        "-q",
        "-c",
        cfg.to_str().unwrap(),
        "-o",
        tmp.path().join("o").to_str().unwrap(),
        "--truth",
        truth.to_str().unwrap(),
        "--class-map",
        map.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("map.csv") && err.contains("line 3") && err.contains("teacup"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
