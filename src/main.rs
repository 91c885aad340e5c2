//! The `tagsmith` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tagsmith::app::{AppState, Shutdown};
use tagsmith::auth::{Role, keys, workspaces};
use tagsmith::config::{
    AutomationSettings, DatabaseSettings, ScriptSettings, ServerSettings, WorkerHttpSettings,
};
use tagsmith::{db, graphql, server};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: a quarter of a listed page's CPU went
/// to glibc's allocator and its arena locks (BENCHMARKS.md, allocation).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// tagsmith: tags, segments and automation for accounts and users, over GraphQL.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database and serve GraphQL (and GraphiQL at /), with the automation worker.
    Serve {
        #[command(flatten)]
        database: DatabaseSettings,
        #[command(flatten)]
        server: ServerSettings,
        #[command(flatten)]
        automation: AutomationSettings,
    },
    /// Run only the automation worker (several may share one PostgreSQL database).
    Worker {
        #[command(flatten)]
        database: DatabaseSettings,
        #[command(flatten)]
        automation: AutomationSettings,
        #[command(flatten)]
        http: WorkerHttpSettings,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[command(flatten)]
        database: DatabaseSettings,
    },
    /// Print the GraphQL schema (SDL), as schema.graphql holds it.
    ExportSchema {
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
    /// Manage API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Manage workspaces.
    Workspace {
        #[command(subcommand)]
        command: WorkspaceCommand,
    },
    /// Check or upload automation scripts.
    Script {
        #[command(subcommand)]
        command: ScriptCommand,
    },
    /// Import users or accounts from a CSV or .xlsx file.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Export a segment's members, users, accounts or the tags, as CSV or NDJSON.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
}

/// What every `import` subcommand takes.
#[derive(clap::Args)]
struct ImportArgs {
    /// A .csv (or .tsv) file, or an .xlsx workbook (its first sheet).
    file: std::path::PathBuf,
    /// Check every row and report what would happen; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// The CSV delimiter: one character (`;`, `|`) or `tab` (default: `,`, or tab for .tsv).
    #[arg(long, value_parser = tagsmith::import::cli::parse_delimiter)]
    delimiter: Option<u8>,
    /// Rows per write transaction.
    #[arg(long, default_value_t = tagsmith::import::run::BATCH_SIZE)]
    batch_size: usize,
    #[arg(long, default_value = workspaces::DEFAULT_WORKSPACE)]
    workspace: String,
    #[command(flatten)]
    database: DatabaseSettings,
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Users: `email` required; `first_name`, `last_name`, `external_id`,
    /// `account_external_id`, `account_name`; `tags` (separated by `;`);
    /// any other column becomes `Column: value` tags.
    Users(ImportArgs),
    /// Accounts: `external_id` and/or `name`; `tags`; any other column becomes `Column: value` tags.
    Accounts(ImportArgs),
}

/// What every `export` subcommand takes.
#[derive(clap::Args)]
struct ExportArgs {
    /// csv (re-imports with `tagsmith import`) or ndjson.
    #[arg(long, default_value = "csv")]
    format: tagsmith::import::export::Format,
    /// Write to this file instead of standard output.
    #[arg(long)]
    output: Option<std::path::PathBuf>,
    #[arg(long, default_value = workspaces::DEFAULT_WORKSPACE)]
    workspace: String,
    #[command(flatten)]
    database: DatabaseSettings,
}

#[derive(Subcommand)]
enum ExportCommand {
    /// The members of a segment now, by name.
    Segment {
        name: String,
        #[command(flatten)]
        args: ExportArgs,
    },
    /// Users, all or those a filter selects (`--filter 'tagged("VIP")'`).
    Users {
        #[arg(long)]
        filter: Option<String>,
        #[command(flatten)]
        args: ExportArgs,
    },
    /// Accounts, all or those a filter selects.
    Accounts {
        #[arg(long)]
        filter: Option<String>,
        #[command(flatten)]
        args: ExportArgs,
    },
    /// The tags with how many users and accounts carry each.
    Tags {
        #[command(flatten)]
        args: ExportArgs,
    },
}

#[derive(Subcommand)]
enum ScriptCommand {
    /// Compile a Rhai script and list the hooks it defines (touches no database).
    Check {
        /// The script file.
        file: std::path::PathBuf,
        #[command(flatten)]
        scripts: ScriptSettings,
    },
    /// Upload a script (a new version when the name exists).
    Upload {
        /// The script file.
        file: std::path::PathBuf,
        /// The script's name (default: the file name without extension).
        #[arg(long)]
        name: Option<String>,
        /// Upload it disabled.
        #[arg(long)]
        disabled: bool,
        #[arg(long, default_value = workspaces::DEFAULT_WORKSPACE)]
        workspace: String,
        #[command(flatten)]
        database: DatabaseSettings,
        #[command(flatten)]
        scripts: ScriptSettings,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create an API key and print its secret (shown once).
    Create {
        /// A name for the key (shown as the actor of its changes).
        #[arg(long)]
        name: String,
        /// ADMIN, DEVELOPER, MEMBER or VIEWER.
        #[arg(long)]
        role: Role,
        /// The workspace of the key.
        #[arg(long, default_value = workspaces::DEFAULT_WORKSPACE)]
        workspace: String,
        #[command(flatten)]
        database: DatabaseSettings,
    },
    /// Revoke every key of that name; they stop working at once.
    Revoke {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = workspaces::DEFAULT_WORKSPACE)]
        workspace: String,
        #[command(flatten)]
        database: DatabaseSettings,
    },
}

#[derive(Subcommand)]
enum WorkspaceCommand {
    /// Create a workspace and print an ADMIN key for it (shown once).
    Create {
        /// The new workspace's name.
        name: String,
        #[command(flatten)]
        database: DatabaseSettings,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The log filter: `TAGSMITH_LOG`, else `RUST_LOG`, else `info`. Migration
/// progress and PostgreSQL's notices (`relation "seaql_migrations" already
/// exists, skipping` on every start) are kept at `warn` unless the filter
/// names them.
fn log_filter() -> EnvFilter {
    let asked = ["TAGSMITH_LOG", "RUST_LOG"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()));
    let directives = quieted(asked.as_deref().unwrap_or("info"));
    EnvFilter::try_new(&directives).unwrap_or_else(|e| {
        eprintln!("warning: ignoring the log filter {directives:?} ({e}); logging at info");
        EnvFilter::new(quieted("info"))
    })
}

/// `directives` with migration progress and PostgreSQL's notices at `warn`,
/// unless they name those targets themselves.
fn quieted(directives: &str) -> String {
    let mut directives = directives.to_owned();
    for target in ["sea_orm_migration", "sqlx::postgres::notice"] {
        if !directives.contains(target) {
            directives.push_str(&format!(",{target}=warn"));
        }
    }
    directives
}

/// Connects, migrates, and on a new database creates the `default` workspace
/// and its ADMIN key, whichever command comes first (`serve`, `migrate`,
/// `import`...). The key is printed once, on standard error so that a
/// command's own output (an export's CSV) stays clean; `serve` prints it on
/// standard output, with the playground's address.
async fn open(database: &DatabaseSettings) -> Result<sea_orm::DatabaseConnection, String> {
    let (conn, first_key) = open_and_bootstrap(database).await?;
    if let Some(key) = first_key {
        eprintln!(
            "tagsmith: new database, created workspace \"{}\" and its ADMIN key (shown once, only a hash is kept):\n\n    {}\n\n\
             Send it as `Authorization: Bearer <key>`; `tagsmith serve` serves GraphQL and GraphiQL. Keep it safe.",
            workspaces::DEFAULT_WORKSPACE,
            key.secret,
        );
    }
    Ok(conn)
}

async fn open_and_bootstrap(
    database: &DatabaseSettings,
) -> Result<(sea_orm::DatabaseConnection, Option<keys::CreatedKey>), String> {
    let conn = db::connect(database)
        .await
        .map_err(|e| format!("cannot open the database {}: {e}", database.database_url))?;
    db::migrate(&conn)
        .await
        .map_err(|e| format!("cannot migrate the database: {e}"))?;
    let first_key = server::bootstrap(&conn).await.map_err(|e| e.to_string())?;
    Ok((conn, first_key))
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Serve {
            database,
            server,
            automation,
        } => serve(database, server, automation).await,
        Command::Worker {
            database,
            automation,
            http,
        } => {
            let conn = open(&database).await?;
            let app = AppState::new(conn, automation.script_limits()).with_webhooks(
                tagsmith::webhooks::dispatch::Settings::from_config(&automation.webhooks)?,
            );
            let shutdown = Shutdown::on(server::shutdown_signal());
            let ops = match &http.metrics_bind {
                Some(bind) => {
                    let running = server::start_worker_http(
                        app.clone(),
                        bind,
                        http.metrics_token.clone(),
                        shutdown.clone().wait(),
                    )
                    .await
                    .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
                    eprintln!(
                        "tagsmith: the worker's /healthz and /metrics at http://{}/",
                        running.addr
                    );
                    Some(running)
                }
                None => None,
            };
            eprintln!("tagsmith: automation worker running; Ctrl-C stops it");
            app.spawn_automation(&automation, shutdown)
                .await
                .map_err(|e| format!("worker task failed: {e}"))?;
            if let Some(running) = ops {
                let _ = running.handle.await;
            }
            Ok(())
        }
        Command::Migrate { database } => {
            open(&database).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::ExportSchema { output } => {
            let sdl = graphql::schema_sdl();
            match output {
                Some(path) => std::fs::write(&path, sdl)
                    .map_err(|e| format!("cannot write {}: {e}", path.display())),
                None => {
                    print!("{sdl}");
                    Ok(())
                }
            }
        }
        Command::Key { command } => match command {
            KeyCommand::Create {
                name,
                role,
                workspace,
                database,
            } => {
                let conn = open(&database).await?;
                let ws = find_workspace(&conn, &workspace).await?;
                let key = keys::create(&conn, ws.id, &name, role)
                    .await
                    .map_err(|e| e.to_string())?;
                println!("{}", key.secret);
                eprintln!(
                    "created {} key \"{}\" in workspace \"{}\"; the secret above is shown once",
                    key.role, key.name, ws.name
                );
                Ok(())
            }
            KeyCommand::Revoke {
                name,
                workspace,
                database,
            } => {
                let conn = open(&database).await?;
                let ws = find_workspace(&conn, &workspace).await?;
                let count = keys::revoke(&conn, ws.id, &name)
                    .await
                    .map_err(|e| e.to_string())?;
                println!("revoked {count} key(s) named \"{name}\"");
                Ok(())
            }
        },
        Command::Script { command } => script_command(command).await,
        Command::Import { command } => import_command(command).await,
        Command::Export { command } => export_command(command).await,
        Command::Workspace { command } => match command {
            WorkspaceCommand::Create { name, database } => {
                let conn = open(&database).await?;
                let txn = db::begin_write(&conn).await.map_err(|e| e.to_string())?;
                let ws = workspaces::create(&txn, &name)
                    .await
                    .map_err(|e| e.to_string())?;
                let key = keys::create(&txn, ws.id, "admin", Role::Admin)
                    .await
                    .map_err(|e| e.to_string())?;
                txn.commit().await.map_err(|e| e.to_string())?;
                println!("{}", key.secret);
                eprintln!(
                    "created workspace \"{}\" with the ADMIN key above (shown once)",
                    ws.name
                );
                Ok(())
            }
        },
    }
}

async fn find_workspace(
    conn: &sea_orm::DatabaseConnection,
    name: &str,
) -> Result<entity::workspace::Model, String> {
    workspaces::find_by_name(conn, name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("workspace \"{name}\" does not exist"))
}

async fn serve(
    database: DatabaseSettings,
    settings: ServerSettings,
    automation: AutomationSettings,
) -> Result<(), String> {
    let (conn, first_key) = open_and_bootstrap(&database).await?;
    if let Some(key) = first_key {
        println!(
            "tagsmith: first start, created workspace \"{}\" and its ADMIN key (shown once, only a hash is kept):\n\n    {}\n\n\
             Send it as `Authorization: Bearer <key>`: paste it into the Headers tab of GraphiQL at \
             http://{}/, or use curl -H \"Authorization: Bearer {}\". Keep it safe.",
            workspaces::DEFAULT_WORKSPACE,
            key.secret,
            settings.bind,
            key.secret
        );
    }
    let app = AppState::new(conn, automation.script_limits()).with_webhooks(
        tagsmith::webhooks::dispatch::Settings::from_config(&automation.webhooks)?,
    );
    let shutdown = Shutdown::on(server::shutdown_signal());
    let worker =
        (!automation.no_worker).then(|| app.spawn_automation(&automation, shutdown.clone()));
    let graphiql = !settings.production.no_graphiql;
    let running = server::start(app, settings, shutdown.wait())
        .await
        .map_err(|e| format!("cannot listen: {e}"))?;
    if graphiql {
        println!(
            "tagsmith: listening on http://{}/ (GraphiQL), GraphQL at /graphql",
            running.addr
        );
    } else {
        println!(
            "tagsmith: listening on http://{}/graphql (GraphiQL is off)",
            running.addr
        );
    }
    let served = running
        .handle
        .await
        .map_err(|e| format!("server task failed: {e}"))?
        .map_err(|e| format!("server error: {e}"));
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    served
}

fn read_script(file: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}

async fn script_command(command: ScriptCommand) -> Result<(), String> {
    match command {
        ScriptCommand::Check { file, scripts } => {
            let source = read_script(&file)?;
            let engine = tagsmith::app::script_engine(scripts.limits());
            let compiled = engine
                .compile(&source)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            let hooks: Vec<&str> = compiled.hooks().iter().map(|h| h.fn_name()).collect();
            if hooks.is_empty() {
                println!(
                    "{}: compiles; defines no hook, so it never runs",
                    file.display()
                );
            } else {
                println!("{}: compiles; hooks: {}", file.display(), hooks.join(", "));
            }
            Ok(())
        }
        ScriptCommand::Upload {
            file,
            name,
            disabled,
            workspace,
            database,
            scripts,
        } => {
            let source = read_script(&file)?;
            let name = match name {
                Some(name) => name,
                None => file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .ok_or("give the script a --name")?,
            };
            let conn = open(&database).await?;
            let ws = find_workspace(&conn, &workspace).await?;
            // The same service as the API's `uploadScript`: segment hooks
            // start being tracked here too.
            let app = AppState::new(conn, scripts.limits());
            let script = app
                .upload_script(ws.id, &name, &source, disabled.then_some(false))
                .await
                .map_err(|e| format!("{}: {e}", file.display()))?;
            println!(
                "uploaded \"{}\" version {} ({})",
                script.name,
                script.version,
                if script.enabled {
                    "enabled"
                } else {
                    "disabled"
                }
            );
            Ok(())
        }
    }
}

async fn import_command(command: ImportCommand) -> Result<(), String> {
    use tagsmith::import::Kind;
    use tagsmith::import::cli::{ImportRequest, import_file, report};

    let (kind, args) = match command {
        ImportCommand::Users(args) => (Kind::Users, args),
        ImportCommand::Accounts(args) => (Kind::Accounts, args),
    };
    let conn = open(&args.database).await?;
    let ws = find_workspace(&conn, &args.workspace).await?;
    let request = ImportRequest {
        kind,
        file: args.file.clone(),
        dry_run: args.dry_run,
        delimiter: args.delimiter,
        batch_size: args.batch_size,
    };
    let started = std::time::Instant::now();
    let summary = import_file(&conn, ws.id, &request, &tagsmith::time::Clock::system())
        .await
        .map_err(|e| format!("{}: {e}", args.file.display()))?;
    print!(
        "{}",
        report(kind, &args.file, args.dry_run, &summary, started.elapsed())
    );
    // A file that gave nothing to import fails the command, so that a
    // script running it notices.
    if summary.rows == 0 {
        return Err(format!(
            "{}: the file has no rows below its header: nothing was imported",
            args.file.display()
        ));
    }
    if summary.skipped >= summary.rows {
        return Err(format!(
            "{}: every row ({}) was skipped: nothing was imported",
            args.file.display(),
            tagsmith::import::limits::thousands(summary.rows)
        ));
    }
    Ok(())
}

async fn export_command(command: ExportCommand) -> Result<(), String> {
    use tagsmith::import::cli::{ExportRequest, export_to};
    use tagsmith::subjects::SubjectKind;

    let (request, args) = match command {
        ExportCommand::Segment { name, args } => (ExportRequest::Segment(name), args),
        ExportCommand::Users { filter, args } => (
            ExportRequest::Subjects {
                kind: SubjectKind::User,
                filter,
            },
            args,
        ),
        ExportCommand::Accounts { filter, args } => (
            ExportRequest::Subjects {
                kind: SubjectKind::Account,
                filter,
            },
            args,
        ),
        ExportCommand::Tags { args } => (ExportRequest::Tags, args),
    };
    let conn = open(&args.database).await?;
    let ws = find_workspace(&conn, &args.workspace).await?;
    let what = export_to(
        &conn,
        ws.id,
        &request,
        args.format,
        args.output.as_deref(),
        &tagsmith::time::Clock::system(),
    )
    .await
    .map_err(|e| e.to_string())?;
    match &args.output {
        Some(path) => eprintln!("exported {what} to {}", path.display()),
        None => eprintln!("exported {what}"),
    }
    Ok(())
}
