//! Pairs annotated images with the images a run processed (`eval`), and finds the truth
//! of one image as a run meets it ([`TruthIndex`]), by the same rule.
//!
//! Keys are matched by file stem (RSNA patient ids) or by path: a path key matches a run
//! image whose relative path is the key or ends with `/` + key, so `a.png` matches
//! `x/a.png` and `x/a.png` does not match `y/a.png`. A key that matches several processed
//! images is not guessed: it is reported as ambiguous. What does not pair up is listed,
//! in both directions, because each side means something different: annotated images the
//! run never processed (or failed on) shrink the evaluation, processed images without
//! annotations are neither positives nor negatives unless the user says so.

use std::collections::HashMap;

use serde::Serialize;

use super::annotations::{fmt_rect, AnnotatedImage, Annotations, Issues, KeyKind, TruthBox};

/// What pairing needs to know of a processed image (a row of `images.csv`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Processed<'a> {
    pub rel: &'a str,
    pub ok: bool,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// The truth attached to one run image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageTruth {
    /// Empty: a listed negative.
    pub boxes: Vec<TruthBox>,
}

/// The result of pairing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pairing {
    /// Parallel to the run's images: the truth of each, if annotated.
    #[serde(skip)]
    pub truth: Vec<Option<ImageTruth>>,
    /// Annotation keys without a processed image.
    pub not_processed: Vec<String>,
    /// Annotated images that the run listed with status `error`.
    pub failed_in_run: Vec<String>,
    /// Processed (status ok) images without annotations.
    pub not_annotated: Vec<String>,
}

fn stem(rel: &str) -> &str {
    let name = file_name(rel);
    match name.rfind('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    }
}

fn file_name(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// Whether the annotation key of `im` names the image at relative path `rel`.
fn names(im: &AnnotatedImage, rel: &str) -> bool {
    match im.kind {
        KeyKind::Stem => stem(rel) == im.key,
        KeyKind::Path => {
            let key = im.key.trim_start_matches("./");
            rel == key || rel.ends_with(&format!("/{key}"))
        }
    }
}

/// The key `im` is looked up by: its stem, or the file name of its path.
fn lookup_key(im: &AnnotatedImage) -> &str {
    match im.kind {
        KeyKind::Stem => &im.key,
        KeyKind::Path => file_name(im.key.trim_start_matches("./")),
    }
}

/// Annotations indexed for finding the truth of one image at a time, as a run meets its
/// images. A key that names several images gives its boxes to each (a run cannot know
/// the others yet); `eval` reports such a key as ambiguous and leaves it out.
#[derive(Debug, Clone)]
pub struct TruthIndex {
    images: Vec<AnnotatedImage>,
    by_stem: HashMap<String, Vec<usize>>,
    by_name: HashMap<String, Vec<usize>>,
}

impl TruthIndex {
    pub fn new(ann: &Annotations) -> TruthIndex {
        let mut t = TruthIndex { images: ann.images.clone(), by_stem: HashMap::new(), by_name: HashMap::new() };
        for (i, im) in t.images.iter().enumerate() {
            let map = match im.kind {
                KeyKind::Stem => &mut t.by_stem,
                KeyKind::Path => &mut t.by_name,
            };
            map.entry(lookup_key(im).to_string()).or_default().push(i);
        }
        t
    }

    /// The truth boxes of the image at `rel`: `None` when no annotation names it, an
    /// empty list for a listed negative.
    pub fn boxes(&self, rel: &str) -> Option<Vec<&TruthBox>> {
        let cands = self.by_stem.get(stem(rel)).into_iter().chain(self.by_name.get(file_name(rel))).flatten();
        let mut found: Option<Vec<&TruthBox>> = None;
        for &i in cands {
            let im = &self.images[i];
            if names(im, rel) {
                found.get_or_insert_with(Vec::new).extend(im.boxes.iter());
            }
        }
        found
    }
}

/// Pairs `ann` with `run`; problems go to `issues` (`ambiguous_match`,
/// `duplicate_annotation`, `outside_image`, `size_mismatch`).
pub fn pair(ann: &Annotations, run: &[Processed], issues: &mut Issues) -> Pairing {
    let mut by_stem: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in run.iter().enumerate() {
        by_stem.entry(stem(r.rel)).or_default().push(i);
        by_name.entry(file_name(r.rel)).or_default().push(i);
    }
    let mut p = Pairing { truth: vec![None; run.len()], ..Default::default() };
    for im in &ann.images {
        let index = match im.kind {
            KeyKind::Stem => &by_stem,
            KeyKind::Path => &by_name,
        };
        let cands: Vec<usize> = index
            .get(lookup_key(im))
            .map(|v| v.iter().copied().filter(|&i| names(im, run[i].rel)).collect())
            .unwrap_or_default();
        let i = match cands.as_slice() {
            [] => {
                p.not_processed.push(im.key.clone());
                continue;
            }
            [i] => *i,
            many => {
                let names: Vec<&str> = many.iter().take(3).map(|&i| run[i].rel).collect();
                issues.add(
                    "ambiguous_match",
                    format!("'{}' matches {} processed images ({}, ...)", im.key, many.len(), names.join(", ")),
                );
                continue;
            }
        };
        let r = &run[i];
        if !r.ok {
            p.failed_in_run.push(r.rel.to_string());
            continue;
        }
        if let (Some(size), Some(w), Some(h)) = (im.size, r.width, r.height) {
            if size != (w, h) {
                issues.add(
                    "size_mismatch",
                    format!("{}: annotated as {}x{}, the image is {w}x{h}", r.rel, size.0, size.1),
                );
            }
        }
        if let (Some(w), Some(h)) = (r.width, r.height) {
            for b in &im.boxes {
                let q = &b.rect;
                if q.x1 < 0.0 || q.y1 < 0.0 || q.x2 > w as f64 || q.y2 > h as f64 {
                    issues.add("outside_image", format!("{}: box {} in a {w}x{h} image (kept)", r.rel, fmt_rect(q)));
                }
            }
        }
        let slot = &mut p.truth[i];
        if slot.is_some() {
            issues.add("duplicate_annotation", format!("{} is annotated under more than one key; boxes merged", r.rel));
        }
        slot.get_or_insert_with(ImageTruth::default).boxes.extend(im.boxes.iter().cloned());
    }
    p.not_annotated =
        run.iter().zip(&p.truth).filter(|(r, t)| r.ok && t.is_none()).map(|(r, _)| r.rel.to_string()).collect();
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::truth::annotations::{parse_generic, parse_rsna};

    fn img(rel: &str, ok: bool) -> Processed<'_> {
        Processed { rel, ok, width: Some(100), height: Some(100) }
    }

    #[test]
    fn stems_paths_and_what_is_left_over() {
        let run = vec![img("x/p1.png", true), img("p2.png", true), img("p3.png", false), img("extra.png", true)];
        let ann = parse_rsna(
            "patientId,x,y,width,height,Target\np1,10,10,20,20,1\np2,,,,,0\np3,,,,,0\np9,,,,,0\np1,90,90,20,20,1\n",
        )
        .unwrap();
        let mut issues = Issues::default();
        let p = pair(&ann, &run, &mut issues);
        assert_eq!(p.truth[0].as_ref().unwrap().boxes.len(), 2);
        assert_eq!(p.truth[1], Some(ImageTruth::default()), "negative");
        assert_eq!(p.failed_in_run, vec!["p3.png"]);
        assert_eq!(p.not_processed, vec!["p9"]);
        assert_eq!(p.not_annotated, vec!["extra.png"]);
        assert_eq!(issues.count("outside_image"), 1, "{:?}", issues);
    }

    #[test]
    fn path_keys_match_suffixes_and_refuse_ambiguity() {
        let run = vec![img("a/x.png", true), img("b/x.png", true), img("b/y.png", true)];
        let ann = parse_generic("path,x1,y1,x2,y2\nx.png,1,1,5,5\nb/y.png,1,1,5,5\na/b/y.png,1,1,5,5\n").unwrap();
        let mut issues = Issues::default();
        let p = pair(&ann, &run, &mut issues);
        assert_eq!(issues.count("ambiguous_match"), 1);
        assert!(p.truth[0].is_none() && p.truth[1].is_none() && p.truth[2].is_some());
        assert_eq!(p.not_processed, vec!["a/b/y.png"]);
    }

    #[test]
    fn the_index_finds_an_image_by_the_same_rule() {
        let ann =
            parse_generic("path,x1,y1,x2,y2,label\nx.png,1,1,5,5,a\nb/y.png,1,1,5,5,b\nb/y.png,2,2,6,6,c\n").unwrap();
        let t = TruthIndex::new(&ann);
        assert_eq!(t.boxes("a/x.png").unwrap().len(), 1, "a key matches every image it names");
        assert_eq!(t.boxes("b/x.png").unwrap().len(), 1);
        assert_eq!(t.boxes("b/y.png").unwrap().len(), 2);
        assert!(t.boxes("a/b/y.png").unwrap().len() == 2 && t.boxes("y.png").is_none());
        let rsna = parse_rsna("patientId,x,y,width,height,Target\np1,10,10,20,20,1\np2,,,,,0\n").unwrap();
        let t = TruthIndex::new(&rsna);
        assert_eq!(t.boxes("d/p1.dcm").unwrap().len(), 1);
        assert_eq!(t.boxes("p2.png").unwrap().len(), 0, "a listed negative");
        assert!(t.boxes("p3.png").is_none());
    }
}
