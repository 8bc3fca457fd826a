//! Explaining images handed over one at a time, in memory: the entry point of the Python
//! binding (`python/`), which has neither a folder to walk nor an output folder to write.
//!
//! An image (a file `run` could read, or pixels already decoded, such as a numpy array)
//! takes the trip it takes in a run, through the same steps ([`crate::run::image`]:
//! decode, passes, network, scores, class maps, localisation), under a plan built from the
//! same configuration by [`RunPlan::for_images`]. What a run would write is handed back
//! instead: the `images.csv` row and the `boxes.csv` rows (made by the run's own
//! [`rows`]), the maps `maps/` would keep with their geometry, and for every localised
//! class its normalised map at original resolution and its mask (the pixels of the
//! `masks/` PNG), and with `[output] overlays` the overlay. So a file explained under a
//! configuration gives the probabilities, boxes and maps `cambox run` gives it under that
//! configuration; only `[truth]` is not read (there is no path to look the image up by).
//!
//! [`configuration`] reads the configuration as `run` does, with keys replaced by name
//! (the binding's keyword arguments), and [`Explainer`] explains lists in parallel on the
//! plan's worker threads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ::image::RgbImage;
use rayon::prelude::*;

use crate::config::Config;
use crate::error::{Error, ImageError, Result};
use crate::output::artefacts::overlay;
use crate::output::boxes_csv::BoxRow;
use crate::output::images_csv::ImageRow;
use crate::plan::RunPlan;
use crate::run::image::{self, ClassMap, ImageInfo, ImageOutcome, ImageRecord, PassMaps, Scores};
use crate::run::pipeline::rows;
use crate::run::timing::StageTimes;
use crate::stage::decode::{Samples, SourceImage, MIN_SIDE};
use crate::stage::localise::{BoxSet, ClassLocalisation, ClassSelection};
use crate::stage::maps::{ClassMaps, Prediction};
use crate::stage::preprocess::Geometry;

/// The keys of each section of the configuration that can be set by name (`input_size`, or
/// `model.input_size`). `[truth]` is not among them: a run takes it from its own
/// arguments (as from `--truth`), and explaining does not read it.
pub const SETTINGS: &[(&str, &[&str])] = &[
    ("input", &["paths", "extensions", "follow_symlinks", "include_hidden", "sniff_dicom"]),
    ("model", &["path", "labels", "layout", "input_size", "feature", "activation", "kernels"]),
    ("preprocess", &["resize", "resize_to", "resampling", "channels", "scale", "mean", "std", "pad_value"]),
    ("cam", &["method", "recipe", "scales", "flip"]),
    (
        "localise",
        &[
            "classes",
            "preset",
            "tau",
            "taus",
            "relu",
            "normalise",
            "upsample",
            "quantise",
            "thresholds",
            "components",
            "min_area",
        ],
    ),
    ("output", &["dir", "top_k", "masks", "overlays", "maps", "probabilities"]),
    ("run", &["threads", "max_pixels", "max_file_bytes", "memory_budget"]),
    ("decode", &["window", "high_bit_depth", "jpeg_scaling"]),
];

/// Settings whose values are paths. Given by name they are relative to the working
/// folder, as paths on the command line are, not to the configuration file's folder.
const PATH_SETTINGS: &[(&str, &str)] = &[("input", "paths"), ("model", "path"), ("model", "labels"), ("output", "dir")];

/// The section and key of a setting named `key` or `section.key`.
pub fn setting(name: &str) -> Result<(&'static str, &'static str)> {
    let (section, key) = match name.split_once('.') {
        Some((s, k)) => (Some(s), k),
        None => (None, name),
    };
    SETTINGS
        .iter()
        .filter(|(s, _)| section.is_none_or(|want| want == *s))
        .find_map(|(s, keys)| keys.iter().find(|k| **k == key).map(|k| (*s, *k)))
        .ok_or_else(|| {
            let sections: Vec<String> = SETTINGS.iter().map(|(s, _)| format!("[{s}]")).collect();
            Error::Usage(format!(
                "unknown setting '{name}': settings are the keys of {} (docs/configuration.md)",
                sections.join(", ")
            ))
        })
}

/// The configuration: the TOML file as `run` reads it (the defaults without one), with
/// `settings` (name, value) put in. A value that does not fit its key is a usage error
/// naming the setting; faults of the file are said as `run` says them.
pub fn configuration(file: Option<&Path>, settings: Vec<(String, toml::Value)>) -> Result<Config> {
    let Some(path) = file else { return with_settings(toml::Table::new(), settings) };
    let config = Config::load(path)?;
    if settings.is_empty() {
        return Ok(config);
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| Error::config(path, e.to_string().trim_end()))?;
    let mut config = with_settings(table, settings)?;
    config.rebase(path.parent().unwrap_or(Path::new(".")));
    Ok(config)
}

/// `table` with the settings in, as a configuration (paths as written).
fn with_settings(mut table: toml::Table, settings: Vec<(String, toml::Value)>) -> Result<Config> {
    let section_of = |key: &str, value: toml::Value| toml::Table::from_iter([(key.to_string(), value)]);
    for (name, value) in settings {
        let (section, key) = setting(&name)?;
        let value = absolute(section, key, value)?;
        // Checked alone first, so that the message names the setting at fault.
        let alone = toml::Table::from_iter([(section.to_string(), toml::Value::Table(section_of(key, value.clone())))]);
        toml::Value::Table(alone)
            .try_into::<Config>()
            .map_err(|e| Error::Usage(format!("{name} = {value}: {}", message(&e))))?;
        match table.get_mut(section) {
            Some(toml::Value::Table(t)) => {
                t.insert(key.to_string(), value);
            }
            _ => {
                table.insert(section.to_string(), toml::Value::Table(section_of(key, value)));
            }
        }
    }
    toml::Value::Table(table).try_into::<Config>().map_err(|e| Error::Usage(message(&e)))
}

/// toml's message for a value, without the line naming its key (the caller names it).
fn message(e: &toml::de::Error) -> String {
    let text = e.to_string();
    let text = text.trim_end();
    text.rsplit_once("\nin `").map_or(text, |(m, _)| m).to_string()
}

/// A path setting made absolute against the working folder (see [`PATH_SETTINGS`]).
fn absolute(section: &str, key: &str, value: toml::Value) -> Result<toml::Value> {
    if !PATH_SETTINGS.contains(&(section, key)) {
        return Ok(value);
    }
    let one = |v: toml::Value| match v {
        toml::Value::String(s) if !s.is_empty() => std::path::absolute(&s)
            .map(|p| toml::Value::String(p.to_string_lossy().into_owned()))
            .map_err(|e| Error::io(&s, e)),
        other => Ok(other),
    };
    match value {
        toml::Value::Array(items) => items.into_iter().map(one).collect::<Result<Vec<_>>>().map(toml::Value::Array),
        v => one(v),
    }
}

/// An image already decoded: `width` x `height` pixels of `channels` (1, grey, or 3, RGB)
/// interleaved samples meaning values in [0, 1] (a byte v means v / 255), from a file of
/// `bit_depth` bits per sample. Refused as a decoded file would be (too small), or when
/// the samples cannot be an image (another channel count, too few samples, values outside
/// [0, 1]).
pub fn pixels(
    width: usize,
    height: usize,
    channels: usize,
    data: Samples,
    bit_depth: u8,
) -> Result<SourceImage, ImageError> {
    if channels != 1 && channels != 3 {
        return Err(ImageError::Refused(format!("{channels} channels: an image has 1 (grey) or 3 (RGB)")));
    }
    if data.len() != width * height * channels {
        return Err(ImageError::Refused(format!(
            "{} samples for {width}x{height} pixels of {channels} channels",
            data.len()
        )));
    }
    let side = |n: usize| u32::try_from(n).ok().filter(|&n| n >= MIN_SIDE);
    let (Some(w), Some(h)) = (side(width), side(height)) else {
        return Err(ImageError::Refused(format!(
            "image is {width}x{height} pixels, below the minimum side of {MIN_SIDE}"
        )));
    };
    if let Samples::F32(v) = &data {
        if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !(0.0..=1.0).contains(*x)) {
            let (p, c) = (i / channels, i % channels);
            return Err(ImageError::Refused(format!(
                "sample {x} at row {}, column {}, channel {c}: float samples must be in [0, 1] (divide 8-bit values by 255)",
                p / width,
                p % width
            )));
        }
    }
    Ok(SourceImage::new(w, h, channels, data, bit_depth, Default::default()))
}

/// What to explain.
pub enum Source {
    /// A file, read as `run` reads it (any format, DICOM included).
    File(PathBuf),
    /// An image already decoded ([`pixels`]).
    Pixels(SourceImage),
}

/// What a run would have made of one image.
pub struct Explanation {
    /// Original size and the file's facts (DICOM identifiers).
    pub info: ImageInfo,
    pub prediction: Prediction,
    /// With `cam`: the largest |mean(M_k) + b_k - logit_k| over the checked classes.
    pub logit_check: Option<f32>,
    /// How original pixels map onto the grid of `maps`.
    pub geometry: Geometry,
    /// Every localised class, in order: its normalised map at original resolution, its
    /// mask (255 on the kept components, the bytes of the `masks/` PNG), its boxes.
    pub classes: Vec<ClassLocalisation>,
    /// With `[output] overlays`: each localised class's overlay, as `overlays/` would hold
    /// it before JPEG encoding.
    pub overlays: Vec<RgbImage>,
    /// What `maps/` would keep: the raw maps of the one pass, or the average of several
    /// passes on the largest pass's grid; `None` when the method has no maps.
    pub maps: Option<ClassMaps>,
    /// The passes averaged into `maps`.
    pub passes: usize,
    /// The rows `run` would write.
    pub image_row: ImageRow,
    pub box_rows: Vec<BoxRow>,
}

/// Explains one image, named `name` in its rows; localises the classes `classes` selects
/// (the plan's `[localise] classes` when `None`). Never panics: a panic is this image's
/// error, as in a run.
pub fn explain(
    plan: &RunPlan,
    name: &str,
    source: Source,
    classes: Option<&ClassSelection>,
) -> Result<Explanation, ImageError> {
    let t0 = Instant::now();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| trip(plan, name, source, classes, t0)))
        .unwrap_or_else(|p| Err(ImageError::Panic(image::panic_message(p.as_ref()))))
}

/// The steps of [`crate::run::image`], in the same order, without the files.
fn trip(
    plan: &RunPlan,
    name: &str,
    source: Source,
    classes: Option<&ClassSelection>,
    t0: Instant,
) -> Result<Explanation, ImageError> {
    let (_credit, (img, info)) = match source {
        // A file is held to the run's memory budget; pixels are already in memory.
        Source::File(path) => (Some(plan.budget.acquire(plan.image_bytes(&path))), image::decode(plan, &path)?),
        Source::Pixels(img) => {
            let info = ImageInfo { width: img.original.0, height: img.original.1, meta: img.meta.clone() };
            (None, (img, info))
        }
    };
    let (inputs, img) = image::passes(plan, img)?;
    let looks = image::infer(plan, inputs)?;
    let scores = Scores::selecting(plan, classes.unwrap_or(&plan.classes), name, &looks);
    let maps = PassMaps::of(plan, looks, &scores.needed)?;
    let geometry = maps.geometry();
    let (localised, kept) = match &maps.maps {
        Some(_) => localise(plan, &maps, &scores.localised),
        None => (Vec::new(), None),
    };
    let overlays = match &img {
        Some(src) => localised.iter().map(|l| overlay(src, l)).collect(),
        None => Vec::new(),
    };
    // The run's own rows, from the record the run would have made.
    let boxes = localised.iter().map(|l| BoxSet { class: l.class, boxes: l.boxes.clone() }).collect();
    let outcome = ImageOutcome {
        prediction: scores.prediction.clone(),
        logit_check: maps.logit_check,
        geometry,
        boxes,
        files: Vec::new(),
    };
    let record = ImageRecord {
        rel: name.to_string(),
        info: Some(info.clone()),
        outcome: Ok(outcome),
        ms: t0.elapsed().as_secs_f64() * 1e3,
        stages: StageTimes::default(),
    };
    let (image_row, box_rows) = rows(plan, &record);
    Ok(Explanation {
        info,
        prediction: scores.prediction,
        logit_check: maps.logit_check,
        geometry,
        classes: localised,
        overlays,
        maps: kept,
        passes: maps.looks.len(),
        image_row,
        box_rows,
    })
}

/// Each class localised as a run localises it, and the maps `maps/` would keep.
fn localise(plan: &RunPlan, maps: &PassMaps, classes: &[usize]) -> (Vec<ClassLocalisation>, Option<ClassMaps>) {
    let geometry = maps.geometry();
    let (mut out, mut fused) = (Vec::with_capacity(classes.len()), Vec::new());
    for &k in classes {
        out.push(match maps.map_of(plan, k) {
            ClassMap::Pass(m) => plan.localiser(k).localise(k, m, &geometry),
            ClassMap::Fused(m) => {
                let loc = plan.localiser(k).localise(k, m.view(), &geometry);
                fused.push(m);
                loc
            }
        });
    }
    (out, Some(maps.kept(classes, fused)))
}

/// A plan with its worker threads: explains lists of images in parallel.
pub struct Explainer {
    pub plan: RunPlan,
    pool: rayon::ThreadPool,
}

impl Explainer {
    /// The plan with a pool of `[run] threads` workers.
    pub fn new(plan: RunPlan) -> Result<Explainer> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(plan.threads)
            .thread_name(|i| format!("cambox-{i}"))
            .build()
            .map_err(|e| Error::Usage(format!("cannot start {} worker threads: {e}", plan.threads)))?;
        Ok(Explainer { plan, pool })
    }

    /// Explains `items` (name, source) on the workers, in order; `done` is called as each
    /// finishes. Once `cancel` is set no further item is started, and those not started are
    /// `None`.
    pub fn explain_all(
        &self,
        items: Vec<(String, Source)>,
        classes: Option<&ClassSelection>,
        done: &(dyn Fn() + Sync),
        cancel: &AtomicBool,
    ) -> Vec<Option<Result<Explanation, ImageError>>> {
        self.pool.install(|| {
            items
                .into_par_iter()
                .map(|(name, source)| {
                    if cancel.load(Ordering::Relaxed) {
                        return None;
                    }
                    let r = explain(&self.plan, &name, source, classes);
                    done();
                    Some(r)
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_a_key_of_its_section() {
        // An unknown key is refused by the configuration itself ("unknown field"), so a
        // value that fits no key (a list holding a table) shows that every listed key is one.
        let fits_nothing = toml::Value::Array(vec![toml::Value::Table(toml::Table::new())]);
        for (section, keys) in SETTINGS {
            for key in *keys {
                let e = with_settings(toml::Table::new(), vec![(key.to_string(), fits_nothing.clone())])
                    .unwrap_err()
                    .to_string();
                assert!(!e.contains("unknown field"), "[{section}] {key}: {e}");
                assert!(e.starts_with(&format!("{key} = [{{}}]: ")), "{e}");
            }
        }
    }

    #[test]
    fn settings_are_found_by_key_or_section_and_key() {
        assert_eq!(setting("input_size").unwrap(), ("model", "input_size"));
        assert_eq!(setting("preprocess.mean").unwrap(), ("preprocess", "mean"));
        let e = setting("cam.mean").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Usage);
        assert!(e.to_string().starts_with("unknown setting 'cam.mean'"), "{e}");
        assert!(setting("inputsize").is_err());
    }

    #[test]
    fn a_bad_value_names_its_setting() {
        let bad = vec![("method".to_string(), toml::Value::String("gradkam".into()))];
        let e = with_settings(toml::Table::new(), bad).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Usage);
        let text = e.to_string();
        assert!(text.starts_with("method = \"gradkam\": ") && text.contains("gradcam"), "{text}");
        let size = vec![("input_size".to_string(), toml::Value::try_from([480, 320]).unwrap())];
        assert_eq!(with_settings(toml::Table::new(), size).unwrap().model.input_size, Some([480, 320]));
    }

    #[test]
    fn pixels_are_checked_like_a_decoded_file() {
        let ok = pixels(8, 9, 3, Samples::U8(vec![7; 8 * 9 * 3]), 8).unwrap();
        assert_eq!((ok.width, ok.height, ok.channels, ok.original), (8, 9, 3, (8, 9)));
        let e = pixels(8, 7, 1, Samples::U8(vec![0; 56]), 8).unwrap_err().to_string();
        assert_eq!(e, "refused: image is 8x7 pixels, below the minimum side of 8");
        let e = pixels(8, 8, 4, Samples::U8(vec![0; 256]), 8).unwrap_err().to_string();
        assert!(e.contains("4 channels"), "{e}");
        let mut v = vec![0.5f32; 64];
        v[9] = 255.0;
        let e = pixels(8, 8, 1, Samples::F32(v), 32).unwrap_err().to_string();
        assert!(e.contains("sample 255 at row 1, column 1"), "{e}");
        let e = pixels(8, 8, 1, Samples::F32(vec![f32::NAN; 64]), 32).unwrap_err().to_string();
        assert!(e.contains("NaN"), "{e}");
    }
}
