//! Stage "write": everything cambox puts on disk, and the formats of it.
//!
//! One writer owns the output folder; workers only send it finished records. Whole files
//! are written atomically (`atomic`: temporary file in the same folder, then rename), so
//! a reader or a killed run never sees half a file; the CSV tables are appended row by
//! row and flushed regularly ([`table`]), so a killed run leaves a valid table of what it
//! finished.
//!
//! This module owns the formats: the rows of `images.csv` ([`images_csv::ImageRow`]) and
//! `boxes.csv` ([`boxes_csv::BoxRow`]) and the `run.json` manifest
//! ([`manifest::RunManifest`]) are defined once here, with serde, filled by the pipeline
//! and read back through the same types by `resume`, `merge` and `eval`.

mod atomic;
pub mod artefacts;
pub mod boxes_csv;
pub mod draw;
pub mod fields;
pub mod images_csv;
pub mod manifest;
pub mod probabilities_csv;
mod options;
pub mod table;

pub use atomic::{atomic_write, atomic_write_unsynced, sync_file};
pub use options::OutputOptions;
