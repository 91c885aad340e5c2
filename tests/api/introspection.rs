//! The introspection queries that GraphQL tools send (kept verbatim in
//! `tests/api/introspection/`) answer, with and without a key, while an
//! alias or fragment bomb inside `__schema` is still refused (see
//! `limits.rs`); `--require-key-for-introspection` still asks them for a key.

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

/// Each tool's introspection document of the whole schema, as it sends it
/// (provenance in `introspection/README.md`).
const FIXTURES: [(&str, &str); 5] = [
    (
        "graphql-js 16 getIntrospectionQuery, every option on",
        include_str!("introspection/graphql-js-16-all-options.graphql"),
    ),
    (
        "graphql-js 16 getIntrospectionQuery, default options",
        include_str!("introspection/graphql-js-16-default.graphql"),
    ),
    (
        "GraphiQL 3 (the bundle served at /)",
        include_str!("introspection/graphiql-3.graphql"),
    ),
    (
        "GraphQL Code Generator 5 (url-loader 8)",
        include_str!("introspection/graphql-codegen-5.graphql"),
    ),
    (
        "Apollo Rover, graph introspect",
        include_str!("introspection/apollo-rover-graph-introspect.graphql"),
    ),
];

/// graphql-http's audit asks for a type by a name no schema has.
const AUDIT_TYPE_QUERY: &str = include_str!("introspection/graphql-http-audit-type.graphql");

/// The names of the types an introspection answer lists.
fn type_names(body: &Value) -> Vec<&str> {
    body["data"]["__schema"]["types"]
        .as_array()
        .map(|types| types.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_introspection_queries_of_tools_answer_with_and_without_a_key() {
    let app = TestApp::builder().spawn_sqlite().await;
    for (tool, query) in FIXTURES {
        for key in [Some(app.admin_key.as_str()), None] {
            let body = app.graphql_as(key, query, json!({})).await;
            assert!(body.get("errors").is_none(), "{tool}: {body:.400}");
            let names = type_names(&body);
            for expected in [
                "Query", "Mutation", "User", "Account", "Tag", "Segment", "__Type",
            ] {
                assert!(
                    names.contains(&expected),
                    "{tool}: no {expected} in {names:?}"
                );
            }
            assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
        }
    }
    for key in [Some(app.admin_key.as_str()), None] {
        let body = app.graphql_as(key, AUDIT_TYPE_QUERY, json!({})).await;
        assert_eq!(body, json!({ "data": { "__type": null } }));
    }
}

#[tokio::test]
async fn the_introspection_queries_of_tools_need_a_key_when_asked() {
    let app = TestApp::builder()
        .server(|s| s.require_key_for_introspection = true)
        .spawn_sqlite()
        .await;
    let audit = ("graphql-http audit", AUDIT_TYPE_QUERY);
    for (tool, query) in FIXTURES.into_iter().chain([audit]) {
        let body = app.graphql_as(None, query, json!({})).await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{tool}: {body:.300}");
        let body = app.graphql(query, json!({})).await;
        assert!(body.get("errors").is_none(), "{tool}: {body:.300}");
    }
}

#[tokio::test]
async fn the_introspection_queries_of_tools_are_refused_when_introspection_is_off() {
    let app = TestApp::builder()
        .server(|s| s.production.no_introspection = true)
        .spawn_sqlite()
        .await;
    let audit = ("graphql-http audit", AUDIT_TYPE_QUERY);
    for (tool, query) in FIXTURES.into_iter().chain([audit]) {
        for key in [Some(app.admin_key.as_str()), None] {
            let body = app.graphql_as(key, query, json!({})).await;
            assert_eq!(error_code(&body), "FORBIDDEN", "{tool}: {body:.300}");
        }
    }
}
