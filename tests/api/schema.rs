//! schema.graphql is what the server prints: this fails when they drift.

#[test]
fn schema_graphql_is_up_to_date() {
    let printed = tagsmith::graphql::schema_sdl();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let stored = std::fs::read_to_string(path).unwrap_or_default();
    if stored != printed {
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(path, &printed).unwrap();
            return;
        }
        panic!(
            "schema.graphql is out of date: run `cargo run -- export-schema --output schema.graphql` \
             (or UPDATE_SCHEMA=1 cargo test) and commit it"
        );
    }
}
