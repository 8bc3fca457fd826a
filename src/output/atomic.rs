//! Whole files written atomically: a temporary file in the same folder, then a rename, so
//! a reader or a killed run never sees half a file.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: temp file beside it, fsync, rename.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_replacing(path, bytes, true)
}

/// [`atomic_write`] without waiting for the disk: the file is whole or absent for any
/// reader and for a killed process, but only durable across an OS crash once
/// [`sync_file`] has returned.
///
/// Why: per-image artefacts (masks, overlays, maps) are written by the workers, and an
/// fsync there kept a worker (a core, on a small machine) waiting on the disk for every
/// file. The single writer thread syncs them instead, just before it writes the row that
/// promises them (`crate::run::pipeline`), so the promise "a row in images.csv means its files are on
/// disk" is kept without the workers waiting.
pub fn atomic_write_unsynced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_replacing(path, bytes, false)
}

/// Waits until the data of a file written by [`atomic_write_unsynced`] is on disk.
pub fn sync_file(path: &Path) -> std::io::Result<()> {
    // POSIX fsync works on a read-only descriptor; Windows' FlushFileBuffers needs write access.
    std::fs::OpenOptions::new().read(true).write(cfg!(windows)).open(path)?.sync_data()
}

fn write_replacing(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    // tempfile creates 0600 files; results are meant to be shared like any other file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.write_all(bytes)?;
    if sync {
        tmp.as_file().sync_data()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
