//! CSV tables of typed rows: one writer for every table cambox appends to or rewrites,
//! and one reader for every table it reads back.
//!
//! A table is a header (the row type's [`Row::HEADER`], which names its serde fields in
//! order) and rows serialised by serde. Reading goes by column name, so a reader of a
//! table with extra columns, or without the optional ones, still gets its rows.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// A row type of a table, with its header.
pub trait Row: Serialize + DeserializeOwned {
    /// The column names, in the order of the type's fields.
    const HEADER: &'static [&'static str];
}

/// Appends rows of `R` to a table, through a buffer that [`TableWriter::flush`] empties.
pub struct TableWriter<R: Row, W: Write = BufWriter<File>> {
    path: PathBuf,
    w: csv::Writer<W>,
    _row: std::marker::PhantomData<R>,
}

impl<R: Row> TableWriter<R> {
    /// A new table with its header (written and flushed at once).
    pub fn create(path: &Path) -> Result<TableWriter<R>> {
        let f = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut t = TableWriter::over(path, BufWriter::new(f));
        t.header()?;
        t.flush()?;
        Ok(t)
    }

    /// An existing table (repaired by `resume`), to append rows to.
    pub fn append(path: &Path) -> Result<TableWriter<R>> {
        let f = std::fs::OpenOptions::new().append(true).open(path).map_err(|e| Error::io(path, e))?;
        Ok(TableWriter::over(path, BufWriter::new(f)))
    }
}

impl<R: Row, W: Write> TableWriter<R, W> {
    fn over(path: &Path, w: W) -> TableWriter<R, W> {
        let w = csv::WriterBuilder::new().has_headers(false).from_writer(w);
        TableWriter { path: path.to_path_buf(), w, _row: std::marker::PhantomData }
    }

    fn header(&mut self) -> Result<()> {
        self.w.write_record(R::HEADER).map_err(|e| Error::output(&self.path, e.to_string()))
    }

    pub fn write(&mut self, row: &R) -> Result<()> {
        self.w.serialize(row).map_err(|e| Error::output(&self.path, e.to_string()))
    }

    pub fn flush(&mut self) -> Result<()> {
        self.w.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// The whole table as bytes: header and rows.
pub fn to_bytes<'a, R: Row + 'a>(path: &Path, rows: impl IntoIterator<Item = &'a R>) -> Result<Vec<u8>> {
    let mut t = TableWriter::<R, Vec<u8>>::over(path, Vec::new());
    t.header()?;
    for r in rows {
        t.write(r)?;
    }
    t.w.into_inner().map_err(|e| Error::output(path, e.to_string()))
}

/// Writes the whole table atomically (see [`super::atomic_write`]).
pub fn write_all<'a, R: Row + 'a>(path: &Path, rows: impl IntoIterator<Item = &'a R>) -> Result<()> {
    let data = to_bytes(path, rows)?;
    super::atomic_write(path, &data).map_err(|e| Error::io(path, e))
}

/// What reading a table found.
pub struct Read<R> {
    /// The header as found.
    pub header: Vec<String>,
    /// Each row, or why it could not be read (1-based line number in the message).
    pub rows: Vec<std::result::Result<R, String>>,
}

/// Reads a table from bytes: rows by column name. A row that does not parse is kept as
/// its error, so each caller decides whether that is fatal (`eval`, `merge`) or a row to
/// redo (`resume`).
pub fn read_bytes<R: Row>(bytes: &[u8]) -> std::result::Result<Read<R>, String> {
    let mut rd = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
    let header: Vec<String> = rd.headers().map_err(|e| e.to_string())?.iter().map(str::to_string).collect();
    let header_record = csv::StringRecord::from(header.clone());
    let mut rows = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let line = i + 2;
        rows.push(match rec {
            Ok(rec) if rec.len() != header.len() => {
                Err(format!("row {line}: {} fields, the header has {}", rec.len(), header.len()))
            }
            Ok(rec) => rec.deserialize::<R>(Some(&header_record)).map_err(|e| format!("row {line}: {e}")),
            Err(e) => Err(format!("row {line}: {e}")),
        });
    }
    Ok(Read { header, rows })
}

/// Reads a table file; every row must parse.
pub fn read_file<R: Row>(path: &Path) -> std::result::Result<Vec<R>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    read_bytes::<R>(&bytes)?.rows.into_iter().collect()
}
