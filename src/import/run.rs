//! An import in two passes over the same source. The first checks every
//! record (the header, each row's rules) and records the last line of each
//! key, writing nothing: a file refused whole is refused here. The second
//! reads again and hands the rows that are good and not replaced by a later
//! row to the writer, in batches.

use std::ops::ControlFlow;

use sea_orm::DatabaseConnection;

use super::ImportError;
use super::dedup::Dedup;
use super::header::{Header, Kind};
use super::read::{Source, Unreadable};
use super::rows::{self, Row, RowError};
use super::write::{Outcome, Writer};
use crate::tags::name::TagRules;
use crate::time::Clock;

/// How to import.
#[derive(Debug, Clone)]
pub struct Options {
    pub kind: Kind,
    pub delimiter: u8,
    /// Check and count, write nothing.
    pub dry_run: bool,
    /// Rows per write transaction.
    pub batch_size: usize,
    /// Row errors kept for the report (all are counted).
    pub max_errors: usize,
}

/// Rows per write transaction, unless told otherwise. 10,000 rows make
/// 26,100 rows/s on SQLite at 1,000,000 rows (151 MB) against 19,800 for
/// 5,000 (BENCHMARKS.md, issue 20 round four); a SQLite batch then holds
/// the write turn for about 0.4 s.
pub const BATCH_SIZE: usize = 10_000;

impl Options {
    pub fn new(kind: Kind) -> Options {
        Options {
            kind,
            delimiter: b',',
            dry_run: false,
            batch_size: BATCH_SIZE,
            max_errors: usize::MAX,
        }
    }
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Data rows read (the header and blank rows aside).
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    /// Tag assignments really created (0 in a dry run).
    pub tags_applied: u64,
    /// Bad, replaced and conflicting rows, by line (at most `max_errors`).
    pub errors: Vec<RowError>,
    /// How many rows were skipped, whether listed in `errors` or not.
    pub skipped: u64,
}

impl Summary {
    pub fn add(&mut self, outcome: Outcome, max_errors: usize) {
        self.created += outcome.created;
        self.updated += outcome.updated;
        self.tags_applied += outcome.tags_applied;
        for error in outcome.errors {
            self.error(error, max_errors);
        }
    }

    fn error(&mut self, error: RowError, max_errors: usize) {
        self.skipped += 1;
        if self.errors.len() < max_errors {
            self.errors.push(error);
        }
    }

    /// Errors in line order.
    pub fn finish(&mut self) {
        self.errors.sort_by_key(|e| e.line);
    }
}

/// What the first pass found.
#[derive(Debug)]
pub struct Checked {
    pub header: Header,
    /// The summary so far: rows read and the rows refused or replaced.
    pub summary: Summary,
    /// Rows the second pass will write.
    pub good: u64,
    dedup: Dedup,
}

fn blank(cells: &[String]) -> bool {
    cells.iter().all(|c| c.trim().is_empty())
}

/// The first pass: checks the header and every row, writes nothing.
/// `progress` is called with the number of rows read, now and then.
pub fn check(
    source: &Source<'_>,
    options: &Options,
    rules: TagRules,
    mut progress: impl FnMut(u64),
) -> Result<Checked, ImportError> {
    let mut header: Option<Header> = None;
    let mut refused: Option<ImportError> = None;
    let mut summary = Summary::default();
    let mut dedup = Dedup::default();
    let mut good: u64 = 0;
    source.for_each(options.delimiter, |record| {
        let Some(header) = &header else {
            let parsed = match &record.cells {
                Ok(cells) => Header::parse(options.kind, cells),
                Err(Unreadable::TooManyCells(n)) => Err(super::header::too_many_columns(*n)),
                Err(Unreadable::TooLong) => Err(ImportError::TooLarge(format!(
                    "the header row is longer than {} bytes",
                    super::limits::thousands(super::limits::MAX_ROW_BYTES as u64)
                ))),
                Err(Unreadable::NotUtf8) => Err(ImportError::NotCsv(
                    "the file is not CSV text: its header is not UTF-8".into(),
                )),
            };
            match parsed {
                Ok(parsed) => {
                    header = Some(parsed);
                    return ControlFlow::Continue(());
                }
                Err(error) => {
                    refused = Some(error);
                    return ControlFlow::Break(());
                }
            }
        };
        let cells = match record.cells {
            Ok(cells) if blank(&cells) => return ControlFlow::Continue(()),
            Ok(cells) => cells,
            Err(unreadable) => {
                summary.rows += 1;
                let error = RowError {
                    line: record.line,
                    message: unreadable.to_string(),
                };
                summary.error(error, options.max_errors);
                return ControlFlow::Continue(());
            }
        };
        summary.rows += 1;
        match rows::parse(header, record.line, &cells, rules) {
            Ok(row) => {
                good += 1;
                for replaced in dedup.record(row.line(), &row.keys()) {
                    summary.error(replaced, options.max_errors);
                }
            }
            Err(error) => summary.error(error, options.max_errors),
        }
        if summary.rows.is_multiple_of(10_000) {
            progress(summary.rows);
        }
        ControlFlow::Continue(())
    })?;
    if let Some(error) = refused {
        return Err(error);
    }
    let header = header.ok_or(ImportError::Empty)?;
    progress(summary.rows);
    let good = good - dedup.superseded() as u64;
    Ok(Checked {
        header,
        summary,
        good,
        dedup,
    })
}

/// The second pass: calls `f` with each row to write, in file order.
pub fn rows(
    source: &Source<'_>,
    options: &Options,
    checked: &Checked,
    rules: TagRules,
    mut f: impl FnMut(Row) -> ControlFlow<()>,
) -> Result<(), ImportError> {
    let mut seen_header = false;
    source.for_each(options.delimiter, |record| {
        if !seen_header {
            seen_header = true;
            return ControlFlow::Continue(());
        }
        let Ok(cells) = record.cells else {
            return ControlFlow::Continue(());
        };
        match rows::parse(&checked.header, record.line, &cells, rules) {
            Ok(row) if checked.dedup.keeps(row.line(), &row.keys()) => f(row),
            _ => ControlFlow::Continue(()),
        }
    })
}

/// Most distinct tags one batch (one write transaction) adds: a batch of
/// rows whose cells are all new tags is cut early, so no import holds the
/// database's writer for long (each new tag costs a few statements).
pub const MAX_BATCH_TAGS: usize = 2_000;

/// Gathers rows into batches of at most `max_rows` rows and
/// [`MAX_BATCH_TAGS`] distinct tags.
pub struct Batcher {
    max_rows: usize,
    rows: Vec<Row>,
    tags: std::collections::HashSet<crate::tags::name::TagName>,
}

impl Batcher {
    pub fn new(max_rows: usize) -> Self {
        Batcher {
            max_rows: max_rows.max(1),
            rows: Vec::new(),
            tags: Default::default(),
        }
    }

    /// Adds a row; returns the batch it filled, if any.
    pub fn push(&mut self, row: Row) -> Option<Vec<Row>> {
        let tags = match &row {
            Row::User(row) => &row.tags,
            Row::Account(row) => &row.tags,
        };
        let new = tags.iter().filter(|t| !self.tags.contains(*t)).count();
        // A row that would take the batch past its tags starts the next one.
        let full =
            (!self.rows.is_empty() && self.tags.len() + new > MAX_BATCH_TAGS).then(|| self.take());
        match &row {
            Row::User(r) => self.tags.extend(r.tags.iter().cloned()),
            Row::Account(r) => self.tags.extend(r.tags.iter().cloned()),
        }
        self.rows.push(row);
        if full.is_some() {
            return full;
        }
        (self.rows.len() >= self.max_rows || self.tags.len() >= MAX_BATCH_TAGS).then(|| self.take())
    }

    /// The rows not yet handed out.
    pub fn finish(mut self) -> Option<Vec<Row>> {
        (!self.rows.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> Vec<Row> {
        self.tags.clear();
        std::mem::take(&mut self.rows)
    }
}

/// Writes one batch of rows (all of the import's kind).
pub async fn write_batch(writer: &Writer<'_>, batch: Vec<Row>) -> Result<Outcome, ImportError> {
    let mut users = Vec::new();
    let mut accounts = Vec::new();
    for row in batch {
        match row {
            Row::User(row) => users.push(row),
            Row::Account(row) => accounts.push(row),
        }
    }
    let mut outcome = Outcome::default();
    if !users.is_empty() {
        outcome = writer.users(&users).await?;
    }
    if !accounts.is_empty() {
        let more = writer.accounts(&accounts).await?;
        outcome.created += more.created;
        outcome.updated += more.updated;
        outcome.tags_applied += more.tags_applied;
        outcome.errors.extend(more.errors);
    }
    Ok(outcome)
}

/// Imports CSV text (the GraphQL mutations): the file is refused whole
/// (nothing written) when its header is; bad rows are reported and skipped.
pub async fn import_text(
    db: &DatabaseConnection,
    workspace_id: i64,
    text: &str,
    options: &Options,
    actor: &str,
    clock: &Clock,
) -> Result<Summary, ImportError> {
    let rules = crate::tags::store::rules(db, workspace_id).await?;
    let (checked, kept) = read_all(&Source::Text(text), options, rules)?;
    write_all(db, workspace_id, checked, kept, options, actor, clock).await
}

/// Imports a CSV or `.xlsx` file held in memory (the HTTP upload),
/// read on a blocking thread; `name` decides the format (as
/// [`Source::file`]). Same rules as [`import_text`], the workbook limits too.
pub async fn import_upload(
    db: &DatabaseConnection,
    workspace_id: i64,
    name: &str,
    bytes: &[u8],
    options: &Options,
    actor: &str,
    clock: &Clock,
) -> Result<Summary, ImportError> {
    let rules = crate::tags::store::rules(db, workspace_id).await?;
    let extension = std::path::Path::new(name)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .filter(|e| matches!(e.as_str(), "xlsx" | "xlsm" | "tsv"))
        .unwrap_or_else(|| "csv".to_owned());
    let io = |e: std::io::Error| ImportError::Io(format!("the upload could not be stored: {e}"));
    let mut file = tempfile::Builder::new()
        .suffix(&format!(".{extension}"))
        .tempfile()
        .map_err(io)?;
    std::io::Write::write_all(&mut file, bytes).map_err(io)?;
    let source = Source::file(file.path());
    let mut options = options.clone();
    options.delimiter = source.default_delimiter();
    let read = {
        let options = options.clone();
        tokio::task::spawn_blocking(move || {
            let read = read_all(&source, &options, rules);
            drop(file);
            read
        })
        .await
        .map_err(|e| ImportError::Io(format!("the reading thread failed: {e}")))?
    };
    let (checked, kept) = read?;
    write_all(db, workspace_id, checked, kept, &options, actor, clock).await
}

/// Both passes over a source held whole: the check, then the rows to write.
fn read_all(
    source: &Source<'_>,
    options: &Options,
    rules: TagRules,
) -> Result<(Checked, Vec<Row>), ImportError> {
    let checked = check(source, options, rules, |_| {})?;
    let mut kept = Vec::with_capacity(checked.good as usize);
    rows(source, options, &checked, rules, |row| {
        kept.push(row);
        ControlFlow::Continue(())
    })?;
    Ok((checked, kept))
}

/// Writes the kept rows in batches (or, in a dry run, counts what they would do).
async fn write_all(
    db: &DatabaseConnection,
    workspace_id: i64,
    checked: Checked,
    kept: Vec<Row>,
    options: &Options,
    actor: &str,
    clock: &Clock,
) -> Result<Summary, ImportError> {
    let writer = Writer {
        db,
        workspace_id,
        actor,
        clock,
        dry_run: options.dry_run,
    };
    let mut summary = checked.summary;
    let mut batcher = Batcher::new(options.batch_size);
    let mut batches: Vec<Vec<Row>> = kept
        .into_iter()
        .filter_map(|row| batcher.push(row))
        .collect();
    batches.extend(batcher.finish());
    let mut statistics = super::write::Statistics::start(db).await?;
    for batch in batches {
        let size = batch.len() as u64;
        let outcome = write_batch(&writer, batch).await?;
        summary.add(outcome, options.max_errors);
        if !options.dry_run {
            statistics.written(db, size).await?;
        }
    }
    summary.finish();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::{Batcher, MAX_BATCH_TAGS};
    use crate::import::rows::{Row, UserRow};
    use crate::subjects::email::Email;
    use crate::tags::name::{TagName, TagRules};

    fn row(line: u64, tags: impl Iterator<Item = String>) -> Row {
        let rules = TagRules {
            lowercase: false,
            max_depth: 3,
        };
        Row::User(UserRow {
            line,
            email: Email::parse(&format!("u{line}@example.com")).unwrap(),
            external_id: None,
            first_name: None,
            last_name: None,
            account: None,
            tags: tags.map(|t| TagName::parse(&t, rules).unwrap()).collect(),
        })
    }

    fn batches(rows: Vec<Row>, max_rows: usize) -> Vec<Vec<Row>> {
        let mut batcher = Batcher::new(max_rows);
        let mut out: Vec<Vec<Row>> = rows.into_iter().filter_map(|r| batcher.push(r)).collect();
        out.extend(batcher.finish());
        out
    }

    fn distinct_tags(batch: &[Row]) -> usize {
        let mut tags = std::collections::HashSet::new();
        for row in batch {
            if let Row::User(row) = row {
                tags.extend(row.tags.iter().cloned());
            }
        }
        tags.len()
    }

    #[test]
    fn rows_of_new_tags_are_cut_into_small_batches() {
        // 1,000 rows of 199 tags each, every one new: 199,000 tags.
        let rows: Vec<Row> = (0..1000)
            .map(|i| row(i, (0..199).map(move |c| format!("C{c}: {i}"))))
            .collect();
        let batches = batches(rows, 5_000);
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 1000);
        for batch in &batches {
            assert!(
                distinct_tags(batch) <= MAX_BATCH_TAGS,
                "{}",
                distinct_tags(batch)
            );
        }
        assert_eq!(batches.len(), 100); // 10 rows (1,990 tags) a batch
    }

    #[test]
    fn rows_of_the_same_tags_fill_batches_by_rows() {
        let rows: Vec<Row> = (0..12_000)
            .map(|i| row(i, ["VIP", "Plan: Pro"].into_iter().map(String::from)))
            .collect();
        let sizes: Vec<usize> = batches(rows, 5_000).iter().map(Vec::len).collect();
        assert_eq!(sizes, [5_000, 5_000, 2_000]);
    }
}
