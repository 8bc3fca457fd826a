//! `cambox run` on a tiny fixture model, then `cambox eval` on annotations written for
//! it: the files exist, and the numbers agree with a computation done here by hand.

use std::collections::HashMap;
use std::path::Path;

use crate::common::*;

/// Independent IoU of half-open integer boxes (not cambox's).
fn iou(a: [i64; 4], b: [i64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0 {
        inter as f64 / union as f64
    } else {
        0.0
    }
}

fn write_images(dir: &Path) {
    for (i, name) in ["a.png", "b.png", "c.png", "neg.png"].iter().enumerate() {
        let img = image::RgbImage::from_fn(32, 32, |x, y| {
            let v = ((x * 7 + y * (3 + i as u32) * 5) % 256) as u8;
            image::Rgb([v, v.wrapping_mul(3), 255 - v])
        });
        img.save(dir.join(name)).unwrap();
    }
}

fn run_fixture(tmp: &Path) -> std::path::PathBuf {
    let images = tmp.join("images");
    std::fs::create_dir_all(&images).unwrap();
    write_images(&images);
    let model = root().join("tests/fixtures/models/gap_gemm_transb1.onnx");
    let cfg = tmp.join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            "[input]\npaths = [{:?}]\n[model]\npath = {:?}\n[output]\ndir = {:?}\nmaps = true\noverlays = true\n\
             [localise]\nclasses = [2]\npreset = \"wsol\"\ntau = 0.2\n",
            images.to_str().unwrap(),
            model.to_str().unwrap(),
            tmp.join("run").to_str().unwrap()
        ),
    )
    .unwrap();
    let (code, _, err) = cambox(&["run", "--config", cfg.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{err}");
    tmp.join("run")
}

fn boxes_by_image(run: &Path) -> HashMap<String, Vec<[i64; 4]>> {
    let mut m: HashMap<String, Vec<[i64; 4]>> = HashMap::new();
    for r in read_csv(run.join("boxes.csv")) {
        assert_eq!(r["class_index"], "2");
        let v = |k: &str| r[k].parse::<i64>().unwrap();
        m.entry(r["path"].clone()).or_default().push([v("x1"), v("y1"), v("x2"), v("y2")]);
    }
    m
}

#[test]
fn run_then_eval_agrees_with_hand_computation() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_fixture(tmp.path());
    let boxes = boxes_by_image(&run);
    let a = boxes["a.png"][0];
    // a: the truth is a's first predicted box (IoU 1); b: a fixed box; c: no prediction
    // can reach a 1-pixel truth in the far corner unless it covers it; neg: a negative.
    let truth_b = [4, 4, 20, 12];
    let csv = format!(
        "path,x1,y1,x2,y2,label\na.png,{},{},{},{},lesion\nb.png,{},{},{},{},lesion\nc.png,31,31,32,32,lesion\n\
         neg.png,,,,,\nghost.png,1,1,5,5,lesion\nbad.png,1,x,5,5,lesion\n",
        a[0], a[1], a[2], a[3], truth_b[0], truth_b[1], truth_b[2], truth_b[3]
    );
    let truth = tmp.path().join("truth.csv");
    std::fs::write(&truth, csv).unwrap();
    let out = tmp.path().join("eval");
    let (code, stdout, err) = cambox(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--truth",
        truth.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--calibrate",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("CorLoc") && stdout.contains("MaxBoxAccV2"), "{stdout}");
    for f in ["per_image.csv", "summary.json", "report.html", "unmatched.csv", "calibrated.toml"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    // Per image: best IoU by hand.
    let rows: HashMap<String, HashMap<String, String>> =
        read_csv(out.join("per_image.csv")).into_iter().map(|r| (r["path"].clone(), r)).collect();
    assert_eq!(rows.len(), 4, "a, b, c and the negative");
    let best = |img: &str, t: [i64; 4]| boxes.get(img).map(|v| v.iter().map(|p| iou(*p, t)).fold(0.0, f64::max));
    let mut hits = 0;
    for (img, t) in [("a.png", a), ("b.png", truth_b), ("c.png", [31, 31, 32, 32])] {
        let want = best(img, t);
        let got = rows[img]["best_iou"].parse::<f64>().ok();
        match (want, got) {
            (Some(w), Some(g)) => assert!((w - g).abs() < 1e-12, "{img}: {g} vs {w}"),
            (None, None) => {}
            other => panic!("{img}: {other:?}"),
        }
        hits += want.is_some_and(|w| w >= 0.5) as usize;
        assert_eq!(rows[img]["truth"], "positive");
    }
    assert_eq!(rows["a.png"]["best_iou"], "1");
    assert_eq!(rows["neg.png"]["truth"], "negative");

    // Summary: CorLoc by hand, counts, unmatched, issues, the protocol stated.
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["corloc"].as_f64().unwrap(), hits as f64 / 3.0);
    assert_eq!(s["counts"]["with_truth"], 3);
    assert_eq!(s["counts"]["negatives"], 1);
    assert_eq!(s["unmatched"]["annotated_not_processed"]["examples"][0], "ghost.png");
    assert_eq!(s["annotation_issues"]["unreadable_row"]["count"], 1);
    assert_eq!(s["protocol"]["convention"], "half-open");
    assert_eq!(s["protocol"]["class_index"], 2);

    // The run used wsol at tau 0.2 with all components: the sweep, which recomputes the
    // boxes from the saved maps, must give the run's own BoxAcc at tau 0.2.
    let sw = &s["sweep"];
    let i = sw["taus"].as_array().unwrap().iter().position(|t| t.as_f64() == Some(0.2)).unwrap();
    for (k, d) in ["0.3", "0.5", "0.7"].iter().enumerate() {
        let _ = d;
        assert_eq!(sw["box_acc_v2"][i][k].as_f64(), s["box_acc"][k].as_f64(), "delta index {k}");
    }
    // The calibrated snippet is a valid [localise] section with that tau.
    let cal: toml::Value = toml::from_str(&std::fs::read_to_string(out.join("calibrated.toml")).unwrap()).unwrap();
    assert_eq!(cal["localise"]["preset"].as_str(), Some("wsol"));
    let tau = cal["localise"]["tau"].as_float().unwrap();
    assert_eq!(Some(tau), sw["calibrated_tau"].as_f64());

    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("data:image/jpeg;base64,"));
    // No external resources: the only URL is the SVG namespace (maud quotes with ").
    assert_eq!(html.matches("http://").count(), html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count());
    assert!(!html.contains("https://") && !html.contains("src=\"http"), "no external resources");
}

#[test]
fn whole_image_baseline_by_hand_and_bad_options() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_fixture(tmp.path());
    let truth = tmp.path().join("truth.csv");
    // A 16 x 8 truth box in a 32 x 32 image: the whole-image box has IoU 128 / 1024.
    std::fs::write(&truth, "path,x1,y1,x2,y2\na.png,0,0,16,8\nb.png,8,8,24,24\n").unwrap();
    let out = tmp.path().join("base");
    let args =
        ["eval", "--run", run.to_str().unwrap(), "--truth", truth.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let (code, stdout, err) = cambox(&[&args[..], &["--baseline", "whole"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("BASELINE 'whole'"), "{stdout}");
    let rows: HashMap<String, HashMap<String, String>> =
        read_csv(out.join("per_image.csv")).into_iter().map(|r| (r["path"].clone(), r)).collect();
    assert_eq!(rows["a.png"]["best_iou"], "0.125");
    assert_eq!(rows["b.png"]["best_iou"], "0.25");
    assert_eq!(rows["a.png"]["best_iobb"], "0.125");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["max_box_acc"]["v2"].as_f64(), Some(0.0));
    assert_eq!(s["box_acc"][0].as_f64(), Some(0.0));
    // Processed images without annotations are listed, not evaluated.
    assert_eq!(s["unmatched"]["processed_not_annotated"]["count"], 2);

    // RSNA labels (matched by stem), the other processed images taken as negatives, every
    // box a detection: a's whole-image box has IoBB 128/1024 = 0.125 (a hit at T 0.1 only)
    // and is a false positive at T 0.5 like the three boxes on negatives: 4 FP / 4 images.
    let rsna = tmp.path().join("labels.csv");
    std::fs::write(&rsna, "patientId,x,y,width,height,Target\na,0,0,16,8,1\n").unwrap();
    let out2 = tmp.path().join("rsna");
    let (code, _, err) = cambox(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--truth",
        rsna.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
        "--baseline",
        "whole",
        "--unannotated-negative",
        "--min-score",
        "0",
    ]);
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out2.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["format"], "rsna");
    assert_eq!((s["counts"]["with_truth"].as_u64(), s["counts"]["negatives"].as_u64()), (Some(1), Some(3)));
    assert_eq!(s["rsna_score"].as_f64(), Some(0.0));
    assert_eq!(s["counts"]["scored_rsna"], 4);
    let cx = |i: usize, k: &str| s["chestxray8"][i][k].as_f64();
    assert_eq!((cx(0, "accuracy_iobb"), cx(1, "accuracy_iobb")), (Some(1.0), Some(0.0)));
    assert_eq!((cx(0, "avg_fp"), cx(2, "avg_fp")), (Some(0.75), Some(1.0)));

    // Bad usage exits with 2.
    let (code, _, err) = cambox(&[&args[..], &["--min-score", "2"]].concat());
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = cambox(&[&args[..], &["--baseline", "centre", "--calibrate"]].concat());
    assert_eq!(code, 2, "{err}");
}
