//! Stage "write": everything cambox puts on disk.
//!
//! One writer owns the output folder; workers only send it finished records. Whole files
//! are written atomically (temporary file in the same folder, then rename), so a reader
//! or a killed run never sees half a file; the CSV tables are appended row by row and
//! flushed regularly, so a killed run leaves a valid table of what it finished.

pub mod artefacts;
pub mod boxes_csv;
pub mod images_csv;
pub mod manifest;

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: temp file beside it, fsync, rename.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
