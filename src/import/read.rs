//! Records of a file, one at a time: CSV through the `csv` crate (UTF-8
//! with or without BOM, quoted fields with delimiters and newlines, any
//! one-byte delimiter) and `.xlsx` through `calamine` (the first sheet,
//! read cell by cell). Memory stays flat whatever the size of the file.

use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use calamine::{DataRef, Reader, Xlsx};

use super::ImportError;
use super::limits::{
    MAX_CELL_BYTES, MAX_COLUMNS, MAX_ROW_BYTES, MAX_XLSX_ELEMENT_BYTES, MAX_XLSX_ENTRIES,
    MAX_XLSX_SHARED_STRINGS_BYTES, MAX_XLSX_UNZIPPED_BYTES, thousands,
};

/// One record: its line (the first line of a quoted multi-line record; the
/// sheet's row number in a workbook) and its cells, or why they cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub line: u64,
    pub cells: Result<Vec<String>, Unreadable>,
}

/// Why a record's cells cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    NotUtf8,
    /// More than [`MAX_COLUMNS`] cells (at least this many).
    TooManyCells(usize),
    /// More than [`MAX_ROW_BYTES`] of text.
    TooLong,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::NotUtf8 => f.write_str("is not UTF-8 text (save the file as CSV UTF-8)"),
            Unreadable::TooManyCells(n) => write!(
                f,
                "has {} cells; a row holds at most {MAX_COLUMNS}",
                thousands(*n as u64)
            ),
            Unreadable::TooLong => write!(
                f,
                "is longer than {} bytes; a row holds at most that much text",
                thousands(MAX_ROW_BYTES as u64)
            ),
        }
    }
}

/// Where records come from.
#[derive(Debug, Clone)]
pub enum Source<'a> {
    /// CSV text in memory (the GraphQL mutations).
    Text(&'a str),
    /// A CSV file.
    Csv(PathBuf),
    /// The first sheet of an Excel workbook.
    Xlsx(PathBuf),
}

impl Source<'_> {
    /// A file, read as a workbook when its name ends in `.xlsx` or `.xlsm`, else as CSV.
    pub fn file(path: &Path) -> Source<'static> {
        let extension = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match extension.as_deref() {
            Some("xlsx" | "xlsm") => Source::Xlsx(path.to_owned()),
            _ => Source::Csv(path.to_owned()),
        }
    }

    /// The delimiter a file's name suggests (tab for `.tsv`).
    pub fn default_delimiter(&self) -> u8 {
        match self {
            Source::Csv(path)
                if path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("tsv")) =>
            {
                b'\t'
            }
            _ => b',',
        }
    }

    /// Calls `f` with each record, the header first, until it breaks.
    pub fn for_each(
        &self,
        delimiter: u8,
        f: impl FnMut(Record) -> ControlFlow<()>,
    ) -> Result<(), ImportError> {
        match self {
            Source::Text(text) => {
                sniff(text.as_bytes())?;
                csv_records(text.as_bytes(), delimiter, f)
            }
            Source::Csv(path) => {
                let io = |e: std::io::Error| ImportError::Io(format!("{}: {e}", path.display()));
                let mut head = Vec::with_capacity(8192);
                File::open(path)
                    .map_err(io)?
                    .take(8192)
                    .read_to_end(&mut head)
                    .map_err(io)?;
                sniff(&head)?;
                let file = File::open(path).map_err(io)?;
                csv_records(BufReader::with_capacity(1 << 16, file), delimiter, f)
            }
            Source::Xlsx(path) => xlsx_records(path, f),
        }
    }
}

/// Refuses what is plainly not CSV text: a workbook, or binary data.
fn sniff(head: &[u8]) -> Result<(), ImportError> {
    if head.starts_with(b"PK\x03\x04") {
        return Err(ImportError::NotCsv(
            "this is an Excel workbook or a zip file, not CSV text (`tagsmith import` reads .xlsx files)"
                .into(),
        ));
    }
    if head.iter().take(8192).any(|b| *b == 0) {
        return Err(ImportError::NotCsv(
            "the file is not CSV text: it contains NUL bytes".into(),
        ));
    }
    Ok(())
}

/// Drives `csv_core` over the input, counting lines itself (the `csv`
/// crate's record positions skip blank lines and `\r\n`), so a record's
/// line is the line its first cell starts on.
fn csv_records(
    mut input: impl Read,
    delimiter: u8,
    mut f: impl FnMut(Record) -> ControlFlow<()>,
) -> Result<(), ImportError> {
    use csv_core::ReadRecordResult;

    let mut parser = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
    let mut buffer = vec![0u8; 1 << 16];
    let (mut position, mut length, mut eof) = (0usize, 0usize, false);
    let mut out = vec![0u8; 1 << 12];
    let mut ends = vec![0usize; 64];
    let (mut out_len, mut ends_len) = (0usize, 0usize);
    let mut line: u64 = 1;
    // The line of the record being read, if one is.
    let mut record_line: Option<u64> = None;
    // Past a limit, the record's text and cell ends are dropped as they are
    // read (its cells are not needed: it is reported), so memory stays flat.
    let mut dropped_cells: usize = 0;
    let mut too_long = false;
    loop {
        if position == length && !eof {
            length = loop {
                match input.read(&mut buffer) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(ImportError::Io(e.to_string())),
                }
            };
            position = 0;
            eof = length == 0;
        }
        if record_line.is_none() {
            // Line ends between records (blank lines included) belong to no record.
            while position < length && matches!(buffer[position], b'\n' | b'\r') {
                line += u64::from(buffer[position] == b'\n');
                position += 1;
            }
            if position == length && !eof {
                continue;
            }
            record_line = Some(line);
        }
        // Empty input tells csv_core the file has ended: only at the end.
        let (result, read, written, ended) = parser.read_record(
            &buffer[position..length],
            &mut out[out_len..],
            &mut ends[ends_len..],
        );
        line += buffer[position..position + read]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64;
        position += read;
        out_len += written;
        ends_len += ended;
        match result {
            ReadRecordResult::InputEmpty => {}
            ReadRecordResult::OutputFull if out.len() >= MAX_ROW_BYTES => {
                too_long = true;
                out_len = 0;
            }
            ReadRecordResult::OutputFull => out.resize(out.len() * 2, 0),
            ReadRecordResult::OutputEndsFull if ends.len() > MAX_COLUMNS => {
                dropped_cells += ends_len;
                ends_len = 0;
            }
            ReadRecordResult::OutputEndsFull => ends.resize(ends.len() * 2, 0),
            ReadRecordResult::Record => {
                let total_cells = dropped_cells + ends_len;
                let mut cells = if total_cells > MAX_COLUMNS {
                    Err(Unreadable::TooManyCells(total_cells))
                } else if too_long {
                    Err(Unreadable::TooLong)
                } else {
                    Ok(Vec::with_capacity(ends_len))
                };
                let mut start = 0;
                if cells.is_ok() {
                    for &end in &ends[..ends_len] {
                        let cell = std::str::from_utf8(&out[start..end]);
                        start = end;
                        match (&mut cells, cell) {
                            (Ok(cells), Ok(cell)) => cells.push(cell.to_owned()),
                            (Ok(_), Err(_)) => cells = Err(Unreadable::NotUtf8),
                            (Err(_), _) => {}
                        }
                    }
                }
                out_len = 0;
                ends_len = 0;
                dropped_cells = 0;
                too_long = false;
                let line = record_line.take().unwrap_or(line);
                if f(Record { line, cells }).is_break() {
                    return Ok(());
                }
            }
            ReadRecordResult::End => return Ok(()),
        }
    }
}

fn xlsx_records(
    path: &Path,
    mut f: impl FnMut(Record) -> ControlFlow<()>,
) -> Result<(), ImportError> {
    let fail = |e: &dyn std::fmt::Display| ImportError::NotCsv(format!("{}: {e}", path.display()));
    check_workbook(path)?;
    let mut workbook: Xlsx<_> = calamine::open_workbook(path).map_err(|e| fail(&e))?;
    let Some(sheet) = workbook.sheet_names().first().cloned() else {
        return Err(ImportError::Empty);
    };
    let mut cells = workbook
        .worksheet_cells_reader(&sheet)
        .map_err(|e| fail(&e))?;
    // The row being read: its index, its cells (at most MAX_COLUMNS) and,
    // when it has cells past the limit, its width.
    let mut row: Option<(u32, Vec<String>, usize)> = None;
    // Trailing empty cells are not stored: rows are padded to the header's width.
    let mut width: Option<usize> = None;
    let mut emit = |(index, mut cells, wide): (u32, Vec<String>, usize),
                    f: &mut dyn FnMut(Record) -> ControlFlow<()>| {
        let line = u64::from(index) + 1;
        if wide > 0 {
            return f(Record {
                line,
                cells: Err(Unreadable::TooManyCells(wide)),
            });
        }
        match width {
            None => width = Some(cells.len()),
            Some(width) if cells.len() < width => cells.resize(width, String::new()),
            Some(_) => {}
        }
        f(Record {
            line,
            cells: Ok(cells),
        })
    };
    while let Some(cell) = cells.next_cell().map_err(|e| fail(&e))? {
        let (index, column) = cell.get_position();
        let value = text(cell.get_value());
        if row
            .as_ref()
            .is_some_and(|(current, _, _)| *current != index)
            && let Some(done) = row.take()
            && emit(done, &mut f).is_break()
        {
            return Ok(());
        }
        let (_, values, wide) = row.get_or_insert_with(|| (index, Vec::new(), 0));
        let column = column as usize;
        if value.is_empty() {
            continue;
        }
        if column >= MAX_COLUMNS {
            *wide = (*wide).max(column + 1);
            continue;
        }
        if values.len() <= column {
            values.resize(column + 1, String::new());
        }
        values[column] = value;
    }
    if let Some(done) = row {
        let _ = emit(done, &mut f);
    }
    Ok(())
}

/// Unzips a workbook once, keeping nothing, before `calamine` reads it:
/// refuses it when it unzips to more than [`MAX_XLSX_UNZIPPED_BYTES`], when
/// its shared strings (which `calamine` holds in memory) pass
/// [`MAX_XLSX_SHARED_STRINGS_BYTES`], or when a sheet or the shared strings
/// hold a cell, a run of text or a tag longer than [`MAX_XLSX_ELEMENT_BYTES`].
/// The sizes counted are the bytes really unzipped, not those the archive
/// declares. A zip bomb costs at most that much decompression, in a buffer
/// of 64 KiB.
pub fn check_workbook(path: &Path) -> Result<(), ImportError> {
    // The CLI names the file before the message.
    let refuse = ImportError::TooLarge;
    let unreadable = |e: &dyn std::fmt::Display| {
        ImportError::NotCsv(format!("not a readable .xlsx workbook: {e}"))
    };
    let file = File::open(path).map_err(|e| ImportError::Io(format!("{}: {e}", path.display())))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| unreadable(&e))?;
    if archive.len() > MAX_XLSX_ENTRIES {
        return Err(refuse(format!(
            "the workbook has {} parts; a workbook has at most {}",
            thousands(archive.len() as u64),
            thousands(MAX_XLSX_ENTRIES as u64)
        )));
    }
    let mut total: u64 = 0;
    let mut buffer = vec![0u8; 1 << 16];
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| unreadable(&e))?;
        let name = entry.name().map_err(|e| unreadable(&e))?.into_owned();
        let lower = name.to_ascii_lowercase();
        let shared_strings = lower.ends_with("sharedstrings.xml");
        let mut scan = (shared_strings || lower.contains("worksheets/"))
            .then(|| XmlScan::new(if shared_strings { b"si" } else { b"c" }));
        let mut size: u64 = 0;
        loop {
            let read = match entry.read(&mut buffer) {
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(unreadable(&format!("{name}: {e}"))),
            };
            if read == 0 {
                break;
            }
            size += read as u64;
            total += read as u64;
            if total > MAX_XLSX_UNZIPPED_BYTES {
                return Err(refuse(format!(
                    "the workbook unzips to more than {} MiB; an import takes workbooks of at most that much (save it as CSV, or split it)",
                    MAX_XLSX_UNZIPPED_BYTES >> 20
                )));
            }
            if shared_strings && size > MAX_XLSX_SHARED_STRINGS_BYTES {
                return Err(refuse(format!(
                    "its shared strings unzip to more than {} MiB; an import takes at most that much (save it as CSV)",
                    MAX_XLSX_SHARED_STRINGS_BYTES >> 20
                )));
            }
            if let Some(scan) = &mut scan
                && let Err(what) = scan.feed(&buffer[..read])
            {
                return Err(refuse(format!(
                    "{name} holds {what} longer than {} KiB; a cell holds at most {} KiB",
                    MAX_XLSX_ELEMENT_BYTES >> 10,
                    MAX_CELL_BYTES >> 10
                )));
            }
        }
    }
    Ok(())
}

/// Measures, in a stream of XML, the longest run of text, tag, and
/// `element` (`c`, a cell; `si`, a shared string; any namespace prefix),
/// without keeping any of it.
struct XmlScan {
    element: &'static [u8],
    position: u64,
    in_tag: bool,
    /// Where the current tag or run of text began.
    start: u64,
    name: [u8; 8],
    name_len: usize,
    name_done: bool,
    closing: bool,
    last: u8,
    /// Where the open `element` began.
    open: Option<u64>,
}

impl XmlScan {
    fn new(element: &'static [u8]) -> XmlScan {
        XmlScan {
            element,
            position: 0,
            in_tag: false,
            start: 0,
            name: [0; 8],
            name_len: 0,
            name_done: false,
            closing: false,
            last: 0,
            open: None,
        }
    }

    /// Reads more of the stream; says what is too long, if anything.
    fn feed(&mut self, bytes: &[u8]) -> Result<(), &'static str> {
        for &b in bytes {
            let position = self.position;
            self.position += 1;
            if self
                .open
                .is_some_and(|open| position - open > MAX_XLSX_ELEMENT_BYTES)
            {
                return Err(if self.element == b"c" {
                    "a cell"
                } else {
                    "a shared string"
                });
            }
            if position - self.start > MAX_XLSX_ELEMENT_BYTES {
                return Err(if self.in_tag {
                    "a tag"
                } else {
                    "a run of text"
                });
            }
            if !self.in_tag {
                if b == b'<' {
                    self.in_tag = true;
                    self.start = position;
                    self.name_len = 0;
                    self.name_done = false;
                    self.closing = false;
                    self.last = b;
                }
                continue;
            }
            if b == b'>' {
                self.in_tag = false;
                self.start = position + 1;
                let name = &self.name[..self.name_len];
                let local = match name.iter().rposition(|c| *c == b':') {
                    Some(colon) => &name[colon + 1..],
                    None => name,
                };
                if local == self.element {
                    if self.closing {
                        self.open = None;
                    } else if self.last != b'/' {
                        self.open = Some(self.start);
                    }
                }
                continue;
            }
            if !self.name_done {
                if self.last == b'<' && b == b'/' {
                    self.closing = true;
                } else if b.is_ascii_whitespace() || b == b'/' {
                    self.name_done = true;
                } else if self.name_len < self.name.len() {
                    self.name[self.name_len] = b;
                    self.name_len += 1;
                } else {
                    // Longer than any name looked for.
                    self.name_done = true;
                    self.name_len = 0;
                }
            }
            self.last = b;
        }
        Ok(())
    }
}

/// A cell as text: numbers without a needless `.0`, dates as ISO 8601.
fn text(value: &DataRef<'_>) -> String {
    match value {
        DataRef::String(s) => s.clone(),
        DataRef::SharedString(s) => (*s).to_owned(),
        DataRef::Int(n) => n.to_string(),
        DataRef::Float(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", *x as i64),
        DataRef::Float(x) => x.to_string(),
        DataRef::Bool(b) => b.to_string(),
        DataRef::DateTime(d) => d.to_string(),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::Error(_) | DataRef::Empty => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str, delimiter: u8) -> Vec<(u64, Vec<String>)> {
        let mut all = Vec::new();
        Source::Text(text)
            .for_each(delimiter, |record| {
                all.push((record.line, record.cells.unwrap()));
                ControlFlow::Continue(())
            })
            .unwrap();
        all
    }

    #[test]
    fn bom_quotes_and_newlines() {
        let text = "\u{feff}email,Note\r\nana@x.com,\"Sales, EMEA\"\r\nbo@x.com,\"two\nlines\"\r\n\r\ncy@x.com,\"say \"\"hi\"\"\"\n";
        let got = records(text, b',');
        assert_eq!(
            got,
            [
                (1, vec!["email".to_owned(), "Note".to_owned()]),
                (2, vec!["ana@x.com".to_owned(), "Sales, EMEA".to_owned()]),
                (3, vec!["bo@x.com".to_owned(), "two\nlines".to_owned()]),
                (6, vec!["cy@x.com".to_owned(), "say \"hi\"".to_owned()]),
            ]
        );
    }

    #[test]
    fn semicolons_and_tabs() {
        assert_eq!(
            records("email;Region\nana@x.com;EU, West\n", b';')[1].1,
            ["ana@x.com", "EU, West"]
        );
        assert_eq!(
            records("email\tRegion\nana@x.com\tEU\n", b'\t')[1].1,
            ["ana@x.com", "EU"]
        );
    }

    #[test]
    fn not_csv() {
        let refuse = |text: &str| {
            Source::Text(text)
                .for_each(b',', |_| ControlFlow::Continue(()))
                .unwrap_err()
                .to_string()
        };
        assert!(refuse("PK\u{3}\u{4}rest").contains("Excel workbook"));
        assert!(refuse("a\0b").contains("NUL bytes"));
    }
}
