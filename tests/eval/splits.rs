//! Thresholds chosen on one split and reported on another, and the bootstrap intervals,
//! on the lesion phantoms (their truth masks included).
//!
//! The check of `--taus-from` is independent of eval's own re-cutting: the same taus are
//! given to `cambox run` as a `[localise]` section, and eval of that run's boxes must find
//! the same figures on the test split.

use std::path::Path;

use serde_json::Value;

use crate::common::*;

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// The phantoms config with absolute paths and another `[localise]` preset line.
fn config(tmp: &Path, name: &str, preset: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(root().join("configs/phantoms.toml")).unwrap();
    let text = text.replace("\"../", &format!("\"{}/", root().display())).replace("preset = \"cam-paper\"", preset);
    assert!(text.contains(preset));
    let p = tmp.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn ok(args: &[&str]) {
    let (code, _, err) = cambox(args);
    assert_eq!(code, 0, "{args:?}: {err}");
}

#[test]
fn taus_from_another_split_equal_a_run_with_those_taus() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let run = t.join("run");
    let cfg = config(t, "p.toml", "preset = \"cam-paper\"");
    ok(&["run", "--config", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--quiet"]);
    let names: Vec<String> = (0..120).map(|i| format!("phantom_{i:04}.png")).collect();
    std::fs::write(t.join("val.txt"), names[..60].join("\n")).unwrap();
    std::fs::write(t.join("test.txt"), format!("# the test split\n{}\n", names[60..].join("\n"))).unwrap();
    let truth = root().join("data/phantoms/labels.csv");
    let (truth, r) = (truth.to_str().unwrap(), run.to_str().unwrap());
    let val = t.join("val");
    ok(&[
        "eval",
        "--run",
        r,
        "--truth",
        truth,
        "--split",
        t.join("val.txt").to_str().unwrap(),
        "--calibrate",
        "--out",
        val.to_str().unwrap(),
        "--bootstrap",
        "0",
    ]);
    let calibrated = val.join("calibrated.toml");
    let test = t.join("test");
    let test_file = t.join("test.txt");
    let test_args = ["--split", test_file.to_str().unwrap()];
    let (code, out, err) = cambox(&[
        "eval",
        "--run",
        r,
        "--truth",
        truth,
        test_args[0],
        test_args[1],
        "--taus-from",
        calibrated.to_str().unwrap(),
        "--out",
        test.to_str().unwrap(),
        "--bootstrap",
        "0",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("taus: boxes cut at the taus of"), "{out}");
    let s = summary(&test);
    assert_eq!(s["split"]["listed"], 60);
    assert_eq!(s["split"]["left_out"], 60);
    assert_eq!(s["counts"]["evaluated_images"], 60);
    assert!(s["protocol"]["taus"].as_str().unwrap().contains("calibrated.toml"));

    // The same taus through `cambox run`.
    let tau_line = std::fs::read_to_string(&calibrated).unwrap();
    let tau = tau_line.lines().find(|l| l.starts_with("tau = ")).unwrap().to_string();
    let cfg2 = config(t, "p2.toml", &format!("preset = \"wsol\"\n{tau}"));
    let run2 = t.join("run2");
    ok(&["run", "--config", cfg2.to_str().unwrap(), "--out", run2.to_str().unwrap(), "--quiet"]);
    let test2 = t.join("test2");
    ok(&[
        "eval",
        "--run",
        run2.to_str().unwrap(),
        "--truth",
        truth,
        test_args[0],
        test_args[1],
        "--out",
        test2.to_str().unwrap(),
        "--bootstrap",
        "0",
    ]);
    let s2 = summary(&test2);
    for k in ["gt_known_loc", "top1_loc", "mean_best_iou", "rsna_score", "box_acc"] {
        assert_eq!(s[k], s2[k], "{k}: --taus-from and a run with those taus differ");
    }
    assert!(s2["protocol"]["taus"].as_str().unwrap().starts_with("tau chosen on this set"));
}

#[test]
fn intervals_are_reproducible_and_shrink_as_the_set_grows() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let run = t.join("run");
    let cfg = config(t, "p.toml", "preset = \"cam-paper\"");
    ok(&["run", "--config", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--quiet"]);
    let names: Vec<String> = (0..30).map(|i| format!("phantom_{i:04}.png")).collect();
    std::fs::write(t.join("small.txt"), names.join("\n")).unwrap();
    let truth = root().join("data/phantoms/labels.csv");
    let masks = root().join("data/phantoms/masks");
    let eval = |out: &str, extra: &[&str]| {
        let mut a = vec!["eval", "--run", run.to_str().unwrap(), "--truth", truth.to_str().unwrap()];
        a.extend(["--truth-masks", masks.to_str().unwrap()]);
        let o = t.join(out);
        a.extend(["--out", o.to_str().unwrap()]);
        a.extend(extra);
        ok(&a);
        summary(&o)
    };
    let a = eval("a", &[]);
    let b = eval("b", &[]);
    let c = eval("c", &["--bootstrap-seed", "7"]);
    let small = eval("small", &["--split", t.join("small.txt").to_str().unwrap()]);
    assert_eq!(a["ci95"], b["ci95"], "same seed, same intervals");
    assert_ne!(a["ci95"]["all"], c["ci95"]["all"], "another seed, other intervals");
    let width = |s: &Value, k: &str| {
        let i = &s["ci95"]["all"][k];
        i[1].as_f64().unwrap() - i[0].as_f64().unwrap()
    };
    for k in ["gt_known_loc", "energy_pointing_game", "pxap", "max_box_acc_v2"] {
        let (lo, hi) = (&a["ci95"]["all"][k][0], &a["ci95"]["all"][k][1]);
        let v = a[k].as_f64().or_else(|| a["max_box_acc"]["v2"].as_f64()).unwrap();
        assert!(lo.as_f64().unwrap() <= v && v <= hi.as_f64().unwrap(), "{k}: {v} outside [{lo}, {hi}]");
        assert!(width(&a, k) < width(&small, k), "{k}: 120 images {} vs 30 images {}", width(&a, k), width(&small, k));
    }
    assert_eq!(a["truth_masks"]["pairs_with_mask"], 120);
    // The per-image columns agree with the summary.
    let rows = read_csv(t.join("a/per_image.csv"));
    let hits: Vec<f64> = rows
        .iter()
        .filter(|r| !r["pointing_hit"].is_empty())
        .map(|r| (r["pointing_hit"] == "true") as u8 as f64)
        .collect();
    assert_eq!(hits.len(), a["counts"]["with_truth"].as_u64().unwrap() as usize);
    let rate = hits.iter().sum::<f64>() / hits.len() as f64;
    assert!((rate - a["pointing_game"].as_f64().unwrap()).abs() < 1e-12);
}
