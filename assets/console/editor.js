// A small code editor: a textarea over a highlighted <pre>, line numbers,
// and a marker at the line and column of an error. Plus a line diff.

import { h } from './api.js';

const RHAI_KEYWORDS = new Set(('fn let const if else while loop for in return throw try catch break continue '
  + 'true false import export private switch do until this is_shared').split(' '));
const FILTER_KEYWORDS = new Set('and or not now true false null is'.split(' '));

// One alternation, tried at each position: comments, strings, numbers, words, anything else.
const TOKEN = /(\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$))|("(?:[^"\\\n]|\\.)*"?|`(?:[^`\\]|\\.)*`?|'(?:[^'\\\n]|\\.)*'?)|(\b\d[\d_]*(?:\.\d+)?(?:[smhdw]\b)?)|([A-Za-z_][A-Za-z0-9_]*)|(\s+|.)/gy;

/** Tokens [{cls, text}] of `source` in `mode` ('rhai' or 'filter'). */
export function tokenize(source, mode) {
  const keywords = mode === 'rhai' ? RHAI_KEYWORDS : FILTER_KEYWORDS;
  const tokens = [];
  TOKEN.lastIndex = 0;
  let m;
  while (TOKEN.lastIndex < source.length && (m = TOKEN.exec(source))) {
    const [text, comment, string, number, word] = m;
    let cls = '';
    if (comment) cls = 'tok-comment';
    else if (string) cls = 'tok-string';
    else if (number) cls = 'tok-number';
    else if (word) {
      if (keywords.has(word)) cls = 'tok-keyword';
      else if (source[TOKEN.lastIndex] === '(') cls = 'tok-function';
      else if (source[m.index - 1] === '.') cls = 'tok-property';
    }
    tokens.push({ cls, text });
  }
  return tokens;
}

/** The highlighted lines of `source`, one element per line (tokens split at line breaks). */
function highlightLines(source, mode) {
  const lines = [[]];
  for (const { cls, text } of tokenize(source, mode)) {
    text.split('\n').forEach((part, i) => {
      if (i > 0) lines.push([]);
      if (part) lines[lines.length - 1].push(cls ? h(`span.${cls}`, {}, part) : part);
    });
  }
  return lines.map((parts, i) => h('span.line', { dataset: { line: i + 1 } }, parts, '\n'));
}

/**
 * An editor in `mode` ('rhai' or 'filter'): `.el` to place, `.value`,
 * `.onInput(fn)`, `.mark({line, column, message} | null)`, `.readOnly`.
 */
export function createEditor({ mode, value = '', label, rows = 12 }) {
  const gutter = h('div.gutter', { 'aria-hidden': 'true' });
  const pre = h('pre.highlight', { 'aria-hidden': 'true' });
  const textarea = h('textarea.source', { spellcheck: false, wrap: 'off', 'aria-label': label, autocomplete: 'off' });
  textarea.spellcheck = false;
  textarea.setAttribute('autocapitalize', 'off');
  const marker = h('div.error-marker', { hidden: true });
  const message = h('div.diagnostic', { role: 'status' });
  const code = h('div.code', {}, pre, textarea, marker);
  const box = h('div.editor', { dataset: { mode } }, gutter, code);
  box.style.minHeight = `${rows * 1.5 + 1}em`;
  const listeners = [];
  let error = null;

  const render = () => {
    const source = textarea.value;
    const lines = highlightLines(source, mode);
    const count = lines.length;
    gutter.replaceChildren(...lines.map((_, i) => h('div.lineno', { dataset: { line: i + 1 } }, i + 1)));
    pre.replaceChildren(...lines);
    const longest = Math.max(...source.split('\n').map((l) => l.length), 20);
    textarea.style.height = `${count * 1.5 + 1}em`;
    textarea.style.width = `calc(${longest + 2}ch + 1em)`;
    pre.style.width = textarea.style.width;
    box.dataset.errorLine = error ? error.line : '';
    box.dataset.errorColumn = error ? error.column : '';
    if (error) {
      gutter.querySelector(`[data-line="${error.line}"]`)?.classList.add('bad');
      pre.querySelector(`[data-line="${error.line}"]`)?.classList.add('error-line');
      marker.hidden = false;
      marker.style.top = `calc(${(error.line - 1) * 1.5}em + 0.5em)`;
      marker.style.left = `calc(${Math.max(error.column - 1, 0)}ch + 0.5em)`;
      marker.title = error.message;
    } else {
      marker.hidden = true;
    }
  };

  textarea.addEventListener('input', () => {
    render();
    for (const fn of listeners) fn(textarea.value);
  });
  // Tab indents instead of leaving the editor.
  textarea.addEventListener('keydown', (event) => {
    if (event.key !== 'Tab' || textarea.readOnly) return;
    event.preventDefault();
    textarea.setRangeText('    ', textarea.selectionStart, textarea.selectionEnd, 'end');
    textarea.dispatchEvent(new Event('input'));
  });

  textarea.value = value;
  render();
  return {
    el: h('div.editor-wrap', {}, box, message),
    textarea,
    get value() { return textarea.value; },
    set value(v) { textarea.value = v; error = null; message.textContent = ''; render(); },
    set readOnly(v) { textarea.readOnly = v; box.classList.toggle('read-only', v); },
    onInput(fn) { listeners.push(fn); },
    /** A message under the editor that is not about a place in the text (the mark is cleared). */
    note(text) {
      error = null;
      message.className = 'diagnostic bad';
      message.textContent = text;
      render();
    },
    /** Marks an error at its line and column, or clears the mark (null). */
    mark(diagnostic, okText = '') {
      error = diagnostic;
      message.className = diagnostic ? 'diagnostic bad' : 'diagnostic good';
      // The API's filter messages already say where; script messages do not.
      const placed = /line \d+, column \d+/.test(diagnostic?.message ?? '');
      message.textContent = diagnostic
        ? (placed ? diagnostic.message : `line ${diagnostic.line}, column ${diagnostic.column}: ${diagnostic.message}`)
        : okText;
      render();
    },
  };
}

/** The lines of `before` and `after` as [{op: ' ' | '-' | '+', text}], by longest common subsequence. */
export function lineDiff(before, after) {
  const a = before.split('\n');
  const b = after.split('\n');
  const n = a.length;
  const m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { out.push({ op: ' ', text: a[i] }); i += 1; j += 1; }
    else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) { out.push({ op: '+', text: b[j] }); j += 1; }
    else { out.push({ op: '-', text: a[i] }); i += 1; }
  }
  return out;
}

/** A diff as a <pre>, lines marked - and +. */
export function diffView(before, after) {
  const lines = lineDiff(before, after);
  const added = lines.filter((l) => l.op === '+').length;
  const removed = lines.filter((l) => l.op === '-').length;
  return h('div.diff', {},
    h('p.muted', {}, `${added} line${added === 1 ? '' : 's'} added, ${removed} removed`),
    h('pre', {}, lines.map((l) => h(`span.diff-line${l.op === '+' ? '.add' : l.op === '-' ? '.del' : ''}`, {}, `${l.op} ${l.text}\n`))));
}
