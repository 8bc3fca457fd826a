//! The validated run plan: configuration and flags resolved once into ready-built parts.
//!
//! This is the "high" half of the LowArgs -> HiArgs split. Everything that can be wrong
//! about a run (paths, model, preprocessing, labels, output folder) is found here, before
//! the first image, and reported as one [`Error`]. The pipeline only executes a plan.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cam::MapMethod;
use crate::config::{ClassRef, ClassesSpec, Config, JpegScaling, LocaliseConfig};
use crate::decode::Decoder;
use crate::discover::Discovery;
use crate::error::{Error, Result};
use crate::localise::{ClassSelection, Localiser, Recipe};
use crate::model::ModelPlan;
use crate::output::artefacts::Artefacts;
use crate::preprocess::Preprocessor;

/// Command-line values that override the configuration file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub out: Option<PathBuf>,
    /// When non-empty, replaces `[input] paths`.
    pub inputs: Vec<PathBuf>,
    pub threads: Option<usize>,
    /// Replaces `[cam] method`.
    pub method: Option<String>,
    /// Process only shard `index` of `count` (`--shard I/N`).
    pub shard: Option<(u32, u32)>,
}

/// Class names, index = class.
#[derive(Debug, Clone)]
pub struct Labels(Vec<String>);

impl Labels {
    pub fn load(path: Option<&Path>, num_classes: usize) -> Result<Labels> {
        let Some(path) = path else {
            return Ok(Labels((0..num_classes).map(|i| format!("class_{i}")).collect()));
        };
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let names: Vec<String> = text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
        if names.len() != num_classes {
            return Err(Error::config(
                path,
                format!("labels file has {} names but the model has {num_classes} classes", names.len()),
            ));
        }
        Ok(Labels(names))
    }

    pub fn name(&self, k: usize) -> &str {
        self.0.get(k).map(String::as_str).unwrap_or("")
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|n| n == name)
    }
}

/// Everything a run needs, built and checked.
pub struct RunPlan {
    /// The configuration after overrides, as recorded in `run.json`.
    pub config: Config,
    pub discovery: Discovery,
    pub decoder: Decoder,
    pub model: ModelPlan,
    pub model_sha256: String,
    pub labels: Labels,
    pub preprocessor: Preprocessor,
    pub out_dir: PathBuf,
    pub top_k: usize,
    pub threads: usize,
    pub classes: ClassSelection,
    pub localiser: Localiser,
    pub artefacts: Artefacts,
    pub method: MapMethod,
    pub shard: Option<(u32, u32)>,
    /// Identifies the result-affecting configuration, for resume and merge.
    pub fingerprint: String,
}

/// What `run.json` says about the model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport<'a> {
    pub path: &'a Path,
    pub sha256: &'a str,
    pub input: &'a crate::model::InputSpec,
    pub cut: &'a crate::model::CutReport,
}

impl RunPlan {
    pub fn build(mut config: Config, config_path: &Path, ov: Overrides) -> Result<RunPlan> {
        if !ov.inputs.is_empty() {
            config.input.paths = ov.inputs.clone();
        }
        if let Some(o) = &ov.out {
            config.output.dir = Some(o.clone());
        }
        if let Some(t) = ov.threads {
            config.run.threads = t;
        }
        if let Some(m) = &ov.method {
            config.cam.method = m.clone();
        }
        let method =
            MapMethod::parse(&config.cam.method).map_err(|e| Error::config(config_path, format!("[cam] {e}")))?;
        if config.input.paths.is_empty() {
            return Err(Error::config(config_path, "no input: set [input] paths or give folders on the command line"));
        }
        for p in &config.input.paths {
            if !p.exists() {
                return Err(Error::config(config_path, format!("input {} does not exist", p.display())));
            }
        }
        if config.input.extensions.is_empty() {
            return Err(Error::config(config_path, "[input] extensions is empty"));
        }
        if config.model.path.as_os_str().is_empty() {
            return Err(Error::config(config_path, "[model] path is missing"));
        }
        let out_dir = config
            .output
            .dir
            .clone()
            .ok_or_else(|| Error::config(config_path, "no output folder: set [output] dir or pass --out"))?;
        if config.output.top_k == 0 {
            return Err(Error::config(config_path, "[output] top_k must be at least 1"));
        }

        // The start-up probe is normalised like a real image, so mean/std must be sane
        // before the model is built; the rest of the recipe is checked against the
        // network's input size afterwards.
        let (mean, std) = (&config.preprocess.mean, &config.preprocess.std);
        if mean.is_empty()
            || std.is_empty()
            || std.iter().any(|s| !(s.is_finite() && *s != 0.0))
            || mean.iter().any(|m| !m.is_finite())
        {
            return Err(Error::config(
                config_path,
                "[preprocess] mean must be finite and std finite and non-zero (1 value, or one per channel)",
            ));
        }
        let pre_cfg = config.preprocess.clone();
        let normalise = move |c: usize, v: f32| {
            let pick = |a: &[f32]| if a.len() > c { a[c] } else { a[0] };
            let range = match pre_cfg.scale {
                crate::config::PixelScale::Unit => 1.0,
                crate::config::PixelScale::Byte => 255.0,
            };
            (v * range - pick(&pre_cfg.mean)) / pick(&pre_cfg.std)
        };
        let model = ModelPlan::load(
            &config.model.path,
            config.model.layout,
            config.model.input_size,
            config.model.feature.as_deref(),
            &normalise,
        )?;
        let preprocessor =
            Preprocessor::new(&config.preprocess, &model.input).map_err(|e| Error::config(config_path, e))?;
        let labels = Labels::load(config.model.labels.as_deref(), model.num_classes())?;
        let model_sha256 = sha256_file(&config.model.path)?;
        let discovery = Discovery::new(
            config.input.paths.clone(),
            &config.input.extensions,
            config.input.follow_symlinks,
            config.input.include_hidden,
        )
        .with_extensionless(config.input.sniff_dicom);
        let decoder = Decoder {
            max_pixels: config.run.max_pixels,
            max_file_bytes: config.run.max_file_bytes,
            sniff_dicom: config.input.sniff_dicom,
            window: config.decode.window,
            high_bit_depth: config.decode.high_bit_depth,
            jpeg_scaling: jpeg_scaling(&config),
        };
        let threads = if config.run.threads == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            config.run.threads
        };
        let top_k = config.output.top_k.min(model.num_classes());
        let classes = class_selection(&config.localise.classes, &labels, model.num_classes())
            .map_err(|e| Error::config(config_path, e))?;
        let localiser = Localiser::new(recipe(&config.localise).map_err(|e| Error::config(config_path, e))?);
        method.applies(&model.cut.head, model.program.is_some()).map_err(|e| Error::model(&config.model.path, e))?;
        let artefacts = Artefacts::new(&out_dir, &config.output);
        if let Some((i, n)) = ov.shard {
            if n == 0 || i >= n {
                return Err(Error::Usage(format!("--shard {i}/{n}: the index must be below the count")));
            }
        }
        let fingerprint = crate::resume::fingerprint(&config, &model_sha256);
        Ok(RunPlan {
            config,
            discovery,
            decoder,
            model,
            model_sha256,
            labels,
            preprocessor,
            out_dir,
            top_k,
            threads,
            classes,
            localiser,
            artefacts,
            method,
            shard: ov.shard,
            fingerprint,
        })
    }

    pub fn model_report(&self) -> ModelReport<'_> {
        ModelReport {
            path: &self.config.model.path,
            sha256: &self.model_sha256,
            input: &self.model.input,
            cut: &self.model.report,
        }
    }
}

/// The JPEG decoding the run uses: `[decode] jpeg_scaling`, except that overlays force
/// `exact`. An overlay is drawn on the decoded pixels at original resolution (one heatmap
/// value per original pixel), so a reduced decode would have to be scaled back up, and
/// the picture would be blurrier than the file; the saving (a few ms per image) is small
/// beside drawing and encoding a full-size JPEG overlay anyway. The configuration echoed
/// in `run.json` keeps what the user wrote; the run says on stderr that `dct` is unused.
pub fn jpeg_scaling(config: &Config) -> JpegScaling {
    if config.output.overlays {
        JpegScaling::Exact
    } else {
        config.decode.jpeg_scaling
    }
}

/// Resolves `[localise] classes` against the model's classes and names.
fn class_selection(spec: &ClassesSpec, labels: &Labels, k: usize) -> std::result::Result<ClassSelection, String> {
    match spec {
        ClassesSpec::Rule(r) => ClassSelection::parse(r),
        ClassesSpec::List(list) => {
            if list.is_empty() {
                return Err("[localise] classes is an empty list".into());
            }
            list.iter()
                .map(|c| match c {
                    ClassRef::Index(i) if *i < k => Ok(*i),
                    ClassRef::Index(i) => {
                        Err(format!("[localise] classes: index {i} is out of range (the model has {k} classes)"))
                    }
                    ClassRef::Name(n) => labels
                        .index_of(n)
                        .ok_or_else(|| format!("[localise] classes: no class named '{n}' in the labels")),
                })
                .collect::<std::result::Result<Vec<usize>, String>>()
                .map(ClassSelection::List)
        }
    }
}

/// Resolves `[localise]` into a recipe: a named preset, or `custom` from the keys.
pub fn recipe(c: &LocaliseConfig) -> std::result::Result<Recipe, String> {
    let custom_keys = [
        ("relu", c.relu.is_some()),
        ("normalise", c.normalise.is_some()),
        ("upsample", c.upsample.is_some()),
        ("quantise", c.quantise.is_some()),
        ("thresholds", c.thresholds.is_some()),
        ("components", c.components.is_some()),
        ("min_area", c.min_area.is_some()),
    ];
    let set: Vec<&str> = custom_keys.iter().filter(|(_, s)| *s).map(|(k, _)| *k).collect();
    if c.preset != "custom" && !set.is_empty() {
        return Err(format!(
            "[localise] preset = \"{}\" fixes the recipe, but {} {} set; use preset = \"custom\" to change it",
            c.preset,
            set.join(", "),
            if set.len() == 1 { "is" } else { "are" }
        ));
    }
    if c.tau.is_some() && c.preset != "wsol" {
        return Err("[localise] tau applies to preset = \"wsol\" only".into());
    }
    let r = match c.preset.as_str() {
        "cam-paper" => Recipe::cam_paper(),
        "chestxray8" => Recipe::chestxray8(),
        "wsol" => {
            let tau = c.tau.unwrap_or(crate::defaults::WSOL_TAU);
            if !(0.0..1.0).contains(&tau) {
                return Err(format!("[localise] tau = {tau} must be in [0, 1)"));
            }
            Recipe::wsol(tau)
        }
        "custom" => {
            let base = Recipe::cam_paper();
            let r = Recipe {
                preset: "custom".into(),
                relu: c.relu.unwrap_or(base.relu),
                normalise: c.normalise.unwrap_or(base.normalise),
                upsample: c.upsample.unwrap_or(base.upsample),
                quantise: c.quantise.unwrap_or(base.quantise),
                thresholds: c.thresholds.clone().unwrap_or(base.thresholds),
                keep: c.components.unwrap_or(base.keep),
                min_area: c.min_area.unwrap_or(base.min_area),
            };
            if r.thresholds.is_empty() {
                return Err("[localise] thresholds is empty".into());
            }
            if !(0.0..=1.0).contains(&r.min_area) {
                return Err("[localise] min_area is a fraction of the image area, in [0, 1]".into());
            }
            if r.upsample == crate::config::Resampling::Nearest {
                return Err("[localise] upsample must be bilinear or bicubic".into());
            }
            if r.thresholds.iter().any(|t| t.needs_u8()) && !r.quantise {
                return Err("[localise] u8:N thresholds need quantise = true (the 0-255 map)".into());
            }
            r
        }
        other => return Err(format!("[localise] unknown preset '{other}': cam-paper, wsol, chestxray8 or custom")),
    };
    Ok(r)
}

/// Hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::localise::{Keep, Threshold};

    #[test]
    fn presets_are_fixed_and_custom_builds_from_keys() {
        let mut c = LocaliseConfig::default();
        assert_eq!(recipe(&c).unwrap(), Recipe::cam_paper());
        c.preset = "wsol".into();
        c.tau = Some(0.35);
        assert_eq!(recipe(&c).unwrap().thresholds, vec![Threshold::Fraction(0.35)]);
        c.thresholds = Some(vec![Threshold::Otsu]);
        let e = recipe(&c).unwrap_err();
        assert!(e.contains("fixes the recipe") && e.contains("thresholds"), "{e}");
        c.preset = "custom".into();
        c.tau = None;
        c.components = Some(Keep::All);
        let r = recipe(&c).unwrap();
        assert_eq!((r.thresholds.clone(), r.keep, r.preset.as_str()), (vec![Threshold::Otsu], Keep::All, "custom"));
        c.thresholds = Some(vec![Threshold::U8(60)]);
        assert!(recipe(&c).unwrap_err().contains("quantise"));
        c.preset = "nope".into();
        c.thresholds = None;
        c.components = None;
        assert!(recipe(&c).unwrap_err().contains("unknown preset"));
    }

    #[test]
    fn overlays_force_exact_jpeg_decoding() {
        let mut c = Config::default();
        assert_eq!(jpeg_scaling(&c), JpegScaling::Exact);
        c.decode.jpeg_scaling = JpegScaling::Dct;
        assert_eq!(jpeg_scaling(&c), JpegScaling::Dct);
        c.output.overlays = true;
        assert_eq!(jpeg_scaling(&c), JpegScaling::Exact);
    }

    #[test]
    fn class_lists_resolve_names_and_check_indices() {
        let labels = Labels(vec!["NORMAL".into(), "PNEUMONIA".into()]);
        let spec = ClassesSpec::List(vec![ClassRef::Name("PNEUMONIA".into()), ClassRef::Index(0)]);
        assert_eq!(class_selection(&spec, &labels, 2).unwrap(), ClassSelection::List(vec![1, 0]));
        let bad = ClassesSpec::List(vec![ClassRef::Index(2)]);
        assert!(class_selection(&bad, &labels, 2).unwrap_err().contains("out of range"));
        let bad = ClassesSpec::List(vec![ClassRef::Name("COVID".into())]);
        assert!(class_selection(&bad, &labels, 2).unwrap_err().contains("COVID"));
        let toml: LocaliseConfig = toml::from_str("classes = [\"PNEUMONIA\", 0]").unwrap();
        assert_eq!(class_selection(&toml.classes, &labels, 2).unwrap(), ClassSelection::List(vec![1, 0]));
    }
}
