//! SeaORM entities of tagsmith: table definitions only, no business logic.
//! Every table but `workspaces` carries `workspace_id`.

pub mod account;
pub mod api_key;
pub mod automation_event;
pub mod event;
pub mod script;
pub mod script_run;
pub mod segment;
pub mod segment_change;
pub mod segment_membership;
pub mod tag;
pub mod tag_assignment;
pub mod tag_change;
pub mod user;
pub mod vocab;
pub mod webhook;
pub mod webhook_delivery;
pub mod workspace;
