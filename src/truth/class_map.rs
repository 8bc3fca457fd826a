//! Which model classes a truth label means.
//!
//! Annotation labels rarely are the model's class names: VOC's "cat" is five ImageNet
//! classes (281-285), the NIH box list says "Infiltrate" where a CheXNet model says
//! "Infiltration". A class map file says it explicitly, as CSV with the header
//! `truth_label,model_class`, one row per pair (a label may have several rows);
//! `model_class` is a class index or a class name. A label the file does not list, or
//! every label when there is no file, maps to the model class of the same name, compared
//! without regard to case. A label that maps to nothing is reported with its count, never
//! dropped silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Error;
use crate::labels::Labels;

/// Truth labels to model classes.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMap {
    /// The file's pairs, classes in the order the file gives them (no duplicates).
    explicit: BTreeMap<String, Vec<usize>>,
    /// Lower-case class name -> class, for the by-name rule (names that are not unique
    /// when lower-cased are left out).
    by_name: BTreeMap<String, usize>,
    source: Option<PathBuf>,
}

/// How a set of labels mapped: what maps, and what does not (with how many boxes).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Resolution {
    pub mapped: BTreeMap<String, Vec<usize>>,
    pub unmapped: BTreeMap<String, usize>,
}

impl ClassMap {
    /// The map of `path` (or the by-name rule alone without one) for a model with these
    /// class names.
    pub fn load(path: Option<&Path>, labels: &Labels) -> Result<ClassMap, Error> {
        let mut by_name = BTreeMap::new();
        let mut clash = Vec::new();
        for k in 0..labels.len() {
            let n = labels.name(k).to_lowercase();
            if !n.is_empty() && by_name.insert(n.clone(), k).is_some() {
                clash.push(n);
            }
        }
        clash.iter().for_each(|n| {
            by_name.remove(n);
        });
        let explicit = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
                parse(&text, labels).map_err(|m| Error::class_map(p, m))?
            }
            None => BTreeMap::new(),
        };
        Ok(ClassMap { explicit, by_name, source: path.map(Path::to_path_buf) })
    }

    /// The model classes `label` means; empty when none.
    pub fn classes(&self, label: &str) -> Vec<usize> {
        match self.explicit.get(label) {
            Some(v) => v.clone(),
            None => self.by_name.get(&label.to_lowercase()).map(|&k| vec![k]).unwrap_or_default(),
        }
    }

    /// How each of `labels` (with repeats: one per truth box) maps.
    pub fn resolve<'a>(&self, labels: impl IntoIterator<Item = &'a str>) -> Resolution {
        let mut r = Resolution::default();
        for l in labels {
            let classes = self.classes(l);
            if classes.is_empty() {
                *r.unmapped.entry(l.to_string()).or_default() += 1;
            } else {
                r.mapped.entry(l.to_string()).or_insert(classes);
            }
        }
        r
    }

    /// Whether the map came from a file.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }
}

fn parse(text: &str, labels: &Labels) -> Result<BTreeMap<String, Vec<usize>>, String> {
    let mut rd =
        csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let head: Vec<String> = rd.headers().map_err(|e| e.to_string())?.iter().map(str::to_lowercase).collect();
    if head != ["truth_label", "model_class"] {
        return Err(format!("the header must be truth_label,model_class, not {}", head.join(",")));
    }
    let mut out: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, rec) in rd.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| format!("line {line}: {e}"))?;
        let (label, class) = (rec.get(0).unwrap_or(""), rec.get(1).unwrap_or(""));
        if label.is_empty() || class.is_empty() {
            return Err(format!("line {line}: a truth label and a model class are needed"));
        }
        let k = match class.parse::<usize>() {
            Ok(k) if k < labels.len() => k,
            Ok(k) => {
                return Err(format!("line {line}: class {k} is out of range (the model has {} classes)", labels.len()))
            }
            Err(_) => labels
                .index_of(class)
                .or_else(|| {
                    let lower = class.to_lowercase();
                    let hits: Vec<usize> =
                        (0..labels.len()).filter(|&k| labels.name(k).to_lowercase() == lower).collect();
                    (hits.len() == 1).then(|| hits[0])
                })
                .ok_or_else(|| format!("line {line}: no model class named '{class}'"))?,
        };
        let v = out.entry(label.to_string()).or_default();
        if !v.contains(&k) {
            v.push(k);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels {
        Labels::from_names(["tabby", "tiger cat", "Persian cat", "Infiltration", "Effusion"].map(String::from).to_vec())
    }

    #[test]
    fn files_and_names_map_labels_to_classes() {
        let m = ClassMap { source: None, ..ClassMap::load(None, &labels()).unwrap() };
        assert_eq!(m.classes("infiltration"), vec![3]);
        assert_eq!(m.classes("Infiltrate"), Vec::<usize>::new());
        let mut explicit =
            parse("truth_label,model_class\ncat,0\ncat,tiger cat\ncat, persian CAT \nInfiltrate,3\ncat,0\n", &labels())
                .unwrap();
        assert_eq!(explicit["cat"], vec![0, 1, 2]);
        explicit.remove("cat");
        let m = ClassMap { explicit, ..m };
        assert_eq!(m.classes("Infiltrate"), vec![3]);
        let r = m.resolve(["Infiltrate", "Effusion", "Mass", "Mass", "Infiltrate"]);
        assert_eq!(r.mapped.keys().collect::<Vec<_>>(), vec!["Effusion", "Infiltrate"]);
        assert_eq!(r.unmapped.get("Mass"), Some(&2));
        for (bad, says) in [
            ("label,class\ncat,0\n", "header"),
            ("truth_label,model_class\ncat,9\n", "out of range"),
            ("truth_label,model_class\ncat,dog\n", "no model class named 'dog'"),
            ("truth_label,model_class\ncat,\n", "line 2"),
        ] {
            let e = parse(bad, &labels()).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
