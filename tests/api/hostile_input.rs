//! Every string and ID argument of every query and mutation (found by
//! introspection, input objects included) gets hostile values: huge strings,
//! SQL metacharacters and injections, NUL and control bytes, odd Unicode.
//! Each answer is an answer (data, or errors that all carry a code), never
//! INTERNAL, never a 5xx; afterwards the database is whole.

use serde_json::{Map, Value, json};

use crate::helpers::TestApp;
use crate::on_both_databases;

on_both_databases!(hostile_strings_in_every_argument);

const PAYLOADS: &[&str] = &[
    "'; DROP TABLE users; --",
    "\" OR 1=1 --",
    "Robert'); DELETE FROM tags WHERE ('1'='1",
    "%_%\\",
    "1; SELECT pg_sleep(10)",
    "tagged(\"x\") or 1=1",
    "\u{0}nul\u{0}byte",
    "\u{1b}[31m\r\n\t",
    "\u{202e}gnp.exe 🏷️ Ünïcödé ﷽",
    "",
    "   ",
];

/// The introspection of every root field and input type.
const INTROSPECTION: &str = r#"{
  __schema {
    queryType { name }
    mutationType { name }
    types {
      name kind
      fields { name args { name type { ...T } } type { ...T } }
      inputFields { name type { ...T } }
      enumValues { name }
    }
  }
}
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }"#;

struct Schema {
    types: Map<String, Value>,
}

impl Schema {
    fn of(types: &[Value]) -> Self {
        Schema {
            types: types
                .iter()
                .map(|t| (t["name"].as_str().unwrap().to_owned(), t.clone()))
                .collect(),
        }
    }

    /// A value of `ty` with `payload` in every string, ID and JSON slot.
    fn value(&self, ty: &Value, payload: &str, depth: usize) -> Value {
        match ty["kind"].as_str().unwrap() {
            "NON_NULL" => self.value(&ty["ofType"], payload, depth),
            "LIST" => json!([self.value(&ty["ofType"], payload, depth)]),
            "ENUM" => self.types[ty["name"].as_str().unwrap()]["enumValues"][0]["name"].clone(),
            "INPUT_OBJECT" => {
                let t = &self.types[ty["name"].as_str().unwrap()];
                let mut object = Map::new();
                if depth < 3 {
                    for field in t["inputFields"].as_array().unwrap() {
                        object.insert(
                            field["name"].as_str().unwrap().to_owned(),
                            self.value(&field["type"], payload, depth + 1),
                        );
                    }
                }
                Value::Object(object)
            }
            _ => match ty["name"].as_str().unwrap() {
                "Int" => json!(1),
                "Float" => json!(1.0),
                "Boolean" => json!(false),
                "DateTime" => json!("2026-01-01T00:00:00Z"),
                "JSON" => json!({ payload: payload }),
                _ => json!(payload),
            },
        }
    }

    /// The GraphQL spelling of a type reference.
    fn spell(ty: &Value) -> String {
        match ty["kind"].as_str().unwrap() {
            "NON_NULL" => format!("{}!", Self::spell(&ty["ofType"])),
            "LIST" => format!("[{}]", Self::spell(&ty["ofType"])),
            _ => ty["name"].as_str().unwrap().to_owned(),
        }
    }

    /// Whether a field's type needs a selection set.
    fn needs_selection(&self, ty: &Value) -> bool {
        match ty["kind"].as_str().unwrap() {
            "NON_NULL" | "LIST" => self.needs_selection(&ty["ofType"]),
            "OBJECT" | "UNION" | "INTERFACE" => true,
            _ => false,
        }
    }
}

async fn hostile_strings_in_every_argument(app: TestApp) {
    let user = app.user("ana@example.com").await;
    app.ok(
        "mutation($id: ID!) { addTags(subjectId: $id, tags: [\"Keep\"]) { __typename } }",
        json!({ "id": user }),
    )
    .await;
    let data = app.ok(INTROSPECTION, json!({})).await;
    let types = data["__schema"]["types"].as_array().unwrap();
    let schema = Schema::of(types);
    let huge = "x".repeat(300_000);
    let payloads: Vec<&str> = PAYLOADS.iter().copied().chain([huge.as_str()]).collect();

    let mut requests = 0;
    let mut refused = 0;
    for (root, keyword) in [("queryType", "query"), ("mutationType", "mutation")] {
        let root_name = data["__schema"][root]["name"].as_str().unwrap();
        let fields = schema.types[root_name]["fields"]
            .as_array()
            .unwrap()
            .clone();
        for field in &fields {
            let name = field["name"].as_str().unwrap();
            let args = field["args"].as_array().unwrap();
            if args.is_empty() {
                continue;
            }
            let declared: Vec<String> = args
                .iter()
                .map(|a| {
                    format!(
                        "${}: {}",
                        a["name"].as_str().unwrap(),
                        Schema::spell(&a["type"])
                    )
                })
                .collect();
            let passed: Vec<String> = args
                .iter()
                .map(|a| format!("{0}: ${0}", a["name"].as_str().unwrap()))
                .collect();
            let selection = if schema.needs_selection(&field["type"]) {
                " { __typename }"
            } else {
                ""
            };
            let query = format!(
                "{keyword}({}) {{ {name}({}){selection} }}",
                declared.join(", "),
                passed.join(", ")
            );
            for payload in &payloads {
                let variables: Map<String, Value> = args
                    .iter()
                    .map(|a| {
                        (
                            a["name"].as_str().unwrap().to_owned(),
                            schema.value(&a["type"], payload, 0),
                        )
                    })
                    .collect();
                let response = app
                    .client
                    .post(format!("{}/graphql", app.address))
                    .bearer_auth(&app.admin_key)
                    .json(&json!({ "query": query, "variables": variables }))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let text = response.text().await.unwrap();
                let shown = &payload[..payload.len().min(40)];
                assert!(status < 500, "{name} with {shown:?}: {status} {text:.300}");
                let body: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|_| panic!("{name} with {shown:?}: not JSON: {text:.300}"));
                requests += 1;
                if let Some(errors) = body["errors"].as_array() {
                    refused += 1;
                    for error in errors {
                        let code = error["extensions"]["code"].as_str();
                        assert!(
                            code.is_some() && code != Some("INTERNAL"),
                            "{name} with {shown:?}: {error}"
                        );
                    }
                }
            }
        }
    }

    // The same payloads as CSV cells: stored literally as `Column: value`
    // tags, or reported for their row; never run.
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let printable: Vec<&str> = PAYLOADS
        .iter()
        .copied()
        .filter(|p| !p.contains('\0') && !p.trim().is_empty())
        .collect();
    let mut csv = String::from("email,first_name,Dept\n");
    for (i, payload) in printable.iter().enumerate() {
        csv += &format!("csv{i}@example.com,{},{}\n", quote(payload), quote(payload));
    }
    let result = app
        .ok(
            "mutation($csv: String!) { importUsers(csv: $csv) { created errors { line message } } }",
            json!({ "csv": csv }),
        )
        .await;
    let created = result["importUsers"]["created"].as_i64().unwrap();
    let errors = result["importUsers"]["errors"].as_array().unwrap().len() as i64;
    assert_eq!(created + errors, printable.len() as i64, "{result}");
    let stored = app
        .ok("{ tag(name: \"Dept: '; DROP TABLE users; --\") { userCount } users(search: \"csv\") { totalCount } }", json!({}))
        .await;
    assert_eq!(stored["tag"]["userCount"], 1, "{stored}");
    assert_eq!(stored["users"]["totalCount"], created, "{stored}");

    // The database is whole: the tables answer and the seeded data is there.
    let data = app
        .ok(
            "{ user(email: \"ana@example.com\") { tags { name } } users { totalCount } tags { totalCount } }",
            json!({}),
        )
        .await;
    let tags: Vec<&str> = data["user"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(tags.contains(&"Keep"), "{data}");
    assert!(app.rows("users").await >= 1);
    eprintln!(
        "hostile input: {requests} requests ({} payloads over every argument), {refused} refused with a code, 0 INTERNAL; CSV: {} rows, {created} imported literally, {errors} reported",
        payloads.len(),
        printable.len()
    );
}
