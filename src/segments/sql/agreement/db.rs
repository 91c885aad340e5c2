//! The test databases: the real schema (`db::migrate`) on SQLite in memory
//! or on a fresh PostgreSQL database, loaded through SeaORM as the
//! application writes its rows.

use std::collections::BTreeMap;

use sea_orm::sea_query::{
    Expr, InsertStatement, PostgresQueryBuilder, Query, SelectStatement, SqliteQueryBuilder,
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbErr, TransactionTrait};

use super::Dataset;
use crate::config::DatabaseSettings;
use crate::segments::filter::SubjectKind;
use crate::segments::sql::Backend;
use entity::{account, event, tag, tag_assignment, user, workspace};

/// Ids of workspace 2 are those of workspace 1 plus this.
pub const WORKSPACE_STRIDE: i64 = 100_000;

/// The id of the `index`-th user or account of a dataset in `workspace`.
pub fn id(kind: SubjectKind, workspace: i64, index: usize) -> i64 {
    let base = match kind {
        SubjectKind::Account => 1,
        SubjectKind::User => 1_001,
    };
    base + i64::try_from(index).unwrap_or(0) + (workspace - 1) * WORKSPACE_STRIDE
}

/// A migrated database holding workspaces 1 and 2 (the foreign keys want
/// them); `load` fills them.
pub struct Db {
    conn: DatabaseConnection,
    backend: Backend,
    /// PostgreSQL: the throwaway database, dropped with this.
    postgres: Option<PostgresDatabase>,
}

/// A throwaway PostgreSQL database: dropped by `Drop`, so that a failing
/// (panicking) test does not leave it behind either.
struct PostgresDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Possibly inside the test's runtime: drop it from a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(conn) = Database::connect(&admin_url).await {
                    let _ = conn
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates a fresh database on the server of `admin_url`; its URL and its guard.
async fn create_postgres(admin_url: String) -> (String, PostgresDatabase) {
    let name = format!("tagsmith_agreement_{}", random_suffix());
    let admin = Database::connect(&admin_url)
        .await
        .expect("connect to TAGSMITH_TEST_DATABASE_URL");
    // A linguistic default collation ("a" < "B") where the server has ICU,
    // so that the compiler's byte-order `COLLATE "C"` is put to the test;
    // the server's default otherwise.
    let icu = format!(
        "CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu \
         ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
    );
    if admin.execute_unprepared(&icu).await.is_err() {
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create test database");
    }
    let _ = admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base.to_owned())
        .expect("database URL has a path");
    (
        format!("{base}/{name}"),
        PostgresDatabase { admin_url, name },
    )
}

impl Db {
    /// A fresh, migrated database; `None` for PostgreSQL when
    /// `TAGSMITH_TEST_DATABASE_URL` is not set.
    pub async fn open(backend: Backend) -> Option<Db> {
        let (database_url, postgres) = match backend {
            // One connection: each in-memory connection is a database of its own.
            Backend::Sqlite => ("sqlite::memory:".to_owned(), None),
            Backend::Postgres => {
                let admin_url = std::env::var("TAGSMITH_TEST_DATABASE_URL").ok();
                let required =
                    std::env::var("TAGSMITH_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
                assert!(
                    admin_url.is_some() || !required,
                    "TAGSMITH_TEST_REQUIRE_POSTGRES=1 but TAGSMITH_TEST_DATABASE_URL is not set"
                );
                let admin_url = admin_url?;
                let (url, guard) = create_postgres(admin_url).await;
                (url, Some(guard))
            }
        };
        let settings = DatabaseSettings {
            database_url,
            db_max_connections: 1,
        };
        let conn = crate::db::connect(&settings).await.expect("connect");
        crate::db::migrate(&conn).await.expect("migrate");
        let db = Db {
            conn,
            backend,
            postgres,
        };
        let mut workspaces = Query::insert();
        workspaces.into_table(workspace::Entity).columns([
            workspace::Column::Id,
            workspace::Column::Name,
            workspace::Column::CreatedAt,
        ]);
        for id in [1i64, 2] {
            workspaces.values_panic([
                Expr::val(id),
                Expr::val(format!("workspace {id}")),
                Expr::val(chrono::Utc::now()),
            ]);
        }
        db.conn.execute(&workspaces).await.expect("workspaces");
        Some(db)
    }

    /// Closes the connection and drops a PostgreSQL database.
    pub async fn close(self) {
        let Db { conn, postgres, .. } = self;
        let _ = conn.close().await;
        drop(postgres);
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn sql(&self, statement: &SelectStatement) -> String {
        match self.backend {
            Backend::Sqlite => statement.to_string(SqliteQueryBuilder),
            Backend::Postgres => statement.to_string(PostgresQueryBuilder),
        }
    }

    /// The sorted ids the statement selects.
    pub async fn ids(&self, statement: &SelectStatement) -> Result<Vec<i64>, DbErr> {
        let mut ids = self
            .conn
            .query_all(statement)
            .await?
            .iter()
            .map(|row| row.try_get_by_index::<i64>(0))
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort_unstable();
        Ok(ids)
    }

    /// Empties the tables and writes the dataset into workspaces 1 and 2,
    /// in one transaction.
    pub async fn load(&self, data: &Dataset) -> Result<(), DbErr> {
        let txn = self.conn.begin().await?;
        txn.execute(
            &Query::delete()
                .from_table(tag_assignment::Entity)
                .to_owned(),
        )
        .await?;
        txn.execute(&Query::delete().from_table(event::Entity).to_owned())
            .await?;
        txn.execute(&Query::delete().from_table(tag::Entity).to_owned())
            .await?;
        txn.execute(&Query::delete().from_table(user::Entity).to_owned())
            .await?;
        txn.execute(&Query::delete().from_table(account::Entity).to_owned())
            .await?;
        let mut next_id = 1_000_000i64;
        for workspace in [1i64, 2] {
            for statement in inserts(data, workspace, &mut next_id) {
                txn.execute(&statement).await?;
            }
        }
        txn.commit().await
    }
}

/// The rows of one workspace, as insert statements in the order the
/// foreign keys ask; tag, assignment and event ids come from `next_id`.
fn inserts(data: &Dataset, workspace: i64, next_id: &mut i64) -> Vec<InsertStatement> {
    let mut fresh = || {
        *next_id += 1;
        *next_id
    };
    // a row per (tag name, live) in use: a deleted tag keeps its row
    let mut tags: BTreeMap<(String, bool), i64> = BTreeMap::new();
    for row in data.accounts.iter().chain(&data.users) {
        for key in &row.tags {
            if !tags.contains_key(key) {
                tags.insert(key.clone(), fresh());
            }
        }
    }
    let mut statements = Vec::new();
    if !tags.is_empty() {
        let mut insert = Query::insert();
        insert.into_table(tag::Entity).columns([
            tag::Column::Id,
            tag::Column::WorkspaceId,
            tag::Column::Name,
            tag::Column::Key,
            tag::Column::Value,
            tag::Column::CreatedAt,
            tag::Column::DeletedAt,
        ]);
        for ((name, live), id) in &tags {
            let (key, value) = match name.split_once(": ") {
                Some((key, value)) => (Some(key.trim().to_owned()), Some(value.trim().to_owned())),
                None => (None, None),
            };
            insert.values_panic([
                Expr::val(*id),
                Expr::val(workspace),
                Expr::val(name.as_str()),
                Expr::val(key),
                Expr::val(value),
                Expr::val(data.now),
                Expr::val((!live).then_some(data.now)),
            ]);
        }
        statements.push(insert);
    }
    if !data.accounts.is_empty() {
        let mut accounts = Query::insert();
        accounts.into_table(account::Entity).columns([
            account::Column::Id,
            account::Column::WorkspaceId,
            account::Column::ExternalId,
            account::Column::Name,
            account::Column::Attributes,
            account::Column::LastActivityAt,
            account::Column::CreatedAt,
            account::Column::UpdatedAt,
        ]);
        for (index, row) in data.accounts.iter().enumerate() {
            accounts.values_panic([
                Expr::val(id(SubjectKind::Account, workspace, index)),
                Expr::val(workspace),
                Expr::val(row.external_id.clone()),
                Expr::val(row.main.as_str()),
                Expr::val(serde_json::Value::Object(row.attributes.clone())),
                Expr::val(row.seen),
                Expr::val(row.created_at),
                Expr::val(row.created_at),
            ]);
        }
        statements.push(accounts);
    }
    if !data.users.is_empty() {
        let mut users = Query::insert();
        users.into_table(user::Entity).columns([
            user::Column::Id,
            user::Column::WorkspaceId,
            user::Column::ExternalId,
            user::Column::Email,
            user::Column::FirstName,
            user::Column::LastName,
            user::Column::AccountId,
            user::Column::Attributes,
            user::Column::LastSeenAt,
            user::Column::CreatedAt,
            user::Column::UpdatedAt,
        ]);
        for (index, row) in data.users.iter().enumerate() {
            users.values_panic([
                Expr::val(id(SubjectKind::User, workspace, index)),
                Expr::val(workspace),
                Expr::val(row.external_id.clone()),
                Expr::val(row.main.as_str()),
                Expr::val(row.first_name.clone()),
                Expr::val(row.last_name.clone()),
                Expr::val(row.account.map(|a| id(SubjectKind::Account, workspace, a))),
                Expr::val(serde_json::Value::Object(row.attributes.clone())),
                Expr::val(row.seen),
                Expr::val(row.created_at),
                Expr::val(row.created_at),
            ]);
        }
        statements.push(users);
    }
    let mut assignments = Query::insert();
    assignments.into_table(tag_assignment::Entity).columns([
        tag_assignment::Column::Id,
        tag_assignment::Column::WorkspaceId,
        tag_assignment::Column::TagId,
        tag_assignment::Column::SubjectKind,
        tag_assignment::Column::SubjectId,
        tag_assignment::Column::Source,
        tag_assignment::Column::At,
    ]);
    let mut events = Query::insert();
    events.into_table(event::Entity).columns([
        event::Column::Id,
        event::Column::WorkspaceId,
        event::Column::SubjectKind,
        event::Column::SubjectId,
        event::Column::Name,
        event::Column::At,
        event::Column::Properties,
    ]);
    let (mut any_assignment, mut any_event) = (false, false);
    let subjects = data
        .accounts
        .iter()
        .enumerate()
        .map(|(i, row)| (SubjectKind::Account, i, row))
        .chain(
            data.users
                .iter()
                .enumerate()
                .map(|(i, row)| (SubjectKind::User, i, row)),
        );
    for (kind, index, row) in subjects {
        let subject_kind = match kind {
            SubjectKind::User => "USER",
            SubjectKind::Account => "ACCOUNT",
        };
        let subject = id(kind, workspace, index);
        for key in &row.tags {
            any_assignment = true;
            assignments.values_panic([
                Expr::val(fresh()),
                Expr::val(workspace),
                Expr::val(tags[key]),
                Expr::val(subject_kind),
                Expr::val(subject),
                Expr::val("MANUAL"),
                Expr::val(data.now),
            ]);
        }
        for (name, at) in &row.events {
            any_event = true;
            events.values_panic([
                Expr::val(fresh()),
                Expr::val(workspace),
                Expr::val(subject_kind),
                Expr::val(subject),
                Expr::val(name.as_str()),
                Expr::val(*at),
                Expr::val(serde_json::json!({})),
            ]);
        }
    }
    if any_assignment {
        statements.push(assignments);
    }
    if any_event {
        statements.push(events);
    }
    statements
}
