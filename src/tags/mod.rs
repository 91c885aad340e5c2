//! Tags: names, patterns, assignment and history.
//!
//! Invariant: pure tag logic (names, patterns) does no IO.

pub mod pattern;
