//! Import and export: `importUsers`/`importAccounts` over HTTP, the segment
//! download, and the `tagsmith import`/`export` commands run as the real binary.

use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, drained, error_code, eventually, fresh_database, names, tagsmith,
};
use crate::on_both_databases;

on_both_databases!(
    learning_platform_file_gives_key_value_tags,
    bad_rows_are_reported_by_line_and_good_rows_kept,
    refused_files_write_nothing,
    bom_quotes_and_newlines,
    reimport_updates_fields_and_appends_tags,
    a_batch_of_new_and_known_users_records_each_change_once,
    users_link_to_accounts_and_accounts_import,
    export_reimports_to_the_same_tags,
    automation_and_segment_triggers_run_on_imported_tags,
);

const IMPORT_USERS: &str = "mutation($csv: String!) {
    importUsers(csv: $csv) { created updated tagsApplied errors { line message } } }";
const IMPORT_ACCOUNTS: &str = "mutation($csv: String!) {
    importAccounts(csv: $csv) { created updated tagsApplied errors { line message } } }";
const USER: &str = "query($email: String!) { user(email: $email) {
    id firstName lastName externalId account { externalId name } tags { name } } }";
const CREATE_SEGMENT: &str =
    "mutation($input: SegmentInput!) { createSegment(input: $input) { id memberCount } }";

const LEARNING: &str = "\
email,first_name,last_name,Department,Region,Job Title
ana@learn.io,Ana,Lima,Sales,EMEA,Account Executive
bo@learn.io,Bo,Chen,Engineering,APAC,Developer
cy@learn.io,Cy,Diaz,Sales,AMER,
";

async fn import_users(app: &TestApp, csv: &str) -> Value {
    app.ok(IMPORT_USERS, json!({ "csv": csv })).await["importUsers"].clone()
}

async fn user(app: &TestApp, email: &str) -> Value {
    app.ok(USER, json!({ "email": email })).await["user"].clone()
}

/// The tags of the user with this email.
async fn user_tags(app: &TestApp, email: &str) -> Vec<String> {
    names(&user(app, email).await["tags"])
}

async fn learning_platform_file_gives_key_value_tags(app: TestApp) {
    let result = import_users(&app, LEARNING).await;
    assert_eq!(
        result,
        json!({ "created": 3, "updated": 0, "tagsApplied": 8, "errors": [] })
    );
    let ana = user(&app, "ana@learn.io").await;
    assert_eq!(ana["firstName"], "Ana");
    assert_eq!(ana["lastName"], "Lima");
    assert_eq!(
        names(&ana["tags"]),
        [
            "Department: Sales",
            "Job Title: Account Executive",
            "Region: EMEA"
        ]
    );
    // An empty cell makes no tag.
    assert_eq!(
        user_tags(&app, "cy@learn.io").await,
        ["Department: Sales", "Region: AMER"]
    );
    let catalogue = app
        .ok(
            r#"{ tags(prefix: "Department: ") { nodes { name key value userCount } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        catalogue["tags"]["nodes"],
        json!([
            { "name": "Department: Engineering", "key": "Department", "value": "Engineering", "userCount": 1 },
            { "name": "Department: Sales", "key": "Department", "value": "Sales", "userCount": 2 },
        ])
    );
    // The changes are recorded as an import by the key.
    let history = app
        .ok(
            r#"{ tagChanges(tag: "Department: Sales", first: 5) { nodes { source actor op } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        history["tagChanges"]["nodes"][0],
        json!({ "source": "IMPORT", "actor": "admin", "op": "ADDED" })
    );
    // And segments find them.
    let segment = app
        .ok(
            CREATE_SEGMENT,
            json!({ "input": { "name": "Sales EMEA", "subjectKind": "USER",
                    "filter": "tagged(\"Department: Sales\") and tagged(\"Region: EMEA\")" } }),
        )
        .await;
    assert_eq!(segment["createSegment"]["memberCount"], 1);
}

async fn bad_rows_are_reported_by_line_and_good_rows_kept(app: TestApp) {
    let csv = "\
email,first_name,tags,Team
ana@x.io,Ana,VIP,Red
not-an-email,Bo,,
,Cy,,
dee@x.io,Dee,a//b,
eve@x.io,Eve,,*
fay@x.io,Fay
ana@x.io,Ana 2,Hot Lead,Blue
gus@x.io,Gus,,
";
    let result = import_users(&app, csv).await;
    assert_eq!(
        result,
        json!({
            "created": 2, "updated": 0, "tagsApplied": 2,
            "errors": [
                { "line": 2, "message": "skipped: line 8 has the same email \"ana@x.io\"; the later row wins" },
                { "line": 3, "message": "invalid email \"not-an-email\": it has no @" },
                { "line": 4, "message": "email is empty" },
                { "line": 5, "message": "tag \"a//b\" has an empty level (levels are separated by `/`)" },
                { "line": 6, "message": "column \"Team\": tag \"Team: *\" uses `*`, which is kept for patterns such as `a/*` and `Key: *`" },
                { "line": 7, "message": "has 2 cells; the header has 4" },
            ]
        })
    );
    // The later row won: its name and tags, not the earlier row's.
    let ana = user(&app, "ana@x.io").await;
    assert_eq!(ana["firstName"], "Ana 2");
    assert_eq!(names(&ana["tags"]), ["Hot Lead", "Team: Blue"]);
    assert_eq!(app.user_count().await, 2);
}

async fn refused_files_write_nothing(app: TestApp) {
    let refused = [
        (
            "first_name,last_name\nAna,Lima\n",
            "the header has no `email` column",
        ),
        ("email,EMAIL\na@x.io,b@x.io\n", "appears twice"),
        ("", "the file is empty"),
        // Binary: refused for its NUL bytes before the import reads it
        // (the CLI's reader says "not CSV text" for the same bytes).
        ("PK\u{3}\u{4}\u{14}\u{0}binary", "NUL character"),
        (
            "{\"email\": \"a@x.io\"}\n",
            "the header has no `email` column",
        ),
    ];
    for (csv, message) in refused {
        let body = app.graphql(IMPORT_USERS, json!({ "csv": csv })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{csv:?}: {body}");
        let got = body["errors"][0]["message"].as_str().unwrap_or("");
        assert!(got.contains(message), "{csv:?}: {got}");
    }
    let body = app
        .graphql(IMPORT_ACCOUNTS, json!({ "csv": "plan\npro\n" }))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(app.user_count().await, 0);
    assert_eq!(app.rows("tags").await, 0);

    // DEVELOPER and up.
    let member = app.key("member", "MEMBER").await;
    let body = app
        .graphql_as(Some(&member), IMPORT_USERS, json!({ "csv": LEARNING }))
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let developer = app.key("dev", "DEVELOPER").await;
    let body = app
        .graphql_as(Some(&developer), IMPORT_USERS, json!({ "csv": LEARNING }))
        .await;
    assert_eq!(body["data"]["importUsers"]["created"], 3, "{body}");
}

async fn bom_quotes_and_newlines(app: TestApp) {
    let csv = "\u{feff}\"Email\",First_Name,Note,tags\r\n\
               ana@x.io,Ana,\"Sales, EMEA\",\r\n\
               bo@x.io,Bo,,\"VIP;\r\nHot Lead\"\r\n\
               \r\n\
               bad,Cy,,\r\n";
    let result = import_users(&app, csv).await;
    assert_eq!(result["created"], 2, "{result}");
    // Line numbers count the quoted line break and the blank line.
    assert_eq!(
        result["errors"],
        json!([{ "line": 6, "message": "invalid email \"bad\": it has no @" }])
    );
    assert_eq!(user_tags(&app, "ana@x.io").await, ["Note: Sales, EMEA"]);
    assert_eq!(user(&app, "ana@x.io").await["firstName"], "Ana");
    assert_eq!(user_tags(&app, "bo@x.io").await, ["Hot Lead", "VIP"]);
}

async fn reimport_updates_fields_and_appends_tags(app: TestApp) {
    import_users(
        &app,
        "email,first_name,last_name,tags\nana@x.io,Ana,Lima,VIP\n",
    )
    .await;
    let id = user(&app, "ana@x.io").await["id"].clone();
    // Empty cells keep fields; tags are appended, never removed; an
    // external id is adopted by the user found by email.
    let result = import_users(
        &app,
        "email,first_name,last_name,external_id,tags\nana@x.io,Ana Maria,,crm-1,Hot Lead;VIP\n",
    )
    .await;
    assert_eq!(
        result,
        json!({ "created": 0, "updated": 1, "tagsApplied": 1, "errors": [] })
    );
    let ana = user(&app, "ana@x.io").await;
    assert_eq!(ana["id"], id);
    assert_eq!(ana["firstName"], "Ana Maria");
    assert_eq!(ana["lastName"], "Lima");
    assert_eq!(ana["externalId"], "crm-1");
    assert_eq!(names(&ana["tags"]), ["Hot Lead", "VIP"]);
    // The tag she had is not added again: one history row and one outbox
    // event per real change.
    let data = app
        .ok(
            "query($id: ID!) { node(id: $id) { ... on User { history(first: 10) { nodes { op tag { name } source } } } }
               automationEvents(first: 10) { nodes { kind tag { name } subject { ... on User { email } } } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        data["node"]["history"]["nodes"],
        json!([
            { "op": "ADDED", "tag": { "name": "Hot Lead" }, "source": "IMPORT" },
            { "op": "ADDED", "tag": { "name": "VIP" }, "source": "IMPORT" },
        ])
    );
    let mut events: Vec<(String, String)> = data["automationEvents"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["tag"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    events.sort();
    assert_eq!(
        events,
        [
            ("TAG_ADDED".to_owned(), "Hot Lead".to_owned()),
            ("TAG_ADDED".to_owned(), "VIP".to_owned())
        ]
    );
    // By external id, the email changes.
    let result = import_users(&app, "external_id,email\ncrm-1,ana@new.io\n").await;
    assert_eq!(result["updated"], 1, "{result}");
    assert_eq!(user(&app, "ana@new.io").await["id"], id);
    // An email that belongs to a user with another external id is a conflict.
    import_users(&app, "email,external_id\nbo@x.io,crm-2\n").await;
    let result = import_users(&app, "email,external_id\nbo@x.io,crm-3\n").await;
    assert_eq!(
        result["errors"],
        json!([{ "line": 2, "message": "skipped: email \"bo@x.io\" belongs to the user with external_id \"crm-2\"" }])
    );
    // A row whose outcome depends on an earlier row of the same import:
    // line 2 frees bo@x.io, line 3 takes it as a new user.
    let result = import_users(&app, "email,external_id\nbo2@x.io,crm-2\nbo@x.io,\n").await;
    assert_eq!(
        result,
        json!({ "created": 1, "updated": 1, "tagsApplied": 0, "errors": [] })
    );
    assert_eq!(app.user_count().await, 3);
}

/// One batch holding a user who exists (whose new tags are checked against
/// those she has) and users it creates (whose tags are not): each real
/// change gets one history row and one event, on either path.
async fn a_batch_of_new_and_known_users_records_each_change_once(app: TestApp) {
    import_users(&app, "email,tags\nana@x.io,VIP\n").await;
    let result = import_users(
        &app,
        "email,tags\nbo@x.io,VIP;Gold\nana@x.io,VIP;Gold\ncy@x.io,Gold\n",
    )
    .await;
    assert_eq!(
        result,
        json!({ "created": 2, "updated": 1, "tagsApplied": 4, "errors": [] })
    );
    for (email, tags) in [
        ("ana@x.io", ["Gold", "VIP"].as_slice()),
        ("bo@x.io", &["Gold", "VIP"]),
        ("cy@x.io", &["Gold"]),
    ] {
        assert_eq!(user_tags(&app, email).await, tags, "{email}");
        let history = app
            .ok(
                "query($email: String!) { user(email: $email) { history(first: 10) { nodes { tag { name } } } } }",
                json!({ "email": email }),
            )
            .await;
        let mut changed: Vec<String> = history["user"]["history"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["tag"]["name"].as_str().unwrap().to_owned())
            .collect();
        changed.sort();
        assert_eq!(changed, tags, "{email}");
    }
    let events = app
        .ok(
            "{ automationEvents(first: 50) { nodes { kind } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        events["automationEvents"]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        5,
        "{events}"
    );
}

async fn users_link_to_accounts_and_accounts_import(app: TestApp) {
    let result = app
        .ok(
            IMPORT_ACCOUNTS,
            json!({ "csv": "external_id,name,Plan,tags\nacme,Acme Inc,Pro,Enterprise\n,Globex,Free,\n" }),
        )
        .await["importAccounts"]
        .clone();
    assert_eq!(
        result,
        json!({ "created": 2, "updated": 0, "tagsApplied": 3, "errors": [] })
    );
    let csv = "email,account_external_id,account_name\n\
               ana@x.io,acme,\n\
               bo@x.io,,Globex\n\
               cy@x.io,initech,Initech\n\
               dee@x.io,,Umbrella\n";
    let result = import_users(&app, csv).await;
    assert_eq!(result["created"], 4, "{result}");
    let account = |email: &'static str| {
        let app = &app;
        async move { user(app, email).await["account"].clone() }
    };
    assert_eq!(
        account("ana@x.io").await,
        json!({ "externalId": "acme", "name": "Acme Inc" })
    );
    assert_eq!(
        account("bo@x.io").await,
        json!({ "externalId": null, "name": "Globex" })
    );
    assert_eq!(
        account("cy@x.io").await,
        json!({ "externalId": "initech", "name": "Initech" })
    );
    assert_eq!(
        account("dee@x.io").await,
        json!({ "externalId": null, "name": "Umbrella" })
    );
    // Accounts upsert by external id (renamed), else by name.
    let result = app
        .ok(
            IMPORT_ACCOUNTS,
            json!({ "csv": "external_id,name,Plan\nacme,Acme Corp,Enterprise\n,Globex,\n" }),
        )
        .await["importAccounts"]
        .clone();
    assert_eq!(
        result,
        json!({ "created": 0, "updated": 2, "tagsApplied": 1, "errors": [] })
    );
    let accounts = app
        .ok(
            "{ accounts { totalCount nodes { externalId name tags { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(accounts["accounts"]["totalCount"], 4);
    assert_eq!(
        accounts["accounts"]["nodes"][0],
        json!({ "externalId": "acme", "name": "Acme Corp",
                "tags": [{ "name": "Enterprise" }, { "name": "Plan: Enterprise" }, { "name": "Plan: Pro" }] })
    );
}

async fn download(app: &TestApp, key: Option<&str>, path: &str) -> (u16, String, String) {
    let mut request = app.client.get(format!("{}{path}", app.address));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

async fn export_reimports_to_the_same_tags(app: TestApp) {
    let csv = "email,first_name,external_id,account_external_id,account_name,Department,tags\n\
               ana@x.io,Ana,u-1,acme,\"Acme, Inc\",Sales,\"VIP;sports/football;Note: a, b\\; c\"\n\
               bo@x.io,Bo,,,,Sales,\n\
               cy@x.io,Cy,,,,Engineering,VIP\n";
    import_users(&app, csv).await;
    // `\;` in the tags cell is a `;` inside a tag.
    assert_eq!(
        user_tags(&app, "ana@x.io").await,
        [
            "Department: Sales",
            "Note: a, b; c",
            "VIP",
            "sports/football"
        ]
    );
    let segment = app
        .ok(
            CREATE_SEGMENT,
            json!({ "input": { "name": "Sales", "subjectKind": "USER",
                    "filter": "tagged(\"Department: Sales\")" } }),
        )
        .await["createSegment"]
        .clone();
    let id = segment["id"].as_str().unwrap();
    let viewer = app.key("dashboard", "VIEWER").await;
    let (status, content_type, body) =
        download(&app, Some(&viewer), &format!("/segments/{id}/members.csv")).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/csv; charset=utf-8")
    );
    assert_eq!(
        body,
        "email,external_id,first_name,last_name,account_external_id,account_name,tags\n\
         ana@x.io,u-1,Ana,,acme,\"Acme, Inc\",\"Department: Sales;Note: a, b\\; c;VIP;sports/football\"\n\
         bo@x.io,,Bo,,,,Department: Sales\n"
    );
    let (status, content_type, ndjson) = download(
        &app,
        Some(&viewer),
        &format!("/segments/{id}/members.ndjson"),
    )
    .await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/x-ndjson")
    );
    let lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["email"], "bo@x.io");
    assert_eq!(lines[1]["tags"], json!(["Department: Sales"]));

    // Without a key, with a bad key, another workspace's segment, a bad id.
    let path = format!("/segments/{id}/members.csv");
    assert_eq!(download(&app, None, &path).await.0, 401);
    assert_eq!(download(&app, Some("tsk_nope"), &path).await.0, 401);
    let other = app.other_workspace("other").await;
    assert_eq!(download(&app, Some(&other), &path).await.0, 404);
    assert_eq!(
        download(&app, Some(&viewer), "/segments/nope/members.csv")
            .await
            .0,
        404
    );

    // The export re-imports, in another workspace, to the same people and tags.
    let result = app
        .graphql_as(Some(&other), IMPORT_USERS, json!({ "csv": body }))
        .await;
    assert_eq!(
        result["data"]["importUsers"],
        json!({ "created": 2, "updated": 0, "tagsApplied": 5, "errors": [] })
    );
    let (_, _, again) = {
        let segment = app
            .graphql_as(
                Some(&other),
                CREATE_SEGMENT,
                json!({ "input": { "name": "Sales", "subjectKind": "USER",
                        "filter": "tagged(\"Department: Sales\")" } }),
            )
            .await;
        let id = segment["data"]["createSegment"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        download(&app, Some(&other), &format!("/segments/{id}/members.csv")).await
    };
    assert_eq!(again, body);
}

async fn automation_and_segment_triggers_run_on_imported_tags(app: TestApp) {
    app.ok(
        "mutation($input: ScriptInput!) { uploadScript(input: $input) { id } }",
        json!({ "input": { "name": "sales-team", "source": r#"
fn on_tag_added(event) {
    if event.tag == "Department: Sales" && event.source == "IMPORT" {
        event.subject.add_tag("Sales Team");
    }
}
"# } }),
    )
    .await;
    app.ok(
        CREATE_SEGMENT,
        json!({ "input": { "name": "EMEA", "subjectKind": "USER",
                "filter": "tagged(\"Region: EMEA\")", "onEntry": { "add": ["Welcome EMEA"] } } }),
    )
    .await;
    app.ok(
        CREATE_SEGMENT,
        json!({ "input": { "name": "Named Bo", "subjectKind": "USER",
                "filter": "first_name = \"Bo\"", "onEntry": { "add": ["Hi Bo"] } } }),
    )
    .await;
    import_users(&app, LEARNING).await;
    let ana = eventually(&app, USER, json!({ "email": "ana@learn.io" }), |d| {
        names(&d["user"]["tags"]).len() == 5
    })
    .await;
    assert_eq!(
        names(&ana["user"]["tags"]),
        [
            "Department: Sales",
            "Job Title: Account Executive",
            "Region: EMEA",
            "Sales Team",
            "Welcome EMEA"
        ]
    );
    drained(&app).await;
    assert_eq!(
        user_tags(&app, "bo@learn.io").await,
        [
            "Department: Engineering",
            "Hi Bo",
            "Job Title: Developer",
            "Region: APAC"
        ]
    );
    // A field change by import moves people between segments too.
    import_users(&app, "email,first_name\ncy@learn.io,Bo\n").await;
    drained(&app).await;
    assert!(
        user_tags(&app, "cy@learn.io")
            .await
            .contains(&"Hi Bo".to_owned())
    );
}

#[tokio::test]
async fn the_cli_imports_csv_and_xlsx_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database(Backend::Sqlite).await.expect("SQLite");
    let url = database.url.clone();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    // The first command on a new database creates the `default` workspace.
    let (ok, _, stderr) = tagsmith(&url, &["migrate"]);
    assert!(ok, "{stderr}");

    // The workbook: numbers become text, an empty row is skipped, lines are the sheet's rows.
    let xlsx = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/learning.xlsx");
    let (ok, stdout, stderr) = tagsmith(&url, &["import", "users", xlsx, "--dry-run"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("dry run, nothing written: users from"),
        "{stdout}"
    );
    assert!(stdout.contains("would create 3"), "{stdout}");
    assert!(
        stdout.contains("line 5: invalid email \"not-an-email\""),
        "{stdout}"
    );
    let (_, exported, _) = tagsmith(&url, &["export", "users"]);
    assert_eq!(
        exported.lines().count(),
        1,
        "a dry run writes nothing: {exported}"
    );

    let (ok, stdout, stderr) = tagsmith(&url, &["import", "users", xlsx]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("created 3"), "{stdout}");
    // Progress goes to standard error (plain lines when not on a terminal).
    assert!(
        stderr.contains("importing learning.xlsx: 3 of 3 rows"),
        "{stderr}"
    );

    // `;` and tab files, in batches of two with a duplicate across batches.
    let semicolons = file(
        "people.csv",
        "email;Region;tags\nx1@x.io;EU, West;A\nx2@x.io;EU;\nx1@x.io;EU;B\nx3@x.io;;C\n",
    );
    let (ok, stdout, stderr) = tagsmith(
        &url,
        &[
            "import",
            "users",
            &semicolons,
            "--delimiter",
            ";",
            "--batch-size",
            "2",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("created 3, updated 0"), "{stdout}");
    assert!(
        stdout.contains("line 2: skipped: line 4 has the same email \"x1@x.io\""),
        "{stdout}"
    );
    let tabs = file("more.tsv", "email\tRegion\ny1@x.io\tAPAC\n");
    let (ok, stdout, _) = tagsmith(&url, &["import", "users", &tabs]);
    assert!(ok && stdout.contains("created 1"), "{stdout}");

    let (ok, stdout, _) = tagsmith(
        &url,
        &["export", "users", "--filter", "tagged(\"Region: *\")"],
    );
    assert!(ok);
    assert_eq!(
        stdout,
        "email,external_id,first_name,last_name,account_external_id,account_name,tags\n\
         ana@learn.io,,Ana,Lima,,,Department: Sales;Employee No: 1001;Job Title: Account Executive;Region: EMEA\n\
         bo@learn.io,,Bo,Chen,,,Department: Engineering;Employee No: 1002;Region: APAC\n\
         x2@x.io,,,,,,Region: EU\n\
         x1@x.io,,,,,,B;Region: EU\n\
         y1@x.io,,,,,,Region: APAC\n"
    );
    let (ok, _, stderr) = tagsmith(&url, &["export", "segment", "Nope"]);
    assert!(
        !ok && stderr.contains("no segment named \"Nope\""),
        "{stderr}"
    );
    let (ok, stdout, _) = tagsmith(&url, &["export", "tags"]);
    assert!(ok);
    assert!(stdout.starts_with("name,user_count,account_count\nB,1,0\nC,1,0\nDepartment: Engineering,1,0\nDepartment: Sales,2,0\n"), "{stdout}");

    // Export to a file, then import it back: the same tags, nothing new.
    let out = dir.path().join("export.csv");
    let (ok, _, stderr) = tagsmith(
        &url,
        &["export", "users", "--output", &out.display().to_string()],
    );
    assert!(ok && stderr.contains("exported 7 users to"), "{stderr}");
    let (ok, stdout, _) = tagsmith(&url, &["import", "users", &out.display().to_string()]);
    assert!(ok);
    assert!(
        stdout.contains("created 0, updated 7, 0 tag assignments added, 0 rows skipped"),
        "{stdout}"
    );

    // A file refused whole fails the command.
    let bad = file("bad.csv", "name\nAna\n");
    let (ok, _, stderr) = tagsmith(&url, &["import", "users", &bad]);
    assert!(
        !ok && stderr.contains("the header has no `email` column"),
        "{stderr}"
    );
    let (ok, _, stderr) = tagsmith(
        &url,
        &[
            "import",
            "users",
            &out.display().to_string(),
            "--workspace",
            "nope",
        ],
    );
    assert!(
        !ok && stderr.contains("workspace \"nope\" does not exist"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_segment_export_streams_many_pages() {
    let app = TestApp::builder().spawn_sqlite().await;
    let mut csv = String::from("email,Cohort\n");
    for n in 0..2_345 {
        csv.push_str(&format!(
            "u{n:05}@x.io,{}\n",
            if n % 2 == 0 { "Even" } else { "Odd" }
        ));
    }
    let result = import_users(&app, &csv).await;
    assert_eq!(result["created"], 2_345);
    let segment = app
        .ok(
            CREATE_SEGMENT,
            json!({ "input": { "name": "Even", "subjectKind": "USER", "filter": "tagged(\"Cohort: Even\")" } }),
        )
        .await["createSegment"]
        .clone();
    let (status, _, body) = download(
        &app,
        Some(&app.admin_key),
        &format!("/segments/{}/members.csv", segment["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 1 + 1_173);
    assert_eq!(lines[1], "u00000@x.io,,,,,,Cohort: Even");
    assert_eq!(lines[1_173], "u02344@x.io,,,,,,Cohort: Even");
}

#[tokio::test]
async fn an_import_larger_than_the_body_limit_is_refused() {
    let app = TestApp::builder().spawn_sqlite().await;
    let mut csv = String::from("email\n");
    while csv.len() <= 1024 * 1024 {
        csv.push_str(&format!("someone{}@example.com\n", csv.len()));
    }
    let body = json!({ "query": IMPORT_USERS, "variables": { "csv": csv } }).to_string();
    let (status, text) = app.post_raw("application/json", body).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("LIMIT_EXCEEDED"), "{text}");
    assert_eq!(app.user_count().await, 0);
}

/// SQLite's writers leave checkpoints to a task beside them: what an
/// import commits reaches the database file soon after, although the WAL
/// stays far below the 10,000 pages at which a writer would copy it back
/// itself.
#[tokio::test]
async fn sqlite_commits_are_checkpointed_beside_the_writers() {
    let app = TestApp::builder().spawn_sqlite().await;
    let file = std::path::PathBuf::from(app.database_url.trim_start_matches("sqlite://"));
    let size = || std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let before = size();
    let mut csv = String::from("email,first_name,last_name,tags\n");
    for i in 0..3_000 {
        csv.push_str(&format!(
            "person{i}@example.com,Person,Number {i},VIP;Plan: Pro\n"
        ));
    }
    let result = import_users(&app, &csv).await;
    assert_eq!(result["created"], 3_000, "{result}");
    let wal = std::fs::metadata(file.with_extension("db-wal")).map(|m| m.len());
    let wal = wal.expect("the WAL exists");
    assert!(wal < 10_000 * 4_096, "{wal} bytes of WAL");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() < before + 1_000_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file is {} bytes, {before} before the import, the WAL {wal}",
            size()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A multipart form with one `file` part, as a browser sends it.
fn form(file_name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "tagsmith-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(
    app: &TestApp,
    path: &str,
    key: Option<&str>,
    file_name: &str,
    bytes: &[u8],
) -> (u16, Value) {
    let (content_type, body) = form(file_name, bytes);
    let mut request = app
        .client
        .post(format!("{}{path}", app.address))
        .header("Content-Type", content_type)
        .body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

#[tokio::test]
async fn an_xlsx_upload_over_http_imports_its_users_with_their_tags() {
    let app = TestApp::builder().spawn_sqlite().await;
    let xlsx = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/learning.xlsx"
    ))
    .unwrap();
    let admin = app.admin_key.clone();

    // A dry run: the counts and the bad line, nothing written.
    let (status, body) = upload(
        &app,
        "/import/users?dryRun=true",
        Some(&admin),
        "learning.xlsx",
        &xlsx,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dryRun"], true);
    assert_eq!(body["created"], 3, "{body}");
    assert_eq!(body["tagsApplied"], 0, "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["line"], 5);
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("not-an-email"),
        "{body}"
    );
    let none = app.ok("{ users { totalCount } }", json!({})).await;
    assert_eq!(none["users"]["totalCount"], 0, "a dry run wrote");

    // The import: the same users, with their `Column: value` tags.
    let (status, body) = upload(&app, "/import/users", Some(&admin), "learning.xlsx", &xlsx).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dryRun"], false);
    assert_eq!(body["created"], 3, "{body}");
    let users = app
        .ok(
            "{ users { nodes { email tags { name key value } } } }",
            json!({}),
        )
        .await;
    let nodes = users["users"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{users}");
    let applied: usize = nodes
        .iter()
        .map(|u| u["tags"].as_array().unwrap().len())
        .sum();
    assert_eq!(json!(applied), body["tagsApplied"], "{users}");
    for user in nodes {
        let tags = user["tags"].as_array().unwrap();
        assert!(!tags.is_empty(), "{user}");
        assert!(
            tags.iter()
                .all(|t| t["key"].is_string() && t["value"].is_string()),
            "{user}"
        );
    }

    // The same path takes CSV.
    let (status, body) = upload(
        &app,
        "/import/users",
        Some(&admin),
        "more.csv",
        b"email,Team\nzed@learn.io,Blue\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["created"], 1, "{body}");
    assert_eq!(body["tagsApplied"], 1, "{body}");

    // DEVELOPER and up; a key is needed; only users and accounts.
    let viewer = app.key("reader", "VIEWER").await;
    let (status, body) = upload(
        &app,
        "/import/users",
        Some(&viewer),
        "more.csv",
        b"email\nx@y.io\n",
    )
    .await;
    assert_eq!((status, error_code(&body)), (403, "FORBIDDEN"), "{body}");
    let (status, body) = upload(&app, "/import/users", None, "more.csv", b"email\nx@y.io\n").await;
    assert_eq!(
        (status, error_code(&body)),
        (401, "UNAUTHENTICATED"),
        "{body}"
    );
    let (status, body) = upload(
        &app,
        "/import/keys",
        Some(&admin),
        "more.csv",
        b"email\nx@y.io\n",
    )
    .await;
    assert_eq!((status, error_code(&body)), (404, "NOT_FOUND"), "{body}");
    // A file without an email column is refused whole.
    let (status, body) = upload(
        &app,
        "/import/users",
        Some(&admin),
        "more.csv",
        b"name\nx\n",
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "BAD_USER_INPUT"),
        "{body}"
    );
}

#[tokio::test]
async fn an_upload_over_the_body_limit_is_refused() {
    let app = TestApp::builder()
        .server(|s| s.max_body_bytes = 1024)
        .spawn_sqlite()
        .await;
    let big = format!("email\n{}", "someone@example.com\n".repeat(200));
    let (status, body) = upload(
        &app,
        "/import/users",
        Some(&app.admin_key.clone()),
        "big.csv",
        big.as_bytes(),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (413, "LIMIT_EXCEEDED"),
        "{body}"
    );
    let none = app.ok("{ users { totalCount } }", json!({})).await;
    assert_eq!(none["users"]["totalCount"], 0);
}

#[tokio::test]
async fn an_upload_not_sent_in_time_is_answered_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::builder()
        .server(|s| s.body_timeout_ms = 500)
        .spawn_sqlite()
        .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /import/users HTTP/1.1\r\nHost: tagsmith\r\nAuthorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\nemail\n",
        app.admin_key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut response),
    )
    .await;
    assert!(read.is_ok(), "the upload stayed open");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    let body: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(error_code(&body), "LIMIT_EXCEEDED", "{body}");
}
