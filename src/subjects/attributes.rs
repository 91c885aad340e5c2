//! Custom attributes: always a JSON object.

use serde_json::{Map, Value};

use super::SubjectError;

/// Checks that `value` is a JSON object and returns it.
pub fn parse(value: Value) -> Result<Map<String, Value>, SubjectError> {
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Err(SubjectError::AttributesNotObject("null")),
        Value::Bool(_) => Err(SubjectError::AttributesNotObject("a boolean")),
        Value::Number(_) => Err(SubjectError::AttributesNotObject("a number")),
        Value::String(_) => Err(SubjectError::AttributesNotObject("a string")),
        Value::Array(_) => Err(SubjectError::AttributesNotObject("an array")),
    }
}

/// Merges `changes` into `current`, key by key: a key set to `null` is removed.
pub fn merge(current: &Value, changes: Map<String, Value>) -> Value {
    let merged = match current {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    merge_into(merged, changes)
}

/// [`merge`] taking `current` by value: no copy, linear in both sizes.
/// All changes to one subject go through one call, so applying many is
/// one merge and one serialization, not one per change.
pub fn merge_into(
    mut current: Map<String, Value>,
    changes: impl IntoIterator<Item = (String, Value)>,
) -> Value {
    for (key, value) in changes {
        if value.is_null() {
            current.remove(&key);
        } else {
            current.insert(key, value);
        }
    }
    Value::Object(current)
}

/// Bytes of `value` serialized as compact JSON (as it is stored), counted
/// without building the text.
pub fn serialized_size(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(bytes.len());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serializing a `Value` to a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_objects() {
        assert!(parse(json!({"plan": "pro"})).is_ok());
        for bad in [json!(null), json!(1), json!("x"), json!([1]), json!(true)] {
            assert!(parse(bad).is_err());
        }
    }

    #[test]
    fn merge_sets_and_removes_keys() {
        let current = json!({"plan": "free", "seats": 3, "region": "EU"});
        let changes = parse(json!({"plan": "pro", "region": null, "mrr": 99})).unwrap();
        assert_eq!(
            merge(&current, changes),
            json!({"plan": "pro", "seats": 3, "mrr": 99})
        );
    }

    #[test]
    fn serialized_size_is_the_stored_length() {
        for value in [
            json!({}),
            json!({"plan": "pro", "seats": 3, "nested": {"a": [1, 2.5, null, "é\"\n"]}}),
            json!("x".repeat(1000)),
        ] {
            assert_eq!(
                serialized_size(&value),
                serde_json::to_string(&value).unwrap().len()
            );
        }
    }
}
