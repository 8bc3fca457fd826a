//! Faults the tests inject, to prove that a failing image costs one row and not the run:
//! a panic while an image is processed, and an artefact (mask, overlay, map) that cannot
//! be written or encoded.
//!
//! Compiled in only with the `fault-injection` feature, which the package's tests turn on
//! (Cargo.toml: the package's dev-dependency on itself) and no build for use does: a
//! released `cambox` reads no such environment variable, and every function here is then
//! a constant.

/// Names an image (by a substring of its relative path) whose processing panics.
pub const PANIC_ENV: &str = "CAMBOX_TEST_INJECT_PANIC";

/// `KIND:TEXT`: the artefact of `KIND` (`mask`, `overlay`, `map`, `mask-encode`) of the
/// images whose relative path holds `TEXT` fails.
pub const ARTEFACT_ENV: &str = "CAMBOX_TEST_INJECT_ARTEFACT_FAULT";

/// Panics when the tests asked for image `rel` to.
pub fn panic_if_asked(rel: &str) {
    #[cfg(feature = "fault-injection")]
    {
        static WHICH: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let which = WHICH.get_or_init(|| std::env::var(PANIC_ENV).ok().filter(|s| !s.is_empty()));
        if which.as_deref().is_some_and(|w| rel.contains(w)) {
            panic!("fault injected by {PANIC_ENV}");
        }
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = rel;
}

/// Whether the tests asked for the artefact of `kind` of image `rel` to fail.
pub fn artefact_fails(kind: &str, rel: &str) -> bool {
    #[cfg(feature = "fault-injection")]
    {
        static WHICH: std::sync::OnceLock<Option<(String, String)>> = std::sync::OnceLock::new();
        let which = WHICH.get_or_init(|| {
            let v = std::env::var(ARTEFACT_ENV).ok()?;
            let (k, w) = v.split_once(':')?;
            Some((k.to_string(), w.to_string()))
        });
        which.as_ref().is_some_and(|(k, w)| k == kind && rel.contains(w.as_str()))
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = (kind, rel);
        false
    }
}
