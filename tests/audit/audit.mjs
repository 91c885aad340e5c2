// Runs every server audit of the `graphql-http` package (the GraphQL over
// HTTP spec's conformance suite) against a running tagsmith and prints a
// JSON summary on standard output.
//
//   node tests/audit/audit.mjs URL [KEY]
//
// URL is the GraphQL endpoint (http://127.0.0.1:8080/graphql); KEY, when
// given, is sent on every request as `Authorization: Bearer KEY`.
//
// Exit status: 0 when every MUST passes, 1 when a MUST fails, 2 when the
// audits could not run (bad arguments, server unreachable).

import { serverAudits } from 'graphql-http';

const [url, key] = process.argv.slice(2);
if (!url) {
  console.error('usage: node audit.mjs URL [KEY]');
  process.exit(2);
}

/** `fetch` with the API key added to every request. */
async function fetchWithKey(input, init = {}) {
  const headers = new Headers(init.headers);
  if (key) headers.set('authorization', `Bearer ${key}`);
  return fetch(input, { ...init, headers });
}

/** MUST, SHOULD or MAY: the first word of the audit's name. */
function level(name) {
  return name.split(' ', 1)[0];
}

/** The start of a failed audit's response body, when it is still unread. */
async function bodyOf(response) {
  try {
    const text = await response.clone().text();
    return text.length > 300 ? `${text.slice(0, 300)}...` : text;
  } catch {
    return undefined;
  }
}

const audits = [];
for (const { id, name, fn } of serverAudits({ url, fetchFn: fetchWithKey })) {
  let result;
  try {
    result = await fn();
  } catch (error) {
    // graphql-http treats anything but an assertion failure as fatal.
    console.error(`audit ${id} (${name}) could not run: ${error?.stack ?? error}`);
    process.exit(2);
  }
  const entry = { id, name, level: level(name), ok: result.status === 'ok' };
  if (!entry.ok) {
    entry.reason = result.reason;
    entry.status = result.response?.status;
    entry.body = await bodyOf(result.response);
  }
  audits.push(entry);
}

const summary = {};
for (const { level: l, ok } of audits) {
  summary[l] ??= { ok: 0, failed: 0 };
  summary[l][ok ? 'ok' : 'failed'] += 1;
}
console.log(JSON.stringify({ url, total: audits.length, summary, audits }, null, 2));
process.exit(audits.some((a) => a.level === 'MUST' && !a.ok) ? 1 : 0);
