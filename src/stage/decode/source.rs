//! The decoded image: what the decode stage hands on, whichever decoder made it.
//!
//! Its own module so that the decoders ([`super::dicom`], the `image`-crate path, the
//! reduced JPEG path) and the stages after decoding share one plain type without
//! importing each other.

/// Smallest accepted side, in pixels. A map of a 7 x 7 feature grid cannot be placed
/// back onto fewer pixels meaningfully, and a 1 x 1 "image" is a placeholder, not data.
pub const MIN_SIDE: u32 = 8;

/// A decoded image.
#[derive(Debug, Clone)]
pub struct SourceImage {
    /// Size of the pixel grid in `data`.
    pub width: u32,
    pub height: u32,
    /// The size the file declares: what every output (geometry, boxes, masks,
    /// `images.csv`) refers to. Equals `(width, height)` unless `reduction > 1`.
    pub original: (u32, u32),
    /// `data` holds the original reduced by 1/`reduction` (1, 2, 4 or 8) in the DCT
    /// domain: original pixel centre i + 0.5 is at (i + 0.5) / reduction in `data`, and
    /// `width = ceil(original.0 / reduction)` (likewise the height).
    pub reduction: u32,
    /// 1 or 3.
    pub channels: usize,
    /// Row-major, interleaved, values in [0, 1].
    pub data: Samples,
    /// Bits per sample of the file (8 or 16; DICOM: BitsStored).
    pub bit_depth: u8,
    /// What the file says about itself beyond pixels (DICOM identifiers, spacing).
    pub meta: ImageMeta,
}

/// The samples of a decoded image, row-major and interleaved, meaning values in [0, 1].
///
/// 8-bit images keep their bytes (value v means v / 255, computed when read, in `f32`,
/// exactly as a conversion up front would): a 100-megapixel RGB photo is then 300 MB
/// while it is decoded and resampled, not the 1.2 GB of its `f32` copy, and the decode
/// never holds both. Images of more than 8 bits per sample (16-bit PNG/TIFF, DICOM after
/// its LUTs) are `f32`.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

impl Samples {
    pub fn len(&self) -> usize {
        match self {
            Samples::U8(v) => v.len(),
            Samples::F32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sample `i` in [0, 1].
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        match self {
            Samples::U8(v) => v[i] as f32 / 255.0,
            Samples::F32(v) => v[i],
        }
    }

    /// Every sample in [0, 1].
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Samples::U8(v) => v.iter().map(|&b| b as f32 / 255.0).collect(),
            Samples::F32(v) => v.clone(),
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        match self {
            Samples::U8(v) => v.len(),
            Samples::F32(v) => v.len() * 4,
        }
    }
}

/// Per-file facts carried into `images.csv`. Only identifiers that are not patient
/// data in themselves are kept; names, birth dates and the like are never read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageMeta {
    pub patient_id: Option<String>,
    pub study_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    /// Row and column spacing in millimetres (DICOM Pixel Spacing).
    pub pixel_spacing: Option<(f64, f64)>,
    /// Number of frames in the file (the first is processed).
    pub frames: Option<u32>,
}

impl SourceImage {
    /// An image decoded at full resolution, with samples in [0, 1].
    pub fn full(width: u32, height: u32, channels: usize, data: Vec<f32>, bit_depth: u8, meta: ImageMeta) -> Self {
        SourceImage::new(width, height, channels, Samples::F32(data), bit_depth, meta)
    }

    /// An image decoded at full resolution.
    pub fn new(width: u32, height: u32, channels: usize, data: Samples, bit_depth: u8, meta: ImageMeta) -> Self {
        SourceImage { width, height, original: (width, height), reduction: 1, channels, data, bit_depth, meta }
    }

    /// The extent of the original image in `data`'s pixels: `original / reduction`.
    pub fn original_extent(&self) -> (f64, f64) {
        let r = self.reduction as f64;
        (self.original.0 as f64 / r, self.original.1 as f64 / r)
    }

    pub fn pixel(&self, x: usize, y: usize, c: usize) -> f32 {
        self.data.get((y * self.width as usize + x) * self.channels + c)
    }
}
