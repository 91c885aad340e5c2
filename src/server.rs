//! Starting and stopping the HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::app::AppState;
pub use crate::app::Shutdown;
use crate::auth::{AuthError, Role, keys, workspaces};
use crate::config::ServerSettings;
use crate::graphql::http::{HttpState, router};
use crate::graphql::{Checks, build_schema_with};

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
    mut app: AppState,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<RunningServer> {
    app.keys = Arc::new(crate::auth::keys::KeyCache::new(
        std::time::Duration::from_millis(settings.api_key_cache_ms),
    ));
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
        documents: Arc::default(),
    };
    let header_timeout = state.settings.header_timeout();
    let handle = tokio::spawn(serve(listener, router(state), header_timeout, shutdown));
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
    let handle = tokio::spawn(serve(listener, router, WORKER_HEADER_TIMEOUT, shutdown));
    Ok(RunningServer { addr, handle })
}

/// How long a client of a standalone worker's port has to send its headers.
const WORKER_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then waits for
/// the requests in flight. What `axum::serve` does, over HTTP/1 with a
/// header read timeout: a connection that has not sent a whole request's
/// headers within `header_timeout` of its start (or of its previous
/// request's end) is closed, so half-sent requests cannot pile up until the
/// process runs out of file descriptors.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let (stop, stopping) = tokio::sync::watch::channel(false);
    // Each connection holds a receiver; all are dropped once all are closed.
    let (all_closed, open) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let mut stopping = stopping.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            let mut stopped = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::trace!(error = %e, "connection ended");
                        }
                        break;
                    }
                    _ = stopping.wait_for(|stop| *stop), if !stopped => {
                        stopped = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(open);
    all_closed.closed().await;
    Ok(())
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
