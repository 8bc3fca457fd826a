//! The files of `cambox faithfulness`: `faithfulness.csv` (one row per image, class and
//! map), `faithfulness.json` (each map's means with 95 % bootstrap intervals over images,
//! and its mean curves) and `faithfulness.html` (the curves of the run's maps beside the
//! baselines'). All written atomically.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use maud::{html, Markup, DOCTYPE};
use serde::Serialize;

use super::measure::{Measures, ROAD_PERCENTILES};
use super::{FaithOptions, FaithRow, Faithfulness};
use crate::error::Error;
use crate::eval::bootstrap::{mean_of_units, percentile_of_sorted, Resamples};
use crate::output::atomic_write;

/// A figure of one pair, when defined.
type Figure = fn(&Measures) -> Option<f64>;

/// The per-pair figures summarised, by name.
const FIGURES: [(&str, Figure); 7] = [
    ("deletion_auc", |m| Some(m.deletion_auc)),
    ("insertion_auc", |m| Some(m.insertion_auc)),
    ("road_morf", |m| m.road_morf_mean()),
    ("road_lerf", |m| m.road_lerf_mean()),
    ("road_combined", |m| m.road_combined()),
    ("avg_drop", |m| Some(m.drop)),
    ("increase", |m| Some(m.increase as u8 as f64)),
];

/// One map's summary.
#[derive(Debug, Clone, Serialize)]
pub struct MapSummary {
    pub pairs: usize,
    pub means: BTreeMap<&'static str, Option<f64>>,
    pub ci95: BTreeMap<&'static str, [f64; 2]>,
    /// Mean probability at each deletion / insertion step, and the 2.5 / 97.5 percentiles
    /// over pairs (a band, not an interval of the mean).
    pub deletion_curve: Curve,
    pub insertion_curve: Curve,
    /// Mean probability change at each ROAD percentile.
    pub road_morf_curve: Vec<Option<f64>>,
    pub road_lerf_curve: Vec<Option<f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    pub mean: Vec<f64>,
    pub low: Vec<f64>,
    pub high: Vec<f64>,
}

#[derive(Serialize)]
struct Json<'a> {
    cambox_version: &'static str,
    run: &'a std::path::Path,
    method: &'a str,
    steps: usize,
    fill: super::measure::Fill,
    road_percentiles: [u32; 9],
    road_noise: f64,
    seed: u64,
    bootstrap: usize,
    maps: BTreeMap<String, MapSummary>,
    errors: &'a [String],
}

pub fn write_all(f: &Faithfulness, o: &FaithOptions) -> Result<(), Error> {
    std::fs::create_dir_all(&o.out).map_err(|e| Error::io(&o.out, e))?;
    let mut by_map: BTreeMap<String, Vec<&FaithRow>> = BTreeMap::new();
    for r in &f.rows {
        by_map.entry(r.map.clone()).or_default().push(r);
    }
    let maps: BTreeMap<String, MapSummary> = by_map.iter().map(|(k, rows)| (k.clone(), summary(rows, o))).collect();
    let json = Json {
        cambox_version: env!("CARGO_PKG_VERSION"),
        run: &o.run,
        method: &f.method,
        steps: o.steps,
        fill: o.fill,
        road_percentiles: ROAD_PERCENTILES,
        road_noise: super::impute::ROAD_NOISE,
        seed: o.seed,
        bootstrap: o.bootstrap,
        maps,
        errors: &f.errors,
    };
    let text = serde_json::to_string_pretty(&json).expect("serialisable");
    write(&o.out.join("faithfulness.json"), text.as_bytes())?;
    write(&o.out.join("faithfulness.csv"), csv(&f.rows).as_bytes())?;
    write(&o.out.join("faithfulness.html"), page(&json.maps, &f.method, o).into_string().as_bytes())
}

fn write(path: &std::path::Path, bytes: &[u8]) -> Result<(), Error> {
    atomic_write(path, bytes).map_err(|e| Error::io(path, e))
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.6}")).unwrap_or_default()
}

fn csv(rows: &[FaithRow]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let head = ["path", "class_index", "class_name", "map", "probability"];
    let names = FIGURES.map(|f| f.0);
    w.write_record(head.iter().chain(names.iter())).expect("in memory");
    for r in rows {
        let mut rec = vec![
            r.rel.clone(),
            r.class.to_string(),
            r.class_name.clone(),
            r.map.clone(),
            opt(Some(r.measures.probability)),
        ];
        rec.extend(FIGURES.iter().map(|(_, f)| opt(f(&r.measures))));
        w.write_record(rec).expect("in memory");
    }
    String::from_utf8(w.into_inner().expect("in memory")).expect("utf-8")
}

/// Means, intervals (resampling images) and curves of one map's rows.
fn summary(rows: &[&FaithRow], o: &FaithOptions) -> MapSummary {
    let mut images: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        images.entry(&r.rel).or_default().push(i);
    }
    let units: Vec<&Vec<usize>> = images.values().collect();
    let draws = Resamples::draw(units.len(), o.bootstrap, o.seed);
    let mut means = BTreeMap::new();
    let mut ci95 = BTreeMap::new();
    for (name, f) in FIGURES {
        let per_unit: Vec<Vec<Option<f64>>> =
            units.iter().map(|u| u.iter().map(|&i| f(&rows[i].measures)).collect()).collect();
        let all: Vec<u32> = (0..units.len() as u32).collect();
        means.insert(name, mean_of_units(&all, &per_unit));
        if o.bootstrap > 0 {
            if let Some(i) = draws.interval(|d| mean_of_units(d, &per_unit)) {
                ci95.insert(name, i);
            }
        }
    }
    let curve = |pick: fn(&Measures) -> &Vec<f64>| band(rows.iter().map(|r| pick(&r.measures)));
    let road = |pick: fn(&Measures) -> &Vec<Option<f64>>| -> Vec<Option<f64>> {
        (0..ROAD_PERCENTILES.len())
            .map(|k| {
                let v: Vec<f64> = rows.iter().filter_map(|r| pick(&r.measures).get(k).copied().flatten()).collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            })
            .collect()
    };
    MapSummary {
        pairs: rows.len(),
        means,
        ci95,
        deletion_curve: curve(|m| &m.deletion),
        insertion_curve: curve(|m| &m.insertion),
        road_morf_curve: road(|m| &m.road_morf),
        road_lerf_curve: road(|m| &m.road_lerf),
    }
}

/// The mean and the 2.5 / 97.5 percentiles of curves of equal length, step by step.
fn band<'a>(curves: impl Iterator<Item = &'a Vec<f64>>) -> Curve {
    let curves: Vec<&Vec<f64>> = curves.collect();
    let n = curves.iter().map(|c| c.len()).min().unwrap_or(0);
    let mut c = Curve { mean: Vec::new(), low: Vec::new(), high: Vec::new() };
    for i in 0..n {
        let mut v: Vec<f64> = curves.iter().map(|c| c[i]).collect();
        c.mean.push(v.iter().sum::<f64>() / v.len() as f64);
        v.sort_by(f64::total_cmp);
        c.low.push(percentile_of_sorted(&v, 2.5));
        c.high.push(percentile_of_sorted(&v, 97.5));
    }
    c
}

/// An SVG polyline of `ys` over x in [0, 1] on a 300 x 160 plot of [lo, hi].
fn polyline(ys: &[f64], lo: f64, hi: f64) -> String {
    let n = ys.len().max(2) - 1;
    let mut s = String::new();
    for (i, y) in ys.iter().enumerate() {
        let px = 40.0 + 250.0 * i as f64 / n as f64;
        let py = 150.0 - 140.0 * ((y - lo) / (hi - lo).max(1e-12)).clamp(0.0, 1.0);
        let _ = write!(s, "{px:.1},{py:.1} ");
    }
    s.trim_end().to_string()
}

/// The band between `low` and `high` as an SVG polygon.
fn band_polygon(c: &Curve) -> String {
    let mut pts = polyline(&c.high, 0.0, 1.0);
    let mut back: Vec<f64> = c.low.clone();
    back.reverse();
    let n = back.len().max(2) - 1;
    for (i, y) in back.iter().enumerate() {
        let px = 290.0 - 250.0 * i as f64 / n as f64;
        let py = 150.0 - 140.0 * y.clamp(0.0, 1.0);
        let _ = write!(pts, " {px:.1},{py:.1}");
    }
    pts
}

const COLOURS: [&str; 3] = ["#d62728", "#1f77b4", "#7f7f7f"];

fn chart(title: &str, maps: &BTreeMap<String, MapSummary>, method: &str, pick: fn(&MapSummary) -> &Curve) -> Markup {
    let order: Vec<&String> =
        maps.keys().filter(|k| k.as_str() == method).chain(maps.keys().filter(|k| k.as_str() != method)).collect();
    html! {
        figure {
            figcaption { (title) " (probability against the fraction of pixels; band: 2.5-97.5 % of pairs)" }
            svg width="300" height="170" viewBox="0 0 300 170" {
                line x1="40" y1="150" x2="290" y2="150" stroke="#333" {}
                line x1="40" y1="10" x2="40" y2="150" stroke="#333" {}
                @for (i, k) in order.iter().enumerate() {
                    polygon points=(band_polygon(pick(&maps[*k]))) fill=(COLOURS[i % 3]) fill-opacity="0.12" {}
                    polyline points=(polyline(&pick(&maps[*k]).mean, 0.0, 1.0)) fill="none" stroke=(COLOURS[i % 3]) stroke-width="2" {}
                }
            }
            p { @for (i, k) in order.iter().enumerate() { span style=(format!("color:{}", COLOURS[i % 3])) { "■ " (k) " " } } }
        }
    }
}

/// ROAD's mean probability change against the percentile, MoRF solid and LeRF dashed, for
/// every map.
fn road_chart(maps: &BTreeMap<String, MapSummary>, method: &str) -> Markup {
    let order: Vec<&String> =
        maps.keys().filter(|k| k.as_str() == method).chain(maps.keys().filter(|k| k.as_str() != method)).collect();
    let all: Vec<f64> =
        maps.values().flat_map(|m| m.road_morf_curve.iter().chain(&m.road_lerf_curve).flatten().copied()).collect();
    let (lo, hi) = all.iter().fold((0.0f64, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
    let line = |v: &[Option<f64>]| polyline(&v.iter().map(|x| x.unwrap_or(0.0)).collect::<Vec<_>>(), lo, hi);
    html! {
        figure {
            figcaption { "ROAD: probability change against the percentile p = 10 ... 90 (MoRF solid, LeRF dashed; range " (format!("{lo:.2} to {hi:.2}")) ")" }
            svg width="300" height="170" viewBox="0 0 300 170" {
                line x1="40" y1="150" x2="290" y2="150" stroke="#333" {}
                line x1="40" y1="10" x2="40" y2="150" stroke="#333" {}
                @for (i, k) in order.iter().enumerate() {
                    polyline points=(line(&maps[*k].road_morf_curve)) fill="none" stroke=(COLOURS[i % 3]) stroke-width="2" {}
                    polyline points=(line(&maps[*k].road_lerf_curve)) fill="none" stroke=(COLOURS[i % 3]) stroke-width="2" stroke-dasharray="4 3" {}
                }
            }
        }
    }
}

fn page(maps: &BTreeMap<String, MapSummary>, method: &str, o: &FaithOptions) -> Markup {
    let cell = |m: &MapSummary, k: &str| match (m.means.get(k).copied().flatten(), m.ci95.get(k)) {
        (Some(v), Some([lo, hi])) => format!("{v:.4} [{lo:.4}, {hi:.4}]"),
        (Some(v), None) => format!("{v:.4}"),
        _ => "-".into(),
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "cambox faithfulness" } style { "body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:right}figure{display:inline-block}" } }
            body {
                h1 { "cambox faithfulness" }
                p { "run: " (o.run.display()) "; method " (method) "; " (o.steps) " steps; deletion fills with " (format!("{:?}", o.fill).to_lowercase()) "; 95 % intervals from " (o.bootstrap) " resamples of images" }
                table {
                    tr { th { "map" } th { "pairs" } @for (n, _) in FIGURES { th { (n) } } }
                    @for (k, m) in maps { tr { td { (k) } td { (m.pairs) } @for (n, _) in FIGURES { td { (cell(m, n)) } } } }
                }
                (chart("Deletion", maps, method, |m| &m.deletion_curve))
                (chart("Insertion", maps, method, |m| &m.insertion_curve))
                @if maps.values().any(|m| !m.road_morf_curve.is_empty()) { (road_chart(maps, method)) }
                p { "Lower deletion AUC and higher insertion AUC than the random map's mean a faithful map; ROAD: a larger drop when the most relevant pixels go (MoRF) than the least (LeRF), so a positive road_combined." }
            }
        }
    }
}
