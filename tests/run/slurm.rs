//! Cluster runs: the Slurm array script's logic in a fake array environment (always), the
//! whole array under a real one-node Slurm (`scripts/slurm/local-cluster.sh test`, when
//! `CAMBOX_SLURM=1`, as `.ci/run` sets it: it installs Debian's slurm-wlm and needs root),
//! and the two things the cluster test found in cambox itself: a shard folder is not
//! resumed as another shard, and a SIGTERM while the model loads ends the run as
//! interrupted (130), not killed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn script(name: &str) -> std::path::PathBuf {
    root().join("scripts/slurm").join(name)
}

#[test]
fn the_array_script_takes_the_shard_count_from_the_study() {
    let o = Command::new("bash")
        .arg(script("sbatch_logic_test.sh"))
        .arg(env!("CARGO_BIN_EXE_cambox"))
        .current_dir(root())
        .output()
        .unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "sbatch_logic_test.sh failed:\n{out}\n{err}");
}

#[test]
fn the_array_runs_under_a_real_slurm() {
    if std::env::var("CAMBOX_SLURM").as_deref() != Ok("1") {
        eprintln!("CAMBOX_SLURM is not 1: skipping the real-Slurm array test (scripts/slurm/local-cluster.sh test)");
        return;
    }
    let t0 = Instant::now();
    let o = Command::new("bash")
        .args([script("local-cluster.sh").to_str().unwrap(), "test"])
        .env("CAMBOX", env!("CARGO_BIN_EXE_cambox"))
        .current_dir(root())
        .output()
        .unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    eprintln!("{out}\n{err}\nlocal-cluster.sh test: {:.0} s", t0.elapsed().as_secs_f64());
    assert!(o.status.success(), "the Slurm array test failed (its log is above)");
}

#[test]
fn a_shard_folder_is_not_resumed_as_another_shard() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("shard-0");
    let run = |shard: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cambox"));
        c.args(["run", "-q", "-c", "configs/phantoms.toml", "-o", out.to_str().unwrap()]).current_dir(root());
        if let Some(s) = shard {
            c.args(["--shard", s]);
        }
        let o = c.arg("data/phantoms/images").output().unwrap();
        (o.status.code().unwrap(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    assert_eq!(run(Some("0/4")).0, 0);
    let rows = read_csv(out.join("images.csv")).len();
    for other in [Some("0/1"), Some("1/4"), None] {
        let (code, err) = run(other);
        assert_eq!(code, 1, "{other:?}: {err}");
        assert!(err.contains("holds shard 0/4 of a run"), "{err}");
    }
    assert_eq!(read_csv(out.join("images.csv")).len(), rows, "nothing added");
    assert_eq!(run(Some("0/4")).0, 0, "its own shard resumes");
}

#[test]
fn a_sigterm_while_the_model_loads_ends_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_cambox"))
        .args(["run", "-q", "-c", "configs/demo.toml", "-o", dir.path().join("o").to_str().unwrap()])
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Past the process start (the handler is the first thing main installs), before the
    // model is ready (tract optimises EfficientNet-Lite0 for a quarter of a second or more).
    std::thread::sleep(Duration::from_millis(60));
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", String::from_utf8_lossy(&o.stderr));
}
