//! The command line as a new user meets it: the first command on a new
//! database sets it up, PostgreSQL's notices stay out of the log, and every
//! example in README.md and in `--help` runs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, fresh_database, tagsmith, tagsmith_in};

const PEOPLE: &str = "email,first_name,Department,tags\n\
                      ana@acme.com,Ana,Sales,VIP;Region: EMEA\n\
                      bo@acme.com,Bo,Support,\n";

/// The `tagsmith ...` lines of README.md's `sh` blocks, comments removed.
fn readme_commands() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if in_sh && line.starts_with("tagsmith ") {
            let command = match line.find(" # ") {
                Some(comment) => &line[..comment],
                None => line,
            };
            commands.push(command.trim().to_owned());
        }
    }
    commands
}

#[tokio::test]
async fn the_first_command_on_a_new_database_creates_the_default_workspace() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(database) = fresh_database(backend).await else {
            eprintln!("skipped on PostgreSQL: TAGSMITH_TEST_DATABASE_URL is not set");
            continue;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("people.csv"), PEOPLE).unwrap();
        // No `migrate`, no `workspace create`: the import is the first command.
        let (ok, stdout, stderr) = tagsmith_in(
            Some(dir.path()),
            &database.url,
            &["import", "users", "people.csv"],
            &[("TAGSMITH_LOG", Some("warn"))],
        );
        assert!(ok, "{backend:?}: {stderr}");
        assert!(stdout.contains("created 2"), "{backend:?}: {stdout}");
        assert!(
            stderr.contains("created workspace \"default\" and its ADMIN key")
                && stderr.contains("tsk_"),
            "{backend:?}: the first command prints the ADMIN key: {stderr}"
        );
        assert!(
            !stdout.contains("tsk_"),
            "the key stays out of a command's own output"
        );
        // Once only: the next command prints no key, and the export is clean CSV.
        let (ok, stdout, stderr) = tagsmith(&database.url, &["export", "users"]);
        assert!(ok, "{stderr}");
        assert!(!stderr.contains("tsk_"), "{backend:?}: {stderr}");
        assert!(stdout.starts_with("email,"), "{stdout}");
        assert_eq!(stdout.lines().count(), 3, "{stdout}");
    }
}

#[tokio::test]
async fn postgresql_notices_stay_out_of_the_log() {
    let Some(database) = fresh_database(Backend::Postgres).await else {
        eprintln!("skipped: TAGSMITH_TEST_DATABASE_URL is not set");
        return;
    };
    // Neither variable set (the default filter), RUST_LOG=warn, and TAGSMITH_LOG=info.
    let settings: [&[(&str, Option<&str>)]; 3] = [
        &[("TAGSMITH_LOG", None), ("RUST_LOG", None)],
        &[("TAGSMITH_LOG", None), ("RUST_LOG", Some("warn"))],
        &[("TAGSMITH_LOG", Some("info")), ("RUST_LOG", None)],
    ];
    for env in settings {
        // Twice: the second run meets every table already there.
        for _ in 0..2 {
            let (ok, _, stderr) = tagsmith_in(None, &database.url, &["migrate"], env);
            assert!(ok, "{stderr}");
            assert!(
                !stderr.contains("already exists") && !stderr.contains("notice"),
                "{env:?}: {stderr}"
            );
        }
    }
    // RUST_LOG is honoured when TAGSMITH_LOG is not set: at `error`, a
    // migrate prints nothing but the new database's key (already printed above).
    let (ok, _, stderr) = tagsmith_in(
        None,
        &database.url,
        &["migrate"],
        &[("TAGSMITH_LOG", None), ("RUST_LOG", Some("error"))],
    );
    assert!(ok);
    assert_eq!(stderr, "");
}

/// Runs `tagsmith serve ARGS` with `--bind` moved to a free port, until it says it listens.
fn serve_example(url: &str, args: &[String]) -> String {
    let mut args = args.to_vec();
    if let Some(at) = args.iter().position(|a| a == "--bind") {
        args[at + 1] = "127.0.0.1:0".into();
    } else {
        args.extend(["--bind".into(), "127.0.0.1:0".into()]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(&args)
        .args(["--database-url", url])
        .env("TAGSMITH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tagsmith serve");
    let stdout = child.stdout.take().unwrap();
    let said = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|line| line.contains("listening on"))
        .unwrap_or_default();
    child.kill().unwrap();
    child.wait().unwrap();
    said
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_in_the_readme_runs() {
    let app = TestApp::builder().spawn_sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("people.csv", PEOPLE);
    write(
        "export.csv",
        "email;first_name;tags\ncy@globex.com;Cy;Department: Sales\n",
    );
    write("companies.csv", "external_id,name,Tier\nacme,Acme,Gold\n");
    app.ok(
        "mutation($input: SegmentInput!) { createSegment(input: $input) { id } }",
        json!({ "input": {
            "name": "Sales EMEA",
            "subjectKind": "USER",
            "filter": "tagged(\"Department: Sales\") and tagged(\"Region: EMEA\")"
        } }),
    )
    .await;

    let commands = readme_commands();
    assert!(commands.len() >= 8, "README examples: {commands:?}");
    for command in &commands {
        let args = shlex::split(command).unwrap_or_else(|| panic!("cannot split {command}"));
        let args = &args[1..];
        if args[0] == "serve" {
            let said = serve_example(&app.database_url, args);
            assert!(
                said.contains("listening on http://127.0.0.1:"),
                "{command}: {said:?}"
            );
            continue;
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, stdout, stderr) = tagsmith_in(
            Some(dir.path()),
            &app.database_url,
            &refs,
            &[("TAGSMITH_LOG", Some("warn"))],
        );
        assert!(ok, "README example failed: {command}\n{stdout}{stderr}");
        if command.contains("--format ndjson") {
            let emails: Vec<Value> = stdout
                .lines()
                .map(|line| serde_json::from_str::<Value>(line).unwrap()["email"].clone())
                .collect();
            // Every user with a Department tag: Sales and Support from people.csv, Cy from export.csv.
            let expected = [
                json!("ana@acme.com"),
                json!("bo@acme.com"),
                json!("cy@globex.com"),
            ];
            assert_eq!(emails, expected, "{command}");
        }
    }
    // The segment export wrote its file: Ana, the one Sales person in EMEA.
    let sales = std::fs::read_to_string(dir.path().join("sales.csv")).unwrap();
    assert_eq!(sales.lines().count(), 2, "{sales}");
    assert!(sales.contains("ana@acme.com"), "{sales}");
}

/// The span of `help` between backquotes that starts with `start`.
fn quoted_example<'a>(help: &'a str, start: &str) -> Option<&'a str> {
    help.split('`')
        .skip(1)
        .step_by(2)
        .find(|span| span.starts_with(start))
}

#[tokio::test]
async fn the_filter_example_in_export_help_runs() {
    let app = TestApp::builder().spawn_sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("people.csv"), PEOPLE).unwrap();
    let (ok, _, stderr) = tagsmith_in(
        Some(dir.path()),
        &app.database_url,
        &["import", "users", "people.csv"],
        &[],
    );
    assert!(ok, "{stderr}");
    for command in [["export", "users"], ["export", "accounts"]] {
        let (_, help, _) = tagsmith(&app.database_url, &[command[0], command[1], "--help"]);
        let Some(example) = quoted_example(&help, "--filter") else {
            continue;
        };
        let mut args: Vec<String> = command.iter().map(|a| (*a).to_owned()).collect();
        args.extend(shlex::split(example).expect("a shell example"));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, stdout, stderr) = tagsmith(&app.database_url, &refs);
        assert!(
            ok,
            "the example {example:?} in `{}` fails: {stderr}",
            command.join(" ")
        );
        if command[1] == "users" {
            // `tagged("VIP")`: Ana only.
            assert_eq!(stdout.lines().count(), 2, "{stdout}");
            assert!(stdout.contains("ana@acme.com"), "{stdout}");
        }
    }
    let (_, help, _) = tagsmith(&app.database_url, &["export", "users", "--help"]);
    assert!(
        quoted_example(&help, "--filter").is_some(),
        "export users --help shows a filter example: {help}"
    );
}
