//! Checks of a request before it is parsed: a cap on the tokens of its
//! query document (thousands of aliases or directives are refused in
//! microseconds instead of being parsed and validated first; graphql-js
//! calls this `maxTokens`), and no NUL character in any string (neither
//! database can store one in text).

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::{Request, ServerError, ServerResult, Value as ConstValue};

use crate::error::{Code, server_error};

/// The refusal of a request whose query has more than `max` tokens
/// (LIMIT_EXCEEDED), or a NUL character anywhere in the query or its
/// variables (BAD_USER_INPUT). HTTP requests are checked before execution
/// (`http::execute`): a schema extension would make async-graphql wrap
/// every field's resolution in its hooks (20% of a 50-user list's
/// throughput). WebSocket operations, executed by async-graphql-axum, are
/// checked by the [`TokenLimit`] extension of the subscriptions' schema.
pub fn refuse(request: &Request, max: usize) -> Option<ServerError> {
    let in_variables = request
        .variables
        .iter()
        .any(|(k, v)| k.contains('\0') || has_nul(v));
    // A raw NUL, or one spelled as an escape in a string literal.
    let in_query = request.query.contains('\0')
        || request.query.contains("\\u0000")
        || request.query.contains("\\u{0}");
    if in_query || in_variables {
        return Some(server_error(
            Code::BadUserInput,
            "strings may not contain the NUL character (U+0000)",
        ));
    }
    if exceeds_tokens(&request.query, max) {
        return Some(server_error(
            Code::LimitExceeded,
            format!("the query has more than {max} tokens"),
        ));
    }
    None
}

/// [`refuse`] as a schema extension, for the operations of WebSocket
/// connections.
pub struct TokenLimit {
    pub max: usize,
}

impl ExtensionFactory for TokenLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(TokenLimitExtension { max: self.max })
    }
}

struct TokenLimitExtension {
    max: usize,
}

/// Whether a NUL character is in any string or object key of `value`.
fn has_nul(value: &ConstValue) -> bool {
    match value {
        ConstValue::String(s) => s.contains('\0'),
        ConstValue::List(items) => items.iter().any(has_nul),
        ConstValue::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

#[async_trait::async_trait]
impl Extension for TokenLimitExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        match refuse(&request, self.max) {
            Some(error) => Err(error),
            None => next.run(ctx, request).await,
        }
    }
}

/// Whether `query` has more than `max` lexical tokens (names, numbers,
/// strings, punctuators; whitespace, commas and comments are not tokens).
/// Stops counting as soon as the answer is known.
pub fn exceeds_tokens(query: &str, max: usize) -> bool {
    let bytes = query.as_bytes();
    let mut i = 0;
    let mut tokens = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 3;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'.' if bytes[i..].starts_with(b"...") => i += 3,
            _ if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' => {
                i += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || matches!(bytes[i], b'_' | b'.' | b'+' | b'-'))
                {
                    i += 1;
                }
            }
            _ => i += 1,
        }
        tokens += 1;
        if tokens > max {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::exceeds_tokens;

    fn count(query: &str) -> usize {
        (0..1000).find(|&n| !exceeds_tokens(query, n)).unwrap()
    }

    #[test]
    fn counts_names_punctuators_and_values() {
        assert_eq!(count("{ users { totalCount } }"), 6);
        assert_eq!(count("{ a: user(id: \"x y, z\") { id } }"), 13);
        assert_eq!(
            count("query($n: Int = -1.5e3) { users(first: $n) { totalCount } }"),
            21
        );
        assert_eq!(
            count("{ ...F } fragment F on Query { viewer { role } }"),
            14
        );
    }

    #[test]
    fn ignores_whitespace_commas_and_comments() {
        assert_eq!(count("{ a, b,,, c } # a comment { with } tokens\n"), 5);
        assert_eq!(count(""), 0);
    }

    #[test]
    fn a_string_is_one_token_whatever_it_holds() {
        assert_eq!(count("{ f(s: \"{ { { \\\" } } }\") }"), 8);
        assert_eq!(count("{ f(s: \"\"\"{ \"a\" \\\"\"\" } }\"\"\") }"), 8);
    }

    #[test]
    fn stops_at_the_limit() {
        let aliases: String = (0..5000)
            .map(|i| format!("a{i}: users {{ totalCount }} "))
            .collect();
        assert!(exceeds_tokens(&format!("{{ {aliases} }}"), 10_000));
        assert!(!exceeds_tokens("{ users { totalCount } }", 6));
        assert!(exceeds_tokens("{ users { totalCount } }", 5));
    }
}
