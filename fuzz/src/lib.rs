//! The bodies of tagsmith's fuzz targets, one function per target, shared by
//! the cargo-fuzz binaries (`fuzz_targets/`) and the stable replay runner
//! (`examples/replay.rs`). Each takes arbitrary bytes, drives one pure
//! parser of the server with them, and panics when a property below fails
//! (a panic inside the parser is a finding too).
//!
//! - [`tag_name`]: `tags::name` (validation, key:value and hierarchy) and
//!   `tags::pattern`.
//! - [`filter`]: the segment filter language: parse and type check for both
//!   kinds, the canonical printer (printed text parses back to the same
//!   tree and prints the same), `in_segment` resolution, and evaluation.
//! - [`filter_size`]: long and deep filters built from the bytes (flat
//!   `or`/`and` chains of thousands of terms, tag calls with thousands of
//!   arguments, deep nesting, chains of segments that double): parsing,
//!   printing, evaluating and compiling to SQL run on a small stack and
//!   never panic; a filter past the size limits is refused with located
//!   diagnostics, one within them is accepted.
//! - [`csv_rows`]: the import's CSV reader on in-memory text, header
//!   matching, a record becoming a row (fields and tags), de-duplication
//!   and batch planning.
//! - [`graphql_cost`]: the cost of a GraphQL document, measured before it
//!   runs: documents built from the bytes (fragments spreading each other,
//!   aliases, introspection) and the bytes as a document; whatever the
//!   measure accepts, a plain walk of the expanded selection confirms.

use std::collections::HashSet;
use std::ops::ControlFlow;

use async_graphql_parser::parse_query;
use async_graphql_parser::types::{ExecutableDocument, Selection, SelectionSet};
use tagsmith::graphql::cost::{self, Budget};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use tagsmith::import::dedup::Dedup;
use tagsmith::import::header::{Column, Header, Kind};
use tagsmith::import::plan::{self, Action, ExistingAccount, ExistingUser};
use tagsmith::import::read::Source;
use tagsmith::import::rows::{self, Row};
use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
use tagsmith::segments::filter::{
    Diagnostic, Filter, MAX_DIAGNOSTICS, MAX_TERMS, SubjectData, SubjectKind, evaluate,
};
use tagsmith::segments::sql::{Backend, SqlContext, select_ids};
use tagsmith::subjects::email::Email;
use tagsmith::tags::name::{self, MAX_LEN, TagName, TagRules};
use tagsmith::tags::pattern::{TagPattern, tag_matches};

/// The targets by name, for the replay runner.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("tag_name", tag_name),
    ("filter", filter),
    ("filter_size", filter_size),
    ("csv_rows", csv_rows),
    ("graphql_cost", graphql_cost),
];

/// The rule sets every input is tried under.
const RULES: [TagRules; 4] = [
    TagRules {
        lowercase: false,
        max_depth: 3,
    },
    TagRules {
        lowercase: true,
        max_depth: 3,
    },
    TagRules {
        lowercase: false,
        max_depth: 1,
    },
    TagRules {
        lowercase: true,
        max_depth: 8,
    },
];

/// Tag names: what parses is the trimmed input, valid again as itself,
/// within the length, depth and case rules; its parts are consistent.
pub fn tag_name(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for rules in RULES {
        check_tag_name(&text, rules);
        // Every line as a name, and the lines as one request.
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() > 1 {
            for line in &lines {
                check_tag_name(line, rules);
            }
        }
        match name::parse_all(&lines, rules) {
            Ok(names) => {
                let distinct: HashSet<&TagName> = names.iter().collect();
                assert_eq!(distinct.len(), names.len(), "parse_all kept a duplicate");
                assert!(names.len() <= lines.len());
            }
            Err(message) => assert!(!message.is_empty()),
        }
    }
    // Any text as a pattern against any text as a name never panics.
    let (pattern, tag) = text.split_once('\n').unwrap_or((&text, &text));
    let parsed = TagPattern::parse(pattern);
    assert_eq!(parsed.matches(tag), tag_matches(pattern, tag));
}

fn check_tag_name(raw: &str, rules: TagRules) {
    let Ok(name) = TagName::parse(raw, rules) else {
        return;
    };
    let text = name.as_str();
    assert_eq!(text, raw.trim(), "a name is its trimmed input");
    assert_eq!(
        TagName::parse(text, rules).as_ref(),
        Ok(&name),
        "a valid name parses as itself"
    );
    assert_eq!(name.to_string(), text);
    assert!((1..=MAX_LEN).contains(&text.chars().count()), "{text:?}");
    assert!(!text.chars().any(char::is_control), "{text:?}");
    if rules.lowercase {
        assert!(!text.chars().any(char::is_uppercase), "{text:?}");
    }
    let path = name.path();
    match name.key_value() {
        Some((key, value)) => {
            assert!(!key.is_empty() && !value.is_empty(), "{text:?}");
            assert!(key != "*" && value != "*", "{text:?}");
            assert_eq!(path, [text], "a key:value tag is flat");
            assert!(name.ancestors().is_empty() && name.parent().is_none());
        }
        None => {
            assert!(path.len() <= rules.max_depth, "{text:?} is too deep");
            assert_eq!(path.join("/"), text);
            assert!(
                path.iter()
                    .all(|level| !level.trim().is_empty() && *level != "*")
            );
            let ancestors = name.ancestors();
            assert_eq!(ancestors.len(), path.len() - 1);
            for (n, ancestor) in ancestors.iter().enumerate() {
                assert_eq!(ancestor, &path[..=n].join("/"));
                assert!(text.starts_with(&format!("{ancestor}/")));
            }
            assert_eq!(name.parent(), ancestors.last().cloned());
        }
    }
    assert_eq!(tagsmith::tags::name::path_of(text), path);
    // A name that is not a pattern selects itself.
    if !text.ends_with('*') {
        assert!(tag_matches(text, text), "{text:?} does not match itself");
    }
}

/// Saved segments that `in_segment` can name in the fuzzed filters.
fn segment(name: &str) -> Option<Filter> {
    let (text, kind) = match name {
        "Champions" => (r#"tagged("vip") and attr.seats >= 10"#, SubjectKind::User),
        "Loop" => (r#"in_segment("Loop")"#, SubjectKind::User),
        "Ping" => (r#"in_segment("Pong") or tagged("x")"#, SubjectKind::User),
        "Pong" => (r#"in_segment("Ping")"#, SubjectKind::User),
        "Big accounts" => (
            r#"attr.seats > 100 or any_user(in_segment("Champions"))"#,
            SubjectKind::Account,
        ),
        _ => return None,
    };
    Some(Filter::parse(text, kind).expect("the fixture segments parse"))
}

fn subjects() -> (SubjectData, SubjectData, DateTime<Utc>) {
    let now = Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap();
    let day = chrono::TimeDelta::days(1);
    let mut account = SubjectData::new(SubjectKind::Account, now - day * 400);
    account.name = Some("Acme Ünïcode".into());
    account.external_id = Some("A-1".into());
    account.last_activity_at = Some(now - day * 3);
    account.tags = vec!["plan/enterprise".into(), "Region: EMEA".into()];
    account.attributes.insert("seats".into(), json!(250));
    account
        .attributes
        .insert("renewal_date".into(), json!("2024-07-15"));
    account.events = vec![("login".into(), now - day)];
    let mut user = SubjectData::new(SubjectKind::User, now - day * 30);
    user.email = Some("ana@example.com".into());
    user.first_name = Some("Ana".into());
    user.last_seen_at = Some(now - day * 2);
    user.tags = vec![
        "vip".into(),
        "sports/football".into(),
        "Dept: Sales/EMEA".into(),
    ];
    user.attributes.insert("seats".into(), json!(12.5));
    user.attributes.insert("trial".into(), json!(true));
    user.attributes.insert("nick".into(), json!("ana"));
    user.attributes.insert("nothing".into(), json!(null));
    user.events = vec![
        ("login".into(), now - day),
        ("login".into(), now - day * 8),
        ("Clicked Demo".into(), now + day),
    ];
    account.users = vec![user.clone()];
    user.account = Some(Box::new(account.clone()));
    (user, account, now)
}

/// Filters: whatever parses prints as text that parses back to the same
/// tree and prints the same; what does not parse has diagnostics; a
/// resolved parse agrees with the plain one; `not (f)` evaluates to the
/// negation of `f`.
pub fn filter(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (user, account, now) = subjects();
    let lookup = |name: &str| segment(name);
    for (kind, subject) in [(SubjectKind::User, &user), (SubjectKind::Account, &account)] {
        let parsed = Filter::parse(&text, kind);
        match &parsed {
            Ok(filter) => {
                assert_eq!(filter.kind(), kind);
                let printed = filter.to_string();
                let reparsed = Filter::parse(&printed, kind).unwrap_or_else(|diagnostics| {
                    panic!("{text:?} printed as {printed:?}, which does not parse: {diagnostics:?}")
                });
                assert_eq!(&reparsed, filter, "{text:?} printed as {printed:?}");
                assert_eq!(reparsed.to_string(), printed, "printing is not stable");
                let refs = filter.segment_refs();
                let distinct: HashSet<&String> = refs.iter().collect();
                assert_eq!(distinct.len(), refs.len());
                let matched = evaluate(filter, subject, now, &lookup);
                assert!(
                    !evaluate(
                        filter,
                        if kind == SubjectKind::User {
                            &account
                        } else {
                            &user
                        },
                        now,
                        &lookup
                    ),
                    "a filter matches only its kind"
                );
                if let Ok(negated) = Filter::parse(&format!("not ({printed})"), kind) {
                    assert_eq!(
                        evaluate(&negated, subject, now, &lookup),
                        !matched,
                        "{printed}"
                    );
                }
            }
            Err(diagnostics) => {
                assert!(
                    !diagnostics.is_empty(),
                    "{text:?} fails without a diagnostic"
                );
                for diagnostic in diagnostics {
                    assert!(diagnostic.line >= 1 && diagnostic.column >= 1);
                    assert!(
                        diagnostic.span.start <= diagnostic.span.end,
                        "{diagnostic:?}"
                    );
                    assert!(!diagnostic.to_string().is_empty());
                }
            }
        }
        let resolved = Filter::parse_with_segments(&text, kind, Some("Self"), &lookup);
        match (&resolved, &parsed) {
            (Ok(resolved), Ok(plain)) => assert_eq!(resolved, plain),
            (Ok(_), Err(_)) => panic!("{text:?} parses only with segments"),
            (Err(diagnostics), _) => assert!(!diagnostics.is_empty()),
        }
    }
}

/// The stack the size target runs each input on: a quarter of a tokio
/// worker's. Anything that recursed once per term would overflow it.
const SMALL_STACK: usize = 512 * 1024;

/// A filter built from `data`: byte 0 picks the shape, bytes 1-2 the count
/// (up to 6,143, so both sides of every limit come up), byte 3 the term,
/// the rest (lossy UTF-8) is mixed in as tag text. Returns the text, the
/// kind, and how many terms it has when every term is well formed.
fn sized_filter(data: &[u8]) -> (String, SubjectKind, Option<usize>) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let count = (usize::from(byte(1)) << 8 | usize::from(byte(2))) % 6_144;
    let free = String::from_utf8_lossy(data.get(4..).unwrap_or_default()).into_owned();
    let terms = [
        r#"tagged("a")"#.to_string(),
        r#"tagged("a/*")"#.to_string(),
        r#"email contains "x""#.to_string(),
        r#"not tagged("b")"#.to_string(),
        r#"events("login", 7d) >= 1"#.to_string(),
        format!("tagged({free:?})"),
        free.clone(),
    ];
    let pick = usize::from(byte(3)) % terms.len();
    let term = &terms[pick];
    // The first five are single, valid terms of a user filter.
    let well_formed = pick < 5;
    let join = |op: &str| vec![term.as_str(); count.max(1)].join(op);
    let pattern = format!("{free:?}");
    let user = SubjectKind::User;
    match byte(0) % 8 {
        0 => (join(" or "), user, well_formed.then_some(count.max(1))),
        1 => (join(" and "), user, well_formed.then_some(count.max(1))),
        2 => {
            let call = ["tagged_any", "tagged_all", "tagged"][usize::from(byte(3)) % 3];
            let args = vec![pattern.as_str(); count.max(1)].join(", ");
            (format!("{call}({args})"), user, None)
        }
        3 => {
            let opener = ["not ", "(", "not (", "account."][usize::from(byte(3)) % 4];
            let closer = if opener.ends_with('(') { ")" } else { "" };
            let text = format!(
                "{}tagged(\"a\"){}",
                opener.repeat(count),
                closer.repeat(count)
            );
            (text, user, None)
        }
        4 => {
            let text = format!(
                "{}tagged(\"a\"){}",
                "any_user(account.".repeat(count),
                ")".repeat(count)
            );
            (text, SubjectKind::Account, None)
        }
        5 => {
            // Groups of terms in parentheses, alternating operators.
            let group = vec![term.as_str(); usize::from(byte(3)) % 7 + 1].join(" and ");
            let groups = vec![format!("({group})"); count.max(1)].join(" or ");
            (groups, user, None)
        }
        6 => {
            let segment = format!("D{}", count % 40);
            (format!("in_segment({segment:?}) or {term}"), user, None)
        }
        _ => {
            // The bytes themselves, repeated.
            (free.repeat(count.min(64).max(1)), user, None)
        }
    }
}

/// Segments `D1`, `D2`, ...: `D1` is `tagged("a")`, `D{i}` names
/// `D{i-1}` twice (2^(i-1) terms once expanded).
fn doubling_segment(name: &str) -> Option<Filter> {
    let index: usize = name.strip_prefix('D')?.parse().ok()?;
    let text = match index {
        0 => return None,
        1 => r#"tagged("a")"#.to_string(),
        _ => {
            let previous = format!("D{}", index - 1);
            format!("in_segment({previous:?}) or in_segment({previous:?})")
        }
    };
    Filter::parse(&text, SubjectKind::User).ok()
}

fn check_diagnostics(text: &str, diagnostics: &[Diagnostic]) {
    assert!(!diagnostics.is_empty(), "refused without a diagnostic");
    assert!(
        diagnostics.len() <= MAX_DIAGNOSTICS + 1,
        "{} diagnostics",
        diagnostics.len()
    );
    for diagnostic in diagnostics {
        assert!(diagnostic.line >= 1 && diagnostic.column >= 1, "{diagnostic:?}");
        assert!(
            diagnostic.span.start <= diagnostic.span.end && diagnostic.span.start <= text.len(),
            "{diagnostic:?}"
        );
    }
}

/// Long and deep filters: see [`sized_filter`]. Every stage runs on a
/// [`SMALL_STACK`] thread.
pub fn filter_size(data: &[u8]) {
    let (text, kind, terms) = sized_filter(data);
    let worker = std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(move || check_sized(&text, kind, terms))
        .expect("spawn");
    if let Err(panic) = worker.join() {
        std::panic::resume_unwind(panic);
    }
}

fn check_sized(text: &str, kind: SubjectKind, terms: Option<usize>) {
    let (user, account, now) = subjects();
    let lookup = |name: &str| doubling_segment(name);
    let parsed = Filter::parse_with_segments(text, kind, None, &lookup);
    match (&parsed, terms) {
        (Ok(_), Some(terms)) => assert!(terms <= MAX_TERMS, "{terms} terms accepted"),
        (Err(diagnostics), Some(terms)) if terms > MAX_TERMS => {
            check_diagnostics(text, diagnostics);
            assert!(
                diagnostics
                    .iter()
                    .any(|d| d.message.starts_with("filter too long")),
                "{terms} terms: {diagnostics:?}"
            );
        }
        (Err(diagnostics), Some(terms)) => {
            panic!("{terms} well-formed terms refused: {diagnostics:?}")
        }
        (Err(diagnostics), None) => check_diagnostics(text, diagnostics),
        (Ok(_), None) => {}
    }
    let Ok(filter) = parsed else {
        return;
    };
    let printed = filter.to_string();
    let reparsed = Filter::parse(&printed, kind).expect("the print parses");
    assert_eq!(reparsed, filter);
    assert!(filter.expansion_problem(&lookup).is_none());
    let subject = if kind == SubjectKind::User { &user } else { &account };
    evaluate(&filter, subject, now, &lookup);
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let ctx = SqlContext {
            workspace_id: 1,
            now,
            backend,
            segments: &lookup,
        };
        let statement = select_ids(&filter, &ctx);
        let sql = match backend {
            Backend::Sqlite => statement.to_string(SqliteQueryBuilder),
            Backend::Postgres => statement.to_string(PostgresQueryBuilder),
        };
        assert!(!sql.is_empty());
    }
}

/// CSV rows: records come in line order; a header either names its
/// columns or is refused; a row is valid only with one cell per column,
/// and then its email, names and tags are valid again as themselves; the
/// planner, re-run on the rest of a batch as the writer does, plans every
/// row in at most one pass per row.
pub fn csv_rows(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for delimiter in [b',', b';'] {
        let mut records = Vec::new();
        let read = Source::Text(&text).for_each(delimiter, |record| {
            records.push(record);
            // Bounded work per input.
            if records.len() > 500 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if read.is_err() {
            assert!(records.is_empty(), "a refused file yields no records");
            continue;
        }
        assert!(
            records.windows(2).all(|w| w[0].line <= w[1].line),
            "records out of line order"
        );
        let Some((first, rest)) = records.split_first() else {
            continue;
        };
        let Ok(header_cells) = &first.cells else {
            continue;
        };
        for kind in [Kind::Users, Kind::Accounts] {
            let Ok(header) = Header::parse(kind, header_cells) else {
                continue;
            };
            check_header(&header, header_cells);
            for rules in [RULES[0], RULES[1]] {
                check_rows(&header, rest, rules);
            }
        }
    }
}

fn check_header(header: &Header, cells: &[String]) {
    assert_eq!(header.len(), cells.len());
    let fields: Vec<&Column> = header
        .columns
        .iter()
        .filter(|c| !matches!(c, Column::Tag(_) | Column::Ignored))
        .collect();
    let distinct: HashSet<String> = fields.iter().map(|c| format!("{c:?}")).collect();
    assert_eq!(distinct.len(), fields.len(), "a field column twice");
    match header.kind {
        Kind::Users => assert!(header.columns.contains(&Column::Email)),
        Kind::Accounts => assert!(
            header.columns.contains(&Column::ExternalId) || header.columns.contains(&Column::Name)
        ),
    }
    for column in &header.columns {
        if let Column::Tag(name) = column {
            assert!(!name.is_empty() && name.trim() == name, "{name:?}");
        }
    }
}

fn check_rows(header: &Header, records: &[tagsmith::import::read::Record], rules: TagRules) {
    let mut valid = Vec::new();
    for record in records {
        let Ok(cells) = &record.cells else {
            continue;
        };
        match rows::parse(header, record.line, cells, rules) {
            Ok(row) => {
                assert_eq!(cells.len(), header.len());
                assert_eq!(row.line(), record.line);
                check_row(&row, rules);
                valid.push(row);
            }
            Err(error) => {
                assert_eq!(error.line, record.line);
                assert!(!error.message.is_empty());
            }
        }
    }
    // The first pass records every key; the second keeps the last row of each.
    let mut dedup = Dedup::default();
    for row in &valid {
        for report in dedup.record(row.line(), &row.keys()) {
            assert!(report.line < row.line(), "a row supersedes a later one");
        }
    }
    let kept: Vec<Row> = valid
        .into_iter()
        .filter(|row| dedup.keeps(row.line(), &row.keys()))
        .collect();
    let users: Vec<_> = kept
        .iter()
        .filter_map(|row| match row {
            Row::User(user) => Some(user.clone()),
            Row::Account(_) => None,
        })
        .collect();
    let accounts: Vec<_> = kept
        .iter()
        .filter_map(|row| match row {
            Row::Account(account) => Some(account.clone()),
            Row::User(_) => None,
        })
        .collect();
    plan_users(&users);
    plan_accounts(&accounts);
}

fn check_row(row: &Row, rules: TagRules) {
    let tags = match row {
        Row::User(user) => {
            let email = Email::parse(user.email.as_str()).expect("a row's email is valid");
            assert_eq!(email.as_str(), user.email.as_str());
            for text in [&user.external_id, &user.first_name, &user.last_name]
                .into_iter()
                .flatten()
            {
                assert!(
                    !text.is_empty() && text.trim() == text && !text.chars().any(char::is_control)
                );
            }
            assert!(!row.keys().is_empty());
            &user.tags
        }
        Row::Account(account) => {
            assert!(account.external_id.is_some() || account.name.is_some());
            assert!(!row.keys().is_empty());
            &account.tags
        }
    };
    assert!(
        tags.windows(2).all(|w| w[0] < w[1]),
        "tags sorted and distinct"
    );
    for tag in tags {
        assert_eq!(TagName::parse(tag.as_str(), rules).as_ref(), Ok(tag));
    }
}

/// Plans user rows against one existing user, applying each plan as the
/// writer would and planning the rest again until every row is planned.
fn plan_users(rows: &[tagsmith::import::rows::UserRow]) {
    let mut existing = vec![ExistingUser {
        id: 1,
        email: "ana@example.com".into(),
        external_id: Some("U-1".into()),
    }];
    let mut next_id = 2;
    let mut rest = rows;
    let mut passes = 0;
    while !rest.is_empty() {
        passes += 1;
        assert!(passes <= rows.len(), "planning does not progress");
        let actions = plan::users(rest, &existing);
        assert!(!actions.is_empty() && actions.len() <= rest.len());
        for (row, action) in rest.iter().zip(&actions) {
            match action {
                Action::Insert => {
                    existing.push(ExistingUser {
                        id: next_id,
                        email: row.email.as_str().to_owned(),
                        external_id: row.external_id.clone(),
                    });
                    next_id += 1;
                }
                Action::Update { id } => {
                    let user = existing
                        .iter_mut()
                        .find(|u| u.id == *id)
                        .expect("updates an existing user");
                    user.email = row.email.as_str().to_owned();
                    if row.external_id.is_some() {
                        user.external_id = row.external_id.clone();
                    }
                }
                Action::Conflict(reason) => assert!(!reason.is_empty()),
            }
        }
        rest = &rest[actions.len()..];
    }
}

/// As [`plan_users`], for accounts.
fn plan_accounts(rows: &[tagsmith::import::rows::AccountRow]) {
    let mut existing = vec![ExistingAccount {
        id: 1,
        external_id: Some("A-1".into()),
        name: "Acme".into(),
    }];
    let mut next_id = 2;
    let mut rest = rows;
    let mut passes = 0;
    while !rest.is_empty() {
        passes += 1;
        assert!(passes <= rows.len(), "planning does not progress");
        let actions = plan::accounts(rest, &existing);
        assert!(!actions.is_empty() && actions.len() <= rest.len());
        for (row, action) in rest.iter().zip(&actions) {
            match action {
                Action::Insert => {
                    let name = row.name.clone().or_else(|| row.external_id.clone());
                    existing.push(ExistingAccount {
                        id: next_id,
                        external_id: row.external_id.clone(),
                        name: name.expect("an account row has a name or an external id"),
                    });
                    next_id += 1;
                }
                Action::Update { id } => {
                    let account = existing
                        .iter_mut()
                        .find(|a| a.id == *id)
                        .expect("updates an existing account");
                    if let Some(name) = &row.name {
                        account.name = name.clone();
                    }
                    if row.external_id.is_some() {
                        account.external_id = row.external_id.clone();
                    }
                }
                Action::Conflict(reason) => assert!(!reason.is_empty()),
            }
        }
        rest = &rest[actions.len()..];
    }
}

/// The budget the GraphQL target measures against (the server's defaults).
const BUDGET: Budget = Budget {
    max_fields: 2_000,
    max_depth: 12,
    max_introspection_depth: 20,
    max_introspection_cost: 100_000,
};

/// GraphQL documents against the cost measure: it never panics, it is
/// fast on any document (the fuzzer's timeout catches a walk that
/// multiplies out), and every operation it accepts really has at most
/// `max_fields` fields and `max_depth` levels once expanded.
pub fn graphql_cost(data: &[u8]) {
    if let Ok(document) = parse_query(String::from_utf8_lossy(data)) {
        check_cost(&document);
    }
    let built = build_document(data);
    match parse_query(&built) {
        Ok(document) => check_cost(&document),
        Err(e) => panic!("a built document does not parse: {e}\n{built}"),
    }
}

/// A document from the bytes: a few fragments on Query, each selecting
/// fields, aliases, nested selections, introspection and spreads of any
/// fragment (cycles included).
fn build_document(data: &[u8]) -> String {
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next().unwrap_or(0) as usize;
    let fragments = 1 + next() % 12;
    let selection = |next: &mut dyn FnMut() -> usize, depth: usize| -> String {
        let mut out = String::new();
        for i in 0..(1 + next() % 6) {
            match next() % 7 {
                0 => out.push_str("__typename "),
                1 => out.push_str(&format!("a{i}: __typename ")),
                2 => out.push_str(&format!("...F{} ", next() % fragments)),
                3 => out.push_str(&format!(
                    "...F{n} ...F{n} ...F{n} ",
                    n = next() % fragments
                )),
                4 => out.push_str(&format!(
                    "s{i}: __schema {{ types {{ {} }} }} ",
                    chain("ofType", next() % 4, "name")
                )),
                5 => {
                    let levels = next() % 16;
                    let levels = levels.min(depth + 1);
                    out.push_str(&format!(
                        "users {{ nodes {{ {}id{} }} }} ",
                        "account { users { nodes { ".repeat(levels),
                        " } } }".repeat(levels)
                    ));
                }
                _ => out.push_str(&format!(
                    "t{i}: __type(name: \"User\") {{ {} }} ",
                    chain("ofType", next() % 24, "name")
                )),
            }
        }
        out
    };
    let mut document = String::from("query { ...F0 }\n");
    for f in 0..fragments {
        let body = selection(&mut next, f);
        document.push_str(&format!("fragment F{f} on Query {{ {body} }}\n"));
    }
    document
}

/// `field { field { ... leaf } }`, `levels` deep.
fn chain(field: &str, levels: usize, leaf: &str) -> String {
    format!("{}{leaf}{}", format!("{field} {{ ").repeat(levels), " }".repeat(levels))
}

fn check_cost(document: &ExecutableDocument) {
    for (_, operation) in document.operations.iter() {
        let Ok(measure) = cost::measure(document, &operation.node.selection_set.node) else {
            continue; // nested past the walk's own bound: refused
        };
        if cost::check(document, &BUDGET).is_err() {
            continue;
        }
        // Accepted: a plain walk (with its own step bound) finds no more.
        let mut walk = PlainWalk {
            document,
            steps: 0,
            fields: 0,
            path: Vec::new(),
        };
        if walk.selection(&operation.node.selection_set.node).is_ok() {
            assert!(walk.fields <= BUDGET.max_fields, "{} fields accepted", walk.fields);
            assert_eq!(walk.fields, measure.fields, "the measure and the walk disagree");
        }
    }
}

/// Walks the expanded selection one field at a time; gives up (Err) after
/// a million steps or on a cycle, which validation refuses.
struct PlainWalk<'a> {
    document: &'a ExecutableDocument,
    steps: u64,
    fields: u64,
    path: Vec<&'a str>,
}

impl<'a> PlainWalk<'a> {
    fn selection(&mut self, set: &'a SelectionSet) -> Result<(), ()> {
        for item in &set.items {
            self.steps += 1;
            if self.steps > 1_000_000 {
                return Err(());
            }
            match &item.node {
                Selection::Field(field) => {
                    self.fields += 1;
                    self.selection(&field.node.selection_set.node)?;
                }
                Selection::InlineFragment(inline) => {
                    self.selection(&inline.node.selection_set.node)?;
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if self.path.contains(&name) {
                        return Err(());
                    }
                    let Some(fragment) = self.document.fragments.get(name) else {
                        continue;
                    };
                    self.path.push(name);
                    self.selection(&fragment.node.selection_set.node)?;
                    self.path.pop();
                }
            }
        }
        Ok(())
    }
}
