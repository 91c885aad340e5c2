//! The SQLite read path (`sqlite_read`) reads what SeaORM reads: the same
//! rows, decoded to equal models, for every function that takes it. Inside
//! a transaction the same functions read through SeaORM, so comparing the
//! two on one database compares the two decoders.

use sea_orm::TransactionTrait;
use serde_json::json;
use tagsmith::subjects::{SubjectKind, accounts, users};
use tagsmith::tags::{catalogue, store};
use tagsmith::vocab::page::PageRequest;

use crate::helpers::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_reader_decodes_what_seaorm_decodes() {
    let app = TestApp::builder().spawn_sqlite().await;
    assert!(
        tagsmith::sqlite_read::reader(&app.db).is_some(),
        "a SQLite file has a reader"
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
    txn.rollback().await.unwrap();
}
