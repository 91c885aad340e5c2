//! Checks of a request before it runs: a cap on the tokens of its query
//! document, before it is parsed (thousands of aliases or directives are
//! refused in microseconds instead of being parsed and validated first;
//! graphql-js calls this `maxTokens`), no NUL character in any string
//! (neither database can store one in text), then the cost of the parsed
//! document ([`super::cost`]): fields with fragments multiplied out, depth,
//! and the size of the introspection answer.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextPrepareRequest, NextSubscribe,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, Response, ServerError, ServerResult, Value as ConstValue};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::errors::server_error;
use crate::config::QueryLimits;
use crate::error::Code;

use super::cost::{self, Budget};

/// The refusal of a request whose query has more than `max_tokens` tokens
/// or costs more than the budget of `limits` (LIMIT_EXCEEDED), or has a NUL
/// character anywhere in the query or its variables (BAD_USER_INPUT). The
/// document parsed here is kept in the request, so execution does not
/// parse it again. HTTP requests are checked before execution
/// (`http::execute`): a schema extension would make async-graphql wrap
/// every field's resolution in its hooks (20% of a 50-user list's
/// throughput). WebSocket operations, executed by async-graphql-axum, are
/// checked by the [`RequestLimits`] extension of the subscriptions' schema.
pub fn refuse(request: &mut Request, limits: &QueryLimits) -> Option<ServerError> {
    refuse_variables(request).or_else(|| refuse_query(request, limits))
}

/// [`refuse`]'s checks of the variables alone: those of a request whose
/// query passed them before ([`super::documents`]).
pub fn refuse_variables(request: &Request) -> Option<ServerError> {
    let in_variables = request
        .variables
        .iter()
        .any(|(k, v)| k.contains('\0') || has_nul(v));
    in_variables.then(nul_error)
}

/// The refusal of a string holding NUL, in the query or its variables.
fn nul_error() -> ServerError {
    server_error(
        Code::BadUserInput,
        "strings may not contain the NUL character (U+0000)",
    )
}

/// [`refuse`]'s checks of the query's text and parsed document.
fn refuse_query(request: &mut Request, limits: &QueryLimits) -> Option<ServerError> {
    let max = limits.max_tokens;
    // A raw NUL, or one spelled as an escape in a string literal.
    let in_query = request.query.contains('\0')
        || request.query.contains("\\u0000")
        || request.query.contains("\\u{0}");
    if in_query {
        return Some(nul_error());
    }
    if exceeds_tokens(&request.query, max) {
        return Some(server_error(
            Code::LimitExceeded,
            format!("the query has more than {max} tokens"),
        ));
    }
    // A syntax error is reported by execution, with its position.
    let document = request.parsed_query().ok()?;
    cost::check(document, &budget(limits))
        .err()
        .map(|over| server_error(Code::LimitExceeded, over.to_string()))
}

/// The cost budget of one operation under `limits`.
pub fn budget(limits: &QueryLimits) -> Budget {
    Budget {
        max_fields: limits.max_fields,
        max_depth: limits.max_depth as u64,
        max_introspection_depth: limits.max_introspection_depth,
        max_introspection_cost: limits.max_introspection_cost,
    }
}

/// [`refuse`] as a schema extension, for the operations of WebSocket
/// connections.
pub struct RequestLimits {
    pub limits: QueryLimits,
}

impl ExtensionFactory for RequestLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestLimitsExtension {
            limits: self.limits.clone(),
            order: Arc::default(),
        })
    }
}

/// The parsed document of a WebSocket operation and the name of the
/// operation it runs, to put its answer (or each event of a subscription)
/// back in the selection's order ([`super::order`]). Set when the request is
/// prepared, which happens before its first answer.
type SelectionOrder = Arc<Mutex<Option<(Arc<ExecutableDocument>, Option<String>)>>>;

/// One per operation (the factory makes one for each request).
struct RequestLimitsExtension {
    limits: QueryLimits,
    order: SelectionOrder,
}

/// Puts `response`'s data in the selection order kept in `order`, if any.
fn restore_order(order: &SelectionOrder, response: &mut Response) {
    let kept = order.lock().ok().and_then(|kept| kept.clone());
    if let Some((document, operation_name)) = kept {
        super::order::restore(&document, operation_name.as_deref(), &mut response.data);
    }
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
impl Extension for RequestLimitsExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        match refuse(&mut request, &self.limits) {
            Some(error) => Err(error),
            None => {
                if let (Ok(document), Ok(mut order)) = (request.parsed_query(), self.order.lock()) {
                    *order = Some((Arc::new(document.clone()), request.operation_name.clone()));
                }
                next.run(ctx, request).await
            }
        }
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = within_deadline(&self.limits, next.run(ctx, operation_name)).await;
        restore_order(&self.order, &mut response);
        response
    }

    /// Each event of a subscription, in the selection's order too.
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let order = Arc::clone(&self.order);
        let ordered = stream.map(move |mut response| {
            restore_order(&order, &mut response);
            response
        });
        next.run(ctx, ordered.boxed())
    }
}

/// Runs `execution` until `limits`' deadline; past it the execution is
/// dropped (its work stops at its next await, a transaction rolls back)
/// and the answer is LIMIT_EXCEEDED.
pub async fn within_deadline(
    limits: &QueryLimits,
    execution: impl std::future::Future<Output = Response>,
) -> Response {
    match tokio::time::timeout(limits.request_timeout(), execution).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                timeout_ms = limits.request_timeout_ms,
                "an operation ran past its deadline and was stopped"
            );
            Response::from_errors(vec![server_error(
                Code::LimitExceeded,
                format!(
                    "the operation ran longer than {} ms and was stopped",
                    limits.request_timeout_ms
                ),
            )])
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
