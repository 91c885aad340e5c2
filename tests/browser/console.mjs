// Uses the console (/console) as an admin would, in headless Chromium driven
// by puppeteer-core, against a running tagsmith:
//
//   node tests/browser/console.mjs BASE_URL ADMIN_KEY VIEWER_KEY BOB_ID HOOK_URL SCREENSHOT_DIR
//
// It signs in with a wrong key, then the ADMIN key; in Scripts it types a
// script with a syntax error into the editor (CodeMirror) and reads where
// the error is marked, fixes it, tests it on ada@example.com, uploads it
// and reads the list, disables and enables it, tags Bob (BOB_ID) through
// the API and waits for the script's run to appear in the page, then types
// an edit and reads the diff; in Segments it types a filter and reads the live count, saves the
// segment with an entry trigger, makes Carol enter it through the API and
// reads the chart of entries per day, and explains ada's membership; in
// Tags it searches and opens a tag's usage, then renames the tag; in
// Webhooks it creates one to HOOK_URL for the tag "Webhook Test", reads
// the secret shown once, tags Bob with it through the API, waits for the
// delivery and redelivers it; in Import it chooses
// tests/fixtures/learning.xlsx, reads the dry run, and imports it. Then,
// in a fresh browser context, it signs in with the VIEWER key and reads
// whether upload is disabled. It prints one JSON object on standard
// output, for tests/api/browser.rs to check, and saves a screenshot of
// each step in SCREENSHOT_DIR.
//
// CHROMIUM names the browser (default /usr/bin/chromium). Exit status: 0 when
// every step could run (the caller checks what was seen), 2 when a step could
// not (the error is on standard error, with the steps done so far).

import fs from 'node:fs';
import path from 'node:path';
import { launch, report } from './chromium.mjs';

const [base, adminKey, viewerKey, bobId, hookUrl, shots] = process.argv.slice(2);
if (!base || !adminKey || !viewerKey || !bobId || !hookUrl || !shots) {
  console.error('usage: node console.mjs BASE_URL ADMIN_KEY VIEWER_KEY BOB_ID HOOK_URL SCREENSHOT_DIR');
  process.exit(2);
}
fs.mkdirSync(shots, { recursive: true });

const BROKEN = `fn on_tag_added(event) {
    let s = event.subject;
    let x = ;
}
`;
const FIXED = `fn on_tag_added(event) {
    let s = event.subject;
    if event.tag == "Webinar Attendee" {
        s.add_tag("Qualified Lead");
        log("qualified " + s.email);
    }
}
`;

const seen = { steps: [], consoleErrors: [], failedLoads: [], otherHosts: [] };
const step = (name, detail = {}) => seen.steps.push({ name, ...detail });

const browser = await launch();

const watch = (page) => {
  page.setDefaultTimeout(20_000);
  page.on('console', (message) => {
    if (message.type() === 'error') seen.consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => seen.consoleErrors.push(String(error)));
  page.on('request', (request) => {
    if (!request.url().startsWith(base) && !request.url().startsWith('data:')) seen.otherHosts.push(request.url());
  });
  page.on('response', (response) => {
    // A wrong key is refused with 401 on purpose; anything else failing is a fault.
    if (response.status() >= 400 && !response.url().endsWith('/graphql')) {
      seen.failedLoads.push(`${response.status()} ${response.url()}`);
    }
  });
};

// The API itself, with the ADMIN key: what the page shows is checked against it at the same moment.
const api = (query, variables = {}) => fetch(`${base}/graphql`, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${adminKey}` },
  body: JSON.stringify({ query, variables }),
}).then((r) => r.json());
const PREVIEW = 'query($f: String!) { previewSegment(subjectKind: USER, filter: $f) { count } }';

const text = (page, selector) => page.$eval(selector, (el) => el.textContent.trim());
const texts = (page, selector) => page.$$eval(selector, (els) => els.map((el) => el.textContent.trim()));

async function replaceText(page, selector, value) {
  await page.click(selector);
  await page.keyboard.down('Control');
  await page.keyboard.press('KeyA');
  await page.keyboard.up('Control');
  await page.keyboard.press('Backspace');
  await page.keyboard.type(value);
}

/** Replaces the text of the CodeMirror editor `selector`: select all, delete, then the text as one input (as a paste). */
async function replaceCode(page, selector, value) {
  await page.click(`${selector} .cm-content`);
  await page.keyboard.down('Control');
  await page.keyboard.press('KeyA');
  await page.keyboard.up('Control');
  await page.keyboard.press('Backspace');
  await page.evaluate((text) => document.execCommand('insertText', false, text), value);
}

/** Where the editor `selector` marks its error: the lines (1-based) of the lint range and of the gutter marker. */
const markedLines = (page, selector) => page.$eval(selector, (editor) => {
  const lines = [...editor.querySelectorAll('.cm-line')];
  const range = lines.findIndex((line) => line.querySelector('.cm-lintRange-error, .cm-lintPoint-error')) + 1;
  const marker = editor.querySelector('.cm-lint-marker-error')?.closest('.cm-gutterElement');
  const top = marker?.getBoundingClientRect().top;
  const gutter = marker ? lines.findIndex((line) => Math.abs(line.getBoundingClientRect().top - top) < 3) + 1 : 0;
  return { range, gutter };
});

/** Clicks `refresh` until `selector` matches (the worker or the dispatcher is asynchronous). */
async function until(page, selector, refresh) {
  for (let i = 0; i < 60 && !(await page.$(selector)); i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    await refresh();
  }
  return page.waitForSelector(selector);
}

async function signIn(page, key) {
  await page.goto(`${base}/console`, { waitUntil: 'networkidle0' });
  await page.waitForSelector('#key-input', { visible: true });
  await page.type('#key-input', key);
  await page.click('#login-form button[type="submit"]');
}

await report(browser, seen, async () => {
  const page = await browser.newPage();
  watch(page);
  const shot = (name) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

  // A wrong key: the API's message and code.
  await signIn(page, 'tsk_not_a_key');
  await page.waitForSelector('#login-error .error');
  step('wrong key', { error: await text(page, '#login-error .error') });

  // The ADMIN key.
  await page.type('#key-input', adminKey);
  await page.click('#login-form button[type="submit"]');
  await page.waitForSelector('#viewer:not([hidden])');
  step('signed in', {
    role: await text(page, '#viewer-role'),
    keyName: await text(page, '#viewer-key'),
    workspace: await text(page, '#viewer-workspace'),
    url: page.url(),
    stored: await page.evaluate(() => sessionStorage.getItem('tagsmith.console.key')),
    local: await page.evaluate(() => Object.keys(localStorage).length),
  });

  // Scripts: a syntax error, marked where checkScript says.
  await page.click('#tab-scripts');
  await page.waitForSelector('#script-source .cm-content');
  await replaceText(page, '#script-name', 'webinar');
  await replaceCode(page, '#script-source', BROKEN);
  await page.waitForSelector('#script-source .cm-lint-marker-error');
  await page.waitForSelector('#script-source .cm-lintRange-error');
  const marked = await markedLines(page, '#script-source');
  step('syntax error marked', {
    source: await page.$eval('#script-source', (el) => el.value),
    gutterLine: marked.gutter,
    line: await page.$eval('#script-source', (el) => Number(el.dataset.errorLine)),
    column: await page.$eval('#script-source', (el) => Number(el.dataset.errorColumn)),
    message: await text(page, '#pane-scripts .diagnostic'),
    highlightedLine: marked.range,
    // The column of the marked range in its line (1-based), as CodeMirror shows it.
    rangeColumn: await page.$eval('#script-source', (editor) => {
      const line = [...editor.querySelectorAll('.cm-line')].find((l) => l.querySelector('.cm-lintRange-error'));
      const range = document.createRange();
      range.setStart(line, 0);
      range.setEndBefore(line.querySelector('.cm-lintRange-error'));
      return range.toString().length + 1;
    }),
  });
  await shot('console-1-script-error');

  // Fixed: the mark goes.
  await replaceCode(page, '#script-source', FIXED);
  await page.waitForFunction(() => document.querySelector('#pane-scripts .diagnostic.good')?.textContent === 'compiles');
  step('fixed', {
    source: await page.$eval('#script-source', (el) => el.value),
    marked: await page.$$eval('#script-source .cm-lint-marker-error, #script-source .cm-lintRange-error', (els) => els.length),
    keywords: await texts(page, '#script-source .tok-keyword'),
    strings: await texts(page, '#script-source .tok-string'),
    lineNumbers: await texts(page, '#script-source .cm-lineNumbers .cm-gutterElement'),
  });

  // A dry run on Ada.
  await page.type('#test-subject', 'ada@example.com');
  await page.select('#test-event', 'TAG_ADDED');
  await page.type('#test-tag', 'Webinar Attendee');
  await page.click('#run-test');
  await page.waitForSelector('#test-result .test-view');
  step('tested', {
    ok: await page.$eval('#test-result .test-view', (el) => el.dataset.ok),
    actions: await texts(page, '#test-result .actions li'),
    logs: await text(page, '#test-result').then((t) => t),
  });
  await shot('console-2-script-test');

  // Upload: version 1 appears in the list, enabled.
  await page.click('#upload-script');
  await page.waitForSelector('#upload-result .ok');
  await page.waitForSelector('#scripts-table tr[data-script="webinar"]');
  step('uploaded', {
    result: await text(page, '#upload-result'),
    version: await text(page, '#scripts-table tr[data-script="webinar"] .version'),
    enabled: await text(page, '#scripts-table tr[data-script="webinar"] .enabled'),
  });

  // Disabled, then enabled again from the list.
  const toggle = async (label) => {
    await page.click('#scripts-table tr[data-script="webinar"] button');
    await page.waitForFunction((want) => document.querySelector('#scripts-table tr[data-script="webinar"] .enabled')?.textContent === want, {}, label);
    return (await api('{ scripts { enabled } }')).data.scripts[0].enabled;
  };
  step('toggled', { disabled: await toggle('no'), enabled: await toggle('yes') });

  // Bob is tagged through the API; the enabled script runs for him and the run appears.
  const tagged = await api(
    'mutation($id: ID!) { addTags(subjectId: $id, tags: ["Webinar Attendee"]) { __typename } }',
    { id: bobId },
  );
  await page.click('#scripts-table tr[data-script="webinar"] a');
  await page.waitForSelector('#script-runs h3');
  await until(page, '#script-runs tr.run', () => page.click('#refresh-runs').then(() => page.waitForSelector('#script-runs h3')));
  step('run appeared', {
    tagged,
    runs: await page.$$eval('#script-runs tr.run', (rows) => rows.map((row) => [...row.cells].map((c) => c.textContent.trim()))),
  });

  // An edit typed key by key into CodeMirror: the difference from version 1.
  await page.click('#script-source .cm-content');
  await page.keyboard.down('Control');
  await page.keyboard.press('End');
  await page.keyboard.up('Control');
  await page.keyboard.type('// version 2\n');
  await page.waitForSelector('#script-diff .diff-line.add');
  step('diff', {
    heading: await text(page, '#script-diff h4'),
    added: await texts(page, '#script-diff .diff-line.add'),
    removed: await texts(page, '#script-diff .diff-line.del'),
  });
  await shot('console-3-script-uploaded-and-diff');

  // Segments: a live count as the filter is typed, then saved.
  await page.click('#tab-segments');
  await page.waitForSelector('#segment-filter .cm-content');
  await replaceText(page, '#segment-name', 'Webinar people');
  await replaceCode(page, '#segment-filter', 'tagged("Webinar Attendee") and');
  await page.waitForSelector('#segment-filter .cm-lint-marker-error');
  step('filter error', {
    line: await page.$eval('#segment-filter', (el) => Number(el.dataset.errorLine)),
    column: await page.$eval('#segment-filter', (el) => Number(el.dataset.errorColumn)),
    marked: await markedLines(page, '#segment-filter'),
    message: await text(page, '#pane-segments .diagnostic'),
    api: await api(PREVIEW, { f: await page.$eval('#segment-filter', (el) => el.value) }),
  });
  await page.keyboard.type(' email contains "example"');
  await page.waitForFunction(() => document.querySelector('#pane-segments .diagnostic.good') && document.querySelector('#live-count'));
  step('live count', {
    filter: await page.$eval('#segment-filter', (el) => el.value),
    count: Number(await text(page, '#live-count')),
    sample: await texts(page, '#segment-preview .sample li'),
    api: await api(PREVIEW, { f: await page.$eval('#segment-filter', (el) => el.value) }),
  });
  await shot('console-4-segment-live-count');
  // With a trigger: entries and exits are then recorded (and charted).
  await page.type('#segment-entry-add', 'Follow Up');
  await page.click('#save-segment');
  await page.waitForSelector('#segments-table tr[data-segment="Webinar people"]');
  await page.waitForSelector('#segment-save-result .ok');
  step('segment saved', {
    members: Number(await text(page, '#segments-table tr[data-segment="Webinar people"] .members')),
    result: await text(page, '#segment-save-result'),
    api: await api('{ segments { id name memberCount tracked onEntry { add { name } } } }'),
  });

  // Carol enters through the API; the chart of entries per day shows it.
  const carol = await api('mutation { upsertUser(input: { email: "carol@example.com" }) { id } }');
  const carolTagged = await api(
    'mutation($id: ID!) { addTags(subjectId: $id, tags: ["Webinar Attendee"]) { __typename } }',
    { id: carol.data.upsertUser.id },
  );
  const openSegment = () => page.click('#segments-table tr[data-segment="Webinar people"] a');
  await until(page, '#segment-activity .day[data-entered="1"]', openSegment);
  const { data: { segments: [saved] } } = await api('{ segments { id } }');
  step('activity', {
    carolTagged,
    days: await page.$$eval('#segment-activity .day', (els) => els.map((el) => ({
      date: el.dataset.date, entered: Number(el.dataset.entered), exited: Number(el.dataset.exited),
    }))),
    bars: await page.$$eval('#segment-activity rect.entered', (els) => els.map((el) => el.closest('.day').dataset.date)),
    summary: await text(page, '#activity-summary'),
    api: await api('query($id: ID!) { segmentActivity(segmentId: $id) { date entered exited } }', { id: saved.id }),
  });
  await shot('console-4b-segment-activity');

  // The saved segment, edited: what saving would do.
  await replaceCode(page, '#segment-filter', 'email contains "example"');
  await page.waitForSelector('#change-summary');
  step('change preview', {
    summary: await text(page, '#change-summary'),
    api: await api(
      '{ segments { id } }',
    ).then(({ data }) => api(
      'query($id: ID!, $f: String!) { previewSegmentChange(id: $id, filter: $f) { entering exiting staying } }',
      { id: data.segments[0].id, f: 'email contains "example"' },
    )),
  });

  await page.type('#explain-subject', 'ada@example.com');
  await page.click('#explain');
  await page.waitForSelector('#explain-result .trace');
  step('explained', {
    verdict: await text(page, '#explain-result p'),
    parts: await texts(page, '#explain-result .trace li > code'),
  });
  await shot('console-5-segment-explained');

  // Tags: search, then a tag's usage.
  await page.click('#tab-tags');
  await page.type('#tag-search', 'webinar');
  await page.waitForSelector('#tag-catalogue tr[data-tag="Webinar Attendee"] a');
  step('tag search', { rows: await page.$$eval('#tag-catalogue tr[data-tag]', (els) => els.map((el) => el.dataset.tag)) });
  await page.click('#tag-catalogue tr[data-tag="Webinar Attendee"] a');
  await page.waitForSelector('#tag-usage');
  step('tag usage', {
    segments: await texts(page, '#tag-usage .usage-segments li strong'),
    scripts: await texts(page, '#tag-usage .usage-scripts li'),
  });
  await shot('console-6-tag-usage');

  // Renamed: what the rename rewrote, and the script to edit.
  await page.type('#tag-new-name', 'Webinar 2026 Attendee');
  await page.click('#rename-tag');
  await page.waitForSelector('#tag-rewrite');
  step('tag renamed', {
    result: await text(page, '#tag-action-result p'),
    rewritten: await texts(page, '#tag-rewrite li.rewritten'),
    toEdit: await texts(page, '#tag-rewrite li.to-edit'),
  });
  await shot('console-7-tag-renamed');

  // Webhooks: one created (its secret shown once), a delivery seen, then redelivered.
  await page.click('#tab-webhooks');
  await page.type('#webhook-url', hookUrl);
  await page.type('#webhook-tags', 'Webhook Test');
  await page.click('#create-webhook');
  await page.waitForSelector('#webhook-secret');
  await page.waitForSelector(`#webhooks-table tr[data-webhook="${hookUrl}"]`);
  step('webhook created', {
    secret: await text(page, '#webhook-secret'),
    notice: await text(page, '#webhook-created p'),
    row: await page.$eval(`#webhooks-table tr[data-webhook="${hookUrl}"]`, (row) => [...row.cells].map((c) => c.textContent.trim())),
  });
  await shot('console-8-webhook-secret');
  await page.click('#webhook-created .secret-box button:last-child');
  const secretsLeft = await page.$$eval('#webhook-secret', (els) => els.length);
  const hookTagged = await api(
    'mutation($id: ID!) { addTags(subjectId: $id, tags: ["Webhook Test"]) { __typename } }',
    { id: bobId },
  );
  await page.click(`#webhooks-table tr[data-webhook="${hookUrl}"] a`);
  await page.waitForSelector('#webhook-deliveries h3');
  const refreshDeliveries = () => page.click('#refresh-deliveries').then(() => page.waitForSelector('#webhook-deliveries h3'));
  await until(page, '#webhook-deliveries tr.delivery[data-status="SUCCEEDED"]', refreshDeliveries);
  const deliveryRows = () => page.$$eval('#webhook-deliveries tr.delivery', (rows) => rows.map((row) => ({
    event: row.querySelector('.event').textContent,
    status: row.querySelector('.status').textContent,
    attempts: Number(row.querySelector('.attempts').textContent),
  })));
  step('delivered', { secretsLeft, hookTagged, rows: await deliveryRows() });
  await page.click('#webhook-deliveries tr.delivery .redeliver');
  await page.waitForSelector('#redeliver-result .ok');
  const queued = await text(page, '#redeliver-result');
  for (let i = 0; i < 60 && (await deliveryRows())[0]?.attempts !== 2; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    await refreshDeliveries();
  }
  step('redelivered', {
    queued,
    rows: await deliveryRows(),
    api: await api('{ webhooks { deliveries { nodes { eventType status attempts } } } }'),
  });
  await shot('console-8b-webhook-deliveries');

  // Import: an Excel file chosen on the page; the dry run first, then the import.
  await page.click('#tab-import');
  const xlsx = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'fixtures', 'learning.xlsx');
  const chooser = await page.waitForSelector('#import-file');
  await chooser.uploadFile(xlsx);
  await page.waitForSelector('#import-dry-counts');
  const dryRun = await text(page, '#import-dry-counts');
  const dryErrors = await page.$$eval('#import-dry-result .import-errors tr', (rows) => rows.slice(1).map((row) => [...row.cells].map((c) => c.textContent.trim())));
  const usersAfterDryRun = await api('{ users(search: "learn.io") { totalCount } }');
  await page.click('#run-import');
  await page.waitForSelector('#import-counts');
  step('imported', {
    dryRun,
    dryErrors,
    usersAfterDryRun,
    counts: await text(page, '#import-counts'),
    users: await api('{ users(search: "learn.io") { nodes { email tags { name } } } }'),
  });
  await shot('console-8c-import');

  // A VIEWER, in a context of its own (its own session storage).
  const context = await browser.createBrowserContext();
  const viewer = await context.newPage();
  watch(viewer);
  await signIn(viewer, viewerKey);
  await viewer.waitForSelector('#viewer:not([hidden])');
  await viewer.click('#tab-scripts');
  await viewer.waitForSelector('#scripts-table tr[data-script="webinar"]');
  step('viewer', {
    role: await text(viewer, '#viewer-role'),
    scripts: await viewer.$$eval('#scripts-table tr[data-script]', (els) => els.map((el) => el.dataset.script)),
    uploadDisabled: await viewer.$eval('#upload-script', (el) => el.disabled),
    testDisabled: await viewer.$eval('#run-test', (el) => el.disabled),
    toggleDisabled: await viewer.$eval('#scripts-table tr[data-script="webinar"] button', (el) => el.disabled),
    readOnly: await viewer.$eval('#script-source .cm-content', (el) => el.contentEditable === 'false'),
    webhooks: await viewer.click('#tab-webhooks').then(() => text(viewer, '#webhooks-forbidden')),
  });
  await viewer.screenshot({ path: path.join(shots, 'console-9-viewer.png'), fullPage: true });
});
