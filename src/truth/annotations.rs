//! Ground-truth boxes from the annotation formats users bring.
//!
//! Every format becomes a list of [`AnnotatedImage`]s: a key that names an image, how the
//! key is matched to the run's files ([`KeyKind`]), and half-open boxes in the image's
//! original pixels. An image listed without boxes is an explicit **negative** (RSNA
//! `Target 0`, a generic row with empty coordinates, a VOC file without objects, a COCO
//! image without annotations): an image without truth that gets a box is a false positive
//! in the RSNA and ChestX-ray8 metrics, so negatives must be told apart from images that
//! are simply not annotated.
//!
//! A row that cannot be used is never dropped silently: it is counted under a kind
//! (`unreadable_row`, `negative_size`, `empty_box`, ...) with a few examples in
//! [`Issues`], which `summary.json` and the report show.
//!
//! Coordinates, per format:
//! - RSNA `stage_2_train_labels.csv`: `x, y, width, height` (top-left corner), box
//!   `[x, x + width) x [y, y + height)`; matched by file stem (`<patientId>.dcm`, `.png`).
//! - NIH `BBox_List_2017.csv`: `Bbox [x,y,w,h]` as floats, used unrounded; matched by file
//!   name.
//! - generic CSV `path,x1,y1,x2,y2[,label]`: half-open corners as given; matched by path
//!   (relative path, or any trailing part of it such as the file name).
//! - Pascal VOC XML: 1-based inclusive pixel indices, so `[xmin - 1, xmax)`; matched by
//!   `<filename>` (else the XML file's stem).
//! - COCO JSON: `bbox = [x, y, w, h]` in continuous pixel coordinates; matched by
//!   `file_name`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Rect;
use crate::error::Error;

/// Examples kept per kind of annotation problem (all of them are counted).
pub const ISSUE_EXAMPLES: usize = 5;

/// Annotation file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Rsna,
    Nih,
    Generic,
    Voc,
    Coco,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Rsna => "rsna",
            Format::Nih => "nih",
            Format::Generic => "generic",
            Format::Voc => "voc",
            Format::Coco => "coco",
        }
    }
}

/// How an annotation key names a run image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// The file name without its extension (RSNA patient ids, VOC files without
    /// `<filename>`).
    Stem,
    /// The relative path, or a trailing part of it (`a.png` matches `x/a.png`).
    Path,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthBox {
    pub rect: Rect,
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnnotatedImage {
    pub key: String,
    pub kind: KeyKind,
    /// Empty: an explicit negative.
    pub boxes: Vec<TruthBox>,
    /// Width and height when the format states them (VOC, COCO).
    pub size: Option<(u32, u32)>,
}

/// Counted problems, with the first few examples of each kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Issues(pub BTreeMap<String, IssueKind>);

#[derive(Debug, Clone, Default, Serialize)]
pub struct IssueKind {
    pub count: usize,
    pub examples: Vec<String>,
}

impl Issues {
    pub fn add(&mut self, kind: &str, example: impl Into<String>) {
        let k = self.0.entry(kind.to_string()).or_default();
        k.count += 1;
        if k.examples.len() < ISSUE_EXAMPLES {
            k.examples.push(example.into());
        }
    }
    pub fn count(&self, kind: &str) -> usize {
        self.0.get(kind).map(|k| k.count).unwrap_or(0)
    }
    pub fn total(&self) -> usize {
        self.0.values().map(|k| k.count).sum()
    }
}

/// Everything read from one annotation source.
#[derive(Debug, Clone, Serialize)]
pub struct Annotations {
    pub format: Format,
    /// In order of first appearance; one entry per key.
    pub images: Vec<AnnotatedImage>,
    pub issues: Issues,
}

/// Collects rows into images, one entry per key, in order of first appearance.
struct Builder {
    format: Format,
    images: Vec<AnnotatedImage>,
    index: HashMap<String, usize>,
    issues: Issues,
}

impl Builder {
    fn new(format: Format) -> Builder {
        Builder { format, images: Vec::new(), index: HashMap::new(), issues: Issues::default() }
    }
    fn image(&mut self, key: &str, kind: KeyKind) -> &mut AnnotatedImage {
        let i = *self.index.entry(key.to_string()).or_insert_with(|| {
            self.images.push(AnnotatedImage { key: key.to_string(), kind, boxes: Vec::new(), size: None });
            self.images.len() - 1
        });
        &mut self.images[i]
    }
    /// Checks a box and adds it, or counts why it cannot be used (the image is listed
    /// either way, so its other boxes still count).
    fn add_box(&mut self, key: &str, kind: KeyKind, rect: Rect, label: Option<String>, origin: &str) {
        self.image(key, kind);
        let vals = [rect.x1, rect.y1, rect.x2, rect.y2];
        if vals.iter().any(|v| !v.is_finite()) {
            self.issues.add("unreadable_row", format!("{origin}: non-finite coordinate"));
        } else if rect.x2 < rect.x1 || rect.y2 < rect.y1 {
            self.issues.add("negative_size", format!("{origin}: box {}", fmt_rect(&rect)));
        } else if rect.x2 == rect.x1 || rect.y2 == rect.y1 {
            self.issues.add("empty_box", format!("{origin}: box {} has no area", fmt_rect(&rect)));
        } else {
            self.image(key, kind).boxes.push(TruthBox { rect, label });
        }
    }
    fn finish(self) -> Annotations {
        Annotations { format: self.format, images: self.images, issues: self.issues }
    }
}

pub fn fmt_rect(r: &Rect) -> String {
    format!("[{}, {}, {}, {})", r.x1, r.y1, r.x2, r.y2)
}

/// The format of `path`: a folder or `.xml` is VOC, `.json` is COCO, a CSV is told by its
/// header.
pub fn detect(path: &Path) -> Result<Format, Error> {
    if path.is_dir() {
        return Ok(Format::Voc);
    }
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "xml" => return Ok(Format::Voc),
        "json" => return Ok(Format::Coco),
        _ => {}
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    detect_csv(&text).ok_or_else(|| {
        let first = text.trim_start_matches('\u{feff}').lines().next().unwrap_or("").trim();
        Error::annotations(
            path,
            format!(
                "cannot tell the format from the header '{first}': expected RSNA (patientId,x,y,width,height,Target), \
                 NIH (Image Index,Finding Label,Bbox [x,y,w,h],,,), generic (path,x1,y1,x2,y2[,label]), \
                 a VOC folder or .xml, or a COCO .json; or give --format"
            ),
        )
    })
}

/// The CSV format from its header line.
pub fn detect_csv(text: &str) -> Option<Format> {
    let first = text.trim_start_matches('\u{feff}').lines().next()?.trim().to_ascii_lowercase();
    let cols: Vec<&str> = first.split(',').map(str::trim).collect();
    if cols.contains(&"patientid") && cols.contains(&"target") {
        Some(Format::Rsna)
    } else if cols.first() == Some(&"image index") && first.contains("bbox") {
        Some(Format::Nih)
    } else if cols.first() == Some(&"path") {
        Some(Format::Generic)
    } else {
        None
    }
}

/// Reads annotations of `format` from `path`.
pub fn load(path: &Path, format: Format) -> Result<Annotations, Error> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::io(p, e));
    let bad = |m: String| Error::annotations(path, m);
    match format {
        Format::Rsna => parse_rsna(&read(path)?).map_err(bad),
        Format::Nih => parse_nih(&read(path)?).map_err(bad),
        Format::Generic => parse_generic(&read(path)?).map_err(bad),
        Format::Coco => parse_coco(&read(path)?).map_err(bad),
        Format::Voc => {
            let files: Vec<PathBuf> = if path.is_dir() {
                let mut v: Vec<PathBuf> = walkdir::WalkDir::new(path)
                    .into_iter()
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_file())
                    .map(|e| e.into_path())
                    .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("xml")))
                    .collect();
                v.sort();
                v
            } else {
                vec![path.to_path_buf()]
            };
            if files.is_empty() {
                return Err(bad("no .xml files in the folder".into()));
            }
            let mut texts = Vec::with_capacity(files.len());
            for f in &files {
                let name = f.strip_prefix(path).unwrap_or(f).display().to_string();
                let name = if name.is_empty() { f.display().to_string() } else { name };
                texts.push((
                    name,
                    f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
                    read(f)?,
                ));
            }
            Ok(parse_voc(texts.iter().map(|(n, s, t)| (n.as_str(), s.as_str(), t.as_str()))))
        }
    }
}

/// A CSV reader that tolerates ragged rows (the NIH file has trailing empty columns).
fn csv_reader(text: &str) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes())
}

fn column(headers: &csv::StringRecord, name: &str) -> Option<usize> {
    headers.iter().position(|h| h.eq_ignore_ascii_case(name))
}

fn num(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The raw text of a record, for examples.
fn row_text(r: &csv::StringRecord) -> String {
    r.iter().collect::<Vec<_>>().join(",")
}

/// The records after the header, each with its origin for issue examples ("line N (the
/// row)"); a row the CSV reader cannot read is counted as `unreadable_row` and skipped.
/// Annotation files are small (the RSNA list is 30k rows), so they are read at once.
fn readable_rows(rd: &mut csv::Reader<&[u8]>, issues: &mut Issues) -> Vec<(String, csv::StringRecord)> {
    let mut rows = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        // Line numbers as an editor shows them: 1 is the header.
        let line = i + 2;
        match rec {
            Ok(r) => rows.push((format!("line {line} ({})", row_text(&r)), r)),
            Err(e) => issues.add("unreadable_row", format!("line {line}: {e}")),
        }
    }
    rows
}

/// RSNA `stage_2_train_labels.csv`: `patientId,x,y,width,height,Target`.
pub fn parse_rsna(text: &str) -> Result<Annotations, String> {
    let mut rd = csv_reader(text);
    let headers = rd.headers().map_err(|e| e.to_string())?.clone();
    let col = |n: &str| column(&headers, n).ok_or_else(|| format!("RSNA header has no '{n}' column"));
    let (cp, cx, cy, cw, ch, ct) =
        (col("patientId")?, col("x")?, col("y")?, col("width")?, col("height")?, col("Target")?);
    let mut b = Builder::new(Format::Rsna);
    let mut target_of: HashMap<String, bool> = HashMap::new();
    for (origin, rec) in readable_rows(&mut rd, &mut b.issues) {
        let get = |c: usize| rec.get(c).unwrap_or("");
        let pid = get(cp);
        if pid.is_empty() {
            b.issues.add("unreadable_row", format!("{origin}: no patientId"));
            continue;
        }
        let target = match get(ct) {
            "1" | "1.0" => true,
            "0" | "0.0" => false,
            _ => {
                b.issues.add("unreadable_row", format!("{origin}: Target must be 0 or 1"));
                continue;
            }
        };
        if let Some(prev) = target_of.insert(pid.to_string(), target) {
            if prev != target {
                b.issues.add("conflicting_target", format!("{origin}: patient has Target 0 and Target 1 rows"));
            }
        }
        let coords = [get(cx), get(cy), get(cw), get(ch)];
        if !target {
            if coords.iter().any(|c| !c.is_empty()) {
                b.issues.add("conflicting_target", format!("{origin}: Target 0 with coordinates (ignored)"));
            }
            b.image(pid, KeyKind::Stem);
            continue;
        }
        let Some([x, y, w, h]) = parse4(&coords) else {
            b.issues.add("unreadable_row", format!("{origin}: Target 1 needs numeric x, y, width, height"));
            b.image(pid, KeyKind::Stem);
            continue;
        };
        b.add_box(pid, KeyKind::Stem, Rect::new(x, y, x + w, y + h), None, &origin);
    }
    Ok(b.finish())
}

fn parse4(s: &[&str; 4]) -> Option<[f64; 4]> {
    Some([num(s[0])?, num(s[1])?, num(s[2])?, num(s[3])?])
}

/// NIH `BBox_List_2017.csv`: `Image Index,Finding Label,Bbox [x,y,w,h],,,` then
/// `name,label,x,y,w,h` (the bbox header spans four columns, three of them unnamed).
pub fn parse_nih(text: &str) -> Result<Annotations, String> {
    let mut rd = csv_reader(text);
    let headers = rd.headers().map_err(|e| e.to_string())?.clone();
    if !headers.get(0).is_some_and(|h| h.eq_ignore_ascii_case("Image Index")) {
        return Err("NIH header must start with 'Image Index'".into());
    }
    let mut b = Builder::new(Format::Nih);
    for (origin, rec) in readable_rows(&mut rd, &mut b.issues) {
        let name = rec.get(0).unwrap_or("");
        let label = rec.get(1).unwrap_or("");
        let coords =
            [rec.get(2).unwrap_or(""), rec.get(3).unwrap_or(""), rec.get(4).unwrap_or(""), rec.get(5).unwrap_or("")];
        let (Some([x, y, w, h]), false) = (parse4(&coords), name.is_empty()) else {
            b.issues.add("unreadable_row", format!("{origin}: expected name,label,x,y,w,h"));
            continue;
        };
        let label = (!label.is_empty()).then(|| label.to_string());
        b.add_box(name, KeyKind::Path, Rect::new(x, y, x + w, y + h), label, &origin);
    }
    Ok(b.finish())
}

/// Generic CSV: `path,x1,y1,x2,y2[,label]`, half-open corners; a row with all four
/// coordinates empty lists a negative image.
pub fn parse_generic(text: &str) -> Result<Annotations, String> {
    let mut rd = csv_reader(text);
    let headers = rd.headers().map_err(|e| e.to_string())?.clone();
    let col = |n: &str| column(&headers, n).ok_or_else(|| format!("generic header has no '{n}' column"));
    let (cp, c1, c2, c3, c4) = (col("path")?, col("x1")?, col("y1")?, col("x2")?, col("y2")?);
    let cl = column(&headers, "label");
    let mut b = Builder::new(Format::Generic);
    for (origin, rec) in readable_rows(&mut rd, &mut b.issues) {
        let get = |c: usize| rec.get(c).unwrap_or("");
        let path = get(cp).trim_start_matches("./");
        if path.is_empty() {
            b.issues.add("unreadable_row", format!("{origin}: no path"));
            continue;
        }
        let coords = [get(c1), get(c2), get(c3), get(c4)];
        if coords.iter().all(|c| c.is_empty()) {
            b.image(path, KeyKind::Path);
            continue;
        }
        let Some([x1, y1, x2, y2]) = parse4(&coords) else {
            b.issues.add("unreadable_row", format!("{origin}: x1, y1, x2, y2 must be numbers (or all empty)"));
            b.image(path, KeyKind::Path);
            continue;
        };
        let label = cl.map(get).filter(|l| !l.is_empty()).map(str::to_string);
        b.add_box(path, KeyKind::Path, Rect::new(x1, y1, x2, y2), label, &origin);
    }
    Ok(b.finish())
}

/// Pascal VOC: one XML per image, given as (name for messages, file stem, text).
pub fn parse_voc<'a>(files: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) -> Annotations {
    let mut b = Builder::new(Format::Voc);
    for (name, stem, text) in files {
        let doc = match roxmltree::Document::parse(text) {
            Ok(d) => d,
            Err(e) => {
                b.issues.add("unreadable_file", format!("{name}: {e}"));
                continue;
            }
        };
        let root = doc.root_element();
        let (key, kind) = match text_of(root, "filename") {
            Some(f) => (f, KeyKind::Path),
            None => (stem.to_string(), KeyKind::Stem),
        };
        let size = child(root, "size").and_then(|s| {
            let w = text_of(s, "width")?.parse::<f64>().ok()?;
            let h = text_of(s, "height")?.parse::<f64>().ok()?;
            (w >= 1.0 && h >= 1.0).then_some((w as u32, h as u32))
        });
        b.image(&key, kind).size = size;
        for (k, obj) in root.children().filter(|c| c.has_tag_name("object")).enumerate() {
            let origin = format!("{name} object {}", k + 1);
            let label = text_of(obj, "name");
            let coords = child(obj, "bndbox").and_then(|bb| {
                let v = |t: &str| text_of(bb, t).and_then(|s| num(&s));
                Some([v("xmin")?, v("ymin")?, v("xmax")?, v("ymax")?])
            });
            let Some([xmin, ymin, xmax, ymax]) = coords else {
                b.issues.add("unreadable_row", format!("{origin}: no numeric bndbox xmin, ymin, xmax, ymax"));
                continue;
            };
            // 1-based inclusive pixel indices -> half-open, 0-based.
            b.add_box(&key, kind, Rect::new(xmin - 1.0, ymin - 1.0, xmax, ymax), label, &origin);
        }
    }
    b.finish()
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(tag))
}

fn text_of(n: roxmltree::Node<'_, '_>, tag: &str) -> Option<String> {
    child(n, tag).and_then(|c| c.text()).map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

/// COCO instances JSON: `images`, `annotations` (`bbox = [x, y, w, h]`), `categories`.
pub fn parse_coco(text: &str) -> Result<Annotations, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let arr = |k: &str| v.get(k).and_then(|a| a.as_array()).ok_or_else(|| format!("COCO JSON has no '{k}' array"));
    let (images, anns) = (arr("images")?, arr("annotations")?);
    let cats: HashMap<String, String> = v
        .get("categories")
        .and_then(|c| c.as_array())
        .map(|c| {
            c.iter().filter_map(|c| Some((c.get("id")?.to_string(), c.get("name")?.as_str()?.to_string()))).collect()
        })
        .unwrap_or_default();
    let mut b = Builder::new(Format::Coco);
    let mut by_id: HashMap<String, String> = HashMap::new();
    for (i, im) in images.iter().enumerate() {
        let (Some(id), Some(file)) = (im.get("id"), im.get("file_name").and_then(|f| f.as_str())) else {
            b.issues.add("unreadable_row", format!("images[{i}]: needs id and file_name"));
            continue;
        };
        let size = match (im.get("width").and_then(|w| w.as_u64()), im.get("height").and_then(|h| h.as_u64())) {
            (Some(w), Some(h)) if w > 0 && h > 0 => Some((w as u32, h as u32)),
            _ => None,
        };
        b.image(file, KeyKind::Path).size = size;
        by_id.insert(id.to_string(), file.to_string());
    }
    for (i, a) in anns.iter().enumerate() {
        let origin = format!("annotations[{i}]");
        let Some(file) = a.get("image_id").and_then(|id| by_id.get(&id.to_string())) else {
            b.issues.add(
                "unknown_image",
                format!(
                    "{origin}: image_id {} is not in 'images'",
                    a.get("image_id").map(|v| v.to_string()).unwrap_or_default()
                ),
            );
            continue;
        };
        let bbox: Option<Vec<f64>> =
            a.get("bbox").and_then(|bb| bb.as_array()).and_then(|bb| bb.iter().map(|x| x.as_f64()).collect());
        let Some([x, y, w, h]) = bbox.and_then(|bb| <[f64; 4]>::try_from(bb).ok()) else {
            b.issues.add("unreadable_row", format!("{origin}: bbox must be [x, y, width, height]"));
            continue;
        };
        let label = match a.get("category_id") {
            Some(c) => match cats.get(&c.to_string()) {
                Some(n) => Some(n.clone()),
                None => {
                    b.issues.add("unknown_category", format!("{origin}: category_id {c}"));
                    Some(c.to_string())
                }
            },
            None => None,
        };
        let file = file.clone();
        b.add_box(&file, KeyKind::Path, Rect::new(x, y, x + w, y + h), label, &origin);
    }
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxes(a: &Annotations, key: &str) -> Vec<[f64; 4]> {
        let im = a.images.iter().find(|i| i.key == key).unwrap_or_else(|| panic!("no image {key}"));
        im.boxes.iter().map(|b| [b.rect.x1, b.rect.y1, b.rect.x2, b.rect.y2]).collect()
    }

    #[test]
    fn rsna_rows_negatives_and_bad_rows() {
        let text = "patientId,x,y,width,height,Target\n\
                    p1,264.0,152.0,213.0,379.0,1\n\
                    p1,562.0,152.0,256.0,453.0,1\n\
                    p2,,,,,0\n\
                    p3,10,10,-5,20,1\n\
                    p4,abc,1,2,3,1\n\
                    p5,1,2,3,4,7\n";
        assert_eq!(detect_csv(text), Some(Format::Rsna));
        let a = parse_rsna(text).unwrap();
        assert_eq!(boxes(&a, "p1"), vec![[264.0, 152.0, 477.0, 531.0], [562.0, 152.0, 818.0, 605.0]]);
        assert_eq!(a.images[0].kind, KeyKind::Stem);
        assert!(boxes(&a, "p2").is_empty(), "Target 0 is a listed negative");
        // p3 (negative width) and p4 (unreadable) are listed, with their problems counted.
        assert!(boxes(&a, "p3").is_empty() && boxes(&a, "p4").is_empty());
        assert_eq!(a.issues.count("negative_size"), 1);
        assert_eq!(a.issues.count("unreadable_row"), 2, "{:?}", a.issues);
        let ex = &a.issues.0["negative_size"].examples[0];
        assert!(ex.contains("line 5") && ex.contains("p3"), "{ex}");
        assert!(a.images.iter().all(|i| i.key != "p5"), "a row with Target 7 lists nothing");
    }

    #[test]
    fn nih_odd_header_float_boxes() {
        let text = "Image Index,Finding Label,Bbox [x,y,w,h],,,\n\
                    00013118_008.png,Atelectasis,225.084745762712,547.019216763771,86.7796610169491,79.1864406779661\n\
                    00014716_007.png,Infiltrate,686.08,552.23,95.15,145.07,,\n\
                    00014716_007.png,Mass,1,2\n";
        assert_eq!(detect_csv(text), Some(Format::Nih));
        let a = parse_nih(text).unwrap();
        let b = boxes(&a, "00013118_008.png");
        assert_eq!(b[0][0], 225.084745762712);
        assert_eq!(b[0][2], 225.084745762712 + 86.7796610169491);
        let im = a.images.iter().find(|i| i.key == "00014716_007.png").unwrap();
        assert_eq!(im.boxes[0].label.as_deref(), Some("Infiltrate"));
        assert_eq!(a.issues.count("unreadable_row"), 1);
        assert!(a.issues.0["unreadable_row"].examples[0].contains("line 4"));
    }

    #[test]
    fn generic_with_labels_negatives_and_problems() {
        let text = "path,x1,y1,x2,y2,label\n\
                    chelsea.png,30,0,385,300,cat head\n\
                    sub/neg.png,,,,,\n\
                    zero.png,5,5,5,9,\n\
                    bad.png,1,2,x,4,\n";
        assert_eq!(detect_csv(text), Some(Format::Generic));
        let a = parse_generic(text).unwrap();
        assert_eq!(boxes(&a, "chelsea.png"), vec![[30.0, 0.0, 385.0, 300.0]]);
        assert_eq!(a.images[0].boxes[0].label.as_deref(), Some("cat head"));
        assert!(boxes(&a, "sub/neg.png").is_empty());
        assert_eq!((a.issues.count("empty_box"), a.issues.count("unreadable_row")), (1, 1));
        assert_eq!(a.issues.total(), 2);
    }

    #[test]
    fn voc_is_one_based_inclusive() {
        let xml = r#"<annotation><folder>VOC2007</folder><filename>000005.jpg</filename>
            <size><width>500</width><height>375</height><depth>3</depth></size>
            <object><name>chair</name><difficult>0</difficult>
              <bndbox><xmin>263</xmin><ymin>211</ymin><xmax>324</xmax><ymax>339</ymax></bndbox></object>
            <object><name>broken</name><bndbox><xmin>1</xmin></bndbox></object>
            </annotation>"#;
        let neg = "<annotation><size><width>10</width><height>10</height></size></annotation>";
        let a = parse_voc([("000005.xml", "000005", xml), ("empty.xml", "empty", neg), ("bad.xml", "bad", "<a>")]);
        assert_eq!(boxes(&a, "000005.jpg"), vec![[262.0, 210.0, 324.0, 339.0]]);
        let im = &a.images[0];
        assert_eq!((im.size, im.kind, im.boxes[0].label.as_deref()), (Some((500, 375)), KeyKind::Path, Some("chair")));
        // No <filename>: keyed by the XML's stem, a negative.
        assert_eq!((a.images[1].key.as_str(), a.images[1].kind), ("empty", KeyKind::Stem));
        assert!(a.images[1].boxes.is_empty());
        assert_eq!((a.issues.count("unreadable_row"), a.issues.count("unreadable_file")), (1, 1));
    }

    #[test]
    fn coco_boxes_categories_and_unknown_images() {
        let json = r#"{"images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480},
                                  {"id": 2, "file_name": "b.jpg", "width": 100, "height": 100}],
                       "categories": [{"id": 18, "name": "dog"}],
                       "annotations": [{"id": 7, "image_id": 1, "category_id": 18, "bbox": [10.5, 20, 30, 40.25]},
                                       {"id": 8, "image_id": 9, "category_id": 18, "bbox": [0, 0, 1, 1]},
                                       {"id": 9, "image_id": 1, "category_id": 3, "bbox": [0, 0, 5, 5]},
                                       {"id": 10, "image_id": 1, "bbox": [0, 0, 5]}]}"#;
        let a = parse_coco(json).unwrap();
        assert_eq!(boxes(&a, "a.jpg")[0], [10.5, 20.0, 40.5, 60.25]);
        assert_eq!(a.images[0].boxes[0].label.as_deref(), Some("dog"));
        assert_eq!(a.images[0].size, Some((640, 480)));
        assert!(boxes(&a, "b.jpg").is_empty(), "an image without annotations is a negative");
        assert_eq!(a.issues.count("unknown_image"), 1);
        assert_eq!(a.issues.count("unknown_category"), 1);
        assert_eq!(a.issues.count("unreadable_row"), 1);
    }

    #[test]
    fn detection_by_header_and_extension() {
        assert_eq!(detect_csv("\u{feff}path,x1,y1,x2,y2\n"), Some(Format::Generic));
        assert_eq!(detect_csv("id,a,b\n"), None);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        std::fs::write(&p, "{}").unwrap();
        assert_eq!(detect(&p).unwrap(), Format::Coco);
        assert_eq!(detect(dir.path()).unwrap(), Format::Voc);
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "foo,bar\n").unwrap();
        assert!(detect(&p).unwrap_err().to_string().contains("cannot tell the format"));
    }
}
