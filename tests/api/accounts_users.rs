//! Accounts and users: upserts, lookups, paging, search, deletion.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, error_message};
use crate::on_both_databases;

on_both_databases!(
    account_upsert_by_external_id_updates_one_row,
    user_upsert_by_email_and_external_id,
    users_link_to_accounts,
    paging_through_250_users_has_no_duplicate_and_no_gap,
    search_is_case_insensitive,
    lookups_and_node,
    deleting,
);

const UPSERT_ACCOUNT: &str = "mutation($input: AccountInput!) {
    upsertAccount(input: $input) { id externalId name attributes lastActivityAt createdAt }
}";
const UPSERT_USER: &str = "mutation($input: UserInput!) {
    upsertUser(input: $input) { id externalId email firstName lastName attributes lastSeenAt account { id name } }
}";

async fn account_upsert_by_external_id_updates_one_row(app: TestApp) {
    let first = app
        .ok(
            UPSERT_ACCOUNT,
            json!({ "input": { "externalId": "acme", "name": "Acme", "attributes": { "plan": "free", "seats": 3 } } }),
        )
        .await["upsertAccount"]
        .clone();
    let second = app
        .ok(
            UPSERT_ACCOUNT,
            json!({ "input": { "externalId": "acme", "name": "Acme Inc", "attributes": { "plan": "pro", "seats": null },
                               "lastActivityAt": "2026-01-02T03:04:05Z" } }),
        )
        .await["upsertAccount"]
        .clone();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["name"], "Acme Inc");
    assert_eq!(second["attributes"], json!({ "plan": "pro" }));
    assert_eq!(second["lastActivityAt"], "2026-01-02T03:04:05+00:00");
    assert_eq!(first["createdAt"], second["createdAt"]);
    let data = app.ok("{ accounts { totalCount } }", json!({})).await;
    assert_eq!(data["accounts"]["totalCount"], 1);

    // Without an external id, each upsert creates a new account.
    for _ in 0..2 {
        app.ok(UPSERT_ACCOUNT, json!({ "input": { "name": "No Id" } }))
            .await;
    }
    let data = app.ok("{ accounts { totalCount } }", json!({})).await;
    assert_eq!(data["accounts"]["totalCount"], 3);
}

async fn user_upsert_by_email_and_external_id(app: TestApp) {
    let a = app
        .ok(
            UPSERT_USER,
            json!({ "input": { "email": "  ana@example.com ", "firstName": "Ana" } }),
        )
        .await["upsertUser"]
        .clone();
    assert_eq!(a["email"], "ana@example.com", "stored trimmed");
    let b = app
        .ok(UPSERT_USER, json!({ "input": { "email": "ana@example.com", "lastName": "Lima", "attributes": { "score": 7 } } }))
        .await["upsertUser"]
        .clone();
    assert_eq!(a["id"], b["id"]);
    assert_eq!(b["firstName"], "Ana", "an omitted field is kept");
    assert_eq!(b["lastName"], "Lima");
    assert_eq!(b["attributes"], json!({ "score": 7 }));

    // The external id is adopted by the user found by email, then is the key.
    let c = app
        .ok(
            UPSERT_USER,
            json!({ "input": { "email": "ana@example.com", "externalId": "u-1" } }),
        )
        .await["upsertUser"]
        .clone();
    assert_eq!(c["id"], a["id"]);
    assert_eq!(c["externalId"], "u-1");
    let d = app
        .ok(UPSERT_USER, json!({ "input": { "email": "ana.lima@example.com", "externalId": "u-1", "firstName": null } }))
        .await["upsertUser"]
        .clone();
    assert_eq!(d["id"], a["id"], "same external id, new email: same user");
    assert_eq!(d["email"], "ana.lima@example.com");
    assert_eq!(d["firstName"], Value::Null, "null clears");
    assert_eq!(app.user_count().await, 1);

    // Taking another user's email is a conflict.
    app.user("bo@example.com").await;
    let body = app
        .graphql(
            UPSERT_USER,
            json!({ "input": { "email": "bo@example.com", "externalId": "u-1" } }),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    assert_eq!(app.user_count().await, 2);
}

async fn users_link_to_accounts(app: TestApp) {
    let acme = app.account("acme", "Acme").await;
    let body = app
        .graphql(
            UPSERT_USER,
            json!({ "input": { "email": "ana@example.com", "accountExternalId": "nope" } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert!(
        error_message(&body).contains("\"nope\""),
        "names the id: {body}"
    );
    assert_eq!(app.user_count().await, 0, "a failed upsert writes nothing");

    for email in ["ana@example.com", "bo@example.com", "cy@example.com"] {
        let user = app
            .ok(
                UPSERT_USER,
                json!({ "input": { "email": email, "accountExternalId": "acme" } }),
            )
            .await;
        assert_eq!(user["upsertUser"]["account"]["id"], acme.as_str());
    }
    let data = app
        .ok(
            "query($id: ID!) { account(id: $id) { users(first: 2) { totalCount nodes { email account { name } } pageInfo { hasNextPage } } } }",
            json!({ "id": acme }),
        )
        .await;
    let users = &data["account"]["users"];
    assert_eq!(users["totalCount"], 3);
    assert_eq!(
        users["nodes"][0],
        json!({ "email": "ana@example.com", "account": { "name": "Acme" } })
    );
    assert_eq!(users["pageInfo"]["hasNextPage"], true);

    // null detaches.
    let user = app
        .ok(
            UPSERT_USER,
            json!({ "input": { "email": "cy@example.com", "accountExternalId": null } }),
        )
        .await;
    assert_eq!(user["upsertUser"]["account"], Value::Null);
}

async fn paging_through_250_users_has_no_duplicate_and_no_gap(app: TestApp) {
    for i in 0..250 {
        app.user(&format!("user{i:03}@example.com")).await;
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let data = app
            .ok(
                "query($after: String) { users(first: 100, after: $after) {
                    totalCount edges { cursor node { email } } pageInfo { hasNextPage endCursor } } }",
                json!({ "after": after }),
            )
            .await;
        let users = &data["users"];
        assert_eq!(users["totalCount"], 250);
        for edge in users["edges"].as_array().unwrap() {
            seen.push(edge["node"]["email"].as_str().unwrap().to_owned());
        }
        pages += 1;
        if users["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = Some(users["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..250)
        .map(|i| format!("user{i:03}@example.com"))
        .collect();
    assert_eq!(seen, expected, "every user once, in creation order");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 250);

    // The default page is 20.
    let data = app.ok("{ users { nodes { id } } }", json!({})).await;
    assert_eq!(data["users"]["nodes"].as_array().unwrap().len(), 20);
}

async fn search_is_case_insensitive(app: TestApp) {
    app.ok(
        UPSERT_USER,
        json!({ "input": { "email": "Ana.Lima@Example.com", "firstName": "Ana" } }),
    )
    .await;
    app.ok(
        UPSERT_USER,
        json!({ "input": { "email": "bo@example.com", "lastName": "LIMAS" } }),
    )
    .await;
    app.ok(
        UPSERT_USER,
        json!({ "input": { "email": "cy@example.com", "externalId": "crm_100%" } }),
    )
    .await;
    let search = |term: &'static str| {
        let app = &app;
        async move {
            let data = app
                .ok(
                    "query($s: String) { users(search: $s) { totalCount nodes { email } } }",
                    json!({ "s": term }),
                )
                .await;
            let mut emails: Vec<String> = data["users"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["email"].as_str().unwrap().to_owned())
                .collect();
            emails.sort();
            assert_eq!(data["users"]["totalCount"], emails.len());
            emails
        }
    };
    assert_eq!(
        search("lima").await,
        ["Ana.Lima@Example.com", "bo@example.com"]
    );
    assert_eq!(search("EXAMPLE").await.len(), 3);
    assert_eq!(search("100%").await, ["cy@example.com"]);
    assert_eq!(search("%").await, ["cy@example.com"], "% is literal");
    assert_eq!(search("_").await, ["cy@example.com"], "_ is literal");
    assert!(search("zzz").await.is_empty());

    app.account("acme-1", "Acme Corp").await;
    app.account("globex", "Globex").await;
    let data = app
        .ok(
            "{ accounts(search: \"ACME\") { totalCount nodes { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["accounts"]["totalCount"], 1);
    assert_eq!(data["accounts"]["nodes"][0]["name"], "Acme Corp");
}

async fn lookups_and_node(app: TestApp) {
    let acme = app.account("acme", "Acme").await;
    let user = app
        .ok(UPSERT_USER, json!({ "input": { "email": "ana@example.com", "externalId": "u-9", "accountExternalId": "acme" } }))
        .await["upsertUser"]["id"]
        .clone();
    for (params, args, vars) in [
        ("$v: ID", "id: $v", json!({ "v": user })),
        ("$e: String", "email: $e", json!({ "e": "ana@example.com" })),
        ("$e: String", "externalId: $e", json!({ "e": "u-9" })),
    ] {
        let query = format!("query({params}) {{ user({args}) {{ id email }} }}");
        let data = app.ok(&query, vars).await;
        assert_eq!(data["user"]["id"], user, "{args}");
    }
    let data = app
        .ok("{ account(externalId: \"acme\") { id name } }", json!({}))
        .await;
    assert_eq!(data["account"]["id"], acme.as_str());
    let data = app
        .ok("{ user(email: \"nobody@example.com\") { id } }", json!({}))
        .await;
    assert_eq!(data["user"], Value::Null);
    let body = app.graphql("{ user { id } }", json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");

    let data = app
        .ok(
            "query($a: ID!, $u: ID!) {
                a: node(id: $a) { id __typename ... on Account { name } }
                u: node(id: $u) { id __typename ... on User { email account { name } } } }",
            json!({ "a": acme, "u": user }),
        )
        .await;
    assert_eq!(
        data["a"],
        json!({ "id": acme, "__typename": "Account", "name": "Acme" })
    );
    assert_eq!(data["u"]["__typename"], "User");
    assert_eq!(data["u"]["account"]["name"], "Acme");
}

async fn deleting(app: TestApp) {
    let acme = app.account("acme", "Acme").await;
    let user = app
        .ok(
            UPSERT_USER,
            json!({ "input": { "email": "ana@example.com", "accountExternalId": "acme" } }),
        )
        .await["upsertUser"]["id"]
        .clone();
    let data = app
        .ok(
            "mutation($id: ID!) { deleteAccount(id: $id) }",
            json!({ "id": acme }),
        )
        .await;
    assert_eq!(data["deleteAccount"], true);
    let data = app
        .ok(
            "query($id: ID!) { user(id: $id) { account { id } } }",
            json!({ "id": user }),
        )
        .await;
    assert_eq!(
        data["user"]["account"],
        Value::Null,
        "users stay, without the account"
    );
    let body = app
        .graphql(
            "mutation($id: ID!) { deleteAccount(id: $id) }",
            json!({ "id": acme }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");

    let data = app
        .ok(
            "mutation($id: ID!) { deleteUser(id: $id) }",
            json!({ "id": user }),
        )
        .await;
    assert_eq!(data["deleteUser"], true);
    assert_eq!(app.user_count().await, 0);
    let body = app
        .graphql(
            "mutation($id: ID!) { deleteUser(id: $id) }",
            json!({ "id": user }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
}
