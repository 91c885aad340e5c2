//! What one import may hold, the same for `importUsers`/`importAccounts`
//! and `tagsmith import` (CSV and `.xlsx`). A header over the column limit
//! refuses the file whole; a row over a row limit is reported by line and
//! skipped, the good rows kept. Each limit bounds the work and memory one
//! row costs, so that an import's cost grows with its rows, never with the
//! square of a row's width.

/// Columns of a header (fields, tag columns and unnamed ones).
pub const MAX_COLUMNS: usize = 200;
/// Bytes of one cell: room for a full `tags` cell (100 tags of at most
/// 128 characters) and far more than any field takes.
pub const MAX_CELL_BYTES: usize = 16 * 1024;
/// Bytes of one record as read (all its cells): past it the record's text
/// is dropped as it is read, so a runaway quoted cell costs no memory.
pub const MAX_ROW_BYTES: usize = 1024 * 1024;
/// Tags in one `tags` cell.
pub const MAX_TAGS_PER_CELL: usize = 100;
/// Distinct tags one row gives (its `tags` cell and its tag columns).
pub const MAX_TAGS_PER_ROW: usize = 200;

/// `.xlsx`: bytes of the whole workbook once unzipped. Checked by
/// unzipping before the workbook is read, so a zip bomb is refused after
/// at most this much decompression, in constant memory.
pub const MAX_XLSX_UNZIPPED_BYTES: u64 = 1024 * 1024 * 1024;
/// `.xlsx`: bytes of the shared strings part, which is read whole into memory.
pub const MAX_XLSX_SHARED_STRINGS_BYTES: u64 = 256 * 1024 * 1024;
/// `.xlsx`: bytes of one cell (`<c>`) or shared string (`<si>`) element,
/// or of one run of text or one tag in the sheet and shared strings.
pub const MAX_XLSX_ELEMENT_BYTES: u64 = 64 * 1024;
/// `.xlsx`: entries of the zip archive.
pub const MAX_XLSX_ENTRIES: usize = 10_000;

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
