//! Merging tags: every assignment of the sources moves to the target
//! (without duplicates), each move recorded; the sources are then deleted.

use entity::{tag, tag_assignment};
use sea_orm::DatabaseTransaction;
use sea_orm::sea_query::{Expr, ExprTrait, Query};

use super::assign::Actor;
use super::delete::{remove_everywhere, retire};
use super::rename;
use crate::tags::name::TagName;
use crate::tags::write::{self, TagWrite, Target};
use crate::tags::{Op, TagError, store};
use crate::vocab::SubjectKind;

/// A merge done: the target and the tags merged into it (now deleted).
#[derive(Debug, Clone)]
pub struct Merged {
    pub target: tag::Model,
    pub sources: Vec<tag::Model>,
}

/// Merges the tags `names` into `into` (created when missing), inside `txn`
/// (the caller rewrites references and re-evaluates segments in the same
/// transaction: `app::references::merge_tags`). A source with live
/// descendants is refused: rename or merge those first.
pub async fn merge(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    names: &[String],
    into: &str,
    actor: Actor<'_>,
) -> Result<Merged, TagError> {
    let rules = store::rules(txn, workspace_id).await?;
    let into = TagName::parse(into, rules)
        .map_err(|e| TagError::InvalidNames(format!("tag {:?} {e}", into.trim())))?;
    let target = store::ensure(txn, workspace_id, std::slice::from_ref(&into))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| TagError::NotFound(into.as_str().to_owned()))?;
    let mut sources: Vec<tag::Model> = Vec::new();
    for name in names {
        let source = store::get_live(txn, workspace_id, name).await?;
        if source.id == target.id || sources.iter().any(|s| s.id == source.id) {
            continue;
        }
        if !rename::descendants(txn, workspace_id, &source)
            .await?
            .is_empty()
        {
            return Err(TagError::Invalid(format!(
                "{:?} has child tags; rename or merge them first",
                source.name
            )));
        }
        sources.push(source);
    }
    for source in &sources {
        for kind in [SubjectKind::Account, SubjectKind::User] {
            let holders = Query::select()
                .column(tag_assignment::Column::SubjectId)
                .from(tag_assignment::Entity)
                .and_where(Expr::col(tag_assignment::Column::TagId).eq(source.id))
                .and_where(Expr::col(tag_assignment::Column::SubjectKind).eq(kind.as_str()))
                .to_owned();
            let addition = TagWrite {
                workspace_id,
                op: Op::Added,
                tag_id: target.id,
                kind,
                source: actor.source,
                actor: actor.name,
                cause: actor.cause,
                depth: actor.depth,
            };
            write::apply(txn, &addition, &Target::Select(Box::new(holders))).await?;
        }
        remove_everywhere(txn, workspace_id, source.id, actor).await?;
        retire(txn, source.clone()).await?;
    }
    Ok(Merged { target, sources })
}
