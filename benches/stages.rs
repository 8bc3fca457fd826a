//! Micro-benchmarks of the stages around the network, on the inputs they see in a real
//! run: a bundled chest X-ray (a 1.5-megapixel grey JPEG, the expensive case: every
//! post-network stage works at original resolution) and a natural photo. Run with
//! `cargo bench --bench stages`; the whole-run comparison is `scripts/bench/run.sh`, and
//! every run's own per-stage totals are in its `run.json` (`time.stage_seconds`).
//!
//! Where a stage was rewritten for speed, the plain version it replaced is benchmarked
//! beside it (`components/flood_fill_*`, `png/mask_*_adaptive_filter`), so the gain is
//! measured, not remembered. `decode/xray_jpeg_dct_half` and
//! `preprocess/xray_dct_half_*` are the `[decode] jpeg_scaling = "dct"` path.

use std::hint::black_box;
use std::path::PathBuf;

use cambox::output::artefacts::encode_mask;
use cambox::stage::decode::{Decoder, JpegScaling, Samples};
use cambox::stage::localise::components::{components_above, label_components};
use cambox::stage::localise::{to_original, Localiser, Recipe};
use cambox::stage::maps::ClassMaps;
use cambox::stage::model::{FeatureMap, Head, InputSpec, Layout, LinearHead};
use cambox::stage::preprocess::resample::resize_window;
use cambox::stage::preprocess::{Normaliser, PreprocessOptions, Preprocessor, Resampling, ResizeMode};
use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::{Array1, Array2};

const XRAY: &str = "data/samples/chest-xray/NORMAL2-IM-1427-0001.jpeg";
const PHOTO: &str = "data/samples/natural/chelsea.png";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// configs/bench.toml's preprocessing: torchvision's resize 256 + centre crop 224.
fn preprocess_options() -> PreprocessOptions {
    PreprocessOptions {
        resize: ResizeMode::ShorterSideThenCenterCrop,
        resize_to: Some(256),
        resampling: Resampling::Bilinear,
        mean: vec![0.485, 0.456, 0.406],
        std: vec![0.229, 0.224, 0.225],
        ..Default::default()
    }
}

fn preprocessor() -> Preprocessor {
    let net = InputSpec { name: "input".into(), layout: Layout::Nchw, channels: 3, width: 224, height: 224 };
    Preprocessor::new(&preprocess_options(), &net).expect("valid preprocessing")
}

/// A smooth 7 x 7 map with one off-centre peak, like a CAM.
fn raw_map() -> Array2<f32> {
    Array2::from_shape_fn((7, 7), |(y, x)| {
        let (dx, dy) = (x as f32 - 2.5, y as f32 - 3.5);
        (-(dx * dx + dy * dy) / 6.0).exp() * 10.0 - 2.0
    })
}

fn benches(c: &mut Criterion) {
    let xray_bytes = std::fs::read(root().join(XRAY)).expect("bundled X-ray");
    let photo_bytes = std::fs::read(root().join(PHOTO)).expect("bundled photo");
    let d = Decoder::default();
    c.bench_function("decode/xray_jpeg", |b| b.iter(|| d.decode_bytes(black_box(&xray_bytes)).unwrap()));
    c.bench_function("decode/photo_png", |b| b.iter(|| d.decode_bytes(black_box(&photo_bytes)).unwrap()));
    // `[decode] jpeg_scaling = "dct"`: the same X-ray (1776 x 1416) decoded at 1/2 by
    // jpeg-decoder's reduced IDCT for the bench recipe's 321 x 256 target, then
    // preprocessed from the 888 x 708 grid; and jpeg-decoder at full scale, to separate
    // the decoder from the reduction.
    let pre = preprocessor();
    let target = |w: u32, h: u32| pre.resize_target(w, h);
    let dct = Decoder { jpeg_scaling: JpegScaling::Dct, ..Decoder::default() };
    c.bench_function("decode/xray_jpeg_dct_half", |b| {
        b.iter(|| dct.decode_bytes_for(black_box(&xray_bytes), Some(&target)).unwrap())
    });
    c.bench_function("decode/xray_jpeg_jpeg_decoder_full", |b| {
        b.iter(|| jpeg_decoder::Decoder::new(black_box(&xray_bytes[..])).decode().unwrap())
    });
    let xray_half = dct.decode_bytes_for(&xray_bytes, Some(&target)).unwrap();
    c.bench_function("preprocess/xray_dct_half_resize_crop_normalise", |b| {
        b.iter(|| pre.run(black_box(&xray_half)).unwrap())
    });

    let xray = d.decode_bytes(&xray_bytes).unwrap();
    let photo = d.decode_bytes(&photo_bytes).unwrap();
    let pre = preprocessor();
    for (name, img) in [("xray", &xray), ("photo", &photo)] {
        // The resize alone: the crop window of the image resized to 256 on its shorter side.
        let geo = pre.geometry(img.width, img.height);
        let win = ((-geo.offset_x) as usize, (-geo.offset_y) as usize, 224, 224);
        let (w, h) = (img.width as usize, img.height as usize);
        let Samples::U8(bytes) = &img.data else { panic!("8-bit sample images") };
        c.bench_function(&format!("resize/{name}_to_256_crop_224"), |b| {
            b.iter(|| {
                let (rw, rh) = (geo.resized_w, geo.resized_h);
                resize_window(black_box(bytes.as_slice()), w, h, img.channels, rw, rh, win, Resampling::Bilinear)
            })
        });
        c.bench_function(&format!("preprocess/{name}_resize_crop_normalise"), |b| {
            b.iter(|| pre.run(black_box(img)).unwrap())
        });
    }
    let pixels: Vec<f32> = (0..224 * 224 * 3).map(|i| (i % 255) as f32 / 255.0).collect();
    let norm = Normaliser::new(&preprocess_options()).expect("valid mean and std");
    c.bench_function("normalise/224x224x3", |b| {
        b.iter(|| black_box(&pixels).iter().enumerate().map(|(i, &v)| norm.value(i % 3, v)).sum::<f32>())
    });

    // The class map product with EfficientNet-Lite0's shapes (1000 x 1280 head, 1280 x 7 x 7
    // features), for the top-5 classes a run computes (the logit check needs them).
    let weight = Array2::from_shape_fn((1000, 1280), |(k, c)| ((k * 31 + c * 17) % 97) as f32 / 97.0 - 0.5);
    let head = Head::Linear(LinearHead { weight, bias: Array1::zeros(1000) });
    let f = FeatureMap::from_chw(Array2::from_shape_fn((1280, 49), |(c, p)| ((c * 7 + p) % 13) as f32 / 13.0), 7, 7);
    c.bench_function("class_maps/cam_top5_1000x1280x49", |b| {
        b.iter(|| ClassMaps::cam(&head, black_box(&f), &[3, 17, 285, 512, 999]).unwrap())
    });

    let loc = Localiser::new(Recipe::cam_paper());
    let raw = raw_map();
    c.bench_function("upsample/7x7_to_224_minmax", |b| b.iter(|| loc.network_map(black_box(raw.view()), 224, 224)));
    let net = loc.network_map(raw.view(), 224, 224);
    let geo = pre.geometry(xray.width, xray.height);
    c.bench_function("inverse_geometry/224_to_xray", |b| b.iter(|| to_original(black_box(&net), &geo)));
    let orig = to_original(&net, &geo);
    let (w, h) = (xray.width as usize, xray.height as usize);
    let cut = 0.2 * orig.values.iter().copied().fold(0f32, f32::max);
    c.bench_function("components/runs_xray", |b| {
        b.iter(|| components_above(black_box(&orig.values), &orig.values, w, orig.seen, cut))
    });
    let (sx0, sy0, sx1, sy1) = orig.seen;
    let mask: Vec<bool> = (0..w * h)
        .map(|i| orig.values[i] > cut && (sx0..sx1).contains(&(i % w)) && (sy0..sy1).contains(&(i / w)))
        .collect();
    c.bench_function("components/flood_fill_xray", |b| {
        b.iter(|| label_components(black_box(&mask), &orig.values, w, h))
    });
    c.bench_function("localise/cam_paper_xray_whole", |b| b.iter(|| loc.localise(0, black_box(raw.view()), &geo)));

    let l = loc.localise(0, raw.view(), &geo);
    c.bench_function("png/mask_xray", |b| b.iter(|| encode_mask(black_box(&l)).unwrap()));
    c.bench_function("png/mask_xray_adaptive_filter", |b| {
        b.iter(|| {
            let px: Vec<u8> = l.mask.clone();
            let m = image::GrayImage::from_raw(l.width, l.height, px).unwrap();
            let mut buf = Vec::new();
            m.write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png).unwrap();
            buf
        })
    });
}

criterion_group! {
    name = stages;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(stages);
