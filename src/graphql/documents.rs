//! The parsed documents of queries that passed the checks made before
//! execution ([`super::limits::refuse`]), by their text. Clients send the
//! same few queries again and again; parsing one again (async-graphql's
//! parser is built on pest) and measuring its cost took 2.6 % of the
//! server's samples on a list of 50 users (BENCHMARKS.md, "Issue 20, round
//! eight").
//!
//! Bounded: at most [`MAX_ENTRIES`] documents, each of a query of at most
//! [`MAX_QUERY_BYTES`]; when full, it starts over (a client's queries come
//! back at once). What a document passed does not depend on the request's
//! variables or caller: the token cap, the NUL character in the query's text
//! and the cost are all of the text; the variables and introspection are
//! still checked on each request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::ExecutableDocument;

/// Documents kept at most.
pub const MAX_ENTRIES: usize = 128;
/// Longer queries are parsed each time.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;

/// The cache; one per server.
#[derive(Default)]
pub struct Documents {
    by_text: Mutex<HashMap<Box<str>, Arc<ExecutableDocument>>>,
}

impl Documents {
    /// The document of `query`, if kept.
    pub fn get(&self, query: &str) -> Option<Arc<ExecutableDocument>> {
        if query.len() > MAX_QUERY_BYTES {
            return None;
        }
        let by_text = self.by_text.lock().ok()?;
        by_text.get(query).cloned()
    }

    /// Keeps `document`, the parse of `query` that passed the checks.
    pub fn keep(&self, query: &str, document: Arc<ExecutableDocument>) {
        if query.len() > MAX_QUERY_BYTES {
            return;
        }
        let Ok(mut by_text) = self.by_text.lock() else {
            return;
        };
        if by_text.len() >= MAX_ENTRIES && !by_text.contains_key(query) {
            by_text.clear();
        }
        by_text.insert(query.into(), document);
    }

    /// Documents kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_text.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(query: &str) -> Arc<ExecutableDocument> {
        Arc::new(async_graphql::parser::parse_query(query).unwrap())
    }

    #[test]
    fn keeps_documents_by_text_within_its_bounds() {
        let documents = Documents::default();
        assert!(documents.get("{ a }").is_none());
        documents.keep("{ a }", document("{ a }"));
        assert!(documents.get("{ a }").is_some());
        // Another text, even one that parses the same, is another entry.
        assert!(documents.get("{a}").is_none());
        // A long query is not kept.
        let long = format!("{{ a {} }}", " ".repeat(MAX_QUERY_BYTES));
        documents.keep(&long, document(&long));
        assert!(documents.get(&long).is_none());
        // Full: it starts over.
        for i in 0..MAX_ENTRIES {
            let query = format!("{{ f{i} }}");
            documents.keep(&query, document(&query));
            assert!(documents.len() <= MAX_ENTRIES);
        }
        assert!(documents.get("{ a }").is_none());
        assert!(
            documents
                .get(&format!("{{ f{} }}", MAX_ENTRIES - 1))
                .is_some()
        );
    }
}
