// Tags: the catalogue with counts and search; a tag's usage; rename, merge
// and delete with what they will touch shown first, and what they did after.

import { gql, h, show, errorBox, debounce, guarded } from './api.js';

const USAGE = `query($name: String!) { tag(name: $name) { name description userCount accountCount
  usage { segments { id name filter } scripts { id name version } } } }`;
const REWRITE = 'rewrite { segments { name filter } keptPatterns { segment { name } pattern } scripts { name } }';

export function tagsTab(pane) {
  const search = h('input', { type: 'search', id: 'tag-search', placeholder: 'search tags', 'aria-label': 'Search tags' });
  const catalogue = h('div.list', { id: 'tag-catalogue' });
  const detail = h('div', { id: 'tag-detail' });

  let loads = 0;
  const load = debounce(async () => {
    const ticket = (loads += 1);
    try {
      const { tags } = await gql(
        'query($s: String) { tags(first: 100, search: $s) { totalCount nodes { name userCount accountCount } } }',
        { s: search.value.trim() || null },
      );
      if (ticket !== loads) return;
      show(catalogue,
        h('p.muted', {}, `${tags.totalCount} tag${tags.totalCount === 1 ? '' : 's'}${tags.totalCount > tags.nodes.length ? `, the first ${tags.nodes.length} shown` : ''}`),
        h('table.tags', {},
          h('tr', {}, ['tag', 'users', 'accounts'].map((c) => h('th', {}, c))),
          tags.nodes.map((t) => h('tr', { dataset: { tag: t.name } },
            h('td', {}, h('a', { href: '#', onclick: (e) => { e.preventDefault(); open(t.name); } }, t.name)),
            h('td', {}, t.userCount), h('td', {}, t.accountCount)))));
    } catch (error) {
      show(catalogue, errorBox(error));
    }
  }, 250);
  search.addEventListener('input', load);

  async function open(name, outcome = null) {
    let tag;
    try {
      ({ tag } = await gql(USAGE, { name }));
    } catch (error) {
      return show(detail, errorBox(error));
    }
    if (!tag) return show(detail, outcome, h('p.muted', {}, `No tag named ${name}.`));
    const { segments, scripts } = tag.usage;
    const result = h('div', { id: 'tag-action-result' });
    const run = async (mutation, variables, label) => {
      try {
        const data = await gql(mutation, variables);
        show(result, h('p.ok', {}, label(data)), data.t?.rewrite ? rewriteView(data.t.rewrite) : null);
        load();
      } catch (error) {
        show(result, errorBox(error));
      }
    };
    const newName = h('input', { type: 'text', id: 'tag-new-name', placeholder: 'new name', 'aria-label': 'New name' });
    const mergeInto = h('input', { type: 'text', placeholder: 'merge into (existing or new tag)', 'aria-label': 'Merge into' });
    const force = h('input', { type: 'checkbox', 'aria-label': 'Force' });
    show(detail,
      outcome,
      h('h2', {}, tag.name),
      tag.description ? h('p', {}, tag.description) : null,
      h('p', {}, `${tag.userCount} users, ${tag.accountCount} accounts`),
      h('h3', {}, 'Used by'),
      h('div', { id: 'tag-usage' },
        h('h4', {}, `Segments (${segments.length})`),
        segments.length ? h('ul.usage-segments', {}, segments.map((s) => h('li', {}, h('strong', {}, s.name), ' ', h('code', {}, s.filter)))) : h('p.muted', {}, 'none'),
        h('h4', {}, `Scripts (${scripts.length})`),
        scripts.length ? h('ul.usage-scripts', {}, scripts.map((s) => h('li', {}, `${s.name} (version ${s.version})`))) : h('p.muted', {}, 'none')),
      h('h3', {}, 'Change it'),
      h('p.muted', { id: 'tag-touches' }, `Renaming or merging rewrites the filters and triggers of the ${plural(segments.length, 'segment')} above (a pattern that would no longer match is kept as written); the ${plural(scripts.length, 'script')} above ${scripts.length === 1 ? 'is' : 'are'} never rewritten: edit ${scripts.length === 1 ? 'it' : 'them'}. Deleting removes the tag from ${plural(tag.userCount, 'user')} and ${plural(tag.accountCount, 'account')}.`),
      h('div.row', {}, newName, guarded('DEVELOPER', h('button', {
        type: 'button',
        id: 'rename-tag',
        onclick: () => run(`mutation($n: String!, $to: String!) { t: renameTag(name: $n, newName: $to) { name ${REWRITE} } }`,
          { n: tag.name, to: newName.value.trim() }, (d) => `Renamed to ${d.t.name}.`),
      }, 'Rename'))),
      h('div.row', {}, mergeInto, guarded('DEVELOPER', h('button', {
        type: 'button',
        onclick: () => run(`mutation($n: [String!]!, $to: String!) { t: mergeTags(names: $n, into: $to) { name ${REWRITE} } }`,
          { n: [tag.name], to: mergeInto.value.trim() }, (d) => `Merged into ${d.t.name}.`),
      }, 'Merge'))),
      h('div.row', {}, h('label', {}, force, ` force (segments naming it: ${segments.length})`), guarded('DEVELOPER', h('button.danger', {
        type: 'button',
        onclick: () => run('mutation($n: String!, $f: Boolean!) { deleteTag(name: $n, force: $f) }',
          { n: tag.name, f: force.checked }, () => `Deleted ${tag.name} and its descendants from every subject.`),
      }, 'Delete'))),
      result);
  }

  show(pane, h('div.columns', {},
    h('div.card', {}, h('h2', {}, 'Tags'), search, catalogue),
    h('div.card', {}, detail)));
  show(detail, h('p.muted', {}, 'Choose a tag to see where it is used.'));
  load();
}

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

function rewriteView(rewrite) {
  return h('div.rewrite', { id: 'tag-rewrite' },
    h('h4', {}, `Segments rewritten (${rewrite.segments.length})`),
    rewrite.segments.length ? h('ul', {}, rewrite.segments.map((s) => h('li.rewritten', {}, h('strong', {}, s.name), ' ', h('code', {}, s.filter)))) : h('p.muted', {}, 'none'),
    h('h4', {}, `Patterns kept as written (${rewrite.keptPatterns.length})`),
    rewrite.keptPatterns.length ? h('ul', {}, rewrite.keptPatterns.map((k) => h('li', {}, `${k.segment.name}: `, h('code', {}, k.pattern)))) : h('p.muted', {}, 'none'),
    h('h4', {}, `Scripts to edit (${rewrite.scripts.length})`),
    rewrite.scripts.length ? h('ul', {}, rewrite.scripts.map((s) => h('li.to-edit', {}, s.name))) : h('p.muted', {}, 'none'));
}
