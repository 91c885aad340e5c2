//! A key of workspace B never sees or changes workspace A's data, by any id.

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};
use crate::on_both_databases;

on_both_databases!(another_workspace_sees_nothing);

async fn another_workspace_sees_nothing(app: TestApp) {
    let account = app.account("acme", "Acme").await;
    let user = app
        .ok(
            "mutation { upsertUser(input: { email: \"ana@example.com\", externalId: \"u-1\", accountExternalId: \"acme\" }) { id } }",
            json!({}),
        )
        .await["upsertUser"]["id"]
        .clone();
    let b = app.other_workspace("other").await;
    let as_b = |query: &'static str, vars: Value| {
        let app = &app;
        let b = b.clone();
        async move { app.graphql_as(Some(&b), query, vars).await }
    };

    // Reads find nothing: lists, lookups by id, external id, email, and node.
    let body = as_b(
        "{ users { totalCount nodes { id } } accounts { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!(body["data"]["users"]["totalCount"], 0, "{body}");
    assert_eq!(body["data"]["accounts"]["totalCount"], 0);
    let reads = [
        (
            "query($id: ID!) { r: user(id: $id) { id } }",
            json!({ "id": user }),
        ),
        (
            "query($id: ID!) { r: account(id: $id) { id } }",
            json!({ "id": account }),
        ),
        (
            "query($id: ID!) { r: node(id: $id) { id } }",
            json!({ "id": user }),
        ),
        (
            "query($id: ID!) { r: node(id: $id) { id } }",
            json!({ "id": account }),
        ),
        ("{ r: user(email: \"ana@example.com\") { id } }", json!({})),
        ("{ r: user(externalId: \"u-1\") { id } }", json!({})),
        ("{ r: account(externalId: \"acme\") { id } }", json!({})),
        ("{ r: users(search: \"ana\") { totalCount } }", json!({})),
    ];
    for (query, vars) in reads {
        let body = as_b(query, vars).await;
        assert!(body.get("errors").is_none(), "{query}: {body}");
        let r = &body["data"]["r"];
        assert!(
            r.is_null() || r["totalCount"] == 0,
            "{query} leaked: {body}"
        );
    }

    // Writes by id answer NOT_FOUND, exactly as for an id that never existed.
    for (query, id) in [
        ("mutation($id: ID!) { deleteUser(id: $id) }", user.clone()),
        (
            "mutation($id: ID!) { deleteAccount(id: $id) }",
            json!(account),
        ),
    ] {
        let body = as_b(query, json!({ "id": id })).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    }
    let never = "VXNlcjo5OTk5OTk"; // User:999999
    let body = as_b(
        "mutation($id: ID!) { deleteUser(id: $id) }",
        json!({ "id": never }),
    )
    .await;
    assert_eq!(error_code(&body), "NOT_FOUND");

    // Upserts with A's keys create B's own rows and leave A's alone.
    let body = as_b(
        "mutation { upsertUser(input: { email: \"ana@example.com\", externalId: \"u-1\", firstName: \"Mallory\" }) { id } }",
        json!({}),
    )
    .await;
    assert_ne!(body["data"]["upsertUser"]["id"], user, "{body}");
    let body = as_b(
        "mutation { upsertUser(input: { email: \"x@example.com\", accountExternalId: \"acme\" }) { id } }",
        json!({}),
    )
    .await;
    assert_eq!(
        error_code(&body),
        "BAD_USER_INPUT",
        "A's account is unknown to B"
    );
    let body = as_b(
        "mutation { upsertAccount(input: { externalId: \"acme\", name: \"Taken\" }) { id } }",
        json!({}),
    )
    .await;
    assert_ne!(body["data"]["upsertAccount"]["id"], account);

    // A's data is untouched.
    let data = app
        .ok(
            "query($id: ID!) { user(id: $id) { firstName account { name } } accounts { totalCount } users { totalCount } }",
            json!({ "id": user }),
        )
        .await;
    assert_eq!(data["user"]["firstName"], Value::Null);
    assert_eq!(data["user"]["account"]["name"], "Acme");
    assert_eq!(data["accounts"]["totalCount"], 1);
    assert_eq!(data["users"]["totalCount"], 1);
}
