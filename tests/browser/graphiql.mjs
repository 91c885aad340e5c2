// Uses GraphiQL as a person would, in headless Chromium driven by
// puppeteer-core, against a running tagsmith:
//
//   node tests/browser/graphiql.mjs BASE_URL KEY SCREENSHOT_DIR
//
// It opens BASE_URL/, types KEY into the Headers tab, runs the sample query
// with the play button, opens the Docs explorer and its Query and Mutation
// types, types the start of a field in the editor and reads the completions,
// and saves a screenshot of each step in SCREENSHOT_DIR. It prints one JSON
// object on standard output: what it saw, for tests/api/browser.rs to check.
// It also reports every introspection document the page sent (verbatim) and
// whether its answer had errors.
//
// CHROMIUM names the browser (default /usr/bin/chromium). Exit status: 0 when
// every step could run (the caller checks what was seen), 2 when a step could
// not (the error is on standard error, with the steps done so far).

import fs from 'node:fs';
import path from 'node:path';
import { launch, report } from './chromium.mjs';

const [base, key, shots] = process.argv.slice(2);
if (!base || !key || !shots) {
  console.error('usage: node graphiql.mjs BASE_URL KEY SCREENSHOT_DIR');
  process.exit(2);
}
fs.mkdirSync(shots, { recursive: true });

const seen = { steps: [], introspection: [], consoleErrors: [], failedLoads: [] };
const step = (name, detail = {}) => seen.steps.push({ name, ...detail });

const browser = await launch();

await report(browser, seen, async () => {
  const page = await browser.newPage();
  page.setDefaultTimeout(20_000);
  page.on('console', (message) => {
    if (message.type() === 'error') seen.consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => seen.consoleErrors.push(String(error)));
  page.on('response', async (response) => {
    const request = response.request();
    if (response.status() >= 400) seen.failedLoads.push(`${response.status()} ${request.url()}`);
    if (request.method() !== 'POST' || !request.url().endsWith('/graphql')) return;
    let body;
    try {
      body = JSON.parse(request.postData() ?? '{}');
    } catch {
      return;
    }
    if (!/__schema|__type\b/.test(body.query ?? '')) return;
    let answer = {};
    try {
      answer = await response.json();
    } catch {
      // an answer that is not JSON counts as no data below
    }
    seen.introspection.push({
      operationName: body.operationName ?? null,
      query: body.query,
      status: response.status(),
      errors: answer.errors ?? null,
      types: answer.data?.__schema?.types?.length ?? 0,
    });
  });

  const shot = (name) => page.screenshot({ path: path.join(shots, `${name}.png`) });

  await page.goto(`${base}/`, { waitUntil: 'networkidle0' });
  await page.waitForSelector('.graphiql-container');
  step('opened', { title: await page.title() });

  // The Headers tab (open by default): replace its text with the key, by typing.
  const headerTab = await page.waitForSelector('xpath/.//button[normalize-space()="Headers"]');
  await headerTab.click();
  const headersEditor = await page.waitForSelector('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror');
  await headersEditor.click();
  await page.keyboard.down('Control');
  await page.keyboard.press('KeyA');
  await page.keyboard.up('Control');
  await page.keyboard.press('Backspace');
  await page.keyboard.type(`{"Authorization": "Bearer ${key}"}`);
  const headers = await page.evaluate(
    (el) => el.CodeMirror.getValue(),
    headersEditor,
  );
  step('headers typed', { headers });

  // Run the sample query with the play button; wait for its answer.
  await page.click('.graphiql-execute-button');
  await page.waitForFunction(
    () => /"(data|errors)"/.test(document.querySelector('.result-window .CodeMirror')?.CodeMirror?.getValue() ?? ''),
  );
  const result = await page.evaluate(
    () => document.querySelector('.result-window .CodeMirror').CodeMirror.getValue(),
  );
  step('ran the sample query', { result: JSON.parse(result) });
  await shot('graphiql-1-sample-query');

  // The Docs explorer: the root types, then the fields of Query and Mutation.
  await page.click('button[aria-label="Show Documentation Explorer"]');
  await page.waitForSelector('.graphiql-doc-explorer-root-type');
  const rootTypes = await page.$$eval('.graphiql-doc-explorer-root-type', (els) =>
    els.map((el) => el.textContent.trim()),
  );
  const docErrors = await page.$$eval('.graphiql-doc-explorer-error', (els) =>
    els.map((el) => el.textContent.trim()),
  );
  step('docs opened', { rootTypes, docErrors });
  await shot('graphiql-2-docs');

  const fieldsOf = async (typeName) => {
    await page.click(`xpath/.//a[contains(@class, "graphiql-doc-explorer-type-name") and normalize-space()="${typeName}"]`);
    await page.waitForFunction(
      (name) => document.querySelector('.graphiql-doc-explorer-title')?.textContent.trim() === name,
      {},
      typeName,
    );
    const fields = await page.$$eval('.graphiql-doc-explorer-field-name', (els) =>
      els.map((el) => el.textContent.trim()),
    );
    await shot(`graphiql-3-docs-${typeName.toLowerCase()}`);
    await page.click('.graphiql-doc-explorer-back');
    await page.waitForSelector('.graphiql-doc-explorer-root-type');
    return fields;
  };
  step('docs of Query', { fields: await fieldsOf('Query') });
  step('docs of Mutation', { fields: await fieldsOf('Mutation') });

  // Autocompletion: a new line inside the operation, the start of a field name.
  const queryEditor = await page.$('.graphiql-query-editor .CodeMirror');
  await page.evaluate((el) => {
    const cm = el.CodeMirror;
    cm.setValue('query Completion {\n  \n}\n');
    cm.focus();
    cm.setCursor({ line: 1, ch: 2 });
  }, queryEditor);
  await page.keyboard.type('us');
  await page.waitForSelector('.CodeMirror-hints li');
  const completions = await page.$$eval('.CodeMirror-hints li', (els) =>
    els.map((el) => el.textContent.trim()),
  );
  step('autocompletion', { typed: 'us', completions });
  await shot('graphiql-4-autocompletion');
});
