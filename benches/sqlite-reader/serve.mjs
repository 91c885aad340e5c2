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
import http from "node:http";
import { DatabaseSync } from "node:sqlite";

const [file, port] = process.argv.slice(2);
const db = new DatabaseSync(file, { readOnly: true });
db.exec("PRAGMA busy_timeout = 30000");

const WORKSPACE = 1;
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
    const marks = ids.map(() => "?").join(", ");
    statement = db.prepare(
      "SELECT ta.subject_id, t.name FROM tag_assignments ta JOIN tags t ON t.id = ta.tag_id " +
        `WHERE ta.subject_kind = 'USER' AND ta.subject_id IN (${marks}) AND t.deleted_at IS NULL ` +
        "ORDER BY ta.subject_id, t.name",
    );
    tagStatements.set(ids.length, statement);
  }
  const tags = new Map();
  for (const row of statement.all(...ids)) {
    let names = tags.get(row.subject_id);
    if (!names) tags.set(row.subject_id, (names = []));
    names.push({ name: row.name });
  }
  return tags;
}

const globalId = (kind, id) => Buffer.from(`${kind}:${id}`).toString("base64url");

function users(rows) {
  const tags = rows.length ? tagsOf(rows.map((r) => r.id)) : new Map();
  return rows.map((r) => ({
    id: globalId("User", r.id),
    email: r.email,
    tags: tags.get(r.id) ?? [],
    account: r.account === null ? null : { name: r.account },
  }));
}

const routes = {
  "/list": (body) => ({ data: { users: { nodes: users(list.all(WORKSPACE, body.first)) } } }),
  "/user": (body) => ({ data: { user: users(one.all(WORKSPACE, body.id))[0] ?? null } }),
};

http
  .createServer((req, res) => {
    const route = routes[req.url];
    if (req.method !== "POST" || !route) {
      res.writeHead(404).end();
      return;
    }
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      let answer;
      try {
        answer = JSON.stringify(route(JSON.parse(Buffer.concat(chunks))));
      } catch (e) {
        res.writeHead(500, { "content-type": "text/plain" }).end(String(e));
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(answer);
    });
  })
  .listen(Number(port), "127.0.0.1");
