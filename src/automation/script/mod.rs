//! The automation script engine: compiles Rhai scripts and runs their hooks
//! against a snapshot of one subject, returning a plan of tag and attribute
//! changes. Pure: no database, no async, no IO.
//!
//! Invariants:
//! - A run never changes anything; it returns a [`RunOutcome`] whose
//!   `actions` the caller applies (or not). A failed run has no actions.
//! - Scripts cannot reach files, the network, processes, `eval` or modules,
//!   nor block: `sleep` fails the run. `print` and `debug` go to the run's
//!   logs, not to stdout; `timestamp()` reads only a monotonic clock.
//!   Every run is bounded by [`Limits`] (operations, call depth, data
//!   sizes, wall clock). Nothing a run does is visible to the next one.
//! - [`ScriptEngine`] is built once and shared across threads; a
//!   [`CompiledScript`] is compiled once and run many times. Runs happen on
//!   the engine's own large-stack threads (see `runner`); the caller blocks
//!   until the run ends, so async callers use `spawn_blocking`.
//!
//! What scripts see (see `snapshot`):
//! - `event.tag`, `event.segment` (string or `()`), `event.source` (MANUAL,
//!   BULK, IMPORT, TRIGGER, SCRIPT), `event.depth` (integer), `event.subject`.
//! - A subject `s`: `s.kind` ("USER" or "ACCOUNT"), `s.id`, `s.email`,
//!   `s.first_name`, `s.last_name`, `s.name`, `s.attributes` (object map),
//!   `s.tags` (array of strings), `s.account` (a user's account, else `()`).
//!   `s.tags` and `s.attributes` include the run's planned changes.
//! - `s.add_tag(name)`, `s.remove_tag(name)`, `s.set_attribute(key, value)`
//!   record into the plan (also through `s.account`); `s.has_tag(pattern)`
//!   sees planned changes and takes `a/*` and `Key: *` patterns.
//! - `log(value)`, `print(value)` and `debug(value)` append to the run's
//!   logs; `exit()` ends the run early, keeping its plan; `throw` fails it.
//! - Closures cannot capture variables (Rhai's `no_closure`): shared values
//!   could form reference cycles that leak and nest without bound.
//!
//! Boundary: the rest of the server calls [`ScriptEngine::compile`] (on
//! upload) and [`ScriptEngine::run`] (in the worker and `testScript`), and
//! builds [`HookEvent`]s from its own data. This module knows nothing of
//! storage or GraphQL; it only uses `crate::tags::pattern` for `has_tag`
//! and `crate::subjects::attributes` to merge and measure attributes.

mod engine;
mod plan;
mod run;
mod runner;
mod snapshot;
#[cfg(test)]
mod tests;

use std::fmt;

pub use engine::{CompiledScript, Limits, ScriptEngine};
pub use plan::{PlannedAction, attributes_too_large};
pub use run::RunOutcome;
pub use snapshot::{HookEvent, HookKind, SubjectKind, SubjectSnapshot};

/// Why a script was rejected at compile time: a syntax error, a hook with
/// the wrong number of parameters, or a script that is too large.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    /// What is wrong, without the position.
    pub message: String,
    /// 1-based line of the error, when known.
    pub line: Option<u32>,
    /// 1-based column (in characters) of the error, when known.
    pub column: Option<u32>,
}

impl ScriptError {
    fn new(message: impl Into<String>) -> Self {
        ScriptError {
            message: message.into(),
            line: None,
            column: None,
        }
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, " at line {line}, column {column}"),
            (Some(line), None) => write!(f, " at line {line}"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ScriptError {}
