//! Deleting a tag removes it and its descendants from every subject, each
//! removal recorded in the history; the tag rows stay, marked deleted, so
//! the history still names them.

use entity::{automation_event, tag, tag_assignment, tag_change};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter,
    Set,
};

use super::assign::Actor;
use super::rename;
use crate::tags::write::{self, TagWrite, Target};
use crate::tags::{Op, TagError, store};
use crate::time::now;
use crate::vocab::SubjectKind;

/// What deleting the tag `name` deletes: the tag, then its descendants.
pub async fn doomed(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    name: &str,
) -> Result<Vec<tag::Model>, TagError> {
    let root = store::get_live(txn, workspace_id, name).await?;
    let mut doomed = vec![root.clone()];
    doomed.extend(rename::descendants(txn, workspace_id, &root).await?);
    Ok(doomed)
}

/// Deletes `tags` (from [`doomed`]) inside `txn`: removed from every subject,
/// then retired (the caller re-evaluates segments in the same transaction:
/// `app::references::delete_tag`).
pub async fn delete(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    tags: Vec<tag::Model>,
    actor: Actor<'_>,
) -> Result<(), TagError> {
    for tag in tags {
        remove_everywhere(txn, workspace_id, tag.id, actor).await?;
        retire(txn, tag).await?;
    }
    Ok(())
}

/// Removes a tag from every subject that has it, through the write path.
pub async fn remove_everywhere(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    tag_id: i64,
    actor: Actor<'_>,
) -> Result<u64, TagError> {
    let mut changed = 0;
    for kind in [SubjectKind::Account, SubjectKind::User] {
        let holders = Query::select()
            .column(tag_assignment::Column::SubjectId)
            .from(tag_assignment::Entity)
            .and_where(Expr::col(tag_assignment::Column::TagId).eq(tag_id))
            .and_where(Expr::col(tag_assignment::Column::SubjectKind).eq(kind.as_str()))
            .to_owned();
        let removal = TagWrite {
            workspace_id,
            op: Op::Removed,
            tag_id,
            kind,
            source: actor.source,
            actor: actor.name,
            cause: actor.cause,
            depth: actor.depth,
        };
        changed += write::apply(txn, &removal, &Target::Select(Box::new(holders))).await?;
    }
    Ok(changed)
}

/// Marks a tag deleted: it leaves the catalogue and frees its name.
pub async fn retire(txn: &DatabaseTransaction, tag: tag::Model) -> Result<(), TagError> {
    let mut active = tag.into_active_model();
    active.deleted_at = Set(Some(now()));
    active.update(txn).await?;
    Ok(())
}

/// Forgets a deleted subject: its assignments, its history and its pending events.
pub async fn forget_subject(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    kind: SubjectKind,
    subject_id: i64,
) -> Result<(), sea_orm::DbErr> {
    tag_assignment::Entity::delete_many()
        .filter(tag_assignment::Column::WorkspaceId.eq(workspace_id))
        .filter(tag_assignment::Column::SubjectKind.eq(kind.as_str()))
        .filter(tag_assignment::Column::SubjectId.eq(subject_id))
        .exec(txn)
        .await?;
    tag_change::Entity::delete_many()
        .filter(tag_change::Column::WorkspaceId.eq(workspace_id))
        .filter(tag_change::Column::SubjectKind.eq(kind.as_str()))
        .filter(tag_change::Column::SubjectId.eq(subject_id))
        .exec(txn)
        .await?;
    automation_event::Entity::delete_many()
        .filter(automation_event::Column::WorkspaceId.eq(workspace_id))
        .filter(automation_event::Column::SubjectKind.eq(kind.as_str()))
        .filter(automation_event::Column::SubjectId.eq(subject_id))
        .exec(txn)
        .await?;
    Ok(())
}
