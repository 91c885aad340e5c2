//! The SQL compiler against the in-memory evaluator, on real databases:
//! random datasets and random filters (the filter module's proptest
//! strategies, with their literals drawn towards the data's vocabulary so
//! that predicates hit), plus hand-made edge cases (`edge`).
//!
//! The schema is the real one (`db::migrate`), the rows are written through
//! SeaORM. SQLite runs in memory; PostgreSQL runs when
//! `TAGSMITH_TEST_DATABASE_URL` is set, in a fresh database dropped at the
//! end. `AGREEMENT_CASES` overrides the number of random cases.

pub(super) mod db;
mod edge;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use chrono::{DateTime, SubsecRound, TimeDelta, TimeZone, Utc};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value as Json, json};

use crate::segments::filter::strategy;
use crate::segments::filter::{
    Duration, Expr, Filter, Predicate, SubjectData, SubjectKind, Target, Value, evaluate,
};
use crate::segments::sql::{Backend, SqlContext, select_ids};
use db::Db;

/// Tag names in the data: hierarchies, key:value tags, near misses.
const TAG_NAMES: [&str; 16] = [
    "VIP",
    "vip",
    "a",
    "a/b",
    "a/b/c",
    "ab",
    "a/bc",
    "Key: v",
    "Key: w",
    "Key: a: b",
    "Ke: y",
    "a : v",
    "x%_\\",
    "Keyx: v",
    "日本/x",
    "Key:v",
];

/// Tag patterns that filters use, besides random text.
const TAG_PATTERNS: [&str; 16] = [
    "VIP",
    "vip",
    "a",
    "a/*",
    "a/b",
    "a/b/*",
    "a/b/c",
    "Key: *",
    "Key: v",
    "Ke: *",
    "a : *",
    "Key: a: *",
    "x%_\\",
    "*",
    "a/",
    "日本/*",
];

/// Attribute names in the data and in filters.
const ATTR_NAMES: [&str; 12] = [
    "plan",
    "seats",
    "and",
    "is_active",
    "_x1",
    "NotNull",
    "we\"ird",
    "back\\slash",
    "new\nline",
    "a.b",
    "$x",
    "1",
];

/// Text in the data and in filters: ASCII (SQLite's `lower()` folds ASCII
/// only), and non-ASCII that has no capitals.
const WORDS: [&str; 14] = [
    "",
    "ann",
    "Ann",
    "ANN",
    "b",
    "B",
    "a%b",
    "a_b",
    "a\\b",
    "zz",
    "日",
    "é",
    "ann@acme.io",
    "12",
];

const EVENT_NAMES: [&str; 4] = ["login", "email_opened", "", "log%"];

/// Per case: `now`, the dataset, the three segments' filters.
#[derive(Debug, Clone)]
pub(crate) struct Dataset {
    pub now: DateTime<Utc>,
    pub accounts: Vec<Row>,
    pub users: Vec<Row>,
    /// Filters of "Champions" (users), "At risk" (accounts), "Trial \"2024\"" (users).
    pub segments: Vec<Filter>,
}

/// One subject as stored.
#[derive(Debug, Clone, Default)]
pub(crate) struct Row {
    pub external_id: Option<String>,
    /// Email (users) or name (accounts).
    pub main: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Users: index into the accounts.
    pub account: Option<usize>,
    pub attributes: Map<String, Json>,
    /// last_seen_at (users) or last_activity_at (accounts).
    pub seen: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// (tag name, whether the tag is live); a deleted tag keeps its row.
    pub tags: Vec<(String, bool)>,
    pub events: Vec<(String, DateTime<Utc>)>,
}

impl Dataset {
    pub fn lookup(&self, name: &str) -> Option<Filter> {
        let index = strategy::SEGMENT_NAMES.iter().position(|n| *n == name)?;
        self.segments.get(index).cloned()
    }

    /// An account with its users (which `account.any_user(...)` reads).
    fn account_data(&self, index: usize) -> SubjectData {
        let mut account = subject_data(SubjectKind::Account, &self.accounts[index]);
        account.users = self
            .users
            .iter()
            .filter(|row| row.account == Some(index))
            .map(|row| subject_data(SubjectKind::User, row))
            .collect();
        account
    }

    /// What the evaluator sees for every user or every account, in order.
    pub fn subjects(&self, kind: SubjectKind) -> Vec<SubjectData> {
        match kind {
            SubjectKind::User => self
                .users
                .iter()
                .map(|row| {
                    let mut user = subject_data(SubjectKind::User, row);
                    user.account = row.account.map(|a| Box::new(self.account_data(a)));
                    user
                })
                .collect(),
            SubjectKind::Account => (0..self.accounts.len())
                .map(|index| self.account_data(index))
                .collect(),
        }
    }
}

fn subject_data(kind: SubjectKind, row: &Row) -> SubjectData {
    let mut data = SubjectData::new(kind, row.created_at);
    data.external_id = row.external_id.clone();
    match kind {
        SubjectKind::User => {
            data.email = Some(row.main.clone());
            data.first_name = row.first_name.clone();
            data.last_name = row.last_name.clone();
            data.last_seen_at = row.seen;
        }
        SubjectKind::Account => {
            data.name = Some(row.main.clone());
            data.last_activity_at = row.seen;
        }
    }
    data.attributes = row.attributes.clone();
    data.tags = row
        .tags
        .iter()
        .filter(|(_, live)| *live)
        .map(|(name, _)| name.clone())
        .collect();
    data.events = row.events.clone();
    data
}

// ---------------------------------------------------------------- strategies

fn nows() -> Vec<DateTime<Utc>> {
    let base = Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap();
    vec![
        base,
        base + TimeDelta::nanoseconds(500),
        base + TimeDelta::hours(12) - TimeDelta::microseconds(1),
        base + TimeDelta::nanoseconds(999_999_999),
    ]
}

fn word() -> BoxedStrategy<String> {
    let chars = vec![
        'a', 'B', 'n', '0', ' ', '/', '*', ':', '"', '\\', '\n', '%', '_', 'é', '日', '@',
    ];
    prop_oneof![
        select(WORDS.to_vec()).prop_map(String::from),
        vec(select(chars), 0..5).prop_map(|chars| chars.into_iter().collect()),
    ]
    .boxed()
}

/// Text an attribute compared with `now ± DURATION` may hold: days near
/// `now`, and near misses (no such day, the wrong shape, year 0).
fn date_text(now: DateTime<Utc>) -> BoxedStrategy<String> {
    let today = now.date_naive();
    prop_oneof![
        (-40i64..10).prop_map(move |days| (today + TimeDelta::days(days))
            .format("%Y-%m-%d")
            .to_string()),
        select(vec![
            "2026-02-29",
            "2024-02-29",
            "2026-13-01",
            "0000-01-01",
            "0001-01-01",
            "9999-12-31",
            "2026-3-15",
            "2026-03-15T00:00:00Z",
            " 2026-03-15",
        ])
        .prop_map(String::from),
    ]
    .boxed()
}

fn json_value(now: DateTime<Utc>) -> BoxedStrategy<Json> {
    prop_oneof![
        date_text(now).prop_map(Json::String),
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        (-3i64..13).prop_map(Json::from),
        select(vec![0.5, -0.0, 1e300, 100.0, 9007199254740992.0, -2.5]).prop_map(Json::from),
        any::<f64>()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(Json::from),
        Just(json!(9007199254740993u64)),
        Just(json!(u64::MAX)),
        word().prop_map(Json::String),
        Just(json!([1, "a"])),
        Just(json!({"a": 1})),
    ]
    .boxed()
}

fn attributes(now: DateTime<Utc>) -> impl Strategy<Value = Map<String, Json>> {
    btree_map(select(ATTR_NAMES.to_vec()), json_value(now), 0..8)
        .prop_map(|map| map.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// An offset from `now`, in microseconds: whole units, a few seconds, and
/// one microsecond either side of them.
fn offset() -> impl Strategy<Value = i64> {
    (
        select(vec![60i64, 3_600, 86_400, 604_800, 1]),
        -40i64..10,
        select(vec![-1i64, 0, 1]),
    )
        .prop_map(|(unit, count, jitter)| unit * count * 1_000_000 + jitter)
}

fn instant(now: DateTime<Utc>, micros: i64) -> DateTime<Utc> {
    now.trunc_subsecs(6) + TimeDelta::microseconds(micros)
}

fn row(now: DateTime<Utc>, accounts: usize) -> impl Strategy<Value = Row> {
    (
        (
            proptest::option::of(word()),
            word(),
            proptest::option::of(word()),
            proptest::option::of(word()),
        ),
        proptest::option::of(0..accounts.max(1)),
        attributes(now),
        proptest::option::of(offset()),
        offset(),
        vec(
            (select(TAG_NAMES.to_vec()), prop::bool::weighted(0.8)),
            0..7,
        ),
        vec((select(EVENT_NAMES.to_vec()), offset()), 0..6),
    )
        .prop_map(
            move |(
                (external_id, main, first_name, last_name),
                account,
                attributes,
                seen,
                created,
                tags,
                events,
            )| Row {
                external_id,
                main,
                first_name,
                last_name,
                account: account.filter(|_| accounts > 0),
                attributes,
                seen: seen.map(|micros| instant(now, micros)),
                created_at: instant(now, created),
                tags: tags
                    .into_iter()
                    .map(|(name, live)| (name.to_string(), live))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                events: events
                    .into_iter()
                    .map(|(name, micros)| (name.to_string(), instant(now, micros)))
                    .collect(),
            },
        )
}

pub(crate) fn dataset() -> impl Strategy<Value = Dataset> {
    (
        select(nows()),
        prop_oneof![1 => Just(0usize), 6 => 2usize..5],
    )
        .prop_flat_map(|(now, accounts)| {
            (
                Just(now),
                vec(row(now, accounts), accounts),
                vec(row(now, accounts), 3..8),
                (
                    filter(SubjectKind::User),
                    filter(SubjectKind::Account),
                    filter(SubjectKind::User),
                ),
            )
        })
        .prop_map(|(now, mut accounts, mut users, (a, b, c))| {
            unique_keys(&mut accounts, &mut users);
            Dataset {
                now,
                accounts,
                users,
                segments: vec![a, b, c],
            }
        })
}

/// Keeps the rows within the schema's unique indexes: a user's email, and
/// the external id of a user or of an account, are unique in a workspace.
/// A user with an email seen before is dropped; an external id seen before
/// becomes null.
fn unique_keys(accounts: &mut [Row], users: &mut Vec<Row>) {
    let mut emails = BTreeSet::new();
    users.retain(|row| emails.insert(row.main.clone()));
    for rows in [accounts, users.as_mut_slice()] {
        let mut seen = BTreeSet::new();
        for row in rows {
            if let Some(external_id) = &row.external_id
                && !seen.insert(external_id.clone())
            {
                row.external_id = None;
            }
        }
    }
}

/// A random filter (the filter module's strategy) with its literals drawn
/// towards the data's vocabulary.
pub(crate) fn filter(kind: SubjectKind) -> impl Strategy<Value = Filter> {
    strategy::filter(kind).prop_filter_map("reprints", move |filter| {
        let root = remap_expr(filter.root().clone());
        Filter::parse(&root.to_string(), kind).ok()
    })
}

fn hash(text: &str) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    usize::try_from(hash >> 8).unwrap_or(0)
}

/// `text` or, five times out of six, a word of `pool` picked by its hash.
fn pick(text: String, pool: &[&str]) -> String {
    let h = hash(&text);
    if h.is_multiple_of(6) {
        text
    } else {
        pool[(h / 6) % pool.len()].to_string()
    }
}

fn remap_expr(expr: Expr) -> Expr {
    match expr {
        Expr::Or(operands) => Expr::Or(operands.into_iter().map(remap_expr).collect()),
        Expr::And(operands) => Expr::And(operands.into_iter().map(remap_expr).collect()),
        Expr::Not(operand) => Expr::Not(Box::new(remap_expr(*operand))),
        Expr::Predicate(predicate) => Expr::Predicate(remap_predicate(predicate)),
    }
}

fn remap_target(target: Target) -> Target {
    match target {
        Target::Attr(name) => Target::Attr(pick(name, &ATTR_NAMES)),
        field => field,
    }
}

fn remap_duration(duration: Duration) -> Duration {
    let h = hash(&format!("{duration:?}"));
    if h.is_multiple_of(2) {
        duration
    } else {
        Duration {
            amount: [0, 1, 7, 30, 2][(h / 2) % 5],
            ..duration
        }
    }
}

fn remap_count(count: u32) -> u32 {
    let h = hash(&count.to_string());
    if h.is_multiple_of(4) {
        count
    } else {
        (h / 4 % 4) as u32
    }
}

fn remap_predicate(predicate: Predicate) -> Predicate {
    match predicate {
        Predicate::Tagged(p) => Predicate::Tagged(pick(p, &TAG_PATTERNS)),
        Predicate::TaggedAny(ps) => {
            Predicate::TaggedAny(ps.into_iter().map(|p| pick(p, &TAG_PATTERNS)).collect())
        }
        Predicate::TaggedAll(ps) => {
            Predicate::TaggedAll(ps.into_iter().map(|p| pick(p, &TAG_PATTERNS)).collect())
        }
        Predicate::Compare { target, op, value } => {
            let value = match value {
                Value::String(text) if matches!(target, Target::Attr(_)) || !is_date(&target) => {
                    Value::String(pick(text, &WORDS))
                }
                Value::Number(n) => {
                    let h = hash(&n.to_string());
                    let pool = [
                        0.0,
                        1.0,
                        -1.0,
                        10.0,
                        0.5,
                        12.0,
                        9007199254740992.0,
                        100.0,
                        1e300,
                    ];
                    Value::Number(if h.is_multiple_of(3) {
                        n
                    } else {
                        pool[(h / 3) % pool.len()]
                    })
                }
                Value::NowMinus(d) => Value::NowMinus(remap_duration(d)),
                Value::NowPlus(d) => Value::NowPlus(remap_duration(d)),
                other => other,
            };
            Predicate::Compare {
                target: remap_target(target),
                op,
                value,
            }
        }
        Predicate::IsNull { target, negated } => Predicate::IsNull {
            target: remap_target(target),
            negated,
        },
        Predicate::Text { target, op, needle } => Predicate::Text {
            target: remap_target(target),
            op,
            needle: pick(
                needle,
                &[
                    "", "a", "N", "%", "_", "\\", "a%", "b_", "nn", "é", "日", "@",
                ],
            ),
        },
        Predicate::Events {
            name,
            within,
            op,
            count,
        } => Predicate::Events {
            name: pick(name, &EVENT_NAMES),
            within: remap_duration(within),
            op,
            count: remap_count(count),
        },
        Predicate::ActiveDays { within, op, count } => Predicate::ActiveDays {
            within: remap_duration(within),
            op,
            count: remap_count(count),
        },
        Predicate::Account(inner) => Predicate::Account(Box::new(remap_predicate(*inner))),
        Predicate::AnyUser(inner) => Predicate::AnyUser(Box::new(remap_expr(*inner))),
        other @ Predicate::InSegment(_) => other,
    }
}

fn is_date(target: &Target) -> bool {
    matches!(target, Target::Field(field) if field.field_type() == crate::segments::filter::FieldType::Date)
}

// ---------------------------------------------------------------- the check

/// Runs `filter` on workspace 1 and 2 (which hold the same data under other
/// ids) and compares the ids with the evaluator's answer.
pub(crate) async fn check(db: &Db, data: &Dataset, filter: &Filter) -> Result<(), TestCaseError> {
    let lookup = |name: &str| data.lookup(name);
    let expected: Vec<i64> = data
        .subjects(filter.kind())
        .iter()
        .enumerate()
        .filter(|(_, subject)| evaluate(filter, subject, data.now, &lookup))
        .map(|(index, _)| db::id(filter.kind(), 1, index))
        .collect();
    for workspace in [1, 2] {
        let ctx = SqlContext {
            workspace_id: workspace,
            now: data.now,
            backend: db.backend(),
            segments: &lookup,
        };
        let statement = select_ids(filter, &ctx);
        let actual = db
            .ids(&statement)
            .await
            .map_err(|error| TestCaseError::fail(format!("{filter}: {error}")))?;
        let expected: Vec<i64> = expected
            .iter()
            .map(|id| id + (workspace - 1) * db::WORKSPACE_STRIDE)
            .collect();
        if actual != expected {
            return Err(TestCaseError::fail(format!(
                "{:?}: filter `{filter}` in workspace {workspace}: SQL selected {actual:?}, \
                 the evaluator {expected:?}\nSQL: {}",
                db.backend(),
                db.sql(&statement),
            )));
        }
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Random cases per database (`AGREEMENT_CASES` overrides). A debug build
/// runs them in about 5 s on either database: PostgreSQL's round trips
/// cost twice SQLite's in-memory calls, so it gets half the cases.
fn cases(backend: Backend) -> u32 {
    std::env::var("AGREEMENT_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(match backend {
            Backend::Sqlite => 256,
            Backend::Postgres => 128,
        })
}

/// Runs the property on one database, then drops it whatever the outcome.
fn agree(backend: Backend) {
    let rt = runtime();
    let started = Instant::now();
    let Some(db) = rt.block_on(Db::open(backend)) else {
        eprintln!("{backend:?}: skipped (TAGSMITH_TEST_DATABASE_URL is not set)");
        return;
    };
    let mut runner = TestRunner::new(Config {
        cases: cases(backend),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        dataset(),
        filter(SubjectKind::User),
        filter(SubjectKind::Account),
    );
    let ran = Cell::new(0u32);
    let result = runner.run(&strategy, |(data, users, accounts)| {
        ran.set(ran.get() + 1);
        rt.block_on(async {
            db.load(&data)
                .await
                .map_err(|error| TestCaseError::fail(error.to_string()))?;
            check(&db, &data, &users).await?;
            check(&db, &data, &accounts).await?;
            for segment in &data.segments {
                check(&db, &data, segment).await?;
            }
            Ok(())
        })
    });
    rt.block_on(db.close());
    eprintln!(
        "{backend:?}: {} runs ({} cases), each 5 filters on 2 workspaces, in {:.1?}",
        ran.get(),
        cases(backend),
        started.elapsed(),
    );
    if let Err(error) = result {
        panic!("{error}");
    }
}

#[test]
fn agree_on_sqlite() {
    agree(Backend::Sqlite);
}

#[test]
fn agree_on_postgres() {
    agree(Backend::Postgres);
}

#[test]
fn generated_predicates_hit_the_data() {
    // The vocabulary remapping is what makes the property meaningful: a
    // good share of the generated predicates should select some but not
    // all subjects. About a quarter do (300 cases give 24% to 27%, so a
    // bound of a quarter failed one run in three); under a fifth, the
    // vocabulary has drifted away from the data.
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let tally: RefCell<BTreeMap<String, (u32, u32)>> = RefCell::new(BTreeMap::new());
    let strategy = (
        dataset(),
        filter(SubjectKind::User),
        filter(SubjectKind::Account),
    );
    runner
        .run(&strategy, |(data, users, accounts)| {
            let lookup = |name: &str| data.lookup(name);
            for filter in [users, accounts] {
                let subjects = data.subjects(filter.kind());
                let mut leaves = Vec::new();
                collect_leaves(filter.root(), &mut leaves);
                for leaf in leaves {
                    let Ok(leaf_filter) =
                        Filter::parse(&Expr::Predicate(leaf.clone()).to_string(), filter.kind())
                    else {
                        continue;
                    };
                    let hits = subjects
                        .iter()
                        .filter(|s| evaluate(&leaf_filter, s, data.now, &lookup))
                        .count();
                    let label = format!("{:?}", leaf)
                        .split([' ', '(', '{'])
                        .next()
                        .unwrap_or("")
                        .to_string();
                    let mut tally = tally.borrow_mut();
                    let entry = tally.entry(label).or_default();
                    entry.1 += 1;
                    if hits > 0 && hits < subjects.len() {
                        entry.0 += 1;
                    }
                }
            }
            Ok(())
        })
        .expect("runs");
    let tally = tally.into_inner();
    let (mut split, mut total) = (0, 0);
    for (label, (s, t)) in &tally {
        eprintln!("{label}: {s} of {t} split the subjects");
        split += s;
        total += t;
    }
    assert!(split * 5 > total, "{split} of {total}");
}

fn collect_leaves(expr: &Expr, leaves: &mut Vec<Predicate>) {
    match expr {
        Expr::Or(operands) | Expr::And(operands) => {
            operands.iter().for_each(|e| collect_leaves(e, leaves))
        }
        Expr::Not(operand) => collect_leaves(operand, leaves),
        Expr::Predicate(predicate) => leaves.push(predicate.clone()),
    }
}
