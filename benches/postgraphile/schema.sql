-- What PostGraphile needs to serve tagsmith's tables for the benchmark,
-- applied by the harness (benches/tagsmith, `--postgraphile`) to its own
-- throwaway database only; tagsmith's migrations do not contain it.
--
-- Tag assignments are polymorphic (subject_kind, subject_id), so there is no
-- foreign key from an assignment to a user, and none to its tag either: the
-- server checks both itself. PostGraphile builds relations only from foreign
-- keys, so this view of the users' assignments declares both with smart
-- comments (no constraint is added): User gets `userTagsByUserId`, Tag gets
-- `userTagsByTagId` (and so `totalCount` per tag).
CREATE VIEW user_tags AS
  SELECT ta.subject_id AS user_id, ta.tag_id
  FROM tag_assignments ta
  WHERE ta.subject_kind = 'USER';

COMMENT ON VIEW user_tags IS E'@foreignKey (user_id) references users (id)\n@foreignKey (tag_id) references tags (id)';
