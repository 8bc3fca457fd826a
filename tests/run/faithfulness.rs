//! `cambox faithfulness` and `cambox sanity` on a few lesion phantoms: the files and their
//! rows, reproducibility, and usage errors. (The figures themselves are checked against a
//! numpy port in `tests/models/faithfulness.rs`.)

use std::path::Path;

use serde_json::Value;

use crate::common::*;

/// A run of the phantom CNN on `n` phantoms, maps saved, into `tmp/run`.
fn phantom_run(tmp: &Path, n: usize) -> std::path::PathBuf {
    let input = tmp.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..n {
        let f = format!("phantom_{i:04}.png");
        std::fs::copy(root().join("data/phantoms/images").join(&f), input.join(&f)).unwrap();
    }
    let cfg = tmp.join("p.toml");
    let text = std::fs::read_to_string(root().join("configs/phantoms.toml")).unwrap();
    std::fs::write(&cfg, text.replace("\"../", &format!("\"{}/", root().display()))).unwrap();
    let run = tmp.join("run");
    let (code, _, err) =
        cambox(&["run", "-q", "-c", cfg.to_str().unwrap(), "-o", run.to_str().unwrap(), input.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    run
}

#[test]
fn faithfulness_writes_a_row_per_image_class_and_map_reproducibly() {
    let tmp = tempfile::tempdir().unwrap();
    let run = phantom_run(tmp.path(), 4);
    let r = run.to_str().unwrap();
    let go = |out: &str| {
        let o = tmp.path().join(out);
        let (code, _, err) = cambox(&[
            "faithfulness",
            "--run",
            r,
            "--out",
            o.to_str().unwrap(),
            "-q",
            "--steps",
            "8",
            "--bootstrap",
            "100",
            "--baseline-map",
            "random",
            "--baseline-map",
            "centre",
        ]);
        assert_eq!(code, 0, "{err}");
        o
    };
    let a = go("a");
    let rows = read_csv(a.join("faithfulness.csv"));
    assert_eq!(rows.len(), 4 * 3, "4 images x (cam, random, centre)");
    assert!(rows.iter().any(|r| r["map"] == "cam") && rows.iter().any(|r| r["map"] == "centre"));
    for r in &rows {
        for k in ["deletion_auc", "insertion_auc", "avg_drop"] {
            let v: f64 = r[k].parse().unwrap();
            assert!((0.0..=1.0).contains(&v), "{k} = {v}");
        }
    }
    let json = |d: &Path| -> Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("faithfulness.json")).unwrap()).unwrap()
    };
    let ja = json(&a);
    assert_eq!(ja["maps"]["cam"]["pairs"], 4);
    assert_eq!(ja["maps"]["cam"]["deletion_curve"]["mean"].as_array().unwrap().len(), 9, "8 steps + the start");
    assert!(std::fs::read_to_string(a.join("faithfulness.html")).unwrap().contains("<svg"));
    // Same seed, same figures.
    assert_eq!(ja["maps"], json(&go("b"))["maps"]);
    // Resumed: an image's line removed from the journal is measured again, the others are
    // read back, and the figures are the same.
    let journal = a.join("faithfulness.rows.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let kept: Vec<&str> = text.lines().take(3).collect();
    std::fs::write(&journal, format!("{}\n{{\"cut", kept.join("\n"))).unwrap();
    assert_eq!(json(&go("a"))["maps"], ja["maps"]);
    let lines = std::fs::read_to_string(&journal).unwrap();
    assert_eq!(lines.lines().count(), 4, "3 kept, the cut line dropped, 1 measured again");
    assert!(lines.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()));
    // Other options into the same folder are refused.
    let (code, _, err) = cambox(&["faithfulness", "--run", r, "--out", a.to_str().unwrap(), "-q", "--steps", "9"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("other options"), "{err}");
}

#[test]
fn faithfulness_needs_the_maps_and_sanity_randomises_top_down() {
    let tmp = tempfile::tempdir().unwrap();
    let run = phantom_run(tmp.path(), 3);
    std::fs::rename(run.join("maps"), tmp.path().join("maps-aside")).unwrap();
    let (code, _, err) = cambox(&["faithfulness", "--run", run.to_str().unwrap(), "--out", "x", "-q"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no maps/"), "{err}");
    let out = tmp.path().join("sanity");
    let (code, stdout, err) = cambox(&[
        "sanity",
        "-c",
        tmp.path().join("p.toml").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--layers",
        "2",
        tmp.path().join("in").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let rows = read_csv(out.join("sanity.csv"));
    let stages: Vec<&str> = rows.iter().map(|r| r["stage"].as_str()).collect();
    assert_eq!(stages, ["original", "random_logit", "top-1", "top-2"], "{stdout}");
    assert_eq!(rows[0]["spearman"], "1.000000");
    assert!(rows[2]["spearman"].parse::<f64>().unwrap() < 0.99, "randomising the head changes the map");
    assert!(out.join("models/top-2.onnx").is_file());
}
