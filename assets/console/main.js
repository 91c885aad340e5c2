// The console's shell: the key, the viewer, the tabs.

import { gql, session, setRole, show, errorBox } from './api.js';
import { scriptsTab } from './scripts.js';
import { segmentsTab } from './segments.js';
import { tagsTab } from './tags.js';
import { importTab } from './import.js';
import { webhooksTab } from './webhooks.js';

// Each tab: a label and a function building its pane (called once the role is known).
const TABS = [
  { id: 'scripts', label: 'Scripts', build: scriptsTab },
  { id: 'segments', label: 'Segments', build: segmentsTab },
  { id: 'tags', label: 'Tags', build: tagsTab },
  { id: 'webhooks', label: 'Webhooks', build: webhooksTab },
  { id: 'import', label: 'Import', build: importTab },
];

const $ = (id) => document.getElementById(id);

function showLogin(error) {
  $('app').hidden = true;
  $('viewer').hidden = true;
  $('login').hidden = false;
  show($('login-error'), error ? errorBox(error) : null);
  $('key-input').focus();
}

async function start() {
  if (!session.key()) return showLogin();
  let viewer;
  try {
    ({ viewer } = await gql('{ viewer { keyName role workspace } }'));
  } catch (error) {
    session.forget();
    return showLogin(error);
  }
  setRole(viewer.role);
  $('viewer-key').textContent = viewer.keyName;
  $('viewer-role').textContent = viewer.role;
  $('viewer-workspace').textContent = viewer.workspace;
  $('viewer').hidden = false;
  $('login').hidden = true;
  $('app').hidden = false;
  document.body.dataset.role = viewer.role;

  const panes = TABS.map((tab) => {
    const pane = document.createElement('section');
    pane.id = `pane-${tab.id}`;
    pane.className = 'pane';
    pane.hidden = true;
    return pane;
  });
  const built = new Set();
  const open = (index) => {
    TABS.forEach((tab, i) => {
      panes[i].hidden = i !== index;
      $(`tab-${tab.id}`).setAttribute('aria-selected', String(i === index));
    });
    if (!built.has(index)) {
      built.add(index);
      TABS[index].build(panes[index]);
    }
    sessionStorage.setItem('tagsmith.console.tab', TABS[index].id);
  };
  show($('tabs'), TABS.map((tab, i) => {
    const button = document.createElement('button');
    button.id = `tab-${tab.id}`;
    button.type = 'button';
    button.setAttribute('role', 'tab');
    button.textContent = tab.label;
    button.addEventListener('click', () => open(i));
    return button;
  }));
  show($('panes'), panes);
  const last = TABS.findIndex((t) => t.id === sessionStorage.getItem('tagsmith.console.tab'));
  open(last >= 0 ? last : 0);
}

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  session.save($('key-input').value.trim());
  $('key-input').value = '';
  start();
});
$('sign-out').addEventListener('click', () => {
  session.forget();
  sessionStorage.removeItem('tagsmith.console.tab');
  location.reload();
});

start();
