//! `report.html`: one static page that opens anywhere, offline, and can be mailed.
//!
//! No external resources: inline CSS, inline SVG charts (IoU histogram, BoxAcc against
//! tau), and thumbnails embedded as base64 JPEG. The gallery shows the images with truth
//! worst IoU first (the failures are what one looks at), capped so the page stays small,
//! each with the truth boxes in green and the predicted boxes in red, drawn on the run's
//! overlay when it was saved (heatmap visible) or else on the original image (always the
//! original for a baseline: the overlay shows the run's own boxes).

pub mod charts;
pub mod gallery;
pub mod thumbs;
pub mod view;

use std::fmt::Write as _;

use image::imageops::FilterType;
use image::{Rgb, RgbImage};

use super::metrics::Rect;
use super::run_files::RunFiles;
use super::summary::{class_table, metric_rows};
use super::{Evaluation, ImageResult};
use crate::output::artefacts::Artefacts;
use crate::output::draw::outline;

/// Longest side of a gallery thumbnail, in pixels.
const THUMB_SIDE: u32 = 320;

/// JPEG quality of gallery thumbnails (embedded as base64: size matters).
const THUMB_JPEG_QUALITY: u8 = 80;

/// Bins of the IoU histogram over [0, 1].
const IOU_HISTOGRAM_BINS: usize = 10;

const TRUTH: Rgb<u8> = Rgb([0, 230, 0]);
const PRED: Rgb<u8> = Rgb([255, 30, 30]);

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1d2330;background:#fafbfc}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dde6;padding-bottom:4px}\
p.meta{margin:2px 0;color:#4a5568;font-size:13px}table{border-collapse:collapse;font-size:13px;background:#fff}\
td,th{border:1px solid #d8dde6;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eef1f5}\
td.v{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
.charts{display:flex;flex-wrap:wrap;gap:24px}.chart{background:#fff;border:1px solid #d8dde6;padding:8px}\
.gallery{display:flex;flex-wrap:wrap;gap:12px}.card{background:#fff;border:1px solid #d8dde6;padding:6px;width:330px}\
.card img{display:block;max-width:320px;margin:0 auto}.card .cap{font-size:12px;margin-top:4px;overflow-wrap:anywhere}\
.key{display:inline-block;width:12px;height:12px;vertical-align:middle;margin:0 4px 0 10px}.note{color:#8a4b00;font-size:13px}";

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Standard base64 (RFC 4648, with padding), for `data:` URLs.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        o.push(A[(n >> 18) as usize & 63] as char);
        o.push(A[(n >> 12) as usize & 63] as char);
        o.push(if c.len() > 1 { A[(n >> 6) as usize & 63] as char } else { '=' });
        o.push(if c.len() > 2 { A[n as usize & 63] as char } else { '=' });
    }
    o
}

/// Counts of best IoU per bin over [0, 1] (the last bin holds 1), and images with truth
/// but no prediction.
pub fn iou_histogram(images: &[ImageResult], bins: usize) -> (Vec<usize>, usize) {
    let mut h = vec![0usize; bins];
    let mut none = 0;
    for i in images.iter().filter(|i| !i.truth.is_empty()) {
        match i.best_iou {
            Some(v) => h[((v * bins as f64) as usize).min(bins - 1)] += 1,
            None => none += 1,
        }
    }
    (h, none)
}

fn histogram_svg(images: &[ImageResult]) -> String {
    let bins = IOU_HISTOGRAM_BINS;
    let (h, none) = iou_histogram(images, bins);
    let (w, ht, left, bottom) = (560.0, 220.0, 40.0, 30.0);
    let n = bins + 1;
    let bw = (w - left - 10.0) / n as f64;
    let max = h.iter().copied().chain([none]).max().unwrap_or(0).max(1) as f64;
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{ht}' role='img' aria-label='IoU histogram'>"
    );
    let plot_h = ht - bottom - 20.0;
    let _ = write!(s, "<line x1='{left}' y1='{}' x2='{}' y2='{}' stroke='#555'/>", ht - bottom, w - 10.0, ht - bottom);
    for (k, &c) in std::iter::once(&none).chain(h.iter()).enumerate() {
        let x = left + k as f64 * bw;
        let bh = c as f64 / max * plot_h;
        let colour = if k == 0 { "#9aa3b2" } else { "#3d6fd1" };
        let _ = write!(
            s,
            "<rect x='{:.1}' y='{:.1}' width='{:.1}' height='{:.1}' fill='{colour}'><title>{c}</title></rect>",
            x + 2.0,
            ht - bottom - bh,
            bw - 4.0,
            bh
        );
        let _ = write!(
            s,
            "<text x='{:.1}' y='{:.1}' font-size='11' text-anchor='middle'>{c}</text>",
            x + bw / 2.0,
            ht - bottom - bh - 4.0
        );
        let label = if k == 0 { "none".to_string() } else { format!("{:.1}", (k - 1) as f64 / bins as f64) };
        let _ = write!(
            s,
            "<text x='{:.1}' y='{}' font-size='11' text-anchor='middle'>{label}</text>",
            x + bw / 2.0,
            ht - bottom + 14.0
        );
    }
    let _ = write!(
        s,
        "<text x='{}' y='{}' font-size='11' text-anchor='middle'>best IoU (bin start; 'none' = no box)</text></svg>",
        left + (w - left) / 2.0,
        ht - 2.0
    );
    s
}

/// A named, coloured curve over the sweep's taus.
type Series<'a> = (&'a str, &'a str, Box<dyn Fn(usize) -> f64 + 'a>);

fn sweep_svg(ev: &Evaluation) -> Option<String> {
    let sw = ev.summary.sweep.as_ref()?;
    let (w, ht, left, bottom) = (560.0, 240.0, 40.0, 30.0);
    let (pw, ph) = (w - left - 10.0, ht - bottom - 10.0);
    let px = |t: f64| left + t * pw;
    let py = |v: f64| 10.0 + (1.0 - v) * ph;
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{ht}' role='img' aria-label='BoxAcc against tau'>"
    );
    for g in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ =
            write!(s, "<line x1='{left}' y1='{:.1}' x2='{:.1}' y2='{:.1}' stroke='#e3e6ec'/>", py(g), w - 10.0, py(g));
        let _ =
            write!(s, "<text x='{}' y='{:.1}' font-size='10' text-anchor='end'>{g}</text>", left - 4.0, py(g) + 3.0);
        let _ = write!(
            s,
            "<text x='{:.1}' y='{}' font-size='10' text-anchor='middle'>{g}</text>",
            px(g),
            ht - bottom + 14.0
        );
    }
    let series: [Series; 4] = [
        ("V2 delta 0.3", "#2a9d8f", Box::new(|i| sw.box_acc_v2[i][0])),
        ("V2 delta 0.5", "#3d6fd1", Box::new(|i| sw.box_acc_v2[i][1])),
        ("V2 delta 0.7", "#7b3fbf", Box::new(|i| sw.box_acc_v2[i][2])),
        ("V1 delta 0.5", "#e07a1f", Box::new(|i| sw.box_acc_v1[i][1])),
    ];
    for (k, (name, colour, f)) in series.iter().enumerate() {
        let pts: Vec<String> =
            sw.taus.iter().enumerate().map(|(i, &t)| format!("{:.1},{:.1}", px(t), py(f(i)))).collect();
        let dash = if k == 3 { " stroke-dasharray='5,3'" } else { "" };
        let _ =
            write!(s, "<polyline fill='none' stroke='{colour}' stroke-width='1.8'{dash} points='{}'/>", pts.join(" "));
        let _ = write!(
            s,
            "<text x='{:.1}' y='{}' font-size='11' fill='{colour}'>{name}</text>",
            left + 8.0 + k as f64 * 120.0,
            ht - 2.0
        );
    }
    let _ = write!(
        s,
        "<line x1='{:.1}' y1='10' x2='{:.1}' y2='{:.1}' stroke='#999' stroke-dasharray='2,2'/>",
        px(sw.calibrated_tau),
        px(sw.calibrated_tau),
        ht - bottom
    );
    s.push_str("</svg>");
    Some(s)
}

/// The base picture of one image: the run's overlay (when wanted and saved), else the
/// original. A baseline is drawn on the original: the overlay shows the run's own boxes.
fn base_image(run: &RunFiles, rel: &str, class: usize, overlay: bool) -> Option<(RgbImage, &'static str)> {
    let dec = run.decoder();
    let ov = Artefacts::new(&run.dir, &Default::default()).overlay_path(rel, class);
    let (path, what) = if overlay && ov.is_file() { (ov, "overlay") } else { (run.original(rel)?, "original") };
    let img = dec.decode_file(&path).ok()?;
    let px = |v: f32| (v * 255.0).round().clamp(0.0, 255.0) as u8;
    let rgb = RgbImage::from_fn(img.width, img.height, |x, y| {
        let (x, y) = (x as usize, y as usize);
        if img.channels == 1 {
            let v = px(img.pixel(x, y, 0));
            Rgb([v, v, v])
        } else {
            Rgb([px(img.pixel(x, y, 0)), px(img.pixel(x, y, 1)), px(img.pixel(x, y, 2))])
        }
    });
    Some((rgb, what))
}

/// A JPEG thumbnail with truth (green) and predictions (red), as base64.
fn thumbnail(run: &RunFiles, im: &ImageResult, class: usize, overlay: bool) -> Option<(String, &'static str)> {
    let (img, what) = base_image(run, &im.rel, class, overlay)?;
    let s = (THUMB_SIDE as f64 / img.width().max(img.height()) as f64).min(1.0);
    let (tw, th) =
        (((img.width() as f64 * s).round() as u32).max(1), ((img.height() as f64 * s).round() as u32).max(1));
    let mut t = image::imageops::resize(&img, tw, th, FilterType::Triangle);
    // Scale by the actual ratios of the sizes the boxes refer to (images.csv).
    let (sx, sy) = (tw as f64 / im.width as f64, th as f64 / im.height as f64);
    let sc = |r: &Rect| {
        ((r.x1 * sx).round() as i64, (r.y1 * sy).round() as i64, (r.x2 * sx).round() as i64, (r.y2 * sy).round() as i64)
    };
    for r in &im.truth {
        outline(&mut t, sc(r), TRUTH, 2);
    }
    for p in &im.preds {
        outline(&mut t, sc(&p.rect), PRED, 2);
    }
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, THUMB_JPEG_QUALITY).encode_image(&t).ok()?;
    Some((base64(&buf), what))
}

/// The gallery's images: with truth, worst best-IoU first (no box first), then by path.
pub fn gallery_order(images: &[ImageResult], cap: usize) -> Vec<&ImageResult> {
    let mut v: Vec<&ImageResult> = images.iter().filter(|i| !i.truth.is_empty()).collect();
    v.sort_by(|a, b| {
        a.best_iou
            .unwrap_or(-1.0)
            .total_cmp(&b.best_iou.unwrap_or(-1.0))
            .then(a.rel.cmp(&b.rel))
            .then(a.label.cmp(&b.label))
    });
    v.truncate(cap);
    v
}

/// The gallery of an evaluation of several classes: each class's worst pairs (its share
/// of the cap, at least 6), so that filtering by class shows that class's failures.
pub fn gallery_by_class(images: &[ImageResult], classes: usize, cap: usize) -> Vec<&ImageResult> {
    let share = cap.div_ceil(classes.max(1)).max(6);
    let mut v: Vec<&ImageResult> = (0..classes).flat_map(|c| gallery_order_of(images, c, share)).collect();
    v.sort_by(|a, b| a.best_iou.unwrap_or(-1.0).total_cmp(&b.best_iou.unwrap_or(-1.0)).then(a.rel.cmp(&b.rel)));
    v
}

fn gallery_order_of(images: &[ImageResult], class: usize, cap: usize) -> Vec<&ImageResult> {
    let mut v: Vec<&ImageResult> = images.iter().filter(|i| i.class_index == class && !i.truth.is_empty()).collect();
    v.sort_by(|a, b| a.best_iou.unwrap_or(-1.0).total_cmp(&b.best_iou.unwrap_or(-1.0)).then(a.rel.cmp(&b.rel)));
    v.truncate(cap);
    v
}

/// Shows only the gallery cards of the class chosen in the filter, or of the class named
/// in the page's fragment (`report.html#class=Nodule`), so a link can open the page
/// filtered. Inline, as everything in the page.
const FILTER_JS: &str = "function camboxFilter(c){var n=0;document.querySelectorAll('.card').forEach(function(e){\
var on=(c==='*'||e.getAttribute('data-class')===c);e.style.display=on?'':'none';if(on)n++;});\
var s=document.getElementById('class-filter');if(s&&s.value!==c)s.value=c;\
var k=document.getElementById('shown');if(k)k.textContent=n;}\
function camboxFromHash(){var m=/class=([^&]*)/.exec(location.hash);camboxFilter(m?decodeURIComponent(m[1]):'*');}\
window.addEventListener('hashchange',camboxFromHash);document.addEventListener('DOMContentLoaded',camboxFromHash);";

/// The whole page.
pub fn render(ev: &Evaluation, run: &RunFiles, gallery_cap: usize) -> String {
    let s = &ev.summary;
    let p = &s.protocol;
    let mut h = String::new();
    let title = p.class_name.clone().unwrap_or_else(|| format!("{} classes", s.per_class.len()));
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>cambox eval: {}</title><style>{CSS}</style>\
         <script>{FILTER_JS}</script></head><body>",
        esc(&title)
    );
    let _ = write!(
        h,
        "<h1>cambox eval{}</h1>",
        p.baseline.map(|b| format!(" — baseline '{}'", b.name())).unwrap_or_default()
    );
    let meta = [
        format!("run: {}", s.run.display()),
        format!("truth: {} ({})", s.truth.display(), s.format.name()),
        match (p.class_index, &p.class_name) {
            (Some(k), Some(n)) => format!("class {k} '{n}'; box convention: {}; {}", p.convention, p.detection),
            _ => format!(
                "{} classes, per truth label ({} model); box convention: {}; {}",
                s.per_class.len(),
                p.activation,
                p.convention,
                p.detection
            ),
        },
        format!("localisation: {}; RSNA confidence: {}", p.localisation, p.rsna_confidence),
        format!(
            "{} images evaluated ({} pairs): {} with truth, {} negatives; {} truth boxes, {} predicted boxes",
            s.counts.evaluated_images,
            s.counts.pairs.evaluated,
            s.counts.pairs.with_truth,
            s.counts.pairs.negatives,
            s.counts.pairs.truth_boxes,
            s.counts.pairs.predicted_boxes
        ),
    ];
    for m in meta {
        let _ = write!(h, "<p class='meta'>{}</p>", esc(&m));
    }
    for n in &s.notes {
        let _ = write!(h, "<p class='note'>note: {}</p>", esc(n));
    }
    if ev.per_label {
        let (head, rows) = class_table(s);
        h.push_str("<h2>Per class</h2><table id='per-class'><tr>");
        for c in &head {
            let _ = write!(h, "<th>{}</th>", esc(c));
        }
        h.push_str("</tr>");
        for r in rows {
            let _ = write!(h, "<tr data-class='{}'>", esc(&r[0]));
            for (i, c) in r.iter().enumerate() {
                let _ = write!(h, "<td{}>{}</td>", if i >= 3 { " class='v'" } else { "" }, esc(c));
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
        if !s.unmapped_labels.is_empty() {
            let l: Vec<String> = s.unmapped_labels.iter().map(|(l, n)| format!("'{l}' ({n} boxes)")).collect();
            let _ = write!(
                h,
                "<p class='note'>truth labels that mean no model class, not evaluated: {}</p>",
                esc(&l.join(", "))
            );
        }
    }
    let over = if ev.per_label { "Metrics over all pairs" } else { "Metrics" };
    let _ = write!(h, "<h2>{over}</h2><table><tr><th>metric</th><th>value</th><th>detail</th></tr>");
    for (m, v, d) in metric_rows(&s.metrics, &s.counts.pairs, p.sweep_step) {
        let _ = write!(h, "<tr><td>{}</td><td class='v'>{}</td><td>{}</td></tr>", esc(&m), esc(&v), esc(&d));
    }
    h.push_str("</table>");

    h.push_str("<h2>Distributions</h2><div class='charts'>");
    let _ = write!(
        h,
        "<div class='chart'><div>Best IoU per image with truth (GT-known)</div>{}</div>",
        histogram_svg(&ev.images)
    );
    if let Some(svg) = sweep_svg(ev) {
        let _ = write!(
            h,
            "<div class='chart'><div>BoxAcc against the CAM threshold tau (dotted: calibrated tau)</div>{svg}</div>"
        );
    }
    h.push_str("</div>");

    let u = &s.unmatched;
    h.push_str(
        "<h2>Unmatched files and annotation issues</h2><table><tr><th>kind</th><th>count</th><th>examples</th></tr>",
    );
    let mut row = |k: &str, c: usize, ex: &[String]| {
        let _ = write!(h, "<tr><td>{}</td><td class='v'>{c}</td><td>{}</td></tr>", esc(k), esc(&ex.join("; ")));
    };
    row("annotated, not processed", u.annotated_not_processed.count, &u.annotated_not_processed.examples);
    row("annotated, failed in the run", u.annotated_failed_in_run.count, &u.annotated_failed_in_run.examples);
    row("processed, not annotated", u.processed_not_annotated.count, &u.processed_not_annotated.examples);
    for (k, v) in &s.annotation_issues.0 {
        row(k, v.count, &v.examples);
    }
    h.push_str("</table>");

    let shown = if ev.per_label {
        gallery_by_class(&ev.images, ev.classes.len(), gallery_cap)
    } else {
        gallery_order(&ev.images, gallery_cap)
    };
    let _ = write!(
        h,
        "<h2>Gallery: <span id='shown'>{}</span> of {} {} with truth, worst IoU first</h2><p class='meta'>\
         <span class='key' style='background:rgb(0,230,0)'></span>truth<span class='key' style='background:rgb(255,30,30)'></span>predicted</p>",
        shown.len(),
        s.counts.pairs.with_truth,
        if ev.per_label { "pairs" } else { "images" }
    );
    if ev.per_label {
        h.push_str("<p class='meta'><label for='class-filter'>class </label><select id='class-filter' onchange='camboxFilter(this.value)'><option value='*'>all classes</option>");
        for c in &ev.classes {
            let _ = write!(h, "<option value='{0}'>{0}</option>", esc(&c.name));
        }
        h.push_str("</select></p>");
    }
    h.push_str("<div class='gallery'>");
    for im in shown {
        let cap = format!(
            "{}{} — IoU {} · p {} · truth {} · boxes {}",
            im.rel,
            if ev.per_label { format!(" · {}", im.label) } else { String::new() },
            im.best_iou.map(|v| format!("{v:.3}")).unwrap_or_else(|| "none".into()),
            im.probability.map(|v| format!("{v:.3}")).unwrap_or_else(|| "?".into()),
            im.truth.len(),
            im.preds.len()
        );
        let class = im.class.unwrap_or(ev.classes[im.class_index].classes[0]);
        let card = format!("<div class='card' data-class='{}'>", esc(&im.label));
        match thumbnail(run, im, class, p.baseline.is_none()) {
            Some((b64, what)) => {
                let _ = write!(
                    h,
                    "{card}<img alt='{}' src='data:image/jpeg;base64,{b64}'><div class='cap'>{} ({what})</div></div>",
                    esc(&im.rel),
                    esc(&cap)
                );
            }
            None => {
                let _ = write!(h, "{card}<div class='cap'>{} (image not found)</div></div>", esc(&cap));
            }
        }
    }
    h.push_str("</div></body></html>\n");
    h
}

/// A pair for the tests of the report's modules.
#[cfg(test)]
fn pair(rel: &str, iou: Option<f64>, truth: bool) -> super::ImageResult {
    super::ImageResult {
        rel: rel.into(),
        label: "c".into(),
        class_index: 0,
        class: None,
        detected: false,
        top1_loc: None,
        top5_loc: None,
        width: 10,
        height: 10,
        truth: if truth { vec![super::metrics::Rect::new(0.0, 0.0, 5.0, 5.0)] } else { vec![] },
        preds: vec![],
        probability: None,
        predicted_positive: false,
        best_iou: iou,
        best_iobb: None,
        hits: None,
        rsna: None,
        detections: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    fn im(rel: &str, iou: Option<f64>, truth: bool) -> ImageResult {
        ImageResult {
            rel: rel.into(),
            label: "c".into(),
            class_index: 0,
            class: None,
            detected: false,
            top1_loc: None,
            top5_loc: None,
            width: 10,
            height: 10,
            truth: if truth { vec![Rect::new(0.0, 0.0, 5.0, 5.0)] } else { vec![] },
            preds: vec![],
            probability: None,
            predicted_positive: false,
            best_iou: iou,
            best_iobb: None,
            hits: None,
            rsna: None,
            detections: 0,
        }
    }

    #[test]
    fn histogram_and_gallery_order() {
        let v = vec![
            im("a", Some(0.95), true),
            im("b", None, true),
            im("c", Some(1.0), true),
            im("d", Some(0.05), true),
            im("e", None, false),
        ];
        let (h, none) = iou_histogram(&v, 10);
        assert_eq!((h[0], h[9], none), (1, 2, 1));
        let order: Vec<&str> = gallery_order(&v, 3).iter().map(|i| i.rel.as_str()).collect();
        assert_eq!(order, vec!["b", "d", "a"]);
    }

    #[test]
    fn boxes_are_drawn_inside() {
        let mut img = RgbImage::new(10, 10);
        outline(&mut img, (2, 2, 8, 8), PRED, 2);
        assert_eq!(*img.get_pixel(2, 2), PRED);
        assert_eq!(*img.get_pixel(7, 7), PRED);
        assert_eq!(*img.get_pixel(4, 4), Rgb([0, 0, 0]), "dark inner edge");
        assert_eq!(*img.get_pixel(8, 8), Rgb([0, 0, 0]), "nothing outside (still black background)");
        outline(&mut img, (-5, -5, 50, 50), TRUTH, 1);
        assert_eq!(*img.get_pixel(9, 9), TRUTH);
    }
}
