// Import: a CSV or Excel (.xlsx) file of users or accounts, dropped or
// chosen, sent to POST /import/{users|accounts} (the API's upload route):
// first a dry run (every row checked, nothing written), then the import.

import { h, show, errorBox, guarded, session, ApiError } from './api.js';

const c = (text) => h('code', {}, text);

/** Sends `file` to the upload route; the answer, or an ApiError with the API's message and code. */
async function send(kind, file, dryRun) {
  const form = new FormData();
  form.append('file', file, file.name);
  let response;
  try {
    response = await fetch(`/import/${kind}${dryRun ? '?dryRun=true' : ''}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${session.key() ?? ''}` },
      body: form,
    });
  } catch (error) {
    throw new ApiError([{ message: `the server could not be reached: ${error.message}`, extensions: { code: 'NETWORK' } }]);
  }
  const body = await response.json().catch(() => null);
  if (!body) throw new ApiError([{ message: `HTTP ${response.status} without a JSON answer`, extensions: { code: 'HTTP' } }]);
  if (body.errors && !response.ok) throw new ApiError(body.errors);
  return body;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

function resultView(r) {
  const verbs = r.dryRun ? ['would be created', 'would be updated'] : ['created', 'updated'];
  return [
    h(`p.${r.dryRun ? 'muted' : 'ok'}`, { id: r.dryRun ? 'import-dry-counts' : 'import-counts' },
      r.dryRun ? 'Dry run, nothing written: ' : 'Imported: ',
      `${r.rows} rows read, ${r.created} ${verbs[0]}, ${r.updated} ${verbs[1]}, `,
      r.dryRun ? '' : `${plural(r.tagsApplied, 'tag')} applied, `,
      `${plural(r.errors.length, 'line')} skipped.`),
    r.errors.length ? h('table.import-errors', {}, h('tr', {}, h('th', {}, 'line'), h('th', {}, 'why it is skipped')),
      r.errors.map((e) => h('tr', {}, h('td', {}, e.line), h('td', {}, e.message)))) : null,
  ];
}

export function importTab(pane) {
  const kind = h('select', { id: 'import-kind', 'aria-label': 'Import what' }, h('option', { value: 'users' }, 'users'), h('option', { value: 'accounts' }, 'accounts'));
  const chooser = h('input', { type: 'file', id: 'import-file', accept: '.csv,.tsv,.xlsx,text/csv', 'aria-label': 'CSV or Excel file' });
  const chosen = h('p.muted', {}, 'No file yet.');
  const dryResult = h('div', { id: 'import-dry-result' });
  const result = h('div', { id: 'import-result' });
  let file = null;

  const run = async (dryRun, into) => {
    if (!file) return show(into, h('p.bad', {}, 'Choose a file first.'));
    show(into, h('p.muted', {}, dryRun ? 'checking every row…' : 'importing…'));
    try {
      show(into, resultView(await send(kind.value, file, dryRun)));
      if (dryRun) go.disabled = !can;
    } catch (error) {
      show(into, errorBox(error));
    }
  };
  const dry = guarded('DEVELOPER', h('button', { type: 'button', id: 'dry-run-import', onclick: () => run(true, dryResult) }, 'Dry run'));
  const go = guarded('DEVELOPER', h('button.primary', { type: 'button', id: 'run-import', onclick: () => run(false, result) }, 'Import'));
  const can = !dry.disabled;
  go.disabled = true;

  const pick = (f) => {
    file = f;
    show(chosen, f ? `${f.name}, ${f.size.toLocaleString()} bytes` : 'No file yet.');
    show(dryResult);
    show(result);
    go.disabled = true;
    if (f && can) run(true, dryResult);
  };
  chooser.addEventListener('change', () => pick(chooser.files[0] ?? null));
  kind.addEventListener('change', () => pick(file));
  const drop = h('div.drop', { id: 'import-drop' }, 'Drop a CSV or Excel file here, or choose one: ', chooser);
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    pick(e.dataTransfer.files[0] ?? null);
  });

  show(pane, h('div.card', {},
    h('h2', {}, 'Import'),
    h('p', {}, 'A CSV or Excel (.xlsx, first sheet) file with a header row: for users ', c('email'), ' (required), ', c('first_name'), ', ', c('last_name'), ', ',
      c('external_id'), ', ', c('account_external_id'), ', ', c('account_name'), ', ', c('tags'), ' (separated by ;) and any other column as the tag ',
      c('Column: value'), '; for accounts ', c('external_id'), ' and/or ', c('name'), ', ', c('tags'), ' and other columns as tags.'),
    h('p.muted', {}, 'A chosen file is first checked with a dry run (nothing written); Import then writes it: rows are upserted, tags only added, and automation runs on them. The request body limit bounds the file; large files go through ',
      c('tagsmith import'), '.'),
    h('div.row', {}, 'Import', kind), drop, chosen, h('div.row', {}, dry, go), dryResult, result));
}
