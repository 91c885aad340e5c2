// The hand-written SQLite floor of the benchmark (issue 20): the list and
// the user by id of `compare`, read from the benchmark's SQLite file with
// Node 22's built-in `node:sqlite` behind `node:http`, as a person would
// write them: the same two statements as the sqlx baseline
// (benches/tagsmith/handwritten.rs), statements prepared once, the same
// JSON answer. No dependencies (nothing to install).
//
//     node serve.mjs FILE PORT
//
// POST /list {"first": N} and POST /user {"id": N}.
import { DatabaseSync } from "node:sqlite";

import { WORKSPACE, serve, tagsSql, usersJson } from "../node-readers/common.mjs";

const [file, port] = process.argv.slice(2);
const db = new DatabaseSync(file, { readOnly: true });
db.exec("PRAGMA busy_timeout = 30000");

const USERS =
  "SELECT u.id, u.email, a.name AS account FROM users u " +
  "LEFT JOIN accounts a ON a.id = u.account_id WHERE u.workspace_id = ?";
const list = db.prepare(`${USERS} ORDER BY u.id LIMIT ?`);
const one = db.prepare(`${USERS} AND u.id = ?`);
// One statement per number of ids (a page has at most 100).
const tagStatements = new Map();
function tagsOf(ids) {
  let statement = tagStatements.get(ids.length);
  if (!statement) {
    statement = db.prepare(tagsSql(ids.map(() => "?").join(", ")));
    tagStatements.set(ids.length, statement);
  }
  return statement.all(...ids);
}

const users = (rows) => usersJson(rows, rows.length ? tagsOf(rows.map((r) => r.id)) : []);

serve(
  {
    "/list": (body) => ({ data: { users: { nodes: users(list.all(WORKSPACE, body.first)) } } }),
    "/user": (body) => ({ data: { user: users(one.all(WORKSPACE, body.id))[0] ?? null } }),
  },
  port,
);
