// The code editor (CodeMirror 6, bundled in vendor/codemirror.js): line
// numbers, highlighting of Rhai scripts and filters, and the API's error
// marked at its line and column. Plus a line diff.

import {
  EditorState, Compartment, EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  drawSelection, highlightSpecialChars, StreamLanguage, syntaxHighlighting, bracketMatching, indentOnInput,
  defaultKeymap, history, historyKeymap, indentWithTab, setDiagnostics, lintGutter, tagHighlighter, tags,
} from './vendor/codemirror.js';
import { h } from './api.js';

const RHAI_KEYWORDS = new Set(('fn let const if else while loop for in return throw try catch break continue '
  + 'true false import export private switch do until this is_shared').split(' '));
const FILTER_KEYWORDS = new Set('and or not now true false null is'.split(' '));

/** Reads a string opened by `quote` up to its end (or the line's); whether it ended. */
function readString(stream, quote) {
  let escaped = false;
  while (!stream.eol()) {
    const ch = stream.next();
    if (ch === quote && !escaped) return true;
    escaped = !escaped && ch === '\\';
  }
  return false;
}

/** A line tokenizer (CodeMirror's StreamLanguage) for `mode` ('rhai' or 'filter'). */
function language(mode) {
  const keywords = mode === 'rhai' ? RHAI_KEYWORDS : FILTER_KEYWORDS;
  return StreamLanguage.define({
    name: mode,
    // Open block comments and backtick strings run on to the next lines.
    startState: () => ({ comment: false, template: false }),
    copyState: (state) => ({ ...state }),
    token(stream, state) {
      if (state.comment) {
        state.comment = !stream.skipTo('*/');
        if (state.comment) stream.skipToEnd();
        else stream.match('*/');
        return 'comment';
      }
      if (state.template) {
        state.template = !readString(stream, '`');
        return 'string';
      }
      if (stream.eatSpace()) return null;
      if (stream.match('//')) {
        stream.skipToEnd();
        return 'comment';
      }
      if (stream.match('/*')) {
        state.comment = true;
        return 'comment';
      }
      const quote = stream.peek();
      if (quote === '"' || quote === "'" || quote === '`') {
        stream.next();
        if (!readString(stream, quote) && quote === '`') state.template = true;
        return 'string';
      }
      if (stream.match(/^\d[\d_]*(?:\.\d+)?(?:[smhdw]\b)?/)) return 'number';
      if (stream.match(/^[A-Za-z_][A-Za-z0-9_]*/)) {
        const word = stream.current();
        if (keywords.has(word)) return 'keyword';
        if (stream.peek() === '(') return 'variableName.function';
        const before = stream.string.charAt(stream.start - 1);
        return before === '.' ? 'propertyName' : 'variableName';
      }
      stream.next();
      return null;
    },
  });
}

// Classes, not generated styles: console.css colours them.
const HIGHLIGHT = tagHighlighter([
  { tag: tags.comment, class: 'tok-comment' },
  { tag: tags.string, class: 'tok-string' },
  { tag: tags.number, class: 'tok-number' },
  { tag: tags.keyword, class: 'tok-keyword' },
  { tag: tags.function(tags.variableName), class: 'tok-function' },
  { tag: tags.propertyName, class: 'tok-property' },
]);

/** The document range of a {line, column} (1-based), clamped to the text. */
function rangeOf(doc, { line, column }) {
  const at = doc.line(Math.min(Math.max(line, 1), doc.lines));
  const from = Math.min(at.from + Math.max(column - 1, 0), at.to);
  return { from, to: Math.min(from + 1, at.to) };
}

/**
 * An editor in `mode` ('rhai' or 'filter'): `.el` to place (its editor
 * element gets `id`), `.value`, `.onInput(fn)`, `.mark({line, column,
 * message} | null)`, `.note(text)`, `.readOnly`.
 */
export function createEditor({ mode, value = '', label, rows = 12, id }) {
  const listeners = [];
  const editable = new Compartment();
  const message = h('div.diagnostic', { role: 'status' });
  let setting = false; // a change made through `.value`, not typed
  const view = new EditorView({
    state: EditorState.create({
      doc: value,
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightSpecialChars(),
        history(),
        drawSelection(),
        indentOnInput(),
        bracketMatching(),
        highlightActiveLine(),
        language(mode),
        syntaxHighlighting(HIGHLIGHT),
        lintGutter(),
        EditorState.tabSize.of(4),
        keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
        editable.of([]),
        // CodeMirror owns the class attribute of its element: classes go through it.
        EditorView.editorAttributes.of({ class: 'editor', 'data-mode': mode }),
        EditorView.contentAttributes.of({ 'aria-label': label, spellcheck: 'false', autocapitalize: 'off' }),
        EditorView.updateListener.of((update) => {
          if (!update.docChanged || setting) return;
          const text = update.state.doc.toString();
          for (const fn of listeners) fn(text);
        }),
      ],
    }),
  });
  if (id) view.dom.id = id;
  view.dom.style.minHeight = `${rows * 1.5 + 1}em`;
  // For the browser test and the curious: the text, as a textarea would give it.
  Object.defineProperty(view.dom, 'value', { get: () => view.state.doc.toString() });

  const place = (diagnostic) => {
    view.dom.dataset.errorLine = diagnostic ? diagnostic.line : '';
    view.dom.dataset.errorColumn = diagnostic ? diagnostic.column : '';
    const found = diagnostic ? [{ ...rangeOf(view.state.doc, diagnostic), severity: 'error', message: diagnostic.message }] : [];
    view.dispatch(setDiagnostics(view.state, found));
  };

  return {
    el: h('div.editor-wrap', {}, view.dom, message),
    view,
    get value() { return view.state.doc.toString(); },
    set value(v) {
      setting = true;
      try {
        view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: v } });
      } finally {
        setting = false;
      }
      message.textContent = '';
      place(null);
    },
    set readOnly(v) {
      const locked = [EditorState.readOnly.of(true), EditorView.editable.of(false), EditorView.editorAttributes.of({ class: 'read-only' })];
      view.dispatch({ effects: editable.reconfigure(v ? locked : []) });
    },
    onInput(fn) { listeners.push(fn); },
    /** A message under the editor that is not about a place in the text (the mark is cleared). */
    note(text) {
      message.className = 'diagnostic bad';
      message.textContent = text;
      place(null);
    },
    /** Marks an error at its line and column, or clears the mark (null). */
    mark(diagnostic, okText = '') {
      message.className = diagnostic ? 'diagnostic bad' : 'diagnostic good';
      // The API's filter messages already say where; script messages do not.
      const placed = /line \d+, column \d+/.test(diagnostic?.message ?? '');
      message.textContent = diagnostic
        ? (placed ? diagnostic.message : `line ${diagnostic.line}, column ${diagnostic.column}: ${diagnostic.message}`)
        : okText;
      place(diagnostic);
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
