//! Class names: the labels file of a model, one name per line (line n is class n - 1).
//!
//! One reader for the run (which checks the count against the model) and for `eval`
//! (which names the classes of a finished run).

use std::path::Path;

use crate::error::{Error, Result};

/// Class names, index = class.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels(Vec<String>);

impl Labels {
    /// The names in a labels file: one per line, trimmed, empty lines skipped.
    pub fn read(path: &Path) -> std::io::Result<Vec<String>> {
        let text = std::fs::read_to_string(path)?;
        Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
    }

    /// The labels of a model with `num_classes` classes: from `path`, which must name each
    /// class, or `class_0`, `class_1`, ... without one.
    pub fn load(path: Option<&Path>, num_classes: usize) -> Result<Labels> {
        let Some(path) = path else {
            return Ok(Labels((0..num_classes).map(|i| format!("class_{i}")).collect()));
        };
        let names = Labels::read(path).map_err(|e| Error::io(path, e))?;
        if names.len() != num_classes {
            return Err(Error::config(
                path,
                format!("labels file has {} names but the model has {num_classes} classes", names.len()),
            ));
        }
        Ok(Labels(names))
    }

    pub fn from_names(names: Vec<String>) -> Labels {
        Labels(names)
    }

    pub fn name(&self, k: usize) -> &str {
        self.0.get(k).map(String::as_str).unwrap_or("")
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|n| n == name)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
