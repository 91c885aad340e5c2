//! The HTTP surface: GraphiQL, health, GraphQL over HTTP details.

use serde_json::json;

use crate::helpers::TestApp;
use crate::on_both_databases;

on_both_databases!(health_and_graphiql, graphql_over_http);

async fn health_and_graphiql(app: TestApp) {
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);

    let page = app.client.get(&app.address).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("GraphiQL") && html.contains("/graphql") && html.contains("Bearer"));
    for asset in [
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
    ] {
        let response = app
            .client
            .get(format!("{}/assets/{asset}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert_eq!(response.headers()["content-encoding"], "gzip");
    }
    let response = app.get("/assets/nope.js").await;
    assert_eq!(response.status(), 404);
}

async fn graphql_over_http(app: TestApp) {
    // GET runs queries...
    let response = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[("query", "{ users { totalCount } }")])
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["data"]["users"]["totalCount"], 0);

    // ...but refuses mutations.
    let response = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[(
            "query",
            "mutation { upsertUser(input: { email: \"a@example.com\" }) { id } }",
        )])
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(app.user_count().await, 0);

    // application/graphql-response+json: a request error is a 400 in that media type.
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("accept", "application/graphql-response+json")
        .bearer_auth(&app.admin_key)
        .json(&json!({ "query": "{ users { nope } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/graphql-response+json"
    );
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("accept", "application/graphql-response+json")
        .bearer_auth(&app.admin_key)
        .json(&json!({ "query": "{ users { totalCount } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn health_is_503_when_the_database_is_gone() {
    let app = TestApp::builder().spawn_sqlite().await;
    app.db.clone().close().await.unwrap();
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn query_limits_are_enforced() {
    let app = TestApp::builder().spawn_sqlite().await;
    // Too deep: account.users.nodes.account.users... nests past 12 levels.
    let mut deep = String::from("totalCount");
    for _ in 0..7 {
        deep = format!("nodes {{ account {{ users {{ {deep} }} }} }}");
    }
    let body = app
        .graphql(&format!("{{ users {{ {deep} }} }}"), json!({}))
        .await;
    assert_eq!(
        crate::helpers::error_code(&body),
        "LIMIT_EXCEEDED",
        "{body}"
    );

    // Too complex: many aliases.
    let aliases: String = (0..5000)
        .map(|i| format!("a{i}: users {{ totalCount }} "))
        .collect();
    let body = app.graphql(&format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(
        crate::helpers::error_code(&body),
        "LIMIT_EXCEEDED",
        "{}",
        &body.to_string()[..200]
    );

    // Too many directives on one field.
    let directives = "@include(if: true) ".repeat(50);
    let body = app
        .graphql(
            &format!("{{ users {directives} {{ totalCount }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(
        crate::helpers::error_code(&body),
        "LIMIT_EXCEEDED",
        "{body}"
    );
}

/// Where each of `names` first appears in `text`, which must be in order.
fn assert_in_order(text: &str, names: &[&str]) {
    let positions: Vec<usize> = names
        .iter()
        .map(|name| {
            text.find(&format!("\"{name}\""))
                .unwrap_or_else(|| panic!("no {name} in {text}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "{names:?} not in the order asked: {text}"
    );
}

/// The response keeps the order of the selection (the spec's "Serialized
/// Map Ordering"), for one operation and in a batch; errors come first.
#[tokio::test]
async fn responses_keep_the_selection_order() {
    let app = TestApp::builder().spawn_sqlite().await;
    let user = app.user("ordered@example.com").await;
    app.ok(
        "mutation($id: ID!) { addTags(subjectId: $id, tags: [\"Zeta\"]) { __typename } }",
        json!({ "id": user }),
    )
    .await;
    let query =
        "{ viewer { role } users { totalCount nodes { tags { name } id email } } __typename }";
    let (status, text) = app
        .post_raw("application/json", json!({ "query": query }).to_string())
        .await;
    assert_eq!(status, 200);
    assert_in_order(&text, &["viewer", "users", "__typename"]);
    assert_in_order(&text, &["totalCount", "nodes"]);
    assert_in_order(&text, &["tags", "id", "email"]);
    let batch =
        json!([{ "query": "{ users { totalCount } viewer { role } }" }, { "query": query }]);
    let (_, text) = app.post_raw("application/json", batch.to_string()).await;
    assert_in_order(&text, &["users", "viewer", "__typename"]);
    // A request error has no data; an execution error comes before the data.
    let (_, text) = app
        .post_raw(
            "application/json",
            json!({ "query": "{ b: __typename a: user(id: \"nope\") { id } }" }).to_string(),
        )
        .await;
    assert_in_order(&text, &["errors", "data", "b"]);
}
