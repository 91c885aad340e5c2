//! The response in the order of the selection (the GraphQL spec's
//! "Serialized Map Ordering"). async-graphql resolves a query's fields
//! concurrently and keeps them in the order they finish (`__typename`,
//! which needs no wait, first; a lazy `totalCount` after `nodes`), so the
//! data is put back in the order the query asked for, key by key, before it
//! is serialized.

use std::collections::HashSet;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Value};

/// Puts `data`, the answer of the operation `operation_name` (or the only
/// one) of `document`, in the order of its selection.
pub fn restore(document: &ExecutableDocument, operation_name: Option<&str>, data: &mut Value) {
    let operation = document
        .operations
        .iter()
        .find(|(name, _)| operation_name.is_none() || name.map(|n| n.as_str()) == operation_name);
    if let Some((_, operation)) = operation {
        reorder(document, &[&operation.node.selection_set.node], data, 0);
    }
}

/// How deep the walk goes (responses are far shallower: the cost limits
/// bound their depth).
const MAX_DEPTH: usize = 64;

/// Each response key of an object, in order, with the selections below it.
type Keys<'a> = IndexMap<Name, Vec<&'a SelectionSet>>;

fn reorder(document: &ExecutableDocument, sets: &[&SelectionSet], value: &mut Value, depth: usize) {
    if matches!(value, Value::List(_) | Value::Object(_)) {
        // Once for the selection, whatever the length of a list.
        let mut keys = Keys::new();
        let mut spread = HashSet::new();
        for set in sets {
            collect(document, set, &mut keys, &mut spread);
        }
        apply(document, &keys, value, depth);
    }
}

fn apply(document: &ExecutableDocument, keys: &Keys<'_>, value: &mut Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::List(items) => {
            for item in items {
                apply(document, keys, item, depth + 1);
            }
        }
        Value::Object(object) => {
            let mut ordered = IndexMap::with_capacity(object.len());
            for (key, children) in keys {
                if let Some((key, mut child)) = object.shift_remove_entry(key) {
                    if !children.is_empty() {
                        reorder(document, children, &mut child, depth + 1);
                    }
                    ordered.insert(key, child);
                }
            }
            // Anything the walk did not name keeps its place at the end.
            ordered.extend(std::mem::take(object));
            *object = ordered;
        }
        _ => {}
    }
}

/// The response keys of `set` in order of first appearance (through
/// fragments, each spread once per object), with the selections below each.
fn collect<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    keys: &mut Keys<'a>,
    spread: &mut HashSet<&'a str>,
) {
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                let children = keys
                    .entry(field.node.response_key().node.clone())
                    .or_default();
                if !field.node.selection_set.node.items.is_empty() {
                    children.push(&field.node.selection_set.node);
                }
            }
            Selection::InlineFragment(inline) => {
                collect(document, &inline.node.selection_set.node, keys, spread);
            }
            Selection::FragmentSpread(fragment) => {
                let name = fragment.node.fragment_name.node.as_str();
                if let Some((name, fragment)) = document.fragments.get_key_value(name)
                    && spread.insert(name.as_str())
                {
                    collect(document, &fragment.node.selection_set.node, keys, spread);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::restore;

    fn ordered(query: &str, data: serde_json::Value) -> String {
        let document = parse_query(query).unwrap();
        let mut value = async_graphql::Value::from_json(data).unwrap();
        restore(&document, None, &mut value);
        serde_json::to_string(&value).unwrap()
    }

    #[test]
    fn puts_keys_in_the_selection_order_through_lists_aliases_and_fragments() {
        let data = serde_json::json!({
            "__typename": "Query",
            "users": { "nodes": [{ "email": "a", "id": "1", "tags": [] }], "totalCount": 1 },
            "viewer": { "role": "ADMIN" },
        });
        // serde_json's map sorts; the order of `data` above is lost anyway,
        // so the test checks the order produced, whatever came in.
        let text = ordered(
            "{ viewer { role } users { ...Page } t: __typename } fragment Page on UserConnection { totalCount nodes { ... on User { tags { name } } id email } }",
            serde_json::json!({
                "t": "Query",
                "users": data["users"].clone(),
                "viewer": data["viewer"].clone(),
            }),
        );
        assert_eq!(
            text,
            r#"{"viewer":{"role":"ADMIN"},"users":{"totalCount":1,"nodes":[{"tags":[],"id":"1","email":"a"}]},"t":"Query"}"#
        );
    }

    #[test]
    fn a_fragment_spreading_itself_is_walked_once() {
        let text = ordered(
            "{ ...A } fragment A on Query { b a ...A }",
            serde_json::json!({ "a": 1, "b": 2 }),
        );
        assert_eq!(text, r#"{"b":2,"a":1}"#);
    }
}
