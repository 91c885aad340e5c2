//! Hand-made edge cases: each filter's expected subjects are written down
//! (pinning the evaluator to the documented semantics), and the SQL must
//! select the same on every backend, in both workspaces.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::json;

use super::db::Db;
use super::{Dataset, Row, check, runtime};
use crate::segments::filter::{Filter, SubjectKind, evaluate};
use crate::segments::sql::{Backend, SqlContext, select_ids};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap()
}

fn days_ago(days: i64) -> DateTime<Utc> {
    now() - TimeDelta::days(days)
}

fn tags(names: &[(&str, bool)]) -> Vec<(String, bool)> {
    names
        .iter()
        .map(|(n, live)| (n.to_string(), *live))
        .collect()
}

fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    value.as_object().cloned().unwrap()
}

fn dataset() -> Dataset {
    let users = vec![
        Row {
            main: "ann@acme.io".into(),
            first_name: Some("Ann".into()),
            account: Some(0),
            attributes: object(json!({
                "plan": "pro", "seats": 12, "trial": false, "nothing": null, "list": [1],
                "we\"ird": "q", "back\\slash": 1, "new\nline": true,
                "big": 9007199254740993u64, "ratio": 0.5, "pct": "50%_off\\",
                "": "empty name", "$.x": "path", "a.b": 2, "renewal": "2026-03-14"
            })),
            created_at: days_ago(100),
            tags: tags(&[
                ("VIP", true),
                ("a/b", true),
                ("Key: v", true),
                ("Gone", false),
            ]),
            events: vec![
                ("login".into(), days_ago(1)),
                ("login".into(), days_ago(2)),
                ("login".into(), days_ago(10)),
                ("email_opened".into(), now() + TimeDelta::hours(1)),
            ],
            ..Row::default()
        },
        Row {
            main: "bob@x.io".into(),
            last_name: Some("Lee".into()),
            external_id: Some("u-2".into()),
            seen: Some(days_ago(40)),
            attributes: object(json!({
                "plan": 3, "seats": "12", "trial": "false", "pct": "50xy_off", "ratio": 1e300,
                "renewal": "2026-03-15"
            })),
            created_at: days_ago(50),
            tags: tags(&[("vip", true), ("a", true), ("Gone", true), ("Key:v", true)]),
            ..Row::default()
        },
        Row {
            main: "carol%_\\@x.io".into(),
            first_name: Some("é".into()),
            seen: Some(days_ago(1)),
            attributes: object(json!({"seats": 12.5, "plan": "PRO", "renewal": "2026-02-29"})),
            created_at: days_ago(1),
            tags: tags(&[("a/b/c", false), ("Key: a: b", true), ("a : v", true)]),
            events: vec![("login".into(), days_ago(8))],
            ..Row::default()
        },
    ];
    let accounts = vec![
        Row {
            main: "Acme 50%_off".into(),
            attributes: object(json!({"tier": "gold"})),
            created_at: days_ago(400),
            tags: tags(&[("Region: North", true)]),
            ..Row::default()
        },
        Row {
            main: "Other".into(),
            external_id: Some("acc-2".into()),
            created_at: days_ago(10),
            ..Row::default()
        },
    ];
    let parse = |text: &str, kind| Filter::parse(text, kind).unwrap();
    Dataset {
        now: now(),
        accounts,
        users,
        segments: vec![
            parse(r#"tagged("VIP")"#, SubjectKind::User),
            parse(r#"any_user(tagged("a/*"))"#, SubjectKind::Account),
            parse(
                r#"in_segment("Trial \"2024\"") or email contains "bob""#,
                SubjectKind::User,
            ),
        ],
    }
}

/// (kind, filter, expected indexes of users or accounts).
const CASES: &[(SubjectKind, &str, &[usize])] = &[
    // nulls under `not`, `!=` on null
    (SubjectKind::User, "not (last_seen_at < now - 30d)", &[0, 2]),
    (SubjectKind::User, "last_seen_at < now - 30d", &[1]),
    (SubjectKind::User, r#"first_name != "Ann""#, &[2]),
    (SubjectKind::User, r#"not first_name = "Ann""#, &[1, 2]),
    (SubjectKind::User, r#"not (first_name != "Ann")"#, &[0, 1]),
    (SubjectKind::User, "external_id is null", &[0, 2]),
    (
        SubjectKind::User,
        r#"not external_id starts_with "u""#,
        &[0, 2],
    ),
    // byte order, case-sensitive
    (SubjectKind::User, r#"email < "b""#, &[0]),
    (SubjectKind::User, r#"email > "B""#, &[0, 1, 2]),
    (SubjectKind::User, r#"first_name < "a""#, &[0]),
    (SubjectKind::User, r#"first_name >= "z""#, &[2]),
    // attributes of the wrong type
    (SubjectKind::User, "attr.seats > 10", &[0, 2]),
    (SubjectKind::User, "attr.seats = 12", &[0]),
    (SubjectKind::User, "attr.seats != 12", &[2]),
    (SubjectKind::User, "not attr.seats = 12", &[1, 2]),
    (SubjectKind::User, r#"attr.seats = "12""#, &[1]),
    (SubjectKind::User, "attr.trial = false", &[0]),
    (SubjectKind::User, "attr.trial != true", &[0]),
    (SubjectKind::User, r#"attr.trial = "false""#, &[1]),
    (SubjectKind::User, "attr.plan > 1", &[1]),
    (SubjectKind::User, r#"attr.plan >= "a""#, &[0]),
    (SubjectKind::User, r#"attr.plan contains "R""#, &[0, 2]),
    (SubjectKind::User, "attr.nothing is null", &[0, 1, 2]),
    (SubjectKind::User, "attr.list is null", &[1, 2]),
    (SubjectKind::User, "attr.list is not null", &[0]),
    (SubjectKind::User, "attr.list != 1", &[]),
    (SubjectKind::User, "attr.big = 9007199254740992", &[0]),
    (SubjectKind::User, "attr.ratio < 1", &[0]),
    (SubjectKind::User, "attr.ratio >= 1e300", &[1]),
    (SubjectKind::User, "attr.ratio = -0.0", &[]),
    // quotes, backslashes, newlines, dots and dollars in attribute names
    (SubjectKind::User, r#"attr."we\"ird" = "q""#, &[0]),
    (SubjectKind::User, r#"attr."back\\slash" = 1"#, &[0]),
    (SubjectKind::User, r#"attr."new\nline" = true"#, &[0]),
    (SubjectKind::User, r#"attr."" starts_with "EMPTY""#, &[0]),
    (SubjectKind::User, r#"attr."$.x" = "path""#, &[0]),
    (SubjectKind::User, r#"attr."a.b" = 2"#, &[0]),
    (SubjectKind::User, r#"attr.a is not null"#, &[]),
    // LIKE metacharacters in needles
    (SubjectKind::User, r#"attr.pct contains "50%_off\\""#, &[0]),
    (SubjectKind::User, r#"attr.pct starts_with "50%""#, &[0]),
    (SubjectKind::User, r#"attr.pct contains "0_""#, &[]),
    (SubjectKind::User, r#"email contains "%""#, &[2]),
    (SubjectKind::User, r#"email contains "_""#, &[2]),
    (SubjectKind::User, r#"email contains "\\""#, &[2]),
    (SubjectKind::User, r#"email starts_with "CAROL%_\\@""#, &[2]),
    (SubjectKind::User, r#"email contains """#, &[0, 1, 2]),
    (SubjectKind::User, r#"first_name contains """#, &[0, 2]),
    // tags: deleted tags, hierarchies, key:value, near misses
    (SubjectKind::User, r#"tagged("Gone")"#, &[1]),
    (SubjectKind::User, r#"tagged("a/*")"#, &[0]),
    (SubjectKind::User, r#"tagged("a/b/*")"#, &[]),
    (SubjectKind::User, r#"tagged("a")"#, &[1]),
    (SubjectKind::User, r#"tagged("Key: *")"#, &[0, 2]),
    (SubjectKind::User, r#"tagged("a : *")"#, &[2]),
    (SubjectKind::User, r#"tagged("Key: a: *")"#, &[]),
    (SubjectKind::User, r#"tagged("VIP")"#, &[0]),
    (SubjectKind::User, r#"tagged("vip")"#, &[1]),
    (SubjectKind::User, r#"tagged_any("VIP", "vip")"#, &[0, 1]),
    (
        SubjectKind::User,
        r#"tagged_all("VIP", "a/*", "Key: *")"#,
        &[0],
    ),
    (SubjectKind::User, r#"tagged_all("VIP", "vip")"#, &[]),
    (SubjectKind::User, r#"not tagged("Gone")"#, &[0, 2]),
    // events and active days
    (SubjectKind::User, r#"events("login", 7d) >= 2"#, &[0]),
    (SubjectKind::User, r#"events("login", 7d) = 0"#, &[1, 2]),
    (SubjectKind::User, r#"events("login", 8d) = 1"#, &[2]),
    (
        SubjectKind::User,
        r#"events("email_opened", 0m) >= 1"#,
        &[0],
    ),
    (SubjectKind::User, r#"events("login", 7d) < 3"#, &[0, 1, 2]),
    (SubjectKind::User, r#"active_days(30d) >= 2"#, &[0]),
    (SubjectKind::User, r#"active_days(30d) = 1"#, &[2]),
    // relations and segments
    (SubjectKind::User, r#"account.tagged("Region: *")"#, &[0]),
    (
        SubjectKind::User,
        r#"not account.name contains "acme""#,
        &[1, 2],
    ),
    (SubjectKind::User, r#"account.any_user(tagged("vip"))"#, &[]),
    (SubjectKind::User, r#"account.in_segment("At risk")"#, &[0]),
    (SubjectKind::User, r#"in_segment("Champions")"#, &[0]),
    (SubjectKind::User, r#"in_segment("Trial \"2024\"")"#, &[1]),
    (SubjectKind::User, r#"in_segment("At risk")"#, &[]),
    (
        SubjectKind::User,
        r#"not in_segment("Nowhere")"#,
        &[0, 1, 2],
    ),
    (SubjectKind::Account, r#"any_user(tagged("VIP"))"#, &[0]),
    (
        SubjectKind::Account,
        r#"not any_user(email contains "")"#,
        &[1],
    ),
    (
        SubjectKind::Account,
        r#"any_user(account.name = "Acme 50%_off")"#,
        &[0],
    ),
    (
        SubjectKind::Account,
        r#"any_user(account.external_id is null)"#,
        &[0],
    ),
    (SubjectKind::Account, r#"name contains "50%_""#, &[0]),
    (SubjectKind::Account, r#"in_segment("At risk")"#, &[0]),
    (
        SubjectKind::Account,
        r#"any_user(in_segment("Champions"))"#,
        &[0],
    ),
    // dates
    (SubjectKind::User, r#"created_at >= "2026-03-14""#, &[2]),
    (SubjectKind::User, "created_at = now - 100d", &[0]),
    (SubjectKind::User, "created_at != now - 100d", &[1, 2]),
    (SubjectKind::Account, "last_activity_at is null", &[0, 1]),
    // attributes holding dates ("YYYY-MM-DD", midnight UTC) against now;
    // 2026-02-29 is no date
    (SubjectKind::User, "attr.renewal < now", &[0, 1]),
    (SubjectKind::User, "attr.renewal <= now - 36h", &[0]),
    (SubjectKind::User, "attr.renewal >= now - 12h", &[1]),
    (SubjectKind::User, "attr.renewal = now - 12h", &[1]),
    (SubjectKind::User, "attr.renewal > now - 2d", &[0, 1]),
    (SubjectKind::User, "attr.renewal != now", &[0, 1]),
    (SubjectKind::User, "not attr.renewal != now", &[2]),
    (SubjectKind::User, "attr.plan < now + 1d", &[]),
    // NUL characters (PostgreSQL text cannot hold one)
    (SubjectKind::User, "email < \"b\0x\"", &[0]),
    (SubjectKind::User, "email != \"a\0\"", &[0, 1, 2]),
    (SubjectKind::User, "email contains \"\0\"", &[]),
    (SubjectKind::User, "attr.\"a\0\" is null", &[0, 1, 2]),
    (SubjectKind::User, "events(\"lo\0\", 7d) = 0", &[0, 1, 2]),
    (SubjectKind::User, "tagged(\"V\0\")", &[]),
];

fn run(backend: Backend) -> usize {
    let rt = runtime();
    let Some(db) = rt.block_on(Db::open(backend)) else {
        eprintln!("{backend:?}: skipped (TAGSMITH_TEST_DATABASE_URL is not set)");
        return 0;
    };
    let data = dataset();
    let lookup = |name: &str| data.lookup(name);
    let mut failures = Vec::new();
    rt.block_on(async {
        if let Err(error) = db.load(&data).await {
            failures.push(format!("load: {error}"));
            return;
        }
        for (kind, text, expected) in CASES {
            let filter = match Filter::parse(text, *kind) {
                Ok(filter) => filter,
                Err(errors) => {
                    failures.push(format!("{text}: {errors:?}"));
                    continue;
                }
            };
            let evaluated: Vec<usize> = data
                .subjects(*kind)
                .iter()
                .enumerate()
                .filter(|(_, s)| evaluate(&filter, s, data.now, &lookup))
                .map(|(i, _)| i)
                .collect();
            if evaluated != *expected {
                failures.push(format!(
                    "evaluator: {text}: {evaluated:?}, expected {expected:?}"
                ));
            }
            if let Err(error) = check(&db, &data, &filter).await {
                failures.push(error.to_string());
            }
            // another workspace's rows are never selected
            let ctx = SqlContext {
                workspace_id: 3,
                now: data.now,
                backend,
                segments: &lookup,
            };
            match db.ids(&select_ids(&filter, &ctx)).await {
                Ok(none) if none.is_empty() => {}
                Ok(some) => failures.push(format!("workspace 3: {text}: {some:?}")),
                Err(error) => failures.push(format!("workspace 3: {text}: {error}")),
            }
        }
    });
    rt.block_on(db.close());
    assert!(failures.is_empty(), "{backend:?}:\n{}", failures.join("\n"));
    CASES.len()
}

#[test]
fn edge_cases_on_sqlite() {
    let n = run(Backend::Sqlite);
    eprintln!("Sqlite: {n} edge cases agree");
}

#[test]
fn edge_cases_on_postgres() {
    let n = run(Backend::Postgres);
    eprintln!("Postgres: {n} edge cases agree");
}
