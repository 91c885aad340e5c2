// The hand-written node + pg floor of the benchmark (issue 20's table): the
// list and the user by id of `compare`, read from the benchmark's
// PostgreSQL database with the `pg` driver (the one PostGraphile 4 installs
// here) behind `node:http`, as a person would write them: the same two
// statements as the sqlx baseline (benches/tagsmith/handwritten.rs), each a
// named (prepared) statement, a pool of 16 connections as the server's, the
// same JSON answer. No authentication: a floor, not a rival.
//
//     node pg-reader.mjs DATABASE_URL PORT
//
// POST /list {"first": N} and POST /user {"id": N}.
import pg from "pg";

import { WORKSPACE, serve, tagsSql, usersJson } from "../node-readers/common.mjs";

const [url, port] = process.argv.slice(2);
const pool = new pg.Pool({ connectionString: url, max: 16 });

const USERS =
  "SELECT u.id, u.email, a.name AS account FROM users u " +
  "LEFT JOIN accounts a ON a.id = u.account_id WHERE u.workspace_id = $1";
const LIST = `${USERS} ORDER BY u.id LIMIT $2`;
const ONE = `${USERS} AND u.id = $2`;

// One named statement per number of ids (a page has at most 100).
async function users(rows) {
  if (!rows.length) return [];
  const ids = rows.map((r) => r.id);
  const { rows: tags } = await pool.query({
    name: `tags_${ids.length}`,
    text: tagsSql(ids.map((_, i) => `$${i + 1}`).join(", ")),
    values: ids,
  });
  return usersJson(rows, tags);
}

serve(
  {
    "/list": async (body) => {
      const { rows } = await pool.query({ name: "list", text: LIST, values: [WORKSPACE, body.first] });
      return { data: { users: { nodes: await users(rows) } } };
    },
    "/user": async (body) => {
      const { rows } = await pool.query({ name: "one", text: ONE, values: [WORKSPACE, body.id] });
      return { data: { user: (await users(rows))[0] ?? null } };
    },
  },
  port,
);
