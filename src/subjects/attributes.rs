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
    let mut merged = match current {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    for (key, value) in changes {
        if value.is_null() {
            merged.remove(&key);
        } else {
            merged.insert(key, value);
        }
    }
    Value::Object(merged)
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
}
