//! `hook-run`, `automation-latency` and `automation-events`.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::json;

use crate::{
    Args,
    client::{Sample, cause_to_answer, global_id, post, probes_under_load},
};

pub(crate) const DESIGN_EXAMPLE: &str = include_str!("../../scripts/design_example.rhai");

/// The DESIGN example compiled once, and the event its hook runs on: "Webinar
/// Attendee" added to a user who has "Clicked Demo" (one action planned).
pub(crate) fn design_example_hook() -> (
    tagsmith::automation::script::ScriptEngine,
    tagsmith::automation::script::CompiledScript,
    tagsmith::automation::script::HookEvent,
) {
    use tagsmith::automation::script::{
        HookEvent, HookKind, ScriptEngine, SubjectKind, SubjectSnapshot,
    };
    let engine = ScriptEngine::new(Default::default());
    let compiled = engine.compile(DESIGN_EXAMPLE).expect("compiles");
    let mut subject = SubjectSnapshot::new(SubjectKind::User, "VXNlcjox");
    subject.email = Some("ana@example.com".into());
    subject.tags = vec!["Clicked Demo".into(), "Webinar Attendee".into()];
    let event = HookEvent {
        hook: HookKind::TagAdded,
        tag: Some("Webinar Attendee".into()),
        segment: None,
        source: "MANUAL".into(),
        depth: 0,
        subject,
    };
    (engine, compiled, event)
}

/// Hook runs as the worker makes them: a batch of 64 handed to the script
/// threads at once (`run_many`); the latency of each is the batch's time / 64.
pub(crate) fn hook_runs_batched() -> Sample {
    const BATCH: usize = 64;
    let (engine, compiled, event) = design_example_hook();
    let batch = || vec![(compiled.clone(), event.clone()); BATCH];
    for _ in 0..20 {
        engine.run_many(batch());
    }
    let batches = 400;
    let mut latencies = Vec::with_capacity(batches * BATCH);
    let started = Instant::now();
    for _ in 0..batches {
        let runs = batch();
        let t = Instant::now();
        let outcomes = engine.run_many(runs);
        let each = t.elapsed() / BATCH as u32;
        assert!(outcomes.iter().all(|o| o.ok && o.actions.len() == 1));
        latencies.extend(std::iter::repeat_n(each, BATCH));
    }
    Sample {
        name: format!("one hook run in a worker batch of {BATCH} (run_many, in process)"),
        count: batches * BATCH,
        elapsed: started.elapsed(),
        latencies,
    }
}

/// One run of the DESIGN example's hook on a snapshot, AST compiled once.
pub(crate) fn hook_run() -> Sample {
    let (engine, compiled, event) = design_example_hook();
    for _ in 0..1000 {
        engine.run(&compiled, &event);
    }
    let runs = 20_000;
    let mut latencies = Vec::with_capacity(runs);
    let started = Instant::now();
    for _ in 0..runs {
        let t = Instant::now();
        let outcome = engine.run(&compiled, &event);
        latencies.push(t.elapsed());
        assert!(outcome.ok && outcome.actions.len() == 1);
    }
    Sample {
        name: "one hook run, cached AST (DESIGN example, in process)".into(),
        count: runs,
        elapsed: started.elapsed(),
        latencies,
    }
}

pub(crate) async fn upload_script(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    name: &str,
    source: &str,
) {
    let query = "mutation($input: ScriptInput!) { uploadScript(input: $input) { id } }";
    post(
        client,
        endpoint,
        key,
        json!({ "query": query, "variables": { "input": { "name": name, "source": source } } }),
    )
    .await;
}

pub(crate) async fn set_enabled(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    enabled: bool,
) {
    let scripts = post(
        client,
        endpoint,
        key,
        json!({ "query": "{ scripts { id } }" }),
    )
    .await;
    for script in scripts["data"]["scripts"].as_array().into_iter().flatten() {
        let query =
            "mutation($id: ID!, $on: Boolean!) { setScriptEnabled(id: $id, enabled: $on) { id } }";
        post(
            client,
            endpoint,
            key,
            json!({ "query": query, "variables": { "id": script["id"], "on": enabled } }),
        )
        .await;
    }
}

pub(crate) async fn wait_drained(conn: &DatabaseConnection) {
    let backend = conn.get_database_backend();
    loop {
        let row = conn
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT COUNT(*) FROM automation_events WHERE status IN ('pending', 'running')",
            ))
            .await
            .expect("count")
            .expect("row");
        if row.try_get_by_index::<i64>(0).expect("count") == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// From the commit of an `addTags` (its change's time) to the script's
/// follow-up change, while other clients keep tagging.
pub(crate) async fn automation_latency(
    conn: &DatabaseConnection,
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    ids: &[i64],
    args: &Args,
) -> Sample {
    wait_drained(conn).await;
    set_enabled(client, endpoint, key, false).await;
    upload_script(
        client,
        endpoint,
        key,
        "latency",
        r#"fn on_tag_added(e) { if e.tag.starts_with("Probe ") { e.subject.add_tag(`Answer ${e.tag}`); } }"#,
    )
    .await;
    // Probes, "Probe N", while other clients tag random users.
    let (probes, background) = probes_under_load(
        client,
        endpoint,
        key,
        ids,
        args,
        (17, "Load"),
        0,
        |n| format!("Probe {n}"),
        |_| {},
    )
    .await;
    wait_drained(conn).await;
    let latencies = cause_to_answer(
        conn,
        "SELECT cause.at, answer.at FROM tag_changes answer JOIN tag_changes cause ON cause.id = answer.cause_id \
         WHERE answer.source = 'SCRIPT' AND answer.actor = 'latency'",
    )
    .await;
    assert_eq!(latencies.len() as u64, probes, "every probe answered");
    set_enabled(client, endpoint, key, false).await;
    Sample {
        name: format!(
            "automation: addTags commit to script change committed ({background} other tag changes meanwhile)"
        ),
        count: latencies.len(),
        elapsed: Duration::from_secs(args.seconds),
        latencies,
    }
}

/// Events handled per second: a bulk add of one tag to 10,000 users with a
/// script listening (it plans nothing: each event is a claim, a snapshot, a
/// hook run and a commit).
pub(crate) async fn events_per_second(
    conn: &DatabaseConnection,
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    ids: &[i64],
) -> Sample {
    wait_drained(conn).await;
    upload_script(
        client,
        endpoint,
        key,
        "listener",
        r#"fn on_tag_added(e) { if e.tag == "never" { e.subject.add_tag("x"); } }"#,
    )
    .await;
    let chunk: Vec<String> = ids
        .iter()
        .take(10_000)
        .map(|id| global_id("User", *id))
        .collect();
    let query = "mutation($ids: [ID!], $tags: [String!]!) { bulkAddTags(target: { ids: $ids }, tags: $tags) { changed } }";
    let started = Instant::now();
    post(
        client,
        endpoint,
        key,
        json!({ "query": query, "variables": { "ids": chunk, "tags": ["Event Storm"] } }),
    )
    .await;
    wait_drained(conn).await;
    let elapsed = started.elapsed();
    set_enabled(client, endpoint, key, false).await;
    Sample {
        name: format!(
            "automation: {} events handled, one script listening",
            chunk.len()
        ),
        count: chunk.len(),
        elapsed,
        latencies: Vec::new(),
    }
}
