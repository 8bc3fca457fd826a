//! Process-wide settings for many workers running networks: here because they need
//! `unsafe`, which this crate alone is allowed.

/// One glibc malloc arena per worker, instead of glibc's default of up to eight per core.
///
/// Why: tract allocates every intermediate tensor on every run (1-2 MB activations, per
/// layer, per worker). glibc gives each thread that meets contention an arena of its own
/// and keeps the freed memory of each, so peak RSS crept up over a run (175-200 MB on the
/// 200 X-ray benchmark); with one arena per worker it is about 150 MB, at the same speed
/// (docs/performance.md). Call before the workers start; other allocators ignore it.
pub fn limit_malloc_arenas(workers: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called from the main thread before
    // the worker threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, workers.clamp(1, i32::MAX as usize) as i32);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = workers;
}
