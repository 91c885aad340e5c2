//! Starting and stopping the HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::auth::{AuthError, Role, keys, workspaces};
use crate::config::ServerSettings;
use crate::graphql::http::{HttpState, router};
use crate::graphql::{AppState, Checks, build_schema_with};

/// On an empty database, creates the `default` workspace and its first
/// ADMIN key, and returns the key (to be shown once). Otherwise `None`.
pub async fn bootstrap(db: &DatabaseConnection) -> Result<Option<keys::CreatedKey>, AuthError> {
    if !workspaces::is_empty(db).await? {
        return Ok(None);
    }
    let txn = crate::db::begin_write(db).await?;
    let workspace = workspaces::create(&txn, workspaces::DEFAULT_WORKSPACE).await?;
    let key = keys::create(&txn, workspace.id, "admin", Role::Admin).await?;
    txn.commit().await?;
    Ok(Some(key))
}

/// A server listening in the background.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds the address and serves until `shutdown` resolves.
pub async fn start(
    app: AppState,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<RunningServer> {
    app.feed.spawn(app.db.clone());
    let schema = |checks| {
        build_schema_with(
            Some(app.clone()),
            &settings.limits,
            &settings.production,
            checks,
        )
    };
    let (http_schema, websocket_schema) =
        (schema(Checks::BeforeExecution), schema(Checks::InSchema));
    let listener = TcpListener::bind(&settings.bind).await?;
    let addr = listener.local_addr()?;
    let sockets = crate::graphql::websocket::Sockets::start(
        app.db.clone(),
        crate::graphql::websocket::Caps {
            per_connection: settings.max_subscriptions_per_connection,
            per_key: settings.max_subscriptions_per_key,
        },
        Arc::clone(&app.metrics),
    );
    let state = HttpState {
        schema: http_schema,
        websocket_schema,
        app,
        settings: Arc::new(settings),
        sockets,
    };
    let handle = tokio::spawn(async move {
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown)
            .await
    });
    Ok(RunningServer { addr, handle })
}

/// Serves a standalone worker's `/healthz` and `/metrics` on `bind` until
/// `shutdown` resolves.
pub async fn start_worker_http(
    app: AppState,
    bind: &str,
    metrics_token: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let router =
        crate::graphql::ops::worker_router(crate::graphql::ops::OpsState { app, metrics_token });
    let handle = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
    });
    Ok(RunningServer { addr, handle })
}

/// A shutdown that several tasks (server, worker) can wait for.
#[derive(Clone)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    /// A shutdown that happens when `signal` resolves.
    pub fn on(signal: impl Future<Output = ()> + Send + 'static) -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            let _ = tx.send(true);
        });
        Shutdown(rx)
    }

    /// Resolves once the shutdown has begun.
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
