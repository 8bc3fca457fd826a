//! The run configuration as written by the user (TOML), before validation.
//!
//! This is the "low" half of the LowArgs -> HiArgs split: plain data, every field with a
//! documented default, `deny_unknown_fields` so a typo is an error rather than a silently
//! ignored option. Each section is the option type of the stage that consumes it
//! (`[input]` is [`InputOptions`], `[decode]` is [`DecodeOptions`], ...): this module
//! only parses TOML into them and checks what the stages cannot check alone, and no stage
//! imports it. [`crate::plan::RunPlan`] turns it into ready-built parts. Relative paths in
//! a config file are relative to the file's own folder, so a config works from any
//! working directory; paths given on the command line are relative to the working
//! directory, as usual.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::error::{Error, Result};
use crate::output::OutputOptions;
use crate::stage::decode::{DecodeOptions, Decoder, JpegScaling};
use crate::stage::discover::InputOptions;
use crate::stage::localise::{Keep, Normalise, Preset, Recipe, Threshold};
use crate::stage::maps::MethodChoice;
use crate::stage::model::ModelOptions;
use crate::stage::preprocess::{CamRecipe, PreprocessOptions, Resampling, Scale};
use crate::truth::annotations::Format;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub input: InputOptions,
    pub model: ModelOptions,
    pub preprocess: PreprocessOptions,
    pub output: OutputOptions,
    pub localise: LocaliseConfig,
    pub cam: CamConfig,
    pub run: RunConfig,
    pub decode: DecodeOptions,
    /// Annotations whose classes every image also gets boxes for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truth: Option<TruthConfig>,
}

/// `[truth]`: ground truth for the run. Every image the annotations name also gets boxes
/// (and maps) for the model classes its truth labels mean, whatever the prediction: what
/// GT-known evaluation and the threshold sweep need, for every class of a study at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TruthConfig {
    /// The annotations (RSNA or NIH CSV, generic CSV, VOC folder or .xml, COCO .json).
    pub annotations: PathBuf,
    /// `rsna`, `nih`, `generic`, `voc` or `coco`; told from the file when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// `truth_label,model_class` CSV ([`crate::truth::class_map`]); without it a label
    /// means the model class of the same name (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_map: Option<PathBuf>,
}

/// `[cam]`: how class maps are computed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CamConfig {
    /// `auto` (default: `cam` for a linear head, `gradcam` otherwise), `cam`, `gradcam`,
    /// `gradcam++`, `hirescam`, `eigencam`, `ablationcam`. A plan records the method it
    /// resolved to, so `run.json` and the fingerprint name the method that ran.
    pub method: MethodChoice,
    /// `standard` (one pass) or `sharp` (several scales and mirrored passes); supplies
    /// `scales` and `flip` when they are not given. Absent keys are not written, so
    /// configurations from before they existed keep their fingerprint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipe: Option<CamRecipe>,
    /// Network input sizes to run and average ([`crate::stage::preprocess::passes`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scales: Option<Vec<Scale>>,
    /// Add a mirrored pass at each scale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flip: Option<bool>,
}

impl CamConfig {
    /// The scales and flip of the run: the keys, else the recipe's.
    pub fn passes(&self) -> (Vec<Scale>, bool) {
        let recipe = self.recipe.unwrap_or_default();
        (self.scales.clone().unwrap_or_else(|| recipe.scales()), self.flip.unwrap_or_else(|| recipe.flip()))
    }
}

/// A class given by index or by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClassRef {
    Index(usize),
    Name(String),
}

/// `classes = "top1"`, `"topk:3"`, `"above:0.5"`, or a list such as `[1, "PNEUMONIA"]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClassesSpec {
    Rule(String),
    List(Vec<ClassRef>),
}

/// `[localise]`: which classes get boxes and how maps become boxes. A named preset fixes
/// the recipe (so the `preset` column in `boxes.csv` means what it says); `custom`
/// builds one from the keys below, each defaulting to the CAM paper's choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocaliseConfig {
    pub classes: ClassesSpec,
    /// `cam-paper`, `wsol`, `chestxray8`, `sharp` or `custom`; when absent, the map
    /// recipe's own (`cam-paper`, or `sharp` with `[cam] recipe = "sharp"`). Written
    /// as the preset it resolves to without the map recipe (`cam-paper`), as before.
    #[serde(serialize_with = "preset_as_written")]
    pub preset: Option<Preset>,
    /// wsol's tau (fraction of the 8-bit map's maximum).
    pub tau: Option<f32>,
    pub relu: Option<bool>,
    pub normalise: Option<Normalise>,
    pub upsample: Option<Resampling>,
    pub quantise: Option<bool>,
    pub thresholds: Option<Vec<Threshold>>,
    pub components: Option<Keep>,
    pub min_area: Option<f32>,
    /// wsol's tau per model class (by name or index), as `cambox eval --calibrate` writes
    /// them; classes not listed use `tau`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taus: Option<BTreeMap<String, f32>>,
}

impl Default for LocaliseConfig {
    fn default() -> Self {
        LocaliseConfig {
            classes: ClassesSpec::Rule("top1".into()),
            preset: None,
            tau: None,
            relu: None,
            normalise: None,
            upsample: None,
            quantise: None,
            thresholds: None,
            components: None,
            min_area: None,
            taus: None,
        }
    }
}

/// An absent preset as earlier versions wrote it (their default), so that fingerprints
/// and `run.json` keep their text.
fn preset_as_written<S: serde::Serializer>(p: &Option<Preset>, s: S) -> std::result::Result<S::Ok, S::Error> {
    p.unwrap_or_default().serialize(s)
}

impl LocaliseConfig {
    /// The preset in force: the one named, else the map recipe's.
    pub fn preset(&self, cam: CamRecipe) -> Preset {
        self.preset.unwrap_or(match cam {
            CamRecipe::Standard => Preset::CamPaper,
            CamRecipe::Sharp => Preset::Sharp,
        })
    }

    /// The recipe: a named preset (or the map recipe's), or `custom` from the keys.
    pub fn recipe(&self, cam: CamRecipe) -> std::result::Result<Recipe, String> {
        let c = self;
        let preset = self.preset(cam);
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
        if preset != Preset::Custom && !set.is_empty() {
            return Err(format!(
                "[localise] preset = \"{}\" fixes the recipe, but {} {} set; use preset = \"custom\" to change it",
                preset.name(),
                set.join(", "),
                if set.len() == 1 { "is" } else { "are" }
            ));
        }
        if c.tau.is_some() && preset != Preset::Wsol {
            return Err("[localise] tau applies to preset = \"wsol\" only".into());
        }
        if c.taus.is_some() && preset != Preset::Wsol {
            return Err("[localise] taus applies to preset = \"wsol\" only".into());
        }
        if let Some((k, t)) = c.taus.iter().flatten().find(|(_, t)| !(0.0..1.0).contains(*t)) {
            return Err(format!("[localise] taus: {k} = {t} must be in [0, 1)"));
        }
        let r = match preset {
            Preset::CamPaper => Recipe::cam_paper(),
            Preset::Sharp => Recipe::sharp(),
            Preset::Chestxray8 => Recipe::chestxray8(),
            Preset::Wsol => {
                let tau = c.tau.unwrap_or(defaults::WSOL_TAU);
                if !(0.0..1.0).contains(&tau) {
                    return Err(format!("[localise] tau = {tau} must be in [0, 1)"));
                }
                Recipe::wsol(tau)
            }
            Preset::Custom => {
                let base = Recipe::cam_paper();
                let r = Recipe {
                    preset: Preset::Custom,
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
                if r.upsample == Resampling::Nearest {
                    return Err("[localise] upsample must be bilinear or bicubic".into());
                }
                if r.thresholds.iter().any(|t| t.needs_u8()) && !r.quantise {
                    return Err("[localise] u8:N thresholds need quantise = true (the 0-255 map)".into());
                }
                r
            }
        };
        Ok(r)
    }
}

/// `[run]`: how the run is executed and what it accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Worker threads; 0 = one per core.
    pub threads: usize,
    /// Refuse images whose header claims more pixels than this.
    pub max_pixels: u64,
    /// Refuse files larger than this many bytes.
    pub max_file_bytes: u64,
    /// Bytes of image memory the workers may hold at once (see
    /// [`crate::run::budget`]): a number of bytes, or text such as `"768 MiB"`, `"2GB"`.
    pub memory_budget: ByteSize,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            threads: 0,
            max_pixels: defaults::MAX_PIXELS,
            max_file_bytes: defaults::MAX_FILE_BYTES,
            memory_budget: ByteSize(defaults::MEMORY_BUDGET),
        }
    }
}

/// A number of bytes, written as a number or as text with a unit (`kB`, `MB`, `GB` are
/// powers of 1000, `KiB`, `MiB`, `GiB` and the bare `K`, `M`, `G` powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ByteSizeRaw", into = "u64")]
pub struct ByteSize(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum ByteSizeRaw {
    Number(u64),
    Text(String),
}

impl From<ByteSize> for u64 {
    fn from(b: ByteSize) -> u64 {
        b.0
    }
}

impl TryFrom<ByteSizeRaw> for ByteSize {
    type Error = String;
    fn try_from(raw: ByteSizeRaw) -> std::result::Result<ByteSize, String> {
        let text = match raw {
            ByteSizeRaw::Number(n) => return Ok(ByteSize(n)),
            ByteSizeRaw::Text(t) => t,
        };
        let t = text.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (num, unit) = (t[..split].trim(), t[split..].trim());
        let n: f64 = num
            .parse()
            .map_err(|_| format!("'{text}' is not a size (a number, then B, kB, MB, GB, KiB, MiB or GiB)"))?;
        let k = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "kb" => 1e3,
            "mb" => 1e6,
            "gb" => 1e9,
            "k" | "kib" => 1024.0,
            "m" | "mib" => 1024.0 * 1024.0,
            "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
            _ => return Err(format!("'{text}': unknown unit '{unit}' (B, kB, MB, GB, KiB, MiB or GiB)")),
        };
        Ok(ByteSize((n * k).round() as u64))
    }
}

impl Config {
    /// Reads a TOML file and makes its relative paths relative to the file's folder.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        // toml's message points at the line and column with a caret under the culprit:
        // kept as it is, on several lines.
        let mut cfg: Config = toml::from_str(&text).map_err(|e| Error::config(path, e.to_string().trim_end()))?;
        cfg.rebase(path.parent().unwrap_or(Path::new(".")));
        Ok(cfg)
    }

    /// Makes the relative paths of the configuration relative to `base`, the folder of the
    /// file they were written in.
    pub fn rebase(&mut self, base: &Path) {
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        self.input.paths.iter_mut().for_each(rebase);
        rebase(&mut self.model.path);
        if let Some(l) = self.model.labels.as_mut() {
            rebase(l);
        }
        if let Some(d) = self.output.dir.as_mut() {
            rebase(d);
        }
        if let Some(t) = self.truth.as_mut() {
            rebase(&mut t.annotations);
            if let Some(m) = t.class_map.as_mut() {
                rebase(m);
            }
        }
    }

    /// The decoder this configuration describes (`[decode]`, the limits of `[run]`,
    /// `[input] sniff_dicom`), decoding JPEGs as `jpeg_scaling` says: the run and `eval`'s
    /// report thumbnails read images the same way, except for that.
    pub fn decoder(&self, jpeg_scaling: JpegScaling) -> Decoder {
        let decode = DecodeOptions { jpeg_scaling, ..self.decode.clone() };
        Decoder::new(&decode, self.run.max_pixels, self.run.max_file_bytes, self.input.sniff_dicom)
    }

    /// The JPEG decoding the run uses: `[decode] jpeg_scaling`, except that overlays force
    /// `exact`. An overlay is drawn on the decoded pixels at original resolution (one
    /// heatmap value per original pixel), so a reduced decode would have to be scaled back
    /// up, and the picture would be blurrier than the file; the saving (a few ms per
    /// image) is small beside drawing and encoding a full-size JPEG overlay anyway. The
    /// configuration echoed in `run.json` keeps what the user wrote; the run says on
    /// stderr that `dct` is unused.
    pub fn run_jpeg_scaling(&self) -> JpegScaling {
        if self.output.overlays {
            JpegScaling::Exact
        } else {
            self.decode.jpeg_scaling
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::decode::{HighBitDepth, WindowChoice};

    #[test]
    fn decode_section_parses_and_rejects_bad_windows() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(
            c.decode,
            DecodeOptions {
                window: WindowChoice::Dicom,
                high_bit_depth: HighBitDepth::BitDepth,
                jpeg_scaling: JpegScaling::Exact
            }
        );
        let c: Config = toml::from_str("[decode]\njpeg_scaling = \"dct\"").unwrap();
        assert_eq!(c.decode.jpeg_scaling, JpegScaling::Dct);
        assert_eq!(serde_json::to_string(&c.decode.jpeg_scaling).unwrap(), "\"dct\"");
        assert!(!c.input.sniff_dicom);
        let c: Config =
            toml::from_str("[input]\nsniff_dicom = true\n[decode]\nwindow = \"minmax\"\nhigh_bit_depth = \"minmax\"")
                .unwrap();
        assert_eq!((c.decode.window, c.decode.high_bit_depth), (WindowChoice::MinMax, HighBitDepth::MinMax));
        assert!(c.input.sniff_dicom);
        let c: Config = toml::from_str("[decode]\nwindow = [40, 400.5]").unwrap();
        assert_eq!(c.decode.window, WindowChoice::Fixed { center: 40.0, width: 400.5 });
        // Written back (run.json) the way it was written.
        assert_eq!(serde_json::to_string(&c.decode.window).unwrap(), "[40.0,400.5]");
        assert_eq!(serde_json::to_string(&WindowChoice::Dicom).unwrap(), "\"dicom\"");
        for (bad, says) in [
            ("window = \"auto\"", "\"auto\""),
            ("window = [1, 2, 3]", "3 numbers"),
            ("window = [40, 0]", "at least 1"),
            ("high_bit_depth = \"high-byte\"", "high-byte"),
            ("windows = \"dicom\"", "windows"),
            ("jpeg_scaling = \"fast\"", "fast"),
        ] {
            let e = toml::from_str::<Config>(&format!("[decode]\n{bad}")).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn presets_are_fixed_and_custom_builds_from_keys() {
        let std = CamRecipe::Standard;
        let mut c = LocaliseConfig::default();
        assert_eq!(c.recipe(std).unwrap(), Recipe::cam_paper());
        // The sharp map recipe brings its cut, unless a preset is named.
        assert_eq!(c.recipe(CamRecipe::Sharp).unwrap(), Recipe::sharp());
        c.preset = Some(Preset::CamPaper);
        assert_eq!(c.recipe(CamRecipe::Sharp).unwrap(), Recipe::cam_paper());
        c.preset = Some(Preset::Wsol);
        c.tau = Some(0.35);
        assert_eq!(c.recipe(std).unwrap().thresholds, vec![Threshold::Fraction(0.35)]);
        c.thresholds = Some(vec![Threshold::Otsu]);
        let e = c.recipe(std).unwrap_err();
        assert!(e.contains("fixes the recipe") && e.contains("thresholds"), "{e}");
        c.preset = Some(Preset::Custom);
        c.tau = None;
        c.components = Some(Keep::All);
        let r = c.recipe(std).unwrap();
        assert_eq!((r.thresholds.clone(), r.keep, r.preset), (vec![Threshold::Otsu], Keep::All, Preset::Custom));
        c.thresholds = Some(vec![Threshold::U8(60)]);
        assert!(c.recipe(std).unwrap_err().contains("quantise"));
        // An absent preset is written as before.
        let text = serde_json::to_string(&LocaliseConfig::default()).unwrap();
        assert!(text.contains("\"preset\":\"cam-paper\""), "{text}");
        let e = toml::from_str::<LocaliseConfig>("preset = \"nope\"").unwrap_err().to_string();
        assert!(e.contains("unknown preset"), "{e}");
    }

    #[test]
    fn overlays_force_exact_jpeg_decoding() {
        let mut c = Config::default();
        assert_eq!(c.run_jpeg_scaling(), JpegScaling::Exact);
        c.decode.jpeg_scaling = JpegScaling::Dct;
        assert_eq!(c.run_jpeg_scaling(), JpegScaling::Dct);
        c.output.overlays = true;
        assert_eq!(c.run_jpeg_scaling(), JpegScaling::Exact);
    }

    #[test]
    fn memory_budgets_read_with_units() {
        let b = |t: &str| toml::from_str::<RunConfig>(&format!("memory_budget = {t}")).map(|r| r.memory_budget.0);
        assert_eq!(b("1000").unwrap(), 1000);
        assert_eq!(b("\"768 MiB\"").unwrap(), 768 << 20);
        assert_eq!(b("\"2GB\"").unwrap(), 2_000_000_000);
        assert_eq!(b("\"1.5G\"").unwrap(), 3 << 29);
        assert!(b("\"lots\"").unwrap_err().to_string().contains("not a size"));
        assert!(b("\"3 TB\"").unwrap_err().to_string().contains("unknown unit"));
        assert_eq!(serde_json::to_string(&ByteSize(5)).unwrap(), "5");
    }

    #[test]
    fn methods_and_presets_keep_their_spellings() {
        use crate::stage::maps::MapMethod;
        let c: Config = toml::from_str("[cam]\nmethod = \"gradcam++\"\n[localise]\npreset = \"chestxray8\"").unwrap();
        assert_eq!(
            (c.cam.method, c.localise.preset),
            (MethodChoice::Method(MapMethod::GradCamPlusPlus), Some(Preset::Chestxray8))
        );
        assert_eq!(Config::default().cam.method, MethodChoice::Auto);
        assert_eq!(toml::from_str::<Config>("[cam]\nmethod = \"auto\"").unwrap().cam.method, MethodChoice::Auto);
        assert_eq!(serde_json::to_string(&c.cam).unwrap(), "{\"method\":\"gradcam++\"}");
        let e = toml::from_str::<Config>("[cam]\nmethod = \"scorecam\"").unwrap_err().to_string();
        assert!(e.contains("unknown map method 'scorecam'"), "{e}");
    }
}
