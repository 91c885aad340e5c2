//! Renaming a tag keeps its assignments and history; renaming `a` renames
//! its descendants `a/...` too.

use entity::tag;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter, Set,
};

use crate::db::begin_write;
use crate::tags::name::TagName;
use crate::tags::{TagError, store};

/// Renames `old` (and its descendants) to `new`. Renaming onto an existing
/// name is a conflict (merge instead); renaming into its own subtree is refused.
pub async fn rename(
    db: &DatabaseConnection,
    workspace_id: i64,
    old: &str,
    new: &str,
    clock: &crate::time::Clock,
) -> Result<tag::Model, TagError> {
    let txn = begin_write(db).await?;
    let tracked = super::assign::segments_turn(&txn, workspace_id).await?;
    let rules = store::rules(&txn, workspace_id).await?;
    let new = TagName::parse(new, rules)
        .map_err(|e| TagError::InvalidNames(format!("tag {:?} {e}", new.trim())))?;
    let root = store::get_live(&txn, workspace_id, old).await?;
    if root.name == new.as_str() {
        return Ok(root);
    }
    if new.as_str().starts_with(&format!("{}/", root.name)) {
        return Err(TagError::Invalid(format!(
            "cannot rename {:?} into its own descendant {:?}",
            root.name,
            new.as_str()
        )));
    }
    let descendants = descendants(&txn, workspace_id, &root).await?;
    let mut renames: Vec<(tag::Model, TagName)> = vec![(root.clone(), new.clone())];
    for tag in descendants {
        let renamed = format!("{}{}", new.as_str(), &tag.name[root.name.len()..]);
        let name = TagName::parse(&renamed, rules)
            .map_err(|e| TagError::InvalidNames(format!("tag {renamed:?} {e}")))?;
        renames.push((tag, name));
    }
    let new_names: Vec<String> = renames.iter().map(|(_, n)| n.as_str().to_owned()).collect();
    if let Some(taken) = store::find_live_by_names(&txn, workspace_id, &new_names)
        .await?
        .into_iter()
        .next()
    {
        return Err(TagError::RenameConflict(taken.name));
    }
    // The new root's parents exist implicitly.
    let parent_id = match new.parent() {
        Some(parent) => {
            let parent = TagName::parse(&parent, rules)
                .map_err(|e| TagError::InvalidNames(format!("tag {parent:?} {e}")))?;
            store::ensure(&txn, workspace_id, &[parent])
                .await?
                .first()
                .map(|p| p.id)
        }
        None => None,
    };
    let mut renamed_root = None;
    for (tag, name) in renames {
        let is_root = tag.id == root.id;
        let (key, value) = match name.key_value() {
            Some((k, v)) => (Some(k.to_owned()), Some(v.to_owned())),
            None => (None, None),
        };
        let mut active = tag.into_active_model();
        active.name = Set(name.as_str().to_owned());
        active.key = Set(key);
        active.value = Set(value);
        if is_root {
            active.parent_id = Set(parent_id);
        }
        let updated = active.update(&txn).await?;
        if is_root {
            renamed_root = Some(updated);
        }
    }
    super::assign::segments_follow(&txn, workspace_id, tracked, clock).await?;
    txn.commit().await?;
    renamed_root.ok_or_else(|| TagError::NotFound(old.to_owned()))
}

/// The live tags below `root` in its hierarchy (`a/b`, `a/b/c` for `a`).
pub async fn descendants(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    root: &tag::Model,
) -> Result<Vec<tag::Model>, TagError> {
    if root.key.is_some() {
        return Ok(Vec::new()); // key:value tags are flat
    }
    let mut found = Vec::new();
    let mut frontier = vec![root.id];
    while !frontier.is_empty() {
        let children = tag::Entity::find()
            .filter(tag::Column::WorkspaceId.eq(workspace_id))
            .filter(tag::Column::DeletedAt.is_null())
            .filter(tag::Column::ParentId.is_in(frontier.clone()))
            .all(db)
            .await?;
        frontier = children.iter().map(|c| c.id).collect();
        found.extend(children);
    }
    Ok(found)
}
