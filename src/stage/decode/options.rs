//! `[decode]`: the choices a user makes about how stored values become brightness, as
//! the decode stage's own types. The configuration parses TOML straight into them (the
//! serde spellings are the TOML and `run.json` spellings), so nothing here knows about
//! the configuration file.

use serde::{Deserialize, Serialize};

/// `[decode]`: how stored pixel values become brightness, for files that say more
/// than 8 bits per sample (DICOM, 16-bit PNG and TIFF), and whether large JPEGs may be
/// decoded at reduced scale.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeOptions {
    /// DICOM VOI stage: `"dicom"` (the file's first window, else its VOI LUT, else the
    /// BitsStored range), `"minmax"` (the frame's own range) or `[center, width]` in
    /// modality units (after rescale slope/intercept), DICOM's LINEAR function.
    pub window: WindowChoice,
    /// 16-bit PNG/TIFF: `"bit-depth"` (divide by the significant range: PNG `sBIT`, else
    /// 16 bits) or `"minmax"` (stretch the image's own range).
    pub high_bit_depth: HighBitDepth,
    /// JPEG files: `"exact"` (full-resolution decode) or `"dct"` (decode large JPEGs at
    /// 1/2, 1/4 or 1/8 scale in the DCT domain when the preprocessing shrinks them anyway;
    /// see [`super`]). Result-affecting: part of the run fingerprint.
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
    /// [`super::DCT_MIN_OVERSAMPLE`] times the preprocessing's resize target.
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
