//! Building the sandboxed Rhai engine and compiling scripts.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rhai::{AST, Engine, EvalAltResult, ImmutableString, OptimizationLevel, ParseError, Position};

use super::ScriptError;
use super::run;
use super::runner::Runners;
use super::snapshot::{self, HookKind};

/// Bounds on what one script may be and do, and the threads scripts run on.
/// A run that breaks a bound fails with nothing of its plan applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Rhai operations per run (roughly: statements, expressions and calls).
    /// 0 means no limit.
    pub max_operations: u64,
    /// Nested function calls (recursion depth).
    pub max_call_levels: usize,
    /// Statement and expression nesting at the top level, checked at
    /// compile time. 0 means no limit.
    pub max_expr_depth: usize,
    /// Statement and expression nesting inside functions, checked at
    /// compile time. 0 means no limit.
    pub max_function_expr_depth: usize,
    /// Bytes of a string, and of all the strings inside one array or map.
    /// 0 means no limit.
    pub max_string_size: usize,
    /// Items of an array (counting nested arrays). 0 means no limit.
    pub max_array_size: usize,
    /// Entries of an object map (counting nested maps). 0 means no limit.
    pub max_map_size: usize,
    /// Variables alive at once in a run.
    pub max_variables: usize,
    /// Functions a script may define.
    pub max_functions: usize,
    /// Bytes of a script's source.
    pub max_source_bytes: usize,
    /// Distinct changes (per target and tag or attribute) one run may plan.
    pub max_changes: usize,
    /// Bytes of output one run may plan: tag names, and attribute keys with
    /// their values serialized as JSON (the last value of each key counts).
    /// 0 means no limit.
    pub max_output_bytes: usize,
    /// Bytes of a subject's attributes (serialized as JSON) after a run's
    /// changes are merged in; checked at the end of the run against its
    /// snapshot and again when the plan is applied. 0 means no limit.
    pub max_attributes_bytes: usize,
    /// Log lines kept per run; later ones are counted, not kept.
    pub max_log_lines: usize,
    /// Bytes kept of each log line.
    pub max_log_line_bytes: usize,
    /// Wall-clock time per run, checked between operations.
    pub wall_clock: Duration,
    /// Stack bytes of each script thread. Values nested as deep as the
    /// array and map sizes allow need far more than the usual 2 MiB (Rhai
    /// clones, compares, prints and drops them recursively); raise it along
    /// with `max_array_size`, `max_map_size` or `max_call_levels`.
    pub stack_size: usize,
    /// Script threads run at once at most (0: one per CPU). Runs beyond
    /// that wait for a free thread.
    pub threads: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 100_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_function_expr_depth: 32,
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_variables: 256,
            max_functions: 64,
            max_source_bytes: 64 * 1024,
            max_changes: 1_000,
            max_output_bytes: 256 * 1024,
            max_attributes_bytes: 64 * 1024,
            max_log_lines: 100,
            max_log_line_bytes: 1_024,
            wall_clock: Duration::from_millis(50),
            // Unoptimized builds use several times more stack per level.
            stack_size: if cfg!(debug_assertions) { 256 } else { 64 } << 20,
            threads: 0,
        }
    }
}

/// Checks and normalizes a tag name given to `add_tag` / `remove_tag`:
/// returns the name to record, or why it is invalid.
pub(super) type TagNameCheck = Arc<dyn Fn(&str) -> Result<String, String> + Send + Sync>;

/// The sandboxed Rhai engine. Built once, shared by every thread.
pub struct ScriptEngine {
    pub(super) shared: Arc<Shared>,
    pub(super) tag_check: Option<TagNameCheck>,
    pub(super) runners: Runners,
}

/// What every run reads: the Rhai engine and the limits.
pub(super) struct Shared {
    pub(super) engine: Engine,
    pub(super) limits: Limits,
}

impl ScriptEngine {
    /// An engine enforcing `limits`. Script threads start on the first runs.
    pub fn new(limits: Limits) -> Self {
        let threads = match limits.threads {
            0 => thread::available_parallelism().map_or(4, NonZeroUsize::get),
            n => n,
        };
        let runners = Runners::new(threads, limits.stack_size);
        ScriptEngine {
            shared: Arc::new(Shared {
                engine: sandboxed_engine(&limits),
                limits,
            }),
            tag_check: None,
            runners,
        }
    }

    /// Makes `add_tag` and `remove_tag` check tag names with `check` (for
    /// instance the server's `TagName::parse`): an `Err` fails the run with
    /// its message, an `Ok` is the name recorded. Without a check, a blank
    /// name fails the run and any other is recorded as given.
    pub fn with_tag_check(
        mut self,
        check: impl Fn(&str) -> Result<String, String> + Send + Sync + 'static,
    ) -> Self {
        self.tag_check = Some(Arc::new(check));
        self
    }

    /// The limits this engine enforces.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// Compiles a script. Errors carry the 1-based line and column. A
    /// script may define any of the hooks, or none (it then never runs);
    /// a hook must take exactly one parameter. Top-level statements are
    /// allowed and run before the hook on every run.
    pub fn compile(&self, source: &str) -> Result<CompiledScript, ScriptError> {
        if source.len() > self.limits().max_source_bytes {
            return Err(ScriptError::new(format!(
                "script is larger than {} bytes",
                self.limits().max_source_bytes
            )));
        }
        let ast = self.shared.engine.compile(source).map_err(parse_error)?;
        let mut hooks = Vec::new();
        for function in ast.iter_functions() {
            if function.this_type.is_some() {
                continue;
            }
            let Some(hook) = HookKind::from_fn_name(function.name) else {
                continue;
            };
            if function.params.len() != 1 {
                let (line, column) = locate_bad_hook(source, function.name).unzip();
                return Err(ScriptError {
                    message: format!(
                        "{} must take exactly one parameter (the event), not {}",
                        function.name,
                        function.params.len()
                    ),
                    line,
                    column,
                });
            }
            hooks.push(hook);
        }
        hooks.sort_by_key(|hook| HookKind::ALL.iter().position(|h| h == hook));
        hooks.dedup();
        Ok(CompiledScript {
            ast: Arc::new(ast),
            hooks,
        })
    }
}

/// A compiled script, cheap to clone and to share between threads.
#[derive(Debug, Clone)]
pub struct CompiledScript {
    pub(super) ast: Arc<AST>,
    hooks: Vec<HookKind>,
}

impl CompiledScript {
    /// The hooks the script defines, in [`HookKind::ALL`] order.
    pub fn hooks(&self) -> Vec<HookKind> {
        self.hooks.clone()
    }

    /// Whether the script defines `hook`.
    pub fn has_hook(&self, hook: HookKind) -> bool {
        self.hooks.contains(&hook)
    }

    /// The string literals of the script (from its syntax tree, function
    /// bodies included, after constant folding), without repeats: where a
    /// script can name a tag.
    pub fn string_literals(&self) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        self.ast.walk(&mut |path: &[rhai::ASTNode]| {
            if let Some(rhai::ASTNode::Expr(rhai::Expr::StringConstant(text, _))) = path.last()
                && !found.iter().any(|f| f == text.as_str())
            {
                found.push(text.to_string());
            }
            true
        });
        found
    }
}

fn sandboxed_engine(limits: &Limits) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_optimization_level(OptimizationLevel::Simple)
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_expr_depths(limits.max_expr_depth, limits.max_function_expr_depth)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_variables(limits.max_variables)
        .set_max_functions(limits.max_functions)
        .set_strict_variables(true)
        // `eval` becomes a reserved word: using it is a syntax error.
        .disable_symbol("eval")
        // So does `curry`: curried arguments escape the array, map and
        // string size checks, so `loop { f = f.curry(f); }` doubled a
        // function pointer every operation (memory and time exponential
        // in the operations, past the deadline; found by the generated
        // hostile scripts). Without closures scripts never need it.
        .disable_symbol("curry");
    // Without the `no_module` feature `import` would also need disabling.
    run::install_hooks(&mut engine);
    snapshot::register(&mut engine);
    register_bounded_replace(&mut engine, limits.max_string_size);
    register_unavailable(&mut engine);
    engine
}

/// Replaces Rhai's `sleep(seconds)`, which blocks the script thread without
/// looking at the deadline (`sleep(1000000)` would hold one of the few
/// script threads for days; a huge float panicked inside Rhai), by
/// functions that fail the run. Registered functions take precedence over
/// the standard packages, also through `call(Fn("sleep"), ..)`.
fn register_unavailable(engine: &mut Engine) {
    fn unavailable() -> Result<(), Box<EvalAltResult>> {
        Err(EvalAltResult::ErrorRuntime(
            "sleep is not available to scripts: a run must finish within its time limit".into(),
            Position::NONE,
        )
        .into())
    }
    engine
        .register_fn("sleep", |_seconds: rhai::INT| unavailable())
        .register_fn("sleep", |_seconds: rhai::FLOAT| unavailable());
}

/// Replaces the built-in `replace` functions, which build their whole
/// result before the string size is checked (a 64 KiB string with each
/// character replaced by a 64 KiB string is 4 GiB), by ones that check first.
fn register_bounded_replace(engine: &mut Engine, max_string_size: usize) {
    engine
        .register_fn(
            "replace",
            move |s: &mut ImmutableString, find: ImmutableString, with: ImmutableString| {
                bounded_replace(s, &find, &with, max_string_size)
            },
        )
        .register_fn(
            "replace",
            move |s: &mut ImmutableString, find: ImmutableString, with: char| {
                bounded_replace(s, &find, with.encode_utf8(&mut [0; 4]), max_string_size)
            },
        )
        .register_fn(
            "replace",
            move |s: &mut ImmutableString, find: char, with: ImmutableString| {
                bounded_replace(s, find.encode_utf8(&mut [0; 4]), &with, max_string_size)
            },
        )
        .register_fn(
            "replace",
            move |s: &mut ImmutableString, find: char, with: char| {
                bounded_replace(
                    s,
                    find.encode_utf8(&mut [0; 4]),
                    with.encode_utf8(&mut [0; 4]),
                    max_string_size,
                )
            },
        );
}

fn bounded_replace(
    s: &mut ImmutableString,
    find: &str,
    with: &str,
    max_string_size: usize,
) -> Result<(), Box<EvalAltResult>> {
    if s.is_empty() {
        return Ok(());
    }
    let count = if find.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(find).count()
    };
    let new_len = (s.len() - count * find.len()).saturating_add(count.saturating_mul(with.len()));
    if max_string_size > 0 && new_len > max_string_size {
        return Err(EvalAltResult::ErrorDataTooLarge(
            "Length of string".to_owned(),
            Position::NONE,
        )
        .into());
    }
    *s = s.replace(find, with).into();
    Ok(())
}

fn parse_error(error: ParseError) -> ScriptError {
    let ParseError(kind, position) = error;
    ScriptError {
        message: kind.to_string(),
        line: position.line().and_then(|n| u32::try_from(n).ok()),
        column: position.position().and_then(|n| u32::try_from(n).ok()),
    }
}

/// Best-effort position of the definition `fn <name>(...)` whose parameter
/// list does not have exactly one parameter.
fn locate_bad_hook(source: &str, name: &str) -> Option<(u32, u32)> {
    let mut from = 0;
    while let Some(found) = source.get(from..)?.find("fn") {
        let start = from + found;
        from = start + 2;
        let rest = source.get(start + 2..)?;
        let after_fn = rest.trim_start();
        if after_fn.len() == rest.len() {
            continue; // `fn` not followed by whitespace
        }
        let Some(after_name) = after_fn.strip_prefix(name) else {
            continue;
        };
        let Some(params) = after_name.trim_start().strip_prefix('(') else {
            continue;
        };
        let params = params.split(')').next().unwrap_or("");
        let count = if params.trim().is_empty() {
            0
        } else {
            params.split(',').count()
        };
        if count != 1 {
            return line_and_column(source, start);
        }
    }
    None
}

/// 1-based line and character column of byte `offset` in `source`.
fn line_and_column(source: &str, offset: usize) -> Option<(u32, u32)> {
    let before = source.get(..offset)?;
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    let column = before.get(line_start..)?.chars().count() + 1;
    Some((u32::try_from(line).ok()?, u32::try_from(column).ok()?))
}
