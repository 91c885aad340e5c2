//! The size limits on the worst inputs they allow and on inputs past them.
//! Every pass runs on a thread with a small stack ([`on_small_stack`]), so
//! that recursion an input could drive shows up here at a known size, not
//! as a server that overflows its stack in production.

use chrono::{TimeZone, Utc};

use super::{
    Diagnostic, Filter, MAX_ARGS, MAX_DEPTH, MAX_DIAGNOSTICS, MAX_EXPANDED_TERMS,
    MAX_RELATION_DEPTH, MAX_SEGMENT_DEPTH, MAX_TERMS, SubjectData, SubjectKind, evaluate,
};

/// The stack of the threads these tests run on: a quarter of a tokio
/// worker's (2 MiB). The largest accepted filter (the widest expansion,
/// compiled and written as SQL) needs between 256 and 512 KiB in a debug
/// build; a pass that recursed once per term or per `or` would need far
/// more for the 5,000-term inputs here and overflow.
pub(crate) const SMALL_STACK: usize = 512 * 1024;

/// Runs `work` on a thread with a [`SMALL_STACK`] stack and returns its
/// result. A stack overflow there aborts the test binary: the run fails
/// at once, naming the thread.
pub(crate) fn on_small_stack<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    std::thread::Builder::new()
        .name(format!("small-stack {name}"))
        .stack_size(SMALL_STACK)
        .spawn(work)
        .expect("spawn a small-stack thread")
        .join()
        .unwrap_or_else(|_| panic!("{name}: panicked on a small stack"))
}

/// `count` terms `term(i)` joined by `op`.
pub(crate) fn chain(count: usize, op: &str, term: impl Fn(usize) -> String) -> String {
    (0..count).map(term).collect::<Vec<_>>().join(op)
}

/// `word("t0", "t1", ...)` with `count` patterns.
pub(crate) fn tag_call(word: &str, count: usize) -> String {
    let patterns = chain(count, ", ", |i| format!("\"t{i}/*\""));
    format!("{word}({patterns})")
}

/// The worst filters a user filter may be, without segments: each is at
/// the term, argument or nesting limit.
pub(crate) fn worst_user_filters() -> Vec<(&'static str, String)> {
    let tagged = |i: usize| format!("tagged(\"t{i}\")");
    let half = MAX_TERMS / 2;
    let nested_terms = chain(MAX_TERMS - 1, " or ", |i| format!("tagged(\"t{i}/*\")"));
    vec![
        ("or chain", chain(MAX_TERMS, " or ", tagged)),
        ("and chain", chain(MAX_TERMS, " and ", tagged)),
        (
            "tag arguments",
            format!(
                "{} or {}",
                tag_call("tagged_any", MAX_ARGS),
                tag_call("tagged_all", MAX_ARGS)
            ),
        ),
        (
            "alternating",
            chain(half, " or ", |i| {
                format!("(not tagged(\"t{i}\") and email contains \"x{i}\")")
            }),
        ),
        (
            "deep and wide",
            // `not (` is two levels: MAX_DEPTH - 2 of them, then two `(`.
            format!(
                "{}(email = \"a\" and ({nested_terms})){}",
                "not (".repeat((MAX_DEPTH - 2) / 2),
                ")".repeat((MAX_DEPTH - 2) / 2)
            ),
        ),
        (
            "relations",
            // The deepest relations, then the deepest nesting, then the
            // most patterns: subqueries in subqueries, 64 levels in all.
            format!(
                "{}{}{} and {}{}",
                "account.any_user(".repeat(MAX_RELATION_DEPTH / 2),
                "not (".repeat((MAX_DEPTH - MAX_RELATION_DEPTH) / 2),
                chain(
                    MAX_TERMS - MAX_RELATION_DEPTH - MAX_ARGS,
                    " or ",
                    |i| format!("tagged(\"t{i}\")")
                ),
                tag_call("tagged_all", MAX_ARGS),
                ")".repeat((MAX_DEPTH - MAX_RELATION_DEPTH) / 2 + MAX_RELATION_DEPTH / 2)
            ),
        ),
        (
            "account chain",
            chain(half, " or ", |i| format!("account.tagged(\"t{i}\")")),
        ),
    ]
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0)
        .single()
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC)
}

fn no_segments(_: &str) -> Option<Filter> {
    None
}

/// Parse, print, parse the print, evaluate: the filter must be accepted.
fn accepted(name: &'static str, text: String, kind: SubjectKind) {
    on_small_stack(name, move || {
        let filter = Filter::parse(&text, kind)
            .unwrap_or_else(|errors| panic!("{name} refused: {errors:?}"));
        let printed = filter.to_string();
        assert_eq!(
            Filter::parse(&printed, kind).as_ref(),
            Ok(&filter),
            "{name}"
        );
        let mut subject = SubjectData::new(kind, now());
        subject.tags = vec!["t7/x".into(), "other".into()];
        evaluate(&filter, &subject, now(), &no_segments);
        let _ = filter.segment_refs();
    });
}

/// The diagnostics of a refused filter, parsed on a small stack.
fn refused(name: &'static str, text: String, kind: SubjectKind) -> Vec<Diagnostic> {
    on_small_stack(name, move || match Filter::parse(&text, kind) {
        Ok(_) => panic!("{name}: accepted"),
        Err(errors) => errors,
    })
}

#[test]
fn the_worst_allowed_filters_pass_every_stage() {
    for (name, text) in worst_user_filters() {
        accepted(name, text, SubjectKind::User);
    }
    let any_users = chain(MAX_TERMS / 2, " or ", |i| {
        format!("any_user(tagged(\"t{i}\"))")
    });
    accepted("any_user chain", any_users, SubjectKind::Account);
}

#[test]
fn one_term_too_many_is_refused_where_it_starts() {
    for op in [" or ", " and "] {
        for count in [MAX_TERMS + 1, 5_000] {
            let text = chain(count, op, |_| "tagged(\"a\")".to_string());
            let errors = refused("too many terms", text, SubjectKind::User);
            // Only the first term past the limit is reported.
            assert_eq!(errors.len(), 1, "{errors:?}");
            let column = (op.len() + 11) * MAX_TERMS + 1;
            assert_eq!((errors[0].line, errors[0].column), (1, column as u32));
            assert!(
                errors[0]
                    .message
                    .starts_with("filter too long: at most 200 terms"),
                "{}",
                errors[0].message
            );
        }
    }
    // Tag patterns count as terms: two full calls and one more tag.
    let text = format!(
        "{} or {} or tagged(\"x\")",
        tag_call("tagged_any", MAX_ARGS),
        tag_call("tagged_any", MAX_ARGS)
    );
    let errors = refused("patterns count", text, SubjectKind::User);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].message.starts_with("filter too long"));
}

#[test]
fn terms_past_the_limit_stop_the_parser_on_any_input() {
    // Past the limit nothing more is read, whatever follows.
    let text = format!(
        "{} or (((( not not \"unclosed",
        chain(5_000, " and ", |_| "bogus".to_string())
    );
    let errors = refused("garbage after the limit", text, SubjectKind::User);
    assert_eq!(errors.len(), MAX_DIAGNOSTICS + 1);
    assert_eq!(errors[MAX_DIAGNOSTICS].message, "and 181 more problems");
    let errors = refused(
        "garbage after the limit",
        format!(
            "{} or \"unclosed",
            chain(201, " or ", |_| "tagged(\"a\")".into())
        ),
        SubjectKind::User,
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].message.starts_with("filter too long"));
    // However many bad characters, a bounded report.
    let errors = refused("bad characters", "@".repeat(100_000), SubjectKind::User);
    assert!(errors.len() <= MAX_DIAGNOSTICS + 1, "{}", errors.len());
    let newlines = chain(5_000, "\nor ", |_| "tagged(\"a\")".to_string());
    let errors = refused("lines", newlines, SubjectKind::User);
    assert_eq!(
        (errors[0].line, errors[0].column),
        (MAX_TERMS as u32 + 1, 4)
    );
}

#[test]
fn tag_calls_take_at_most_max_args() {
    for word in ["tagged_any", "tagged_all", "tagged"] {
        for count in [MAX_ARGS + 1, 5_000] {
            let errors = refused("too many args", tag_call(word, count), SubjectKind::User);
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].message, format!("{word} takes at most 100 tags"));
            // At the 101st pattern: after `word(` and 100 patterns `"tN/*", `.
            let before: usize = word.len()
                + 1
                + (0..MAX_ARGS)
                    .map(|i| format!("\"t{i}/*\", ").len())
                    .sum::<usize>();
            assert_eq!(errors[0].column as usize, before + 1, "{word}");
        }
    }
}

#[test]
fn nesting_stays_bounded_on_a_small_stack() {
    for text in [
        format!("{}tagged(\"a\")", "not ".repeat(100_000)),
        format!("{}tagged(\"a\")", "(".repeat(100_000)),
        format!("{}tagged(\"a\")", "account.".repeat(100_000)),
    ] {
        let errors = refused("deep", text, SubjectKind::User);
        assert!(
            errors
                .iter()
                .any(|e| e.message.contains("nested too deeply")),
            "{errors:?}"
        );
    }
}

/// Segments `"{prefix}1"` .. : the first is `first`, each next one is
/// `next(previous name)`.
pub(crate) fn segment_chain(
    prefix: &'static str,
    first: String,
    next: fn(&str) -> String,
) -> impl Fn(&str) -> Option<Filter> + Send + Sync + 'static {
    move |name: &str| {
        let index: usize = name.strip_prefix(prefix)?.parse().ok()?;
        let text = match index {
            0 => return None,
            1 => first.clone(),
            _ => next(&format!("{prefix}{}", index - 1)),
        };
        Filter::parse(&text, SubjectKind::User).ok()
    }
}

/// `X{i}` names `X{i-1}` twice: its expansion has 2^(i-1) terms.
pub(crate) fn doubling() -> impl Fn(&str) -> Option<Filter> + Send + Sync + 'static {
    segment_chain("X", "tagged(\"a\")".into(), |previous| {
        format!("in_segment({previous:?}) or in_segment({previous:?})")
    })
}

fn with_segments(
    text: String,
    lookup: impl Fn(&str) -> Option<Filter> + Send + 'static,
) -> Result<Filter, Vec<Diagnostic>> {
    on_small_stack("segments", move || {
        Filter::parse_with_segments(&text, SubjectKind::User, None, &lookup)
    })
}

#[test]
fn expansion_counts_repeated_segments() {
    // 2^9 = 512 terms: accepted; 2^10 = 1024: refused, at the name.
    assert!(with_segments(r#"in_segment("X10")"#.into(), doubling()).is_ok());
    for name in ["X11", "X15", "X16"] {
        let errors =
            with_segments(format!("in_segment({name:?})"), doubling()).expect_err("refused");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!((errors[0].line, errors[0].column), (1, 12));
        assert!(
            errors[0]
                .message
                .starts_with("filter too large with its segments expanded"),
            "{}",
            errors[0].message
        );
    }
    // The filter's own terms count too: 512 twice is over the limit.
    let errors = with_segments(
        r#"tagged("a") and (in_segment("X10") or in_segment("X10"))"#.into(),
        doubling(),
    )
    .expect_err("refused");
    assert_eq!((errors[0].line, errors[0].column), (1, 50));
    // Past MAX_SEGMENT_DEPTH the chain is refused as too deep, as before.
    let errors = with_segments(r#"in_segment("X40")"#.into(), doubling()).expect_err("refused");
    assert!(
        errors[0].message.contains("more than 16 deep"),
        "{errors:?}"
    );
}

#[test]
fn expansion_counts_nesting_across_segments() {
    // Each segment nests the previous one 8 levels deeper (`not` x 8).
    let nots = || {
        segment_chain("N", "tagged(\"a\")".into(), |previous| {
            format!("not not not not not not not not in_segment({previous:?})")
        })
    };
    // N9: 64 levels: accepted; N10: 72: refused.
    assert!(with_segments(r#"in_segment("N9")"#.into(), nots()).is_ok());
    let errors = with_segments(r#"in_segment("N10")"#.into(), nots()).expect_err("refused");
    assert!(errors[0].message.contains("nests too deeply"), "{errors:?}");
    let errors =
        with_segments(r#"not (tagged("b") or in_segment("N9"))"#.into(), nots()).expect_err("deep");
    assert_eq!((errors[0].line, errors[0].column), (1, 32));
}

/// Segments whose expansion is at the term limit: `W1` holds 100 patterns,
/// `W{i}` for i in 2..=10 is `W{i-1}` and 100 more terms, nested 6 levels
/// deeper. `W10` expands to 1,000 terms, 54 levels deep, through 10
/// segments.
pub(crate) fn widest() -> impl Fn(&str) -> Option<Filter> + Send + Sync + 'static {
    segment_chain("W", tag_call("tagged_any", MAX_ARGS), |previous| {
        let rest = chain(99, " or ", |i| format!("tagged(\"{previous}-{i}\")"));
        format!("not not not not not (in_segment({previous:?}) and email != \"x\" or {rest})")
    })
}

#[test]
fn the_widest_allowed_expansion_passes_every_stage() {
    assert_eq!(MAX_EXPANDED_TERMS, 1000);
    const { assert!(MAX_SEGMENT_DEPTH >= 10) };
    let filter = with_segments(r#"in_segment("W10")"#.into(), widest()).expect("accepted");
    on_small_stack("widest", move || {
        let lookup = widest();
        let mut subject = SubjectData::new(SubjectKind::User, now());
        subject.tags = vec!["w50/x".into()];
        subject.email = Some("someone@example.com".into());
        evaluate(&filter, &subject, now(), &lookup);
        let _ = filter.reach(&lookup);
    });
    // One more term anywhere is too many.
    let errors =
        with_segments(r#"tagged("b") or in_segment("W10")"#.into(), widest()).expect_err("refused");
    assert!(
        errors[0].message.starts_with("filter too large"),
        "{errors:?}"
    );
}

#[test]
fn relations_nest_at_most_max_relation_depth() {
    let nested = |pairs: usize| {
        format!(
            "{}tagged(\"a\"){}",
            "account.any_user(".repeat(pairs),
            ")".repeat(pairs)
        )
    };
    accepted(
        "relations",
        nested(MAX_RELATION_DEPTH / 2),
        SubjectKind::User,
    );
    let errors = refused(
        "relations",
        nested(MAX_RELATION_DEPTH / 2 + 1),
        SubjectKind::User,
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].message,
        "account. and any_user(…) nested too deeply (at most 8 levels)"
    );
    // At the `account.` that would be the ninth: 4 × "account.any_user(" + "account".
    assert_eq!(errors[0].column as usize, 4 * 17 + 8 + 1);
    // Across segments: R{i} puts R{i-1} inside one more relation pair.
    let relations = || {
        segment_chain("R", "tagged(\"a\")".into(), |previous| {
            format!("account.any_user(in_segment({previous:?}))")
        })
    };
    assert!(with_segments(r#"in_segment("R5")"#.into(), relations()).is_ok());
    let errors = with_segments(r#"in_segment("R6")"#.into(), relations()).expect_err("refused");
    assert!(
        errors[0]
            .message
            .contains("nests account. and any_user(…) too deeply"),
        "{errors:?}"
    );
}
