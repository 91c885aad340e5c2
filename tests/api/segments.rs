//! Segments through the API: filters everywhere, live membership, entry and
//! exit triggers, tracked events, the sweep, membership history, and the
//! segments the products we replace are known for.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    Settings, TestApp, drained, error_code, eventually, names, settled_tags, tags_of,
};
use crate::on_both_databases;

on_both_databases!(
    filter_errors_carry_line_and_column,
    filters_select_live_everywhere,
    highlevel_hot_lead_enters_and_exits_exactly_once,
    baseline_fires_entry_actions_for_current_members,
    renewal_risk_reaches_from_accounts_to_users,
    learning_platform_department_and_region,
    segment_names_and_references_are_guarded,
    scripts_hear_segment_events,
    segments_stay_in_their_workspace,
    listing_segments_of_many_subjects_does_not_grow_statements,
    renaming_merging_and_deleting_tags_keep_segments_meaning,
    any_user_follows_users_that_move_and_leave,
    activity_counts_entries_and_exits_per_day,
);

const CREATE: &str = "mutation($input: SegmentInput!) {
    createSegment(input: $input) { id name filter tracked timeBased memberCount
      onEntry { add { name } remove { name } } onExit { add { name } remove { name } } } }";
const ADD: &str =
    "mutation($id: ID!, $tags: [String!]!) { addTags(subjectId: $id, tags: $tags) { __typename } }";
const REMOVE: &str = "mutation($id: ID!, $tags: [String!]!) {
    removeTags(subjectId: $id, tags: $tags) { __typename } }";
const TRACK: &str = "mutation($id: ID!, $name: String!, $at: DateTime) {
    trackEvent(subjectId: $id, name: $name, at: $at) }";

async fn create(app: &TestApp, input: Value) -> Value {
    app.ok(CREATE, json!({ "input": input })).await["createSegment"].clone()
}

async fn history(app: &TestApp, segment: &str) -> Vec<(String, String)> {
    let data = app
        .ok(
            "query($id: ID!) { node(id: $id) { ... on Segment {
                history(first: 50) { totalCount nodes { op reason } } } } }",
            json!({ "id": segment }),
        )
        .await;
    data["node"]["history"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .rev()
        .map(|c| {
            (
                c["op"].as_str().unwrap().to_owned(),
                c["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(op: &str, reason: &str) -> (String, String) {
    (op.to_owned(), reason.to_owned())
}

async fn filter_errors_carry_line_and_column(app: TestApp) {
    let preview = "query($f: String!) { previewSegment(subjectKind: USER, filter: $f) { count } }";
    let body = app
        .graphql(
            preview,
            json!({ "f": "tagged(\"VIP\")\n  and nickname = \"x\"" }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["line"], 2, "{body:#}");
    assert_eq!(error["extensions"]["column"], 7, "{body:#}");
    assert!(
        error["message"].as_str().unwrap().contains("nickname"),
        "{body:#}"
    );

    // Each kind of mistake, in each place a filter is read.
    let cases = [
        ("tagged(\"VIP\") and", 1, 18),
        ("(tagged(\"a\")", 1, 13),
        ("last_seen_at < now - 30x", 1, 22),
        ("any_user(tagged(\"a\"))", 1, 1),
        ("in_segment(\"Nope\")", 1, 12),
        ("email = 3", 1, 7),
        ("events(\"login\", 7d) >= \"many\"", 1, 24),
    ];
    for (filter, line, column) in cases {
        for query in [
            "query($f: String!) { users(filter: $f) { totalCount } }",
            preview,
        ] {
            let body = app.graphql(query, json!({ "f": filter })).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{filter}: {body:#}");
            let extensions = &body["errors"][0]["extensions"];
            assert_eq!(
                (extensions["line"].clone(), extensions["column"].clone()),
                (json!(line), json!(column)),
                "{filter}: {body:#}"
            );
        }
    }
    // `account.` belongs to user filters.
    let body = app
        .graphql(
            "{ accounts(filter: \"account.name = \\\"x\\\"\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    // A bulk target and a saved segment read filters the same way.
    let body = app
        .graphql(
            "mutation { bulkAddTags(target: { subjectKind: USER, filter: \"tagged(\" }, tags: [\"x\"]) { changed } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let body = app
        .graphql(
            CREATE,
            json!({ "input": { "name": "Bad", "subjectKind": "USER", "filter": "tagged(1)" } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(
        app.rows("segments").await,
        0,
        "a failed create saves nothing"
    );
}

async fn filters_select_live_everywhere(app: TestApp) {
    let ann = app.user("ann@acme.io").await;
    let bob = app.user("bob@acme.io").await;
    let cy = app.user("cy@other.io").await;
    let acme = app.account("acme", "Acme").await;
    app.account("globex", "Globex").await;
    app.ok(
        ADD,
        json!({ "id": ann, "tags": ["VIP", "sports/football"] }),
    )
    .await;
    app.ok(ADD, json!({ "id": bob, "tags": ["sports/tennis"] }))
        .await;
    app.ok(ADD, json!({ "id": acme, "tags": ["Tier: Gold"] }))
        .await;
    app.ok(
        "mutation { upsertUser(input: { email: \"cy@other.io\", attributes: { seats: 12 } }) { id } }",
        json!({}),
    )
    .await;

    let users = |filter: &str| {
        let filter = filter.to_owned();
        let app = &app;
        async move {
            let data = app
                .ok(
                    "query($f: String!) { users(filter: $f, first: 10) { totalCount nodes { email } } }",
                    json!({ "f": filter }),
                )
                .await;
            let emails: Vec<String> = data["users"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["email"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(data["users"]["totalCount"], json!(emails.len()));
            emails
        }
    };
    assert_eq!(
        users("tagged(\"sports/*\")").await,
        ["ann@acme.io", "bob@acme.io"]
    );
    assert_eq!(
        users("tagged(\"VIP\") or attr.seats >= 10").await,
        ["ann@acme.io", "cy@other.io"]
    );
    assert_eq!(
        users("not tagged_any(\"VIP\", \"sports/*\")").await,
        ["cy@other.io"]
    );
    assert_eq!(
        users("email contains \"ACME\" and not tagged(\"VIP\")").await,
        ["bob@acme.io"]
    );
    let data = app
        .ok(
            "{ accounts(filter: \"tagged(\\\"Tier: *\\\")\") { totalCount nodes { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["accounts"]["totalCount"], 1);
    assert_eq!(data["accounts"]["nodes"][0]["name"], "Acme");

    // Preview: the count and a sample, nothing saved.
    let data = app
        .ok(
            "{ previewSegment(subjectKind: USER, filter: \"tagged(\\\"sports/*\\\")\") {
                count sample { ... on User { email } } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["previewSegment"]["count"], 2);
    assert_eq!(data["previewSegment"]["sample"][0]["email"], "ann@acme.io");
    assert_eq!(app.rows("segments").await, 0);

    // A saved segment is live: members, memberCount, User.segments.
    let fans = create(
        &app,
        json!({ "name": "Fans", "folder": "Sports", "subjectKind": "USER", "filter": "tagged(\"sports/*\")" }),
    )
    .await;
    assert_eq!(fans["memberCount"], 2);
    assert_eq!(fans["tracked"], false, "no triggers, no listening script");
    app.ok(ADD, json!({ "id": cy, "tags": ["sports/golf"] }))
        .await;
    let data = app
        .ok(
            "query($id: ID!) { node(id: $id) { ... on Segment { memberCount
                members(first: 2) { totalCount pageInfo { hasNextPage endCursor } nodes { ... on User { email segments { name } } } } } } }",
            json!({ "id": fans["id"] }),
        )
        .await;
    let segment = &data["node"];
    assert_eq!(segment["memberCount"], 3);
    assert_eq!(segment["members"]["totalCount"], 3);
    assert_eq!(segment["members"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(
        segment["members"]["nodes"][0]["segments"][0]["name"],
        "Fans"
    );
    let data = app
        .ok("{ segments(folder: \"Sports\") { name } }", json!({}))
        .await;
    assert_eq!(data["segments"][0]["name"], "Fans");

    // Bulk targets: a segment's members and a filter's matches.
    let data = app
        .ok(
            "mutation($id: ID!) { bulkAddTags(target: { segmentId: $id }, tags: [\"Fan\"]) { matched changed } }",
            json!({ "id": fans["id"] }),
        )
        .await;
    assert_eq!(data["bulkAddTags"], json!({ "matched": 3, "changed": 3 }));
    let data = app
        .ok(
            "mutation { bulkRemoveTags(target: { subjectKind: USER, filter: \"tagged(\\\"VIP\\\")\" }, tags: [\"Fan\"]) { matched changed } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["bulkRemoveTags"],
        json!({ "matched": 1, "changed": 1 })
    );
    assert_eq!(tags_of(&app, &ann).await, ["VIP", "sports/football"]);
    let body = app
        .graphql(
            "mutation { bulkAddTags(target: { subjectKind: USER }, tags: [\"x\"]) { changed } }",
            json!({}),
        )
        .await;
    assert_eq!(
        error_code(&body),
        "BAD_USER_INPUT",
        "a kind without a filter"
    );
}

/// HighLevel's "Hot Lead and opened an email in 7 days", with entry and exit tags.
async fn highlevel_hot_lead_enters_and_exits_exactly_once(app: TestApp) {
    let lead = app.user("lead@acme.io").await;
    let segment = create(
        &app,
        json!({
            "name": "Hot and engaged",
            "subjectKind": "USER",
            "filter": "tagged(\"Hot Lead\") and events(\"email_opened\", 7d) >= 1",
            "onEntry": { "add": ["Call Now"] },
            "onExit": { "add": ["Follow Up"], "remove": ["Call Now"] },
        }),
    )
    .await;
    assert_eq!(segment["tracked"], true);
    assert_eq!(segment["timeBased"], true);
    assert_eq!(segment["onExit"]["remove"][0]["name"], "Call Now");
    let id = segment["id"].as_str().unwrap().to_owned();

    app.ok(ADD, json!({ "id": lead, "tags": ["Hot Lead"] }))
        .await;
    assert_eq!(settled_tags(&app, &lead).await, ["Hot Lead"]);
    app.ok(TRACK, json!({ "id": lead, "name": "email_opened" }))
        .await;
    assert_eq!(settled_tags(&app, &lead).await, ["Call Now", "Hot Lead"]);
    // Still a member: no second entry.
    app.ok(TRACK, json!({ "id": lead, "name": "email_opened" }))
        .await;
    app.ok(ADD, json!({ "id": lead, "tags": ["Other"] })).await;
    drained(&app).await;
    assert_eq!(history(&app, &id).await, [pair("ENTERED", "EVENT")]);

    app.ok(REMOVE, json!({ "id": lead, "tags": ["Hot Lead"] }))
        .await;
    assert_eq!(settled_tags(&app, &lead).await, ["Follow Up", "Other"]);
    assert_eq!(
        history(&app, &id).await,
        [pair("ENTERED", "EVENT"), pair("EXITED", "TAGS")]
    );
    // The trigger's changes say who made them and why.
    let data = app
        .ok(
            "query($id: ID!) { node(id: $id) { ... on User {
                history(first: 10) { nodes { op tag { name } source actor causeId } } } }
              segmentHistory(subjectId: $id) { nodes { id op cause { tag { name } op } subject { ... on User { email } } } } }",
            json!({ "id": lead }),
        )
        .await;
    let changes = data["node"]["history"]["nodes"].as_array().unwrap();
    let follow_up = changes
        .iter()
        .find(|c| c["tag"]["name"] == "Follow Up")
        .expect("the exit tag");
    assert_eq!(follow_up["source"], "TRIGGER");
    assert_eq!(follow_up["actor"], "Hot and engaged");
    let exit = &data["segmentHistory"]["nodes"][0];
    assert_eq!(exit["op"], "EXITED");
    assert_eq!(follow_up["causeId"], exit["id"], "caused by the exit");
    assert_eq!(
        exit["cause"],
        json!({ "tag": { "name": "Hot Lead" }, "op": "REMOVED" })
    );
    assert_eq!(exit["subject"]["email"], "lead@acme.io");
    // Events: exactly one of each, nothing left pending or failed.
    assert_eq!(
        app.rows("automation_events WHERE kind = 'SEGMENT_ENTERED'")
            .await,
        1
    );
    assert_eq!(
        app.rows("automation_events WHERE kind = 'SEGMENT_EXITED'")
            .await,
        1
    );
    assert_eq!(
        app.rows("automation_events WHERE status <> 'done'").await,
        0
    );
}

async fn baseline_fires_entry_actions_for_current_members(app: TestApp) {
    let mut users = Vec::new();
    for n in 0..5 {
        let id = app.user(&format!("u{n}@acme.io")).await;
        if n < 3 {
            app.ok(ADD, json!({ "id": id, "tags": ["Trial"] })).await;
        }
        users.push(id);
    }
    let segment = create(
        &app,
        json!({ "name": "Trials", "subjectKind": "USER", "filter": "tagged(\"Trial\")",
                "onEntry": { "add": ["Onboarding"] } }),
    )
    .await;
    assert_eq!(segment["memberCount"], 3);
    drained(&app).await;
    // Creating records the members without firing.
    assert_eq!(tags_of(&app, &users[0]).await, ["Trial"]);
    assert_eq!(history(&app, segment["id"].as_str().unwrap()).await, []);
    let data = app
        .ok(
            "mutation($id: ID!) { baselineSegment(id: $id) { matched changed } }",
            json!({ "id": segment["id"] }),
        )
        .await;
    assert_eq!(
        data["baselineSegment"],
        json!({ "matched": 3, "changed": 3 })
    );
    assert_eq!(settled_tags(&app, &users[0]).await, ["Onboarding", "Trial"]);
    assert_eq!(tags_of(&app, &users[4]).await, Vec::<String>::new());
    // A new member enters and fires once.
    app.ok(ADD, json!({ "id": users[4], "tags": ["Trial"] }))
        .await;
    assert_eq!(settled_tags(&app, &users[4]).await, ["Onboarding", "Trial"]);
    assert_eq!(
        app.rows("tag_changes WHERE source = 'TRIGGER'").await,
        4,
        "three from the baseline, one from the entry"
    );
}

/// Totango's renewal risk on accounts, reaching users through `account.`.
async fn renewal_risk_reaches_from_accounts_to_users(app: TestApp) {
    let acme = app.account("acme", "Acme").await;
    app.ok(
        "mutation { upsertUser(input: { email: \"cto@acme.io\", accountExternalId: \"acme\" }) { id } }",
        json!({}),
    )
    .await;
    let cto = app
        .ok("{ user(email: \"cto@acme.io\") { id } }", json!({}))
        .await["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let risk = create(
        &app,
        json!({ "name": "Renewal risk", "subjectKind": "ACCOUNT",
                "filter": "attr.renewal_date < now + 90d and tagged(\"Health: Poor\")",
                "onEntry": { "add": ["Renewal Risk"] }, "onExit": { "remove": ["Renewal Risk"] } }),
    )
    .await;
    create(
        &app,
        json!({ "name": "Contacts at risk", "subjectKind": "USER",
                "filter": "account.tagged(\"Renewal Risk\")",
                "onEntry": { "add": ["Call the CTO"] } }),
    )
    .await;
    app.ok(ADD, json!({ "id": acme, "tags": ["Health: Poor"] }))
        .await;
    assert_eq!(settled_tags(&app, &acme).await, ["Health: Poor"]);
    // A field change (upsert) moves the account in; its trigger's tag moves its user in.
    app.ok(
        "mutation($renewal: String!) { upsertAccount(input: { externalId: \"acme\", name: \"Acme\", attributes: { renewal_date: $renewal } }) { id } }",
        json!({ "renewal": (chrono::Utc::now() + chrono::TimeDelta::days(45)).format("%Y-%m-%d").to_string() }),
    )
    .await;
    assert_eq!(
        settled_tags(&app, &acme).await,
        ["Health: Poor", "Renewal Risk"]
    );
    assert_eq!(tags_of(&app, &cto).await, ["Call the CTO"]);
    let reasons = history(&app, risk["id"].as_str().unwrap()).await;
    assert_eq!(reasons, [pair("ENTERED", "FIELDS")]);
    // The SQL side agrees (members are evaluated live, with the compiler).
    let data = app
        .ok(
            "query($id: ID!) { node(id: $id) { ... on Segment { memberCount } }
               accounts(filter: \"attr.renewal_date < now + 90d\") { totalCount } }",
            json!({ "id": risk["id"] }),
        )
        .await;
    assert_eq!(data["node"]["memberCount"], 1);
    assert_eq!(data["accounts"]["totalCount"], 1);
    let data = app
        .ok(
            "{ segmentHistory(first: 10) { nodes { reason segment { name } } } }",
            json!({}),
        )
        .await;
    let contact = data["segmentHistory"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["segment"]["name"] == "Contacts at risk")
        .expect("the contact entered");
    assert_eq!(contact["reason"], "RELATED");
    // Health recovers: the account leaves; the contact's tag is sticky.
    app.ok(REMOVE, json!({ "id": acme, "tags": ["Health: Poor"] }))
        .await;
    assert_eq!(settled_tags(&app, &acme).await, Vec::<String>::new());
    assert_eq!(tags_of(&app, &cto).await, ["Call the CTO"]);
    let data = app
        .ok(
            "query($id: ID!) { node(id: $id) { ... on Account { segments { name } } } }",
            json!({ "id": acme }),
        )
        .await;
    assert_eq!(data["node"]["segments"], json!([]));
}

/// A learning platform's key:value tags: "Department: Sales and Region: *".
async fn learning_platform_department_and_region(app: TestApp) {
    let rows = [
        ("a@school.io", vec!["Department: Sales", "Region: North"]),
        ("b@school.io", vec!["Department: Sales"]),
        ("c@school.io", vec!["Department: Support", "Region: South"]),
        ("d@school.io", vec!["Department: Sales", "Region: South"]),
    ];
    for (email, tags) in &rows {
        let id = app.user(email).await;
        app.ok(ADD, json!({ "id": id, "tags": tags })).await;
    }
    let segment = create(
        &app,
        json!({ "name": "Sales with a region", "subjectKind": "USER",
                "filter": "tagged(\"Department: Sales\") and tagged(\"Region: *\")" }),
    )
    .await;
    assert_eq!(segment["memberCount"], 2);
    let data = app
        .ok(
            "query($id: ID!) { node(id: $id) { ... on Segment { members { nodes { ... on User { email } } } } } }",
            json!({ "id": segment["id"] }),
        )
        .await;
    assert_eq!(
        data["node"]["members"]["nodes"],
        json!([{ "email": "a@school.io" }, { "email": "d@school.io" }])
    );
}

async fn segment_names_and_references_are_guarded(app: TestApp) {
    let base = create(
        &app,
        json!({ "name": "VIPs", "subjectKind": "USER", "filter": "tagged(\"VIP\")" }),
    )
    .await;
    let body = app
        .graphql(
            CREATE,
            json!({ "input": { "name": " VIPs ", "subjectKind": "USER", "filter": "tagged(\"x\")" } }),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT");
    let top = create(
        &app,
        json!({ "name": "Top", "subjectKind": "USER", "filter": "in_segment(\"VIPs\") and tagged(\"Top\")" }),
    )
    .await;
    assert_eq!(top["filter"], "in_segment(\"VIPs\") and tagged(\"Top\")");
    // A cycle through another segment is refused, with its position.
    let update = "mutation($id: ID!, $input: SegmentInput!) { updateSegment(id: $id, input: $input) { filter } }";
    let body = app
        .graphql(
            update,
            json!({ "id": base["id"], "input": { "name": "VIPs", "subjectKind": "USER", "filter": "in_segment(\"Top\")" } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
    assert_eq!(body["errors"][0]["extensions"]["column"], 12);
    // Renaming or deleting a segment another one names is refused.
    let body = app
        .graphql(
            update,
            json!({ "id": base["id"], "input": { "name": "Renamed", "subjectKind": "USER", "filter": "tagged(\"VIP\")" } }),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT");
    let delete = "mutation($id: ID!) { deleteSegment(id: $id) }";
    let body = app.graphql(delete, json!({ "id": base["id"] })).await;
    assert_eq!(error_code(&body), "CONFLICT");
    app.ok(delete, json!({ "id": top["id"] })).await;
    app.ok(delete, json!({ "id": base["id"] })).await;
    let body = app.graphql(delete, json!({ "id": base["id"] })).await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    // Roles: viewers read, developers define, members track events.
    let viewer = app.key("viewer", "VIEWER").await;
    let member = app.key("member", "MEMBER").await;
    let body = app
        .graphql_as(
            Some(&viewer),
            CREATE,
            json!({ "input": { "name": "X", "subjectKind": "USER", "filter": "tagged(\"x\")" } }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let user = app.user("m@acme.io").await;
    let body = app
        .graphql_as(Some(&viewer), TRACK, json!({ "id": user, "name": "login" }))
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let body = app
        .graphql_as(Some(&member), TRACK, json!({ "id": user, "name": "login" }))
        .await;
    assert_eq!(body["data"]["trackEvent"], true, "{body:#}");
    let body = app
        .graphql(TRACK, json!({ "id": user, "name": "  " }))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(app.rows("events").await, 1);
}

async fn scripts_hear_segment_events(app: TestApp) {
    let segment = create(
        &app,
        json!({ "name": "Champions", "subjectKind": "USER", "filter": "tagged(\"NPS: 10\")" }),
    )
    .await;
    assert_eq!(segment["tracked"], false);
    let source = r#"
fn on_segment_entered(event) {
    event.subject.add_tag(`Joined ${event.segment}`);
    log(`${event.source} ${event.segment}`);
}
"#;
    app.ok(
        "mutation($input: ScriptInput!) { uploadScript(input: $input) { id } }",
        json!({ "input": { "name": "welcome", "source": source } }),
    )
    .await;
    let data = app
        .ok(
            "query($id: ID!) { node(id: $id) { ... on Segment { tracked } } }",
            json!({ "id": segment["id"] }),
        )
        .await;
    assert_eq!(
        data["node"]["tracked"], true,
        "a listening script tracks every segment"
    );
    let fan = app.user("fan@acme.io").await;
    app.ok(ADD, json!({ "id": fan, "tags": ["NPS: 10"] })).await;
    assert_eq!(
        settled_tags(&app, &fan).await,
        ["Joined Champions", "NPS: 10"]
    );
    let data = app
        .ok(
            "{ scripts { runs { nodes { event ok logs } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["scripts"][0]["runs"]["nodes"][0],
        json!({ "event": "SEGMENT_ENTERED", "ok": true, "logs": ["TRIGGER Champions"] })
    );
    // testScript with a segment event.
    let data = app
        .ok(
            "mutation($s: String!, $e: TestEventInput!) { testScript(source: $s, event: $e) { ok logs } }",
            json!({ "s": source, "e": { "kind": "SEGMENT_ENTERED", "subjectId": fan, "segmentId": segment["id"] } }),
        )
        .await;
    assert_eq!(data["testScript"]["logs"], json!(["TRIGGER Champions"]));
}

async fn segments_stay_in_their_workspace(app: TestApp) {
    let segment = create(
        &app,
        json!({ "name": "Secret", "subjectKind": "USER", "filter": "tagged(\"VIP\")" }),
    )
    .await;
    let vip = app.user("vip@acme.io").await;
    app.ok(ADD, json!({ "id": vip, "tags": ["VIP"] })).await;
    let other = app.other_workspace("other").await;
    let id = segment["id"].clone();
    let body = app
        .graphql_as(
            Some(&other),
            "query($id: ID!) { segment(id: $id) { name } node(id: $id) { id } segments { name } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        body["data"],
        json!({ "segment": null, "node": null, "segments": [] })
    );
    for (query, code) in [
        ("mutation($id: ID!) { deleteSegment(id: $id) }", "NOT_FOUND"),
        (
            "mutation($id: ID!) { baselineSegment(id: $id) { changed } }",
            "NOT_FOUND",
        ),
        (
            "mutation($id: ID!) { bulkAddTags(target: { segmentId: $id }, tags: [\"x\"]) { changed } }",
            "NOT_FOUND",
        ),
        (
            "mutation($id: ID!) { updateSegment(id: $id, input: { name: \"x\", subjectKind: USER, filter: \"tagged(\\\"a\\\")\" }) { id } }",
            "NOT_FOUND",
        ),
    ] {
        let body = app
            .graphql_as(Some(&other), query, json!({ "id": id }))
            .await;
        assert_eq!(error_code(&body), code, "{query}: {body:#}");
    }
    // Names of another workspace's segments are unknown; its users are not counted.
    let body = app
        .graphql_as(
            Some(&other),
            "{ previewSegment(subjectKind: USER, filter: \"in_segment(\\\"Secret\\\")\") { count } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let body = app
        .graphql_as(
            Some(&other),
            "{ previewSegment(subjectKind: USER, filter: \"tagged(\\\"VIP\\\")\") { count } users(filter: \"tagged(\\\"VIP\\\")\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["previewSegment"]["count"], 0, "{body:#}");
    assert_eq!(body["data"]["users"]["totalCount"], 0);
    let body = app
        .graphql_as(Some(&other), TRACK, json!({ "id": vip, "name": "login" }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    assert_eq!(app.rows("segments").await, 1);
}

/// Filters that read the clock: the sweep moves subjects in and out as
/// time passes (Totango's power users and inactive users, sticky tags).
async fn time_passes(app: TestApp) {
    let power = create(
        &app,
        json!({ "name": "Power users", "subjectKind": "USER",
                "filter": "active_days(30d) >= 3",
                "onEntry": { "add": ["Power User"] } }),
    )
    .await;
    let inactive = create(
        &app,
        json!({ "name": "Inactive", "subjectKind": "USER",
                "filter": "last_seen_at < now - 30d",
                "onEntry": { "add": ["Inactive"] }, "onExit": { "remove": ["Inactive"] } }),
    )
    .await;
    let pro = app.user("pro@acme.io").await;
    let now = chrono::Utc::now();
    for days_ago in [1, 2, 3] {
        let at = now - chrono::TimeDelta::days(days_ago);
        app.ok(
            TRACK,
            json!({ "id": pro, "name": "login", "at": at.to_rfc3339() }),
        )
        .await;
    }
    assert_eq!(settled_tags(&app, &pro).await, ["Power User"]);
    let sleeper = app.user("sleeper@acme.io").await;
    let seen = (now - chrono::TimeDelta::days(29)).to_rfc3339();
    app.ok(
        "mutation($at: DateTime) { upsertUser(input: { email: \"sleeper@acme.io\", lastSeenAt: $at }) { id } }",
        json!({ "at": seen }),
    )
    .await;
    assert_eq!(settled_tags(&app, &sleeper).await, Vec::<String>::new());

    // 32 days later: the sleeper is inactive, the power user no longer is
    // one (and, the login being old, inactive too); "Power User" is sticky.
    app.clock.advance(Duration::from_secs(32 * 86_400));
    let tags = "query($a: ID!, $b: ID!) { a: node(id: $a) { ... on User { tags { name } } }
                                         b: node(id: $b) { ... on User { tags { name } } } }";
    let data = eventually(&app, tags, json!({ "a": pro, "b": sleeper }), |d| {
        names(&d["b"]["tags"]) == ["Inactive"] && names(&d["a"]["tags"]).len() == 2
    })
    .await;
    assert_eq!(names(&data["a"]["tags"]), ["Inactive", "Power User"]);
    // (The sweep visits one segment after the other.)
    eventually(
        &app,
        "query($id: ID!) { node(id: $id) { ... on Segment { history { totalCount } } } }",
        json!({ "id": power["id"] }),
        |d| d["node"]["history"]["totalCount"] == 2,
    )
    .await;
    // The exit is noticed by the sweep (TIME), or first by the re-evaluation
    // that the "Inactive" entry's tag triggers (TAGS) when a sweep that
    // began before the clock moved reaches "Inactive" before it comes back
    // to "Power users".
    let power_history = history(&app, power["id"].as_str().unwrap()).await;
    assert!(
        power_history == [pair("ENTERED", "EVENT"), pair("EXITED", "TIME")]
            || power_history == [pair("ENTERED", "EVENT"), pair("EXITED", "TAGS")],
        "{power_history:?}"
    );
    // The sleeper comes back (the event's time is the clock's now): not inactive any more.
    app.ok(TRACK, json!({ "id": sleeper, "name": "login" }))
        .await;
    assert_eq!(settled_tags(&app, &sleeper).await, Vec::<String>::new());
    assert_eq!(
        history(&app, inactive["id"].as_str().unwrap()).await,
        [
            pair("ENTERED", "TIME"),
            pair("ENTERED", "TIME"),
            pair("EXITED", "EVENT")
        ]
    );
    // Further sweeps change nothing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drained(&app).await;
    assert_eq!(app.rows("segment_changes").await, 5);
}

/// The sweep every 50 ms, so that time-based segments follow the clock.
const SWEEP_OFTEN: Settings = Settings {
    server: |_| {},
    automation: |a| a.segment_sweep_ms = 50,
};
on_both_databases!(settings = SWEEP_OFTEN; time_passes);

/// `User.segments` on a page of users: one query per segment, whatever the
/// number of users (a DataLoader), and members with their tags likewise.
async fn listing_segments_of_many_subjects_does_not_grow_statements(app: TestApp) {
    for n in 0..30 {
        let id = app.user(&format!("u{n}@acme.io")).await;
        let tag = if n % 2 == 0 { "Even" } else { "Odd" };
        app.ok(ADD, json!({ "id": id, "tags": [tag] })).await;
    }
    for (name, tag) in [("Evens", "Even"), ("Odds", "Odd"), ("All", "*")] {
        let filter = if tag == "*" {
            "tagged_any(\"Even\", \"Odd\")".to_owned()
        } else {
            format!("tagged({tag:?})")
        };
        create(
            &app,
            json!({ "name": name, "subjectKind": "USER", "filter": filter,
                    "folder": if tag == "*" { "Big" } else { "Small" } }),
        )
        .await;
    }
    drained(&app).await;
    let users = "query($n: Int!) { users(first: $n) { nodes { email segments { name } } } }";
    // (One segment: several segments resolve concurrently and share the
    // request's cache in an order that varies.)
    let members = "query($n: Int!) { segments(folder: \"Big\") { members(first: $n) { nodes { ... on User { tags { name } } } } } }";
    for query in [users, members] {
        let mut counts = Vec::new();
        let mut ran = Vec::new();
        for n in [5, 30] {
            let (data, statements) = app
                .statements_during(app.ok(query, json!({ "n": n })))
                .await;
            if query == users {
                let nodes = data["users"]["nodes"].as_array().unwrap();
                assert_eq!(nodes.len(), n);
                assert!(
                    nodes
                        .iter()
                        .all(|u| u["segments"].as_array().unwrap().len() == 2)
                );
            }
            counts.push(statements.len());
            ran.push(statements);
        }
        assert_eq!(
            counts[0], counts[1],
            "the statement count does not grow with the page: {query}\n{ran:#?}"
        );
    }
}

/// Tags renamed, merged or deleted under a tracked segment's filter move its
/// members, announced like any other entry and exit.
async fn renaming_merging_and_deleting_tags_keep_segments_meaning(app: TestApp) {
    let user = app.user("ann@acme.io").await;
    app.ok(ADD, json!({ "id": user, "tags": ["Lead"] })).await;
    let segment = create(
        &app,
        json!({ "name": "Leads", "subjectKind": "USER", "filter": "tagged(\"Lead\")",
                "onEntry": { "add": ["In"] }, "onExit": { "remove": ["In"], "add": ["Out"] } }),
    )
    .await;
    let id = segment["id"].as_str().unwrap().to_owned();
    let filter = "query($id: ID!) { segment(id: $id) { filter memberCount } }";
    // A rename rewrites the filter: the member stays, no trigger fires.
    let data = app
        .ok(
            "mutation { renameTag(name: \"Lead\", newName: \"Prospect\") { name rewrite { segments { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["renameTag"]["rewrite"]["segments"],
        json!([{ "name": "Leads" }])
    );
    assert_eq!(settled_tags(&app, &user).await, ["Prospect"]);
    let data = app.ok(filter, json!({ "id": id })).await;
    assert_eq!(
        data["segment"],
        json!({ "filter": "tagged(\"Prospect\")", "memberCount": 1 })
    );
    // A merge too.
    app.ok(
        "mutation { mergeTags(names: [\"Prospect\"], into: \"Lead\") { name } }",
        json!({}),
    )
    .await;
    assert_eq!(settled_tags(&app, &user).await, ["Lead"]);
    let data = app.ok(filter, json!({ "id": id })).await;
    assert_eq!(
        data["segment"],
        json!({ "filter": "tagged(\"Lead\")", "memberCount": 1 })
    );
    // Deleting the tag the segment names is refused, naming it; forced, the member leaves.
    let body = app
        .graphql("mutation { deleteTag(name: \"Lead\") }", json!({}))
        .await;
    assert_eq!(crate::helpers::error_code(&body), "CONFLICT", "{body}");
    assert!(
        crate::helpers::error_message(&body).contains("\"Leads\""),
        "{body}"
    );
    assert_eq!(
        settled_tags(&app, &user).await,
        ["Lead"],
        "a refusal changes nothing"
    );
    app.ok(
        "mutation { deleteTag(name: \"Lead\", force: true) }",
        json!({}),
    )
    .await;
    assert_eq!(settled_tags(&app, &user).await, ["Out"]);
    assert_eq!(history(&app, &id).await, [pair("EXITED", "TAGS")]);
}

/// `any_user(...)` account segments follow their users: a user's tags, a
/// user moving to another account, a user deleted.
async fn any_user_follows_users_that_move_and_leave(app: TestApp) {
    let acme = app.account("acme", "Acme").await;
    let globex = app.account("globex", "Globex").await;
    let upsert = "mutation($account: String) { upsertUser(input: { email: \"champ@x.io\", accountExternalId: $account }) { id } }";
    let champ = app.ok(upsert, json!({ "account": "acme" })).await["upsertUser"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    create(
        &app,
        json!({ "name": "Has a champion", "subjectKind": "ACCOUNT",
                "filter": "any_user(tagged(\"Champion\"))",
                "onEntry": { "add": ["Championed"] }, "onExit": { "remove": ["Championed"] } }),
    )
    .await;
    app.ok(ADD, json!({ "id": champ, "tags": ["Champion"] }))
        .await;
    assert_eq!(settled_tags(&app, &acme).await, ["Championed"]);
    // The champion moves to Globex: Acme leaves, Globex enters.
    app.ok(upsert, json!({ "account": "globex" })).await;
    assert_eq!(settled_tags(&app, &acme).await, Vec::<String>::new());
    assert_eq!(tags_of(&app, &globex).await, ["Championed"]);
    // The champion is deleted: Globex leaves.
    app.ok(
        "mutation($id: ID!) { deleteUser(id: $id) }",
        json!({ "id": champ }),
    )
    .await;
    assert_eq!(settled_tags(&app, &globex).await, Vec::<String>::new());
    let data = app
        .ok("{ segmentHistory { nodes { op reason } } }", json!({}))
        .await;
    let reasons: Vec<String> = data["segmentHistory"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|c| {
            format!(
                "{} {}",
                c["op"].as_str().unwrap(),
                c["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        reasons,
        // Globex enters (its new user) before Acme leaves (the old account).
        [
            "ENTERED RELATED",
            "ENTERED RELATED",
            "EXITED RELATED",
            "EXITED RELATED"
        ]
    );
}

/// `segmentActivity`: a tracked segment's entries and exits per UTC day,
/// every day of the range listed, agreeing with `segmentHistory`.
async fn activity_counts_entries_and_exits_per_day(app: TestApp) {
    let segment = create(
        &app,
        json!({ "name": "VIPs", "subjectKind": "USER", "filter": "tagged(\"VIP\")",
                "onEntry": { "add": ["Welcome"] } }),
    )
    .await;
    let id = segment["id"].as_str().unwrap().to_owned();
    let ana = app.user("ana@acme.io").await;
    let bob = app.user("bob@acme.io").await;
    app.ok(ADD, json!({ "id": ana, "tags": ["VIP"] })).await;
    app.ok(ADD, json!({ "id": bob, "tags": ["VIP"] })).await;
    app.ok(REMOVE, json!({ "id": ana, "tags": ["VIP"] })).await;
    drained(&app).await;
    // A day later (by the server's clock), Bob leaves.
    app.clock.advance(Duration::from_secs(24 * 3600));
    app.ok(REMOVE, json!({ "id": bob, "tags": ["VIP"] })).await;
    drained(&app).await;

    let query = "query($id: ID!, $days: Int!) {
        segmentActivity(segmentId: $id, days: $days) { date entered exited }
        segmentHistory(segmentId: $id, first: 100) { nodes { op at } } }";
    let data = app.ok(query, json!({ "id": id, "days": 5 })).await;
    let days = data["segmentActivity"].as_array().unwrap();
    assert_eq!(days.len(), 5, "{data}");
    let dates: Vec<chrono::NaiveDate> = days
        .iter()
        .map(|d| d["date"].as_str().unwrap().parse().expect("YYYY-MM-DD"))
        .collect();
    assert!(
        dates.windows(2).all(|w| w[1] == w[0].succ_opt().unwrap()),
        "{data}"
    );
    // The history, counted per UTC day here, says the same.
    let mut expected: std::collections::BTreeMap<String, (i64, i64)> = dates
        .iter()
        .map(|d| (d.format("%Y-%m-%d").to_string(), (0, 0)))
        .collect();
    for change in data["segmentHistory"]["nodes"].as_array().unwrap() {
        let at: chrono::DateTime<chrono::Utc> = change["at"].as_str().unwrap().parse().unwrap();
        let day = expected
            .get_mut(&at.format("%Y-%m-%d").to_string())
            .expect("a change inside the range");
        match change["op"].as_str().unwrap() {
            "ENTERED" => day.0 += 1,
            _ => day.1 += 1,
        }
    }
    let counted: std::collections::BTreeMap<String, (i64, i64)> = days
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap().to_owned(),
                (
                    d["entered"].as_i64().unwrap(),
                    d["exited"].as_i64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(counted, expected);
    // Two entered and one left on one day, the other left on the last day.
    let busy: Vec<(i64, i64)> = counted.values().copied().filter(|c| *c != (0, 0)).collect();
    assert_eq!(busy, [(2, 1), (0, 1)], "{data}");
    assert_eq!(counted.values().last(), Some(&(0, 1)), "{data}");

    // One day: today only.
    let data = app.ok(query, json!({ "id": id, "days": 1 })).await;
    assert_eq!(
        data["segmentActivity"],
        json!([{ "date": dates[4].format("%Y-%m-%d").to_string(), "entered": 0, "exited": 1 }])
    );
    for days in [0, 367] {
        let body = app.graphql(query, json!({ "id": id, "days": days })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    }
    // Another workspace: no such segment.
    let other = app.other_workspace("other").await;
    let body = app
        .graphql_as(
            Some(&other),
            "query($id: ID!) { segmentActivity(segmentId: $id) { date } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
}
