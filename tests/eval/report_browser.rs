//! report.html rendered by a real browser (headless Chromium, Debian's `chromium`): the
//! per-class table is there, and the gallery's class filter works, as the page's own
//! script leaves the DOM after load, opened filtered (`report.html#class=cup`) and not.
//!
//! `.ci/run` installs Chromium when it is missing and sets `CAMBOX_REQUIRE_BROWSER=1`, so
//! in CI a missing browser fails the test; elsewhere the test says it is skipped. The
//! browser runs as the probe of this machine does: no sandbox (root), no GPU, no
//! background networking (the machine has no network), a fresh profile. A screenshot of
//! the filtered page is left in `target/report-browser/report.png` for a person to look at.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

fn browser() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CAMBOX_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|b| {
        std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(b)).find(|p| p.is_file())
    })
}

/// Runs the browser headless on `url` with `args`; returns stdout.
fn chromium(bin: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("start the browser");
    assert!(out.status.success(), "browser failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The opening tags of the gallery cards in a DOM dump.
fn cards(dom: &str) -> Vec<&str> {
    dom.match_indices("<div class=\"card\"").map(|(i, _)| &dom[i..i + dom[i..].find('>').unwrap()]).collect()
}

#[test]
fn the_report_renders_its_class_table_and_filters_the_gallery() {
    let Some(bin) = browser() else {
        assert!(std::env::var_os("CAMBOX_REQUIRE_BROWSER").is_none(), "CAMBOX_REQUIRE_BROWSER is set but no chromium");
        eprintln!("no chromium on PATH (or CAMBOX_CHROMIUM): skipping the browser test");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (truth, map) = (tmp.path().join("truth.csv"), tmp.path().join("map.csv"));
    std::fs::write(
        &truth,
        "path,x1,y1,x2,y2,label\nchelsea.png,30,0,385,300,cat\ncoffee.png,172,18,410,300,cup\n\
         camera.png,90,60,420,512,tripod\n",
    )
    .unwrap();
    std::fs::write(&map, "truth_label,model_class\ncat,281\ncat,282\ncat,285\ncup,968\ncup,504\n").unwrap();
    let (run, ev) = (tmp.path().join("run"), tmp.path().join("eval"));
    let (t, m) = (truth.to_str().unwrap(), map.to_str().unwrap());
    let (code, _, err) =
        cambox(&["run", "-q", "-c", "configs/demo.toml", "-o", run.to_str().unwrap(), "--truth", t, "--class-map", m]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cambox(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--truth",
        t,
        "--class-map",
        m,
        "--out",
        ev.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let page = format!("file://{}", ev.join("report.html").display());

    // Unfiltered: the table has a row per class, the mean and all pairs; every card shows.
    let dom = chromium(&bin, &tmp.path().join("p1"), &["--dump-dom"], &page);
    let table = &dom[dom.find("id=\"per-class\"").expect("the per-class table")..];
    let table = &table[..table.find("</table>").unwrap()];
    for class in ["cat", "cup", "tripod", "mean of 3 classes", "all pairs"] {
        assert!(table.contains(&format!("<tr data-class=\"{class}\">")), "{class} row missing: {table}");
    }
    let all = cards(&dom);
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.iter().all(|c| !c.contains("display: none")), "{all:?}");
    assert!(dom.contains("id=\"shown\">3<"), "the count of shown cards");

    // Filtered by the fragment: only the cup card shows, the select says so, the count too.
    let dom = chromium(&bin, &tmp.path().join("p2"), &["--dump-dom"], &format!("{page}#class=cup"));
    let shown: Vec<&str> = cards(&dom).into_iter().filter(|c| !c.contains("display: none")).collect();
    assert_eq!(shown, vec!["<div class=\"card\" data-class=\"cup\""], "{dom}");
    assert!(dom.contains("id=\"shown\">1<"));
    assert!(dom.contains("<option value=\"cup\">cup</option>"));

    // A screenshot of the filtered page, for a person to look at.
    let shots = root().join("target/report-browser");
    std::fs::create_dir_all(&shots).unwrap();
    let png = shots.join("report.png");
    let _ = std::fs::remove_file(&png);
    chromium(
        &bin,
        &tmp.path().join("p3"),
        &[&format!("--screenshot={}", png.display()), "--window-size=1280,2200", "--hide-scrollbars"],
        &format!("{page}#class=cup"),
    );
    let img = image::open(&png).expect("a PNG screenshot");
    assert_eq!((img.width(), img.height()), (1280, 2200));
}
