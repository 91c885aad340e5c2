//! The admin console at `/console`: a page of plain HTML, CSS and JavaScript
//! modules shipped inside the binary, so it works offline. The one built
//! file, `vendor/codemirror.js` (the editor), is committed; `.ci/run`
//! rebuilds it from `assets/console/build/` and fails when it differs.
//! It talks to the server only through the public `/graphql` endpoint, with
//! the API key the user pastes (kept in the tab's session storage).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::Code;

use super::http::request_error;

/// The console's files, by the name the page asks for.
const FILES: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/console/console.css"),
    ),
    (
        "main.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/main.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/api.js"),
    ),
    (
        "editor.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/editor.js"),
    ),
    (
        "scripts.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/scripts.js"),
    ),
    (
        "segments.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/segments.js"),
    ),
    (
        "tags.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/tags.js"),
    ),
    (
        "import.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/import.js"),
    ),
    (
        "vendor/codemirror.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/vendor/codemirror.js"),
    ),
    (
        "webhooks.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/webhooks.js"),
    ),
];

const PAGE: &str = include_str!("../../assets/console/index.html");

/// `GET /console`: the page.
pub(super) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Everything the page loads comes from this server; the key never leaves it.
            // Inline styles (not scripts) are allowed: CodeMirror sets `style` attributes.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE,
    )
        .into_response()
}

/// `GET /console/{file}`: a script or style of the page.
pub(super) async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => request_error(
            StatusCode::NOT_FOUND,
            Code::NotFound,
            format!("no such console file: {file}"),
        ),
    }
}
