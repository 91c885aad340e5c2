// The console's only way to the server: POST /graphql with the pasted key.

const KEY = 'tagsmith.console.key';

export const session = {
  key: () => sessionStorage.getItem(KEY),
  save: (key) => sessionStorage.setItem(KEY, key),
  forget: () => sessionStorage.removeItem(KEY),
};

/** A GraphQL answer with errors: each keeps the API's message and `extensions`. */
export class ApiError extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join('; '));
    this.errors = errors;
  }
  /** The first error's place in a filter or script, when the API gave one. */
  get place() {
    const ext = this.errors.find((e) => e.extensions?.line)?.extensions;
    return ext ? { line: ext.line, column: ext.column ?? 1 } : null;
  }
}

export async function gql(query, variables = {}) {
  let response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Authorization: `Bearer ${session.key() ?? ''}`,
      },
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new ApiError([{ message: `the server could not be reached: ${error.message}`, extensions: { code: 'NETWORK' } }]);
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError([{ message: `HTTP ${response.status} without a JSON answer`, extensions: { code: 'HTTP' } }]);
  }
  if (body.errors?.length) throw new ApiError(body.errors);
  return body.data;
}

const RANK = { VIEWER: 0, MEMBER: 1, DEVELOPER: 2, ADMIN: 3 };
let currentRole = 'VIEWER';
export const setRole = (role) => { currentRole = role; };
/** Whether the signed-in key's role includes `role`. */
export const can = (role) => RANK[currentRole] >= RANK[role];

/** Elements, briefly: h('button.primary', { onclick }, 'Save'). */
export function h(tag, props = {}, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && k !== 'list') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An error as the API said it: each message with its `extensions.code`. */
export function errorBox(error) {
  const errors = error instanceof ApiError
    ? error.errors
    : [{ message: String(error?.message ?? error), extensions: { code: 'CONSOLE' } }];
  return h('div.error', { role: 'alert' }, errors.map((e) => h('div.error-line-item', {},
    h('code.code', {}, e.extensions?.code ?? 'NO CODE'), ' ', e.message,
    e.extensions?.line ? ` (line ${e.extensions.line}, column ${e.extensions.column})` : '')));
}

/** The names in `text` separated by `;`, trimmed, empty ones left out. */
export const tagList = (text) => text.split(';').map((t) => t.trim()).filter(Boolean);

/** Replaces the children of `el`. */
export const show = (el, ...children) => el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));

/** Runs `fn` once typing pauses for `ms`. */
export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** A button only roles from `role` up may press; others see it disabled and why. */
export function guarded(role, button) {
  if (!can(role)) {
    button.disabled = true;
    button.title = `needs the ${role} role or higher`;
    button.classList.add('forbidden');
  }
  return button;
}

/** "Ada Lovelace <ada@…>" or an account's name, for a Subject. */
export const subjectLabel = (s) => (s?.__typename === 'User' ? s.email : s ? `${s.name}${s.externalId ? ` (${s.externalId})` : ''}` : '(deleted)');
export const SUBJECT_FIELDS = '__typename ... on User { id email } ... on Account { id name externalId }';

/** Finds a user by email or external id, or an account by external id. */
export async function findSubject(kind, text) {
  const value = text.trim();
  if (kind === 'ACCOUNT') {
    const data = await gql('query($x: String) { account(externalId: $x) { id name externalId } }', { x: value });
    if (!data.account) throw new Error(`no account with external id ${value}`);
    return { ...data.account, __typename: 'Account' };
  }
  const byEmail = value.includes('@');
  const data = await gql(
    'query($email: String, $ext: String) { user(email: $email, externalId: $ext) { id email } }',
    byEmail ? { email: value } : { ext: value },
  );
  if (!data.user) throw new Error(`no user with ${byEmail ? 'email' : 'external id'} ${value}`);
  return { ...data.user, __typename: 'User' };
}
