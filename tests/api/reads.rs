//! The read paths read what SeaORM reads: the same rows, decoded to equal
//! models, for every function that takes them. On a SQLite file the hot
//! reads go to `sqlite_read`'s reader, and inside a transaction through
//! SeaORM, so comparing the two compares the two ways. On both databases
//! the models decoded by column index (`FromRow::from_result`), a user
//! read with its account by a join, and a subject's tags read by a join on
//! PostgreSQL are compared with what SeaORM's own decoder reads.

use entity::{account, tag, tag_assignment, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};
use serde_json::json;
use tagsmith::subjects::{SubjectKind, accounts, users};
use tagsmith::tags::{catalogue, store};
use tagsmith::vocab::page::PageRequest;

use crate::helpers::TestApp;

crate::on_both_databases!(every_read_decodes_what_seaorm_decodes);

async fn every_read_decodes_what_seaorm_decodes(app: TestApp) {
    let sqlite = app.db.get_database_backend() == sea_orm::DbBackend::Sqlite;
    assert_eq!(
        tagsmith::sqlite_read::reader(&app.db).is_some(),
        sqlite,
        "a SQLite file has a reader, PostgreSQL none"
    );
    // Every kind of value: NULLs and not, JSON attributes, timestamps with
    // and without fractions, an account or none, tags with key and value,
    // a parent and a description, a deleted tag still assigned to nobody.
    app.ok(
        r#"mutation { upsertAccount(input: { externalId: "acme", name: "Acme", attributes: { plan: "Pro", seats: 12, nested: { a: [1, 2.5, null] } } }) { id } }"#,
        json!({}),
    )
    .await;
    let full = app
        .ok(
            r#"mutation { upsertUser(input: { externalId: "x-1", email: "ana@example.com", firstName: "Ana", lastName: "Lima", accountExternalId: "acme", attributes: { age: 41, vip: true, note: "é ✓" }, lastSeenAt: "2026-03-04T05:06:07.123456Z" }) { id } }"#,
            json!({}),
        )
        .await["upsertUser"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bare = app.user("bo@example.com").await;
    for (id, tags) in [
        (&full, json!(["Plan: Pro", "sports/tennis", "VIP"])),
        (&bare, json!(["VIP"])),
    ] {
        app.ok(
            "mutation($id: ID!, $t: [String!]!) { addTags(subjectId: $id, tags: $t) { __typename } }",
            json!({ "id": id, "t": tags }),
        )
        .await;
    }
    app.ok(
        r#"mutation { setTagDescription(name: "VIP", description: "Pays more") { name } }"#,
        json!({}),
    )
    .await;

    let ws = 1;
    let page = PageRequest {
        first: 10,
        after: None,
    };
    let txn = app.db.begin().await.unwrap();
    let fast = users::list(&app.db, ws, Default::default(), page)
        .await
        .unwrap();
    let slow = users::list(&txn, ws, Default::default(), page)
        .await
        .unwrap();
    assert_eq!(fast.rows.len(), 2);
    assert_eq!(fast.rows, slow.rows);
    let slow_users = slow.rows.clone();
    assert_eq!(fast.has_next, slow.has_next);
    assert_eq!(
        fast.rows[0].last_seen_at.map(|t| t.to_rfc3339()),
        Some("2026-03-04T05:06:07.123456+00:00".into())
    );

    let ids: Vec<i64> = fast.rows.iter().map(|u| u.id).collect();
    assert_eq!(
        users::find_many(&app.db, ws, &ids).await.unwrap(),
        users::find_many(&txn, ws, &ids).await.unwrap()
    );
    assert_eq!(
        users::find(&app.db, ws, ids[0]).await.unwrap(),
        users::find(&txn, ws, ids[0]).await.unwrap()
    );
    // Another workspace's reader query finds nothing.
    assert_eq!(users::find(&app.db, ws + 1, ids[0]).await.unwrap(), None);

    let fast = accounts::list(&app.db, ws, None, None, page).await.unwrap();
    let slow = accounts::list(&txn, ws, None, None, page).await.unwrap();
    assert_eq!(fast.rows.len(), 1);
    assert_eq!(fast.rows, slow.rows);
    let slow_accounts = slow.rows.clone();
    let account = fast.rows[0].id;
    assert_eq!(
        accounts::find(&app.db, ws, account).await.unwrap(),
        accounts::find(&txn, ws, account).await.unwrap()
    );

    let fast = catalogue::subject_tags(&app.db, ws, SubjectKind::User, &ids)
        .await
        .unwrap();
    let slow = catalogue::subject_tags(&txn, ws, SubjectKind::User, &ids)
        .await
        .unwrap();
    assert_eq!(fast, slow);
    assert_eq!(fast[&ids[0]].len(), 3);
    let vip = fast[&ids[1]][0].clone();
    assert_eq!(vip.description.as_deref(), Some("Pays more"));
    let tag_ids: Vec<i64> = fast.values().flatten().map(|t| t.id).collect();
    assert_eq!(
        store::find_many(&app.db, ws, &tag_ids).await.unwrap(),
        store::find_many(&txn, ws, &tag_ids).await.unwrap()
    );

    // SeaORM's own decoder, by column name, reads the same models.
    let seaorm_users = user::Entity::find()
        .filter(user::Column::WorkspaceId.eq(ws))
        .order_by_asc(user::Column::Id)
        .all(&txn)
        .await
        .unwrap();
    assert_eq!(seaorm_users, slow_users);
    let seaorm_accounts = account::Entity::find()
        .filter(account::Column::WorkspaceId.eq(ws))
        .all(&txn)
        .await
        .unwrap();
    assert_eq!(seaorm_accounts, slow_accounts);
    // A user with its account, joined; one without; another workspace's.
    assert_eq!(
        users::find_with_account(&app.db, ws, ids[0]).await.unwrap(),
        Some((seaorm_users[0].clone(), Some(seaorm_accounts[0].clone())))
    );
    assert_eq!(
        users::find_with_account(&app.db, ws, ids[1]).await.unwrap(),
        Some((seaorm_users[1].clone(), None))
    );
    assert_eq!(
        users::find_with_account(&app.db, ws + 1, ids[0])
            .await
            .unwrap(),
        None
    );
    // The tags of each user as SeaORM reads the assignments and the tags.
    let assigned = tag_assignment::Entity::find()
        .filter(tag_assignment::Column::SubjectId.is_in(ids.clone()))
        .all(&txn)
        .await
        .unwrap();
    let mut expected: std::collections::HashMap<i64, Vec<tag::Model>> = Default::default();
    for a in assigned {
        let tag = tag::Entity::find_by_id(a.tag_id)
            .one(&txn)
            .await
            .unwrap()
            .unwrap();
        expected.entry(a.subject_id).or_default().push(tag);
    }
    for tags in expected.values_mut() {
        tags.sort_by(|a, b| a.name.cmp(&b.name));
    }
    assert_eq!(fast, expected);
    assert!(
        catalogue::subject_tags(&app.db, ws + 1, SubjectKind::User, &ids)
            .await
            .unwrap()
            .is_empty(),
        "another workspace's subject tags find nothing"
    );
    txn.rollback().await.unwrap();
}
