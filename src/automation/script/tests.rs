//! Behaviour of compile and run, from the outside.

use std::fmt::Write as _;
use std::time::Duration;

use expect_test::{Expect, expect};
use serde_json::json;

use super::*;

mod hostile_fuzz;

fn account() -> SubjectSnapshot {
    let mut account = SubjectSnapshot::new(SubjectKind::Account, "a1");
    account.name = Some("Acme".into());
    account.tags = vec!["Customer".into(), "Tier: Gold".into()];
    account
}

fn user() -> SubjectSnapshot {
    let mut user = SubjectSnapshot::new(SubjectKind::User, "u1");
    user.email = Some("ada@example.com".into());
    user.first_name = Some("Ada".into());
    user.last_name = Some("Lovelace".into());
    user.tags = vec![
        "Webinar Attendee".into(),
        "sports/football".into(),
        "Region: North".into(),
    ];
    user.attributes.insert("plan".into(), json!("free"));
    user.account = Some(Box::new(account()));
    user
}

fn tag_added(tag: &str, subject: SubjectSnapshot) -> HookEvent {
    HookEvent {
        hook: HookKind::TagAdded,
        tag: Some(tag.into()),
        segment: None,
        source: "MANUAL".into(),
        depth: 0,
        subject,
    }
}

/// Default limits but a wall clock long enough that a busy machine never
/// fails a well-behaved script; tests of the deadline use their own.
fn relaxed() -> Limits {
    Limits {
        wall_clock: Duration::from_secs(10),
        ..Limits::default()
    }
}

fn compile(engine: &ScriptEngine, source: &str) -> CompiledScript {
    match engine.compile(source) {
        Ok(script) => script,
        Err(error) => panic!("compile failed: {error}\n{source}"),
    }
}

/// The outcome as lines: `ok` or `error: ...`, then logs, then actions.
fn render(outcome: &RunOutcome) -> String {
    let mut out = match &outcome.error {
        None => "ok\n".to_owned(),
        Some(error) => format!("error: {error}\n"),
    };
    for line in &outcome.logs {
        let _ = writeln!(out, "log: {line}");
    }
    for action in &outcome.actions {
        let (kind, id) = (action.target_kind().as_str(), action.target_id());
        let _ = match action {
            PlannedAction::AddTag { tag, .. } => writeln!(out, "add_tag {kind} {id} {tag:?}"),
            PlannedAction::RemoveTag { tag, .. } => {
                writeln!(out, "remove_tag {kind} {id} {tag:?}")
            }
            PlannedAction::SetAttribute { key, value, .. } => {
                writeln!(out, "set_attribute {kind} {id} {key:?} = {value}")
            }
        };
    }
    out
}

fn run_with(engine: &ScriptEngine, source: &str, event: &HookEvent) -> RunOutcome {
    let outcome = engine.run(&compile(engine, source), event);
    assert_eq!(outcome.ok, outcome.error.is_none(), "{outcome:?}");
    if !outcome.ok {
        assert!(
            outcome.actions.is_empty(),
            "a failed run planned {outcome:?}"
        );
    }
    outcome
}

fn check(source: &str, event: &HookEvent, expected: Expect) {
    let engine = ScriptEngine::new(relaxed());
    expected.assert_eq(&render(&run_with(&engine, source, event)));
}

/// Wraps a body into an `on_tag_added(e)` hook with `s` bound to the subject.
fn hook(body: &str) -> String {
    format!("fn on_tag_added(e) {{\n    let s = e.subject;\n{body}\n}}\n")
}

const DESIGN_EXAMPLE: &str = r#"
fn on_tag_added(event) {        // event.tag, event.subject, event.source, event.depth
    let s = event.subject;      // s.kind, s.id, s.email, s.name, s.attributes, s.tags, s.account
    if event.tag == "Webinar Attendee" && s.has_tag("Clicked Demo") {
        s.add_tag("Qualified Lead");
    } else {
        log(`no demo click for ${s.email}`);
    }
}
fn on_tag_removed(event) {}
fn on_segment_entered(event) {} // event.segment is the segment's name
fn on_segment_exited(event) {}
"#;

#[test]
fn design_example() {
    let mut clicked = user();
    clicked.tags.push("Clicked Demo".into());
    check(
        DESIGN_EXAMPLE,
        &tag_added("Webinar Attendee", clicked),
        expect![[r#"
            ok
            add_tag USER u1 "Qualified Lead"
        "#]],
    );
    check(
        DESIGN_EXAMPLE,
        &tag_added("Webinar Attendee", user()),
        expect![[r#"
            ok
            log: no demo click for ada@example.com
        "#]],
    );
}

#[test]
fn subject_values() {
    let body = r#"
    log(`${s.kind} ${s.id} ${s.email} ${s.name} ${s.first_name} ${s.last_name}`);
    log(`${s.tags} ${s.attributes}`);
    log(`${e.tag} ${e.segment} ${e.source} ${e.depth} ${type_of(e.depth)}`);
    let a = s.account;
    log(`${a.kind} ${a.id} ${a.name} ${a.email} ${a.tags} ${type_of(a.account)}`);
    log(s);
    print(a);
    debug(e.tag);
    "#;
    check(
        &hook(body),
        &tag_added("VIP", user()),
        expect![[r#"
            ok
            log: USER u1 ada@example.com Ada Lovelace Ada Lovelace
            log: ["Webinar Attendee", "sports/football", "Region: North"] #{"plan": "free"}
            log: VIP  MANUAL 0 i64
            log: ACCOUNT a1 Acme  ["Customer", "Tier: Gold"] ()
            log: USER u1 (Ada Lovelace)
            log: ACCOUNT a1 (Acme)
            log: [11:5] "VIP"
        "#]],
    );
}

#[test]
fn user_name_falls_back_to_email() {
    let cases = [
        (Some("Ada"), None, Some("ada@x.io"), "Ada"),
        (None, Some(" Lovelace "), Some("ada@x.io"), "Lovelace"),
        (Some(""), Some(" "), Some("ada@x.io"), "ada@x.io"),
        (None, None, None, "()"),
    ];
    let engine = ScriptEngine::new(relaxed());
    let script = compile(&engine, &hook("log(`${s.name}`);"));
    for (first, last, email, expected) in cases {
        let mut subject = SubjectSnapshot::new(SubjectKind::User, "u");
        subject.first_name = first.map(Into::into);
        subject.last_name = last.map(Into::into);
        subject.email = email.map(Into::into);
        let outcome = engine.run(&script, &tag_added("x", subject));
        let expected = if expected == "()" { "" } else { expected };
        assert_eq!(outcome.logs, [expected], "{first:?} {last:?} {email:?}");
    }
}

#[test]
fn has_tag_patterns_and_planned_changes() {
    let body = r#"
    for pattern in ["sports/*", "sports", "Region: *", "Tier: *", "Webinar Attendee", "webinar attendee"] {
        log(`${pattern}: ${s.has_tag(pattern)} / account ${s.account.has_tag(pattern)}`);
    }
    s.add_tag("sports/tennis");
    s.remove_tag("sports/football");
    s.remove_tag("Region: North");
    log(`after: ${s.has_tag("sports/tennis")} ${s.has_tag("sports/football")} ${s.has_tag("Region: *")}`);
    s.account.add_tag("Region: South");
    log(`subject ${s.has_tag("Region: *")}, account ${s.account.has_tag("Region: *")}`);
    log(`${s.tags}`);
    log(`${e.subject.account.tags}`);
    "#;
    check(
        &hook(body),
        &tag_added("x", user()),
        expect![[r#"
            ok
            log: sports/*: true / account false
            log: sports: false / account false
            log: Region: *: true / account false
            log: Tier: *: false / account true
            log: Webinar Attendee: true / account false
            log: webinar attendee: false / account false
            log: after: true false false
            log: subject false, account true
            log: ["Webinar Attendee", "sports/tennis"]
            log: ["Customer", "Tier: Gold", "Region: South"]
            add_tag USER u1 "sports/tennis"
            remove_tag USER u1 "sports/football"
            remove_tag USER u1 "Region: North"
            add_tag ACCOUNT a1 "Region: South"
        "#]],
    );
}

#[test]
fn net_plan_per_target_and_tag() {
    let body = r#"
    s.add_tag("Temp");
    s.remove_tag("Temp");              // added then removed: nothing
    s.remove_tag("Webinar Attendee");
    s.add_tag("Webinar Attendee");     // removed then added back: nothing
    s.add_tag("sports/football");      // already there: nothing
    s.remove_tag("Never Had");         // not there: nothing
    s.add_tag("New");
    s.add_tag("New");                  // twice: once
    e.subject.account.remove_tag("Customer");
    "#;
    check(
        &hook(body),
        &tag_added("x", user()),
        expect![[r#"
            ok
            add_tag USER u1 "New"
            remove_tag ACCOUNT a1 "Customer"
        "#]],
    );
}

#[test]
fn account_subject_and_user_without_account() {
    let body = r#"
    log(`${s.kind} ${s.name} account: ${type_of(s.account)}`);
    s.add_tag("Seen");
    if s.account != () { s.account.add_tag("Never"); }
    "#;
    let mut account = account();
    account.account = Some(Box::new(account.clone())); // ignored for an account
    check(
        &hook(body),
        &tag_added("x", account),
        expect![[r#"
            ok
            log: ACCOUNT Acme account: ()
            add_tag ACCOUNT a1 "Seen"
        "#]],
    );
    let mut lone = user();
    lone.account = None;
    check(
        &hook(body),
        &tag_added("x", lone),
        expect![[r#"
            ok
            log: USER Ada Lovelace account: ()
            add_tag USER u1 "Seen"
        "#]],
    );
}

#[test]
fn set_attribute_values() {
    let body = r#"
    s.set_attribute("name", "Ada");
    s.set_attribute("seats", 12);
    s.set_attribute("ratio", 0.5);
    s.set_attribute("active", true);
    s.set_attribute("initial", 'A');
    s.set_attribute("nothing", ());
    s.set_attribute("list", [1, "two", [3]]);
    s.set_attribute("settings", #{ theme: "dark", size: 3, nested: #{ ok: false } });
    s.set_attribute("plan", "free");   // unchanged: nothing
    s.set_attribute("seats", 13);      // last value wins
    s.account.set_attribute("plan", "pro");
    log(`${s.attributes.seats} ${s.attributes.plan} ${s.attributes.settings.theme} ${s.account.attributes}`);
    "#;
    check(
        &hook(body),
        &tag_added("x", user()),
        expect![[r#"
            ok
            log: 13 free dark #{"plan": "pro"}
            set_attribute USER u1 "name" = "Ada"
            set_attribute USER u1 "seats" = 13
            set_attribute USER u1 "ratio" = 0.5
            set_attribute USER u1 "active" = true
            set_attribute USER u1 "initial" = "A"
            set_attribute USER u1 "nothing" = null
            set_attribute USER u1 "list" = [1,"two",[3]]
            set_attribute USER u1 "settings" = {"nested":{"ok":false},"size":3,"theme":"dark"}
            set_attribute ACCOUNT a1 "plan" = "pro"
        "#]],
    );
}

#[test]
fn attributes_from_json() {
    let mut subject = user();
    subject.attributes = json!({
        "n": 1, "big": 18446744073709551615u64, "f": 1.5, "s": "x", "b": false,
        "null": null, "list": [1, {"k": "v"}],
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    check(
        &hook("let a = s.attributes; log(`${a} ${type_of(a.big)} ${a.missing}`);"),
        &tag_added("x", subject),
        expect![[r#"
            ok
            log: #{"b": false, "big": 1.8446744073709552e19, "f": 1.5, "list": [1, #{"k": "v"}], "n": 1, "null": (), "s": "x"} f64 
        "#]],
    );
}

#[test]
fn script_errors_fail_the_run_and_drop_the_plan() {
    let cases = [
        ("s.add_tag(\"\");", "blank tag"),
        ("s.add_tag(\"ok\"); s.set_attribute(\"\", 1);", "blank key"),
        (
            "s.add_tag(\"ok\"); s.set_attribute(\"f\", Fn(\"x\"));",
            "function value",
        ),
        (
            "s.add_tag(\"ok\"); s.set_attribute(\"me\", s);",
            "subject value",
        ),
        (
            "s.add_tag(\"ok\"); s.set_attribute(\"nan\", 0.0 / 0.0);",
            "NaN",
        ),
        ("s.add_tag(\"ok\"); s.add_tag(42);", "wrong type"),
        ("s.add_tag(\"ok\"); throw \"stop\";", "throw"),
        ("s.add_tag(\"ok\"); let x = [1][5];", "index"),
        ("s.add_tag(\"ok\"); s.nope();", "unknown method"),
        (
            "s.add_tag(\"ok\"); s.kind = \"ACCOUNT\";",
            "read-only property",
        ),
        ("s.add_tag(\"ok\"); let x = 1 / 0;", "division by zero"),
        (
            "let v = []; for i in 0..40 { v = [v]; } s.set_attribute(\"deep\", v);",
            "nested too deep",
        ),
    ];
    let engine = ScriptEngine::new(relaxed());
    let mut out = String::new();
    for (body, name) in cases {
        let outcome = run_with(&engine, &hook(body), &tag_added("x", user()));
        let _ = writeln!(out, "{name}: {}", render(&outcome).trim_end());
    }
    expect![[r#"
        blank tag: error: tag name is empty at line 3, column 3
        blank key: error: attribute key is empty at line 3, column 20
        function value: error: cannot store a value of type Fn as an attribute at line 3, column 20
        subject value: error: cannot store a value of type Subject as an attribute at line 3, column 20
        NaN: error: cannot store the number NaN as an attribute at line 3, column 20
        wrong type: error: Function not found: add_tag (Subject, i64) at line 3, column 20
        throw: error: stop at line 3, column 18
        index: error: Array index 5 out of bounds: only 1 element in array at line 3, column 30
        unknown method: error: Function not found: nope (Subject) at line 3, column 20
        read-only property: error: No writable property 'kind' - a setter is not registered for type 'Subject' to handle 'string' at line 3, column 20
        division by zero: error: Division by zero: 1 / 0 at line 3, column 28
        nested too deep: error: attribute value is nested more than 32 levels deep at line 3, column 43
    "#]]
    .assert_eq(&out);
}

#[test]
fn tag_check_normalizes_or_rejects() {
    let engine = ScriptEngine::new(relaxed()).with_tag_check(|name| {
        let name = name.trim();
        if name.contains("//") {
            Err(format!("{name:?} has an empty level"))
        } else {
            Ok(name.to_owned())
        }
    });
    let event = tag_added("x", user());
    let outcome = run_with(
        &engine,
        &hook(r#"s.add_tag("  a/b "); log(`${s.has_tag("a/*")}`);"#),
        &event,
    );
    expect![[r#"
        ok
        log: true
        add_tag USER u1 "a/b"
    "#]]
    .assert_eq(&render(&outcome));
    let outcome = run_with(&engine, &hook(r#"s.remove_tag("a//b");"#), &event);
    expect![[r#"
        error: invalid tag name: "a//b" has an empty level at line 3, column 3
    "#]]
    .assert_eq(&render(&outcome));
}

#[test]
fn logs_are_capped_and_kept_on_failure() {
    let limits = Limits {
        max_log_lines: 3,
        max_log_line_bytes: 8,
        ..relaxed()
    };
    let engine = ScriptEngine::new(limits);
    let body = r#"
    s.add_tag("dropped");
    log("0123456789");
    for i in 0..5 { print(i); }
    throw "late failure";
    "#;
    let outcome = run_with(&engine, &hook(body), &tag_added("x", user()));
    expect![[r#"
        error: late failure at line 7, column 5
        log: 01234567…
        log: 0
        log: 1
        log: (3 more log lines dropped)
    "#]]
    .assert_eq(&render(&outcome));
}

#[test]
fn compile_errors_have_positions() {
    let cases = [
        "fn on_tag_added(e) {\n    let x = ;\n}",
        "fn on_tag_added(e) {\n    e.subject.add_tag(\"x\")\n    log(\"y\");\n}",
        "fn on_tag_added(e) {\n    log(undefined_variable);\n}",
        "fn on_tag_added(e) {\n    let s = \"unterminated;\n}",
        "fn on_tag_added(e) {",
        "fn on_tag_added(e) {\n    eval(\"1\");\n}",
        "import \"x\" as y;\nfn on_tag_added(e) {}",
        "fn on_tag_added() {}",
        "fn on_tag_removed(e) {}\n  fn on_segment_exited(e, extra) {}",
        "fn on_tag_added(e) {}\nfn on_tag_added(a, b) {}",
    ];
    let engine = ScriptEngine::new(relaxed());
    let mut out = String::new();
    for source in cases {
        let message = match engine.compile(source) {
            Ok(_) => "compiled".to_owned(),
            Err(error) => format!("{:?} {:?} {}", error.line, error.column, error.message),
        };
        let _ = writeln!(out, "{message}");
    }
    expect![[r#"
        Some(2) Some(13) Unexpected ';'
        Some(3) Some(5) Expecting ';' to terminate this statement
        Some(2) Some(9) Undefined variable: undefined_variable
        Some(2) Some(13) Open string is not terminated
        Some(1) Some(21) Expecting '}' to terminate this block
        Some(2) Some(5) reserved keyword 'eval' is disabled
        Some(1) Some(1) 'import' is a reserved keyword
        Some(1) Some(1) on_tag_added must take exactly one parameter (the event), not 0
        Some(2) Some(3) on_segment_exited must take exactly one parameter (the event), not 2
        Some(2) Some(1) on_tag_added must take exactly one parameter (the event), not 2
    "#]]
    .assert_eq(&out);
    let error = engine.compile("fn on_tag_added(e) { let x = ; }").err();
    assert_eq!(
        error.map(|e| e.to_string()).as_deref(),
        Some("Unexpected ';' at line 1, column 30")
    );
}

#[test]
fn hooks_are_detected() {
    let cases = [
        ("", vec![]),
        ("fn helper(x) { x }", vec![]),
        ("fn on_tag_added(e) {}", vec![HookKind::TagAdded]),
        (
            "fn on_segment_exited(e) {} fn on_tag_removed(e) {} fn helper() {}",
            vec![HookKind::TagRemoved, HookKind::SegmentExited],
        ),
        (DESIGN_EXAMPLE, HookKind::ALL.to_vec()),
        (
            "private fn on_segment_entered(e) {}",
            vec![HookKind::SegmentEntered],
        ),
    ];
    let engine = ScriptEngine::new(relaxed());
    for (source, expected) in cases {
        let script = compile(&engine, source);
        assert_eq!(script.hooks(), expected, "{source}");
        for hook in HookKind::ALL {
            assert_eq!(script.has_hook(hook), expected.contains(&hook));
            assert_eq!(HookKind::from_fn_name(hook.fn_name()), Some(hook));
        }
    }
}

#[test]
fn missing_hook_is_an_empty_ok_run() {
    let engine = ScriptEngine::new(relaxed());
    let script = compile(
        &engine,
        "log(\"top\"); fn on_tag_removed(e) { e.subject.add_tag(\"x\"); }",
    );
    let outcome = engine.run(&script, &tag_added("x", user()));
    assert!(outcome.ok && outcome.actions.is_empty() && outcome.logs.is_empty());
}

#[test]
fn segment_hooks_see_the_segment() {
    let event = HookEvent {
        hook: HookKind::SegmentEntered,
        tag: None,
        segment: Some("Power users".into()),
        source: "TRIGGER".into(),
        depth: 3,
        subject: user(),
    };
    check(
        "fn on_segment_entered(e) { log(`${e.segment} ${e.tag} ${e.source} ${e.depth}`); }",
        &event,
        expect![[r#"
            ok
            log: Power users  TRIGGER 3
        "#]],
    );
}

#[test]
fn runs_share_nothing() {
    let source = r#"
        log("top level runs every time");
        let counter = 0;
        fn on_tag_added(e) {
            e.count = (e.count ?? 0) + 1;
            log(`${e.count} ${e.subject.tags.len()}`);
            e.subject.add_tag(`t${e.count}`);
        }
    "#;
    let engine = ScriptEngine::new(relaxed());
    let script = compile(&engine, source);
    let event = tag_added("x", user());
    let first = engine.run(&script, &event);
    let second = engine.run(&script, &event);
    assert_eq!(first.actions, second.actions);
    assert_eq!(first.logs, second.logs);
    expect![[r#"
        ok
        log: top level runs every time
        log: 1 3
        add_tag USER u1 "t1"
    "#]]
    .assert_eq(&render(&second));
}

#[test]
fn engine_and_scripts_are_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ScriptEngine>();
    assert_send_sync::<CompiledScript>();
    let engine = ScriptEngine::new(relaxed());
    let busy = compile(&engine, "fn on_tag_added(e) { loop {} }");
    let quick = compile(&engine, &hook("s.add_tag(\"done\");"));
    std::thread::scope(|threads| {
        for i in 0..4 {
            let (engine, busy, quick) = (&engine, &busy, &quick);
            threads.spawn(move || {
                for _ in 0..5 {
                    let script = if i % 2 == 0 { busy } else { quick };
                    let outcome = engine.run(script, &tag_added("x", user()));
                    assert_eq!(outcome.ok, i % 2 == 1, "{outcome:?}");
                }
            });
        }
    });
}

/// Runs hostile code in a hook (after planning a change) and checks that
/// it fails, plans nothing and stops in time.
fn assert_contained(engine: &ScriptEngine, body: &str) -> String {
    let (functions, body) = body.split_once("@@").unwrap_or(("", body));
    let budget = engine.limits().wall_clock;
    let source = format!(
        "{functions}\n{}",
        hook(&format!("s.add_tag(\"planned\");\n{body}"))
    );
    let started = std::time::Instant::now();
    let message = match engine.compile(&source) {
        Err(error) => format!("compile error: {error}"),
        Ok(script) => {
            let outcome = engine.run(&script, &tag_added("x", user()));
            assert!(!outcome.ok, "{body}: {outcome:?}");
            assert!(outcome.actions.is_empty(), "{body}: {outcome:?}");
            format!("run error: {}", outcome.error.unwrap_or_default())
        }
    };
    let elapsed = started.elapsed();
    assert!(elapsed < budget * 10, "{body}: took {elapsed:?}");
    message
}

/// Each hostile body, run after planning a change, must fail (to compile or
/// to run) with one of the given messages, plan nothing, and stop in time.
/// A run may also stop at the deadline first on a slow or busy machine.
/// `@@` separates top-level functions from the hook body.
const HOSTILE: &[(&str, &[&str])] = &[
    ("loop {}", &[OPS]),
    ("while true {}", &[OPS]),
    ("let i = 0; while i >= 0 { i += 1; }", &[OPS]),
    ("let n = 0; for i in 0..1000000000 { n += i; }", &[OPS]),
    ("fn spin() { loop {} } @@ spin();", &[OPS]),
    ("[1, 2, 3].map(|x| { loop {} });", &[OPS]),
    (
        "fn f(x) { f(x) + 1 } @@ f(1);",
        &["script exceeded 32 nested function calls"],
    ),
    (
        "fn f(x) { g(x) } fn g(x) { f(x) } @@ f(1);",
        &["script exceeded 32 nested function calls"],
    ),
    ("sleep(1000000);", &[SLEEP]),
    ("sleep(1e300);", &[SLEEP]),
    ("sleep(0.001);", &[SLEEP]),
    ("call(Fn(\"sleep\"), 1000000);", &[SLEEP]),
    ("Fn(\"sleep\").call(1.5);", &[SLEEP]),
    ("let t = timestamp(); while t.elapsed < 3600.0 {}", &[OPS]),
    (
        "launch_missiles();",
        &["Function not found: launch_missiles ()"],
    ),
    (
        "eval(\"1\");",
        &["compile error: reserved keyword 'eval' is disabled"],
    ),
    (
        "call(Fn(\"eval\"), \"1\");",
        &["'eval' is a reserved keyword"],
    ),
    (
        "import \"x\" as y;",
        &["compile error: 'import' is a reserved keyword"],
    ),
    (
        "let t = \"xx\"; loop { t += t; }",
        &["Length of string exceeds the script limits"],
    ),
    ("let a = []; loop { a.push(1); }", &[ARRAY, OPS]),
    (
        "let a = []; loop { a += [1, 2, 3, 4, 5, 6, 7, 8]; }",
        &[ARRAY, OPS],
    ),
    (
        "let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }",
        &[MAP, OPS],
    ),
    ("let a = [1]; loop { a = [a, a]; }", &[ARRAY]),
    ("let a = []; loop { a = [a]; }", &[ARRAY, OPS]),
    ("let m = #{}; loop { m = #{ m: m }; }", &[MAP, OPS]),
    (
        "let t = \"x\"; t.pad(60000, 'x'); t.replace(\"x\", \"yy\");",
        &[STRING],
    ),
    (
        "let t = \"x\"; t.pad(60000, 'x'); t.replace('x', \"yy\");",
        &[STRING],
    ),
    ("let t = \"\"; t.pad(100000000, 'x');", &[STRING]),
    ("let a = []; a.pad(100000000, 0);", &[ARRAY]),
    ("let b = blob(100000000);", &[ARRAY]),
    (
        "let a = 1; let f = || a;",
        &["compile error: Undefined variable: a"],
    ),
    (
        "let f = Fn(\"x\"); loop { f = f.curry(f); }",
        &["compile error: Expecting name of a property"],
    ),
    (
        "let f = Fn(\"x\"); loop { f = curry(f, f); }",
        &["compile error: reserved keyword 'curry' is disabled"],
    ),
    (
        "let f = Fn(\"x\"); loop { f = call(Fn(\"curry\"), f, f); }",
        &["'curry' is a reserved keyword"],
    ),
    (
        "for i in 0..2000 { s.add_tag(`t${i}`); }",
        &["script planned more than 1000 changes", OPS],
    ),
    (
        "let a = 0; let b = 0; let c = 0; let d = 0; let f = 0; let g = 0; let h = 0; let i = 0; let j = 0;",
        &["script defined more than 8 variables"],
    ),
];
const OPS: &str = "script exceeded 100000 operations";
const SLEEP: &str = "sleep is not available to scripts";
const LATE: &str = "script ran longer than 50 ms";
const STRING: &str = "Length of string exceeds the script limits";
const ARRAY: &str = "Size of array/BLOB exceeds the script limits";
const MAP: &str = "Size of object map exceeds the script limits";

#[test]
fn hostile_scripts_fail_cleanly() {
    let engine = ScriptEngine::new(Limits {
        max_variables: 8,
        ..Limits::default()
    });
    for &(body, expected) in HOSTILE {
        let message = assert_contained(&engine, body);
        let late = message.starts_with("run error") && message.contains(LATE);
        assert!(
            late || expected.iter().any(|e| message.contains(e)),
            "{body}: {message}, expected one of {expected:?}"
        );
    }
}

#[test]
fn exit_ends_the_run_keeping_its_plan() {
    check(
        &hook("s.add_tag(\"before\"); exit(); s.add_tag(\"never\");"),
        &tag_added("x", user()),
        expect![[r#"
            ok
            add_tag USER u1 "before"
        "#]],
    );
}

#[test]
fn deep_nesting_parses_to_an_error_not_a_crash() {
    let engine = ScriptEngine::new(relaxed());
    let mut out = String::new();
    for (open, close) in [
        ("(", ")"),
        ("[", "]"),
        ("#{a:", "}"),
        ("{", "}"),
        ("- ", ""),
    ] {
        let source = hook(&format!(
            "let x = {}1{};",
            open.repeat(10_000),
            close.repeat(10_000)
        ));
        let message = match engine.compile(&source) {
            Ok(_) => "compiled".to_owned(),
            Err(error) => error.to_string(),
        };
        let _ = writeln!(out, "{open}: {message}");
    }
    let source = format!("{}fn on_tag_added(e) {{}}", "if true { ".repeat(5_000));
    let _ = writeln!(
        out,
        "if: {:?}",
        engine.compile(&source).err().map(|e| e.message)
    );
    expect![[r#"
        (: Expression exceeds maximum complexity at line 3, column 23
        [: Expression exceeds maximum complexity at line 3, column 18
        #{a:: Expression exceeds maximum complexity at line 3, column 45
        {: Expression exceeds maximum complexity at line 3, column 22
        - : Expression exceeds maximum complexity at line 3, column 63
        if: Some("Expression exceeds maximum complexity")
    "#]]
    .assert_eq(&out);
}

/// Values nested as deep as the array and map sizes allow are cloned,
/// compared, printed and dropped recursively by Rhai: far deeper than a
/// 2 MiB stack allows, which is why scripts run on their own threads.
#[test]
fn deeply_nested_values_do_not_overflow_the_stack() {
    let engine = ScriptEngine::new(Limits {
        max_operations: 0,
        wall_clock: Duration::from_secs(30),
        ..Limits::default()
    });
    let body = r#"
    let a = []; for i in 0..1500 { a = [a]; }
    let m = #{}; for i in 0..1500 { m = #{ m: m }; }
    m.a = a;
    let copy = m;
    log(`${copy == m} ${type_of(m)}`);
    let text = `${m}`;
    log(`${text.len()}`);
    switch m { [] => 1, _ => 2 }
    throw m;
    "#;
    let outcome = run_with(&engine, &hook(body), &tag_added("x", user()));
    assert_eq!(outcome.logs, ["true map", "15012"]);
    let error = outcome.error.unwrap_or_default();
    assert!(error.starts_with("script threw #{\"a\": [[[["), "{error}");
    assert!(error.len() < 1_200, "{error}");
}

#[test]
fn deadline_stops_a_script_with_no_operation_limit() {
    let engine = ScriptEngine::new(Limits {
        max_operations: 0,
        wall_clock: Duration::from_millis(20),
        ..Limits::default()
    });
    let message = assert_contained(&engine, "loop {}");
    expect!["run error: script ran longer than 20 ms"].assert_eq(&message);
}

#[test]
fn operation_limit_stops_a_script_before_a_long_deadline() {
    let engine = ScriptEngine::new(Limits {
        max_operations: 1_000,
        ..relaxed()
    });
    let message = assert_contained(&engine, "loop {}");
    expect!["run error: script exceeded 1000 operations"].assert_eq(&message);
}

/// Random small scripts from a little grammar, run by the engine and by a
/// model interpreter in Rust: both must plan the same actions, and runs
/// that never end must fail in time with nothing planned.
mod generated {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;
    use crate::tags::pattern::tag_matches;

    const TAGS: [&str; 5] = [
        "VIP",
        "sports/football",
        "sports/tennis",
        "Region: North",
        "New",
    ];
    const PATTERNS: [&str; 5] = ["VIP", "sports/*", "Region: *", "New", "Tier: *"];

    #[derive(Debug, Clone)]
    enum Stmt {
        Add(bool, usize),
        Remove(bool, usize),
        If(bool, usize, Vec<Stmt>, Vec<Stmt>),
        Repeat(u8, Vec<Stmt>),
        Log(usize),
        Spin(u8),
    }

    fn stmt() -> impl Strategy<Value = Stmt> {
        let leaf = prop_oneof![
            4 => (any::<bool>(), 0..TAGS.len()).prop_map(|(a, t)| Stmt::Add(a, t)),
            3 => (any::<bool>(), 0..TAGS.len()).prop_map(|(a, t)| Stmt::Remove(a, t)),
            1 => (0..PATTERNS.len()).prop_map(Stmt::Log),
            1 => (0..3u8).prop_map(Stmt::Spin),
        ];
        leaf.prop_recursive(3, 24, 4, move |inner| {
            let block = prop::collection::vec(inner, 0..4);
            prop_oneof![
                (
                    any::<bool>(),
                    0..PATTERNS.len(),
                    block.clone(),
                    block.clone()
                )
                    .prop_map(|(a, p, then, other)| Stmt::If(a, p, then, other)),
                (0..4u8, block).prop_map(|(n, body)| Stmt::Repeat(n, body)),
            ]
        })
    }

    fn subject(account: bool) -> &'static str {
        if account { "s.account" } else { "s" }
    }

    fn render(stmts: &[Stmt], out: &mut String) {
        for stmt in stmts {
            match stmt {
                Stmt::Add(a, t) => {
                    let _ = writeln!(out, "{}.add_tag({:?});", subject(*a), TAGS[*t]);
                }
                Stmt::Remove(a, t) => {
                    let _ = writeln!(out, "{}.remove_tag({:?});", subject(*a), TAGS[*t]);
                }
                Stmt::If(a, p, then, other) => {
                    let _ = writeln!(out, "if {}.has_tag({:?}) {{", subject(*a), PATTERNS[*p]);
                    render(then, out);
                    out.push_str("} else {\n");
                    render(other, out);
                    out.push_str("}\n");
                }
                Stmt::Repeat(n, body) => {
                    let _ = writeln!(out, "for i in 0..{n} {{");
                    render(body, out);
                    out.push_str("}\n");
                }
                Stmt::Log(p) => {
                    let _ = writeln!(out, "log(`{0}: ${{s.has_tag({0:?})}}`);", PATTERNS[*p]);
                }
                Stmt::Spin(0) => out.push_str("loop {}\n"),
                Stmt::Spin(1) => out.push_str("while true { let x = 1; }\n"),
                Stmt::Spin(_) => out.push_str("let t = \"ab\"; loop { t += t; }\n"),
            }
        }
    }

    /// The model: current tags of the user and its account, the order in
    /// which (target, tag) pairs were first touched, and the logs.
    struct Model {
        tags: [Vec<String>; 2],
        touched: Vec<(bool, String)>,
        logs: Vec<String>,
    }

    impl Model {
        /// `false` when the script never ends.
        fn exec(&mut self, stmts: &[Stmt]) -> bool {
            for stmt in stmts {
                let done = match stmt {
                    Stmt::Add(a, t) | Stmt::Remove(a, t) => {
                        let (tag, tags) = (TAGS[*t].to_owned(), &mut self.tags[usize::from(*a)]);
                        tags.retain(|x| *x != tag);
                        if matches!(stmt, Stmt::Add(..)) {
                            tags.push(tag.clone());
                        }
                        if !self.touched.contains(&(*a, tag.clone())) {
                            self.touched.push((*a, tag));
                        }
                        true
                    }
                    Stmt::If(a, p, then, other) => {
                        let hit = self.tags[usize::from(*a)]
                            .iter()
                            .any(|t| tag_matches(PATTERNS[*p], t));
                        self.exec(if hit { then } else { other })
                    }
                    Stmt::Repeat(n, body) => (0..*n).all(|_| self.exec(body)),
                    Stmt::Log(p) => {
                        let hit = self.tags[0].iter().any(|t| tag_matches(PATTERNS[*p], t));
                        self.logs.push(format!("{}: {hit}", PATTERNS[*p]));
                        true
                    }
                    Stmt::Spin(_) => false,
                };
                if !done {
                    return false;
                }
            }
            true
        }

        fn actions(&self, initial: &[Vec<String>; 2]) -> Vec<PlannedAction> {
            let mut actions = Vec::new();
            for (a, tag) in &self.touched {
                let i = usize::from(*a);
                let (was, is) = (initial[i].contains(tag), self.tags[i].contains(tag));
                let (target_kind, target_id) = if *a {
                    (SubjectKind::Account, "a1".to_owned())
                } else {
                    (SubjectKind::User, "u1".to_owned())
                };
                let tag = tag.clone();
                match (was, is) {
                    (false, true) => actions.push(PlannedAction::AddTag {
                        target_kind,
                        target_id,
                        tag,
                    }),
                    (true, false) => actions.push(PlannedAction::RemoveTag {
                        target_kind,
                        target_id,
                        tag,
                    }),
                    _ => {}
                }
            }
            actions
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 96,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn engine_agrees_with_model(stmts in prop::collection::vec(stmt(), 0..6), initial in prop::collection::vec(any::<bool>(), 2 * TAGS.len())) {
            let mut subject = user();
            subject.tags = TAGS.iter().zip(&initial).filter(|(_, on)| **on).map(|(t, _)| (*t).to_owned()).collect();
            let mut account = account();
            account.tags = TAGS.iter().zip(&initial[TAGS.len()..]).filter(|(_, on)| **on).map(|(t, _)| (*t).to_owned()).collect();
            subject.account = Some(Box::new(account.clone()));
            let mut body = String::new();
            render(&stmts, &mut body);
            let source = hook(&body);

            let engine = engine();
            let script = engine.compile(&source);
            prop_assert!(script.is_ok(), "{source}: {script:?}");
            let Ok(script) = script else { return Ok(()) };
            let started = std::time::Instant::now();
            let outcome = engine.run(&script, &tag_added("x", subject.clone()));
            let budget = engine.limits().wall_clock;
            prop_assert!(started.elapsed() < budget * 10, "{source}: took {:?}", started.elapsed());
            prop_assert!(outcome.duration < budget * 10);

            let initial = [subject.tags.clone(), account.tags.clone()];
            let mut model = Model { tags: initial.clone(), touched: Vec::new(), logs: Vec::new() };
            let late = outcome.error.as_deref().is_some_and(|e| e.contains("longer than"));
            let ends = model.exec(&stmts);
            if late {
                // A machine busy enough to pass the deadline: only containment holds.
                prop_assert!(!outcome.ok && outcome.actions.is_empty());
            } else if ends {
                prop_assert!(outcome.ok, "{source}: {outcome:?}");
                prop_assert_eq!(&outcome.actions, &model.actions(&initial), "{}", source);
                prop_assert_eq!(&outcome.logs, &model.logs, "{}", source);
                let unique: HashSet<_> = outcome.actions.iter().map(|a| format!("{a:?}")).collect();
                prop_assert_eq!(unique.len(), outcome.actions.len());
            } else {
                prop_assert!(!outcome.ok, "{source}: {outcome:?}");
                prop_assert!(outcome.actions.is_empty());
                prop_assert_eq!(&outcome.logs, &model.logs, "{}", source);
            }
        }
    }

    /// One engine for all cases, as in the server.
    fn engine() -> &'static ScriptEngine {
        static ENGINE: std::sync::OnceLock<ScriptEngine> = std::sync::OnceLock::new();
        ENGINE.get_or_init(|| ScriptEngine::new(Limits::default()))
    }
}

#[test]
fn run_many_runs_each_hook_alone_in_order() {
    let engine = ScriptEngine::new(relaxed());
    let good = compile(
        &engine,
        "fn on_tag_added(e) { e.subject.add_tag(`after ${e.tag}`); }",
    );
    let bad = compile(&engine, "fn on_tag_added(e) { throw \"no\"; }");
    let deaf = compile(
        &engine,
        "fn on_tag_removed(e) { e.subject.add_tag(\"x\"); }",
    );
    let outcomes = engine.run_many(vec![
        (good.clone(), tag_added("a", user())),
        (bad, tag_added("b", user())),
        (deaf, tag_added("c", user())),
        (good, tag_added("d", user())),
    ]);
    let rendered: Vec<String> = outcomes.iter().map(render).collect();
    assert_eq!(rendered.len(), 4);
    assert!(rendered[0].contains("\"after a\""), "{rendered:?}");
    assert!(rendered[1].starts_with("error:"), "{rendered:?}");
    assert_eq!(rendered[2], "ok\n", "no hook: an empty plan");
    assert!(rendered[3].contains("\"after d\""), "{rendered:?}");
    assert!(engine.run_many(Vec::new()).is_empty());
}

/// The F4 script: 999 attributes of 64 KiB each (64 MB of output).
const F4_SCRIPT: &str = r#"
fn on_tag_added(e) {
    let s = e.subject;
    let v = "";
    v.pad(65000, 'x');
    for i in 0..999 { s.set_attribute(`k${i}`, v); }
}
"#;

#[test]
fn output_past_the_budget_fails_the_run_naming_the_limit() {
    let engine = ScriptEngine::new(relaxed());
    let outcome = run_with(&engine, F4_SCRIPT, &tag_added("x", user()));
    assert!(!outcome.ok);
    // The fifth value takes the plan past 256 KiB (each is the key, 2
    // quotes and 65,000 bytes).
    expect![[r#"
        error: script planned 325020 bytes of tag names and attribute values, more than its output limit of 262144 bytes (--script-max-output-bytes) at line 6, column 25
    "#]]
    .assert_eq(&render(&outcome));

    // Tag names count too.
    let engine = ScriptEngine::new(Limits {
        max_output_bytes: 1_000,
        ..relaxed()
    });
    let outcome = run_with(
        &engine,
        &hook("for i in 0..200 { s.add_tag(`tag number ${i}`); }"),
        &tag_added("x", user()),
    );
    let error = outcome.error.unwrap_or_default();
    assert!(
        error.starts_with("script planned 1004 bytes of tag names and attribute values, more than its output limit of 1000 bytes"),
        "{error}"
    );

    // Overwriting one key costs its last value only; 0 means no limit.
    for limits in [
        relaxed(),
        Limits {
            max_output_bytes: 0,
            max_attributes_bytes: 0,
            ..relaxed()
        },
    ] {
        let engine = ScriptEngine::new(limits);
        let outcome = run_with(
            &engine,
            &hook("let v = \"\"; v.pad(60000, 'x'); for i in 0..50 { s.set_attribute(\"k\", v); }"),
            &tag_added("x", user()),
        );
        assert!(outcome.ok, "{outcome:?}");
        assert_eq!(outcome.actions.len(), 1);
    }
}

#[test]
fn attributes_past_the_per_subject_limit_fail_the_run() {
    let engine = ScriptEngine::new(Limits {
        max_attributes_bytes: 1_000,
        ..relaxed()
    });
    // The user's attributes are {"plan":"free"} (15 bytes) before the run.
    let outcome = run_with(
        &engine,
        &hook("let v = \"\"; v.pad(970, 'x'); s.set_attribute(\"note\", v);"),
        &tag_added("x", user()),
    );
    expect![[r#"
        ok
        set_attribute USER u1 "note" = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "#]]
    .assert_eq(&render(&outcome));
    // Removing a key makes room.
    let outcome = run_with(
        &engine,
        &hook(
            "let v = \"\"; v.pad(970, 'x'); s.set_attribute(\"plan\", ()); s.set_attribute(\"note\", v);",
        ),
        &tag_added("x", user()),
    );
    assert!(outcome.ok, "{outcome:?}");
    // The account has its own limit.
    let outcome = run_with(
        &engine,
        &hook("let v = \"\"; v.pad(990, 'x'); s.account.set_attribute(\"note\", v);"),
        &tag_added("x", user()),
    );
    let error = outcome.error.unwrap_or_default();
    assert!(
        error.starts_with("the attributes of ACCOUNT a1 would take 1001 bytes"),
        "{error}"
    );
}

#[test]
fn string_literals_come_from_the_syntax_tree() {
    let engine = ScriptEngine::new(Limits::default());
    let script = compile(
        &engine,
        r#"
        // "Commented" is not a literal.
        const PREFIX = "Region: ";
        fn helper(e) { e.subject.add_tag("Customer") }
        fn on_tag_added(e) {
            if e.tag == "Trial" && e.subject.has_tag("Region: *") {
                helper(e);
                e.subject.add_tag(`Welcomed ${e.tag}`);
                e.subject.remove_tag("Customer");
            }
        }
        "#,
    );
    let literals = script.string_literals();
    for expected in ["Region: ", "Customer", "Trial", "Region: *", "Welcomed "] {
        assert!(
            literals.iter().any(|l| l == expected),
            "{expected:?} in {literals:?}"
        );
    }
    assert!(
        !literals.iter().any(|l| l.contains("Commented")),
        "{literals:?}"
    );
    assert_eq!(
        literals.iter().filter(|l| *l == "Customer").count(),
        1,
        "without repeats"
    );
}
