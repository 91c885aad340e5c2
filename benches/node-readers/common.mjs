// What the hand-written Node readers share (benches/sqlite-reader/serve.mjs
// and benches/postgraphile/pg-reader.mjs): the tags statement, the JSON of
// the users with their tags, and the HTTP server that answers their routes.
import http from "node:http";

/// The workspace every seeded row belongs to.
export const WORKSPACE = 1;

/// The tags of the users whose ids `marks` lists (placeholders), in name order.
export const tagsSql = (marks) =>
  "SELECT ta.subject_id, t.name FROM tag_assignments ta JOIN tags t ON t.id = ta.tag_id " +
  `WHERE ta.subject_kind = 'USER' AND ta.subject_id IN (${marks}) AND t.deleted_at IS NULL ` +
  "ORDER BY ta.subject_id, t.name";

const globalId = (kind, id) => Buffer.from(`${kind}:${id}`).toString("base64url");

/// The users of `rows` ({id, email, account}) as the GraphQL query selects
/// them, with their tags from `tagRows` ({subject_id, name}).
export function usersJson(rows, tagRows) {
  const tags = new Map();
  for (const row of tagRows) {
    let names = tags.get(row.subject_id);
    if (!names) tags.set(row.subject_id, (names = []));
    names.push({ name: row.name });
  }
  return rows.map((r) => ({
    id: globalId("User", r.id),
    email: r.email,
    tags: tags.get(r.id) ?? [],
    account: r.account === null ? null : { name: r.account },
  }));
}

/// Serves `routes` (path → function of the parsed body, its answer or a
/// promise of it) as POST routes on 127.0.0.1:`port`.
export function serve(routes, port) {
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
}
