//! `cambox sanity`: the model-randomisation test of Adebayo et al. 2018 ("Sanity checks for
//! saliency maps").
//!
//! A map that explains the model must change when the model does. The model's
//! parameterised layers (convolutions and dense layers with a weight initializer) are
//! re-initialised from the top down, cascading: stage 1 the last layer (the classifier),
//! stage 2 the last two, and so on for `--layers` stages. At each stage the map of the
//! class the original model predicted is computed again and compared with the original map
//! by the Spearman rank correlation and SSIM (both on the maps upsampled to the network
//! input as the localisation does, min-max normalised). A method that passes shows both
//! falling towards 0 as layers are randomised; one that does not (an edge detector) keeps
//! them high. The `random_logit` row compares the map of a random other class, on the
//! original model, with the predicted class's: a class-sensitive method scores low there.
//!
//! Re-initialisation draws normal values with each tensor's own standard deviation (its
//! scale stays that of a trained layer) from SplitMix64 with the seed, so a check is
//! reproducible; biases are kept. The randomised models are written to `OUT/models/` and
//! loaded, cut and proved like any model, so the maps come from the same code as `run`'s.

use std::path::{Path, PathBuf};

use prost::Message;
use rayon::prelude::*;
use serde::Serialize;
use tract_onnx::pb::{tensor_proto, ModelProto, TensorProto};
use tract_onnx::prelude::Framework;

use super::impute::Normals;
use super::measure::derive_seed;
use crate::error::Error;
use crate::eval::bootstrap::SplitMix64;
use crate::plan::RunPlan;
use crate::stage::discover::Discovered;
use crate::stage::localise::minmax_in_place;
use crate::stage::maps::{ClassMaps, MapMethod};
use crate::stage::model::{ModelOptions, ModelPlan};
use crate::stage::preprocess::Normaliser;

/// Stages by default (`--layers`).
pub const DEFAULT_LAYERS: usize = 5;

/// One line of `sanity.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct SanityRow {
    /// `original`, `random_logit`, or `top-N` (the last N layers randomised).
    pub stage: String,
    /// The layer this stage added to the randomised ones.
    pub layer: String,
    pub spearman: f64,
    pub ssim: f64,
    pub images: usize,
}

/// The parameterised layers, last first: (node name, index of its weight initializer).
fn layers(p: &ModelProto) -> Vec<(String, usize)> {
    let g = p.graph.as_ref().expect("a graph (checked at load)");
    let mut out = Vec::new();
    for n in g.node.iter().rev() {
        if !matches!(n.op_type.as_str(), "Conv" | "Gemm" | "MatMul") {
            continue;
        }
        let weight = n.input.get(1).and_then(|w| g.initializer.iter().position(|t| &t.name == w));
        if let Some(i) = weight {
            out.push((if n.name.is_empty() { n.output[0].clone() } else { n.name.clone() }, i));
        }
    }
    out
}

/// The float values of an initializer (inline data only).
fn floats(t: &TensorProto) -> Option<Vec<f32>> {
    if t.data_type != tensor_proto::DataType::Float as i32
        || t.data_location == Some(tensor_proto::DataLocation::External as i32)
    {
        return None;
    }
    if !t.float_data.is_empty() {
        return Some(t.float_data.clone());
    }
    Some(t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// Re-initialises initializer `i` with normal values of its own standard deviation.
fn randomise(t: &mut TensorProto, seed: u64) -> Result<(), String> {
    let v = floats(t).ok_or_else(|| format!("initializer '{}' is not inline float32 data", t.name))?;
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let sd = (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt().max(1e-6);
    let mut g = Normals::new(seed);
    t.float_data = (0..v.len()).map(|_| (g.sample() * sd) as f32).collect();
    t.raw_data.clear();
    Ok(())
}

/// The model with its last `k` layers re-initialised, written to `path`.
fn randomised_model(
    proto: &ModelProto,
    layers: &[(String, usize)],
    k: usize,
    seed: u64,
    path: &Path,
) -> Result<(), String> {
    let mut p = proto.clone();
    let g = p.graph.as_mut().expect("a graph");
    for (n, (_, i)) in layers.iter().take(k).enumerate() {
        randomise(&mut g.initializer[*i], derive_seed(&[seed, n as u64]))?;
    }
    crate::output::atomic_write(path, &p.encode_to_vec()).map_err(|e| format!("{}: {e}", path.display()))
}

/// What `cambox sanity` is asked to do.
#[derive(Debug, Clone)]
pub struct SanityOptions {
    pub out: PathBuf,
    pub layers: usize,
    pub seed: u64,
}

/// One image: its network input, the predicted class and its map, a random other class.
struct Probe {
    tensor: ndarray::Array4<f32>,
    /// Width of the map (the network input's).
    width: usize,
    class: usize,
    other: usize,
    map: Vec<f32>,
}

/// Runs the check on the plan's inputs and writes `sanity.csv`.
pub fn run_sanity(plan: &RunPlan, o: &SanityOptions) -> Result<Vec<SanityRow>, Error> {
    let merr = |e: String| Error::model(&plan.config.model.path, e);
    std::fs::create_dir_all(o.out.join("models")).map_err(|e| Error::io(&o.out, e))?;
    let files: Vec<PathBuf> = plan
        .discovery
        .iter()
        .filter_map(|d| match d {
            Discovered::Image(f) => Some(f.path),
            Discovered::Unwalkable { .. } => None,
        })
        .collect();
    let probes: Vec<Probe> = files.par_iter().filter_map(|p| probe(plan, &plan.model, p, o.seed).ok()).collect();
    if probes.is_empty() {
        return Err(Error::Usage("no image could be read under the inputs".into()));
    }
    let mut rows = vec![compare(&probes, "original", "-", |p| Some(p.map.clone()))];
    rows.push(compare(&probes, "random_logit", "-", |p| class_map(plan, &plan.model, &p.tensor, p.other).ok()));
    let proto = tract_onnx::onnx().proto_model_for_path(&plan.config.model.path).map_err(|e| merr(format!("{e:#}")))?;
    let layers = layers(&proto);
    for k in 1..=o.layers.min(layers.len()) {
        let path = o.out.join("models").join(format!("top-{k}.onnx"));
        randomised_model(&proto, &layers, k, o.seed, &path).map_err(merr)?;
        let opts = ModelOptions { path: path.clone(), ..plan.config.model.clone() };
        let normaliser = Normaliser::new(&plan.config.preprocess).map_err(merr)?;
        let size = [plan.model.input.width, plan.model.input.height];
        let model = ModelPlan::load_sizes(&opts, &normaliser, |_| vec![size])?;
        rows.push(compare(&probes, &format!("top-{k}"), &layers[k - 1].0, |p| {
            class_map(plan, &model, &p.tensor, p.class).ok()
        }));
    }
    write_csv(&o.out.join("sanity.csv"), &rows)?;
    let page = plot(&rows).into_string();
    crate::output::atomic_write(&o.out.join("sanity.html"), page.as_bytes())
        .map_err(|e| Error::io(o.out.join("sanity.html"), e))?;
    Ok(rows)
}

/// `sanity.html`: Spearman and SSIM down the cascade, with the random-logit level dashed.
fn plot(rows: &[SanityRow]) -> maud::Markup {
    use maud::{html, DOCTYPE};
    let stages: Vec<&SanityRow> = rows.iter().filter(|r| r.stage != "random_logit").collect();
    let n = stages.len().max(2) - 1;
    let y = |v: f64| 150.0 - 140.0 * ((v + 1.0) / 2.0).clamp(0.0, 1.0);
    let pts = |f: fn(&SanityRow) -> f64| -> String {
        stages
            .iter()
            .enumerate()
            .map(|(i, r)| format!("{:.1},{:.1}", 40.0 + 250.0 * i as f64 / n as f64, y(f(r))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let level = rows.iter().find(|r| r.stage == "random_logit");
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "cambox sanity" } style { "body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px}" } }
            body {
                h1 { "cambox sanity: model randomisation, top down" }
                p { "Spearman (red) and SSIM (blue) between the original map and the map after randomising the last k layers; dashed: the random-logit level. y from -1 to 1." }
                svg width="300" height="170" viewBox="0 0 300 170" {
                    line x1="40" y1=(y(0.0)) x2="290" y2=(y(0.0)) stroke="#ccc" {}
                    line x1="40" y1="10" x2="40" y2="150" stroke="#333" {}
                    polyline points=(pts(|r| r.spearman)) fill="none" stroke="#d62728" stroke-width="2" {}
                    polyline points=(pts(|r| r.ssim)) fill="none" stroke="#1f77b4" stroke-width="2" {}
                    @if let Some(l) = level {
                        line x1="40" y1=(y(l.spearman)) x2="290" y2=(y(l.spearman)) stroke="#d62728" stroke-dasharray="4 3" {}
                        line x1="40" y1=(y(l.ssim)) x2="290" y2=(y(l.ssim)) stroke="#1f77b4" stroke-dasharray="4 3" {}
                    }
                }
                table {
                    tr { th { "stage" } th { "layer" } th { "Spearman" } th { "SSIM" } th { "images" } }
                    @for r in rows { tr { td { (r.stage) } td { (r.layer) } td { (format!("{:.4}", r.spearman)) } td { (format!("{:.4}", r.ssim)) } td { (r.images) } } }
                }
            }
        }
    }
}

fn write_csv(path: &Path, rows: &[SanityRow]) -> Result<(), Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["stage", "layer", "spearman", "ssim", "images"]).expect("in memory");
    for r in rows {
        w.write_record([
            r.stage.clone(),
            r.layer.clone(),
            format!("{:.6}", r.spearman),
            format!("{:.6}", r.ssim),
            r.images.to_string(),
        ])
        .expect("in memory");
    }
    crate::output::atomic_write(path, &w.into_inner().expect("in memory")).map_err(|e| Error::io(path, e))
}

/// The mean Spearman correlation and SSIM of each probe's map against `other`'s.
fn compare(probes: &[Probe], stage: &str, layer: &str, other: impl Fn(&Probe) -> Option<Vec<f32>> + Sync) -> SanityRow {
    let pairs: Vec<(f64, f64)> = probes
        .par_iter()
        .filter_map(|p| {
            let m = other(p)?;
            Some((spearman(&p.map, &m), ssim(&p.map, &m, p.width)))
        })
        .collect();
    let n = pairs.len().max(1) as f64;
    SanityRow {
        stage: stage.into(),
        layer: layer.into(),
        spearman: pairs.iter().map(|p| p.0).sum::<f64>() / n,
        ssim: pairs.iter().map(|p| p.1).sum::<f64>() / n,
        images: pairs.len(),
    }
}

fn probe(plan: &RunPlan, model: &ModelPlan, path: &Path, seed: u64) -> Result<Probe, String> {
    let img = plan.decoder.decode_file(path).map_err(|e| e.to_string())?;
    let input = plan.passes[0].run(&img).map_err(|e| e.to_string())?;
    let out = model.infer(input.tensor.clone())?;
    let probs = plan.activation.probabilities(&out.logits);
    let class = (0..probs.len()).fold(0, |b, i| if probs[i] > probs[b] { i } else { b });
    let mut r = SplitMix64::new(derive_seed(&[seed, crate::run::resume::fnv1a(&path.to_string_lossy())]));
    let other = (class + 1 + r.index(probs.len().saturating_sub(1).max(1))) % probs.len();
    let map = class_map(plan, model, &input.tensor, class)?;
    Ok(Probe { tensor: input.tensor, width: model.input.width, class, other, map })
}

/// The map of `class` under `model`, at network-input resolution, in [0, 1].
fn class_map(
    plan: &RunPlan,
    model: &ModelPlan,
    tensor: &ndarray::Array4<f32>,
    class: usize,
) -> Result<Vec<f32>, String> {
    let out = model.infer(tensor.clone())?;
    let maps = match plan.method {
        MapMethod::Cam => ClassMaps::cam(&model.head, &out.features, &[class]).ok_or("the head is not linear")?,
        m => ClassMaps::by_method(m, model.program.as_ref(), &out.features, &[class])?,
    };
    let mut v = plan.localiser.network_map(maps.map(0), model.input.width, model.input.height);
    minmax_in_place(&mut v);
    Ok(v)
}

/// Ranks with ties averaged (1-based), as scipy's `rankdata`.
fn ranks(v: &[f32]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        idx[i..=j].iter().for_each(|&k| r[k] = avg);
        i = j + 1;
    }
    r
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    if va == 0.0 || vb == 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

/// Spearman's rank correlation (0 when a map is constant).
pub fn spearman(a: &[f32], b: &[f32]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// SSIM of two maps in [0, 1] of width `w`, as scikit-image computes it with
/// `gaussian_weights=True` (sigma 1.5, an 11-tap window, reflected edges, data range 1),
/// averaged over the pixels five from every edge.
pub fn ssim(a: &[f32], b: &[f32], w: usize) -> f64 {
    let h = a.len() / w;
    let taps: Vec<f64> = {
        let t: Vec<f64> = (-5..=5).map(|d: i64| (-(d * d) as f64 / (2.0 * 1.5 * 1.5)).exp()).collect();
        let s: f64 = t.iter().sum();
        t.iter().map(|x| x / s).collect()
    };
    let reflect = |i: i64, n: usize| -> usize {
        let n = n as i64;
        let m = i.rem_euclid(2 * n);
        (if m < n { m } else { 2 * n - 1 - m }) as usize
    };
    let filter = |f: &dyn Fn(usize) -> f64| -> Vec<f64> {
        let mut tmp = vec![0.0; w * h];
        for y in 0..h {
            for x in 0..w {
                tmp[y * w + x] = (0..11).map(|t| taps[t] * f(y * w + reflect(x as i64 + t as i64 - 5, w))).sum();
            }
        }
        let mut out = vec![0.0; w * h];
        for y in 0..h {
            for x in 0..w {
                out[y * w + x] = (0..11).map(|t| taps[t] * tmp[reflect(y as i64 + t as i64 - 5, h) * w + x]).sum();
            }
        }
        out
    };
    let (av, bv) = (|i: usize| a[i] as f64, |i: usize| b[i] as f64);
    let (ma, mb) = (filter(&av), filter(&bv));
    let (aa, bb, ab) = (filter(&|i| av(i) * av(i)), filter(&|i| bv(i) * bv(i)), filter(&|i| av(i) * bv(i)));
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let (mut sum, mut n) = (0.0, 0usize);
    for y in 5..h.saturating_sub(5) {
        for x in 5..w.saturating_sub(5) {
            let i = y * w + x;
            let (va, vb, cov) = (aa[i] - ma[i] * ma[i], bb[i] - mb[i] * mb[i], ab[i] - ma[i] * mb[i]);
            sum += ((2.0 * ma[i] * mb[i] + c1) * (2.0 * cov + c2))
                / ((ma[i] * ma[i] + mb[i] * mb[i] + c1) * (va + vb + c2));
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_and_ssim_by_hand() {
        let a: Vec<f32> = (0..400).map(|i| ((i * 37) % 400) as f32 / 400.0).collect();
        let b: Vec<f32> = a.iter().map(|v| 1.0 - v).collect();
        assert!((spearman(&a, &a) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &b) + 1.0).abs() < 1e-12);
        assert_eq!(ranks(&[0.5, 0.1, 0.5]), vec![2.5, 1.0, 2.5]);
        assert!((ssim(&a, &a, 20) - 1.0).abs() < 1e-12);
        assert!(ssim(&a, &b, 20) < 0.0);
    }
}
