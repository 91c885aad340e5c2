//! The response in the order of the selection (the GraphQL spec's
//! "Serialized Map Ordering"). async-graphql resolves a query's fields
//! concurrently and keeps them in the order they finish (`__typename`,
//! which needs no wait, first; a lazy `totalCount` after `nodes`), so the
//! data is put back in the order the query asked for, key by key, before it
//! is serialized.

use std::cell::OnceCell;
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
        let keys = keys_of(document, &[&operation.node.selection_set.node]);
        apply(document, &keys, data, 0);
    }
}

/// How deep the walk goes (responses are far shallower: the cost limits
/// bound their depth).
const MAX_DEPTH: usize = 64;

/// Each response key of an object, in order, with what is selected below it.
type Keys<'a> = IndexMap<Name, Below<'a>>;

/// The selections below one response key and, once an answer has a list or
/// an object there, their keys: collected once for every object and list
/// item that has the key, not once per object.
#[derive(Default)]
struct Below<'a> {
    sets: Vec<&'a SelectionSet>,
    keys: OnceCell<Keys<'a>>,
}

/// The response keys of `sets`, merged, in order.
fn keys_of<'a>(document: &'a ExecutableDocument, sets: &[&'a SelectionSet]) -> Keys<'a> {
    let mut keys = Keys::new();
    let mut spread = HashSet::new();
    for set in sets {
        collect(document, set, &mut keys, &mut spread);
    }
    keys
}

fn apply<'a>(document: &'a ExecutableDocument, keys: &Keys<'a>, value: &mut Value, depth: usize) {
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
            // Most objects come in order already: they keep their map.
            if !in_order(keys, object) {
                let mut ordered = IndexMap::with_capacity(object.len());
                for key in keys.keys() {
                    if let Some((key, child)) = object.shift_remove_entry(key) {
                        ordered.insert(key, child);
                    }
                }
                // Anything the walk did not name keeps its place at the end.
                ordered.extend(std::mem::take(object));
                *object = ordered;
            }
            // In order now: each key's place in `keys` is found walking on
            // from the last one's.
            let mut from = 0;
            for (key, child) in object.iter_mut() {
                let Some(at) = position(keys, from, key) else {
                    continue; // not named: the rest are not either
                };
                from = at + 1;
                let below = &keys[at];
                if matches!(child, Value::List(_) | Value::Object(_)) && !below.sets.is_empty() {
                    let keys = below.keys.get_or_init(|| keys_of(document, &below.sets));
                    apply(document, keys, child, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// The place of `key` in `keys` at `from` or after, compared by name (no
/// hashing: the keys are few and an answer's come in their order).
fn position(keys: &Keys<'_>, from: usize, key: &Name) -> Option<usize> {
    (from..keys.len()).find(|&at| keys.get_index(at).is_some_and(|(name, _)| name == key))
}

/// Whether the keys of `object` that `keys` names come in `keys`' order,
/// before any it does not name: what putting it in order would give.
fn in_order(keys: &Keys<'_>, object: &IndexMap<Name, Value>) -> bool {
    let mut from = 0;
    let mut unnamed = false;
    for key in object.keys() {
        match position(keys, from, key) {
            Some(_) if unnamed => return false,
            Some(at) => from = at + 1,
            // Not after the last one: unnamed, or named earlier (out of
            // order); the map tells which.
            None if keys.contains_key(key) => return false,
            None => unnamed = true,
        }
    }
    true
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
                let below = keys
                    .entry(field.node.response_key().node.clone())
                    .or_default();
                if !field.node.selection_set.node.items.is_empty() {
                    below.sets.push(&field.node.selection_set.node);
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

    /// An object built with its keys in the order given (serde_json's
    /// maps sort theirs).
    fn object(entries: Vec<(&str, async_graphql::Value)>) -> async_graphql::Value {
        async_graphql::Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| (async_graphql::Name::new(k), v))
                .collect(),
        )
    }

    fn key_names(value: &async_graphql::Value) -> Vec<String> {
        match value {
            async_graphql::Value::Object(map) => map.keys().map(|k| k.to_string()).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn an_answer_in_order_keeps_it_and_a_key_not_selected_goes_last() {
        let document = parse_query("{ b a c { y x } }").unwrap();
        let n = |i: i32| async_graphql::Value::from(i);
        let inner = || object(vec![("y", n(1)), ("x", n(2))]);
        // In order at both levels: unchanged.
        let mut value = object(vec![("b", n(1)), ("a", n(2)), ("c", inner())]);
        restore(&document, None, &mut value);
        assert_eq!(key_names(&value), ["b", "a", "c"]);
        // A key the query does not name before named ones: moved last; the
        // objects below still put in order.
        let mut value = object(vec![
            ("b", n(1)),
            ("zz", n(0)),
            ("a", n(2)),
            ("c", object(vec![("x", n(2)), ("y", n(1))])),
        ]);
        restore(&document, None, &mut value);
        assert_eq!(key_names(&value), ["b", "a", "c", "zz"]);
        let async_graphql::Value::Object(map) = &value else {
            unreachable!()
        };
        assert_eq!(key_names(&map["c"]), ["y", "x"]);
        // Out of order in one item of a list only: that item is put in order.
        let document = parse_query("{ l { b a } }").unwrap();
        let mut value = object(vec![(
            "l",
            async_graphql::Value::List(vec![
                object(vec![("b", n(1)), ("a", n(2))]),
                object(vec![("a", n(2)), ("b", n(1))]),
            ]),
        )]);
        restore(&document, None, &mut value);
        let async_graphql::Value::Object(map) = &value else {
            unreachable!()
        };
        let async_graphql::Value::List(items) = &map["l"] else {
            unreachable!()
        };
        assert!(items.iter().all(|item| key_names(item) == ["b", "a"]));
    }

    mod any_order {
        use async_graphql::parser::parse_query;
        use proptest::prelude::*;

        use super::super::restore;
        use super::{key_names, object};

        proptest! {
            /// Whatever order an answer's keys come in (some not selected), it
            /// ends with the selected keys in the selection's order, then the
            /// others in the order they came, at each level.
            #[test]
            fn any_order_of_keys_ends_in_the_selections(
                outer in proptest::sample::subsequence(vec!["a", "b", "c", "d", "x"], 0..=5)
                    .prop_shuffle(),
                inner in proptest::sample::subsequence(vec!["p", "q", "r", "y"], 0..=4)
                    .prop_shuffle(),
            ) {
                let document = parse_query("{ d b c { r p q } a }").unwrap();
                let n = || async_graphql::Value::from(1);
                let below = || object(inner.iter().map(|k| (*k, n())).collect());
                let mut value = object(
                    outer
                        .iter()
                        .map(|k| (*k, if *k == "c" { below() } else { n() }))
                        .collect(),
                );
                restore(&document, None, &mut value);
                let expect = |selected: &[&str], all: &[&str]| -> Vec<String> {
                    let mut keys: Vec<String> = selected
                        .iter()
                        .filter(|k| all.contains(k))
                        .map(|k| k.to_string())
                        .collect();
                    keys.extend(all.iter().filter(|k| !selected.contains(k)).map(|k| k.to_string()));
                    keys
                };
                prop_assert_eq!(key_names(&value), expect(&["d", "b", "c", "a"], &outer));
                if outer.contains(&"c") {
                    let async_graphql::Value::Object(map) = &value else { unreachable!() };
                    prop_assert_eq!(key_names(&map["c"]), expect(&["r", "p", "q"], &inner));
                }
            }
        }
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
