//! Running one hook of a compiled script against one event.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rhai::{AST, CallFnOptions, Dynamic, Engine, EvalAltResult, Position, Scope};
use serde_json::Value;

use super::engine::{CompiledScript, Limits, ScriptEngine, Shared, TagNameCheck};
use super::plan::{Budget, LogBook, Plan, PlanFull, PlannedAction, Target, truncate};
use super::runner::RunnerError;
use super::snapshot::{self, HookEvent, SubjectSnapshot};

/// What one run of a hook produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// Whether the hook ran to its end within the limits.
    pub ok: bool,
    /// Why the run failed, with the script position when known.
    pub error: Option<String>,
    /// Where in the script the run failed (1-based line and column), when known.
    pub error_at: Option<(u32, u32)>,
    /// Lines from `log`, `print` and `debug`, kept even when the run failed.
    pub logs: Vec<String>,
    /// The net changes to apply; always empty when the run failed.
    pub actions: Vec<PlannedAction>,
    /// Wall-clock time of the run.
    pub duration: Duration,
}

impl ScriptEngine {
    /// Runs the hook of `script` for `event` on a script thread and waits
    /// for it. Never panics and never applies anything; a script without
    /// that hook yields an empty, ok plan. Top-level statements of the
    /// script run first, within the same limits.
    pub fn run(&self, script: &CompiledScript, event: &HookEvent) -> RunOutcome {
        if !script.has_hook(event.hook) {
            return RunOutcome::without_actions(None, Vec::new(), Duration::ZERO);
        }
        let shared = Arc::clone(&self.shared);
        let tag_check = self.tag_check.clone();
        let ast = Arc::clone(&script.ast);
        let event = event.clone();
        let started = Instant::now();
        self.runners
            .run(move || run_hook(&shared, tag_check, &ast, event))
            .unwrap_or_else(|RunnerError(error)| {
                RunOutcome::without_actions(Some(error), Vec::new(), started.elapsed())
            })
    }
}

impl ScriptEngine {
    /// Runs several hooks one after another on one script thread: one
    /// hand-off for all of them (the worker runs a batch of events this
    /// way). The outcomes are in the order of `runs`; each run is bounded
    /// and fails alone, as with [`ScriptEngine::run`].
    pub fn run_many(&self, runs: Vec<(CompiledScript, HookEvent)>) -> Vec<RunOutcome> {
        let shared = Arc::clone(&self.shared);
        let tag_check = self.tag_check.clone();
        let count = runs.len();
        let started = Instant::now();
        self.runners
            .run(move || {
                runs.into_iter()
                    .map(|(script, event)| {
                        if script.has_hook(event.hook) {
                            run_hook(&shared, tag_check.clone(), &script.ast, event)
                        } else {
                            RunOutcome::without_actions(None, Vec::new(), Duration::ZERO)
                        }
                    })
                    .collect()
            })
            .unwrap_or_else(|RunnerError(error)| {
                (0..count)
                    .map(|_| {
                        RunOutcome::without_actions(
                            Some(error.clone()),
                            Vec::new(),
                            started.elapsed(),
                        )
                    })
                    .collect()
            })
    }
}

impl RunOutcome {
    /// A run without actions: ok when `error` is `None`.
    fn without_actions(error: Option<String>, logs: Vec<String>, duration: Duration) -> Self {
        RunOutcome {
            ok: error.is_none(),
            error,
            error_at: None,
            logs,
            actions: Vec::new(),
            duration,
        }
    }
}

/// Runs one hook on the current thread.
fn run_hook(
    shared: &Shared,
    tag_check: Option<TagNameCheck>,
    ast: &AST,
    event: HookEvent,
) -> RunOutcome {
    let started = Instant::now();
    let limits = &shared.limits;
    let state = Arc::new(RunState {
        subject: event.subject.clone(),
        limits: limits.clone(),
        tag_check,
        record: Mutex::new(Record::default()),
    });
    let event_value = snapshot::event_value(&event, &state);
    let result = {
        let _current =
            CurrentRun::enter(started.checked_add(limits.wall_clock), Arc::clone(&state));
        let mut scope = Scope::new();
        let options = CallFnOptions::new().eval_ast(true).rewind_scope(false);
        catch_unwind(AssertUnwindSafe(|| {
            shared
                .engine
                .call_fn_with_options::<Dynamic>(
                    options,
                    &mut scope,
                    ast,
                    event.hook.fn_name(),
                    (event_value,),
                )
                .map(drop)
        }))
    };
    let record = std::mem::take(&mut *state.record());
    let logs = record.logs.into_lines();
    let error = match result {
        Ok(Ok(())) => match record
            .plan
            .check_attribute_sizes(&state.subject, limits.max_attributes_bytes)
        {
            Err(error) => error,
            Ok(()) => {
                return RunOutcome {
                    ok: true,
                    error: None,
                    error_at: None,
                    logs,
                    actions: record.plan.into_actions(&state.subject),
                    duration: started.elapsed(),
                };
            }
        },
        Ok(Err(error)) => {
            let (message, at) = describe(*error, limits);
            return RunOutcome {
                error_at: at,
                ..RunOutcome::without_actions(Some(message), logs, started.elapsed())
            };
        }
        Err(_) => "the script engine failed unexpectedly".to_owned(),
    };
    RunOutcome::without_actions(Some(error), logs, started.elapsed())
}

/// State shared by every `Subject` value of one run.
pub(super) struct RunState {
    pub(super) subject: SubjectSnapshot,
    limits: Limits,
    tag_check: Option<TagNameCheck>,
    record: Mutex<Record>,
}

#[derive(Debug, Default)]
struct Record {
    plan: Plan,
    logs: LogBook,
}

impl RunState {
    fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn log(&self, text: &str) {
        let limits = &self.limits;
        self.record()
            .logs
            .push(text, limits.max_log_lines, limits.max_log_line_bytes);
    }

    pub(super) fn plan_tag(&self, target: Target, tag: &str, present: bool) -> Result<(), String> {
        let tag = match &self.tag_check {
            Some(check) => check(tag).map_err(|reason| format!("invalid tag name: {reason}"))?,
            None if tag.trim().is_empty() => return Err("tag name is empty".to_owned()),
            None => tag.to_owned(),
        };
        self.record()
            .plan
            .set_tag(target, tag, present, self.budget())
            .map_err(PlanFull::message)
    }

    pub(super) fn plan_attribute(
        &self,
        target: Target,
        key: &str,
        value: Value,
    ) -> Result<(), String> {
        if key.trim().is_empty() {
            return Err("attribute key is empty".to_owned());
        }
        self.record()
            .plan
            .set_attribute(target, key.to_owned(), value, self.budget())
            .map_err(PlanFull::message)
    }

    fn budget(&self) -> Budget {
        Budget {
            max_changes: self.limits.max_changes,
            max_bytes: self.limits.max_output_bytes,
        }
    }

    pub(super) fn current_tags(&self, target: Target, snapshot: &[String]) -> Vec<String> {
        self.record().plan.current_tags(target, snapshot)
    }

    pub(super) fn any_current_tag(
        &self,
        target: Target,
        snapshot: &[String],
        predicate: impl FnMut(&str) -> bool,
    ) -> bool {
        self.record()
            .plan
            .any_current_tag(target, snapshot, predicate)
    }

    pub(super) fn planned_attributes(&self, target: Target) -> Vec<(String, Value)> {
        self.record().plan.planned_attributes(target)
    }
}

/// The run on this thread, for the engine-wide callbacks (`on_progress`,
/// `print`, `debug`, `log`), which get no per-run context from Rhai.
struct CurrentRun {
    deadline: Option<Instant>,
    state: Arc<RunState>,
}

thread_local! {
    static CURRENT: RefCell<Option<CurrentRun>> = const { RefCell::new(None) };
}

/// Sets the current run for its lifetime, restoring the previous one after.
struct CurrentRunGuard {
    previous: Option<CurrentRun>,
}

impl CurrentRun {
    fn enter(deadline: Option<Instant>, state: Arc<RunState>) -> CurrentRunGuard {
        let run = CurrentRun { deadline, state };
        let previous = CURRENT.with(|current| match current.try_borrow_mut() {
            Ok(mut current) => current.replace(run),
            Err(_) => None,
        });
        CurrentRunGuard { previous }
    }
}

impl Drop for CurrentRunGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|current| {
            if let Ok(mut current) = current.try_borrow_mut() {
                *current = previous;
            }
        });
    }
}

fn with_current<T>(f: impl FnOnce(&CurrentRun) -> T) -> Option<T> {
    CURRENT.with(|current| current.try_borrow().ok()?.as_ref().map(f))
}

fn log(text: &str) {
    with_current(|run| run.state.log(text));
}

/// Installs the callbacks that tie the engine to the current run: the
/// deadline check and the `log`, `print` and `debug` sinks.
pub(super) fn install_hooks(engine: &mut Engine) {
    engine
        .on_progress(|_operations| {
            let late = with_current(|run| run.deadline.is_some_and(|d| Instant::now() >= d));
            late.unwrap_or(false).then_some(Dynamic::UNIT)
        })
        .on_print(log)
        .on_debug(|text, _source, position| match position_text(position) {
            Some(at) => log(&format!("[{at}] {text}")),
            None => log(text),
        })
        .register_fn("log", |value: rhai::Dynamic| {
            log(&snapshot::log_text(&value));
        });
}

fn position_text(position: Position) -> Option<String> {
    Some(format!("{}:{}", position.line()?, position.position()?))
}

/// Longest error message kept (a thrown value can be large).
const MAX_ERROR_BYTES: usize = 1_024;

/// A run's error as users read it: what went wrong, then where; and where
/// as (line, column) when both are known.
fn describe(error: EvalAltResult, limits: &Limits) -> (String, Option<(u32, u32)>) {
    let mut error = error;
    let mut outer = Position::NONE;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, position) = error {
        if !position.is_none() {
            outer = position;
        }
        error = *inner;
    }
    let mut position = error.take_position();
    if position.is_none() {
        position = outer;
    }
    let message = match &error {
        EvalAltResult::ErrorTooManyOperations(_) => {
            format!("script exceeded {} operations", limits.max_operations)
        }
        EvalAltResult::ErrorTerminated(..) => {
            format!(
                "script ran longer than {}",
                duration_text(limits.wall_clock)
            )
        }
        EvalAltResult::ErrorStackOverflow(_) => format!(
            "script exceeded {} nested function calls",
            limits.max_call_levels
        ),
        EvalAltResult::ErrorTooManyVariables(_) => format!(
            "script defined more than {} variables",
            limits.max_variables
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => format!("{what} exceeds the script limits"),
        EvalAltResult::ErrorRuntime(value, _) if value.is_string() => value.to_string(),
        EvalAltResult::ErrorRuntime(value, _) => format!("script threw {value}"),
        other => other.to_string(),
    };
    let message = truncate(&message, MAX_ERROR_BYTES);
    let line = position.line().and_then(|l| u32::try_from(l).ok());
    let column = position.position().and_then(|c| u32::try_from(c).ok());
    match (line, column) {
        (Some(line), Some(column)) => (
            format!("{message} at line {line}, column {column}"),
            Some((line, column)),
        ),
        (Some(line), None) => (format!("{message} at line {line}"), None),
        _ => (message, None),
    }
}

fn duration_text(duration: Duration) -> String {
    if duration.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{duration:?}")
    }
}
