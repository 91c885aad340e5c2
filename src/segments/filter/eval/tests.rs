//! The evaluator on hand-made subjects. Each case lists filter texts with the
//! expected answer; `now` is fixed at 2024-06-15 12:00 UTC.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use proptest::prelude::*;

use super::super::strategy;
use super::super::{Filter, SubjectData, SubjectKind, Trace, evaluate, explain};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 15, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn days_ago(days: i64) -> DateTime<Utc> {
    now() - chrono::TimeDelta::days(days)
}

fn no_segments(_: &str) -> Option<Filter> {
    None
}

/// A user with everything set: Ann Lee, seen 3 days ago, on the Acme account.
fn ann() -> SubjectData {
    let mut user = SubjectData::new(SubjectKind::User, days_ago(100));
    user.email = Some("Ann.Lee@Acme.com".into());
    user.first_name = Some("Ann".into());
    user.last_name = Some("Lee".into());
    user.external_id = Some("u-1".into());
    user.last_seen_at = Some(days_ago(3));
    user.tags = vec![
        "VIP".into(),
        "sports/football".into(),
        "Region: North".into(),
    ];
    user.attributes = json!({
        "plan": "Pro", "seats": 12, "ratio": 0.5, "trial": false, "nothing": null,
        "list": [1, 2], "numeric_text": "12"
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    user.events = vec![
        ("login".into(), days_ago(1)),
        ("login".into(), days_ago(1) + chrono::TimeDelta::hours(2)),
        ("login".into(), days_ago(10)),
        ("email_opened".into(), days_ago(2)),
        ("login".into(), now() + chrono::TimeDelta::hours(1)),
    ];
    user.account = Some(Box::new(acme()));
    user
}

/// A user with nothing optional set and no account.
fn bare_user() -> SubjectData {
    SubjectData::new(SubjectKind::User, days_ago(1))
}

fn acme() -> SubjectData {
    let mut account = SubjectData::new(SubjectKind::Account, days_ago(400));
    account.name = Some("Acme".into());
    account.tags = vec!["Enterprise".into()];
    account.last_activity_at = Some(days_ago(1));
    account
}

fn check(subject: &SubjectData, cases: &[(&str, bool)]) {
    check_with(subject, cases, &no_segments);
}

fn check_with(
    subject: &SubjectData,
    cases: &[(&str, bool)],
    segments: &dyn Fn(&str) -> Option<Filter>,
) {
    let mut failures = Vec::new();
    for &(text, expected) in cases {
        match Filter::parse(text, subject.kind) {
            Ok(filter) => {
                if evaluate(&filter, subject, now(), segments) != expected {
                    failures.push(format!("{text}: expected {expected}"));
                }
                if explain(&filter, subject, now(), segments).value != expected {
                    failures.push(format!("{text}: explained other than {expected}"));
                }
            }
            Err(diagnostics) => failures.push(format!("{text}: {diagnostics:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tags() {
    check(
        &ann(),
        &[
            (r#"tagged("VIP")"#, true),
            (r#"tagged("vip")"#, false),
            (r#"tagged("sports/*")"#, true),
            (r#"tagged("sports")"#, false),
            (r#"tagged("Region: *")"#, true),
            (r#"tagged_any("nope", "Region: *")"#, true),
            (r#"tagged_any("nope", "nada")"#, false),
            (r#"tagged_all("VIP", "sports/*")"#, true),
            (r#"tagged_all("VIP", "nope")"#, false),
        ],
    );
}

#[test]
fn text_fields() {
    check(
        &ann(),
        &[
            (r#"first_name = "Ann""#, true),
            (r#"first_name = "ann""#, false),
            (r#"first_name != "Bob""#, true),
            (r#"last_name < "M""#, true),
            (r#"last_name > "a""#, false),
            (r#"external_id >= "u-1" and external_id <= "u-1""#, true),
            (r#"email contains "acme.COM""#, true),
            (r#"email starts_with "ann.""#, true),
            (r#"email starts_with "lee""#, false),
            (r#"email contains """#, true),
        ],
    );
}

#[test]
fn null_semantics() {
    check(
        &bare_user(),
        &[
            (r#"email = "x""#, false),
            (r#"email != "x""#, false),
            (r#"not (email = "x")"#, true),
            (r#"email contains """#, false),
            (r#"email is null"#, true),
            (r#"email is not null"#, false),
            (r#"last_seen_at < now - 30d"#, false),
            (r#"last_seen_at >= now - 30d"#, false),
            (r#"not (last_seen_at < now - 30d)"#, true),
            (r#"created_at is null"#, false),
            (r#"attr.plan = "x" or attr.plan != "x""#, false),
            (r#"attr.plan is null"#, true),
            (r#"account.tagged("Enterprise")"#, false),
            (r#"not account.tagged("Enterprise")"#, true),
            (r#"account.name is null"#, false),
        ],
    );
}

#[test]
fn dates() {
    check(
        &ann(),
        &[
            (r#"last_seen_at > now - 7d"#, true),
            (r#"last_seen_at > now - 3d"#, false),
            (r#"last_seen_at >= now - 3d"#, true),
            (r#"last_seen_at = now - 72h"#, true),
            (r#"last_seen_at < now"#, true),
            (r#"last_seen_at < now + 1m"#, true),
            (r#"created_at < "2024-03-08""#, true),
            (r#"created_at = "2024-03-07T12:00:00Z""#, true),
            (r#"created_at = "2024-03-07T14:00:00+02:00""#, true),
            (r#"created_at > "2024-03-07""#, true),
        ],
    );
}

#[test]
fn attributes() {
    check(
        &ann(),
        &[
            (r#"attr.plan = "Pro""#, true),
            (r#"attr.plan = "pro""#, false),
            (r#"attr.plan contains "RO""#, true),
            (r#"attr.seats > 10 and attr.seats <= 12"#, true),
            (r#"attr.seats = 12.0"#, true),
            (r#"attr.ratio < 1"#, true),
            (r#"attr.seats = "12""#, false),
            (r#"attr.seats != "12""#, false),
            (r#"attr.numeric_text = 12"#, false),
            (r#"attr.numeric_text != 12"#, false),
            (r#"attr.seats contains "1""#, false),
            (r#"attr.trial = false"#, true),
            (r#"attr.trial != true"#, true),
            (r#"attr.trial = 0"#, false),
            (r#"attr.nothing is null and attr.absent is null"#, true),
            (r#"attr.nothing = 0 or attr.nothing != 0"#, false),
            (r#"attr.list is not null and attr.list != 1"#, false),
        ],
    );
}

#[test]
fn events_and_active_days() {
    check(
        &ann(),
        &[
            (r#"events("login", 7d) = 3"#, true),
            (r#"events("login", 30d) = 4"#, true),
            (r#"events("LOGIN", 30d) = 0"#, true),
            (r#"events("email_opened", 1d) = 0"#, true),
            (r#"events("email_opened", 2d) >= 1"#, true),
            (r#"events("nothing", 52w) < 1"#, true),
            (r#"active_days(7d) = 3"#, true),
            (r#"active_days(30d) = 4"#, true),
            (r#"active_days(0m) = 1"#, true),
        ],
    );
}

#[test]
fn account_of_a_user() {
    check(
        &ann(),
        &[
            (r#"account.tagged("Enterprise")"#, true),
            (r#"account.name = "Acme""#, true),
            (r#"account.last_activity_at > now - 2d"#, true),
            (r#"account.any_user(tagged("x"))"#, false),
        ],
    );
}

#[test]
fn any_user_of_an_account() {
    let mut account = acme();
    let mut other = bare_user();
    other.email = Some("bob@acme.com".into());
    account.users = vec![ann(), other];
    account.users[0].account = None;
    check(
        &account,
        &[
            (r#"any_user(tagged("VIP"))"#, true),
            (
                r#"any_user(tagged("VIP") and email starts_with "bob")"#,
                false,
            ),
            (r#"any_user(email starts_with "bob")"#, true),
            (r#"any_user(account.name = "Acme")"#, true),
            (r#"not any_user(last_seen_at is null)"#, false),
        ],
    );
    check(&acme(), &[(r#"any_user(email is null)"#, false)]);
    let segments = |name: &str| match name {
        "VIPs" => Filter::parse(
            r#"tagged("VIP") and account.name = "Acme""#,
            SubjectKind::User,
        )
        .ok(),
        _ => None,
    };
    check_with(
        &account,
        &[(r#"any_user(in_segment("VIPs"))"#, true)],
        &segments,
    );
}

#[test]
fn segments() {
    let segments = |name: &str| {
        let (text, kind) = match name {
            "VIPs" => (r#"tagged("VIP")"#, SubjectKind::User),
            "Big" => (r#"tagged("Enterprise")"#, SubjectKind::Account),
            "Nested" => (
                r#"in_segment("VIPs") and account.in_segment("Big")"#,
                SubjectKind::User,
            ),
            "Loop" => (r#"in_segment("Loop") or tagged("VIP")"#, SubjectKind::User),
            chain if chain.starts_with("Chain") => {
                let next = chain[5..].parse::<u32>().ok()? + 1;
                let text = format!(r#"((in_segment("Chain{next}")))"#);
                return Filter::parse(&text, SubjectKind::User).ok();
            }
            _ => return None,
        };
        Filter::parse(text, kind).ok()
    };
    check_with(
        &ann(),
        &[
            (r#"in_segment("VIPs")"#, true),
            (r#"account.in_segment("Big")"#, true),
            (r#"in_segment("Nested")"#, true),
            (r#"in_segment("Missing")"#, false),
            (r#"in_segment("Big")"#, false),
            (r#"in_segment("Loop")"#, true),
            (r#"in_segment("Chain1")"#, false),
            (r#"not in_segment("Chain1")"#, true),
        ],
        &segments,
    );
}

#[test]
fn filter_of_the_other_kind_matches_nothing() {
    let filter = Filter::parse(r#"not tagged("x")"#, SubjectKind::Account);
    let matched = filter.map(|filter| evaluate(&filter, &ann(), now(), &no_segments));
    assert_eq!(matched, Ok(false));
}

/// The trace as indented lines: `value text — detail`.
fn render(trace: &Trace, depth: usize, out: &mut String) {
    use std::fmt::Write as _;
    let _ = write!(out, "{}{} {}", "  ".repeat(depth), trace.value, trace.text);
    if let Some(detail) = &trace.detail {
        let _ = write!(out, " -- {detail}");
    }
    out.push('\n');
    for child in &trace.children {
        render(child, depth + 1, out);
    }
}

#[test]
fn explain_shows_each_part_and_what_decided_it() {
    let filter = Filter::parse(
        r#"tagged("sports/*") and not events("login", 7d) >= 5 and account.name = "Acme""#,
        SubjectKind::User,
    )
    .unwrap();
    let mut out = String::new();
    render(&explain(&filter, &ann(), now(), &no_segments), 0, &mut out);
    expect_test::expect![[r#"
        true tagged("sports/*") and not events("login", 7d) >= 5 and account.name = "Acme"
          true tagged("sports/*") -- matching tags: "sports/football"
          true not events("login", 7d) >= 5
            false events("login", 7d) >= 5 -- 3 "login" events in the last 7d
          true account.name = "Acme" -- account Acme
            true name = "Acme" -- name is "Acme"
    "#]]
    .assert_eq(&out);
    let mut out = String::new();
    render(
        &explain(&filter, &bare_user(), now(), &no_segments),
        0,
        &mut out,
    );
    expect_test::expect![[r#"
        false tagged("sports/*") and not events("login", 7d) >= 5 and account.name = "Acme"
          false tagged("sports/*") -- no tag of the subject matches
          true not events("login", 7d) >= 5
            false events("login", 7d) >= 5 -- 0 "login" events in the last 7d
          false account.name = "Acme" -- the user has no account
    "#]]
    .assert_eq(&out);
}

proptest! {
    /// The explanation's answer is the evaluator's, for any filter.
    #[test]
    fn explain_agrees_with_evaluate(filter in strategy::filter(SubjectKind::User)) {
        for subject in [ann(), bare_user()] {
            let answer = evaluate(&filter, &subject, now(), &no_segments);
            prop_assert_eq!(explain(&filter, &subject, now(), &no_segments).value, answer);
        }
    }

    #[test]
    fn explain_agrees_with_evaluate_on_accounts(filter in strategy::filter(SubjectKind::Account)) {
        let mut account = acme();
        account.users = vec![ann(), bare_user()];
        let answer = evaluate(&filter, &account, now(), &no_segments);
        prop_assert_eq!(explain(&filter, &account, now(), &no_segments).value, answer);
    }
}
