//! The run configuration as written by the user (TOML), before validation.
//!
//! This is the "low" half of the LowArgs -> HiArgs split: plain data, every field with a
//! documented default, `deny_unknown_fields` so a typo is an error rather than a silently
//! ignored option. [`crate::plan::RunPlan`] turns it into ready-built parts. Relative
//! paths in a config file are relative to the file's own folder, so a config works from
//! any working directory; paths given on the command line are relative to the working
//! directory, as usual.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub input: InputConfig,
    pub model: ModelConfig,
    pub preprocess: PreprocessConfig,
    pub output: OutputConfig,
    pub localise: LocaliseConfig,
    pub cam: CamConfig,
    pub run: RunConfig,
    pub decode: DecodeConfig,
}

/// `[cam]`: how class maps are computed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CamConfig {
    /// `cam` (default), `gradcam`, `gradcam++`, `hirescam`, `eigencam`, `ablationcam`.
    pub method: String,
}

impl Default for CamConfig {
    fn default() -> Self {
        CamConfig { method: "cam".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// Folders (walked recursively) or single files.
    pub paths: Vec<PathBuf>,
    /// File extensions to process, case-insensitive, without the dot.
    pub extensions: Vec<String>,
    /// Follow symbolic links (to files and folders). Off by default: a link can point
    /// outside the dataset or form a loop.
    pub follow_symlinks: bool,
    /// Process files and folders whose name starts with a dot.
    pub include_hidden: bool,
    /// Also take files without an extension (or with an all-digit one, as UID-named
    /// DICOM files have) and read those that carry the DICOM preamble and `DICM` magic.
    pub sniff_dicom: bool,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            paths: Vec::new(),
            extensions: defaults::EXTENSIONS.iter().map(|s| s.to_string()).collect(),
            follow_symlinks: false,
            include_hidden: false,
            sniff_dicom: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LayoutChoice {
    #[default]
    Auto,
    Nchw,
    Nhwc,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The ONNX classifier.
    pub path: PathBuf,
    /// Class names, one per line (line n = class n - 1). Optional.
    pub labels: Option<PathBuf>,
    /// Input layout; `auto` reads it from the input shape (channels of 1 or 3).
    pub layout: LayoutChoice,
    /// Network input size `[width, height]` when the model leaves it symbolic.
    pub input_size: Option<[usize; 2]>,
    /// Name of the feature tensor to cut at, overriding the automatic choice
    /// (the input of the last global pooling).
    pub feature: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeMode {
    /// Scale both axes independently to the network size (aspect ratio not kept).
    Stretch,
    /// Scale the shorter side to `resize_to`, then cut the centre `crop` (torchvision).
    ShorterSideThenCenterCrop,
    /// Scale to fit inside the network size keeping the aspect ratio, pad the rest.
    Letterbox,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resampling {
    /// Bit-exact with Pillow's `Image.NEAREST`.
    Nearest,
    /// Pillow-style triangle filter, widened when downscaling (antialiased).
    Bilinear,
    /// Pillow-style cubic filter (a = -0.5), widened when downscaling.
    Bicubic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelScale {
    /// Pixel values in [0, 1] before mean/std.
    Unit,
    /// Pixel values in [0, 255] before mean/std.
    Byte,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreprocessConfig {
    pub resize: ResizeMode,
    /// Shorter side after scaling, for `shorter-side-then-center-crop`.
    pub resize_to: Option<usize>,
    pub resampling: Resampling,
    pub channels: ChannelOrder,
    pub scale: PixelScale,
    /// Subtracted per channel after scaling (one value, or one per channel).
    pub mean: Vec<f32>,
    /// Divides per channel after subtracting the mean.
    pub std: Vec<f32>,
    /// Value of letterbox padding, in the scaled pixel range before mean/std.
    pub pad_value: f32,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        PreprocessConfig {
            resize: ResizeMode::Stretch,
            resize_to: None,
            resampling: Resampling::Bilinear,
            channels: ChannelOrder::Rgb,
            scale: PixelScale::Unit,
            mean: vec![0.0],
            std: vec![1.0],
            pad_value: 0.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Output folder; `--out` overrides it.
    pub dir: Option<PathBuf>,
    /// Classes listed in the `top_k` column (and checked by `logit_check`).
    pub top_k: usize,
    /// Write `masks/<path>.<class>.png` (0/255 at original resolution).
    pub masks: bool,
    /// Write `overlays/<path>.<class>.jpg` (heatmap and boxes on the image).
    pub overlays: bool,
    /// Write `maps/<path>.npy` (raw float32 maps at feature resolution) and a `.json`
    /// sidecar (classes, geometry) for threshold sweeps.
    pub maps: bool,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig { dir: None, top_k: defaults::TOP_K, masks: false, overlays: false, maps: false }
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocaliseConfig {
    pub classes: ClassesSpec,
    /// `cam-paper` (default), `wsol`, `chestxray8` or `custom`.
    pub preset: String,
    /// wsol's tau (fraction of the 8-bit map's maximum).
    pub tau: Option<f32>,
    pub relu: Option<bool>,
    pub normalise: Option<crate::localise::Normalise>,
    pub upsample: Option<Resampling>,
    pub quantise: Option<bool>,
    pub thresholds: Option<Vec<crate::localise::Threshold>>,
    pub components: Option<crate::localise::Keep>,
    pub min_area: Option<f32>,
}

impl Default for LocaliseConfig {
    fn default() -> Self {
        LocaliseConfig {
            classes: ClassesSpec::Rule("top1".into()),
            preset: "cam-paper".into(),
            tau: None,
            relu: None,
            normalise: None,
            upsample: None,
            quantise: None,
            thresholds: None,
            components: None,
            min_area: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Worker threads; 0 = one per core.
    pub threads: usize,
    /// Refuse images whose header claims more pixels than this.
    pub max_pixels: u64,
    /// Refuse files larger than this many bytes.
    pub max_file_bytes: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig { threads: 0, max_pixels: defaults::MAX_PIXELS, max_file_bytes: defaults::MAX_FILE_BYTES }
    }
}

/// `[decode]`: how stored pixel values become brightness, for files that say more
/// than 8 bits per sample (DICOM, 16-bit PNG and TIFF), and whether large JPEGs may be
/// decoded at reduced scale.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeConfig {
    /// DICOM VOI stage: `"dicom"` (the file's first window, else its VOI LUT, else the
    /// BitsStored range), `"minmax"` (the frame's own range) or `[center, width]` in
    /// modality units (after rescale slope/intercept), DICOM's LINEAR function.
    pub window: WindowChoice,
    /// 16-bit PNG/TIFF: `"bit-depth"` (divide by the significant range: PNG `sBIT`, else
    /// 16 bits) or `"minmax"` (stretch the image's own range).
    pub high_bit_depth: HighBitDepth,
    /// JPEG files: `"exact"` (full-resolution decode) or `"dct"` (decode large JPEGs at
    /// 1/2, 1/4 or 1/8 scale in the DCT domain when the preprocessing shrinks them anyway;
    /// see [`crate::decode`]). Result-affecting: part of the run fingerprint.
    pub jpeg_scaling: JpegScaling,
}

/// `[decode] jpeg_scaling`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JpegScaling {
    /// Every JPEG decoded at full resolution (zune-jpeg, through the `image` crate).
    #[default]
    Exact,
    /// Baseline and progressive JPEGs decoded with a reduced IDCT (jpeg-decoder's
    /// `Decoder::scale`) at the smallest scale that keeps
    /// [`crate::defaults::DCT_MIN_OVERSAMPLE`] times the preprocessing's resize target.
    Dct,
}

/// `[decode] window`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "WindowRaw", into = "WindowRaw")]
pub enum WindowChoice {
    #[default]
    Dicom,
    MinMax,
    Fixed {
        center: f64,
        width: f64,
    },
}

/// The TOML spellings of [`WindowChoice`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WindowRaw {
    Name(String),
    Pair(Vec<f64>),
}

impl TryFrom<WindowRaw> for WindowChoice {
    type Error = String;
    fn try_from(raw: WindowRaw) -> std::result::Result<Self, String> {
        match raw {
            WindowRaw::Name(n) if n == "dicom" => Ok(WindowChoice::Dicom),
            WindowRaw::Name(n) if n == "minmax" => Ok(WindowChoice::MinMax),
            WindowRaw::Pair(v) if v.len() == 2 && v.iter().all(|x| x.is_finite()) && v[1] >= 1.0 => {
                Ok(WindowChoice::Fixed { center: v[0], width: v[1] })
            }
            WindowRaw::Pair(v) if v.len() == 2 => {
                Err(format!("window [{}, {}]: the width must be at least 1 (DICOM LINEAR window)", v[0], v[1]))
            }
            other => Err(format!(
                "window must be \"dicom\", \"minmax\" or [center, width], not {}",
                match other {
                    WindowRaw::Name(n) => format!("\"{n}\""),
                    WindowRaw::Pair(v) => format!("a list of {} numbers", v.len()),
                }
            )),
        }
    }
}

impl From<WindowChoice> for WindowRaw {
    fn from(w: WindowChoice) -> WindowRaw {
        match w {
            WindowChoice::Dicom => WindowRaw::Name("dicom".into()),
            WindowChoice::MinMax => WindowRaw::Name("minmax".into()),
            WindowChoice::Fixed { center, width } => WindowRaw::Pair(vec![center, width]),
        }
    }
}

/// `[decode] high_bit_depth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HighBitDepth {
    #[default]
    #[serde(rename = "bit-depth")]
    BitDepth,
    #[serde(rename = "minmax")]
    MinMax,
}

impl Config {
    /// Reads a TOML file and makes its relative paths relative to the file's folder.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut cfg: Config = toml::from_str(&text)
            .map_err(|e| Error::config(path, e.to_string().replace('\n', " ").trim().to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        cfg.input.paths.iter_mut().for_each(rebase);
        rebase(&mut cfg.model.path);
        if let Some(l) = cfg.model.labels.as_mut() {
            rebase(l);
        }
        if let Some(d) = cfg.output.dir.as_mut() {
            rebase(d);
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_section_parses_and_rejects_bad_windows() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(
            c.decode,
            DecodeConfig {
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
}
