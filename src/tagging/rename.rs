//! Renaming a tag keeps its assignments and history; renaming `a` renames
//! its descendants `a/...` too.

use entity::tag;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    IntoActiveModel, QueryFilter, Set,
};

use crate::tags::name::TagName;
use crate::tags::{TagError, store};

/// A rename done: the renamed tag, and every name it changed (the tag's and
/// its descendants'), old and new.
#[derive(Debug, Clone)]
pub struct Renamed {
    pub tag: tag::Model,
    pub names: Vec<(String, String)>,
}

/// Renames `old` (and its descendants) to `new`, inside `txn` (the caller
/// rewrites references and re-evaluates segments in the same transaction:
/// `app::references::rename_tag`). Renaming onto an existing name is a
/// conflict (merge instead); renaming into its own subtree is refused.
pub async fn rename(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    old: &str,
    new: &str,
) -> Result<Renamed, TagError> {
    let rules = store::rules(txn, workspace_id).await?;
    let new = TagName::parse(new, rules)
        .map_err(|e| TagError::InvalidNames(format!("tag {:?} {e}", new.trim())))?;
    let root = store::get_live(txn, workspace_id, old).await?;
    if root.name == new.as_str() {
        return Ok(Renamed {
            tag: root,
            names: Vec::new(),
        });
    }
    if new.as_str().starts_with(&format!("{}/", root.name)) {
        return Err(TagError::Invalid(format!(
            "cannot rename {:?} into its own descendant {:?}",
            root.name,
            new.as_str()
        )));
    }
    let descendants = descendants(txn, workspace_id, &root).await?;
    let mut renames: Vec<(tag::Model, TagName)> = vec![(root.clone(), new.clone())];
    for tag in descendants {
        let renamed = format!("{}{}", new.as_str(), &tag.name[root.name.len()..]);
        let name = TagName::parse(&renamed, rules)
            .map_err(|e| TagError::InvalidNames(format!("tag {renamed:?} {e}")))?;
        renames.push((tag, name));
    }
    let new_names: Vec<String> = renames.iter().map(|(_, n)| n.as_str().to_owned()).collect();
    if let Some(taken) = store::find_live_by_names(txn, workspace_id, &new_names)
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
            store::ensure(txn, workspace_id, &[parent])
                .await?
                .first()
                .map(|p| p.id)
        }
        None => None,
    };
    let mut renamed_root = None;
    let mut names = Vec::with_capacity(renames.len());
    for (tag, name) in renames {
        names.push((tag.name.clone(), name.as_str().to_owned()));
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
        let updated = active.update(txn).await?;
        if is_root {
            renamed_root = Some(updated);
        }
    }
    let tag = renamed_root.ok_or_else(|| TagError::NotFound(old.to_owned()))?;
    Ok(Renamed { tag, names })
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
