//! Concurrency (issue #8, item 6): 32 clients at once tagging, importing
//! and updating the same few subjects while the automation worker competes
//! with them; no request fails, and afterwards every assignment, history
//! row, count and outbox event adds up exactly.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::helpers::{TestApp, count, drained};
use crate::on_both_databases;

on_both_databases!(thirty_two_clients_on_the_same_subjects_add_up);

/// Clients running at once.
const CLIENTS: usize = 32;
/// Requests each client sends, one after the other.
const STEPS: usize = 12;
/// Users every client works on (created up front, so tagging by id works).
const USERS: usize = 6;
/// Tags the clients add and remove ("B" is the script's and never named).
const POOL: [&str; 6] = [
    "A",
    "C",
    "D",
    "Region: North",
    "Region: South",
    "sports/golf",
];

const ADD: &str =
    "mutation($id: ID!, $tags: [String!]!) { addTags(subjectId: $id, tags: $tags) { __typename } }";
const REMOVE: &str = "mutation($id: ID!, $tags: [String!]!) { removeTags(subjectId: $id, tags: $tags) { __typename } }";
const BULK: &str = "mutation($ids: [ID!]!, $tags: [String!]!) {
    bulkAddTags(target: { ids: $ids }, tags: $tags) { matched changed } }";
const IMPORT: &str = "mutation($csv: String!) {
    importUsers(csv: $csv) { created updated tagsApplied errors { line message } } }";
const UPSERT: &str = "mutation($email: String!, $first: String, $attributes: JSON) {
    upsertUser(input: { email: $email, firstName: $first, attributes: $attributes }) { id } }";

/// The follow-on the worker applies while the clients write.
const SCRIPT: &str = r#"fn on_tag_added(e) { if e.tag == "A" { e.subject.add_tag("B"); } }"#;

/// A small deterministic generator (each client its own sequence).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % below as u64) as usize
    }
}

fn email(i: usize) -> String {
    format!("u{i}@example.com")
}

/// What one client did: requests by kind, failed responses, and the last
/// attribute value it wrote on each user.
#[derive(Default)]
struct ClientLog {
    requests: BTreeMap<&'static str, usize>,
    failures: Vec<String>,
    attributes: HashMap<usize, usize>,
}

async fn client(app: Arc<TestApp>, ids: Arc<Vec<String>>, c: usize) -> ClientLog {
    let mut rng = Lcg(c as u64 * 7919 + 17);
    let mut log = ClientLog::default();
    for step in 0..STEPS {
        let user = rng.next(USERS);
        let tags: Vec<&str> = (0..1 + rng.next(2))
            .map(|_| POOL[rng.next(POOL.len())])
            .collect();
        let (kind, query, vars) = match rng.next(5) {
            0 => ("addTags", ADD, json!({ "id": ids[user], "tags": tags })),
            1 => (
                "removeTags",
                REMOVE,
                json!({ "id": ids[user], "tags": tags }),
            ),
            2 => {
                let some: Vec<&String> = (0..3).map(|_| &ids[rng.next(USERS)]).collect();
                ("bulkAddTags", BULK, json!({ "ids": some, "tags": tags }))
            }
            3 => {
                // Overlapping emails (some not created yet, so imports race
                // to create them too), a tags column and a tag column.
                let mut csv = String::from("email,first_name,tags,Department\n");
                // Three different people (a file naming one twice is reported).
                let first = rng.next(USERS + 2);
                for k in 0..3 {
                    let who = match (first + k * 3) % (USERS + 2) {
                        n if n >= USERS => format!("new{}@example.com", n - USERS),
                        n => email(n),
                    };
                    let dept = ["Sales", "Support", "R&D"][rng.next(3)];
                    let tag = POOL[rng.next(POOL.len())];
                    csv.push_str(&format!("{who},Client{c},{tag},{dept}\n"));
                }
                ("importUsers", IMPORT, json!({ "csv": csv }))
            }
            _ => {
                log.attributes.insert(user, step);
                let attributes = json!({ format!("c{c}"): step });
                (
                    "upsertUser",
                    UPSERT,
                    json!({ "email": email(user), "first": format!("Client{c}"), "attributes": attributes }),
                )
            }
        };
        *log.requests.entry(kind).or_default() += 1;
        let body = app.graphql(query, vars).await;
        if body.get("errors").is_some() || body["data"].is_null() {
            log.failures.push(format!("{kind}: {body}"));
        } else if kind == "importUsers" && body["data"]["importUsers"]["errors"] != json!([]) {
            log.failures.push(format!("{kind} rows: {body}"));
        }
    }
    log
}

/// Rows of a query (test bookkeeping, straight from the database).
async fn select(app: &TestApp, sql: &str) -> Vec<sea_orm::QueryResult> {
    let backend = app.db.get_database_backend();
    app.db
        .query_all_raw(Statement::from_string(backend, sql.to_owned()))
        .await
        .expect("query")
}

async fn thirty_two_clients_on_the_same_subjects_add_up(app: TestApp) {
    app.ok(
        "mutation($input: ScriptInput!) { uploadScript(input: $input) { id } }",
        json!({ "input": { "name": "a-to-b", "source": SCRIPT } }),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..USERS {
        ids.push(app.user(&email(i)).await);
    }
    let app = Arc::new(app);
    let ids = Arc::new(ids);
    let started = std::time::Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(client(Arc::clone(&app), Arc::clone(&ids), c)))
        .collect();
    let mut logs = Vec::new();
    for handle in clients {
        logs.push(handle.await.expect("client task"));
    }
    let writing = started.elapsed();
    drained(&app).await;
    let drain = started.elapsed();

    // 1. No request failed (no SQLITE_BUSY, no deadlock or serialization failure).
    let failures: Vec<&String> = logs.iter().flat_map(|l| &l.failures).collect();
    assert!(
        failures.is_empty(),
        "{} requests failed, first: {}",
        failures.len(),
        failures[0]
    );
    let mut requests: BTreeMap<&str, usize> = BTreeMap::new();
    for log in &logs {
        for (kind, n) in &log.requests {
            *requests.entry(kind).or_default() += n;
        }
    }
    assert_eq!(requests.values().sum::<usize>(), CLIENTS * STEPS);

    // 2. For every subject and tag, the history alternates added/removed
    // (starting with added), and its replay is exactly the assignments.
    let history = select(
        &app,
        "SELECT subject_kind, subject_id, tag_id, op FROM tag_changes ORDER BY id",
    )
    .await;
    let mut replay: BTreeMap<(String, i64, i64), bool> = BTreeMap::new();
    for row in &history {
        let key = (
            row.try_get_by_index::<String>(0).unwrap(),
            row.try_get_by_index::<i64>(1).unwrap(),
            row.try_get_by_index::<i64>(2).unwrap(),
        );
        let added = row.try_get_by_index::<String>(3).unwrap() == "ADDED";
        let had = replay.get(&key).copied().unwrap_or(false);
        assert_ne!(had, added, "{key:?}: a change that changed nothing");
        replay.insert(key, added);
    }
    let replayed: BTreeSet<(String, i64, i64)> = replay
        .into_iter()
        .filter_map(|(key, has)| has.then_some(key))
        .collect();
    let assigned: BTreeSet<(String, i64, i64)> = select(
        &app,
        "SELECT subject_kind, subject_id, tag_id FROM tag_assignments",
    )
    .await
    .iter()
    .map(|row| {
        (
            row.try_get_by_index::<String>(0).unwrap(),
            row.try_get_by_index::<i64>(1).unwrap(),
            row.try_get_by_index::<i64>(2).unwrap(),
        )
    })
    .collect();
    assert_eq!(
        replayed, assigned,
        "the history's replay is the assignments"
    );

    // 3. One outbox event per committed change, of the right kind; all done.
    let changes = history.len() as i64;
    assert_eq!(
        count(
            &app.db,
            "SELECT COUNT(*) FROM automation_events WHERE kind IN ('TAG_ADDED', 'TAG_REMOVED')"
        )
        .await,
        changes
    );
    assert_eq!(
        count(&app.db,
            "SELECT COUNT(*) FROM tag_changes c WHERE (SELECT COUNT(*) FROM automation_events e \
             WHERE e.change_id = c.id AND e.kind = CASE c.op WHEN 'ADDED' THEN 'TAG_ADDED' ELSE 'TAG_REMOVED' END) <> 1"
        )
        .await,
        0,
        "every change has exactly one event"
    );
    let events = app.rows("automation_events").await;
    assert_eq!(
        app.rows("automation_events WHERE status <> 'done'").await,
        0,
        "nothing pending, running or failed"
    );
    assert_eq!(app.rows("script_runs WHERE NOT ok").await, 0);
    // Events the worker had to try again (a lost race is retried, not lost).
    let retried = app.rows("automation_events WHERE attempts > 1").await;

    // 4. The script: every user who ever got "A" got "B" once, from the script.
    let ever_a = count(
        &app.db,
        "SELECT COUNT(DISTINCT c.subject_id) FROM tag_changes c JOIN tags t ON t.id = c.tag_id \
         WHERE t.name = 'A' AND c.op = 'ADDED'",
    )
    .await;
    let b_changes = select(
        &app,
        "SELECT c.subject_id, c.op, c.source FROM tag_changes c JOIN tags t ON t.id = c.tag_id WHERE t.name = 'B'",
    )
    .await;
    let b_users: BTreeSet<i64> = b_changes
        .iter()
        .map(|r| r.try_get_by_index::<i64>(0).unwrap())
        .collect();
    assert!(ever_a > 0, "the clients added A somewhere");
    assert_eq!(b_changes.len() as i64, ever_a, "one B per user who got A");
    assert_eq!(b_users.len() as i64, ever_a);
    assert!(
        b_changes
            .iter()
            .all(|r| r.try_get_by_index::<String>(1).unwrap() == "ADDED"
                && r.try_get_by_index::<String>(2).unwrap() == "SCRIPT")
    );

    // 5. Through the API: each user's tags are the assignments, its history
    // is its rows, the catalogue's counts are the assignments, and no
    // client's attribute write was lost.
    let mut all_emails: Vec<String> = (0..USERS).map(email).collect();
    all_emails.extend((0..2).map(|i| format!("new{i}@example.com")));
    let mut subjects = 0;
    for (i, address) in all_emails.iter().enumerate() {
        let data = app
            .ok(
                "query($email: String!) { user(email: $email) { id tags { name } attributes } }",
                json!({ "email": address }),
            )
            .await;
        let user = &data["user"];
        if user.is_null() {
            assert!(i >= USERS, "{address} was created up front");
            continue;
        }
        subjects += 1;
        let id = count(
            &app.db,
            &format!("SELECT id FROM users WHERE email = '{address}'"),
        )
        .await;
        let api_tags: BTreeSet<String> = user["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        let stored: BTreeSet<String> = select(
            &app,
            &format!(
                "SELECT t.name FROM tag_assignments a JOIN tags t ON t.id = a.tag_id \
                 WHERE a.subject_kind = 'USER' AND a.subject_id = {id}"
            ),
        )
        .await
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect();
        assert_eq!(api_tags, stored, "{address}");
        assert_eq!(
            history_rows(&app, user["id"].as_str().unwrap()).await,
            count(&app.db,
                &format!(
                    "SELECT COUNT(*) FROM tag_changes WHERE subject_kind = 'USER' AND subject_id = {id}"
                )
            )
            .await,
            "{address}'s history"
        );
        if i < USERS {
            for (c, log) in logs.iter().enumerate() {
                if let Some(step) = log.attributes.get(&i) {
                    assert_eq!(
                        user["attributes"][format!("c{c}")],
                        json!(step),
                        "{address}: client {c}'s last attribute write was lost: {:#}",
                        user["attributes"]
                    );
                }
            }
        }
    }
    let catalogue = app
        .ok(
            "{ tags(first: 100) { nodes { name userCount accountCount } } }",
            json!({}),
        )
        .await;
    for tag in catalogue["tags"]["nodes"].as_array().unwrap() {
        let name = tag["name"].as_str().unwrap();
        let users = count(
            &app.db,
            &format!(
                "SELECT COUNT(*) FROM tag_assignments a JOIN tags t ON t.id = a.tag_id \
                 WHERE t.name = '{}' AND a.subject_kind = 'USER'",
                name.replace('\'', "''")
            ),
        )
        .await;
        assert_eq!(tag["userCount"], json!(users), "usage count of {name}");
    }
    eprintln!(
        "concurrency: {CLIENTS} clients, {} requests {requests:?}, 0 failed; {subjects} users; \
         {changes} tag changes, {events} outbox events (all done, {retried} retried), \
         {ever_a} script follow-ons; \
         writes took {writing:?}, drained after {drain:?}",
        CLIENTS * STEPS
    );
}

/// How many history rows the API lists for a subject (paging through).
async fn history_rows(app: &TestApp, id: &str) -> i64 {
    let mut after: Value = Value::Null;
    let mut total = 0;
    loop {
        let data = app
            .ok(
                "query($id: ID!, $after: String) { node(id: $id) { ... on User {
                    history(first: 100, after: $after) { nodes { op } pageInfo { hasNextPage endCursor } } } } }",
                json!({ "id": id, "after": after }),
            )
            .await;
        let page = &data["node"]["history"];
        total += page["nodes"].as_array().unwrap().len() as i64;
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            return total;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
}
