// What the console's editor (../editor.js) uses of CodeMirror 6, bundled by
// `npm run build` into ../vendor/codemirror.js (one ES module, committed).

export { EditorState, Compartment } from '@codemirror/state';
export {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, drawSelection,
  highlightSpecialChars,
} from '@codemirror/view';
export { StreamLanguage, syntaxHighlighting, bracketMatching, indentOnInput } from '@codemirror/language';
export { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
export { setDiagnostics, lintGutter } from '@codemirror/lint';
export { tagHighlighter, tags } from '@lezer/highlight';
