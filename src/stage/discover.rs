//! Stage 1: find the input images.
//!
//! A streaming, deterministic walk (walkdir, entries sorted by name) over the input roots,
//! so that a folder of 10^5 images is never held as a list. Each item is either an image
//! file to process or an entry that could not be walked; both become exactly one row.
//! Paths are reported relative to their input root, with `/` separators, because that is
//! what users join on (annotations, shards, resume).
//!
//! File names are bytes on Unix and need not be UTF-8, while the tables are text. A
//! lossy conversion would give `x\xff.png` and `x\xfe.png` the one name `x\u{fffd}.png`,
//! one row and one set of artefacts for two files. So names are written losslessly
//! ([`encode_component`]): text that is UTF-8 as it is, each byte that is not as `%XX`
//! (upper-case hex), and `%` itself as `%25` so that the escape is never ambiguous;
//! [`decode_rel`] gives the file's path back. Only names with `%` or with bytes that are
//! not UTF-8 look different from their plain text.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use walkdir::WalkDir;

/// `[input]`: where the images are and which files count as images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputOptions {
    /// Folders (walked recursively) or single files.
    pub paths: Vec<PathBuf>,
    /// File extensions to process, case-insensitive, without the dot.
    pub extensions: Vec<String>,
    /// Follow symbolic links (to files and folders). Off by default: a link can point
    /// outside the dataset or form a loop.
    pub follow_symlinks: bool,
    /// Process files and folders whose name starts with a dot.
    pub include_hidden: bool,
    /// Also take files without an extension (or with an all-digit one, as UID-named
    /// DICOM files have) and read those that carry the DICOM preamble and `DICM` magic.
    pub sniff_dicom: bool,
}

impl Default for InputOptions {
    fn default() -> Self {
        InputOptions {
            paths: Vec::new(),
            extensions: crate::defaults::EXTENSIONS.iter().map(|s| s.to_string()).collect(),
            follow_symlinks: false,
            include_hidden: false,
            sniff_dicom: false,
        }
    }
}

/// One image file to process.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// The file on disk.
    pub path: PathBuf,
    /// Path relative to its input root (`/`-separated); a root that is a file gives its
    /// file name.
    pub rel: String,
}

/// What the walk yields.
#[derive(Debug, Clone)]
pub enum Discovered {
    Image(InputFile),
    /// An entry that could not be walked (unreadable folder, symlink loop, ...).
    Unwalkable {
        path: PathBuf,
        rel: String,
        reason: String,
    },
}

impl Discovered {
    pub fn rel(&self) -> &str {
        match self {
            Discovered::Image(f) => &f.rel,
            Discovered::Unwalkable { rel, .. } => rel,
        }
    }
}

/// Which files count as input.
#[derive(Debug, Clone)]
pub struct Discovery {
    roots: Vec<PathBuf>,
    extensions: HashSet<String>,
    follow_symlinks: bool,
    include_hidden: bool,
    /// With several roots, each root's name (made unique), so that `a/x.png` and
    /// `b/x.png` never share a row or an output file: the paths under a folder start with
    /// it, and a file given as a root is named by it alone.
    names: Vec<Option<String>>,
    /// Also yield files without an extension, or with an all-digit one (DICOM files are
    /// often named by their UID, `1.2.840.113619.2.1`), for the decoder to sniff.
    extensionless: bool,
}

impl Discovery {
    /// The walk `[input]` describes.
    pub fn from_options(o: &InputOptions) -> Discovery {
        Discovery::new(o.paths.clone(), &o.extensions, o.follow_symlinks, o.include_hidden)
            .with_extensionless(o.sniff_dicom)
    }

    pub fn new(roots: Vec<PathBuf>, extensions: &[String], follow_symlinks: bool, include_hidden: bool) -> Discovery {
        let extensions = extensions.iter().map(|e| e.trim_start_matches('.').to_ascii_lowercase()).collect();
        let names = if roots.len() < 2 { vec![None; roots.len()] } else { root_names(&roots) };
        Discovery { roots, extensions, follow_symlinks, include_hidden, names, extensionless: false }
    }

    /// Also takes files without an extension or with an all-digit one (`[input]
    /// sniff_dicom`); the decoder reads those that carry the DICOM magic.
    pub fn with_extensionless(mut self, on: bool) -> Discovery {
        self.extensionless = on;
        self
    }

    /// The file a relative path of this walk names, if it is still there: the walk's
    /// naming run backwards (what `eval` uses to find a run's original images).
    pub fn original(&self, rel: &str) -> Option<PathBuf> {
        self.roots.iter().zip(&self.names).find_map(|(root, name)| {
            let path = match (name, root.is_file()) {
                (_, true) => {
                    let own = name.clone().or_else(|| root.file_name().map(encode_component))?;
                    (own == rel).then(|| root.clone())?
                }
                (Some(pre), false) => decode_rel(root, rel.strip_prefix(pre.as_str())?.strip_prefix('/')?),
                (None, false) => decode_rel(root, rel),
            };
            path.is_file().then_some(path)
        })
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Has one of the configured image extensions.
    fn named_like_image(&self, path: &Path) -> bool {
        path.extension().map(|e| self.extensions.contains(&e.to_string_lossy().to_ascii_lowercase())).unwrap_or(false)
    }

    fn wants(&self, path: &Path) -> bool {
        match path.extension().map(|e| e.to_string_lossy()) {
            Some(e) if self.extensions.contains(&e.to_ascii_lowercase()) => true,
            Some(e) => self.extensionless && e.bytes().all(|b| b.is_ascii_digit()),
            None => self.extensionless,
        }
    }

    /// The items in deterministic order: roots in the order given, then by file name.
    pub fn iter(&self) -> impl Iterator<Item = Discovered> + Send + '_ {
        self.roots.iter().enumerate().flat_map(move |(i, root)| self.walk_root(i, root))
    }

    /// Counts the items without keeping them (for the progress bar's ETA).
    pub fn count(&self) -> u64 {
        self.iter().count() as u64
    }

    fn walk_root<'a>(&'a self, index: usize, root: &'a Path) -> impl Iterator<Item = Discovered> + Send + 'a {
        let include_hidden = self.include_hidden;
        let name = self.names[index].clone();
        let is_file = root.is_file();
        let rel_of = move |p: &Path| match (&name, is_file) {
            (Some(name), true) => name.clone(),
            (Some(pre), false) => format!("{pre}/{}", relative(root, p)),
            (None, _) => relative(root, p),
        };
        WalkDir::new(root)
            .follow_links(self.follow_symlinks)
            .follow_root_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(move |e| e.depth() == 0 || include_hidden || !is_hidden(e.file_name()))
            .filter_map(move |entry| match entry {
                Ok(e) => {
                    let ft = e.file_type();
                    if ft.is_dir() {
                        // A folder named like an image is somebody's mistake worth a row.
                        if e.depth() > 0 && self.named_like_image(e.path()) {
                            return Some(Discovered::Unwalkable {
                                rel: rel_of(e.path()),
                                path: e.into_path(),
                                reason: "is a directory named like an image (its contents are walked)".into(),
                            });
                        }
                        return None;
                    }
                    if ft.is_symlink() {
                        // Unfollowed links are skipped like hidden files: by policy.
                        return None;
                    }
                    if !self.wants(e.path()) {
                        return None;
                    }
                    Some(Discovered::Image(InputFile { rel: rel_of(e.path()), path: e.into_path() }))
                }
                Err(err) => {
                    let path = err.path().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf());
                    let reason = if let Some(anc) = err.loop_ancestor() {
                        format!("symlink loop back to {}", anc.display())
                    } else if let Some(io) = err.io_error() {
                        io.to_string()
                    } else {
                        err.to_string()
                    };
                    Some(Discovered::Unwalkable { rel: rel_of(&path), path, reason })
                }
            })
    }
}

/// Each root's name, made unique: a folder's `name`, `name-2`, ...; a file's
/// `stem.ext`, `stem-2.ext`, ...
fn root_names(roots: &[PathBuf]) -> Vec<Option<String>> {
    let mut seen = HashSet::new();
    roots
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let base = r
                .canonicalize()
                .ok()
                .and_then(|c| c.file_name().map(encode_component))
                .unwrap_or_else(|| format!("input{i}"));
            let (stem, ext) = match (r.is_file(), base.rsplit_once('.')) {
                (true, Some((stem, ext))) if !stem.is_empty() => (stem.to_string(), format!(".{ext}")),
                _ => (base.clone(), String::new()),
            };
            let mut name = base;
            let mut k = 2;
            while !seen.insert(name.clone()) {
                name = format!("{stem}-{k}{ext}");
                k += 1;
            }
            Some(name)
        })
        .collect()
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str().map(|s| s.starts_with('.')).unwrap_or(false)
}

/// `path` relative to `root`, `/`-separated, each component by [`encode_component`]; a
/// file root gives its own name.
pub fn relative(root: &Path, path: &Path) -> String {
    let rel = match path.strip_prefix(root) {
        Ok(r) if !r.as_os_str().is_empty() => r.to_path_buf(),
        _ => PathBuf::from(path.file_name().unwrap_or(path.as_os_str())),
    };
    rel.components().map(|c| encode_component(c.as_os_str())).collect::<Vec<_>>().join("/")
}

/// A file name as text, losslessly: UTF-8 as it is, `%` as `%25`, every other byte as `%XX`.
pub fn encode_component(name: &std::ffi::OsStr) -> String {
    #[cfg(unix)]
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(name).to_vec();
    #[cfg(not(unix))]
    let bytes = name.to_string_lossy().into_owned().into_bytes();
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for ch in chunk.valid().chars() {
            match ch {
                '%' => out.push_str("%25"),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The file of a relative path written by [`relative`], under `root`.
pub fn decode_rel(root: &Path, rel: &str) -> PathBuf {
    rel.split('/').fold(root.to_path_buf(), |p, part| p.join(decode_component(part)))
}

fn decode_component(part: &str) -> std::ffi::OsString {
    let b = part.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 3 <= b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
            .flatten();
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    #[cfg(unix)]
    return std::os::unix::ffi::OsStringExt::from_vec(out);
    #[cfg(not(unix))]
    return String::from_utf8_lossy(&out).into_owned().into();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_sorted_filters_extensions_and_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/sub")).unwrap();
        std::fs::create_dir_all(root.join(".hidden")).unwrap();
        for f in ["b/sub/z.PNG", "a.jpg", "b/c.txt", ".dot.jpg", ".hidden/x.jpg", "b/a.tif"] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        let d = Discovery::new(vec![root.to_path_buf()], &["jpg".into(), "png".into(), "tif".into()], false, false);
        let rels: Vec<String> = d.iter().map(|i| i.rel().to_string()).collect();
        assert_eq!(rels, vec!["a.jpg", "b/a.tif", "b/sub/z.PNG"]);
        assert_eq!(d.count(), 3);
    }

    #[test]
    fn several_roots_are_prefixed_and_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["a/x", "b/x"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
            std::fs::write(dir.path().join(d).join("img.png"), b"x").unwrap();
        }
        let roots = vec![dir.path().join("a/x"), dir.path().join("b/x")];
        let d = Discovery::new(roots, &["png".into()], false, false);
        let rels: Vec<String> = d.iter().map(|i| i.rel().to_string()).collect();
        assert_eq!(rels, vec!["x/img.png", "x-2/img.png"]);
    }

    #[test]
    fn extensionless_files_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.jpg", "IM0001", "1.2.840.113619.2.55", "notes.txt", "scan.v2"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let d = Discovery::new(vec![dir.path().to_path_buf()], &["jpg".into()], false, false);
        assert_eq!(d.iter().map(|i| i.rel().to_string()).collect::<Vec<_>>(), vec!["a.jpg"]);
        let d = d.with_extensionless(true);
        let rels: Vec<String> = d.iter().map(|i| i.rel().to_string()).collect();
        assert_eq!(rels, vec!["1.2.840.113619.2.55", "IM0001", "a.jpg"]);
    }

    #[cfg(unix)]
    #[test]
    fn names_that_are_not_utf8_stay_apart_and_come_back() {
        use std::os::unix::ffi::OsStrExt;
        let name = |b: &[u8]| std::ffi::OsStr::from_bytes(b).to_os_string();
        let (ff, fe) = (name(b"x\xff.png"), name(b"x\xfe.png"));
        assert_eq!((encode_component(&ff), encode_component(&fe)), ("x%FF.png".into(), "x%FE.png".into()));
        assert_eq!(encode_component(&name("100%.png".as_bytes())), "100%25.png");
        assert_eq!(encode_component(&name("x%FF.png".as_bytes())), "x%25FF.png", "a literal escape stays apart");
        assert_eq!(encode_component(&name("caf\u{e9} \u{1F600}.png".as_bytes())), "caf\u{e9} \u{1F600}.png");
        let root = Path::new("/r");
        for n in [&ff, &fe, &name(b"100%.png"), &name(b"x%FF.png"), &name(b"a\xc3(\xe2\x82.png")] {
            let rel = relative(root, &root.join("d").join(n));
            assert_eq!(decode_rel(root, &rel), root.join("d").join(n), "{rel}");
        }
        assert_eq!(decode_rel(root, "a%2"), root.join("a%2"), "a stray % is a %");
    }

    #[test]
    fn files_given_as_roots_are_named_by_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        for f in [a.join("x.png"), b.join("x.png"), a.join("y.png")] {
            std::fs::write(f, b"").unwrap();
        }
        let roots = vec![a.join("x.png"), a.join("y.png"), b.join("x.png"), b.clone()];
        let d = Discovery::new(roots.clone(), &["png".into()], false, false);
        let rels: Vec<String> = d.iter().map(|i| i.rel().to_string()).collect();
        assert_eq!(rels, vec!["x.png", "y.png", "x-2.png", "b/x.png"]);
        for (rel, root) in rels.iter().zip(&roots) {
            let want = if root.is_file() { root.clone() } else { root.join("x.png") };
            assert_eq!(d.original(rel), Some(want), "{rel}");
        }
        assert_eq!(d.original("nothing.png"), None);
    }

    #[test]
    fn file_root_is_its_name() {
        assert_eq!(relative(Path::new("/x/y.png"), Path::new("/x/y.png")), "y.png");
        assert_eq!(relative(Path::new("/x"), Path::new("/x/a/b.png")), "a/b.png");
    }
}
