//! Bad usage exits 2 from every subcommand, whether clap or the library finds it, with
//! one line that names the flag; nothing is written.

use crate::common::*;

/// Runs `args`, expects exit 2 and a message containing `says`, and that `out` (when
/// given) was not created.
fn refused_as_usage(args: &[&str], says: &str, out: Option<&std::path::Path>) {
    let (code, _, err) = cambox(args);
    assert_eq!(code, 2, "{args:?}: exit {code}, stderr: {err}");
    assert!(err.contains(says), "{args:?}: stderr does not say {says:?}: {err}");
    if let Some(out) = out {
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
    }
}

#[test]
fn run_usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    refused_as_usage(&["run", "--config", "configs/demo.toml", "--out", o, "--bogus"], "--bogus", Some(&out));
    refused_as_usage(&["run", "--config", "configs/demo.toml", "--out", o, "--shard", "3/2"], "--shard", Some(&out));
    // Found by the library when it resolves the plan, not by clap.
    refused_as_usage(
        &["run", "--config", "configs/demo.toml", "--out", o, "--class-map", "classes.csv"],
        "--class-map needs annotations",
        Some(&out),
    );
}

#[test]
fn eval_usage_errors_exit_2() {
    refused_as_usage(&["eval", "--run", "nowhere", "--bogus"], "--bogus", None);
    // Found by the library before it reads anything.
    refused_as_usage(&["eval", "--run", "nowhere", "--truth", "nowhere", "--min-score", "2"], "--min-score", None);
}

#[test]
fn inspect_usage_errors_exit_2() {
    let model = "data/models/phantom-cnn.onnx";
    refused_as_usage(&["inspect", model, "--bogus"], "--bogus", None);
    refused_as_usage(&["inspect", model, "--kernels", "bogus"], "unknown kernel 'bogus'", None);
    refused_as_usage(&["inspect", model, "--layout", "bogus"], "--layout", None);
}

#[test]
fn merge_usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("merged");
    let o = out.to_str().unwrap();
    refused_as_usage(&["merge", "--out", o], "<SHARDS>", Some(&out));
    refused_as_usage(&["merge", "--out", o, "--bogus", "a"], "--bogus", Some(&out));
}

#[test]
fn faithfulness_and_sanity_usage_errors_exit_2() {
    refused_as_usage(&["faithfulness", "--run", "nowhere"], "--out", None);
    refused_as_usage(&["faithfulness", "--run", "r", "--out", "o", "--fill", "grey"], "--fill", None);
    refused_as_usage(&["faithfulness", "--run", "r", "--out", "o", "--steps", "0"], "--steps must be at least 1", None);
    refused_as_usage(&["sanity", "--out", "o"], "--config", None);
    refused_as_usage(&["sanity", "-c", "configs/demo.toml", "-o", "o", "--layers", "x"], "--layers", None);
}
