//! Long work without the GIL: the library works on a thread of its own while the calling
//! thread, holding the GIL only briefly, reports progress and watches for Ctrl-C.
//!
//! Why a thread: Python runs signal handlers only on the main thread, between bytecodes.
//! If the main thread sat inside the library for the whole call, Ctrl-C would wait until
//! the end. Here it wakes at least every [`POLL`] (or when an item is done), calls
//! `PyErr_CheckSignals`, and on KeyboardInterrupt sets the cancel flag the library
//! watches, lets the items in flight finish (as the command does on SIGINT), and raises.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use pyo3::prelude::*;

/// How often the calling thread looks for signals while the work goes on.
const POLL: Duration = Duration::from_millis(100);

/// Runs `work` on a thread of its own, the GIL released, and returns what it returns.
/// `work` gets a function to call as each item is done; `tick` is called on the calling
/// thread, with the GIL, with the number done so far whenever it grew. `cancel` is set
/// when a signal handler or `tick` raises; that exception is then raised once `work`
/// returns.
pub fn drive<T: Send>(
    py: Python<'_>,
    cancel: &AtomicBool,
    mut tick: impl FnMut(Python<'_>, usize) -> PyResult<()>,
    work: impl FnOnce(&(dyn Fn() + Sync)) -> T + Send,
) -> PyResult<T> {
    let done = AtomicUsize::new(0);
    let caller = std::thread::current();
    let (mut reported, mut failure) = (0, None::<PyErr>);
    let result = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let one_done = || {
                done.fetch_add(1, Ordering::Relaxed);
                caller.unpark();
            };
            let out = work(&one_done);
            caller.unpark();
            out
        });
        while !worker.is_finished() {
            py.detach(|| std::thread::park_timeout(POLL));
            let now = done.load(Ordering::Relaxed);
            let checked = py.check_signals().and_then(|_| match now > reported {
                true => tick(py, now),
                false => Ok(()),
            });
            reported = now;
            if let (Err(e), None) = (checked, &failure) {
                cancel.store(true, Ordering::Relaxed);
                failure = Some(e);
            }
        }
        // A panic escaping `work` is re-raised here, inside the caller's `guarded`.
        worker.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    let now = done.load(Ordering::Relaxed);
    if failure.is_none() && now > reported {
        tick(py, now)?;
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(result),
    }
}
