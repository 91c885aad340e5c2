//! Snapshots of the SQL the compiler builds: placeholders for every piece of
//! user text, on both backends. (That the SQL selects what the evaluator
//! says is checked against real databases by the agreement tests.)

use chrono::{DateTime, TimeZone, Utc};
use expect_test::{Expect, expect};
use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder, Value};

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn segment(name: &str) -> Option<Filter> {
    match name {
        "Engaged" => Filter::parse(r#"events("login", 7d) >= 3"#, SubjectKind::User).ok(),
        "Loop" => Filter::parse(r#"in_segment("Loop")"#, SubjectKind::User).ok(),
        "Big" => Filter::parse("attr.seats > 100", SubjectKind::Account).ok(),
        _ => None,
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::BigInt(Some(n)) => n.to_string(),
        Value::Int(Some(n)) => format!("{n}i32"),
        Value::Double(Some(n)) => format!("{n:?}"),
        Value::String(Some(text)) => format!("{text:?}"),
        Value::ChronoDateTimeUtc(Some(instant)) => instant.to_rfc3339(),
        other => format!("{other:?}"),
    }
}

fn check(kind: SubjectKind, text: &str, expected: Expect) {
    let filter = match Filter::parse(text, kind) {
        Ok(filter) => filter,
        Err(errors) => panic!("{text}: {errors:?}"),
    };
    let mut actual = String::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let ctx = SqlContext {
            workspace_id: 7,
            now: now(),
            backend,
            segments: &segment,
        };
        let statement = select_ids(&filter, &ctx);
        let (sql, values) = match backend {
            Backend::Sqlite => statement.build(SqliteQueryBuilder),
            Backend::Postgres => statement.build(PostgresQueryBuilder),
        };
        let values: Vec<String> = values.0.iter().map(show).collect();
        actual.push_str(&format!("{backend:?}: {sql}\n  [{}]\n", values.join(", ")));
    }
    expected.assert_eq(&actual);
}

#[test]
fn tags() {
    check(
        SubjectKind::User,
        r#"tagged("VIP") and not tagged_any("sports/*", "Region: *")"#,
        expect![[r#"
            Sqlite: SELECT "s"."id" FROM "users" AS "s" WHERE "s"."workspace_id" = ? AND ("s"."id" IN (SELECT "f_2_ta"."subject_id" FROM "tag_assignments" AS "f_2_ta" INNER JOIN "tags" AS "f_1_t" ON "f_1_t"."id" = "f_2_ta"."tag_id" WHERE "f_1_t"."workspace_id" = ? AND "f_1_t"."deleted_at" IS NULL AND "f_2_ta"."subject_kind" = 'USER' AND "f_1_t"."name" = ?) AND (NOT "s"."id" IN (SELECT "f_4_ta"."subject_id" FROM "tag_assignments" AS "f_4_ta" INNER JOIN "tags" AS "f_3_t" ON "f_3_t"."id" = "f_4_ta"."tag_id" WHERE "f_3_t"."workspace_id" = ? AND "f_3_t"."deleted_at" IS NULL AND "f_4_ta"."subject_kind" = 'USER' AND ((substr("f_3_t"."name", 1, 7) = ? AND length("f_3_t"."name") > 7) OR substr("f_3_t"."name", 1, 8) = ?))))
              [7, 7, "VIP", 7, "sports/", "Region: "]
            Postgres: SELECT "s"."id" FROM "users" AS "s" WHERE "s"."workspace_id" = $1 AND ("s"."id" IN (SELECT "f_2_ta"."subject_id" FROM "tag_assignments" AS "f_2_ta" INNER JOIN "tags" AS "f_1_t" ON "f_1_t"."id" = "f_2_ta"."tag_id" WHERE "f_1_t"."workspace_id" = $2 AND "f_1_t"."deleted_at" IS NULL AND "f_2_ta"."subject_kind" = 'USER' AND "f_1_t"."name" = $3) AND (NOT "s"."id" IN (SELECT "f_4_ta"."subject_id" FROM "tag_assignments" AS "f_4_ta" INNER JOIN "tags" AS "f_3_t" ON "f_3_t"."id" = "f_4_ta"."tag_id" WHERE "f_3_t"."workspace_id" = $4 AND "f_3_t"."deleted_at" IS NULL AND "f_4_ta"."subject_kind" = 'USER' AND ((substr("f_3_t"."name", 1, 7) = $5 AND length("f_3_t"."name") > 7) OR substr("f_3_t"."name", 1, 8) = $6))))
              [7, 7, "VIP", 7, "sports/", "Region: "]
        "#]],
    );
    check(
        SubjectKind::User,
        r#"tagged_all("a", "b") or tagged("x: y: *")"#,
        expect![[r#"
            Sqlite: SELECT "s"."id" FROM "users" AS "s" WHERE "s"."workspace_id" = ? AND (("s"."id" IN (SELECT "f_2_ta"."subject_id" FROM "tag_assignments" AS "f_2_ta" INNER JOIN "tags" AS "f_1_t" ON "f_1_t"."id" = "f_2_ta"."tag_id" WHERE "f_1_t"."workspace_id" = ? AND "f_1_t"."deleted_at" IS NULL AND "f_2_ta"."subject_kind" = 'USER' AND "f_1_t"."name" = ?) AND "s"."id" IN (SELECT "f_4_ta"."subject_id" FROM "tag_assignments" AS "f_4_ta" INNER JOIN "tags" AS "f_3_t" ON "f_3_t"."id" = "f_4_ta"."tag_id" WHERE "f_3_t"."workspace_id" = ? AND "f_3_t"."deleted_at" IS NULL AND "f_4_ta"."subject_kind" = 'USER' AND "f_3_t"."name" = ?)) OR FALSE)
              [7, 7, "a", 7, "b"]
            Postgres: SELECT "s"."id" FROM "users" AS "s" WHERE "s"."workspace_id" = $1 AND (("s"."id" IN (SELECT "f_2_ta"."subject_id" FROM "tag_assignments" AS "f_2_ta" INNER JOIN "tags" AS "f_1_t" ON "f_1_t"."id" = "f_2_ta"."tag_id" WHERE "f_1_t"."workspace_id" = $2 AND "f_1_t"."deleted_at" IS NULL AND "f_2_ta"."subject_kind" = 'USER' AND "f_1_t"."name" = $3) AND "s"."id" IN (SELECT "f_4_ta"."subject_id" FROM "tag_assignments" AS "f_4_ta" INNER JOIN "tags" AS "f_3_t" ON "f_3_t"."id" = "f_4_ta"."tag_id" WHERE "f_3_t"."workspace_id" = $4 AND "f_3_t"."deleted_at" IS NULL AND "f_4_ta"."subject_kind" = 'USER' AND "f_3_t"."name" = $5)) OR FALSE)
              [7, 7, "a", 7, "b"]
        "#]],
    );
}

#[test]
fn fields() {
    check(
        SubjectKind::User,
        r#"email < "M" or first_name != "Ann" or last_seen_at < now - 30d"#,
        expect![[r#"
            Sqlite: SELECT "s"."id" FROM "users" AS "s" WHERE "s"."workspace_id" = ? AND ("s"."email" < ? OR ("s"."first_name" IS NOT NULL AND "s"."first_name" <> ?) OR ("s"."last_seen_at" IS NOT NULL AND "s"."last_seen_at" < ?))
              [7, "M", "Ann", 2026-02-13T12:00:00+00:00]
            Postgres: SELECT "s"."id" FROM "users" AS "s" WHERE "s"."workspace_id" = $1 AND ((("s"."email" COLLATE "C")) < $2 OR ("s"."first_name" IS NOT NULL AND "s"."first_name" <> $3) OR ("s"."last_seen_at" IS NOT NULL AND "s"."last_seen_at" < $4))
              [7, "M", "Ann", 2026-02-13T12:00:00+00:00]
        "#]],
    );
    check(
        SubjectKind::Account,
        r#"name contains "50%_off\\" and external_id starts_with "AC" and last_activity_at is null"#,
        expect![[r#"
            Sqlite: SELECT "s"."id" FROM "accounts" AS "s" WHERE "s"."workspace_id" = ? AND (instr(LOWER("s"."name"), ?) > 0 AND ("s"."external_id" IS NOT NULL AND instr(LOWER("s"."external_id"), ?) = 1) AND "s"."last_activity_at" IS NULL)
              [7, "50%_off\\", "ac"]
            Postgres: SELECT "s"."id" FROM "accounts" AS "s" WHERE "s"."workspace_id" = $1 AND (LOWER("s"."name") LIKE $2 ESCAPE E'\\' AND ("s"."external_id" IS NOT NULL AND LOWER("s"."external_id") LIKE $3 ESCAPE E'\\') AND "s"."last_activity_at" IS NULL)
              [7, "%50\\%\\_off\\\\%", "ac%"]
        "#]],
    );
    check(
        SubjectKind::User,
        r#"created_at >= "2024-05-01T09:30:00.0000005Z""#,
        expect![[r#"
            Sqlite: SELECT "s"."id" FROM "users" AS "s" WHERE "s"."workspace_id" = ? AND "s"."created_at" >= ?
              [7, 2024-05-01T09:30:00.000000500+00:00]
            Postgres: SELECT "s"."id" FROM "users" AS "s" WHERE "s"."workspace_id" = $1 AND "s"."created_at" >= $2
              [7, 2024-05-01T09:30:00.000001+00:00]
        "#]],
    );
}

#[test]
fn attributes() {
    check(
        SubjectKind::Account,
        r#"attr.seats >= 10 and attr."plan \"x\"" = "pro" and attr.trial != true"#,
        expect![[r#"
            Sqlite: SELECT "s"."id" FROM "accounts" AS "s" WHERE "s"."workspace_id" = ? AND ((CASE WHEN (json_type("s"."attributes", ?) IN ('integer', 'real')) THEN CAST(json_extract("s"."attributes", ?) AS REAL) >= ? ELSE FALSE END) AND (CASE WHEN (json_type("s"."attributes", ?) = 'text') THEN json_extract("s"."attributes", ?) = ? ELSE FALSE END) AND COALESCE(json_type("s"."attributes", ?) = 'false', FALSE))
              [7, "$.\"seats\"", "$.\"seats\"", 10.0, "$.\"plan \\\"x\\\"\"", "$.\"plan \\\"x\\\"\"", "pro", "$.\"trial\""]
            Postgres: SELECT "s"."id" FROM "accounts" AS "s" WHERE "s"."workspace_id" = $1 AND ((CASE WHEN (jsonb_typeof(("s"."attributes" -> $2)) = 'number') THEN CAST((("s"."attributes" ->> $3)) AS double precision) >= $4 ELSE FALSE END) AND (CASE WHEN (jsonb_typeof(("s"."attributes" -> $5)) = 'string') THEN (("s"."attributes" ->> $6)) = $7 ELSE FALSE END) AND COALESCE((("s"."attributes" -> $8)) = CAST('false' AS jsonb), FALSE))
              [7, "seats", "seats", 10.0, "plan \"x\"", "plan \"x\"", "pro", "trial"]
        "#]],
    );
    check(
        SubjectKind::User,
        r#"attr.nickname is not null and attr.nickname contains "bo""#,
        expect![[r#"
            Sqlite: SELECT "s"."id" FROM "users" AS "s" WHERE "s"."workspace_id" = ? AND (COALESCE(json_type("s"."attributes", ?), 'null') <> 'null' AND (CASE WHEN (json_type("s"."attributes", ?) = 'text') THEN instr(LOWER(json_extract("s"."attributes", ?)), ?) > 0 ELSE FALSE END))
              [7, "$.\"nickname\"", "$.\"nickname\"", "$.\"nickname\"", "bo"]
            Postgres: SELECT "s"."id" FROM "users" AS "s" WHERE "s"."workspace_id" = $1 AND (COALESCE(jsonb_typeof(("s"."attributes" -> $2)), 'null') <> 'null' AND (CASE WHEN (jsonb_typeof(("s"."attributes" -> $3)) = 'string') THEN LOWER(("s"."attributes" ->> $4)) LIKE $5 ESCAPE E'\\' ELSE FALSE END))
              [7, "nickname", "nickname", "nickname", "%bo%"]
        "#]],
    );
}

#[test]
fn events() {
    check(
        SubjectKind::User,
        r#"events("login", 7d) >= 3 and events("email_opened", 1h) >= 1 and active_days(30d) < 5"#,
        expect![[r#"
            Sqlite: SELECT "s"."id" FROM "users" AS "s" WHERE "s"."workspace_id" = ? AND ((SELECT COUNT(*) FROM "events" AS "f_1_e" WHERE "f_1_e"."subject_kind" = 'USER' AND "f_1_e"."subject_id" = "s"."id" AND "f_1_e"."name" = ? AND "f_1_e"."at" >= ?) >= ? AND EXISTS(SELECT 1 FROM "events" AS "f_2_e" WHERE "f_2_e"."subject_kind" = 'USER' AND "f_2_e"."subject_id" = "s"."id" AND "f_2_e"."name" = ? AND "f_2_e"."at" >= ?) AND (SELECT COUNT(DISTINCT substr("f_3_e"."at", 1, 10)) FROM "events" AS "f_3_e" WHERE "f_3_e"."subject_kind" = 'USER' AND "f_3_e"."subject_id" = "s"."id" AND "f_3_e"."at" >= ?) < ?)
              [7, "login", 2026-03-08T12:00:00+00:00, 3, "email_opened", 2026-03-15T11:00:00+00:00, 2026-02-13T12:00:00+00:00, 5]
            Postgres: SELECT "s"."id" FROM "users" AS "s" WHERE "s"."workspace_id" = $1 AND ((SELECT COUNT(*) FROM "events" AS "f_1_e" WHERE "f_1_e"."subject_kind" = 'USER' AND "f_1_e"."subject_id" = "s"."id" AND "f_1_e"."name" = $2 AND "f_1_e"."at" >= $3) >= $4 AND EXISTS(SELECT 1 FROM "events" AS "f_2_e" WHERE "f_2_e"."subject_kind" = 'USER' AND "f_2_e"."subject_id" = "s"."id" AND "f_2_e"."name" = $5 AND "f_2_e"."at" >= $6) AND (SELECT COUNT(DISTINCT CAST(timezone('UTC', "f_3_e"."at") AS date)) FROM "events" AS "f_3_e" WHERE "f_3_e"."subject_kind" = 'USER' AND "f_3_e"."subject_id" = "s"."id" AND "f_3_e"."at" >= $7) < $8)
              [7, "login", 2026-03-08T12:00:00+00:00, 3, "email_opened", 2026-03-15T11:00:00+00:00, 2026-02-13T12:00:00+00:00, 5]
        "#]],
    );
    check(
        SubjectKind::User,
        r#"events("login", 7d) = 0 or events("login", 7d) >= 0"#,
        expect![[r#"
            Sqlite: SELECT "s"."id" FROM "users" AS "s" WHERE "s"."workspace_id" = ? AND ((NOT EXISTS(SELECT 1 FROM "events" AS "f_1_e" WHERE "f_1_e"."subject_kind" = 'USER' AND "f_1_e"."subject_id" = "s"."id" AND "f_1_e"."name" = ? AND "f_1_e"."at" >= ?)) OR TRUE)
              [7, "login", 2026-03-08T12:00:00+00:00]
            Postgres: SELECT "s"."id" FROM "users" AS "s" WHERE "s"."workspace_id" = $1 AND ((NOT EXISTS(SELECT 1 FROM "events" AS "f_1_e" WHERE "f_1_e"."subject_kind" = 'USER' AND "f_1_e"."subject_id" = "s"."id" AND "f_1_e"."name" = $2 AND "f_1_e"."at" >= $3)) OR TRUE)
              [7, "login", 2026-03-08T12:00:00+00:00]
        "#]],
    );
}

#[test]
fn relations_and_segments() {
    check(
        SubjectKind::User,
        r#"account.tagged("VIP") and in_segment("Engaged") and not in_segment("Loop")"#,
        expect![[r#"
            Sqlite: SELECT "s"."id" FROM "users" AS "s" WHERE "s"."workspace_id" = ? AND (EXISTS(SELECT 1 FROM "accounts" AS "f_1_a" WHERE "f_1_a"."id" = "s"."account_id" AND "f_1_a"."workspace_id" = ? AND "f_1_a"."id" IN (SELECT "f_3_ta"."subject_id" FROM "tag_assignments" AS "f_3_ta" INNER JOIN "tags" AS "f_2_t" ON "f_2_t"."id" = "f_3_ta"."tag_id" WHERE "f_2_t"."workspace_id" = ? AND "f_2_t"."deleted_at" IS NULL AND "f_3_ta"."subject_kind" = 'ACCOUNT' AND "f_2_t"."name" = ?)) AND (SELECT COUNT(*) FROM "events" AS "f_4_e" WHERE "f_4_e"."subject_kind" = 'USER' AND "f_4_e"."subject_id" = "s"."id" AND "f_4_e"."name" = ? AND "f_4_e"."at" >= ?) >= ? AND (NOT FALSE))
              [7, 7, 7, "VIP", "login", 2026-03-08T12:00:00+00:00, 3]
            Postgres: SELECT "s"."id" FROM "users" AS "s" WHERE "s"."workspace_id" = $1 AND (EXISTS(SELECT 1 FROM "accounts" AS "f_1_a" WHERE "f_1_a"."id" = "s"."account_id" AND "f_1_a"."workspace_id" = $2 AND "f_1_a"."id" IN (SELECT "f_3_ta"."subject_id" FROM "tag_assignments" AS "f_3_ta" INNER JOIN "tags" AS "f_2_t" ON "f_2_t"."id" = "f_3_ta"."tag_id" WHERE "f_2_t"."workspace_id" = $3 AND "f_2_t"."deleted_at" IS NULL AND "f_3_ta"."subject_kind" = 'ACCOUNT' AND "f_2_t"."name" = $4)) AND (SELECT COUNT(*) FROM "events" AS "f_4_e" WHERE "f_4_e"."subject_kind" = 'USER' AND "f_4_e"."subject_id" = "s"."id" AND "f_4_e"."name" = $5 AND "f_4_e"."at" >= $6) >= $7 AND (NOT FALSE))
              [7, 7, 7, "VIP", "login", 2026-03-08T12:00:00+00:00, 3]
        "#]],
    );
    check(
        SubjectKind::Account,
        r#"any_user(account.in_segment("Big") and email contains "@") or in_segment("Missing")"#,
        expect![[r#"
            Sqlite: SELECT "s"."id" FROM "accounts" AS "s" WHERE "s"."workspace_id" = ? AND (EXISTS(SELECT 1 FROM "users" AS "f_1_u" WHERE "f_1_u"."account_id" = "s"."id" AND "f_1_u"."workspace_id" = ? AND ((CASE WHEN (json_type("s"."attributes", ?) IN ('integer', 'real')) THEN CAST(json_extract("s"."attributes", ?) AS REAL) > ? ELSE FALSE END) AND instr(LOWER("f_1_u"."email"), ?) > 0)) OR FALSE)
              [7, 7, "$.\"seats\"", "$.\"seats\"", 100.0, "@"]
            Postgres: SELECT "s"."id" FROM "accounts" AS "s" WHERE "s"."workspace_id" = $1 AND (EXISTS(SELECT 1 FROM "users" AS "f_1_u" WHERE "f_1_u"."account_id" = "s"."id" AND "f_1_u"."workspace_id" = $2 AND ((CASE WHEN (jsonb_typeof(("s"."attributes" -> $3)) = 'number') THEN CAST((("s"."attributes" ->> $4)) AS double precision) > $5 ELSE FALSE END) AND LOWER("f_1_u"."email") LIKE $6 ESCAPE E'\\')) OR FALSE)
              [7, 7, "seats", "seats", 100.0, "%@%"]
        "#]],
    );
}
