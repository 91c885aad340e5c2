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

/// One record: its line (the first line of a quoted multi-line record; the
/// sheet's row number in a workbook) and its cells, or why they cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub line: u64,
    pub cells: Result<Vec<String>, String>,
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
            ReadRecordResult::OutputFull => out.resize(out.len() * 2, 0),
            ReadRecordResult::OutputEndsFull => ends.resize(ends.len() * 2, 0),
            ReadRecordResult::Record => {
                let mut start = 0;
                let mut cells = Ok(Vec::with_capacity(ends_len));
                for &end in &ends[..ends_len] {
                    let cell = std::str::from_utf8(&out[start..end]);
                    start = end;
                    match (&mut cells, cell) {
                        (Ok(cells), Ok(cell)) => cells.push(cell.to_owned()),
                        (Ok(_), Err(_)) => {
                            cells =
                                Err("is not UTF-8 text (save the file as CSV UTF-8)".to_owned());
                        }
                        (Err(_), _) => {}
                    }
                }
                out_len = 0;
                ends_len = 0;
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
    let mut workbook: Xlsx<_> = calamine::open_workbook(path).map_err(|e| fail(&e))?;
    let Some(sheet) = workbook.sheet_names().first().cloned() else {
        return Err(ImportError::Empty);
    };
    let mut cells = workbook
        .worksheet_cells_reader(&sheet)
        .map_err(|e| fail(&e))?;
    let mut row: Option<(u32, Vec<String>)> = None;
    // Trailing empty cells are not stored: rows are padded to the header's width.
    let mut width: Option<usize> = None;
    let mut emit = |(index, mut cells): (u32, Vec<String>),
                    f: &mut dyn FnMut(Record) -> ControlFlow<()>| {
        match width {
            None => width = Some(cells.len()),
            Some(width) if cells.len() < width => cells.resize(width, String::new()),
            Some(_) => {}
        }
        f(Record {
            line: u64::from(index) + 1,
            cells: Ok(cells),
        })
    };
    while let Some(cell) = cells.next_cell().map_err(|e| fail(&e))? {
        let (index, column) = cell.get_position();
        let value = text(cell.get_value());
        if row.as_ref().is_some_and(|(current, _)| *current != index)
            && let Some(done) = row.take()
            && emit(done, &mut f).is_break()
        {
            return Ok(());
        }
        let (_, values) = row.get_or_insert_with(|| (index, Vec::new()));
        let column = column as usize;
        if value.is_empty() {
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
