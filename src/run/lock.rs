//! One run per output folder at a time.
//!
//! Two runs writing one folder mix their rows and artefacts (a `--force` run with another
//! configuration even more so), and the later resume cannot tell. So `run` and `merge`
//! hold an advisory lock (`flock`, through `std::fs::File::try_lock`) on `.cambox.lock` in
//! the folder for as long as they write it. The kernel releases it when the process ends,
//! however it ends: a SIGKILLed run leaves no stale lock, and the next run takes the folder
//! over. The holder writes its pid, start time and host into the file, so a refused run can
//! say who has the folder.
//!
//! Advisory locks hold between processes that take them (every cambox does), on local file
//! systems; over NFS `flock` depends on the server's configuration.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// The lock file's name in an output folder. `--force` never removes it.
pub const LOCK_FILE: &str = ".cambox.lock";

/// The lock on an output folder, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
}

impl FolderLock {
    /// Takes the lock of `dir` (which must exist) for `what` (`run`, `merge`), or says who
    /// holds it.
    pub fn acquire(dir: &Path, what: &str) -> Result<FolderLock> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::output(dir, format!("cannot open its lock file {LOCK_FILE}: {e}")))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(Error::output(
                    dir,
                    format!(
                        "is in use by another cambox ({}); wait for it to end, or give another --out",
                        describe(&holder)
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::output(dir, format!("cannot lock {LOCK_FILE}: {e}")));
            }
        }
        let me = format!(
            "pid {}\nstarted {}\ncommand {what}\nhost {}\n",
            std::process::id(),
            crate::output::manifest::now(),
            hostname()
        );
        // Best effort: the lock is what matters, the text only names the holder.
        let _ = file.set_len(0).and_then(|_| file.seek(SeekFrom::Start(0))).and_then(|_| file.write_all(me.as_bytes()));
        let _ = file.flush();
        Ok(FolderLock { _file: file })
    }
}

/// "run, pid 1234, started 2026-11-29T04:12:00+00:00 on node7" from the lock file's text.
fn describe(holder: &str) -> String {
    let field = |k: &str| holder.lines().find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()));
    match (field("pid "), field("started "), field("command "), field("host ")) {
        (Some(pid), Some(t), c, h) => format!(
            "{}pid {pid}, started {t}{}",
            c.map(|c| format!("{c}, ")).unwrap_or_default(),
            h.filter(|h| !h.is_empty()).map(|h| format!(" on {h}")).unwrap_or_default()
        ),
        _ => "a process that has just taken it".to_string(),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_named_and_the_lock_goes_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = FolderLock::acquire(dir.path(), "run").unwrap();
        let e = FolderLock::acquire(dir.path(), "merge").unwrap_err().to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())) && e.contains("run, "), "{e}");
        assert!(e.contains(dir.path().to_str().unwrap()) && e.contains("in use"), "{e}");
        drop(first);
        FolderLock::acquire(dir.path(), "merge").unwrap();
    }

    #[test]
    fn holder_text_is_read_leniently() {
        assert_eq!(describe(""), "a process that has just taken it");
        assert_eq!(describe("pid 7\nstarted T\ncommand run\nhost n1\n"), "run, pid 7, started T on n1");
    }
}
