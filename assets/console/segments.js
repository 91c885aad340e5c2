// Segments: the list with member counts; a filter editor with a live count
// and sample; what saving an edit would do; why a subject is a member.

import { gql, h, show, errorBox, tagList, debounce, guarded, findSubject, subjectLabel, SUBJECT_FIELDS, ApiError } from './api.js';
import { createEditor } from './editor.js';

const LIST = `{ segments { id name folder subjectKind filter memberCount tracked timeBased
  onEntry { add { name } remove { name } } onExit { add { name } remove { name } } } }`;

const names = (tags) => tags.map((t) => t.name).join('; ');

export function segmentsTab(pane) {
  let segments = [];
  let editing = null; // the segment being edited, or null for a new one
  const list = h('div.list');
  const listError = h('div');

  const title = h('h2', {}, 'New segment');
  const nameInput = h('input', { type: 'text', id: 'segment-name', placeholder: 'name', 'aria-label': 'Segment name' });
  const folderInput = h('input', { type: 'text', id: 'segment-folder', placeholder: 'folder (optional)', 'aria-label': 'Folder' });
  const kindSelect = h('select', { id: 'segment-kind', 'aria-label': 'Subject kind' }, h('option', { value: 'USER' }, 'users'), h('option', { value: 'ACCOUNT' }, 'accounts'));
  const editor = createEditor({ mode: 'filter', label: 'Filter', rows: 4, id: 'segment-filter' });
  const entryAdd = h('input', { type: 'text', id: 'segment-entry-add', placeholder: 'tags to add, separated by ;', 'aria-label': 'On entry add' });
  const entryRemove = h('input', { type: 'text', placeholder: 'tags to remove', 'aria-label': 'On entry remove' });
  const exitAdd = h('input', { type: 'text', placeholder: 'tags to add', 'aria-label': 'On exit add' });
  const exitRemove = h('input', { type: 'text', placeholder: 'tags to remove', 'aria-label': 'On exit remove' });
  const preview = h('div.preview', { id: 'segment-preview' });
  const change = h('div.preview', { id: 'segment-change' });
  const saveResult = h('div', { id: 'segment-save-result' });
  const activity = h('div', { id: 'segment-activity' });

  let previews = 0;
  const runPreview = debounce(async () => {
    const ticket = (previews += 1);
    const filter = editor.value;
    if (!filter.trim()) {
      editor.mark(null, '');
      show(preview, h('p.muted', {}, 'Type a filter to see how many it selects.'));
      show(change);
      return;
    }
    try {
      const { previewSegment } = await gql(
        `query($k: SubjectKind!, $f: String!) { previewSegment(subjectKind: $k, filter: $f) { count sample { ${SUBJECT_FIELDS} } } }`,
        { k: kindSelect.value, f: filter },
      );
      if (ticket !== previews) return;
      editor.mark(null, 'valid filter');
      show(preview,
        h('p', {}, h('strong.count', { id: 'live-count' }, previewSegment.count), ` ${kindSelect.value === 'USER' ? 'users' : 'accounts'} match now`),
        previewSegment.sample.length ? h('ul.sample', {}, previewSegment.sample.map((s) => h('li', {}, subjectLabel(s)))) : null);
      if (editing && editing.subjectKind === kindSelect.value) {
        const { previewSegmentChange: c } = await gql(
          `query($id: ID!, $f: String!) { previewSegmentChange(id: $id, filter: $f) { entering exiting staying
            enteringSample { ${SUBJECT_FIELDS} } exitingSample { ${SUBJECT_FIELDS} } } }`,
          { id: editing.id, f: filter },
        );
        if (ticket !== previews) return;
        show(change,
          h('p', { id: 'change-summary' }, `Saving: ${c.exiting} will leave, ${c.entering} will enter, ${c.staying} stay.`),
          c.exitingSample.length ? h('p', {}, 'leaving: ', c.exitingSample.map(subjectLabel).join(', ')) : null,
          c.enteringSample.length ? h('p', {}, 'entering: ', c.enteringSample.map(subjectLabel).join(', ')) : null);
      } else {
        show(change);
      }
    } catch (error) {
      if (ticket !== previews) return;
      if (error instanceof ApiError && error.place) editor.mark({ ...error.place, message: error.message });
      else editor.mark(null, '');
      show(preview, errorBox(error));
      show(change);
    }
  }, 300);
  editor.onInput(runPreview);
  kindSelect.addEventListener('change', runPreview);

  const edit = (segment) => {
    editing = segment;
    title.textContent = segment ? `Edit ${segment.name}` : 'New segment';
    nameInput.value = segment?.name ?? '';
    folderInput.value = segment?.folder ?? '';
    kindSelect.value = segment?.subjectKind ?? 'USER';
    editor.value = segment?.filter ?? '';
    entryAdd.value = segment ? names(segment.onEntry.add) : '';
    entryRemove.value = segment ? names(segment.onEntry.remove) : '';
    exitAdd.value = segment ? names(segment.onExit.add) : '';
    exitRemove.value = segment ? names(segment.onExit.remove) : '';
    save.textContent = segment ? 'Save changes' : 'Create segment';
    show(saveResult);
    show(explainResult);
    runPreview();
    showActivity(activity, segment);
  };

  const save = guarded('DEVELOPER', h('button.primary', {
    type: 'button',
    id: 'save-segment',
    onclick: async () => {
      const input = {
        name: nameInput.value.trim(),
        folder: folderInput.value.trim() || null,
        subjectKind: kindSelect.value,
        filter: editor.value,
        onEntry: { add: tagList(entryAdd.value), remove: tagList(entryRemove.value) },
        onExit: { add: tagList(exitAdd.value), remove: tagList(exitRemove.value) },
      };
      try {
        const fields = 'id name memberCount tracked';
        const saved = h('p.ok', {}, '');
        const data = editing
          ? await gql(`mutation($id: ID!, $input: SegmentInput!) { s: updateSegment(id: $id, input: $input) { ${fields} } }`, { id: editing.id, input })
          : await gql(`mutation($input: SegmentInput!) { s: createSegment(input: $input) { ${fields} } }`, { input });
        saved.textContent = `Saved ${data.s.name}: ${data.s.memberCount} member${data.s.memberCount === 1 ? '' : 's'}${data.s.tracked ? ', tracked (triggers fire on entry and exit)' : ''}.`;
        await load();
        edit(segments.find((s) => s.id === data.s.id) ?? null);
        show(saveResult, saved);
      } catch (error) {
        if (error instanceof ApiError && error.place) editor.mark({ ...error.place, message: error.message });
        show(saveResult, errorBox(error));
      }
    },
  }, 'Create segment'));

  // Why is this subject a member (or not)?
  const explainInput = h('input', { type: 'text', id: 'explain-subject', placeholder: 'email or external id', 'aria-label': 'Subject to explain' });
  const explainResult = h('div', { id: 'explain-result' });
  const explain = h('button', {
    type: 'button',
    id: 'explain',
    onclick: async () => {
      if (!editing) return show(explainResult, h('p.muted', {}, 'Choose a saved segment first.'));
      try {
        const subject = await findSubject(editing.subjectKind, explainInput.value);
        const { explainMembership: e } = await gql(
          `query($s: ID!, $id: ID!) { explainMembership(segmentId: $s, subjectId: $id) { member since trace { ...T children { ...T children { ...T children { ...T children { ...T children { ...T } } } } } } } }
           fragment T on FilterTrace { text value detail }`,
          { s: editing.id, id: subject.id },
        );
        show(explainResult,
          h('p', {}, h('strong', {}, subjectLabel(subject)), e.member ? ' is a member' : ' is not a member', e.since ? ` since ${new Date(e.since).toLocaleString()}` : ''),
          h('ul.trace', {}, traceNode(e.trace)));
      } catch (error) {
        show(explainResult, errorBox(error));
      }
    },
  }, 'Explain');

  async function load() {
    try {
      ({ segments } = await gql(LIST));
    } catch (error) {
      show(listError, errorBox(error));
      return;
    }
    show(listError);
    show(list, segments.length ? h('table.segments', { id: 'segments-table' },
      h('tr', {}, ['name', 'folder', 'of', 'members', 'tracked'].map((c) => h('th', {}, c))),
      segments.map((s) => h('tr', { dataset: { segment: s.name } },
        h('td', {}, h('a', { href: '#', onclick: (e) => { e.preventDefault(); edit(s); load(); } }, s.name)),
        h('td', {}, s.folder ?? ''),
        h('td', {}, s.subjectKind.toLowerCase()),
        h('td.members', {}, s.memberCount),
        h('td', {}, s.tracked ? 'yes' : 'no'))))
      : h('p.muted', {}, 'No segments yet.'));
  }

  show(pane,
    h('div.columns', {},
      h('div.card', {}, h('h2', {}, 'Segments'), h('button', { type: 'button', onclick: () => edit(null) }, 'New segment'), listError, list),
      h('div.card', {},
        title,
        h('div.row', {}, nameInput, folderInput, kindSelect),
        h('label.field-label', {}, 'Filter'),
        editor.el,
        preview,
        change,
        h('div.grid2', {},
          h('label', {}, 'On entry add', entryAdd), h('label', {}, 'On entry remove', entryRemove),
          h('label', {}, 'On exit add', exitAdd), h('label', {}, 'On exit remove', exitRemove)),
        h('div.row', {}, save),
        saveResult,
        activity,
        h('h3', {}, 'Explain membership'),
        h('div.row', {}, explainInput, explain),
        explainResult)));
  load();
  edit(null);
}

function traceNode(t) {
  return h(`li.${t.value ? 'true' : 'false'}`, {},
    h('span.value', {}, t.value ? '✓ true' : '✗ false'), ' ', h('code', {}, t.text),
    t.detail ? h('span.detail', {}, ` — ${t.detail}`) : null,
    t.children?.length ? h('ul', {}, t.children.map(traceNode)) : null);
}

const ACTIVITY_DAYS = 30;
const SVG = 'http://www.w3.org/2000/svg';

/** An SVG element, briefly: svg('rect', { x: 1 }, child…). */
function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children.flat());
  return el;
}

/** The chart of a saved segment's entries (up) and exits (down) per day, from `segmentActivity`. */
async function showActivity(panel, segment) {
  if (!segment) return show(panel);
  let days;
  try {
    ({ segmentActivity: days } = await gql(
      'query($id: ID!, $days: Int!) { segmentActivity(segmentId: $id, days: $days) { date entered exited } }',
      { id: segment.id, days: ACTIVITY_DAYS },
    ));
  } catch (error) {
    return show(panel, errorBox(error));
  }
  const entered = days.reduce((n, d) => n + d.entered, 0);
  const exited = days.reduce((n, d) => n + d.exited, 0);
  const peak = Math.max(1, ...days.map((d) => Math.max(d.entered, d.exited)));
  const [width, half, bar] = [days.length * 14, 50, 10];
  const chart = svg('svg', { class: 'activity-chart', viewBox: `0 0 ${width} ${half * 2}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': `entries and exits per day, last ${days.length} days` },
    svg('line', { x1: 0, x2: width, y1: half, y2: half, class: 'axis' }),
    days.map((d, i) => {
      const up = (d.entered / peak) * (half - 2);
      const down = (d.exited / peak) * (half - 2);
      return svg('g', { class: 'day', 'data-date': d.date, 'data-entered': d.entered, 'data-exited': d.exited },
        svg('title', {}, `${d.date}: ${d.entered} entered, ${d.exited} exited`),
        svg('rect', { class: 'hit', x: i * 14, y: 0, width: 14, height: half * 2 }),
        d.entered ? svg('rect', { class: 'entered', x: i * 14 + 2, y: half - up, width: bar, height: up }) : '',
        d.exited ? svg('rect', { class: 'exited', x: i * 14 + 2, y: half, width: bar, height: down }) : '');
    }));
  show(panel,
    h('h3', {}, `Entries and exits per day (last ${days.length} days, UTC)`),
    h('p', { id: 'activity-summary' }, `${entered} entered, ${exited} left`,
      segment.tracked ? '' : h('span.muted', {}, ' (only tracked segments, with entry or exit actions or a segment hook, record them)')),
    chart,
    h('div.chart-dates.muted', {}, h('span', {}, days[0].date), h('span', {}, `peak ${peak} a day`), h('span', {}, days[days.length - 1].date)),
    h('p.muted.legend', {}, h('span.key.entered'), ' entered ', h('span.key.exited'), ' left'));
}
