//! Tags through the API: names, tagging, no-ops, bulk, history, lifecycle,
//! catalogue, settings, isolation, concurrency and the statement budget.

use serde_json::{Value, json};

use crate::helpers::{Settings, TestApp, error_code, error_message, names};
use crate::on_both_databases;

on_both_databases!(
    names_are_validated_and_nothing_is_applied_on_error,
    adding_present_and_removing_absent_tags_writes_nothing,
    concurrent_adds_of_one_tag_make_one_assignment,
    bulk_on_10000_ids_is_exact_and_all_or_nothing,
    history_is_newest_first_with_source_and_actor,
    rename_keeps_assignments_and_history,
    merge_moves_assignments_without_duplicates,
    delete_removes_everywhere_and_keeps_history,
    catalogue_lists_searches_and_counts,
    workspace_settings_change_the_rules,
    another_workspace_cannot_see_or_change_tags,
    roles_for_tag_operations,
    deleting_a_subject_removes_its_tags,
);

/// The statement budget is measured without the automation worker, whose
/// own queries would interleave with the request's.
const NO_WORKER: Settings = Settings::NO_WORKER;
on_both_databases!(settings = NO_WORKER; listing_50_users_costs_the_same_statements_as_5, a_tag_with_its_counts_and_a_user_by_id_cost_few_statements, a_change_of_one_subject_writes_its_rows_in_one_statement_on_postgres);

const ADD: &str = "mutation($id: ID!, $tags: [String!]!) {
    addTags(subjectId: $id, tags: $tags) { ... on User { tags { name } } ... on Account { tags { name } } } }";
const REMOVE: &str = "mutation($id: ID!, $tags: [String!]!) {
    removeTags(subjectId: $id, tags: $tags) { ... on User { tags { name } } ... on Account { tags { name } } } }";
const BULK_ADD: &str = "mutation($ids: [ID!], $tags: [String!]!) {
    bulkAddTags(target: { ids: $ids }, tags: $tags) { matched changed } }";
const BULK_REMOVE: &str = "mutation($ids: [ID!], $tags: [String!]!) {
    bulkRemoveTags(target: { ids: $ids }, tags: $tags) { matched changed } }";

/// The names of a subject's tags.
fn tags_in(subject: &Value) -> Vec<String> {
    names(&subject["tags"])
}

async fn add(app: &TestApp, id: &str, tags: &[&str]) -> Vec<String> {
    tags_in(&app.ok(ADD, json!({ "id": id, "tags": tags })).await["addTags"])
}

async fn names_are_validated_and_nothing_is_applied_on_error(app: TestApp) {
    let user = app.user("ana@example.com").await;
    let tags = add(
        &app,
        &user,
        &[
            "  Hot Lead ",
            "Region: Northeast",
            "sports/football/australia",
            "VIP",
            "vip",
        ],
    )
    .await;
    assert_eq!(
        tags,
        [
            "Hot Lead",
            "Region: Northeast",
            "VIP",
            "sports/football/australia",
            "vip"
        ]
    );
    let data = app
        .ok(
            "{ tag(name: \"Region: Northeast\") { key value path parent { name } }
               deep: tag(name: \"sports/football/australia\") { key path parent { name parent { name parent { name } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["tag"],
        json!({ "key": "Region", "value": "Northeast", "path": ["Region: Northeast"], "parent": null })
    );
    assert_eq!(
        data["deep"]["path"],
        json!(["sports", "football", "australia"])
    );
    assert_eq!(
        data["deep"]["parent"],
        json!({ "name": "sports/football", "parent": { "name": "sports", "parent": null } }),
        "parents exist implicitly"
    );

    let invalid: [(&str, &str); 7] = [
        ("", "is empty"),
        ("a//b", "has an empty level"),
        ("a/b/c/d", "has 4 levels; this workspace allows at most 3"),
        ("bad\u{1}tag", "contains a control character"),
        ("Region: *", "uses `*`"),
        (&"x".repeat(129), "is 129 characters long; the limit is 128"),
        (": value", "has an empty key or value"),
    ];
    for (name, why) in invalid {
        let body = app
            .graphql(ADD, json!({ "id": user, "tags": ["Fine", name] }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{name:?}: {body}");
        assert!(error_message(&body).contains(why), "{name:?}: {body}");
    }
    // One request with two bad names names both.
    let body = app
        .graphql(ADD, json!({ "id": user, "tags": ["a//b", "c/d/e/f"] }))
        .await;
    let message = error_message(&body);
    assert!(
        message.contains("\"a//b\"") && message.contains("\"c/d/e/f\""),
        "{message}"
    );
    // Nothing of those requests was applied: "Fine" does not exist.
    let data = app.ok("{ tag(name: \"Fine\") { name } }", json!({})).await;
    assert_eq!(data["tag"], Value::Null);
    assert_eq!(app.rows("tag_assignments").await, 5);
}

async fn adding_present_and_removing_absent_tags_writes_nothing(app: TestApp) {
    let user = app.user("ana@example.com").await;
    add(&app, &user, &["VIP"]).await;
    let (changes, events) = (
        app.rows("tag_changes").await,
        app.rows("automation_events").await,
    );
    assert_eq!((changes, events), (1, 1));

    let tags = add(&app, &user, &["VIP"]).await;
    assert_eq!(tags, ["VIP"]);
    let tags = tags_in(
        &app.ok(REMOVE, json!({ "id": user, "tags": ["Never", "Not Here"] }))
            .await["removeTags"],
    );
    assert_eq!(tags, ["VIP"]);
    assert_eq!(app.rows("tag_changes").await, 1, "no history for no-ops");
    assert_eq!(
        app.rows("automation_events").await,
        1,
        "no outbox event for no-ops"
    );
    let data = app.ok("{ tag(name: \"Never\") { name } }", json!({})).await;
    assert_eq!(data["tag"], Value::Null, "removing does not create tags");

    let tags = tags_in(&app.ok(REMOVE, json!({ "id": user, "tags": ["VIP"] })).await["removeTags"]);
    assert!(tags.is_empty());
    assert_eq!(app.rows("tag_changes").await, 2);
    assert_eq!(app.rows("automation_events").await, 2);
}

async fn concurrent_adds_of_one_tag_make_one_assignment(app: TestApp) {
    let user = app.user("ana@example.com").await;
    let account = app.account("acme", "Acme").await;
    for id in [&user, &account] {
        let requests =
            (0..8).map(|_| app.graphql(ADD, json!({ "id": id, "tags": ["Hot Lead", "Race"] })));
        let bodies = futures_util::future::join_all(requests).await;
        for body in bodies {
            assert!(body.get("errors").is_none(), "{body}");
        }
    }
    assert_eq!(app.rows("tag_assignments").await, 4);
    assert_eq!(app.rows("tag_changes").await, 4);
    assert_eq!(app.rows("automation_events").await, 4);
    let data = app.ok("{ tags { totalCount } }", json!({})).await;
    assert_eq!(data["tags"]["totalCount"], 2, "each tag was created once");
}

async fn bulk_on_10000_ids_is_exact_and_all_or_nothing(app: TestApp) {
    let ids = seed_users(&app, 10_000).await;
    let account = app.account("acme", "Acme").await;
    let data = app
        .ok(BULK_ADD, json!({ "ids": ids, "tags": ["Cohort: 2026"] }))
        .await;
    assert_eq!(
        data["bulkAddTags"],
        json!({ "matched": 10000, "changed": 10000 })
    );
    let data = app
        .ok(
            "{ tag(name: \"Cohort: 2026\") { userCount accountCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["tag"],
        json!({ "userCount": 10000, "accountCount": 0 })
    );

    // Again, plus an account and a second tag: only the new assignments change.
    let mut mixed = ids[..10].to_vec();
    mixed.push(account.clone());
    let data = app
        .ok(
            BULK_ADD,
            json!({ "ids": mixed, "tags": ["Cohort: 2026", "Pilot"] }),
        )
        .await;
    assert_eq!(data["bulkAddTags"], json!({ "matched": 11, "changed": 12 }));
    assert_eq!(app.rows("tag_changes").await, 10_012);
    assert_eq!(app.rows("automation_events").await, 10_012);

    // A bad tag name: nothing applied.
    let body = app
        .graphql(BULK_ADD, json!({ "ids": ids, "tags": ["Fine", "a//b"] }))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(app.rows("tag_assignments").await, 10_012);
    // Past 10,000 ids.
    let mut too_many = ids.clone();
    too_many.push(account);
    let body = app
        .graphql(BULK_ADD, json!({ "ids": too_many, "tags": ["X"] }))
        .await;
    assert_eq!(error_code(&body), "LIMIT_EXCEEDED");

    let data = app
        .ok(
            BULK_REMOVE,
            json!({ "ids": ids, "tags": ["Cohort: 2026", "Nope"] }),
        )
        .await;
    assert_eq!(
        data["bulkRemoveTags"],
        json!({ "matched": 10000, "changed": 10000 })
    );
    let data = app
        .ok(
            "{ tag(name: \"Cohort: 2026\") { userCount accountCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data["tag"], json!({ "userCount": 0, "accountCount": 1 }));
    let data = app
        .ok(
            "{ tagChanges(tag: \"Cohort: 2026\", first: 1) { totalCount nodes { op source } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["tagChanges"]["totalCount"], 20_001);
    assert_eq!(
        data["tagChanges"]["nodes"][0],
        json!({ "op": "REMOVED", "source": "BULK" })
    );
}

/// Inserts users straight into the database (test set-up only); returns their ids.
async fn seed_users(app: &TestApp, n: usize) -> Vec<String> {
    use entity::user;
    use sea_orm::{EntityTrait, Set};
    let now = chrono::Utc::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let rows = chunk.iter().map(|i| user::ActiveModel {
            workspace_id: Set(1),
            email: Set(format!("seed{i}@example.com")),
            attributes: Set(json!({})),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        });
        user::Entity::insert_many(rows).exec(&app.db).await.unwrap();
    }
    let mut ids = Vec::with_capacity(n);
    let mut after: Option<String> = None;
    loop {
        let data = app
            .ok(
                "query($after: String) { users(first: 100, after: $after) { nodes { id } pageInfo { hasNextPage endCursor } } }",
                json!({ "after": after }),
            )
            .await;
        for node in data["users"]["nodes"].as_array().unwrap() {
            ids.push(node["id"].as_str().unwrap().to_owned());
        }
        if data["users"]["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = data["users"]["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
    }
    ids
}

async fn history_is_newest_first_with_source_and_actor(app: TestApp) {
    let tagger = app.key("tagger", "MEMBER").await;
    let user = app.user("ana@example.com").await;
    app.graphql_as(Some(&tagger), ADD, json!({ "id": user, "tags": ["A"] }))
        .await;
    app.graphql_as(Some(&tagger), ADD, json!({ "id": user, "tags": ["B"] }))
        .await;
    app.ok(REMOVE, json!({ "id": user, "tags": ["A"] })).await;
    let data = app
        .ok(
            "query($id: ID!) { user(id: $id) { history(first: 2) { totalCount
                edges { cursor node { id op tag { name } source actor causeId subject { ... on User { email } } } }
                pageInfo { hasNextPage endCursor } } } }",
            json!({ "id": user }),
        )
        .await;
    let history = &data["user"]["history"];
    assert_eq!(history["totalCount"], 3);
    let first = &history["edges"][0]["node"];
    assert_eq!(first["op"], "REMOVED");
    assert_eq!(first["tag"]["name"], "A");
    assert_eq!(first["source"], "MANUAL");
    assert_eq!(first["actor"], "admin");
    assert_eq!(first["causeId"], Value::Null);
    assert_eq!(first["subject"]["email"], "ana@example.com");
    assert_eq!(history["edges"][1]["node"]["actor"], "tagger");
    let after = history["pageInfo"]["endCursor"].as_str().unwrap();
    let data = app
        .ok(
            "query($id: ID!, $after: String) { user(id: $id) { history(after: $after) { nodes { op tag { name } } pageInfo { hasNextPage } } } }",
            json!({ "id": user, "after": after }),
        )
        .await;
    assert_eq!(
        data["user"]["history"]["nodes"],
        json!([{ "op": "ADDED", "tag": { "name": "A" } }])
    );

    // The workspace-wide view, narrowed by tag and by subject; a change is a node.
    let data = app
        .ok(
            "query($id: ID!) { byTag: tagChanges(tag: \"B\") { totalCount } bySubject: tagChanges(subjectId: $id) { totalCount nodes { id } } }",
            json!({ "id": user }),
        )
        .await;
    assert_eq!(data["byTag"]["totalCount"], 1);
    assert_eq!(data["bySubject"]["totalCount"], 3);
    let change = data["bySubject"]["nodes"][0]["id"].clone();
    let data = app
        .ok(
            "query($id: ID!) { node(id: $id) { ... on TagChange { op } } }",
            json!({ "id": change }),
        )
        .await;
    assert_eq!(data["node"]["op"], "REMOVED");
}

async fn rename_keeps_assignments_and_history(app: TestApp) {
    let user = app.user("ana@example.com").await;
    add(
        &app,
        &user,
        &["sports/football/australia", "sports/tennis", "Other"],
    )
    .await;
    let data = app
        .ok(
            "mutation { renameTag(name: \"sports\", newName: \"games\") { name children { name children { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["renameTag"],
        json!({ "name": "games", "children": [
            { "name": "games/football", "children": [{ "name": "games/football/australia" }] },
            { "name": "games/tennis", "children": [] } ] })
    );
    let data = app
        .ok(
            "query($id: ID!) { user(id: $id) { tags { name } history { totalCount } } }",
            json!({ "id": user }),
        )
        .await;
    assert_eq!(
        tags_in(&data["user"]),
        ["Other", "games/football/australia", "games/tennis"]
    );
    assert_eq!(
        data["user"]["history"]["totalCount"], 3,
        "history kept, no new rows"
    );
    let data = app
        .ok(
            "{ tagChanges(tag: \"games/tennis\") { nodes { tag { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["tagChanges"]["nodes"][0]["tag"]["name"], "games/tennis",
        "history follows the rename"
    );

    // Onto an existing name: CONFLICT that points at mergeTags.
    let body = app
        .graphql(
            "mutation { renameTag(name: \"Other\", newName: \"games\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT");
    assert!(error_message(&body).contains("mergeTags"), "{body}");
    // A descendant that would collide is a conflict too, and nothing is renamed.
    add(&app, &user, &["x/tennis"]).await;
    let body = app
        .graphql(
            "mutation { renameTag(name: \"games\", newName: \"x\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    let data = app
        .ok("{ tag(name: \"games/tennis\") { name } }", json!({}))
        .await;
    assert_eq!(data["tag"]["name"], "games/tennis");
    // Moving into another hierarchy creates the new parents; bad names are refused.
    let data = app
        .ok("mutation { renameTag(name: \"Other\", newName: \"misc/other\") { name parent { name } } }", json!({}))
        .await;
    assert_eq!(
        data["renameTag"],
        json!({ "name": "misc/other", "parent": { "name": "misc" } })
    );
    let body = app
        .graphql(
            "mutation { renameTag(name: \"games\", newName: \"a/b/c\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(
        error_code(&body),
        "BAD_USER_INPUT",
        "games/football/australia would get 5 levels"
    );
    let body = app
        .graphql(
            "mutation { renameTag(name: \"nope\", newName: \"x2\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
}

async fn merge_moves_assignments_without_duplicates(app: TestApp) {
    let ana = app.user("ana@example.com").await;
    let bo = app.user("bo@example.com").await;
    let acme = app.account("acme", "Acme").await;
    add(&app, &ana, &["lead", "Lead"]).await;
    add(&app, &bo, &["LEAD"]).await;
    add(&app, &acme, &["lead"]).await;
    let data = app
        .ok("mutation { mergeTags(names: [\"Lead\", \"LEAD\"], into: \"lead\") { name userCount accountCount } }", json!({}))
        .await;
    assert_eq!(
        data["mergeTags"],
        json!({ "name": "lead", "userCount": 2, "accountCount": 1 })
    );
    for id in [&ana, &bo] {
        let data = app
            .ok(
                "query($id: ID!) { node(id: $id) { ... on User { tags { name } } } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(tags_in(&data["node"]), ["lead"]);
    }
    let data = app.ok("{ a: tag(name: \"Lead\") { name } b: tag(name: \"LEAD\") { name } tags { totalCount } }", json!({})).await;
    assert_eq!(
        (data["a"].clone(), data["b"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(data["tags"]["totalCount"], 1);
    // ana: REMOVED Lead (she had lead already); bo: ADDED lead, REMOVED LEAD.
    let data = app
        .ok("query($a: ID!, $b: ID!) { a: tagChanges(subjectId: $a) { totalCount } b: tagChanges(subjectId: $b, first: 2) { nodes { op tag { name deleted } source } } }", json!({ "a": ana, "b": bo }))
        .await;
    assert_eq!(data["a"]["totalCount"], 3);
    assert_eq!(
        data["b"]["nodes"],
        json!([{ "op": "REMOVED", "tag": { "name": "LEAD", "deleted": true }, "source": "BULK" },
               { "op": "ADDED", "tag": { "name": "lead", "deleted": false }, "source": "BULK" }])
    );
    // Into a new tag.
    let data = app
        .ok(
            "mutation { mergeTags(names: [\"lead\"], into: \"Prospect\") { name userCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["mergeTags"],
        json!({ "name": "Prospect", "userCount": 2 })
    );
    let body = app
        .graphql(
            "mutation { mergeTags(names: [\"nope\"], into: \"Prospect\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
}

async fn delete_removes_everywhere_and_keeps_history(app: TestApp) {
    let ana = app.user("ana@example.com").await;
    let acme = app.account("acme", "Acme").await;
    add(&app, &ana, &["old/a", "keep"]).await;
    add(&app, &acme, &["old"]).await;
    let data = app
        .ok("mutation { deleteTag(name: \"old\") }", json!({}))
        .await;
    assert_eq!(data["deleteTag"], true);
    let data = app
        .ok("query($a: ID!, $c: ID!) { a: node(id: $a) { ... on User { tags { name } history(first: 1) { nodes { op source tag { name deleted } } } } }
                  c: node(id: $c) { ... on Account { tags { name } } } tags { nodes { name } } }", json!({ "a": ana, "c": acme }))
        .await;
    assert_eq!(tags_in(&data["a"]), ["keep"]);
    assert!(tags_in(&data["c"]).is_empty());
    assert_eq!(
        data["a"]["history"]["nodes"][0],
        json!({ "op": "REMOVED", "source": "BULK", "tag": { "name": "old/a", "deleted": true } })
    );
    assert_eq!(data["tags"]["nodes"], json!([{ "name": "keep" }]));
    // The name is free again.
    assert_eq!(add(&app, &ana, &["old"]).await, ["keep", "old"]);
    let body = app
        .graphql("mutation { deleteTag(name: \"nope\") }", json!({}))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
}

async fn catalogue_lists_searches_and_counts(app: TestApp) {
    let ana = app.user("ana@example.com").await;
    let bo = app.user("bo@example.com").await;
    let acme = app.account("acme", "Acme").await;
    add(
        &app,
        &ana,
        &[
            "Department: Sales",
            "Department: R&D",
            "sports/football",
            "VIP",
        ],
    )
    .await;
    add(&app, &bo, &["Department: Sales", "sports/tennis"]).await;
    add(&app, &acme, &["VIP", "Enterprise"]).await;
    let query = "query($first: Int, $after: String, $search: String, $prefix: String) {
        tags(first: $first, after: $after, search: $search, prefix: $prefix) {
            totalCount nodes { name userCount accountCount } pageInfo { hasNextPage endCursor } } }";
    let data = app.ok(query, json!({ "prefix": "Department: " })).await;
    assert_eq!(
        data["tags"]["nodes"],
        json!([{ "name": "Department: R&D", "userCount": 1, "accountCount": 0 },
               { "name": "Department: Sales", "userCount": 2, "accountCount": 0 }])
    );
    let data = app.ok(query, json!({ "prefix": "sports/" })).await;
    assert_eq!(data["tags"]["totalCount"], 2);
    let data = app.ok(query, json!({ "prefix": "SPORTS/" })).await;
    assert_eq!(data["tags"]["totalCount"], 0, "prefix is exact");
    let data = app.ok(query, json!({ "search": "SALES" })).await;
    assert_eq!(
        data["tags"]["nodes"][0]["name"], "Department: Sales",
        "search ignores case"
    );
    let data = app.ok(query, json!({ "search": "vip" })).await;
    assert_eq!(
        data["tags"]["nodes"],
        json!([{ "name": "VIP", "userCount": 1, "accountCount": 1 }])
    );

    // All of them, two per page, in name order with no gap.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let data = app.ok(query, json!({ "first": 2, "after": after })).await;
        assert_eq!(data["tags"]["totalCount"], 7);
        for node in data["tags"]["nodes"].as_array().unwrap() {
            seen.push(node["name"].as_str().unwrap().to_owned());
        }
        if data["tags"]["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = data["tags"]["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    assert_eq!(seen.len(), 7, "{seen:?}");

    let data = app
        .ok("mutation { setTagDescription(name: \"VIP\", description: \" Top customers \") { description } }", json!({}))
        .await;
    assert_eq!(data["setTagDescription"]["description"], "Top customers");
    let data = app
        .ok("{ tag(name: \"VIP\") { description } }", json!({}))
        .await;
    assert_eq!(data["tag"]["description"], "Top customers");
    let data = app
        .ok(
            "{ tag(name: \"sports\") { children { name } userCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["tag"],
        json!({ "children": [{ "name": "sports/football" }, { "name": "sports/tennis" }], "userCount": 0 })
    );
}

async fn workspace_settings_change_the_rules(app: TestApp) {
    let user = app.user("ana@example.com").await;
    let data = app
        .ok(
            "{ workspace { name lowercaseTags maxTagDepth } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["workspace"],
        json!({ "name": "default", "lowercaseTags": false, "maxTagDepth": 3 })
    );
    let data = app
        .ok("mutation { updateWorkspaceSettings(lowercaseTags: true, maxTagDepth: 4) { lowercaseTags maxTagDepth } }", json!({}))
        .await;
    assert_eq!(
        data["updateWorkspaceSettings"],
        json!({ "lowercaseTags": true, "maxTagDepth": 4 })
    );
    let body = app
        .graphql(ADD, json!({ "id": user, "tags": ["VIP"] }))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert!(error_message(&body).contains("lowercase"), "{body}");
    assert_eq!(
        add(&app, &user, &["a/b/c/d", "vip"]).await,
        ["a/b/c/d", "vip"]
    );
    let body = app
        .graphql(ADD, json!({ "id": user, "tags": ["a/b/c/d/e"] }))
        .await;
    assert!(error_message(&body).contains("at most 4"), "{body}");
    let body = app
        .graphql(
            "mutation { updateWorkspaceSettings(maxTagDepth: 0) { maxTagDepth } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let developer = app.key("dev", "DEVELOPER").await;
    let body = app
        .graphql_as(
            Some(&developer),
            "mutation { updateWorkspaceSettings(lowercaseTags: false) { lowercaseTags } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
}

async fn another_workspace_cannot_see_or_change_tags(app: TestApp) {
    let user = app.user("ana@example.com").await;
    add(&app, &user, &["Secret", "team/alpha"]).await;
    let tag_id = app.ok("{ tag(name: \"Secret\") { id } }", json!({})).await["tag"]["id"].clone();
    let change_id = app
        .ok("{ tagChanges(first: 1) { nodes { id } } }", json!({}))
        .await["tagChanges"]["nodes"][0]["id"]
        .clone();
    let b = app.other_workspace("other").await;
    let reads = [
        ("{ r: tags { totalCount } }", json!({})),
        ("{ r: tag(name: \"Secret\") { id } }", json!({})),
        ("{ r: tagChanges { totalCount } }", json!({})),
        (
            "{ r: tagChanges(tag: \"Secret\") { totalCount } }",
            json!({}),
        ),
        (
            "query($id: ID!) { r: tagChanges(subjectId: $id) { totalCount } }",
            json!({ "id": user }),
        ),
        (
            "query($id: ID!) { r: node(id: $id) { id } }",
            json!({ "id": tag_id }),
        ),
        (
            "query($id: ID!) { r: node(id: $id) { id } }",
            json!({ "id": change_id }),
        ),
    ];
    for (query, vars) in reads {
        let body = app.graphql_as(Some(&b), query, vars).await;
        assert!(body.get("errors").is_none(), "{query}: {body}");
        let r = &body["data"]["r"];
        assert!(
            r.is_null() || r["totalCount"] == 0,
            "{query} leaked: {body}"
        );
    }
    let writes = [
        (ADD, json!({ "id": user, "tags": ["Evil"] }), "NOT_FOUND"),
        (
            REMOVE,
            json!({ "id": user, "tags": ["Secret"] }),
            "NOT_FOUND",
        ),
        (
            "mutation { renameTag(name: \"Secret\", newName: \"Mine\") { name } }",
            json!({}),
            "NOT_FOUND",
        ),
        (
            "mutation { deleteTag(name: \"Secret\") }",
            json!({}),
            "NOT_FOUND",
        ),
        (
            "mutation { mergeTags(names: [\"Secret\"], into: \"Mine\") { name } }",
            json!({}),
            "NOT_FOUND",
        ),
        (
            "mutation { setTagDescription(name: \"Secret\", description: \"x\") { name } }",
            json!({}),
            "NOT_FOUND",
        ),
    ];
    for (query, vars, code) in writes {
        let body = app.graphql_as(Some(&b), query, vars).await;
        assert_eq!(error_code(&body), code, "{query}: {body}");
    }
    let body = app
        .graphql_as(
            Some(&b),
            BULK_ADD,
            json!({ "ids": [user], "tags": ["Evil"] }),
        )
        .await;
    assert_eq!(
        body["data"]["bulkAddTags"],
        json!({ "matched": 0, "changed": 0 }),
        "{body}"
    );
    // B's own tag of the same name is B's alone.
    let b_user = app
        .graphql_as(
            Some(&b),
            "mutation { upsertUser(input: { email: \"x@example.com\" }) { id } }",
            json!({}),
        )
        .await["data"]["upsertUser"]["id"]
        .clone();
    let body = app
        .graphql_as(Some(&b), ADD, json!({ "id": b_user, "tags": ["Secret"] }))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let data = app
        .ok("query($id: ID!) { user(id: $id) { tags { name } } tag(name: \"Secret\") { userCount } }", json!({ "id": user }))
        .await;
    assert_eq!(tags_in(&data["user"]), ["Secret", "team/alpha"]);
    assert_eq!(data["tag"]["userCount"], 1);
    assert_eq!(app.rows("tag_changes").await, 3);
}

async fn roles_for_tag_operations(app: TestApp) {
    let user = app.user("ana@example.com").await;
    add(&app, &user, &["T"]).await;
    let viewer = app.key("v", "VIEWER").await;
    let member = app.key("m", "MEMBER").await;
    let cases = [
        (&viewer, ADD, json!({ "id": user, "tags": ["X"] })),
        (&viewer, REMOVE, json!({ "id": user, "tags": ["T"] })),
        (&member, BULK_ADD, json!({ "ids": [user], "tags": ["X"] })),
        (
            &member,
            BULK_REMOVE,
            json!({ "ids": [user], "tags": ["T"] }),
        ),
        (
            &member,
            "mutation { renameTag(name: \"T\", newName: \"U\") { name } }",
            json!({}),
        ),
        (
            &member,
            "mutation { mergeTags(names: [\"T\"], into: \"U\") { name } }",
            json!({}),
        ),
        (&member, "mutation { deleteTag(name: \"T\") }", json!({})),
        (
            &member,
            "mutation { setTagDescription(name: \"T\", description: \"d\") { name } }",
            json!({}),
        ),
    ];
    for (key, query, vars) in cases {
        let body = app.graphql_as(Some(key), query, vars).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{query}: {body}");
    }
    assert_eq!(app.rows("tag_changes").await, 1);
    let body = app
        .graphql_as(Some(&member), ADD, json!({ "id": user, "tags": ["X"] }))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
}

async fn deleting_a_subject_removes_its_tags(app: TestApp) {
    let ana = app.user("ana@example.com").await;
    let bo = app.user("bo@example.com").await;
    add(&app, &ana, &["VIP"]).await;
    add(&app, &bo, &["VIP"]).await;
    app.ok(
        "mutation($id: ID!) { deleteUser(id: $id) }",
        json!({ "id": ana }),
    )
    .await;
    let data = app
        .ok(
            "{ tag(name: \"VIP\") { userCount } tagChanges { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data["tag"]["userCount"], 1);
    assert_eq!(data["tagChanges"]["totalCount"], 1);
    assert_eq!(app.rows("tag_assignments").await, 1);
}

async fn listing_50_users_costs_the_same_statements_as_5(app: TestApp) {
    let query = "query($n: Int) { users(first: $n) { nodes { email tags { name userCount } account { name tags { name } } } } }";
    for a in 0..7 {
        let account = app
            .account(&format!("acc{a}"), &format!("Account {a}"))
            .await;
        add(&app, &account, &["Customer"]).await;
    }
    let mut counts = Vec::new();
    let mut log = Vec::new();
    let mut created = 0;
    for n in [5usize, 50] {
        while created < n {
            let user = app
                .ok(
                    "mutation($e: String!, $a: String!) { upsertUser(input: { email: $e, accountExternalId: $a }) { id } }",
                    json!({ "e": format!("u{created}@example.com"), "a": format!("acc{}", created % 7) }),
                )
                .await;
            let id = user["upsertUser"]["id"].as_str().unwrap().to_owned();
            add(&app, &id, &["Common", &format!("Own {created}")]).await;
            created += 1;
        }
        let (data, statements) = app
            .statements_during(app.ok(query, json!({ "n": n })))
            .await;
        let nodes = data["users"]["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), n);
        assert!(
            nodes
                .iter()
                .all(|u| u["tags"].as_array().unwrap().len() == 2)
        );
        counts.push(statements.len());
        log.push(statements.clone());
        assert!(
            statements.len() <= 10,
            "{} statements for {n} users: {statements:#?}",
            statements.len()
        );
    }
    assert_eq!(
        counts[0], counts[1],
        "the statement count does not grow with the page: {log:#?}"
    );
}

/// `tag(name:) { userCount accountCount }` reads the tag and its counts in
/// one statement; one user by id with its tags and account takes two on
/// PostgreSQL (the user joined with its account, its tags) and four on a
/// SQLite file (the user, its assignments and their tags in one hop, the
/// account).
async fn a_tag_with_its_counts_and_a_user_by_id_cost_few_statements(app: TestApp) {
    let account = app.account("acme", "Acme").await;
    let user = app
        .ok(
            r#"mutation { upsertUser(input: { email: "ana@example.com", accountExternalId: "acme" }) { id } }"#,
            json!({}),
        )
        .await["upsertUser"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    add(&app, &user, &["VIP", "Beta"]).await;
    add(&app, &account, &["VIP"]).await;
    let (data, statements) = app
        .statements_during(app.ok(
            r#"{ tag(name: "VIP") { name userCount accountCount } }"#,
            json!({}),
        ))
        .await;
    assert_eq!(
        data["tag"],
        json!({ "name": "VIP", "userCount": 1, "accountCount": 1 })
    );
    assert_eq!(statements.len(), 1, "{statements:#?}");
    let (data, _) = app
        .statements_during(app.ok(r#"{ tag(name: "Nope") { userCount } }"#, json!({})))
        .await;
    assert_eq!(data["tag"], json!(null));

    let (data, statements) = app
        .statements_during(app.ok(
            "query($id: ID!) { user(id: $id) { email tags { name } account { name } } }",
            json!({ "id": user }),
        ))
        .await;
    assert_eq!(
        data["user"],
        json!({ "email": "ana@example.com", "tags": [{ "name": "Beta" }, { "name": "VIP" }], "account": { "name": "Acme" } })
    );
    let most = match app.db.get_database_backend() {
        sea_orm::DbBackend::Postgres => 2,
        _ => 4,
    };
    assert!(statements.len() <= most, "{statements:#?}");
}

/// Adding or removing a tag on one subject writes its history row, its
/// assignment (or deletes it), its outbox event and, on PostgreSQL, its
/// announcement to the change feed: one statement on PostgreSQL (a round
/// trip per change saved four times), three on SQLite; every row is
/// there either way.
async fn a_change_of_one_subject_writes_its_rows_in_one_statement_on_postgres(app: TestApp) {
    let user = app.user("one@example.com").await;
    let postgres = app.db.get_database_backend() == sea_orm::DbBackend::Postgres;
    let writes = |from: usize| -> Vec<String> {
        app.statements.lock().unwrap()[from..]
            .iter()
            .filter(|sql| {
                [
                    "INSERT INTO \"tag_changes\"",
                    "INTO \"tag_assignments\"",
                    "FROM \"tag_assignments\" WHERE",
                    "INSERT INTO \"automation_events\"",
                    "pg_notify",
                ]
                .iter()
                .any(|write| sql.contains(write))
                    && !sql.starts_with("SELECT")
            })
            .cloned()
            .collect()
    };
    for (query, history, assignments) in [(ADD, 1, 1), (REMOVE, 2, 0)] {
        let from = app.statements.lock().unwrap().len();
        app.ok(query, json!({ "id": user, "tags": ["Plan: Gold"] }))
            .await;
        let written = writes(from);
        assert_eq!(written.len(), if postgres { 1 } else { 3 }, "{written:#?}");
        assert_eq!(app.rows("tag_changes").await, history);
        assert_eq!(app.rows("tag_assignments").await, assignments);
        assert_eq!(app.rows("automation_events").await, history);
    }
}
