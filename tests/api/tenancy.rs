//! Table-driven tenant isolation and role checks over every root field of
//! the schema: workspace B's key tries to reach workspace A's objects by id,
//! `node`, name, alias, batch and filter and finds nothing; each role tries
//! every mutation above it and gets FORBIDDEN; no key gets UNAUTHENTICATED.
//! A test fails when the schema gains a root field that no case covers.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::helpers::{TestApp, drained, error_code};
use crate::on_both_databases;

on_both_databases!(
    another_workspace_reaches_nothing_by_any_root_field,
    every_role_is_refused_every_mutation_above_it
);

/// Root fields whose isolation another module tests (with what it needs).
const COVERED_ELSEWHERE: &[(&str, &str)] = &[(
    "Subscription.tagChanges",
    "subscriptions.rs: tag_changes_reach_subscribers_of_their_workspace_only",
)];

/// What B's request must get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// No error, and nothing of A in the data.
    Nothing,
    /// This error code, and nothing of A in the data.
    Code(&'static str),
    /// No error: B made or changed its own object (the input may echo A's
    /// names, so only A's ids are looked for).
    Own,
}

struct Case {
    /// `Query.x`, `Mutation.x` or `Subscription.x`.
    field: &'static str,
    query: String,
    expect: Expect,
}

fn case(field: &'static str, query: impl Into<String>, expect: Expect) -> Case {
    Case {
        field,
        query: query.into(),
        expect,
    }
}

/// Workspace A's objects, made through the API.
struct Alpha {
    user: String,
    account: String,
    segment: String,
    script: String,
    run: String,
    tag: String,
    tag_change: String,
    event: String,
    segment_change: String,
    /// A VIEWER key of A (B tries to revoke it by name).
    viewer_key: String,
    webhook: String,
    delivery: String,
}

impl Alpha {
    fn ids(&self) -> Vec<&str> {
        vec![
            &self.user,
            &self.account,
            &self.segment,
            &self.script,
            &self.run,
            &self.tag,
            &self.tag_change,
            &self.event,
            &self.segment_change,
            &self.webhook,
            &self.delivery,
        ]
    }
}

/// Runs a mutation whose one field returns an object with an id; returns the id.
async fn created(app: &TestApp, mutation: &str) -> String {
    let data = app.ok(mutation, json!({})).await;
    let object = data.as_object().and_then(|d| d.values().next()).unwrap();
    object["id"].as_str().unwrap().to_owned()
}

async fn seed_alpha(app: &TestApp) -> Alpha {
    let account = app.account("alpha-acct", "Alpha Co").await;
    let user = created(
        app,
        "mutation { upsertUser(input: { email: \"ana@alpha.example\", externalId: \"alpha-user\", firstName: \"Alpha\", accountExternalId: \"alpha-acct\" }) { id } }",
    )
    .await;
    let segment = created(
        app,
        "mutation { createSegment(input: { name: \"Alpha Segment\", subjectKind: USER, filter: \"tagged(\\\"Alpha Tag\\\")\", onEntry: { add: [\"Alpha Member\"] } }) { id } }",
    )
    .await;
    let script = created(
        app,
        "mutation { uploadScript(input: { name: \"alpha-script\", source: \"fn on_tag_added(e) { if e.tag == \\\"Alpha Tag\\\" { e.subject.add_tag(\\\"Alpha Follow\\\"); } }\" }) { id } }",
    )
    .await;
    app.ok(
        "mutation($id: ID!) { addTags(subjectId: $id, tags: [\"Alpha Tag\"]) { __typename } trackEvent(subjectId: $id, name: \"alpha-login\") }",
        json!({ "id": user }),
    )
    .await;
    let viewer_key = app.key("alpha-key", "VIEWER").await;
    // A webhook to 127.0.0.1 (which this server's allow-list does not
    // name, so the API would refuse it: made through the library), and a ping.
    let workspace = tagsmith::auth::workspaces::find_by_name(&app.db, "default")
        .await
        .unwrap()
        .unwrap();
    let hook = tagsmith::webhooks::store::create(
        &app.db,
        workspace.id,
        tagsmith::webhooks::WebhookInput {
            url: "http://127.0.0.1:9/alpha".into(),
            events: vec![tagsmith::webhooks::EventType::TagAdded],
            tags: Some(vec!["Alpha Tag".into()]),
            enabled: Some(true),
            description: Some("Alpha hook".into()),
        },
        &tagsmith::webhooks::target::AllowList::new(&["127.0.0.1".to_owned()]),
        tagsmith::time::now(),
    )
    .await
    .unwrap()
    .webhook;
    let ping =
        tagsmith::webhooks::deliveries::test(&app.db, workspace.id, hook.id, tagsmith::time::now())
            .await
            .unwrap();
    drained(app).await;
    let data = app
        .ok(
            "query($script: ID!) {
                script(id: $script) { runs { nodes { id } } }
                tag(name: \"Alpha Tag\") { id }
                tagChanges { nodes { id } }
                automationEvents { nodes { id } }
                segmentHistory { nodes { id } }
            }",
            json!({ "script": script }),
        )
        .await;
    let first = |path: &[&str]| -> String {
        let mut v = &data;
        for p in path {
            v = &v[*p];
        }
        v["nodes"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no {path:?} in {data:#}"))
            .to_owned()
    };
    Alpha {
        run: first(&["script", "runs"]),
        tag: data["tag"]["id"].as_str().unwrap().to_owned(),
        tag_change: first(&["tagChanges"]),
        event: first(&["automationEvents"]),
        segment_change: first(&["segmentHistory"]),
        viewer_key,
        user,
        account,
        segment,
        script,
        webhook: tagsmith::ids::encode(tagsmith::ids::NodeKind::Webhook, hook.id),
        delivery: tagsmith::ids::encode(tagsmith::ids::NodeKind::WebhookDelivery, ping.id),
    }
}

/// Everything of A that any API call could change, read by A's key.
async fn snapshot(app: &TestApp) -> Value {
    app.ok(
        "{
            users { totalCount nodes { id email externalId firstName attributes tags { name } account { id name } segments { name } } }
            accounts { totalCount nodes { id name externalId attributes tags { name } } }
            tags { totalCount nodes { id name description userCount accountCount } }
            tagChanges { totalCount }
            segments { id name filter memberCount onEntry { add { name } remove { name } } tracked }
            segmentHistory { totalCount }
            scripts { id name version enabled source runs { totalCount } }
            automationEvents { totalCount }
            workspace { name lowercaseTags maxTagDepth }
            webhooks { id url enabled events tags description }
        }",
        json!({}),
    )
    .await
}

/// The root fields of the schema, as `Type.field`.
async fn root_fields(app: &TestApp) -> BTreeSet<String> {
    let data = app
        .ok(
            "{ __schema { queryType { name fields { name } } mutationType { name fields { name } } subscriptionType { name fields { name } } } }",
            json!({}),
        )
        .await;
    let mut all = BTreeSet::new();
    for root in ["queryType", "mutationType", "subscriptionType"] {
        let t = &data["__schema"][root];
        for f in t["fields"].as_array().unwrap() {
            all.insert(format!(
                "{}.{}",
                t["name"].as_str().unwrap(),
                f["name"].as_str().unwrap()
            ));
        }
    }
    all
}

/// Every string anywhere in `value`.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fn alpha_cases(a: &Alpha) -> Vec<Case> {
    use Expect::*;
    let mut cases = vec![];
    for id in a.ids() {
        cases.push(case(
            "Query.node",
            format!("{{ r: node(id: \"{id}\") {{ id }} }}"),
            Nothing,
        ));
    }
    let q = |field, query: &str, expect| case(field, query.to_owned(), expect);
    cases.extend([
        q("Query.accounts", "{ r: accounts { totalCount nodes { id name } } }", Nothing),
        q("Query.accounts", "{ r: accounts(search: \"Alpha\") { totalCount nodes { id } } }", Nothing),
        q("Query.accounts", "{ r: accounts(filter: \"tagged(\\\"Alpha Tag\\\") or name contains \\\"Alpha\\\"\") { totalCount nodes { id } } }", Nothing),
        q("Query.users", "{ r: users { totalCount nodes { id email } } }", Nothing),
        q("Query.users", "{ r: users(search: \"ana\") { totalCount nodes { id } } }", Nothing),
        q("Query.users", "{ r: users(filter: \"email contains \\\"alpha\\\" or tagged(\\\"Alpha*\\\") or events(\\\"alpha-login\\\", 30d) >= 1\") { totalCount nodes { id } } }", Nothing),
        q("Query.users", "{ r: users(filter: \"in_segment(\\\"Alpha Segment\\\")\") { totalCount } }", Code("BAD_USER_INPUT")),
        q("Query.users", "{ r: users(filter: \"account.tagged(\\\"Alpha Tag\\\") or account.name = \\\"Alpha Co\\\"\") { totalCount nodes { id } } }", Nothing),
        q("Query.user", "{ r: user(email: \"ana@alpha.example\") { id } }", Nothing),
        q("Query.user", "{ r: user(externalId: \"alpha-user\") { id } }", Nothing),
        q("Query.account", "{ r: account(externalId: \"alpha-acct\") { id } }", Nothing),
        q("Query.tags", "{ r: tags { totalCount nodes { id name } } }", Nothing),
        q("Query.tags", "{ r: tags(prefix: \"Alpha\") { totalCount nodes { id } } }", Nothing),
        q("Query.tags", "{ r: tags(search: \"alpha\") { totalCount nodes { id } } }", Nothing),
        q("Query.tag", "{ r: tag(name: \"Alpha Tag\") { id userCount } }", Nothing),
        q("Query.tagChanges", "{ r: tagChanges { totalCount nodes { id } } }", Nothing),
        q("Query.tagChanges", "{ r: tagChanges(tag: \"Alpha Tag\") { totalCount nodes { id } } }", Nothing),
        q("Query.segments", "{ r: segments { id name } }", Nothing),
        q("Query.previewSegment", "{ r: previewSegment(subjectKind: USER, filter: \"tagged(\\\"Alpha Tag\\\")\") { count sample { ... on User { id } } } }", Nothing),
        q("Query.previewSegment", "{ r: previewSegment(subjectKind: USER, filter: \"in_segment(\\\"Alpha Segment\\\")\") { count } }", Code("BAD_USER_INPUT")),
        q("Query.segmentHistory", "{ r: segmentHistory { totalCount nodes { id } } }", Nothing),
        q("Query.scripts", "{ r: scripts { id name } }", Nothing),
        // Compiles without saving and reads nothing of any workspace.
        q("Query.checkScript", "{ r: checkScript(source: \"fn on_tag_added(event) { }\") { line message } }", Nothing),
        q("Query.automationEvents", "{ r: automationEvents { totalCount nodes { id } } }", Nothing),
        q("Query.automationEvents", "{ r: automationEvents(status: DONE) { totalCount nodes { id } } }", Nothing),
        q("Query.workspace", "{ r: workspace { name } }", Nothing),
        q("Query.viewer", "{ r: viewer { keyName workspace } }", Nothing),
        q("Query.webhooks", "{ r: webhooks { id url description } }", Nothing),
        // (This server's allow-list is empty: 127.0.0.1 is refused, B's or not.)
        q("Mutation.createWebhook", "mutation { r: createWebhook(input: { url: \"http://127.0.0.1:9/alpha\", events: [TAG_ADDED] }) { secret } }", Code("BAD_USER_INPUT")),
        // Writes by A's names.
        q("Mutation.renameTag", "mutation { r: renameTag(name: \"Alpha Tag\", newName: \"Stolen\") { id } }", Code("NOT_FOUND")),
        q("Mutation.mergeTags", "mutation { r: mergeTags(names: [\"Alpha Tag\"], into: \"Stolen\") { id } }", Code("NOT_FOUND")),
        q("Mutation.deleteTag", "mutation { r: deleteTag(name: \"Alpha Tag\") }", Code("NOT_FOUND")),
        q("Mutation.setTagDescription", "mutation { r: setTagDescription(name: \"Alpha Tag\", description: \"x\") { id } }", Code("NOT_FOUND")),
        q("Mutation.createSegment", "mutation { r: createSegment(input: { name: \"Spy\", subjectKind: USER, filter: \"in_segment(\\\"Alpha Segment\\\")\" }) { id } }", Code("BAD_USER_INPUT")),
        q("Mutation.bulkAddTags", "mutation { r: bulkAddTags(target: { subjectKind: USER, filter: \"tagged(\\\"Alpha Tag\\\")\" }, tags: [\"Stolen\"]) { matched changed } }", Nothing),
        q("Mutation.bulkRemoveTags", "mutation { r: bulkRemoveTags(target: { subjectKind: USER, filter: \"email contains \\\"alpha\\\"\" }, tags: [\"Alpha Tag\"]) { matched changed } }", Nothing),
        q("Mutation.revokeApiKey", "mutation { r: revokeApiKey(name: \"alpha-key\") }", Code("NOT_FOUND")),
        // B's own objects of the same names stay B's: A's are untouched.
        q("Mutation.upsertUser", "mutation { r: upsertUser(input: { email: \"bo@beta.example\", accountExternalId: \"alpha-acct\" }) { id } }", Code("BAD_USER_INPUT")),
        q("Mutation.upsertUser", "mutation { r: upsertUser(input: { email: \"ana@alpha.example\", externalId: \"alpha-user\", firstName: \"Mallory\" }) { id firstName tags { name } } }", Own),
        q("Mutation.upsertAccount", "mutation { r: upsertAccount(input: { externalId: \"alpha-acct\", name: \"Taken\" }) { id users { totalCount } } }", Own),
        q("Mutation.uploadScript", "mutation { r: uploadScript(input: { name: \"alpha-script\", source: \"fn on_tag_added(e) {}\" }) { id version runs { totalCount } } }", Own),
        q("Mutation.createApiKey", "mutation { r: createApiKey(name: \"alpha-key\", role: ADMIN) { secret } }", Own),
        q("Mutation.importUsers", "mutation { r: importUsers(csv: \"email,account_external_id,tags\\nana@alpha.example,alpha-acct,Alpha Tag;Imported\\n\") { created updated tagsApplied errors { line message } } }", Own),
        q("Mutation.importAccounts", "mutation { r: importAccounts(csv: \"external_id,name,tags\\nalpha-acct,Alpha Co,Imported\\n\") { created updated tagsApplied } }", Own),
    ]);
    // By A's ids: reads find nothing, writes answer NOT_FOUND.
    let by_id =
        |field, template: &str, id: &str, expect| case(field, template.replace("$ID", id), expect);
    cases.extend([
        by_id("Query.user", "{ r: user(id: \"$ID\") { id email } }", &a.user, Nothing),
        by_id("Query.account", "{ r: account(id: \"$ID\") { id name } }", &a.account, Nothing),
        by_id("Query.segment", "{ r: segment(id: \"$ID\") { id name } }", &a.segment, Nothing),
        by_id("Query.script", "{ r: script(id: \"$ID\") { id source } }", &a.script, Nothing),
        by_id("Query.tagChanges", "{ r: tagChanges(subjectId: \"$ID\") { totalCount nodes { id } } }", &a.user, Nothing),
        by_id("Query.segmentHistory", "{ r: segmentHistory(segmentId: \"$ID\") { totalCount nodes { id } } }", &a.segment, Nothing),
        by_id("Query.segmentActivity", "{ r: segmentActivity(segmentId: \"$ID\") { date entered exited } }", &a.segment, Code("NOT_FOUND")),
        by_id("Query.previewSegmentChange", "{ r: previewSegmentChange(id: \"$ID\", filter: \"tagged(\\\"Alpha Tag\\\")\") { entering exiting staying exitingSample { __typename } } }", &a.segment, Code("NOT_FOUND")),
        by_id("Query.segmentHistory", "{ r: segmentHistory(subjectId: \"$ID\") { totalCount nodes { id } } }", &a.user, Nothing),
        by_id("Mutation.deleteUser", "mutation { r: deleteUser(id: \"$ID\") }", &a.user, Code("NOT_FOUND")),
        by_id("Mutation.deleteAccount", "mutation { r: deleteAccount(id: \"$ID\") }", &a.account, Code("NOT_FOUND")),
        // An id that never existed answers exactly as A's ids do.
        by_id("Mutation.deleteUser", "mutation { r: deleteUser(id: \"$ID\") }", "VXNlcjo5OTk5OTk", Code("NOT_FOUND")),
        by_id("Mutation.addTags", "mutation { r: addTags(subjectId: \"$ID\", tags: [\"Stolen\"]) { __typename } }", &a.user, Code("NOT_FOUND")),
        by_id("Mutation.addTags", "mutation { r: addTags(subjectId: \"$ID\", tags: [\"Stolen\"]) { __typename } }", &a.account, Code("NOT_FOUND")),
        by_id("Mutation.removeTags", "mutation { r: removeTags(subjectId: \"$ID\", tags: [\"Alpha Tag\"]) { __typename } }", &a.user, Code("NOT_FOUND")),
        by_id("Mutation.bulkAddTags", "mutation { r: bulkAddTags(target: { ids: [\"$ID\"] }, tags: [\"Stolen\"]) { matched changed } }", &a.user, Nothing),
        by_id("Mutation.bulkAddTags", "mutation { r: bulkAddTags(target: { segmentId: \"$ID\" }, tags: [\"Stolen\"]) { matched changed } }", &a.segment, Code("NOT_FOUND")),
        by_id("Mutation.bulkRemoveTags", "mutation { r: bulkRemoveTags(target: { ids: [\"$ID\"] }, tags: [\"Alpha Tag\"]) { matched changed } }", &a.account, Nothing),
        by_id("Mutation.updateSegment", "mutation { r: updateSegment(id: \"$ID\", input: { name: \"Spy\", subjectKind: USER, filter: \"email contains \\\"a\\\"\" }) { id } }", &a.segment, Code("NOT_FOUND")),
        by_id("Mutation.deleteSegment", "mutation { r: deleteSegment(id: \"$ID\") }", &a.segment, Code("NOT_FOUND")),
        by_id("Mutation.baselineSegment", "mutation { r: baselineSegment(id: \"$ID\") { matched } }", &a.segment, Code("NOT_FOUND")),
        by_id("Mutation.trackEvent", "mutation { r: trackEvent(subjectId: \"$ID\", name: \"spy\") }", &a.user, Code("NOT_FOUND")),
        by_id("Mutation.setScriptEnabled", "mutation { r: setScriptEnabled(id: \"$ID\", enabled: false) { id } }", &a.script, Code("NOT_FOUND")),
        by_id("Mutation.deleteScript", "mutation { r: deleteScript(id: \"$ID\") }", &a.script, Code("NOT_FOUND")),
        by_id("Query.webhook", "{ r: webhook(id: \"$ID\") { id url } }", &a.webhook, Nothing),
        by_id("Mutation.updateWebhook", "mutation { r: updateWebhook(id: \"$ID\", input: { url: \"http://127.0.0.1:9/spy\", events: [TAG_REMOVED] }) { id } }", &a.webhook, Code("NOT_FOUND")),
        by_id("Mutation.deleteWebhook", "mutation { r: deleteWebhook(id: \"$ID\") }", &a.webhook, Code("NOT_FOUND")),
        by_id("Mutation.rotateWebhookSecret", "mutation { r: rotateWebhookSecret(id: \"$ID\") { secret } }", &a.webhook, Code("NOT_FOUND")),
        by_id("Mutation.testWebhook", "mutation { r: testWebhook(id: \"$ID\") { id } }", &a.webhook, Code("NOT_FOUND")),
        by_id("Mutation.replayWebhook", "mutation { r: replayWebhook(id: \"$ID\", since: \"2020-01-01T00:00:00Z\") }", &a.webhook, Code("NOT_FOUND")),
        by_id("Mutation.redeliverWebhook", "mutation { r: redeliverWebhook(deliveryId: \"$ID\") { id } }", &a.delivery, Code("NOT_FOUND")),
        by_id("Mutation.testScript", "mutation { r: testScript(source: \"fn on_tag_added(e) { log(e.subject.email); }\", event: { kind: TAG_ADDED, subjectId: \"$ID\", tag: \"Alpha Tag\" }) { ok logs } }", &a.user, Code("NOT_FOUND")),
    ]);
    // Why A's user is in A's segment: both ids A's.
    cases.push(case(
        "Query.explainMembership",
        format!(
            "{{ r: explainMembership(segmentId: \"{}\", subjectId: \"{}\") {{ member trace {{ text detail }} }} }}",
            a.segment, a.user
        ),
        Code("NOT_FOUND"),
    ));
    // Last, as it makes B's tag names lowercase-only.
    cases.push(case(
        "Mutation.updateWorkspaceSettings",
        "mutation { r: updateWorkspaceSettings(lowercaseTags: true, maxTagDepth: 2) { name lowercaseTags } }",
        Own,
    ));
    cases
}

async fn another_workspace_reaches_nothing_by_any_root_field(app: TestApp) {
    let a = seed_alpha(&app).await;
    let before = snapshot(&app).await;
    let b = app.other_workspace("beta").await;
    let a_ids: BTreeSet<&str> = a.ids().into_iter().collect();
    let cases = alpha_cases(&a);

    let check = |case: &Case, body: &Value| {
        let mut seen = vec![];
        strings(&body["data"], &mut seen);
        for s in &seen {
            assert!(
                !a_ids.contains(s.as_str()),
                "{}: A's id {s} leaked: {body}",
                case.query
            );
        }
        let leaked_name = seen.iter().any(|s| s.to_lowercase().contains("alpha"));
        match case.expect {
            Expect::Nothing => {
                assert!(body.get("errors").is_none(), "{}: {body}", case.query);
                assert!(!leaked_name, "{}: A's data leaked: {body}", case.query);
                let r = &body["data"]["r"];
                let empty = r.is_null()
                    || r.as_array().is_some_and(|a| a.is_empty())
                    || r["totalCount"] == 0
                    || r["count"] == 0
                    || r["matched"] == 0
                    || r == 0
                    || r["workspace"] == "beta"
                    || r["name"] == "beta";
                assert!(empty, "{}: B found something: {body}", case.query);
            }
            Expect::Code(code) => {
                assert_eq!(error_code(body), code, "{}: {body}", case.query);
                assert!(!leaked_name, "{}: A's data leaked: {body}", case.query);
            }
            Expect::Own => {
                assert!(body.get("errors").is_none(), "{}: {body}", case.query);
                let r = &body["data"]["r"];
                if r.get("version").is_some() {
                    assert_eq!(
                        r["version"], 1,
                        "B's script is a new one, not A's next version"
                    );
                    assert_eq!(r["runs"]["totalCount"], 0);
                }
                if let Some(users) = r.get("users") {
                    assert_eq!(users["totalCount"], 0, "{body}");
                }
            }
        }
    };

    // Read-only cases in one batch and A's ids under many aliases (before B
    // makes objects of its own with A's names).
    let reads: Vec<&Case> = cases
        .iter()
        .filter(|c| c.field.starts_with("Query.") && matches!(c.expect, Expect::Nothing))
        .collect();
    let batch: Vec<Value> = reads
        .iter()
        .take(10)
        .map(|c| json!({ "query": c.query }))
        .collect();
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&b)
        .json(&batch)
        .send()
        .await
        .unwrap();
    let bodies: Vec<Value> = response.json().await.unwrap();
    assert_eq!(bodies.len(), batch.len());
    for (case, body) in reads.iter().zip(&bodies) {
        check(case, body);
    }
    let aliased: String = a
        .ids()
        .iter()
        .enumerate()
        .map(|(i, id)| format!("n{i}: node(id: \"{id}\") {{ id }} "))
        .collect();
    let body = app
        .graphql_as(Some(&b), &format!("{{ {aliased} }}"), json!({}))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    assert!(
        body["data"]
            .as_object()
            .unwrap()
            .values()
            .all(Value::is_null),
        "{body}"
    );

    // Every case one by one, with B's key.
    for case in &cases {
        let body = app.graphql_as(Some(&b), &case.query, json!({})).await;
        check(case, &body);
    }
    // HTTP downloads of A's segment.
    for format in ["csv", "ndjson"] {
        let response = app
            .client
            .get(format!(
                "{}/segments/{}/members.{format}",
                app.address, a.segment
            ))
            .bearer_auth(&b)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "members.{format}");
        assert!(!response.text().await.unwrap().contains("alpha"));
    }

    // Every root field has a case (so a new field must get one).
    let covered: BTreeSet<String> = cases
        .iter()
        .map(|c| c.field.to_owned())
        .chain(COVERED_ELSEWHERE.iter().map(|(f, _)| (*f).to_owned()))
        .collect();
    let missing: Vec<String> = root_fields(&app)
        .await
        .difference(&covered)
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "root fields without an isolation case: {missing:?}"
    );

    // No key at all: every case is UNAUTHENTICATED.
    for case in &cases {
        let body = app.graphql_as(None, &case.query, json!({})).await;
        assert_eq!(
            error_code(&body),
            "UNAUTHENTICATED",
            "{}: {body}",
            case.query
        );
    }

    // A's data is exactly as it was, and A's VIEWER key still works.
    drained(&app).await;
    assert_eq!(snapshot(&app).await, before);
    let body = app
        .graphql_as(
            Some(&a.viewer_key),
            "{ viewer { keyName workspace } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["viewer"]["keyName"], "alpha-key", "{body}");
    eprintln!(
        "isolation: {} cases one by one, {} in a batch, {} aliases, 2 downloads, {} unauthenticated",
        cases.len(),
        bodies.len(),
        a.ids().len(),
        cases.len()
    );
}

/// The lowest role that may call each mutation (and query, where above VIEWER).
const MINIMUM_ROLE: &[(&str, &str)] = &[
    ("Mutation.upsertAccount", "MEMBER"),
    ("Mutation.upsertUser", "MEMBER"),
    ("Mutation.addTags", "MEMBER"),
    ("Mutation.removeTags", "MEMBER"),
    ("Mutation.trackEvent", "MEMBER"),
    ("Mutation.deleteAccount", "DEVELOPER"),
    ("Mutation.deleteUser", "DEVELOPER"),
    ("Mutation.bulkAddTags", "DEVELOPER"),
    ("Mutation.bulkRemoveTags", "DEVELOPER"),
    ("Mutation.renameTag", "DEVELOPER"),
    ("Mutation.mergeTags", "DEVELOPER"),
    ("Mutation.deleteTag", "DEVELOPER"),
    ("Mutation.setTagDescription", "DEVELOPER"),
    ("Mutation.createSegment", "DEVELOPER"),
    ("Mutation.updateSegment", "DEVELOPER"),
    ("Mutation.deleteSegment", "DEVELOPER"),
    ("Mutation.baselineSegment", "DEVELOPER"),
    ("Mutation.uploadScript", "DEVELOPER"),
    ("Mutation.setScriptEnabled", "DEVELOPER"),
    ("Mutation.deleteScript", "DEVELOPER"),
    ("Mutation.testScript", "DEVELOPER"),
    ("Mutation.importUsers", "DEVELOPER"),
    ("Mutation.importAccounts", "DEVELOPER"),
    ("Mutation.updateWorkspaceSettings", "ADMIN"),
    ("Mutation.createApiKey", "ADMIN"),
    ("Mutation.revokeApiKey", "ADMIN"),
    ("Query.automationEvents", "DEVELOPER"),
    ("Mutation.createWebhook", "ADMIN"),
    ("Mutation.updateWebhook", "ADMIN"),
    ("Mutation.deleteWebhook", "ADMIN"),
    ("Mutation.rotateWebhookSecret", "ADMIN"),
    ("Mutation.testWebhook", "ADMIN"),
    ("Mutation.redeliverWebhook", "ADMIN"),
    ("Mutation.replayWebhook", "ADMIN"),
    ("Query.webhooks", "ADMIN"),
];

const ROLES: [&str; 4] = ["VIEWER", "MEMBER", "DEVELOPER", "ADMIN"];

async fn every_role_is_refused_every_mutation_above_it(app: TestApp) {
    let a = seed_alpha(&app).await;
    let keys: Vec<String> = {
        let mut keys = vec![];
        for role in &ROLES[..3] {
            keys.push(app.key(&format!("as-{role}"), role).await);
        }
        keys
    };
    let before = snapshot(&app).await;
    // A valid call of each field, in A's own workspace.
    let calls: Vec<(&str, String)> = [
        ("Mutation.upsertAccount", "mutation { upsertAccount(input: { externalId: \"alpha-acct\", name: \"Renamed\" }) { id } }".to_owned()),
        ("Mutation.upsertUser", "mutation { upsertUser(input: { email: \"ana@alpha.example\", firstName: \"Changed\" }) { id } }".to_owned()),
        ("Mutation.addTags", format!("mutation {{ addTags(subjectId: \"{}\", tags: [\"New\"]) {{ __typename }} }}", a.user)),
        ("Mutation.removeTags", format!("mutation {{ removeTags(subjectId: \"{}\", tags: [\"Alpha Tag\"]) {{ __typename }} }}", a.user)),
        ("Mutation.trackEvent", format!("mutation {{ trackEvent(subjectId: \"{}\", name: \"x\") }}", a.user)),
        ("Mutation.deleteAccount", format!("mutation {{ deleteAccount(id: \"{}\") }}", a.account)),
        ("Mutation.deleteUser", format!("mutation {{ deleteUser(id: \"{}\") }}", a.user)),
        ("Mutation.bulkAddTags", format!("mutation {{ bulkAddTags(target: {{ ids: [\"{}\"] }}, tags: [\"New\"]) {{ changed }} }}", a.user)),
        ("Mutation.bulkRemoveTags", format!("mutation {{ bulkRemoveTags(target: {{ segmentId: \"{}\" }}, tags: [\"Alpha Tag\"]) {{ changed }} }}", a.segment)),
        ("Mutation.renameTag", "mutation { renameTag(name: \"Alpha Tag\", newName: \"B\") { id } }".to_owned()),
        ("Mutation.mergeTags", "mutation { mergeTags(names: [\"Alpha Follow\"], into: \"Alpha Tag\") { id } }".to_owned()),
        ("Mutation.deleteTag", "mutation { deleteTag(name: \"Alpha Tag\") }".to_owned()),
        ("Mutation.setTagDescription", "mutation { setTagDescription(name: \"Alpha Tag\", description: \"d\") { id } }".to_owned()),
        ("Mutation.createSegment", "mutation { createSegment(input: { name: \"New\", subjectKind: USER, filter: \"tagged(\\\"x\\\")\" }) { id } }".to_owned()),
        ("Mutation.updateSegment", format!("mutation {{ updateSegment(id: \"{}\", input: {{ name: \"Renamed\", subjectKind: USER, filter: \"tagged(\\\"x\\\")\" }}) {{ id }} }}", a.segment)),
        ("Mutation.deleteSegment", format!("mutation {{ deleteSegment(id: \"{}\") }}", a.segment)),
        ("Mutation.baselineSegment", format!("mutation {{ baselineSegment(id: \"{}\") {{ matched }} }}", a.segment)),
        ("Mutation.uploadScript", "mutation { uploadScript(input: { name: \"alpha-script\", source: \"fn on_tag_added(e) {}\" }) { id } }".to_owned()),
        ("Mutation.setScriptEnabled", format!("mutation {{ setScriptEnabled(id: \"{}\", enabled: false) {{ id }} }}", a.script)),
        ("Mutation.deleteScript", format!("mutation {{ deleteScript(id: \"{}\") }}", a.script)),
        ("Mutation.testScript", format!("mutation {{ testScript(source: \"fn on_tag_added(e) {{}}\", event: {{ kind: TAG_ADDED, subjectId: \"{}\", tag: \"x\" }}) {{ ok }} }}", a.user)),
        ("Mutation.importUsers", "mutation { importUsers(csv: \"email,tags\\nnew@alpha.example,New\\n\") { created } }".to_owned()),
        ("Mutation.importAccounts", "mutation { importAccounts(csv: \"external_id,name\\nnew,New\\n\") { created } }".to_owned()),
        ("Mutation.updateWorkspaceSettings", "mutation { updateWorkspaceSettings(lowercaseTags: true) { name } }".to_owned()),
        ("Mutation.createApiKey", "mutation { createApiKey(name: \"more\", role: ADMIN) { secret } }".to_owned()),
        ("Mutation.revokeApiKey", "mutation { revokeApiKey(name: \"alpha-key\") }".to_owned()),
        ("Query.automationEvents", "{ automationEvents { totalCount } }".to_owned()),
        ("Mutation.createWebhook", "mutation { createWebhook(input: { url: \"http://127.0.0.1:9/\", events: [TAG_ADDED] }) { secret } }".to_owned()),
        ("Mutation.updateWebhook", format!("mutation {{ updateWebhook(id: \"{}\", input: {{ url: \"http://127.0.0.1:9/\", events: [TAG_REMOVED] }}) {{ id }} }}", a.webhook)),
        ("Mutation.deleteWebhook", format!("mutation {{ deleteWebhook(id: \"{}\") }}", a.webhook)),
        ("Mutation.rotateWebhookSecret", format!("mutation {{ rotateWebhookSecret(id: \"{}\") {{ secret }} }}", a.webhook)),
        ("Mutation.testWebhook", format!("mutation {{ testWebhook(id: \"{}\") {{ id }} }}", a.webhook)),
        ("Mutation.redeliverWebhook", format!("mutation {{ redeliverWebhook(deliveryId: \"{}\") {{ id }} }}", a.delivery)),
        ("Mutation.replayWebhook", format!("mutation {{ replayWebhook(id: \"{}\", since: \"2020-01-01T00:00:00Z\") }}", a.webhook)),
        ("Query.webhooks", "{ webhooks { id } }".to_owned()),
    ]
    .into_iter()
    .collect();

    // Every mutation has a minimum role, and a call.
    let mutations: BTreeSet<String> = root_fields(&app)
        .await
        .into_iter()
        .filter(|f| f.starts_with("Mutation."))
        .collect();
    let ranked: BTreeSet<String> = MINIMUM_ROLE
        .iter()
        .filter(|(f, _)| f.starts_with("Mutation."))
        .map(|(f, _)| (*f).to_owned())
        .collect();
    assert_eq!(
        mutations, ranked,
        "every mutation needs a row in MINIMUM_ROLE"
    );
    assert_eq!(calls.len(), MINIMUM_ROLE.len());

    let mut refused = 0;
    for (field, minimum) in MINIMUM_ROLE {
        let (_, query) = calls.iter().find(|(f, _)| f == field).expect("a call");
        let rank = ROLES.iter().position(|r| r == minimum).unwrap();
        for (role, key) in ROLES[..rank].iter().zip(&keys) {
            let body = app.graphql_as(Some(key), query, json!({})).await;
            assert_eq!(error_code(&body), "FORBIDDEN", "{role} {field}: {body}");
            assert!(body["data"].is_null(), "{role} {field}: {body}");
            refused += 1;
        }
    }
    drained(&app).await;
    assert_eq!(
        snapshot(&app).await,
        before,
        "a refused call changed something"
    );
    eprintln!(
        "roles: {refused} refused calls across {} fields",
        MINIMUM_ROLE.len()
    );
}
