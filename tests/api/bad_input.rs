//! Bad inputs: each gets its code and changes nothing.

use serde_json::json;

use crate::helpers::{TestApp, error_code};
use crate::on_both_databases;

on_both_databases!(
    bad_arguments_have_codes_and_change_nothing,
    bad_requests_have_codes
);

async fn bad_arguments_have_codes_and_change_nothing(app: TestApp) {
    app.user("ana@example.com").await;
    let account = app.account("acme", "Acme").await;
    let cases = [
        (
            "mutation { upsertUser(input: { email: \"not-an-email\" }) { id } }",
            "BAD_USER_INPUT",
        ),
        (
            "mutation { upsertUser(input: { email: \"a@b@c.com\" }) { id } }",
            "BAD_USER_INPUT",
        ),
        (
            "mutation { upsertUser(input: { email: \"\" }) { id } }",
            "BAD_USER_INPUT",
        ),
        (
            "mutation { upsertUser(input: { email: \"x@example.com\", attributes: [1, 2] }) { id } }",
            "BAD_USER_INPUT",
        ),
        (
            "mutation { upsertUser(input: { email: \"x@example.com\", attributes: \"plan\" }) { id } }",
            "BAD_USER_INPUT",
        ),
        (
            "mutation { upsertAccount(input: { name: \"   \" }) { id } }",
            "BAD_USER_INPUT",
        ),
        (
            "mutation { upsertAccount(input: { name: \"x\", attributes: 5 }) { id } }",
            "BAD_USER_INPUT",
        ),
        ("{ users(first: 0) { totalCount } }", "LIMIT_EXCEEDED"),
        ("{ users(first: 101) { totalCount } }", "LIMIT_EXCEEDED"),
        ("{ users(first: -1) { totalCount } }", "LIMIT_EXCEEDED"),
        ("{ accounts(first: 1000) { totalCount } }", "LIMIT_EXCEEDED"),
        (
            "{ users(after: \"garbage\") { totalCount } }",
            "BAD_USER_INPUT",
        ),
        (
            "{ users(after: \"VXNlcjox\") { totalCount } }",
            "BAD_USER_INPUT",
        ),
        ("{ user(id: \"garbage\") { id } }", "BAD_USER_INPUT"),
        ("{ node(id: \"!!!\") { id } }", "BAD_USER_INPUT"),
        (
            "mutation { deleteUser(id: \"bm9wZTox\") }",
            "BAD_USER_INPUT",
        ),
        ("{ users { nope } }", "BAD_USER_INPUT"),
        ("{ users(first: \"ten\") { totalCount } }", "BAD_USER_INPUT"),
        ("{ users { totalCount ", "BAD_USER_INPUT"),
    ];
    for (query, code) in cases {
        let body = app.graphql(query, json!({})).await;
        assert_eq!(error_code(&body), code, "{query}: {body}");
    }
    // An account id where a user id is expected.
    let body = app
        .graphql(
            "mutation($id: ID!) { deleteUser(id: $id) }",
            json!({ "id": account }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");

    let data = app
        .ok(
            "{ users { totalCount } accounts { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data["users"]["totalCount"], 1, "nothing was written");
    assert_eq!(data["accounts"]["totalCount"], 1);
}

async fn bad_requests_have_codes(app: TestApp) {
    let code_of = |text: &str| -> String {
        let body: serde_json::Value = serde_json::from_str(text).expect("JSON error body");
        error_code(&body).to_owned()
    };
    let (status, text) = app.post_raw("application/json", "{not json").await;
    assert_eq!(
        (status, code_of(&text).as_str()),
        (400, "BAD_USER_INPUT"),
        "{text}"
    );
    let (status, text) = app.post_raw("application/json", r#"{"query": 42}"#).await;
    assert_eq!(
        (status, code_of(&text).as_str()),
        (400, "BAD_USER_INPUT"),
        "{text}"
    );
    let (status, text) = app
        .post_raw("text/plain", r#"{"query": "{ users { totalCount } }"}"#)
        .await;
    assert_eq!(
        (status, code_of(&text).as_str()),
        (415, "BAD_USER_INPUT"),
        "{text}"
    );
    let (status, text) = app
        .post_raw("application/json", vec![0xff, 0xfe, 0x00])
        .await;
    assert_eq!(
        (status, code_of(&text).as_str()),
        (400, "BAD_USER_INPUT"),
        "{text}"
    );

    // 2 MiB of body, over the 1 MiB default.
    let big = format!(
        r#"{{"query": "{{ users {{ totalCount }} }}", "pad": "{}"}}"#,
        "x".repeat(2 << 20)
    );
    let (status, text) = app.post_raw("application/json", big).await;
    assert_eq!(
        (status, code_of(&text).as_str()),
        (413, "LIMIT_EXCEEDED"),
        "{text}"
    );

    // A batch past the cap of 10.
    let batch: Vec<_> = (0..11)
        .map(|_| json!({ "query": "{ users { totalCount } }" }))
        .collect();
    let (status, text) = app
        .post_raw("application/json", json!(batch).to_string())
        .await;
    assert_eq!(
        (status, code_of(&text).as_str()),
        (400, "LIMIT_EXCEEDED"),
        "{text}"
    );
    // A batch within it runs.
    let batch: Vec<_> = (0..3)
        .map(|_| json!({ "query": "{ users { totalCount } }" }))
        .collect();
    let (status, text) = app
        .post_raw("application/json", json!(batch).to_string())
        .await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body.as_array().unwrap().len(), 3);

    // Unknown operation name.
    let (_, text) = app
        .post_raw(
            "application/json",
            json!({ "query": "query A { users { totalCount } }", "operationName": "B" })
                .to_string(),
        )
        .await;
    assert_eq!(code_of(&text), "BAD_USER_INPUT", "{text}");

    // Wrong-type variables.
    let body = app
        .graphql(
            "query($n: Int) { users(first: $n) { totalCount } }",
            json!({ "n": "many" }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(app.user_count().await, 0);
}
