// Webhooks (ADMIN): the list, a new one (its secret shown once), a
// webhook's deliveries with status and attempts, redeliver.

import { gql, h, show, errorBox, tagList, can } from './api.js';

const EVENTS = ['TAG_ADDED', 'TAG_REMOVED', 'SEGMENT_ENTERED', 'SEGMENT_EXITED', 'SCRIPT_FAILED'];
const FIELDS = 'id url events tags enabled description createdAt';
const DELIVERIES = `query($id: ID!, $status: DeliveryStatus) { webhook(id: $id) { id url deliveries(first: 50, status: $status) {
  totalCount nodes { id eventType status attempts lastStatusCode lastError nextAttemptAt createdAt deliveredAt } } } }`;

const when = (at) => (at ? new Date(at).toLocaleString() : '—');

export function webhooksTab(pane) {
  if (!can('ADMIN')) {
    show(pane, h('div.card', { id: 'webhooks-forbidden' }, h('h2', {}, 'Webhooks'),
      h('p.muted', {}, 'Webhooks and their deliveries need the ADMIN role.')));
    return;
  }
  let webhooks = [];
  const list = h('div.list');
  const listError = h('div');
  const deliveriesPanel = h('div', { id: 'webhook-deliveries' });

  // A new webhook.
  const urlInput = h('input', { type: 'text', id: 'webhook-url', placeholder: 'https://example.com/hooks/tagsmith', 'aria-label': 'Webhook URL' });
  urlInput.style.flex = '1';
  const eventBoxes = EVENTS.map((kind) => h('input', { type: 'checkbox', value: kind, checked: kind.startsWith('TAG'), 'aria-label': kind }));
  const tagsInput = h('input', { type: 'text', id: 'webhook-tags', placeholder: "only these tags, separated by ; ('VIP', 'Region: *'); empty: every tag", 'aria-label': 'Tag patterns' });
  tagsInput.style.flex = '1';
  const descriptionInput = h('input', { type: 'text', id: 'webhook-description', placeholder: 'description (optional)', 'aria-label': 'Description' });
  const created = h('div', { id: 'webhook-created' });

  const create = h('button.primary', {
    type: 'button',
    id: 'create-webhook',
    onclick: async () => {
      show(created);
      try {
        const { createWebhook } = await gql(`mutation($input: WebhookInput!) { createWebhook(input: $input) { secret webhook { ${FIELDS} } } }`, {
          input: {
            url: urlInput.value.trim(),
            events: eventBoxes.filter((b) => b.checked).map((b) => b.value),
            tags: tagList(tagsInput.value),
            description: descriptionInput.value.trim() || null,
          },
        });
        show(created, secretView(createWebhook.secret, createWebhook.webhook.url, () => show(created)));
        urlInput.value = '';
        tagsInput.value = '';
        descriptionInput.value = '';
        await load();
      } catch (error) {
        show(created, errorBox(error));
      }
    },
  }, 'Create webhook');

  // What a webhook's row can do; each reloads the list (or the deliveries) after.
  const act = async (mutation, variables, then = load) => {
    try {
      const data = await gql(mutation, variables);
      await then(data);
    } catch (error) {
      show(listError, errorBox(error));
    }
  };

  async function openDeliveries(webhook, status = '') {
    show(deliveriesPanel, h('p.muted', {}, 'loading deliveries…'));
    let found;
    try {
      ({ webhook: found } = await gql(DELIVERIES, { id: webhook.id, status: status || null }));
    } catch (error) {
      return show(deliveriesPanel, errorBox(error));
    }
    if (!found) return show(deliveriesPanel, h('p.muted', {}, 'This webhook no longer exists.'));
    const filter = h('select', { id: 'delivery-status', 'aria-label': 'Delivery status' },
      ['', 'PENDING', 'SUCCEEDED', 'FAILED'].map((s) => h('option', { value: s, selected: s === status }, s ? s.toLowerCase() : 'every status')));
    filter.addEventListener('change', () => openDeliveries(webhook, filter.value));
    const { nodes, totalCount } = found.deliveries;
    const redeliverResult = h('div', { id: 'redeliver-result' });
    show(deliveriesPanel,
      h('h3', {}, `Deliveries to ${found.url}`, h('span.muted', {}, ` (${totalCount}${totalCount > nodes.length ? `, the newest ${nodes.length} shown` : ''}) `)),
      h('div.row', {}, filter,
        h('button', { type: 'button', id: 'refresh-deliveries', onclick: () => openDeliveries(webhook, filter.value) }, 'Refresh'),
        h('button', {
          type: 'button',
          id: 'ping-webhook',
          title: 'sends a webhook.ping event now',
          onclick: () => act('mutation($id: ID!) { testWebhook(id: $id) { id } }', { id: webhook.id }, () => openDeliveries(webhook, filter.value)),
        }, 'Send a ping')),
      redeliverResult,
      nodes.length ? h('table.deliveries', {},
        h('tr', {}, ['created', 'event', 'status', 'attempts', 'last answer', 'delivered', 'next attempt', ''].map((c) => h('th', {}, c))),
        nodes.map((d) => h(`tr.delivery.${d.status.toLowerCase()}`, { dataset: { delivery: d.id, status: d.status } },
          h('td', {}, when(d.createdAt)),
          h('td.event', {}, d.eventType),
          h('td.status', {}, d.status.toLowerCase()),
          h('td.attempts', {}, d.attempts),
          h('td', {}, d.lastError ?? (d.lastStatusCode ? `HTTP ${d.lastStatusCode}` : '—')),
          h('td', {}, when(d.deliveredAt)),
          h('td', {}, d.status === 'PENDING' ? when(d.nextAttemptAt) : '—'),
          h('td', {}, h('button.redeliver', {
            type: 'button',
            title: 'queues this message again (same webhook-id), whatever its status',
            onclick: async () => {
              try {
                const { redeliverWebhook: r } = await gql('mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id status attempts } }', { id: d.id });
                show(redeliverResult, h('p.ok', {}, `Queued again (${r.status.toLowerCase()}, ${r.attempts} attempt${r.attempts === 1 ? '' : 's'} so far).`));
              } catch (error) {
                show(redeliverResult, errorBox(error));
              }
            },
          }, 'Redeliver'))))) : h('p.muted', {}, 'No deliveries yet: they appear when a matching event happens.'));
  }

  async function load() {
    try {
      ({ webhooks } = await gql(`{ webhooks { ${FIELDS} } }`));
    } catch (error) {
      show(listError, errorBox(error));
      return;
    }
    show(listError);
    show(list, webhooks.length ? h('table.webhooks', { id: 'webhooks-table' },
      h('tr', {}, ['URL', 'events', 'tags', 'enabled', 'created', ''].map((c) => h('th', {}, c))),
      webhooks.map((w) => h('tr', { dataset: { webhook: w.url } },
        h('td', {}, h('a', { href: '#', onclick: (e) => { e.preventDefault(); openDeliveries(w); } }, w.url),
          w.description ? h('div.muted', {}, w.description) : null),
        h('td', {}, w.events.map((e) => e.toLowerCase()).join(', ')),
        h('td', {}, w.tags.join('; ') || 'every tag'),
        h('td.enabled', {}, w.enabled ? 'yes' : 'no'),
        h('td', {}, when(w.createdAt)),
        h('td', {},
          h('button', {
            type: 'button',
            onclick: () => act(`mutation($id: ID!, $input: WebhookInput!) { updateWebhook(id: $id, input: $input) { id } }`,
              { id: w.id, input: { url: w.url, events: w.events, enabled: !w.enabled } }),
          }, w.enabled ? 'Disable' : 'Enable'),
          ' ',
          h('button', {
            type: 'button',
            title: 'a new secret; the old one keeps signing beside it for 24 hours',
            onclick: () => act('mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { url } } }', { id: w.id },
              ({ rotateWebhookSecret: r }) => show(created, secretView(r.secret, r.webhook.url, () => show(created)))),
          }, 'Rotate secret'),
          ' ',
          h('button.danger', {
            type: 'button',
            onclick: () => {
              if (window.confirm(`Delete the webhook to ${w.url} and its delivery log?`)) {
                act('mutation($id: ID!) { deleteWebhook(id: $id) }', { id: w.id }, async () => { show(deliveriesPanel); await load(); });
              }
            },
          }, 'Delete')))))
      : h('p.muted', {}, 'No webhooks yet.'));
  }

  show(pane,
    h('div.columns', {},
      h('div.card', {},
        h('h2', {}, 'New webhook'),
        h('p.muted', {}, 'Deliveries are signed (Standard Webhooks) with the secret shown once below; an http:// address only to hosts the server allows.'),
        h('div.row', {}, urlInput),
        h('div.row', { id: 'webhook-events' }, eventBoxes.map((box) => h('label', {}, box, ` ${box.value.toLowerCase()}`))),
        h('div.row', {}, tagsInput),
        h('div.row', {}, descriptionInput, create),
        created),
      h('div.card', {}, h('h2', {}, 'Webhooks'), listError, list, deliveriesPanel)));
  load();
}

/** The secret, once: selected on click, with a copy button, until dismissed. */
function secretView(secret, url, dismiss) {
  const value = h('code.secret', { id: 'webhook-secret', title: 'click to select' }, secret);
  value.addEventListener('click', () => window.getSelection().selectAllChildren(value));
  const copied = h('span.muted', {});
  return h('div.secret-box', { role: 'status' },
    h('p', {}, h('strong', {}, `The signing secret of ${url}`), ': copy it now, it is shown only once (rotate it to get a new one).'),
    h('div.row', {}, value,
      h('button', {
        type: 'button',
        id: 'copy-secret',
        onclick: async () => {
          try {
            await navigator.clipboard.writeText(secret);
            copied.textContent = 'copied';
          } catch {
            window.getSelection().selectAllChildren(value);
            copied.textContent = 'selected: press Ctrl+C (or ⌘C) to copy';
          }
        },
      }, 'Copy'),
      copied,
      h('button', { type: 'button', onclick: dismiss }, 'I have stored it')));
}
