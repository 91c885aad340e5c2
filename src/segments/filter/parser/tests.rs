//! Parser, type check and printer, data-driven: each case shows the canonical
//! print of the input, or its diagnostics as `line:col: message`.
//! `UPDATE_EXPECT=1 cargo test` refreshes the expectations.

use expect_test::{Expect, expect};

use super::super::{Filter, SubjectKind};

fn render(result: Result<Filter, Vec<super::super::Diagnostic>>) -> String {
    match result {
        Ok(filter) => format!("{filter}\n"),
        Err(diagnostics) => diagnostics
            .iter()
            .map(|diagnostic| format!("{diagnostic}\n"))
            .collect(),
    }
}

/// A user filter.
fn check(input: &str, expect: Expect) {
    expect.assert_eq(&render(Filter::parse(input, SubjectKind::User)));
}

/// An account filter.
fn check_account(input: &str, expect: Expect) {
    expect.assert_eq(&render(Filter::parse(input, SubjectKind::Account)));
}

// ---- predicates ----

#[test]
fn tags() {
    check(
        r#"tagged("VIP")"#,
        expect![[r#"
        tagged("VIP")
    "#]],
    );
    check(
        r#"tagged_any("sports/*", "Region: *")"#,
        expect![[r#"
        tagged_any("sports/*", "Region: *")
    "#]],
    );
    check(
        r#"tagged_all( "a" ,"b","c" )"#,
        expect![[r#"
        tagged_all("a", "b", "c")
    "#]],
    );
    check(
        r#"tagged("a", "b")"#,
        expect![[r#"
        1:8: tagged takes one tag: use tagged_any or tagged_all for several
    "#]],
    );
    check(
        r#"tagged()"#,
        expect![[r#"
        1:8: expected a tag name or pattern (a string) but found ")"
    "#]],
    );
    check(
        r#"tagged_any("a",)"#,
        expect![[r#"
        1:16: expected a tag name or pattern (a string) but found ")"
    "#]],
    );
}

#[test]
fn text_fields() {
    check(
        r#"email = "a@b.co""#,
        expect![[r#"
        email = "a@b.co"
    "#]],
    );
    check(
        r#"first_name != "Ann" or last_name < "M" or external_id >= "42""#,
        expect![[r#"
        first_name != "Ann" or last_name < "M" or external_id >= "42"
    "#]],
    );
    check(
        r#"email contains "ACME" and first_name starts_with "jo""#,
        expect![[r#"
        email contains "ACME" and first_name starts_with "jo"
    "#]],
    );
    check(
        r#"email is null or last_name is not null"#,
        expect![[r#"
        email is null or last_name is not null
    "#]],
    );
    check_account(
        r#"name <= "Acme" and external_id > "" "#,
        expect![[r#"
        name <= "Acme" and external_id > ""
    "#]],
    );
}

#[test]
fn date_fields() {
    check(
        r#"last_seen_at < now - 30d and created_at >= now + 2w and created_at > now"#,
        expect![[r#"
            last_seen_at < now - 30d and created_at >= now + 2w and created_at > now
        "#]],
    );
    check(
        r#"created_at > "2024-05-01" and created_at <= "2024-05-01T09:30:00+02:00""#,
        expect![[r#"
            created_at > "2024-05-01" and created_at <= "2024-05-01T09:30:00+02:00"
        "#]],
    );
    check(
        r#"last_seen_at > now - 90m or last_seen_at > now - 12h"#,
        expect![[r#"
        last_seen_at > now - 90m or last_seen_at > now - 12h
    "#]],
    );
    check_account(
        r#"last_activity_at < now - 7d or last_activity_at is null"#,
        expect![[r#"
        last_activity_at < now - 7d or last_activity_at is null
    "#]],
    );
}

#[test]
fn attributes() {
    check(
        r#"attr.plan = "pro" and attr.seats >= 10 and attr.trial = false"#,
        expect![[r#"
        attr.plan = "pro" and attr.seats >= 10 and attr.trial = false
    "#]],
    );
    check(
        r#"attr.score > -2.5 and attr.ratio < 1e-7 and attr.big = 1e21"#,
        expect![[r#"
        attr.score > -2.5 and attr.ratio < 1e-7 and attr.big = 1e21
    "#]],
    );
    check(
        r#"attr."Plan name" contains "gold" or attr."x" is null"#,
        expect![[r#"
        attr."Plan name" contains "gold" or attr.x is null
    "#]],
    );
    check(
        r#"attr.and = true and attr.NotNull is not null"#,
        expect![[r#"
        attr.and = true and attr.NotNull is not null
    "#]],
    );
    check(
        r#"attr.x = 007.50"#,
        expect![[r#"
        attr.x = 7.5
    "#]],
    );
}

#[test]
fn behaviour() {
    check(
        r#"events("email_opened", 7d) >= 1"#,
        expect![[r#"
        events("email_opened", 7d) >= 1
    "#]],
    );
    check(
        r#"events("login", 30d) = 0 or active_days(4w) > 3"#,
        expect![[r#"
        events("login", 30d) = 0 or active_days(4w) > 3
    "#]],
    );
    check(
        r#"active_days(1d) != 0"#,
        expect![[r#"
        active_days(1d) != 0
    "#]],
    );
}

#[test]
fn relations() {
    check(
        r#"account.tagged("Enterprise") and account.attr.seats > 100"#,
        expect![[r#"
        account.tagged("Enterprise") and account.attr.seats > 100
    "#]],
    );
    check(
        r#"account.name = "Acme" or account.last_activity_at is null"#,
        expect![[r#"
        account.name = "Acme" or account.last_activity_at is null
    "#]],
    );
    check_account(
        r#"any_user(email contains "@acme.com" and not tagged("left"))"#,
        expect![[r#"
        any_user(email contains "@acme.com" and not tagged("left"))
    "#]],
    );
    check_account(
        r#"any_user(account.tagged("x") or last_seen_at > now - 1d)"#,
        expect![[r#"
            any_user(account.tagged("x") or last_seen_at > now - 1d)
        "#]],
    );
    check(
        r#"in_segment("Champions") or account.in_segment("Big \"ones\"")"#,
        expect![[r#"
        in_segment("Champions") or account.in_segment("Big \"ones\"")
    "#]],
    );
}

// ---- structure ----

#[test]
fn precedence_and_parentheses() {
    check(
        r#"tagged("a") or tagged("b") and tagged("c")"#,
        expect![[r#"
        tagged("a") or tagged("b") and tagged("c")
    "#]],
    );
    check(
        r#"(tagged("a") or tagged("b")) and tagged("c")"#,
        expect![[r#"
        (tagged("a") or tagged("b")) and tagged("c")
    "#]],
    );
    check(
        r#"tagged("a") or (tagged("b") and tagged("c"))"#,
        expect![[r#"
        tagged("a") or tagged("b") and tagged("c")
    "#]],
    );
    check(
        r#"((tagged("a")))"#,
        expect![[r#"
        tagged("a")
    "#]],
    );
    check(
        r#"(tagged("a") or tagged("b")) or tagged("c")"#,
        expect![[r#"
        (tagged("a") or tagged("b")) or tagged("c")
    "#]],
    );
    check(
        r#"tagged("a") and (tagged("b") and tagged("c"))"#,
        expect![[r#"
        tagged("a") and (tagged("b") and tagged("c"))
    "#]],
    );
    check(
        r#"not tagged("a") and tagged("b")"#,
        expect![[r#"
        not tagged("a") and tagged("b")
    "#]],
    );
    check(
        r#"not (tagged("a") and tagged("b"))"#,
        expect![[r#"
        not (tagged("a") and tagged("b"))
    "#]],
    );
    check(
        r#"not not (not tagged("a"))"#,
        expect![[r#"
        not not not tagged("a")
    "#]],
    );
    check(
        r#"not (last_seen_at < now - 30d)"#,
        expect![[r#"
        not last_seen_at < now - 30d
    "#]],
    );
}

#[test]
fn and_binds_tighter_than_or() {
    let filter = Filter::parse(
        r#"tagged("a") or tagged("b") and not tagged("c")"#,
        SubjectKind::User,
    );
    let tree = filter.map(|filter| format!("{:?}", filter.root()));
    expect![[r#"
        Ok(
            "Or([Predicate(Tagged(\"a\")), And([Predicate(Tagged(\"b\")), Not(Predicate(Tagged(\"c\")))])])",
        )
    "#]].assert_debug_eq(&tree);
}

#[test]
fn keywords_are_case_insensitive() {
    check(
        r#"NOT Tagged("a") AND Email IS NOT NULL Or ATTR.Plan = TRUE oR LAST_SEEN_AT < NOW - 30D"#,
        expect![[r#"
            not tagged("a") and email is not null or attr.Plan = true or last_seen_at < now - 30d
        "#]],
    );
}

#[test]
fn whitespace_and_newlines() {
    check(
        "\n  tagged(\"a\")\n\tand\n  (email = \"x\"\n   or attr . plan = \"p\")\n",
        expect![[r#"
            tagged("a") and (email = "x" or attr.plan = "p")
        "#]],
    );
    check(
        r#"last_seen_at<now-30d and attr.x>=5"#,
        expect![[r#"
        last_seen_at < now - 30d and attr.x >= 5
    "#]],
    );
}

#[test]
fn string_escapes() {
    check(
        r#"tagged("say \"hi\"\\ \n\tdone")"#,
        expect![[r#"
        tagged("say \"hi\"\\ \n\tdone")
    "#]],
    );
    check(
        "tagged(\"multi\nline\")",
        expect![[r#"
        tagged("multi\nline")
    "#]],
    );
    check(
        r#"email = "naïve 日本""#,
        expect![[r#"
        email = "naïve 日本"
    "#]],
    );
}

// ---- errors ----

#[test]
fn unexpected_tokens() {
    check(
        r#")"#,
        expect![[r#"
        1:1: expected a field, tag predicate or "(" but found ")"
        1:1: unmatched ")"
    "#]],
    );
    check(
        r#""#,
        expect![[r#"
        1:1: expected a field, tag predicate or "(" but found end of input
    "#]],
    );
    check(
        r#"tagged("a") and"#,
        expect![[r#"
        1:16: expected a field, tag predicate or "(" but found end of input
    "#]],
    );
    check(
        r#"tagged("a") tagged("b")"#,
        expect![[r#"
        1:13: expected "and", "or" or end of input but found "tagged"
    "#]],
    );
    check(
        r#"(tagged("a")"#,
        expect![[r#"
        1:13: expected ")" but found end of input
    "#]],
    );
    check(
        r#"tagged("a"))"#,
        expect![[r#"
        1:12: unmatched ")"
    "#]],
    );
    check(
        r#"(tagged("a") email)"#,
        expect![[r#"
        1:14: expected "and", "or" or ")" but found "email"
    "#]],
    );
    check(
        r#"email"#,
        expect![[r#"
        1:6: expected an operator (=, !=, <, <=, >, >=), "is", "contains" or "starts_with" but found end of input
    "#]],
    );
    check(
        r#"email is"#,
        expect![[r#"
        1:9: expected "null" but found end of input
    "#]],
    );
    check(
        r#"email = "#,
        expect![[r#"
        1:9: expected a value (a string, a number, true, false, now or now - DURATION) but found end of input
    "#]],
    );
    check(
        r#"email contains 5"#,
        expect![[r#"
        1:16: expected a string but found the number 5
    "#]],
    );
    check(
        r#"attr.5 = 1"#,
        expect![[r#"
        1:6: expected an attribute name but found the number 5
    "#]],
    );
    check(
        r#"last_seen_at < now - 30"#,
        expect![[r#"
        1:22: expected a duration such as 30d (m, h, d or w) but found the number 30
    "#]],
    );
    check(
        r#"events("x", 7d) > 1.5 or events("x", 7d) > -1"#,
        expect![[r#"
        1:19: expected a whole number but found the number 1.5
        1:44: expected a whole number but found "-"
    "#]],
    );
    check(
        r#"events("x") > 1"#,
        expect![[r#"
        1:11: expected "," then a duration but found ")"
    "#]],
    );
    check(
        r#"active_days(7d) >= 99999999999"#,
        expect![[r#"
        1:20: count 99999999999 is too large (at most 4294967295)
    "#]],
    );
    check(
        r#"email == "x" or email = 'x' or email = 'x"#,
        expect![[r#"
        1:7: unknown operator "==" (use "=")
        1:25: strings use double quotes ("..."), not single quotes
        1:40: strings use double quotes ("..."), not single quotes
    "#]],
    );
    check(
        r#"(tagged("a" and email = 5)"#,
        expect![[r#"
        1:13: expected ")" or "," but found "and"
        1:23: email is a text field: expected a string but found the number 5
    "#]],
    );
    check(
        "email = \"日本\" and\n  emial = 1",
        expect![[r#"
        2:3: unknown field "emial" for users (expected one of: email, first_name, last_name, external_id, created_at, last_seen_at, attr.NAME)
    "#]],
    );
    check(
        r#"attr.x = 1e400"#,
        expect![[r#"
        1:10: number out of range
    "#]],
    );
}

#[test]
fn lexical_errors() {
    check(
        r#"email = "unterminated"#,
        expect![[r#"
        1:9: unterminated string: expected a closing "
    "#]],
    );
    check(
        r#"tagged("a\qb")"#,
        expect![[r#"
        1:10: unknown escape "\q" (expected \", \\, \n or \t)
    "#]],
    );
    check(
        r#"last_seen_at < now - 30x"#,
        expect![[r#"
        1:22: invalid duration "30x": expected a unit m, h, d or w after the number
    "#]],
    );
    check(
        r#"active_days(1.5d) > 1"#,
        expect![[r#"
        1:13: invalid duration "1.5d": the amount must be a whole number
    "#]],
    );
    check(
        r#"last_seen_at < now - 99999d"#,
        expect![[r#"
        1:22: duration "99999d" is too long (at most 36500d)
    "#]],
    );
    check(
        r#"tagged("a") & tagged("b")"#,
        expect![[r#"
        1:13: unexpected character "&"
        1:15: expected "and", "or" or end of input but found "tagged"
    "#]],
    );
}

#[test]
fn unknown_names() {
    check(
        r#"emial = "x""#,
        expect![[r#"
        1:1: unknown field "emial" for users (expected one of: email, first_name, last_name, external_id, created_at, last_seen_at, attr.NAME)
    "#]],
    );
    check_account(
        r#"emial = "x""#,
        expect![[r#"
        1:1: unknown field "emial" for accounts (expected one of: name, external_id, created_at, last_activity_at, attr.NAME)
    "#]],
    );
    check(
        r#"taged("x")"#,
        expect![[r#"
        1:1: unknown function "taged" (expected one of: tagged, tagged_any, tagged_all, events, active_days, in_segment, any_user)
    "#]],
    );
    check(
        r#"and tagged("x")"#,
        expect![[r#"
        1:1: expected a field, tag predicate or "(" but found "and"
    "#]],
    );
}

#[test]
fn fields_by_kind() {
    check(
        r#"name = "Acme""#,
        expect![[r#"
        1:1: field "name" is not available for users (expected one of: email, first_name, last_name, external_id, created_at, last_seen_at, attr.NAME)
    "#]],
    );
    check_account(
        r#"email is null"#,
        expect![[r#"
        1:1: field "email" is not available for accounts (expected one of: name, external_id, created_at, last_activity_at, attr.NAME)
    "#]],
    );
    check(
        r#"account.email = "x""#,
        expect![[r#"
        1:9: field "email" is not available for accounts (expected one of: name, external_id, created_at, last_activity_at, attr.NAME)
    "#]],
    );
    check_account(
        r#"any_user(last_activity_at < now)"#,
        expect![[r#"
        1:10: field "last_activity_at" is not available for users (expected one of: email, first_name, last_name, external_id, created_at, last_seen_at, attr.NAME)
    "#]],
    );
}

#[test]
fn relations_by_kind() {
    check_account(
        r#"account.tagged("x")"#,
        expect![[r#"
        1:1: account.… is only allowed in user filters
    "#]],
    );
    check(
        r#"any_user(tagged("x"))"#,
        expect![[r#"
        1:1: any_user(…) is only allowed in account filters
    "#]],
    );
    check(
        r#"account.account.tagged("x")"#,
        expect![[r#"
        1:9: account.… is only allowed in user filters
    "#]],
    );
    check(
        r#"account.(tagged("x"))"#,
        expect![[r#"
        1:9: expected a field or predicate after "account." but found "("
    "#]],
    );
}

#[test]
fn value_types() {
    check(
        r#"created_at = 5"#,
        expect![[r#"
        1:12: created_at is a date field: expected now, now - DURATION, now + DURATION or a date string such as "2024-05-01" but found the number 5
    "#]],
    );
    check(
        r#"email < now"#,
        expect![[r#"
        1:7: email is a text field: expected a string but found now
    "#]],
    );
    check(
        r#"email = true"#,
        expect![[r#"
        1:7: email is a text field: expected a string but found true
    "#]],
    );
    check(
        r#"created_at > "2024-13-01""#,
        expect![[r#"
        1:12: invalid date "2024-13-01" for created_at: expected an RFC 3339 date such as "2024-05-01" or "2024-05-01T09:30:00Z"
    "#]],
    );
    check(
        r#"created_at > "yesterday""#,
        expect![[r#"
        1:12: invalid date "yesterday" for created_at: expected an RFC 3339 date such as "2024-05-01" or "2024-05-01T09:30:00Z"
    "#]],
    );
    check(
        r#"created_at contains "2024""#,
        expect![[r#"
        1:1: contains needs a text field or attribute, but created_at is a date field
    "#]],
    );
    check(
        r#"attr.x > now - 1d"#,
        expect![[r#"
            attr.x > now - 1d
        "#]],
    );
    check(
        r#"attr.x > true"#,
        expect![[r#"
        1:8: true compares only with = or !=
    "#]],
    );
}

#[test]
fn many_errors_at_once() {
    check(
        "emial = \"x\"\n  and created_at = 5\n  and tagged(\n  or name = \"y\"\n  or events(\"e\", 3q) > 1",
        expect![[r#"
            1:1: unknown field "emial" for users (expected one of: email, first_name, last_name, external_id, created_at, last_seen_at, attr.NAME)
            2:18: created_at is a date field: expected now, now - DURATION, now + DURATION or a date string such as "2024-05-01" but found the number 5
            4:3: expected a tag name or pattern (a string) but found "or"
            4:6: field "name" is not available for users (expected one of: email, first_name, last_name, external_id, created_at, last_seen_at, attr.NAME)
            5:18: invalid duration "3q": expected a unit m, h, d or w after the number
        "#]],
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}tagged(\"a\"){}", "(".repeat(10_000), ")".repeat(10_000));
    check(
        &deep,
        expect![[r#"
        1:65: expression nested too deeply (at most 64 levels)
    "#]],
    );
    let nots = format!("{}tagged(\"a\")", "not ".repeat(10_000));
    check(
        &nots,
        expect![[r#"
        1:257: expression nested too deeply (at most 64 levels)
    "#]],
    );
    let relations = format!(
        "{}tagged(\"a\"){}",
        "any_user(account.".repeat(5_000),
        ")".repeat(5_000)
    );
    check_account(
        &relations,
        expect![[r#"
        1:78: account. and any_user(…) nested too deeply (at most 8 levels)
    "#]],
    );
    let ok = format!("{}tagged(\"a\"){}", "(".repeat(60), ")".repeat(60));
    check(
        &ok,
        expect![[r#"
        tagged("a")
    "#]],
    );
}

#[test]
fn segment_refs_are_listed_once() {
    let filter = Filter::parse(
        r#"in_segment("A") or account.in_segment("B") or (in_segment("A") and in_segment("C"))"#,
        SubjectKind::User,
    );
    let refs = filter.map(|filter| filter.segment_refs());
    expect![[r#"
        Ok(
            [
                "A",
                "B",
                "C",
            ],
        )
    "#]]
    .assert_debug_eq(&refs);
}
