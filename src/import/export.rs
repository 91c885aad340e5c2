//! Export: a segment's or a filter's members, or the tag catalogue, as CSV
//! or NDJSON, one page at a time (keyset on id), never the whole set in
//! memory. The CSV columns are the import's, so an export re-imports to
//! the same tags.

use std::collections::HashMap;
use std::str::FromStr;

use entity::segment;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use super::ImportError;
use crate::ids::{self, NodeKind};
use crate::segments::store;
use crate::subjects::{SubjectKind, accounts, users};
use crate::tags::catalogue::{self, TagFilter};
use crate::tags::write::subject_table;
use crate::time::Clock;

/// Subjects per page (one query for the ids, one each for rows, accounts and tags).
const PAGE: u64 = 1_000;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "ndjson" | "jsonl" => Ok(Format::Ndjson),
            other => Err(format!("unknown format {other:?}: use csv or ndjson")),
        }
    }
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }
}

/// The subjects to export: one column of ids (alias `s`), all of one kind.
#[derive(Debug, Clone)]
pub struct Members {
    pub kind: SubjectKind,
    query: SelectStatement,
}

/// The segment of the workspace with this name.
pub async fn segment_by_name(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    name: &str,
) -> Result<segment::Model, ImportError> {
    segment::Entity::find()
        .filter(segment::Column::WorkspaceId.eq(workspace_id))
        .filter(segment::Column::Name.eq(name.trim()))
        .one(db)
        .await?
        .ok_or_else(|| ImportError::NotFound(format!("no segment named {:?}", name.trim())))
}

/// A segment's members now (evaluated live).
pub async fn segment_members(
    db: &DatabaseConnection,
    workspace_id: i64,
    segment: &segment::Model,
    clock: &Clock,
) -> Result<Members, ImportError> {
    let (kind, query) = store::members(db, workspace_id, segment, clock.now()).await?;
    Ok(Members { kind, query })
}

/// The subjects of a kind a filter selects now, or all of them.
pub async fn filter_members(
    db: &DatabaseConnection,
    workspace_id: i64,
    kind: SubjectKind,
    filter: Option<&str>,
    clock: &Clock,
) -> Result<Members, ImportError> {
    let query = match filter.map(str::trim).filter(|f| !f.is_empty()) {
        Some(text) => store::filter_members(db, workspace_id, kind, text, clock.now()).await?,
        None => Query::select()
            .column((Alias::new("s"), Alias::new("id")))
            .from_as(Alias::new(subject_table(kind)), Alias::new("s"))
            .and_where(Expr::col((Alias::new("s"), Alias::new("workspace_id"))).eq(workspace_id))
            .to_owned(),
    };
    Ok(Members { kind, query })
}

/// An export in progress: call [`Export::next`] until it returns `None`.
pub struct Export {
    members: Members,
    format: Format,
    workspace_id: i64,
    after: i64,
    started: bool,
    done: bool,
    /// Subjects written so far.
    pub written: u64,
}

impl Export {
    pub fn new(members: Members, format: Format, workspace_id: i64) -> Export {
        Export {
            members,
            format,
            workspace_id,
            after: 0,
            started: false,
            done: false,
            written: 0,
        }
    }

    /// The next chunk of output (the CSV header comes with the first), or
    /// `None` when every member has been written.
    pub async fn next(
        &mut self,
        db: &(impl ConnectionTrait + 'static),
    ) -> Result<Option<Vec<u8>>, ImportError> {
        if self.done {
            return Ok(None);
        }
        let mut out = Out::new(self.format);
        if !self.started {
            self.started = true;
            if self.format == Format::Csv {
                let columns: &[&str] = match self.members.kind {
                    SubjectKind::User => &[
                        "email",
                        "external_id",
                        "first_name",
                        "last_name",
                        "account_external_id",
                        "account_name",
                        "tags",
                    ],
                    SubjectKind::Account => &["external_id", "name", "tags"],
                };
                csv_line(&mut out, columns.iter().copied());
            }
        }
        let page = self
            .members
            .query
            .clone()
            .and_where(Expr::col((Alias::new("s"), Alias::new("id"))).gt(self.after))
            .order_by((Alias::new("s"), Alias::new("id")), Order::Asc)
            .limit(PAGE)
            .to_owned();
        let mut ids: Vec<i64> = Vec::new();
        for row in db.query_all(&page).await? {
            ids.push(row.try_get_by_index(0)?);
        }
        if (ids.len() as u64) < PAGE {
            self.done = true;
        }
        let Some(&last) = ids.last() else {
            return Ok(Some(out.into_bytes()));
        };
        self.after = last;
        self.written += ids.len() as u64;
        let ws = self.workspace_id;
        let mut tags = catalogue::subject_tags(db, ws, self.members.kind, &ids).await?;
        let mut tag_names = |id: i64| -> Vec<String> {
            tags.remove(&id)
                .unwrap_or_default()
                .into_iter()
                .map(|t| t.name)
                .collect()
        };
        match self.members.kind {
            SubjectKind::User => {
                let mut rows = users::find_many(db, ws, &ids).await?;
                rows.sort_by_key(|u| u.id);
                let mut account_ids: Vec<i64> = rows.iter().filter_map(|u| u.account_id).collect();
                account_ids.sort_unstable();
                account_ids.dedup();
                let accounts: HashMap<i64, entity::account::Model> =
                    accounts::find_many(db, ws, &account_ids)
                        .await?
                        .into_iter()
                        .map(|a| (a.id, a))
                        .collect();
                for user in rows {
                    let account = user.account_id.and_then(|id| accounts.get(&id));
                    let account_external_id = account.and_then(|a| a.external_id.clone());
                    let account_name = account.map(|a| a.name.clone());
                    let tags = tag_names(user.id);
                    match self.format {
                        Format::Csv => csv_line(
                            &mut out,
                            [
                                user.email.as_str(),
                                user.external_id.as_deref().unwrap_or(""),
                                user.first_name.as_deref().unwrap_or(""),
                                user.last_name.as_deref().unwrap_or(""),
                                account_external_id.as_deref().unwrap_or(""),
                                account_name.as_deref().unwrap_or(""),
                                super::tags_cell::join(&tags).as_str(),
                            ],
                        ),
                        Format::Ndjson => json_line(
                            &mut out,
                            json!({
                                "id": ids::encode(NodeKind::User, user.id),
                                "email": user.email,
                                "external_id": user.external_id,
                                "first_name": user.first_name,
                                "last_name": user.last_name,
                                "account_external_id": account_external_id,
                                "account_name": account_name,
                                "attributes": user.attributes,
                                "tags": tags,
                            }),
                        ),
                    }
                }
            }
            SubjectKind::Account => {
                let mut rows = accounts::find_many(db, ws, &ids).await?;
                rows.sort_by_key(|a| a.id);
                for account in rows {
                    let tags = tag_names(account.id);
                    match self.format {
                        Format::Csv => csv_line(
                            &mut out,
                            [
                                account.external_id.as_deref().unwrap_or(""),
                                account.name.as_str(),
                                super::tags_cell::join(&tags).as_str(),
                            ],
                        ),
                        Format::Ndjson => json_line(
                            &mut out,
                            json!({
                                "id": ids::encode(NodeKind::Account, account.id),
                                "external_id": account.external_id,
                                "name": account.name,
                                "attributes": account.attributes,
                                "tags": tags,
                            }),
                        ),
                    }
                }
            }
        }
        Ok(Some(out.into_bytes()))
    }
}

/// The tag catalogue (name, users, accounts), a page at a time in name order.
pub struct TagExport {
    format: Format,
    workspace_id: i64,
    after: Option<String>,
    started: bool,
    done: bool,
}

impl TagExport {
    pub fn new(format: Format, workspace_id: i64) -> TagExport {
        TagExport {
            format,
            workspace_id,
            after: None,
            started: false,
            done: false,
        }
    }

    pub async fn next(
        &mut self,
        db: &impl ConnectionTrait,
    ) -> Result<Option<Vec<u8>>, ImportError> {
        if self.done {
            return Ok(None);
        }
        let mut out = Out::new(self.format);
        if !self.started && self.format == Format::Csv {
            csv_line(&mut out, ["name", "user_count", "account_count"]);
        }
        self.started = true;
        let page = catalogue::list(
            db,
            self.workspace_id,
            &TagFilter::default(),
            PAGE,
            self.after.as_deref(),
        )
        .await?;
        self.done = !page.has_next;
        let tag_ids: Vec<i64> = page.rows.iter().map(|t| t.id).collect();
        let counts = catalogue::counts(db, self.workspace_id, &tag_ids).await?;
        for tag in &page.rows {
            let (accounts, users) = counts.get(&tag.id).copied().unwrap_or_default();
            match self.format {
                Format::Csv => csv_line(
                    &mut out,
                    [tag.name.clone(), users.to_string(), accounts.to_string()],
                ),
                Format::Ndjson => json_line(
                    &mut out,
                    json!({ "name": tag.name, "user_count": users, "account_count": accounts }),
                ),
            }
        }
        self.after = page.rows.last().map(|t| t.name.clone());
        Ok(Some(out.into_bytes()))
    }
}

/// The output of one page: CSV records or JSON lines.
enum Out {
    Csv(Box<csv::Writer<Vec<u8>>>),
    Json(Vec<u8>),
}

impl Out {
    fn new(format: Format) -> Out {
        match format {
            Format::Csv => Out::Csv(Box::new(csv::WriterBuilder::new().from_writer(Vec::new()))),
            Format::Ndjson => Out::Json(Vec::new()),
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        match self {
            // Writing into a Vec cannot fail.
            Out::Csv(writer) => writer.into_inner().unwrap_or_default(),
            Out::Json(bytes) => bytes,
        }
    }
}

fn csv_line<S: AsRef<[u8]>>(out: &mut Out, cells: impl IntoIterator<Item = S>) {
    if let Out::Csv(writer) = out {
        // Writing into a Vec cannot fail.
        let _ = writer.write_record(cells);
    }
}

fn json_line(out: &mut Out, value: Value) {
    if let Out::Json(bytes) = out {
        // Serializing a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *bytes, &value);
        bytes.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_when_needed() {
        let mut out = Out::new(Format::Csv);
        csv_line(
            &mut out,
            [
                "ana@x.com",
                "Sales, EMEA",
                "say \"hi\"",
                "Department: Sales;VIP",
            ],
        );
        assert_eq!(
            String::from_utf8(out.into_bytes()).unwrap(),
            "ana@x.com,\"Sales, EMEA\",\"say \"\"hi\"\"\",Department: Sales;VIP\n"
        );
    }
}
