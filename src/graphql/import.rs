//! Import through GraphQL (`importUsers`, `importAccounts`) and the
//! authenticated download of a segment's members
//! (`GET /segments/{id}/members.csv` and `.ndjson`), streamed.

use super::Result;
use async_graphql::{Context, ID, Object, SimpleObject};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::{AuthError, Role};
use crate::error::{ApiError, Code, ErrorCode};
use crate::import::export::{self, Export, Format};
use crate::import::{self, Kind, Options, Summary};
use crate::segments::store;

use super::context::{RequestAuth, require, state, wake_worker};
use super::http::{HttpState, authenticate, request_error};
use super::ids::{self, NodeKind};

/// What an import did.
#[derive(SimpleObject)]
pub struct ImportResult {
    /// Subjects created.
    created: i32,
    /// Existing subjects updated (found by external id or email; for
    /// accounts, by external id or name).
    updated: i32,
    /// Tag assignments created (tags a subject already had are not counted).
    tags_applied: i32,
    /// Rows skipped, by line: bad rows (the reason), rows replaced by a
    /// later row with the same email or external id, conflicts.
    errors: Vec<ImportRowError>,
}

/// A skipped row.
#[derive(SimpleObject)]
#[graphql(name = "ImportError")]
pub struct ImportRowError {
    /// The row's line in the file (the header is line 1).
    line: i32,
    message: String,
}

fn count(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl From<Summary> for ImportResult {
    fn from(summary: Summary) -> Self {
        ImportResult {
            created: count(summary.created),
            updated: count(summary.updated),
            tags_applied: count(summary.tags_applied),
            errors: summary
                .errors
                .into_iter()
                .map(|e| ImportRowError {
                    line: count(e.line),
                    message: e.message,
                })
                .collect(),
        }
    }
}

async fn run(ctx: &Context<'_>, csv: String, kind: Kind) -> Result<ImportResult> {
    let caller = require(ctx, Role::Developer)?;
    let app = state(ctx)?;
    let summary = import::run::import_text(
        &app.db,
        caller.workspace_id,
        &csv,
        &Options::new(kind),
        &caller.key_name,
        &app.clock,
    )
    .await?;
    wake_worker(ctx);
    Ok(summary.into())
}

#[derive(Default)]
pub struct ImportMutation;

#[Object]
impl ImportMutation {
    /// Imports users from CSV text with a header row (DEVELOPER and up).
    /// `email` is required; `first_name`, `last_name`, `external_id`,
    /// `account_external_id` and `account_name` are fields (the account is
    /// found by external id or name, and created when missing); `tags`
    /// holds tags separated by `;`; every other non-empty cell becomes the
    /// tag `Column: value`. Header names match ignoring case. Users upsert
    /// by external id when given, else by email; empty cells leave fields
    /// as they are; tags are added, never removed (source IMPORT, so
    /// automation and segment triggers run). A file without an `email`
    /// column, or not CSV, is refused whole (BAD_USER_INPUT); a bad row is
    /// skipped and reported by line; of two rows with the same email the
    /// later wins. Bounded by the request body limit: use `tagsmith import`
    /// for large files.
    async fn import_users(&self, ctx: &Context<'_>, csv: String) -> Result<ImportResult> {
        run(ctx, csv, Kind::Users).await
    }

    /// Imports accounts from CSV text with a header row (DEVELOPER and up):
    /// `external_id` and `name` (at least one of the two columns), `tags`
    /// separated by `;`, every other non-empty cell as the tag `Column:
    /// value`. Accounts upsert by external id when given, else by name.
    /// Same errors as `importUsers`.
    async fn import_accounts(&self, ctx: &Context<'_>, csv: String) -> Result<ImportResult> {
        run(ctx, csv, Kind::Accounts).await
    }
}

/// What `POST /import/{users|accounts}` answers: [`ImportResult`] as JSON.
fn summary_json(summary: Summary, dry_run: bool) -> serde_json::Value {
    serde_json::json!({
        "dryRun": dry_run,
        "rows": summary.rows,
        "created": summary.created,
        "updated": summary.updated,
        "tagsApplied": summary.tags_applied,
        "errors": summary.errors.iter().map(|e| serde_json::json!({ "line": e.line, "message": e.message })).collect::<Vec<_>>(),
    })
}

/// `POST /import/users` and `/import/accounts` (DEVELOPER and up): a
/// multipart form whose `file` part is a CSV or `.xlsx` file (by its file
/// name); `?dryRun=true` checks every row and writes nothing. The body
/// limit and the import limits apply.
pub async fn upload(
    State(state): State<HttpState>,
    Path(kind): Path<String>,
    axum::extract::Query(query): axum::extract::Query<UploadQuery>,
    headers: HeaderMap,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let caller = match authenticate(&state, &headers).await {
        RequestAuth::Key(caller) => caller,
        RequestAuth::Anonymous => return error_response(AuthError::MissingKey.into()),
        RequestAuth::Invalid => return error_response(AuthError::InvalidKey.into()),
    };
    if let Err(e) = caller.require(Role::Developer) {
        return error_response(e.into());
    }
    let kind = match kind.as_str() {
        "users" => Kind::Users,
        "accounts" => Kind::Accounts,
        _ => {
            return error_response(ApiError::not_found(
                "import users or accounts: /import/users, /import/accounts",
            ));
        }
    };
    let bad = |message: String| request_error(StatusCode::BAD_REQUEST, Code::BadUserInput, message);
    let mut multipart = match multipart {
        Ok(multipart) => multipart,
        Err(e) => return bad(format!("send the file as multipart/form-data: {e}")),
    };
    // The body must arrive within the body timeout, as on /graphql.
    let timeout = state.settings.body_timeout();
    let (name, bytes) = match tokio::time::timeout(timeout, file_part(&state, &mut multipart)).await
    {
        Ok(Ok(Some(file))) => file,
        Ok(Ok(None)) => return bad("no `file` part in the form".to_owned()),
        Ok(Err(response)) => return response,
        Err(_) => {
            let mut response = request_error(
                StatusCode::REQUEST_TIMEOUT,
                Code::LimitExceeded,
                format!(
                    "the upload was not received within {} ms",
                    timeout.as_millis()
                ),
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    let mut options = Options::new(kind);
    options.dry_run = query.dry_run;
    let app = &state.app;
    match import::run::import_upload(
        &app.db,
        caller.workspace_id,
        &name,
        &bytes,
        &options,
        &caller.key_name,
        &app.clock,
    )
    .await
    {
        Ok(summary) => {
            if !query.dry_run {
                app.wake.notify_one();
                app.feed.committed();
            }
            axum::Json(summary_json(summary, query.dry_run)).into_response()
        }
        Err(e) => error_response(ApiError::from(e)),
    }
}

/// The form's `file` part: its file name and bytes (the last `file` part when there are several).
async fn file_part(
    state: &HttpState,
    multipart: &mut axum::extract::Multipart,
) -> Result<Option<(String, Bytes)>, Response> {
    let mut file = None;
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") => {
                let name = field.file_name().unwrap_or("upload.csv").to_owned();
                match field.bytes().await {
                    Ok(bytes) => file = Some((name, bytes)),
                    Err(e) => return Err(too_large_or_bad(state, e)),
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => return Ok(file),
            Err(e) => return Err(too_large_or_bad(state, e)),
        }
    }
}

/// The upload's query string.
#[derive(serde::Deserialize)]
pub struct UploadQuery {
    #[serde(default, rename = "dryRun")]
    dry_run: bool,
}

/// A multipart error: over the body limit (413, LIMIT_EXCEEDED), else malformed.
fn too_large_or_bad(
    state: &HttpState,
    error: axum::extract::multipart::MultipartError,
) -> Response {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return request_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::LimitExceeded,
            format!(
                "the upload is larger than the body limit of {} bytes (--max-body-bytes); import large files with `tagsmith import`",
                state.settings.max_body_bytes
            ),
        );
    }
    request_error(
        StatusCode::BAD_REQUEST,
        Code::BadUserInput,
        format!(
            "the multipart form could not be read: {}",
            error.body_text()
        ),
    )
}

/// `GET /segments/{id}/members.csv`: the members, as `tagsmith export segment` writes them.
pub async fn members_csv(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    members(state, &id, &headers, Format::Csv).await
}

/// `GET /segments/{id}/members.ndjson`: one JSON object per member and line.
pub async fn members_ndjson(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    members(state, &id, &headers, Format::Ndjson).await
}

fn error_response(error: ApiError) -> Response {
    let status = match error.code {
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Forbidden => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::BadUserInput | Code::LimitExceeded => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    request_error(status, error.code, error.message)
}

async fn members(state: HttpState, id: &str, headers: &HeaderMap, format: Format) -> Response {
    let caller = match authenticate(&state, headers).await {
        RequestAuth::Key(caller) => caller,
        RequestAuth::Anonymous => return error_response(AuthError::MissingKey.into()),
        RequestAuth::Invalid => return error_response(AuthError::InvalidKey.into()),
    };
    if let Err(e) = caller.require(Role::Viewer) {
        return error_response(e.into());
    }
    let not_found = || error_response(ApiError::not_found("no such segment"));
    // The segment's global ID, as the API gives it (a plain number is accepted too).
    let segment_id = match id.parse::<i64>() {
        Ok(id) => id,
        Err(_) => match ids::decode_as(&ID(id.to_owned()), NodeKind::Segment) {
            Ok(id) => id,
            Err(_) => return not_found(),
        },
    };
    let db = state.app.db.clone();
    let ws = caller.workspace_id;
    let segment = match store::find(&db, ws, segment_id).await {
        Ok(Some(segment)) => segment,
        Ok(None) => return not_found(),
        Err(e) => return error_response(e.into()),
    };
    let members = match export::segment_members(&db, ws, &segment, &state.app.clock).await {
        Ok(members) => members,
        Err(e) => return error_response(e.into()),
    };
    let export = Export::new(members, format, ws);
    let pages = futures_util::stream::unfold(Some((export, db)), |next| async move {
        let (mut export, db) = next?;
        match export.next(&db).await {
            Ok(Some(chunk)) => Some((Ok(Bytes::from(chunk)), Some((export, db)))),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, code = e.code().as_str(), "segment export failed midway");
                Some((Err(std::io::Error::other("the export failed")), None))
            }
        }
    });
    let extension = match format {
        Format::Csv => "csv",
        Format::Ndjson => "ndjson",
    };
    let file_name: String = segment
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"{file_name}.{extension}\"");
    let mut response = Body::from_stream(pages).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
