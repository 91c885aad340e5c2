//! `segment-count`, `segment-reevaluation`, `segment-latency` and
//! `segment-preview`, with what they share.

use std::time::{Duration, Instant};

use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::json;

use crate::{
    Args,
    automation::wait_drained,
    client::{Sample, cause_to_answer, post, probes_under_load},
    writes::add_tags_named,
};

/// The filter of `segment-count`: three clauses, one per kind of data.
pub(crate) const COUNT_FILTER: &str =
    r#"tagged("Plan: Pro") and last_seen_at > now - 30d and events("login", 30d) >= 1"#;

/// What a person would write for [`COUNT_FILTER`], evaluated at `now`.
pub(crate) fn hand_written_count(
    backend: DbBackend,
    now: chrono::DateTime<chrono::Utc>,
) -> Statement {
    let since = now - chrono::TimeDelta::days(30);
    let sql = "SELECT COUNT(*) FROM users u \
               WHERE u.workspace_id = 1 \
               AND EXISTS (SELECT 1 FROM tag_assignments ta JOIN tags t ON t.id = ta.tag_id \
                           WHERE ta.subject_kind = 'USER' AND ta.subject_id = u.id \
                           AND t.workspace_id = 1 AND t.deleted_at IS NULL AND t.name = 'Plan: Pro') \
               AND u.last_seen_at > ? \
               AND EXISTS (SELECT 1 FROM events e \
                           WHERE e.subject_kind = 'USER' AND e.subject_id = u.id \
                           AND e.name = 'login' AND e.at >= ?)";
    let sql = match backend {
        DbBackend::Postgres => sql.replacen('?', "$1", 1).replacen('?', "$2", 1),
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, [since.into(), since.into()])
}

/// The statement the server runs for `memberCount` of [`COUNT_FILTER`]
/// (`segments::store::count` around the compiler's `select_ids`).
pub(crate) fn compiled_count(
    backend: DbBackend,
    select: sea_orm::sea_query::SelectStatement,
) -> Statement {
    let query = Query::select()
        .expr(Expr::cust("COUNT(*)"))
        .from_subquery(select, sea_orm::sea_query::Alias::new("m"))
        .to_owned();
    backend.build(&query)
}

/// The query plan of a statement: SQLite's `EXPLAIN QUERY PLAN` as a tree,
/// PostgreSQL's `EXPLAIN (ANALYZE, BUFFERS)`.
pub(crate) async fn explain(conn: &DatabaseConnection, statement: &Statement) -> String {
    let backend = conn.get_database_backend();
    let prefix = match backend {
        DbBackend::Postgres => "EXPLAIN (ANALYZE, BUFFERS) ",
        _ => "EXPLAIN QUERY PLAN ",
    };
    let explained = Statement {
        sql: format!("{prefix}{}", statement.sql),
        ..statement.clone()
    };
    let rows = conn.query_all_raw(explained).await.expect("explain");
    let mut lines = Vec::new();
    match backend {
        DbBackend::Postgres => {
            for row in rows {
                lines.push(row.try_get_by_index::<String>(0).expect("plan line"));
            }
        }
        _ => {
            // (id, parent, notused, detail): indent by depth.
            let mut depth: std::collections::HashMap<i64, usize> = Default::default();
            for row in rows {
                let id: i64 = row.try_get_by_index(0).expect("id");
                let parent: i64 = row.try_get_by_index(1).expect("parent");
                let detail: String = row.try_get_by_index(3).expect("detail");
                let level = depth.get(&parent).map_or(0, |d| d + 1);
                depth.insert(id, level);
                lines.push(format!("{}{detail}", "  ".repeat(level)));
            }
        }
    }
    lines.join("\n")
}

/// The statement's SQL with its values listed after it.
pub(crate) fn shown(statement: &Statement) -> String {
    let values = statement
        .values
        .as_ref()
        .map(|v| {
            v.0.iter()
                .map(|value| format!("{value:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    format!("{}\n-- values: {values}", statement.sql)
}

/// `previewSegment` of [`COUNT_FILTER`] and `previewSegmentChange` of a
/// segment with that filter to another (`tagged("Seed 3")`, a third of the
/// users), through HTTP, `args.runs` times each (after one warm-up).
pub(crate) async fn segment_preview(
    conn: &DatabaseConnection,
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    args: &Args,
) -> Vec<Sample> {
    wait_drained(conn).await;
    let id = create_segment(client, endpoint, key, "Preview me", COUNT_FILTER, &[]).await;
    let preview = json!({
        "query": "query($f: String!) { previewSegment(subjectKind: USER, filter: $f) { count } }",
        "variables": { "f": COUNT_FILTER },
    });
    let change = json!({
        "query": "query($id: ID!, $f: String!) { previewSegmentChange(id: $id, filter: $f) {
            entering exiting staying enteringSample { __typename } } }",
        "variables": { "id": id, "f": "tagged(\"Seed 3\")" },
    });
    let mut rows = Vec::new();
    for (name, body) in [
        ("previewSegment of a 3-clause filter", preview),
        ("previewSegmentChange to tagged(\"Seed 3\")", change),
    ] {
        let mut latencies = Vec::new();
        let mut answer = serde_json::Value::Null;
        for run in 0..=args.runs {
            let t = Instant::now();
            answer = post(client, endpoint, key, body.clone()).await;
            if run > 0 {
                latencies.push(t.elapsed());
            }
        }
        assert!(answer.get("errors").is_none(), "{answer}");
        let data = &answer["data"];
        let found = match data.get("previewSegment") {
            Some(preview) => format!("{} match", preview["count"]),
            None => {
                let change = &data["previewSegmentChange"];
                format!(
                    "{} enter, {} leave, {} stay",
                    change["entering"], change["exiting"], change["staying"]
                )
            }
        };
        rows.push(Sample {
            name: format!("segments: {name} over {} users (HTTP): {found}", args.users),
            count: latencies.len(),
            elapsed: latencies.iter().sum(),
            latencies,
        });
    }
    delete_segment(client, endpoint, key, &id).await;
    rows
}

pub(crate) async fn create_segment(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    name: &str,
    filter: &str,
    on_entry: &[String],
) -> serde_json::Value {
    let query = "mutation($input: SegmentInput!) { createSegment(input: $input) { id } }";
    let input = json!({
        "name": name,
        "subjectKind": "USER",
        "filter": filter,
        "onEntry": { "add": on_entry },
    });
    let body = post(
        client,
        endpoint,
        key,
        json!({ "query": query, "variables": { "input": input } }),
    )
    .await;
    body["data"]["createSegment"]["id"].clone()
}

pub(crate) async fn delete_segment(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    id: &serde_json::Value,
) {
    let query = "mutation($id: ID!) { deleteSegment(id: $id) }";
    post(
        client,
        endpoint,
        key,
        json!({ "query": query, "variables": { "id": id } }),
    )
    .await;
}

/// `memberCount` of [`COUNT_FILTER`] through HTTP, the same statement run
/// directly, and a hand-written count, `args.runs` times each after one
/// warm-up, interleaved in rotating order; notes the ratios, the SQL and the
/// plans.
pub(crate) async fn segment_count(
    conn: &DatabaseConnection,
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    args: &Args,
) -> (Vec<Sample>, Vec<String>) {
    use tagsmith::segments::filter::{Filter, SubjectKind as FilterKind};
    use tagsmith::segments::membership::{Segments, members_query};
    use tagsmith::segments::store;

    wait_drained(conn).await;
    let backend = conn.get_database_backend();
    let id = create_segment(client, endpoint, key, "Active Pro", COUNT_FILTER, &[]).await;
    let filter = Filter::parse(COUNT_FILTER, FilterKind::User).expect("the filter parses");
    let segments = Segments::load(conn, 1).await.expect("segments");
    let query = "query($id: ID!) { segment(id: $id) { memberCount } }";
    let mut graphql = Vec::new();
    let mut compiled = Vec::new();
    let mut hand = Vec::new();
    let mut found = (0, 0, 0);
    let started = Instant::now();
    for run in 0..=args.runs {
        // Each goes first, second and third in turn: the one after the
        // hand-written scan finds a colder cache.
        let mut via_api = 0;
        let mut direct = 0;
        let mut by_hand = 0;
        let (mut through_http, mut compiled_time, mut hand_time) = Default::default();
        let now = chrono::Utc::now();
        for step in 0..3 {
            let t = Instant::now();
            match (run + step) % 3 {
                0 => {
                    let body = post(
                        client,
                        endpoint,
                        key,
                        json!({ "query": query, "variables": { "id": id } }),
                    )
                    .await;
                    via_api = body["data"]["segment"]["memberCount"]
                        .as_i64()
                        .expect("memberCount");
                    through_http = t.elapsed();
                }
                1 => {
                    let select = members_query(backend, 1, &filter, &segments, now);
                    direct = store::count(conn, select).await.expect("count") as i64;
                    compiled_time = t.elapsed();
                }
                _ => {
                    by_hand = conn
                        .query_one_raw(hand_written_count(backend, now))
                        .await
                        .expect("hand-written count")
                        .expect("a row")
                        .try_get_by_index(0)
                        .expect("count");
                    hand_time = t.elapsed();
                }
            }
        }
        assert_eq!(
            direct, by_hand,
            "the compiled and hand-written counts agree"
        );
        // The API evaluates at its own clock's now, a little later: a user
        // may have crossed the 30-day edge meanwhile.
        assert!((via_api - by_hand).abs() <= 2, "{via_api} vs {by_hand}");
        found = (via_api, direct, by_hand);
        if run > 0 {
            graphql.push(through_http);
            compiled.push(compiled_time);
            hand.push(hand_time);
        }
    }
    let elapsed = started.elapsed();
    let sample = |name: String, latencies: Vec<Duration>| Sample {
        name,
        count: latencies.len(),
        elapsed: latencies.iter().sum(),
        latencies,
    };
    let users = args.users;
    let mut rows = vec![
        sample(
            format!(
                "segments: memberCount of a 3-clause filter over {users} users (HTTP), {} members",
                found.0
            ),
            graphql,
        ),
        sample(
            "segments: the server's count statement, run directly".into(),
            compiled,
        ),
        sample(
            "segments: hand-written COUNT(*) with EXISTS, run directly".into(),
            hand,
        ),
    ];
    let p50 = |s: &mut Sample| s.percentile(0.5).expect("runs").as_secs_f64();
    let hand_p50 = p50(&mut rows[2]);
    let mut notes = vec![format!(
        "segment-count: {} runs of each in {:.1} s. p50 ratios to the hand-written count: \
         memberCount through HTTP {:.2}x, the server's statement run directly {:.2}x.",
        args.runs,
        elapsed.as_secs_f64(),
        p50(&mut rows[0]) / hand_p50,
        p50(&mut rows[1]) / hand_p50,
    )];
    let now = chrono::Utc::now();
    let ours = compiled_count(backend, members_query(backend, 1, &filter, &segments, now));
    let theirs = hand_written_count(backend, now);
    notes.push(format!(
        "segment-count, the server's statement:\n```sql\n{}\n```\nplan:\n```\n{}\n```",
        shown(&ours),
        explain(conn, &ours).await
    ));
    notes.push(format!(
        "segment-count, the hand-written statement:\n```sql\n{}\n```\nplan:\n```\n{}\n```",
        shown(&theirs),
        explain(conn, &theirs).await
    ));
    delete_segment(client, endpoint, key, &id).await;
    (rows, notes)
}

/// Small filters for the 100 triggered segments, each entered by adding
/// `Tag {n}` (the tags `add_tags` uses are `Tag 0` to `Tag 49`).
pub(crate) fn trigger_filter(n: usize) -> String {
    match n % 4 {
        0 => format!(r#"tagged("Tag {n}") or attr.score >= {n}"#),
        1 => format!(r#"tagged("Tag {n}") and email contains "@example.com""#),
        2 => format!(r#"tagged_any("Tag {n}", "Beta {n}") and not tagged("Churned")"#),
        _ => format!(r#"tagged("Tag {n}") or (attr.plan = "gold" and attr.seats > {n})"#),
    }
}

pub(crate) async fn count_rows(conn: &DatabaseConnection, sql: &str) -> i64 {
    conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect("count")
        .expect("row")
        .try_get_by_index(0)
        .expect("count")
}

/// `addTags` through HTTP without segments, then with 100 segments with
/// entry actions: changes that enter none, and changes that enter one (whose
/// entry action the worker applies meanwhile).
pub(crate) async fn segment_reevaluation(
    conn: &DatabaseConnection,
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    ids: &[i64],
    args: &Args,
) -> (Vec<Sample>, Vec<String>) {
    wait_drained(conn).await;
    let mut baseline = add_tags_named(client, endpoint, key, ids, args, "Tag", 1).await;
    baseline.name = "segments: addTags on one user, no segments (HTTP)".into();
    wait_drained(conn).await;

    let started = Instant::now();
    let mut segment_ids = Vec::new();
    for n in 0..100 {
        let name = format!("Trigger {n}");
        let id = create_segment(
            client,
            endpoint,
            key,
            &name,
            &trigger_filter(n),
            &[format!("Seg {n}")],
        )
        .await;
        segment_ids.push(id);
    }
    let created = started.elapsed();
    wait_drained(conn).await;

    let mut quiet = add_tags_named(client, endpoint, key, ids, args, "Other", 2).await;
    quiet.name =
        "segments: addTags on one user, 100 triggered segments, entering none (HTTP)".into();
    let entries_before = count_rows(conn, "SELECT COUNT(*) FROM segment_changes").await;
    assert_eq!(entries_before, 0, "no entries while adding Other tags");
    wait_drained(conn).await;

    let mut entering = add_tags_named(client, endpoint, key, ids, args, "Tag", 3).await;
    let entries = count_rows(
        conn,
        "SELECT COUNT(*) FROM segment_changes WHERE op = 'ENTERED'",
    )
    .await;
    let drained = Instant::now();
    wait_drained(conn).await;
    let drain = drained.elapsed();
    let actions = count_rows(
        conn,
        "SELECT COUNT(*) FROM tag_changes WHERE source = 'TRIGGER'",
    )
    .await;
    entering.name = format!(
        "segments: addTags on one user, 100 triggered segments, entering one ({entries} entries) (HTTP)"
    );

    for id in &segment_ids {
        delete_segment(client, endpoint, key, id).await;
    }
    wait_drained(conn).await;
    let rate = |s: &Sample| s.count as f64 / s.elapsed.as_secs_f64();
    let notes = vec![format!(
        "segment-reevaluation: 100 segments created in {:.1} s; addTags/s with 100 triggered \
         segments vs none: {:.2}x (entering none), {:.2}x (entering one); {actions} entry \
         actions applied, the worker's backlog drained {:.1} s after the timed run.",
        created.as_secs_f64(),
        rate(&quiet) / rate(&baseline),
        rate(&entering) / rate(&baseline),
        drain.as_secs_f64(),
    )];
    (vec![baseline, quiet, entering], notes)
}

/// From the commit of an `addTags` of "Go" to the commit of the tag the
/// segment `tagged("Go")` adds on entry, while other clients keep tagging:
/// the trigger's change (source TRIGGER) names the entry, which names the
/// MANUAL change; their `at` are the two write times.
pub(crate) async fn segment_latency(
    conn: &DatabaseConnection,
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    ids: &[i64],
    args: &Args,
) -> Sample {
    wait_drained(conn).await;
    let segment = create_segment(
        client,
        endpoint,
        key,
        "Go latency",
        r#"tagged("Go")"#,
        &["Went".to_owned()],
    )
    .await;
    // Probes, "Go" on a new user every 10 ms, while other clients tag
    // random users.
    let (probes, background) = probes_under_load(
        client,
        endpoint,
        key,
        ids,
        args,
        (31, "Load"),
        0,
        |_| "Go".to_owned(),
        |_| {},
    )
    .await;
    wait_drained(conn).await;
    let latencies = cause_to_answer(
        conn,
        "SELECT cause.at, answer.at FROM tag_changes answer \
         JOIN segment_changes entry ON entry.id = answer.cause_segment_change_id \
         JOIN tag_changes cause ON cause.id = entry.cause_id \
         WHERE answer.source = 'TRIGGER' AND answer.actor = 'Go latency' \
         AND cause.source = 'MANUAL'",
    )
    .await;
    assert_eq!(
        latencies.len(),
        (probes as usize).min(ids.len()),
        "every probe answered"
    );
    delete_segment(client, endpoint, key, &segment).await;
    wait_drained(conn).await;
    Sample {
        name: format!(
            "segments: addTags commit to entry action committed ({background} other tag changes meanwhile)"
        ),
        count: latencies.len(),
        elapsed: Duration::from_secs(args.seconds),
        latencies,
    }
}
