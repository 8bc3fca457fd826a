//! A folder of broken and unusual files: the run completes, every file gets one row, bad
//! files are `error` rows with a one-line reason, good ones are `ok`.

use crate::common::*;
use image::{ImageBuffer, Luma, Rgb, Rgba};

#[test]
fn bad_files_become_error_rows_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in");
    std::fs::create_dir_all(inp.join("sub")).unwrap();
    let samples = root().join("data/samples/natural");

    std::fs::copy(samples.join("coffee.png"), inp.join("good.png")).unwrap();
    std::fs::write(inp.join("zero.jpg"), b"").unwrap();
    let jpg = std::fs::read(samples.join("rocket.jpg")).unwrap();
    std::fs::write(inp.join("truncated.jpg"), &jpg[..jpg.len() / 2]).unwrap();
    std::fs::write(inp.join("text.png"), b"this is not an image\n").unwrap();
    ImageBuffer::from_pixel(1, 1, Rgb([10u8, 20, 30])).save(inp.join("one_pixel.png")).unwrap();

    let coffee = image::open(samples.join("coffee.png")).unwrap();
    let c16: ImageBuffer<Rgb<u16>, Vec<u16>> = coffee.to_rgb16();
    c16.save(inp.join("sub/coffee16.png")).unwrap();
    let rgba: ImageBuffer<Rgba<u8>, Vec<u8>> = coffee.to_rgba8();
    rgba.save(inp.join("sub/coffee_rgba.png")).unwrap();
    let grey16: ImageBuffer<Luma<u16>, Vec<u16>> = coffee.to_luma16();
    grey16.save(inp.join("sub/coffee_grey16.png")).unwrap();

    let out = dir.path().join("out");
    let (code, _, err) =
        cambox(&["run", "-c", "configs/demo.toml", "-o", out.to_str().unwrap(), "-q", inp.to_str().unwrap()]);
    assert_eq!(code, 3, "some images failed: exit 3; stderr: {err}");
    let rows = read_csv(out.join("images.csv"));
    assert_eq!(rows.len(), 8, "one row per file: {rows:?}");
    let row = |p: &str| rows.iter().find(|r| r["path"] == p).unwrap_or_else(|| panic!("no row for {p}"));

    for (p, reason) in [
        ("zero.jpg", "empty file"),
        ("truncated.jpg", "truncated"),
        ("text.png", "not an image"),
        ("one_pixel.png", "1x1"),
    ] {
        let r = row(p);
        assert_eq!(r["status"], "error", "{r:?}");
        assert!(r["error"].contains(reason), "{p}: reason {:?} should mention {reason:?}", r["error"]);
        assert!(!r["error"].contains('\n'));
        assert_eq!(r["class_index"], "");
    }
    for p in ["good.png", "sub/coffee16.png", "sub/coffee_rgba.png"] {
        let r = row(p);
        assert_eq!(r["status"], "ok", "{r:?}");
        assert_eq!(r["class_index"], "967", "{p} is the espresso image");
        assert_eq!((r["width"].as_str(), r["height"].as_str()), ("600", "400"));
    }
    // 16-bit and 8-bit versions of the same picture give the same probabilities.
    let p8: f32 = row("good.png")["score"].parse().unwrap();
    let p16: f32 = row("sub/coffee16.png")["score"].parse().unwrap();
    assert!((p8 - p16).abs() < 0.01, "{p8} vs {p16}");
    assert_eq!(row("sub/coffee_grey16.png")["status"], "ok");

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(manifest["counts"]["ok"], 4);
    assert_eq!(manifest["counts"]["error"], 4);
}

#[test]
fn fatal_errors_are_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[model]\npath = \"nope.onnx\"\n[input]\npaths = [\".\"]\n[output]\ndir = \"o\"\n").unwrap();
    let (code, _, err) = cambox(&["run", "-c", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("nope.onnx") && err.contains("no such file"), "{err}");

    std::fs::write(&cfg, "[model]\npath = \"x.onnx\"\ntypo = 1\n").unwrap();
    let (code, _, err) = cambox(&["run", "-c", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.toml") && err.contains("typo"), "{err}");
}
