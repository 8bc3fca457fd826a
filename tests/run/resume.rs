//! Overnight-run robustness: resume after SIGKILL and SIGINT, hostile files, shards and
//! merge, output that cannot be written.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// `n` copies of the small sample photos under `dir/in`, in a few subfolders.
fn dataset(dir: &Path, n: usize) -> PathBuf {
    let inp = dir.join("in");
    let samples = ["chelsea.png", "coffee.png", "camera.png", "astronaut.png"];
    for i in 0..n {
        let sub = inp.join(format!("d{}", i % 5));
        std::fs::create_dir_all(&sub).unwrap();
        let s = samples[i % samples.len()];
        std::fs::copy(root().join("data/samples/natural").join(s), sub.join(format!("{i:04}_{s}"))).unwrap();
    }
    inp
}

fn spawn_run(out: &Path, inp: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cambox"))
        .args(["run", "-q", "-c", "configs/demo.toml", "--threads", "2", "-o", out.to_str().unwrap()])
        .args(extra)
        .arg(inp)
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn run_to_end(out: &Path, inp: &Path, extra: &[&str]) -> (i32, String) {
    let o = spawn_run(out, inp, extra).wait_with_output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Waits until images.csv has at least `rows` lines after the header.
fn wait_rows(out: &Path, rows: usize) {
    let t0 = Instant::now();
    loop {
        let n = std::fs::read_to_string(out.join("images.csv")).map(|s| s.lines().count()).unwrap_or(0);
        if n > rows {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "the run never reached {rows} rows");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(child: &Child, signal: &str) {
    let st = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(st.success());
}

/// Rows of images.csv / boxes.csv without the timing column, as a set.
fn table(out: &Path, file: &str, drop: &[&str]) -> BTreeSet<String> {
    read_csv(out.join(file))
        .into_iter()
        .map(|r| {
            let mut kv: Vec<(String, String)> = r.into_iter().filter(|(k, _)| !drop.contains(&k.as_str())).collect();
            kv.sort();
            format!("{kv:?}")
        })
        .collect()
}

fn assert_same_set(a: &BTreeSet<String>, b: &BTreeSet<String>, what: &str) {
    let only_a: Vec<&String> = a.difference(b).take(3).collect();
    let only_b: Vec<&String> = b.difference(a).take(3).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "{what}: {} vs {} rows; only in the first: {only_a:?}; only in the second: {only_b:?}",
        a.len(),
        b.len()
    );
}

fn assert_same_results(a: &Path, b: &Path) {
    let ia = table(a, "images.csv", &["ms"]);
    assert_same_set(&ia, &table(b, "images.csv", &["ms"]), "images.csv");
    assert_same_set(&table(a, "boxes.csv", &[]), &table(b, "boxes.csv", &[]), "boxes.csv");
    let n = read_csv(a.join("images.csv")).len();
    assert_eq!(ia.len(), n, "no duplicate rows");
    for r in read_csv(a.join("images.csv")) {
        let k = &r["class_index"];
        let m = a.join(format!("masks/{}.{k}.png", r["path"]));
        image::open(&m).unwrap_or_else(|e| panic!("{}: {e}", m.display()));
        let o = a.join(format!("overlays/{}.{k}.jpg", r["path"]));
        image::open(&o).unwrap_or_else(|e| panic!("{}: {e}", o.display()));
    }
}

#[test]
fn sigkill_then_resume_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let inp = dataset(dir.path(), 200);
    let whole = dir.path().join("whole");
    let (code, err) = run_to_end(&whole, &inp, &[]);
    assert_eq!(code, 0, "{err}");

    let out = dir.path().join("killed");
    let mut child = spawn_run(&out, &inp, &[]);
    wait_rows(&out, 40);
    kill(&child, "-KILL");
    child.wait().unwrap();
    // Simulate the worst case on top: a row torn in the middle of being written.
    let mut f = std::fs::OpenOptions::new().append(true).open(out.join("images.csv")).unwrap();
    std::io::Write::write_all(&mut f, b"d0/0000_chelsea.png,ok,,451,3").unwrap();
    drop(f);
    let before = std::fs::read_to_string(out.join("images.csv")).unwrap().lines().count() - 1;
    assert!(before < 200, "killed part-way ({before} rows)");

    let (code, err) = run_to_end(&out, &inp, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(read_csv(out.join("images.csv")).len(), 200);
    assert_same_results(&out, &whole);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(manifest["state"], "completed");
    assert!(manifest["resumed_rows"].as_u64().unwrap() >= 40);
}

#[test]
fn sigint_exits_130_and_the_next_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let inp = dataset(dir.path(), 120);
    let out = dir.path().join("out");
    let child = spawn_run(&out, &inp, &[]);
    wait_rows(&out, 10);
    kill(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", String::from_utf8_lossy(&o.stderr));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(manifest["interrupted"], true);
    assert_eq!(manifest["state"], "interrupted");
    let done = read_csv(out.join("images.csv")).len();
    assert!(done < 120, "{done}");
    assert_eq!(manifest["counts"]["ok"].as_u64().unwrap() as usize, done);

    let (code, err) = run_to_end(&out, &inp, &[]);
    assert_eq!(code, 0, "{err}");
    let rows = read_csv(out.join("images.csv"));
    assert_eq!(rows.len(), 120);
    assert_eq!(rows.iter().map(|r| r["path"].clone()).collect::<BTreeSet<_>>().len(), 120);
}

#[test]
fn a_different_configuration_is_refused_and_force_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let inp = dataset(dir.path(), 3);
    let out = dir.path().join("out");
    assert_eq!(run_to_end(&out, &inp, &[]).0, 0);
    let (code, err) = run_to_end(&out, &inp, &["--method", "gradcam"]);
    assert_eq!(code, 1);
    assert!(err.contains("different configuration") && err.contains("--force"), "{err}");
    let (code, err) = run_to_end(&out, &inp, &["--method", "gradcam", "--force"]);
    assert_eq!(code, 0, "{err}");
    let boxes = read_csv(out.join("boxes.csv"));
    assert!(boxes.iter().all(|b| b["method"] == "gradcam"));
    // Same configuration again: nothing to do, nothing duplicated.
    let (code, _) = run_to_end(&out, &inp, &["--method", "gradcam"]);
    assert_eq!(code, 0);
    assert_eq!(read_csv(out.join("images.csv")).len(), 3);
    assert_eq!(read_csv(out.join("boxes.csv")).len(), boxes.len());
}

/// A small PNG whose header claims `w` x `h` pixels: IHDR, a few bytes of IDAT, IEND, all
/// with correct CRCs (a decompression bomb would carry megabytes that inflate to GBs).
fn png_header_claiming(w: u32, h: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| -> Vec<u8> {
        let mut body = kind.to_vec();
        body.extend(data);
        let mut v = (data.len() as u32).to_be_bytes().to_vec();
        v.extend(&body);
        v.extend(crc32(&body).to_be_bytes());
        v
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut v = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    v.extend(chunk(b"IHDR", &ihdr));
    // zlib stream of a few zero bytes.
    v.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01]));
    v.extend(chunk(b"IEND", &[]));
    v
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

#[test]
fn hostile_files_cost_one_error_row_each() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in");
    std::fs::create_dir_all(inp.join("sub")).unwrap();
    let samples = root().join("data/samples/natural");
    std::fs::copy(samples.join("coffee.png"), inp.join("good.png")).unwrap();
    std::fs::copy(samples.join("chelsea.png"), inp.join("sub/good2.png")).unwrap();
    let jpg = std::fs::read(samples.join("rocket.jpg")).unwrap();
    std::fs::write(inp.join("truncated.jpg"), &jpg[..jpg.len() / 3]).unwrap();
    let png = std::fs::read(samples.join("coffee.png")).unwrap();
    std::fs::write(inp.join("truncated.png"), &png[..png.len() / 3]).unwrap();
    std::fs::write(inp.join("zero.png"), b"").unwrap();
    std::fs::write(inp.join("wrong_extension.jpg"), b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n").unwrap();
    std::fs::write(inp.join("bomb.png"), png_header_claiming(60_000, 60_000)).unwrap();
    std::os::unix::fs::symlink(".", inp.join("loop")).unwrap();
    std::fs::create_dir_all(inp.join("folder.jpg")).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9_bad.jpg");
    std::fs::write(inp.join(name), b"not a jpeg").unwrap();
    // Unreadable: permissions do not stop root, a named pipe stops everyone.
    let fifo = inp.join("pipe.png");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let mut expect_errors = 9;
    let unreadable = inp.join("unreadable.png");
    std::fs::copy(samples.join("coffee.png"), &unreadable).unwrap();
    std::fs::set_permissions(&unreadable, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    if std::fs::read(&unreadable).is_ok() {
        // Running as root: the file is readable after all.
        std::fs::remove_file(&unreadable).unwrap();
    } else {
        expect_errors += 1;
    }

    let cfg = dir.path().join("follow.toml");
    let text = std::fs::read_to_string(root().join("configs/demo.toml"))
        .unwrap()
        .replace("../data/", &format!("{}/data/", root().display()));
    std::fs::write(&cfg, text.replace("[input]\n", "[input]\nfollow_symlinks = true\n")).unwrap();
    let out = dir.path().join("out");
    let (code, _, err) =
        cambox(&["run", "-q", "-c", cfg.to_str().unwrap(), "-o", out.to_str().unwrap(), inp.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    let rows = read_csv(out.join("images.csv"));
    let errors: Vec<_> = rows.iter().filter(|r| r["status"] == "error").collect();
    let oks: Vec<_> = rows.iter().filter(|r| r["status"] == "ok").map(|r| r["path"].as_str()).collect();
    assert_eq!(oks.iter().copied().collect::<BTreeSet<_>>(), BTreeSet::from(["good.png", "sub/good2.png"]), "{rows:?}");
    assert_eq!(errors.len(), expect_errors, "{errors:#?}");
    eprintln!("{errors:#?}");
    let reason = |p: &str| {
        errors
            .iter()
            .find(|r| r["path"].starts_with(p))
            .map(|r| r["error"].clone())
            .unwrap_or_else(|| panic!("no row for {p}: {errors:#?}"))
    };
    assert!(reason("truncated.jpg").contains("truncated"));
    assert!(reason("truncated.png").contains("decode"));
    assert!(reason("zero.png").contains("empty"));
    assert!(reason("wrong_extension.jpg").contains("not an image"));
    assert!(reason("bomb.png").contains("60000x60000"));
    assert!(reason("loop").contains("loop"));
    assert!(reason("folder.jpg").contains("directory"));
    assert!(reason("caf").contains("decode") || reason("caf").contains("not an image"));
    assert!(reason("pipe.png").contains("not a regular file"));
    for r in &errors {
        assert!(!r["error"].is_empty() && !r["error"].contains('\n'));
    }
}

#[test]
fn a_panic_costs_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let inp = dataset(dir.path(), 6);
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_cambox"))
        .args(["run", "-q", "-c", "configs/demo.toml", "-o", out.to_str().unwrap(), inp.to_str().unwrap()])
        .env(cambox::faults::PANIC_ENV, "0003_")
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let rows = read_csv(out.join("images.csv"));
    assert_eq!(rows.len(), 6);
    let bad: Vec<_> = rows.iter().filter(|r| r["status"] == "error").collect();
    assert_eq!(bad.len(), 1);
    assert!(bad[0]["path"].contains("0003_") && bad[0]["error"].contains("panic"), "{bad:?}");
}

#[test]
fn an_output_that_cannot_be_written_stops_the_run_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let inp = dataset(dir.path(), 4);
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // masks/ is a file: no mask can be written, as on a full or read-only disk.
    std::fs::write(out.join("masks"), b"").unwrap();
    let (code, err) = run_to_end(&out, &inp, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot write") && err.contains("masks"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // What was written is valid: a header and no row for the images that failed.
    let rows = read_csv(out.join("images.csv"));
    assert!(rows.iter().all(|r| r["status"] == "ok"));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(manifest["state"], "failed");
    // Fix the disk, resume, complete.
    std::fs::remove_file(out.join("masks")).unwrap();
    let (code, err) = run_to_end(&out, &inp, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(read_csv(out.join("images.csv")).len(), 4);
}

#[test]
fn four_shards_merged_equal_one_run_and_bad_sets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let inp = dataset(dir.path(), 24);
    let whole = dir.path().join("whole");
    assert_eq!(run_to_end(&whole, &inp, &[]).0, 0);
    let mut shard_dirs = Vec::new();
    let mut sizes = Vec::new();
    for i in 0..4 {
        let d = dir.path().join(format!("shard{i}"));
        let (code, err) = run_to_end(&d, &inp, &["--shard", &format!("{i}/4")]);
        assert_eq!(code, 0, "{err}");
        sizes.push(read_csv(d.join("images.csv")).len());
        shard_dirs.push(d);
    }
    assert_eq!(sizes.iter().sum::<usize>(), 24, "every image in exactly one shard: {sizes:?}");
    assert!(sizes.iter().filter(|&&n| n > 0).count() >= 2, "the hash spreads the images: {sizes:?}");
    let merged = dir.path().join("merged");
    let mut args: Vec<&str> = vec!["merge", "-o", merged.to_str().unwrap()];
    args.extend(shard_dirs.iter().map(|d| d.to_str().unwrap()));
    let (code, _, err) = cambox(&args);
    assert_eq!(code, 0, "{err}");
    assert_same_results(&merged, &whole);

    // A missing shard.
    let (code, _, err) = cambox(&[
        "merge",
        "-o",
        dir.path().join("m2").to_str().unwrap(),
        shard_dirs[0].to_str().unwrap(),
        shard_dirs[2].to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "an incomplete set of shards is a usage error");
    assert!(err.contains("missing shard 1, 3 of 4"), "{err}");
    // A shard of another configuration.
    let odd = dir.path().join("odd");
    assert_eq!(run_to_end(&odd, &inp, &["--shard", "1/4", "--method", "gradcam"]).0, 0);
    let (code, _, err) = cambox(&[
        "merge",
        "-o",
        dir.path().join("m3").to_str().unwrap(),
        shard_dirs[0].to_str().unwrap(),
        odd.to_str().unwrap(),
        shard_dirs[2].to_str().unwrap(),
        shard_dirs[3].to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("different configuration") && err.contains("odd"), "{err}");
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn files_under(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in files_under(from) {
        let dst = to.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::write(dst, bytes).unwrap();
    }
}

/// An output folder written by the cambox of the previous release (before the restructure
/// of the crate, commit bd5fab8), interrupted part-way, is resumed by this one: the run is
/// recognised as the same configuration (same fingerprint), its rows are kept byte for
/// byte, and the finished folder equals a clean run of this version.
#[test]
fn a_run_interrupted_under_the_previous_version_resumes() {
    let fixture = root().join("tests/fixtures/previous-run");
    let config = fixture.join("phantoms.toml");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("resumed");
    copy_tree(&fixture.join("out"), &out);
    let old_images = std::fs::read_to_string(out.join("images.csv")).unwrap();
    let old_rows = old_images.lines().count() - 1;
    assert_eq!(old_rows, 50, "the fixture holds 50 finished rows");

    let run = |o: &Path| {
        Command::new(env!("CARGO_BIN_EXE_cambox"))
            .args(["run", "--threads", "2", "-c", config.to_str().unwrap(), "-o", o.to_str().unwrap()])
            .current_dir(root())
            .output()
            .unwrap()
    };
    let o = run(&out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("resuming: 50 images already done, 70 to go"), "{err}");
    let images = std::fs::read_to_string(out.join("images.csv")).unwrap();
    assert!(images.starts_with(&old_images), "the previous version's rows are kept as they were");
    assert_eq!(images.lines().count() - 1, 120);

    let clean = dir.path().join("clean");
    let o = run(&clean);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_set(&table(&out, "images.csv", &["ms"]), &table(&clean, "images.csv", &["ms"]), "images.csv");
    assert_same_set(&table(&out, "boxes.csv", &[]), &table(&clean, "boxes.csv", &[]), "boxes.csv");
    for sub in ["masks", "maps"] {
        let (a, b) = (files_under(&out.join(sub)), files_under(&clean.join(sub)));
        assert_eq!(a.len(), 120 * if sub == "maps" { 2 } else { 1 }, "{sub}");
        assert!(a == b, "{sub}/ differs from a clean run");
    }
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!((m["state"].as_str(), m["resumed_rows"].as_u64()), (Some("completed"), Some(50)));
}
