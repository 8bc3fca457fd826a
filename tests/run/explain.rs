//! `cambox::explain` (what the Python binding calls) against `cambox run`: the demo's
//! recipe and the sharp recipe, each image of the sample photos explained from its file
//! and from its decoded pixels, give the rows (`images.csv` but its time, `boxes.csv`),
//! the maps (`maps/*.npy` and their geometry) and the masks (`masks/*.png`) the run wrote.
//! The same check, through Python, is `python/tests/test_parity.py`.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::common::*;
use cambox::explain::{configuration, explain, pixels, Explainer, Explanation, Source};
use cambox::output::table::write_all;
use cambox::plan::RunPlan;
use cambox::stage::decode::Samples;

const PHOTOS: [&str; 6] =
    ["astronaut.png", "camera.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "rocket.jpg"];

/// Runs `cambox run` with `config` (`configs/NAME`) and settings given as flags where
/// they exist; returns the output folder.
fn run_cli(dir: &Path, config: &str, extra: &[&str]) -> std::path::PathBuf {
    let out = dir.join("out");
    let mut args = vec!["run", "--config", config, "--quiet", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (code, _, err) = cambox(&args);
    assert_eq!(code, 0, "{err}");
    out
}

/// The plan `Model(config=..., maps=True)` builds.
fn plan_for(config: &str) -> RunPlan {
    let path = root().join(config);
    let settings = vec![("maps".to_string(), toml::Value::Boolean(true))];
    RunPlan::for_images(configuration(Some(&path), settings).unwrap(), &path).unwrap()
}

/// `rows` written as the run writes its tables, and read back.
fn as_written<R: cambox::output::table::Row>(rows: &[R]) -> Vec<std::collections::HashMap<String, String>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    write_all(&path, rows).unwrap();
    read_csv(&path)
}

/// `e` against what the run in `out` wrote for `name`.
fn assert_as_run(out: &Path, name: &str, e: &Explanation) {
    let mut row = e.image_row.clone();
    row.path = name.to_string();
    let images = read_csv(out.join("images.csv"));
    let want = images.iter().find(|r| r["path"] == name).unwrap();
    let got = &as_written(&[row])[0];
    for (k, v) in want {
        if k != "ms" {
            assert_eq!(&got[k], v, "{name}: images.csv {k}");
        }
    }
    let boxes: Vec<_> = read_csv(out.join("boxes.csv")).into_iter().filter(|r| r["path"] == name).collect();
    let mut mine = e.box_rows.clone();
    mine.iter_mut().for_each(|b| b.path = name.to_string());
    assert_eq!(as_written(&mine), boxes, "{name}: boxes.csv");
    let maps = e.maps.as_ref().unwrap();
    let saved = npy(out.join("maps").join(format!("{name}.npy")));
    assert_eq!(saved.shape(), maps.maps.shape(), "{name}");
    assert!(saved.iter().zip(maps.maps.iter()).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}: maps/ differ");
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("maps").join(format!("{name}.json"))).unwrap()).unwrap();
    // Both sides through the same text parser (serde_json's default one rounds some floats).
    let geometry: serde_json::Value = serde_json::from_str(&serde_json::to_string(&e.geometry).unwrap()).unwrap();
    assert_eq!(sidecar["geometry"], geometry, "{name}");
    for l in &e.classes {
        let png = image::open(out.join("masks").join(format!("{name}.{}.png", l.class))).unwrap().into_luma8();
        assert_eq!(png.as_raw(), &l.mask, "{name}: mask of class {}", l.class);
    }
}

#[test]
fn explaining_files_and_pixels_gives_what_the_run_wrote() {
    for (config, extra) in [("configs/demo.toml", vec!["--threads", "2"]), ("configs/sharp.toml", vec![])] {
        let dir = tempfile::tempdir().unwrap();
        let mut flags = extra.clone();
        flags.push("data/samples/natural");
        // The demo writes no maps: the run gets them from a copy of its configuration.
        let cfg = dir.path().join("c.toml");
        let text =
            std::fs::read_to_string(root().join(config)).unwrap().replace("../", &format!("{}/", root().display()));
        let text =
            if text.contains("maps = true") { text } else { text.replace("[output]\n", "[output]\nmaps = true\n") };
        std::fs::write(&cfg, text).unwrap();
        let out = run_cli(dir.path(), cfg.to_str().unwrap(), &flags);
        let explainer = Explainer::new(plan_for(config)).unwrap();
        let plan = &explainer.plan;
        let items: Vec<(String, Source)> =
            PHOTOS.iter().map(|p| (p.to_string(), Source::File(root().join("data/samples/natural").join(p)))).collect();
        let all = explainer.explain_all(items, None, &|| {}, &AtomicBool::new(false));
        for (name, e) in PHOTOS.iter().zip(all) {
            let e = e.unwrap().unwrap();
            assert_as_run(&out, name, &e);
            // The same image handed over as pixels (the decoder's own).
            let img = plan.decoder.decode_file(&root().join("data/samples/natural").join(name)).unwrap();
            let Samples::U8(bytes) = img.data else { panic!("8-bit") };
            let px = pixels(img.width as usize, img.height as usize, img.channels, Samples::U8(bytes), 8).unwrap();
            let from_pixels = explain(plan, name, Source::Pixels(px), None).unwrap();
            assert_as_run(&out, name, &from_pixels);
        }
    }
}

#[test]
fn a_file_that_fails_is_its_error_and_a_cancelled_list_stops() {
    let explainer = Explainer::new(plan_for("configs/demo.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake.png");
    std::fs::write(&fake, "text").unwrap();
    let e = explain(&explainer.plan, "fake.png", Source::File(fake.clone()), None).err().unwrap();
    assert_eq!(e.one_line(), "cannot decode: not an image: unrecognised file format");
    let cancel = AtomicBool::new(true);
    let none = explainer.explain_all(vec![("f".into(), Source::File(fake))], None, &|| {}, &cancel);
    assert!(none[0].is_none());
}
