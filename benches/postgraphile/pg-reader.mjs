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
import http from "node:http";
import pg from "pg";

const [url, port] = process.argv.slice(2);
const pool = new pg.Pool({ connectionString: url, max: 16 });

const WORKSPACE = 1;
const USERS =
  "SELECT u.id, u.email, a.name AS account FROM users u " +
  "LEFT JOIN accounts a ON a.id = u.account_id WHERE u.workspace_id = $1";
const LIST = `${USERS} ORDER BY u.id LIMIT $2`;
const ONE = `${USERS} AND u.id = $2`;

// One named statement per number of ids (a page has at most 100).
function tagsQuery(ids) {
  const marks = ids.map((_, i) => `$${i + 1}`).join(", ");
  return {
    name: `tags_${ids.length}`,
    text:
      "SELECT ta.subject_id, t.name FROM tag_assignments ta JOIN tags t ON t.id = ta.tag_id " +
      `WHERE ta.subject_kind = 'USER' AND ta.subject_id IN (${marks}) AND t.deleted_at IS NULL ` +
      "ORDER BY ta.subject_id, t.name",
    values: ids,
  };
}

const globalId = (kind, id) => Buffer.from(`${kind}:${id}`).toString("base64url");

async function users(rows) {
  const tags = new Map();
  if (rows.length) {
    const { rows: found } = await pool.query(tagsQuery(rows.map((r) => r.id)));
    for (const row of found) {
      let names = tags.get(row.subject_id);
      if (!names) tags.set(row.subject_id, (names = []));
      names.push({ name: row.name });
    }
  }
  return rows.map((r) => ({
    id: globalId("User", r.id),
    email: r.email,
    tags: tags.get(r.id) ?? [],
    account: r.account === null ? null : { name: r.account },
  }));
}

const routes = {
  "/list": async (body) => {
    const { rows } = await pool.query({ name: "list", text: LIST, values: [WORKSPACE, body.first] });
    return { data: { users: { nodes: await users(rows) } } };
  },
  "/user": async (body) => {
    const { rows } = await pool.query({ name: "one", text: ONE, values: [WORKSPACE, body.id] });
    return { data: { user: (await users(rows))[0] ?? null } };
  },
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
    req.on("end", async () => {
      let answer;
      try {
        answer = JSON.stringify(await route(JSON.parse(Buffer.concat(chunks))));
      } catch (e) {
        res.writeHead(500, { "content-type": "text/plain" }).end(String(e));
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(answer);
    });
  })
  .listen(Number(port), "127.0.0.1");
