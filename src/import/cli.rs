//! `tagsmith import` and `tagsmith export`: files in and out from the
//! command line, with a progress bar on a terminal (plain progress lines
//! otherwise) and a summary at the end.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sea_orm::DatabaseConnection;

use super::export::{Export, Format, TagExport};
use super::header::Kind;
use super::read::Source;
use super::rows::Row;
use super::run::{self, Options, Summary};
use super::write::Writer;
use super::{ImportError, export};
use crate::subjects::SubjectKind;
use crate::time::Clock;

/// Row errors a CLI import keeps for its report (all are counted).
const MAX_ERRORS: usize = 10_000;
/// Row errors the summary prints.
const PRINTED_ERRORS: usize = 50;

/// What `tagsmith import` was asked.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub kind: Kind,
    pub file: PathBuf,
    pub dry_run: bool,
    /// `None`: tab for `.tsv` files, else a comma.
    pub delimiter: Option<u8>,
    pub batch_size: usize,
}

/// Reads a `--delimiter`: one ASCII character, or `tab`.
pub fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ if text.len() == 1 && text.is_ascii() && text != "\"" => Ok(text.as_bytes()[0]),
        _ => Err(format!(
            "{text:?} is not a delimiter: give one character such as , or ; or the word tab"
        )),
    }
}

/// Progress on a terminal (a bar) or in a log (a line every few seconds).
enum Progress {
    Bar(ProgressBar),
    Lines {
        label: String,
        total: Option<u64>,
        started: Instant,
        printed: Instant,
        position: u64,
    },
}

impl Progress {
    fn new(label: &str, total: Option<u64>) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let template = match total {
                Some(_) => {
                    "{msg} [{bar:30}] {human_pos}/{human_len} rows, {rate}, ETA {eta} ({elapsed})"
                }
                None => "{msg} {human_pos} rows, {rate} ({elapsed})",
            };
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{} rows/s", thousands(state.per_sec() as u64));
                    },
                )
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(label.to_owned());
            Progress::Bar(bar)
        } else {
            Progress::Lines {
                label: label.to_owned(),
                total,
                started: Instant::now(),
                printed: Instant::now(),
                position: 0,
            }
        }
    }

    fn set(&mut self, position: u64) {
        match self {
            Progress::Bar(bar) => bar.set_position(position),
            Progress::Lines {
                label,
                total,
                started,
                printed,
                position: current,
            } => {
                *current = position;
                if printed.elapsed() >= Duration::from_secs(5) {
                    *printed = Instant::now();
                    eprintln!(
                        "{}",
                        progress_line(label, position, *total, started.elapsed())
                    );
                }
            }
        }
    }

    fn finish(self) {
        match self {
            Progress::Bar(bar) => bar.finish(),
            Progress::Lines {
                label,
                total,
                started,
                position,
                ..
            } => eprintln!(
                "{}",
                progress_line(&label, position, total, started.elapsed())
            ),
        }
    }
}

fn progress_line(label: &str, position: u64, total: Option<u64>, elapsed: Duration) -> String {
    let rate = position as f64 / elapsed.as_secs_f64().max(0.001);
    match total {
        Some(total) if total > 0 => {
            let left = total.saturating_sub(position) as f64 / rate.max(1.0);
            format!(
                "{label}: {} of {} rows ({}%), {} rows/s, about {} s left",
                thousands(position),
                thousands(total),
                position * 100 / total,
                thousands(rate as u64),
                left.ceil() as u64
            )
        }
        _ => format!(
            "{label}: {} rows, {} rows/s",
            thousands(position),
            thousands(rate as u64)
        ),
    }
}

pub use super::limits::thousands;

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Imports a CSV or `.xlsx` file: checks it whole (first pass), then
/// writes the good rows in batched transactions (second pass), reading the
/// file on its own thread while the database writes.
pub async fn import_file(
    db: &DatabaseConnection,
    workspace_id: i64,
    request: &ImportRequest,
    clock: &Clock,
) -> Result<Summary, ImportError> {
    let source = Source::file(&request.file);
    let options = Options {
        kind: request.kind,
        delimiter: request
            .delimiter
            .unwrap_or_else(|| source.default_delimiter()),
        dry_run: request.dry_run,
        batch_size: request.batch_size.max(1),
        max_errors: MAX_ERRORS,
    };
    let rules = crate::tags::store::rules(db, workspace_id).await?;
    let name = file_name(&request.file);

    let mut progress = Progress::new(&format!("checking {name}"), None);
    let (checked, progress) = {
        let (source, options) = (source.clone(), options.clone());
        tokio::task::spawn_blocking(move || {
            let checked = run::check(&source, &options, rules, |n| progress.set(n));
            (checked, progress)
        })
        .await
        .map_err(|e| ImportError::Io(format!("the reading thread failed: {e}")))?
    };
    progress.finish();
    let mut checked = checked?;
    let mut summary = std::mem::take(&mut checked.summary);
    let total = checked.good;

    let label = if request.dry_run {
        format!("dry run of {name}")
    } else {
        format!("importing {name}")
    };
    let mut progress = Progress::new(&label, Some(total));
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<Row>>(2);
    let reader = {
        let batch_size = options.batch_size;
        let options = options.clone();
        tokio::task::spawn_blocking(move || {
            let mut batcher = run::Batcher::new(batch_size);
            let mut stopped = false;
            let read = run::rows(&source, &options, &checked, rules, |row| {
                if let Some(full) = batcher.push(row)
                    && sender.blocking_send(full).is_err()
                {
                    stopped = true;
                    return std::ops::ControlFlow::Break(());
                }
                std::ops::ControlFlow::Continue(())
            });
            if !stopped && let Some(rest) = batcher.finish() {
                let _ = sender.blocking_send(rest);
            }
            read
        })
    };
    let actor = format!("import {name}");
    let writer = Writer {
        db,
        workspace_id,
        actor: &actor,
        clock,
        dry_run: request.dry_run,
    };
    let mut done = 0;
    let mut statistics = super::write::Statistics::start(db).await?;
    while let Some(batch) = receiver.recv().await {
        let size = batch.len() as u64;
        let outcome = run::write_batch(&writer, batch).await?;
        summary.add(outcome, MAX_ERRORS);
        if !request.dry_run {
            statistics.written(db, size).await?;
        }
        done += size;
        progress.set(done);
    }
    progress.finish();
    reader
        .await
        .map_err(|e| ImportError::Io(format!("the reading thread failed: {e}")))??;
    summary.finish();
    Ok(summary)
}

/// The summary an import prints.
pub fn report(kind: Kind, file: &Path, dry_run: bool, summary: &Summary, took: Duration) -> String {
    let mut out = String::new();
    let rate = summary.rows as f64 / took.as_secs_f64().max(0.001);
    let verb = if dry_run { "would create" } else { "created" };
    let updated = if dry_run { "would update" } else { "updated" };
    out.push_str(&format!(
        "{}{} from {}: {} rows read, {verb} {}, {updated} {}, {} tag assignments added, {} rows skipped ({:.1} s, {} rows/s)\n",
        if dry_run { "dry run, nothing written: " } else { "" },
        kind.plural(),
        file.display(),
        thousands(summary.rows),
        thousands(summary.created),
        thousands(summary.updated),
        thousands(summary.tags_applied),
        thousands(summary.skipped),
        took.as_secs_f64(),
        thousands(rate as u64),
    ));
    for error in summary.errors.iter().take(PRINTED_ERRORS) {
        out.push_str(&format!("line {}: {}\n", error.line, error.message));
    }
    let unlisted = summary
        .skipped
        .saturating_sub(PRINTED_ERRORS.min(summary.errors.len()) as u64);
    if unlisted > 0 {
        out.push_str(&format!(
            "... and {} more skipped rows\n",
            thousands(unlisted)
        ));
    }
    out
}

/// What `tagsmith export` writes.
#[derive(Debug, Clone)]
pub enum ExportRequest {
    Segment(String),
    Subjects {
        kind: SubjectKind,
        filter: Option<String>,
    },
    Tags,
}

/// Writes an export to `output` (or standard output); returns how many
/// members or tags it wrote, and what they were.
pub async fn export_to(
    db: &DatabaseConnection,
    workspace_id: i64,
    request: &ExportRequest,
    format: Format,
    output: Option<&Path>,
    clock: &Clock,
) -> Result<String, ImportError> {
    let io = |e: std::io::Error| ImportError::Io(e.to_string());
    let mut sink: Box<dyn Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| ImportError::Io(format!("{}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let what = match request {
        ExportRequest::Tags => {
            let mut export = TagExport::new(format, workspace_id);
            while let Some(chunk) = export.next(db).await? {
                sink.write_all(&chunk).map_err(io)?;
            }
            "the tags".to_owned()
        }
        ExportRequest::Segment(name) => {
            let segment = export::segment_by_name(db, workspace_id, name).await?;
            let members = export::segment_members(db, workspace_id, &segment, clock).await?;
            let kind = members.kind;
            let written = drain(db, Export::new(members, format, workspace_id), &mut sink).await?;
            format!(
                "{} {} of segment {:?}",
                thousands(written),
                plural(kind),
                segment.name
            )
        }
        ExportRequest::Subjects { kind, filter } => {
            let members =
                export::filter_members(db, workspace_id, *kind, filter.as_deref(), clock).await?;
            let written = drain(db, Export::new(members, format, workspace_id), &mut sink).await?;
            format!("{} {}", thousands(written), plural(*kind))
        }
    };
    sink.flush().map_err(io)?;
    Ok(what)
}

fn plural(kind: SubjectKind) -> &'static str {
    match kind {
        SubjectKind::User => "users",
        SubjectKind::Account => "accounts",
    }
}

async fn drain(
    db: &DatabaseConnection,
    mut export: Export,
    sink: &mut dyn Write,
) -> Result<u64, ImportError> {
    while let Some(chunk) = export.next(db).await? {
        sink.write_all(&chunk)
            .map_err(|e| ImportError::Io(e.to_string()))?;
    }
    Ok(export.written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_delimiters() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(parse_delimiter(";"), Ok(b';'));
        assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
        assert!(parse_delimiter(";;").is_err());
    }
}
