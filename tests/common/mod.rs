//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::ArrayD;

/// Reproducible values in [-2, 2).
pub fn pseudo(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * 4.0 - 2.0
        })
        .collect()
}

/// The Xception pneumonia model: `data/models/` when it was copied there, else
/// `$CAMBOX_SHARED/models/`; `None` (and a line saying the test is skipped) without either.
pub fn xception_model() -> Option<PathBuf> {
    let local = root().join("data/models/pneumonia_xception.onnx");
    let found = if local.is_file() { Some(local) } else { shared().map(|s| s.join("models/pneumonia_xception.onnx")) };
    if found.is_none() {
        eprintln!("skipped: no Xception model (data/models/ or $CAMBOX_SHARED/models/)");
    }
    found
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn npy(path: impl AsRef<Path>) -> ArrayD<f32> {
    let p = path.as_ref();
    ndarray_npy::read_npy(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn max_abs_diff<'a>(a: impl IntoIterator<Item = &'a f32>, b: impl IntoIterator<Item = &'a f32>) -> f32 {
    let (a, b): (Vec<f32>, Vec<f32>) = (a.into_iter().copied().collect(), b.into_iter().copied().collect());
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Runs the `cambox` binary; returns (exit code, stdout, stderr).
pub fn cambox(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cambox")).args(args).current_dir(root()).output().expect("run cambox");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Reads a CSV file into header + rows of (column name -> value).
pub fn read_csv(path: impl AsRef<Path>) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()));
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers.iter().zip(rec.iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect()
        })
        .collect()
}

/// The shared material folder, when `.ci/run` (or the developer) points to it.
pub fn shared() -> Option<PathBuf> {
    std::env::var_os("CAMBOX_SHARED").map(PathBuf::from).filter(|p| p.is_dir())
}

/// IoU of half-open boxes `[x1, y1, x2, y2]`.
pub fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: [f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter)
}
