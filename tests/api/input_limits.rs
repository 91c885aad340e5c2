//! Limits on what a client may send (issue 15, findings F7, F8, F10, F11):
//! import width and tag counts, `.xlsx` zip bombs, half-sent requests, and
//! a body in the GraphQL error shape for every 4xx.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp, error_code, error_message, fresh_database, tagsmith};
use crate::on_both_databases;

on_both_databases!(
    an_import_with_ten_thousand_extra_columns_is_refused_fast,
    a_tags_cell_with_100k_tags_skips_its_row_and_keeps_the_others,
);

const IMPORT_USERS: &str = "mutation($csv: String!) {
    importUsers(csv: $csv) { created updated tagsApplied errors { line message } } }";
const IMPORT_ACCOUNTS: &str = "mutation($csv: String!) {
    importAccounts(csv: $csv) { created updated tagsApplied errors { line message } } }";

async fn an_import_with_ten_thousand_extra_columns_is_refused_fast(app: TestApp) {
    let mut header = String::from("email");
    let mut row = String::from("ana@x.io");
    for i in 0..10_000 {
        header.push_str(&format!(",C{i}"));
        row.push_str(&format!(",v{i}"));
    }
    let csv = format!("{header}\n{row}\n");
    for mutation in [IMPORT_USERS, IMPORT_ACCOUNTS] {
        let started = Instant::now();
        let body = app.graphql(mutation, json!({ "csv": csv })).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(error_code(&body), "LIMIT_EXCEEDED", "{body}");
        assert_eq!(
            error_message(&body),
            "the header has 10,001 columns; an import takes at most 200 (fields and tag columns): split the file"
        );
    }
    assert_eq!(app.user_count().await, 0, "a refused file writes nothing");
    assert_eq!(app.rows("tags").await, 0);

    // At the limit, a row is accepted, and its 199 tags are written.
    let columns = 199;
    let header: Vec<String> = (0..columns).map(|i| format!("C{i}")).collect();
    let cells: Vec<String> = (0..columns).map(|i| format!("v{i}")).collect();
    let csv = format!("email,{}\nana@x.io,{}\n", header.join(","), cells.join(","));
    let body = app.ok(IMPORT_USERS, json!({ "csv": csv })).await;
    assert_eq!(
        body["importUsers"],
        json!({ "created": 1, "updated": 0, "tagsApplied": 199, "errors": [] })
    );
}

async fn a_tags_cell_with_100k_tags_skips_its_row_and_keeps_the_others(app: TestApp) {
    let tags: Vec<String> = (0..100_000).map(|i| format!("t{i}")).collect();
    let csv = format!(
        "email,tags,Team\nana@x.io,VIP,Red\nbo@x.io,\"{}\",Blue\ncy@x.io,,Green\n",
        tags.join(";")
    );
    let started = Instant::now();
    let body = app.ok(IMPORT_USERS, json!({ "csv": csv })).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        body["importUsers"],
        json!({ "created": 2, "updated": 0, "tagsApplied": 3, "errors": [
            { "line": 3, "message": "the tags cell holds 100,000 tags; a cell holds at most 100" }
        ] })
    );
    assert_eq!(app.user_count().await, 2);
}

/// A workbook whose one shared string is `cell_bytes` long: a small file
/// that unzips to far more (`A` compresses about 1,000 to 1).
fn workbook(path: &std::path::Path, header: &str, cell_bytes: usize) {
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let parts: [(&str, String); 5] = [
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>"#.to_owned(),
        ),
        (
            "_rels/.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_owned(),
        ),
        (
            "xl/workbook.xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#.to_owned(),
        ),
        (
            "xl/_rels/workbook.xml.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#.to_owned(),
        ),
        (
            "xl/worksheets/sheet1.xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c></row><row r="2"><c r="A2" t="s"><v>1</v></c></row></sheetData></worksheet>"#.to_owned(),
        ),
    ];
    for (name, text) in parts {
        zip.start_file(name, options).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.start_file("xl/sharedStrings.xml", options).unwrap();
    zip.write_all(
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="2" uniqueCount="2"><si><t>{header}</t></si><si><t>"#
        )
        .as_bytes(),
    )
    .unwrap();
    let chunk = vec![b'A'; 1 << 20];
    let mut left = cell_bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        zip.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    zip.write_all(b"</t></si></sst>").unwrap();
    zip.finish().unwrap();
}

#[tokio::test]
async fn the_cli_refuses_an_xlsx_zip_bomb_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database(Backend::Sqlite).await.expect("SQLite");
    let url = database.url.clone();
    // The first command on a new database creates the `default` workspace.
    let (ok, _, stderr) = tagsmith(&url, &["migrate"]);
    assert!(ok, "{stderr}");

    // One cell of 32 MiB in a file of tens of KiB.
    let bomb = dir.path().join("bomb.xlsx");
    workbook(&bomb, "email", 32 << 20);
    assert!(std::fs::metadata(&bomb).unwrap().len() < 200_000);
    let started = Instant::now();
    let (ok, stdout, stderr) = tagsmith(&url, &["import", "users", &bomb.display().to_string()]);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains(
            "xl/sharedStrings.xml holds a shared string longer than 64 KiB; a cell holds at most 16 KiB"
        ),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // A workbook whose every row is bad fails too, and says so.
    let bad = dir.path().join("bad.xlsx");
    workbook(&bad, "email", 10);
    let (ok, stdout, stderr) = tagsmith(&url, &["import", "users", &bad.display().to_string()]);
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("1 rows read, created 0"), "{stdout}");
    assert!(
        stderr.contains("every row (1) was skipped: nothing was imported"),
        "{stderr}"
    );

    // So does a file with a header and no rows.
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "email,Team\n").unwrap();
    let (ok, _, stderr) = tagsmith(&url, &["import", "users", &empty.display().to_string()]);
    assert!(!ok);
    assert!(
        stderr.contains("the file has no rows below its header"),
        "{stderr}"
    );

    // A CSV header over the column limit is refused whole.
    let wide = dir.path().join("wide.csv");
    let header: Vec<String> = (0..5_000).map(|i| format!("C{i}")).collect();
    std::fs::write(&wide, format!("email,{}\na@x.io\n", header.join(","))).unwrap();
    let (ok, _, stderr) = tagsmith(&url, &["import", "users", &wide.display().to_string()]);
    assert!(!ok);
    assert!(
        stderr.contains("the header has 5,001 columns; an import takes at most 200"),
        "{stderr}"
    );
}

#[tokio::test]
async fn half_sent_requests_are_closed_after_the_header_timeout() {
    let app = TestApp::builder()
        .server(|s| s.header_timeout_ms = 500)
        .spawn_sqlite()
        .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut streams = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(
                b"POST /graphql HTTP/1.1\r\nHost: tagsmith\r\nContent-Type: application/json\r\n",
            )
            .await
            .unwrap();
        streams.push(stream);
    }
    let started = Instant::now();
    for stream in &mut streams {
        let mut buffer = [0u8; 1024];
        // Closed (end of file or reset) within the timeout and some slack.
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(read.is_ok(), "a half-sent request stayed open");
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // The server still serves.
    let body = app.ok("{ users { totalCount } }", json!({})).await;
    assert_eq!(body["users"]["totalCount"], 0, "{body}");
}

#[tokio::test]
async fn a_body_not_sent_in_time_is_answered_408() {
    let app = TestApp::builder()
        .server(|s| s.body_timeout_ms = 500)
        .spawn_sqlite()
        .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(
            b"POST /graphql HTTP/1.1\r\nHost: tagsmith\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"query\":",
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    assert!(read.is_ok(), "the request stayed open");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    let body: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(error_code(&body), "LIMIT_EXCEEDED", "{body}");
}

#[tokio::test]
async fn every_4xx_has_a_body_with_a_code() {
    let app = TestApp::builder().spawn_sqlite().await;
    let segment = app
        .ok(
            "mutation($input: SegmentInput!) { createSegment(input: $input) { id } }",
            json!({ "input": { "name": "All", "subjectKind": "USER", "filter": "tagged(\"x\")" } }),
        )
        .await["createSegment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cases = [
        ("GET", "/nope".to_owned(), 404, "NOT_FOUND"),
        (
            "GET",
            format!("/segments/{segment}/members.xlsx"),
            404,
            "NOT_FOUND",
        ),
        ("GET", "/assets/nope.js".to_owned(), 404, "NOT_FOUND"),
        ("DELETE", "/graphql".to_owned(), 405, "BAD_USER_INPUT"),
        ("POST", "/healthz".to_owned(), 405, "BAD_USER_INPUT"),
    ];
    for (method, path, status, code) in cases {
        let response = app
            .client
            .request(method.parse().unwrap(), format!("{}{path}", app.address))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{method} {path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["errors"][0]["extensions"]["code"], code,
            "{method} {path}: {body}"
        );
        assert!(!error_message(&body).is_empty(), "{method} {path}: {body}");
    }
}
