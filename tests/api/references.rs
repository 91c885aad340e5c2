//! Tag references (issue 18): where a tag is used, renames and merges that
//! rewrite filters and actions without moving members, refusals that protect.

use serde_json::{Value, json};

use crate::helpers::{TestApp, drained, error_code, error_message};
use crate::on_both_databases;

on_both_databases!(
    renaming_a_customer_tag_keeps_customers_and_churns_nobody,
    a_hierarchy_rename_follows_descendants_and_reports_kept_patterns,
    usage_lists_segments_and_scripts_without_growing_statements,
    merging_rewrites_patterns_and_actions,
    deleting_used_tags_and_segments_is_refused_naming_the_users,
    references_stay_in_their_workspace,
);

const ADD: &str =
    "mutation($id: ID!, $tags: [String!]!) { addTags(subjectId: $id, tags: $tags) { __typename } }";
const CREATE: &str =
    "mutation($input: SegmentInput!) { createSegment(input: $input) { id name filter } }";
const SEGMENT: &str = "query($id: ID!) { segment(id: $id) { filter memberCount onEntry { add { name } } onExit { add { name } } } }";
const TAGS_OF: &str = "query($id: ID!) { node(id: $id) { ... on User { tags { name } } } }";
const RENAME: &str = "mutation($name: String!, $new: String!) { renameTag(name: $name, newName: $new) {
    name rewrite { segments { name filter } keptPatterns { segment { name } pattern } scripts { name } } } }";

async fn segment(app: &TestApp, name: &str, filter: &str, extra: Value) -> String {
    let mut input = json!({ "name": name, "subjectKind": "USER", "filter": filter });
    if let (Some(input), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
        input.extend(extra.clone());
    }
    app.ok(CREATE, json!({ "input": input })).await["createSegment"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn tags_of(app: &TestApp, id: &str) -> Vec<String> {
    drained(app).await;
    let data = app.ok(TAGS_OF, json!({ "id": id })).await;
    names(&data["node"]["tags"])
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The issue's own example: Customer → Client.
async fn renaming_a_customer_tag_keeps_customers_and_churns_nobody(app: TestApp) {
    let ana = app.user("ana@acme.io").await;
    app.ok(ADD, json!({ "id": ana, "tags": ["Customer"] }))
        .await;
    let customers = segment(
        &app,
        "Customers",
        "tagged(\"Customer\")",
        json!({ "onEntry": { "add": ["Onboarded"] }, "onExit": { "add": ["Churned"] } }),
    )
    .await;
    app.ok(
        "mutation($id: ID!) { baselineSegment(id: $id) { changed } }",
        json!({ "id": customers }),
    )
    .await;
    assert_eq!(tags_of(&app, &ana).await, ["Customer", "Onboarded"]);

    let data = app
        .ok(RENAME, json!({ "name": "Customer", "new": "Client" }))
        .await;
    let rewrite = &data["renameTag"]["rewrite"];
    assert_eq!(
        rewrite["segments"],
        json!([{ "name": "Customers", "filter": "tagged(\"Client\")" }])
    );
    assert_eq!(rewrite["keptPatterns"], json!([]));
    let data = app.ok(SEGMENT, json!({ "id": customers })).await;
    assert_eq!(data["segment"]["filter"], "tagged(\"Client\")");
    assert_eq!(data["segment"]["memberCount"], 1);
    assert_eq!(
        tags_of(&app, &ana).await,
        ["Client", "Onboarded"],
        "nobody is tagged Churned"
    );
    let data = app
        .ok(
            "query($id: ID!) { segmentHistory(segmentId: $id) { nodes { op } } }",
            json!({ "id": customers }),
        )
        .await;
    let ops: Vec<&str> = data["segmentHistory"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["op"].as_str())
        .collect();
    assert!(!ops.contains(&"EXITED"), "no exit: {ops:?}");
}

async fn a_hierarchy_rename_follows_descendants_and_reports_kept_patterns(app: TestApp) {
    let bo = app.user("bo@acme.io").await;
    app.ok(
        ADD,
        json!({ "id": bo, "tags": ["sports/football", "Region: EU"] }),
    )
    .await;
    let fans = segment(
        &app,
        "Fans",
        "tagged(\"sports/*\") and tagged_any(\"sports/football\", \"sports/golf\")",
        json!({}),
    )
    .await;
    let regions = segment(&app, "Regions", "tagged(\"Region: *\")", json!({})).await;

    let data = app
        .ok(RENAME, json!({ "name": "sports", "new": "athletics" }))
        .await;
    assert_eq!(
        data["renameTag"]["rewrite"]["segments"],
        json!([{ "name": "Fans",
                 "filter": "tagged(\"athletics/*\") and tagged_any(\"athletics/football\", \"sports/golf\")" }])
    );
    let data = app.ok(SEGMENT, json!({ "id": fans })).await;
    assert_eq!(data["segment"]["memberCount"], 1);

    // `Region: *` selected "Region: EU" and does not select "Europe": kept and reported.
    let data = app
        .ok(RENAME, json!({ "name": "Region: EU", "new": "Europe" }))
        .await;
    assert_eq!(
        data["renameTag"]["rewrite"],
        json!({ "segments": [], "scripts": [],
                "keptPatterns": [{ "segment": { "name": "Regions" }, "pattern": "Region: *" }] })
    );
    let data = app.ok(SEGMENT, json!({ "id": regions })).await;
    assert_eq!(data["segment"]["filter"], "tagged(\"Region: *\")");
}

async fn usage_lists_segments_and_scripts_without_growing_statements(app: TestApp) {
    segment(
        &app,
        "VIPs",
        "tagged(\"VIP\") or tagged(\"Tier: *\")",
        json!({}),
    )
    .await;
    segment(
        &app,
        "Welcomers",
        "email contains \"@\"",
        json!({ "onEntry": { "add": ["Welcomed"] } }),
    )
    .await;
    let source = r#"fn on_tag_added(e) { if e.tag == "VIP" { e.subject.add_tag("Tier: Gold"); } }"#;
    app.ok(
        "mutation($input: ScriptInput!) { uploadScript(input: $input) { id } }",
        json!({ "input": { "name": "gold", "source": source } }),
    )
    .await;
    let user = app.user("cy@acme.io").await;
    let mut tags: Vec<String> = (0..20).map(|i| format!("Plain {i:02}")).collect();
    tags.extend(["VIP", "Tier: Gold", "Welcomed", "Unused"].map(String::from));
    app.ok(ADD, json!({ "id": user, "tags": tags })).await;
    drained(&app).await;

    let query = "query($n: Int!) { tags(first: $n) { nodes { name usage { segments { name } scripts { name } } } } }";
    let mut counts = Vec::new();
    for n in [5, 24] {
        let (data, statements) = app
            .statements_during(app.ok(query, json!({ "n": n })))
            .await;
        let own = statements
            .iter()
            .filter(|sql| !sql.contains("automation_events"))
            .count();
        counts.push(own);
        if n == 24 {
            let usage = |name: &str| {
                data["tags"]["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|t| t["name"] == name)
                    .map(|t| t["usage"].clone())
                    .unwrap_or_else(|| panic!("no tag {name}: {data}"))
            };
            assert_eq!(
                usage("VIP"),
                json!({ "segments": [{ "name": "VIPs" }], "scripts": [{ "name": "gold" }] })
            );
            assert_eq!(
                usage("Tier: Gold"),
                json!({ "segments": [{ "name": "VIPs" }], "scripts": [{ "name": "gold" }] })
            );
            assert_eq!(
                usage("Welcomed"),
                json!({ "segments": [{ "name": "Welcomers" }], "scripts": [] })
            );
            assert_eq!(usage("Unused"), json!({ "segments": [], "scripts": [] }));
        }
    }
    assert_eq!(
        counts[0], counts[1],
        "statements grow with the page: {counts:?}"
    );
    // A rename of a tag a script names says so; the script is not rewritten.
    let data = app
        .ok(RENAME, json!({ "name": "VIP", "new": "Very Important" }))
        .await;
    assert_eq!(
        data["renameTag"]["rewrite"]["scripts"],
        json!([{ "name": "gold" }])
    );
    let data = app.ok("{ scripts { source } }", json!({})).await;
    assert_eq!(data["scripts"][0]["source"], source);
}

async fn merging_rewrites_patterns_and_actions(app: TestApp) {
    let dee = app.user("dee@acme.io").await;
    app.ok(ADD, json!({ "id": dee, "tags": ["Lead"] })).await;
    let hot = segment(
        &app,
        "Hot",
        "tagged_any(\"Lead\", \"Prospect\")",
        json!({ "onEntry": { "add": ["Prospect"] }, "onExit": { "add": ["Cold"] } }),
    )
    .await;
    let data = app
        .ok(
            "mutation { mergeTags(names: [\"Lead\", \"Prospect\"], into: \"Opportunity\") {
                name rewrite { segments { name filter onEntry { add { name } } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["mergeTags"]["rewrite"]["segments"],
        json!([{ "name": "Hot", "filter": "tagged_any(\"Opportunity\")",
                 "onEntry": { "add": [{ "name": "Opportunity" }] } }])
    );
    let data = app.ok(SEGMENT, json!({ "id": hot })).await;
    assert_eq!(data["segment"]["memberCount"], 1);
    assert_eq!(tags_of(&app, &dee).await, ["Opportunity"]);
}

async fn deleting_used_tags_and_segments_is_refused_naming_the_users(app: TestApp) {
    let eve = app.user("eve@acme.io").await;
    app.ok(ADD, json!({ "id": eve, "tags": ["Beta", "Beta/Wave 1"] }))
        .await;
    let beta = segment(&app, "Beta users", "tagged(\"Beta/*\")", json!({})).await;
    segment(
        &app,
        "Beta tagger",
        "email contains \"eve\"",
        json!({ "onEntry": { "add": ["Beta"] } }),
    )
    .await;
    segment(&app, "In beta", "in_segment(\"Beta users\")", json!({})).await;
    segment(
        &app,
        "Also in beta",
        "in_segment(\"Beta users\") or tagged(\"X\")",
        json!({}),
    )
    .await;

    // The tag: named by one segment's filter (a descendant) and another's actions.
    let body = app
        .graphql("mutation { deleteTag(name: \"Beta\") }", json!({}))
        .await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    let message = error_message(&body);
    assert!(
        message.contains("\"Beta users\"") && message.contains("\"Beta tagger\""),
        "{message}"
    );
    assert_eq!(
        tags_of(&app, &eve).await,
        ["Beta", "Beta/Wave 1"],
        "nothing changed"
    );
    let data = app.ok("{ tag(name: \"Beta\") { name } }", json!({})).await;
    assert_eq!(data["tag"]["name"], "Beta");

    // The segment: named by two others through in_segment.
    let data = app
        .ok(
            "query($id: ID!) { segment(id: $id) { usedBy { name } } }",
            json!({ "id": beta }),
        )
        .await;
    assert_eq!(
        data["segment"]["usedBy"],
        json!([{ "name": "Also in beta" }, { "name": "In beta" }])
    );
    let body = app
        .graphql(
            "mutation($id: ID!) { deleteSegment(id: $id) }",
            json!({ "id": beta }),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    let message = error_message(&body);
    assert!(
        message.contains("\"In beta\"") && message.contains("\"Also in beta\""),
        "{message}"
    );
    let data = app
        .ok(
            "query($id: ID!) { segment(id: $id) { name } }",
            json!({ "id": beta }),
        )
        .await;
    assert_eq!(data["segment"]["name"], "Beta users");

    // Forced: the tag goes, the actions drop it, the filter keeps its text.
    app.ok(
        "mutation { deleteTag(name: \"Beta\", force: true) }",
        json!({}),
    )
    .await;
    assert_eq!(tags_of(&app, &eve).await, Vec::<String>::new());
    let data = app
        .ok(
            "{ segments { name filter onEntry { add { name } } } }",
            json!({}),
        )
        .await;
    let tagger = data["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Beta tagger")
        .unwrap();
    assert_eq!(tagger["onEntry"]["add"], json!([]));
    let users = data["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Beta users")
        .unwrap();
    assert_eq!(users["filter"], "tagged(\"Beta/*\")");
}

async fn references_stay_in_their_workspace(app: TestApp) {
    let other = app.other_workspace("globex").await;
    let create = json!({ "input": { "name": "Their customers", "subjectKind": "USER",
                                    "filter": "tagged(\"Customer\")" } });
    let body = app.graphql_as(Some(&other), CREATE, create).await;
    assert!(body.get("errors").is_none(), "{body}");
    let ana = app.user("ana@acme.io").await;
    app.ok(ADD, json!({ "id": ana, "tags": ["Customer"] }))
        .await;
    let data = app
        .ok(
            "{ tag(name: \"Customer\") { usage { segments { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["tag"]["usage"]["segments"], json!([]));
    let data = app
        .ok(RENAME, json!({ "name": "Customer", "new": "Client" }))
        .await;
    assert_eq!(data["renameTag"]["rewrite"]["segments"], json!([]));
    // Not named in this workspace: deleting it needs no force.
    app.ok("mutation { deleteTag(name: \"Client\") }", json!({}))
        .await;
    let body = app
        .graphql_as(Some(&other), "{ segments { filter } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["segments"],
        json!([{ "filter": "tagged(\"Customer\")" }]),
        "another workspace's filter is never rewritten nor a reason to refuse"
    );
}
