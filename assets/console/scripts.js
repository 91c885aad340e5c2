// Scripts: the list, an editor checked as you type, a dry run on a real
// subject, upload as a new version with its diff, enable/disable, runs.

import { gql, h, show, errorBox, debounce, guarded, can, findSubject, subjectLabel, SUBJECT_FIELDS, ApiError } from './api.js';
import { createEditor, diffView } from './editor.js';

const LIST = `query($since: DateTime!) { scripts { id name version enabled hooks source updatedAt
  failedRuns(since: $since) runs(first: 1) { totalCount nodes { ok at } } } }`;

const RUNS = `query($id: ID!) { script(id: $id) { runs(first: 50) { totalCount nodes {
  id scriptVersion event ok error logs durationMicros at
  subject { ${SUBJECT_FIELDS} } actions { op tag } attributeChanges { key value } } } } }`;

const EVENT_KINDS = ['TAG_ADDED', 'TAG_REMOVED', 'SEGMENT_ENTERED', 'SEGMENT_EXITED'];
const DAY_MS = 24 * 3600 * 1000;

const STARTER = `fn on_tag_added(event) {
    let s = event.subject;
    if event.tag == "Webinar Attendee" {
        log(\`\${s.email} attended\`);
    }
}
`;

export function scriptsTab(pane) {
  let scripts = [];
  const list = h('div.list');
  const listError = h('div');

  const nameInput = h('input', { type: 'text', placeholder: 'script name', 'aria-label': 'Script name', id: 'script-name' });
  const editor = createEditor({ mode: 'rhai', value: STARTER, label: 'Script source', rows: 14, id: 'script-source' });
  const diff = h('div.diff-panel', { id: 'script-diff' });
  const uploadResult = h('div', { id: 'upload-result' });
  const runsPanel = h('div', { id: 'script-runs' });

  // Checking as you type (DEVELOPER and up: checkScript compiles without saving).
  let checks = 0;
  const check = debounce(async () => {
    const ticket = (checks += 1);
    try {
      const { checkScript } = await gql('query($s: String!) { checkScript(source: $s) { line column message } }', { s: editor.value });
      if (ticket !== checks) return;
      editor.mark(checkScript[0] ?? null, 'compiles');
    } catch (error) {
      // Not a diagnostic of the source (a lost connection, a revoked key): said as such, unmarked.
      if (ticket === checks) editor.note(`could not check: ${error.errors?.[0]?.extensions?.code ?? 'ERROR'} ${error.message}`);
    }
  }, 300);

  const showDiff = debounce(() => {
    const existing = scripts.find((s) => s.name === nameInput.value.trim());
    if (!nameInput.value.trim()) return show(diff, h('p.muted', {}, 'Name the script to upload it.'));
    if (!existing) return show(diff, h('p.muted', {}, `"${nameInput.value.trim()}" is new: uploading makes version 1.`));
    show(diff, h('h4', {}, `Changes from version ${existing.version} (uploading makes version ${existing.version + 1})`),
      diffView(existing.source, editor.value));
  }, 200);

  editor.onInput(() => { if (can('DEVELOPER')) check(); showDiff(); });
  nameInput.addEventListener('input', showDiff);
  if (can('DEVELOPER')) check();
  else {
    editor.readOnly = true;
    editor.mark(null, 'Checking, testing and uploading scripts need the DEVELOPER role.');
  }

  const upload = guarded('DEVELOPER', h('button.primary', {
    type: 'button',
    id: 'upload-script',
    onclick: async () => {
      show(uploadResult);
      try {
        const { uploadScript } = await gql(
          'mutation($input: ScriptInput!) { uploadScript(input: $input) { id name version enabled hooks } }',
          { input: { name: nameInput.value.trim(), source: editor.value } },
        );
        show(uploadResult, h('p.ok', {}, `Uploaded ${uploadScript.name} version ${uploadScript.version} (${uploadScript.enabled ? 'enabled' : 'disabled'}; hooks: ${uploadScript.hooks.join(', ') || 'none'}).`));
        await load();
      } catch (error) {
        if (error instanceof ApiError && error.place) editor.mark({ ...error.place, message: error.message });
        show(uploadResult, errorBox(error));
      }
    },
  }, 'Upload as new version'));

  // The dry run.
  const subjectKind = h('select', { 'aria-label': 'Subject kind' }, h('option', { value: 'USER' }, 'user'), h('option', { value: 'ACCOUNT' }, 'account'));
  const subjectInput = h('input', { type: 'text', id: 'test-subject', placeholder: 'email or external id', 'aria-label': 'Subject' });
  const eventKind = h('select', { id: 'test-event', 'aria-label': 'Event kind' }, EVENT_KINDS.map((k) => h('option', { value: k }, k)));
  const tagInput = h('input', { type: 'text', id: 'test-tag', placeholder: 'tag', 'aria-label': 'Tag' });
  const segmentSelect = h('select', { id: 'test-segment', 'aria-label': 'Segment' });
  const testResult = h('div', { id: 'test-result' });
  const syncEventInputs = () => {
    const tagEvent = eventKind.value.startsWith('TAG');
    tagInput.hidden = !tagEvent;
    segmentSelect.hidden = tagEvent;
  };
  eventKind.addEventListener('change', syncEventInputs);
  syncEventInputs();
  gql('{ segments { id name subjectKind } }').then(({ segments }) => {
    show(segmentSelect, segments.map((s) => h('option', { value: s.id }, `${s.name} (${s.subjectKind.toLowerCase()})`)));
  }).catch(() => {});

  const runTest = guarded('DEVELOPER', h('button', {
    type: 'button',
    id: 'run-test',
    onclick: async () => {
      show(testResult, h('p.muted', {}, 'running…'));
      try {
        const subject = await findSubject(subjectKind.value, subjectInput.value);
        const tagEvent = eventKind.value.startsWith('TAG');
        const { testScript } = await gql(
          `mutation($s: String!, $e: TestEventInput!) { testScript(source: $s, event: $e) {
            ok error logs durationMicros actions { op tag subjectKind subjectId } attributeChanges { key value subjectKind } } }`,
          { s: editor.value, e: { kind: eventKind.value, subjectId: subject.id, ...(tagEvent ? { tag: tagInput.value } : { segmentId: segmentSelect.value }) } },
        );
        show(testResult, testView(testScript, subject));
      } catch (error) {
        if (error instanceof ApiError && error.place) editor.mark({ ...error.place, message: error.message });
        show(testResult, errorBox(error));
      }
    },
  }, 'Run test (applies nothing)'));

  async function openRuns(script) {
    show(runsPanel, h('p.muted', {}, 'loading runs…'));
    try {
      const { script: found } = await gql(RUNS, { id: script.id });
      // Failures first, then newest first (as the API lists them).
      const runs = [...found.runs.nodes].sort((a, b) => Number(a.ok) - Number(b.ok));
      show(runsPanel,
        h('h3', {}, `Runs of ${script.name}`, h('span.muted', {}, ` (${found.runs.totalCount} kept; newest ${runs.length}, failures first)`)),
        h('div.row', {}, h('button', { type: 'button', id: 'refresh-runs', onclick: () => { load(); openRuns(script); } }, 'Refresh')),
        runs.length ? h('div.list', {}, h('table.runs', {},
          h('tr', {}, ['at', 'version', 'event', 'subject', 'result', 'actions', 'logs', 'µs'].map((c) => h('th', {}, c))),
          runs.map((r) => h(`tr.run${r.ok ? '' : '.failed'}`, {},
            h('td', {}, new Date(r.at).toLocaleString()), h('td', {}, r.scriptVersion), h('td', {}, r.event),
            h('td', {}, subjectLabel(r.subject)), h('td', {}, r.ok ? 'ok' : `failed: ${r.error}`),
            h('td', {}, r.actions.map((a) => `${a.op === 'ADDED' ? '+' : '−'} ${a.tag}`).join(', ')),
            h('td', {}, r.logs.join('\n')), h('td', {}, r.durationMicros))))) : h('p.muted', {}, 'No runs yet.'));
    } catch (error) {
      show(runsPanel, errorBox(error));
    }
  }

  async function load() {
    try {
      ({ scripts } = await gql(LIST, { since: new Date(Date.now() - DAY_MS).toISOString() }));
    } catch (error) {
      show(listError, errorBox(error));
      return;
    }
    show(listError);
    show(list, scripts.length ? h('table.scripts', { id: 'scripts-table' },
      h('tr', {}, ['name', 'version', 'enabled', 'hooks', 'last run', 'failed 24 h', 'runs', ''].map((c) => h('th', {}, c))),
      scripts.map((s) => {
        const last = s.runs.nodes[0];
        const toggle = guarded('DEVELOPER', h('button', {
          type: 'button',
          onclick: async () => {
            try {
              await gql('mutation($id: ID!, $on: Boolean!) { setScriptEnabled(id: $id, enabled: $on) { id enabled } }', { id: s.id, on: !s.enabled });
              await load();
            } catch (error) {
              show(listError, errorBox(error));
            }
          },
        }, s.enabled ? 'Disable' : 'Enable'));
        return h('tr', { dataset: { script: s.name } },
          h('td', {}, h('a', { href: '#', onclick: (e) => { e.preventDefault(); nameInput.value = s.name; editor.value = s.source; if (can('DEVELOPER')) check(); showDiff(); load(); openRuns(s); } }, s.name)),
          h('td.version', {}, s.version),
          h('td.enabled', {}, s.enabled ? 'yes' : 'no'),
          h('td', {}, s.hooks.map((k) => k.toLowerCase()).join(', ') || '—'),
          h('td', {}, last ? `${last.ok ? 'ok' : 'failed'}, ${new Date(last.at).toLocaleString()}` : 'never'),
          h('td.failed-day', {}, s.failedRuns),
          h('td', {}, s.runs.totalCount),
          h('td', {}, toggle));
      })) : h('p.muted', {}, 'No scripts yet: write one on the right and upload it.'));
    showDiff();
  }

  show(pane,
    h('div.columns', {},
      h('div.card', {}, h('h2', {}, 'Scripts'), listError, list, runsPanel),
      h('div.card', {},
        h('h2', {}, 'Editor'),
        h('div.row', {}, nameInput, upload),
        editor.el,
        uploadResult,
        diff,
        h('h3', {}, 'Test on a subject'),
        h('p.muted', {}, 'testScript runs the source in the editor against a real subject and applies nothing.'),
        h('div.row', {}, subjectKind, subjectInput, eventKind, tagInput, segmentSelect, runTest),
        testResult)));
  load();
}

function testView(result, subject) {
  return h('div.test-view', { dataset: { ok: result.ok } },
    h('p', {}, h('strong', {}, result.ok ? 'ok' : 'failed'), ` on ${subjectLabel(subject)} in ${result.durationMicros} µs`),
    result.error ? h('p.bad', {}, result.error) : null,
    h('h4', {}, 'Planned tag changes'),
    result.actions.length
      ? h('ul.actions', {}, result.actions.map((a) => h('li', {}, `${a.op} "${a.tag}" on ${a.subjectId === subject.id ? subjectLabel(subject) : `${a.subjectKind.toLowerCase()} ${a.subjectId}`}`)))
      : h('p.muted', {}, 'none'),
    result.attributeChanges.length ? [h('h4', {}, 'Planned attribute changes'),
      h('ul', {}, result.attributeChanges.map((c) => h('li', {}, `${c.key} = ${JSON.stringify(c.value)} (${c.subjectKind.toLowerCase()})`)))] : null,
    h('h4', {}, 'Logs'),
    result.logs.length ? h('pre.logs', {}, result.logs.join('\n')) : h('p.muted', {}, 'none'));
}
