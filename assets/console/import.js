// Import: a CSV file of users or accounts, dropped or chosen, sent to
// importUsers / importAccounts; what the import did, line by line.

import { gql, h, show, errorBox, guarded } from './api.js';

const c = (text) => h('code', {}, text);

export function importTab(pane) {
  const kind = h('select', { id: 'import-kind', 'aria-label': 'Import what' }, h('option', { value: 'users' }, 'users'), h('option', { value: 'accounts' }, 'accounts'));
  const chooser = h('input', { type: 'file', id: 'import-file', accept: '.csv,text/csv', 'aria-label': 'CSV file' });
  const chosen = h('p.muted', {}, 'No file yet.');
  const result = h('div', { id: 'import-result' });
  let file = null;
  const pick = (f) => {
    file = f;
    show(chosen, f ? `${f.name}, ${f.size.toLocaleString()} bytes` : 'No file yet.');
    show(result);
  };
  chooser.addEventListener('change', () => pick(chooser.files[0] ?? null));
  const drop = h('div.drop', { id: 'import-drop' }, 'Drop a CSV file here, or choose one: ', chooser);
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    pick(e.dataTransfer.files[0] ?? null);
  });

  const go = guarded('DEVELOPER', h('button.primary', {
    type: 'button',
    id: 'run-import',
    onclick: async () => {
      if (!file) return show(result, h('p.bad', {}, 'Choose a file first.'));
      if (/\.xlsx$/i.test(file.name)) {
        return show(result, h('p.bad', {}, 'Excel files go in through the command line (`tagsmith import users FILE.xlsx`) for now; save the sheet as CSV to import it here.'));
      }
      show(result, h('p.muted', {}, 'importing…'));
      try {
        const csv = await file.text();
        const field = kind.value === 'users' ? 'importUsers' : 'importAccounts';
        const data = await gql(`mutation($csv: String!) { r: ${field}(csv: $csv) { created updated tagsApplied errors { line message } } }`, { csv });
        const r = data.r;
        show(result,
          h('p.ok', { id: 'import-counts' }, `${r.created} created, ${r.updated} updated, ${r.tagsApplied} tag${r.tagsApplied === 1 ? '' : 's'} applied, ${r.errors.length} line${r.errors.length === 1 ? '' : 's'} skipped.`),
          r.errors.length ? h('table.import-errors', {}, h('tr', {}, h('th', {}, 'line'), h('th', {}, 'why it was skipped')),
            r.errors.map((e) => h('tr', {}, h('td', {}, e.line), h('td', {}, e.message)))) : null);
      } catch (error) {
        show(result, errorBox(error));
      }
    },
  }, 'Import'));

  show(pane, h('div.card', {},
    h('h2', {}, 'Import'),
    h('p', {}, 'A CSV file with a header row: for users ', c('email'), ' (required), ', c('first_name'), ', ', c('last_name'), ', ',
      c('external_id'), ', ', c('account_external_id'), ', ', c('account_name'), ', ', c('tags'), ' (separated by ;) and any other column as the tag ',
      c('Column: value'), '; for accounts ', c('external_id'), ' and/or ', c('name'), ', ', c('tags'), ' and other columns as tags.'),
    h('p.warning', {}, 'The API has no dry run: Import writes at once (rows are upserted, tags are only added, and automation runs on them). For a dry run use ',
      c('tagsmith import users FILE --dry-run'), '. The request body limit bounds the file size; large files and Excel files go through the CLI.'),
    h('div.row', {}, 'Import', kind), drop, chosen, h('div.row', {}, go), result));
}
