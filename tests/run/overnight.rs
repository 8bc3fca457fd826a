//! Overnight safety, round two: one run per output folder, faults of one image's artefacts
//! cost that image's row only, names that are not UTF-8 stay apart, `--force` removes only
//! what a run wrote, mean/std that do not fit the model are refused, and the messages a
//! scheduler or a person reads say what happened.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cambox"));
    c.current_dir(root());
    c
}

fn output(c: &mut Command) -> (i32, String) {
    let o = c.stdout(Stdio::null()).stderr(Stdio::piped()).output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// The phantoms, copied `n` at a time into `dir/in` (small grey PNGs: fast runs).
fn phantoms(dir: &Path, n: usize) -> PathBuf {
    let inp = dir.join("in");
    std::fs::create_dir_all(&inp).unwrap();
    let src = root().join("data/phantoms/images");
    let mut names: Vec<_> = std::fs::read_dir(&src).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for i in 0..n {
        let s = &names[i % names.len()];
        std::fs::copy(s, inp.join(format!("{i:04}_{}", s.file_name().unwrap().to_str().unwrap()))).unwrap();
    }
    inp
}

fn phantom_run(out: &Path, inp: &Path, extra: &[&str]) -> Command {
    let mut c = bin();
    c.args(["run", "-q", "-c", "configs/phantoms.toml", "-o", out.to_str().unwrap()]).args(extra).arg(inp);
    c
}

fn rows(out: &Path, file: &str, drop: &[&str]) -> BTreeSet<String> {
    read_csv(out.join(file))
        .into_iter()
        .map(|r| {
            let mut kv: Vec<(String, String)> = r.into_iter().filter(|(k, _)| !drop.contains(&k.as_str())).collect();
            kv.sort();
            format!("{kv:?}")
        })
        .collect()
}

fn wait_rows(out: &Path, n: usize, child: &mut Child) {
    let t0 = Instant::now();
    while std::fs::read_to_string(out.join("images.csv")).map(|s| s.lines().count()).unwrap_or(0) <= n {
        assert!(child.try_wait().unwrap().is_none(), "the first run ended before the test could start a second");
        assert!(t0.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_second_run_into_a_folder_in_use_is_refused_and_a_killed_holder_leaves_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let inp = phantoms(dir.path(), 600);
    let out = dir.path().join("out");
    let mut first =
        phantom_run(&out, &inp, &["--threads", "1"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_rows(&out, 5, &mut first);
    let pid = first.id();
    for extra in [&[][..], &["--force"][..], &["--method", "gradcam", "--force"][..]] {
        let t0 = Instant::now();
        let (code, err) = output(&mut phantom_run(&out, &inp, extra));
        assert_eq!(code, 1, "{extra:?}: {err}");
        assert!(err.contains("in use by another cambox") && err.contains(&format!("pid {pid}")), "{err}");
        assert!(err.contains("started ") && err.contains(out.to_str().unwrap()), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(20), "refused at once, not after the model is loaded twice");
    }
    // A merge into it is refused too.
    let (code, err) = output(bin().args(["merge", out.to_str().unwrap(), "--out", out.to_str().unwrap()]));
    assert_eq!(code, 1, "{err}");
    // SIGKILL: the kernel drops the lock; the next run takes the folder over and completes.
    assert!(Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
    first.wait().unwrap();
    let (code, err) = output(&mut phantom_run(&out, &inp, &[]));
    assert_eq!(code, 0, "{err}");
    let clean = dir.path().join("clean");
    assert_eq!(output(&mut phantom_run(&clean, &inp, &[])).0, 0);
    assert_eq!(rows(&out, "images.csv", &["ms"]), rows(&clean, "images.csv", &["ms"]));
    assert_eq!(rows(&out, "boxes.csv", &[]), rows(&clean, "boxes.csv", &[]));
}

/// A valid PNG of `w` x `h` grey pixels (a gradient).
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x / 7 + y * 13) % 256) as u8]));
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png).unwrap();
    buf.into_inner()
}

#[test]
fn an_overlay_too_large_for_jpeg_costs_its_image_only_and_resumes_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let inp = phantoms(dir.path(), 12);
    std::fs::write(inp.join("wide.png"), png(100_000, 8)).unwrap();
    let out = dir.path().join("out");
    // configs/phantoms.toml writes overlays and maps.
    let (code, err) = output(&mut phantom_run(&out, &inp, &[]));
    assert_eq!(code, 3, "{err}");
    let all = read_csv(out.join("images.csv"));
    assert_eq!(all.len(), 13);
    let bad: Vec<_> = all.iter().filter(|r| r["status"] == "error").collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0]["path"], "wide.png");
    assert!(bad[0]["error"].contains("overlays/wide.png") && bad[0]["error"].contains("cannot write"), "{bad:?}");
    // Nothing of it is left half made: its mask and map were written before the overlay
    // failed, and removed with it.
    for f in ["masks/wide.png.1.png", "maps/wide.png.npy", "overlays/wide.png.1.jpg"] {
        assert!(!out.join(f).exists(), "{f}");
    }
    // The next run does not stop at it again: nothing left to do.
    let (code, err) = bin()
        .args(["run", "-c", "configs/phantoms.toml", "-o", out.to_str().unwrap(), inp.to_str().unwrap()])
        .output()
        .map(|o| (o.status.code().unwrap(), String::from_utf8_lossy(&o.stderr).into_owned()))
        .unwrap();
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("13 images already done, 0 to go"), "{err}");
}

#[test]
fn a_mask_that_cannot_be_encoded_or_a_map_that_cannot_be_written_is_one_error_row() {
    for (fault, file) in [("mask-encode:0003_", "masks"), ("map:0005_", "maps")] {
        let dir = tempfile::tempdir().unwrap();
        let inp = phantoms(dir.path(), 10);
        let out = dir.path().join("out");
        // configs/phantoms.toml with masks too.
        let cfg = dir.path().join("c.toml");
        let text = std::fs::read_to_string(root().join("configs/phantoms.toml"))
            .unwrap()
            .replace("maps = true", "maps = true\nmasks = true")
            .replace("\"../", &format!("\"{}/", root().display()));
        std::fs::write(&cfg, text).unwrap();
        let mut c = bin();
        c.args(["run", "-q", "-c", cfg.to_str().unwrap(), "-o", out.to_str().unwrap(), inp.to_str().unwrap()]);
        c.env(cambox::faults::ARTEFACT_ENV, fault);
        let (code, err) = output(&mut c);
        assert_eq!(code, 3, "{fault}: {err}");
        let all = read_csv(out.join("images.csv"));
        assert_eq!(all.len(), 10, "{fault}");
        let bad: Vec<_> = all.iter().filter(|r| r["status"] == "error").collect();
        let who = fault.split(':').nth(1).unwrap();
        assert!(bad.len() == 1 && bad[0]["path"].starts_with(who), "{fault}: {bad:?}");
        assert!(bad[0]["error"].contains(file) && bad[0]["error"].contains("fault injected"), "{bad:?}");
        let left: Vec<_> = walkdir::WalkDir::new(&out)
            .into_iter()
            .map(|e| e.unwrap().path().to_path_buf())
            .filter(|p| p.to_str().unwrap().contains(who))
            .collect();
        assert!(left.is_empty(), "{fault}: artefacts of the failed image left: {left:?}");
        assert!(read_csv(out.join("boxes.csv")).iter().all(|b| !b["path"].starts_with(who)));
    }
}

#[test]
fn names_that_differ_only_in_bytes_that_are_not_utf8_keep_their_own_rows_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in");
    std::fs::create_dir_all(&inp).unwrap();
    let src = std::fs::read(root().join("data/phantoms/images/phantom_0001.png")).unwrap();
    let other = std::fs::read(root().join("data/phantoms/images/phantom_0002.png")).unwrap();
    std::fs::write(inp.join(std::ffi::OsStr::from_bytes(b"x\xff.png")), &src).unwrap();
    std::fs::write(inp.join(std::ffi::OsStr::from_bytes(b"x\xfe.png")), &other).unwrap();
    std::fs::write(inp.join("100%.png"), &src).unwrap();
    let out = dir.path().join("out");
    let (code, err) = output(&mut phantom_run(&out, &inp, &[]));
    assert_eq!(code, 0, "{err}");
    let paths: BTreeSet<String> = read_csv(out.join("images.csv")).into_iter().map(|r| r["path"].clone()).collect();
    assert_eq!(paths, BTreeSet::from(["100%25.png".to_string(), "x%FE.png".into(), "x%FF.png".into()]));
    for p in &paths {
        assert!(out.join(format!("maps/{p}.npy")).is_file(), "{p}");
        assert!(out.join(format!("overlays/{p}.1.jpg")).is_file(), "{p}");
    }
    // Different pictures: their maps differ, so neither overwrote the other.
    assert_ne!(
        std::fs::read(out.join("maps/x%FF.png.npy")).unwrap(),
        std::fs::read(out.join("maps/x%FE.png.npy")).unwrap()
    );
    // A resume recognises each.
    let (code, err) = bin()
        .args(["run", "-c", "configs/phantoms.toml", "-o", out.to_str().unwrap(), inp.to_str().unwrap()])
        .output()
        .map(|o| (o.status.code().unwrap(), String::from_utf8_lossy(&o.stderr).into_owned()))
        .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("3 images already done, 0 to go"), "{err}");
    assert_eq!(read_csv(out.join("images.csv")).len(), 3);
}

#[test]
fn force_removes_what_the_previous_run_wrote_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let inp = phantoms(dir.path(), 6);
    let out = dir.path().join("out");
    assert_eq!(output(&mut phantom_run(&out, &inp, &[])).0, 0);
    let mine = [out.join("masks/my_annotation.png"), out.join("maps/notes.txt"), out.join("README.txt")];
    for f in &mine {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b"mine").unwrap();
    }
    let mut c = bin();
    c.args(["run", "-c", "configs/phantoms.toml", "-o", out.to_str().unwrap(), "--force", "--method", "gradcam"]);
    let (code, err) = output(c.arg(inp.to_str().unwrap()));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("--force: removed images.csv, boxes.csv, run.json, 6 overlays, 12 map files"), "{err}");
    for f in &mine {
        assert_eq!(std::fs::read(f).unwrap(), b"mine", "{}", f.display());
    }
    assert!(read_csv(out.join("boxes.csv")).iter().all(|b| b["method"] == "gradcam"));
}

#[test]
fn three_imagenet_values_for_a_one_channel_model_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    let text = std::fs::read_to_string(root().join("configs/phantoms.toml"))
        .unwrap()
        .replace("mean = [0.5]", "mean = [0.485, 0.456, 0.406]")
        .replace("\"../", &format!("\"{}/", root().display()));
    std::fs::write(&cfg, text).unwrap();
    let (code, err) =
        output(bin().args(["run", "-c", cfg.to_str().unwrap(), "-o", dir.path().join("o").to_str().unwrap()]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("mean has 3 values but the model takes 1 channel"), "{err}");
}

#[test]
fn messages_say_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    // No image: said on stderr, exit 3.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join("sub")).unwrap();
    std::fs::write(empty.join("notes.txt"), b"x").unwrap();
    let (code, err) = output(&mut phantom_run(&dir.path().join("o1"), &empty, &[]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no images found under") && err.contains("jpg, jpeg, png"), "{err}");
    // A TOML error keeps toml's line and caret.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[model]\npath = \"x.onnx\"\n[output\ntop_k = 2\n").unwrap();
    let (code, err) = output(bin().args(["run", "-c", bad.to_str().unwrap()]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("line 3") && err.contains('^') && err.lines().count() > 2, "{err}");
    // An output path that is a file.
    let file = dir.path().join("a_file");
    std::fs::write(&file, b"x").unwrap();
    let inp = phantoms(dir.path(), 2);
    let (code, err) = output(&mut phantom_run(&file, &inp, &[]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("a_file") && err.contains("is a file"), "{err}");
    // Progress lines in a log come from the first second on, not only at the end.
    let many = phantoms(&dir.path().join("m"), 400);
    let mut c = bin();
    c.args(["run", "-c", "configs/phantoms.toml", "--threads", "1", "-o", dir.path().join("o2").to_str().unwrap()]);
    let t0 = Instant::now();
    let (code, err) = output(c.arg(many.to_str().unwrap()));
    assert_eq!(code, 0, "{err}");
    let lines = err.lines().filter(|l| l.contains("images/s")).count();
    if t0.elapsed() > Duration::from_secs(3) {
        assert!(lines >= 2, "a line after the first second, and the last one: {err}");
    }
}

#[test]
fn a_memory_budget_smaller_than_any_image_runs_them_one_by_one_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let inp = phantoms(dir.path(), 24);
    let cfg = dir.path().join("c.toml");
    let text = std::fs::read_to_string(root().join("configs/phantoms.toml"))
        .unwrap()
        .replace("\"../", &format!("\"{}/", root().display()));
    std::fs::write(&cfg, format!("{text}\n[run]\nmemory_budget = \"1 kB\"\n")).unwrap();
    let (small, free) = (dir.path().join("small"), dir.path().join("free"));
    let mut c = bin();
    c.args(["run", "-q", "--threads", "2", "-c", cfg.to_str().unwrap(), "-o", small.to_str().unwrap()]);
    let (code, err) = output(c.arg(inp.to_str().unwrap()));
    assert_eq!(code, 0, "{err}");
    assert_eq!(output(&mut phantom_run(&free, &inp, &[])).0, 0);
    assert_eq!(rows(&small, "images.csv", &["ms"]), rows(&free, "images.csv", &["ms"]));
    assert_eq!(rows(&small, "boxes.csv", &[]), rows(&free, "boxes.csv", &[]));
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(small.join("run.json")).unwrap()).unwrap();
    assert_eq!(m["config"]["run"]["memory_budget"], 1000);
    // Not part of the fingerprint: a folder resumes with another budget.
    let (code, err) = output(&mut phantom_run(&small, &inp, &[]));
    assert_eq!(code, 0, "{err}");
}
