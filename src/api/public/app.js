// The nightwatch page: submit a task, watch your tasks, cancel and retry them. Plain DOM, no build
// step. Every value from the server goes into the page through textContent or a checked href, never
// as HTML. The list is polled: statuses are written to MySQL by workers in other processes, so the
// API has nothing to push without polling the database itself; polling the one list query every
// 1.5 s keeps the server stateless and works through any proxy.
'use strict';

const TOKEN_KEY = 'nightwatch.token';
const POLL_MS = 1500;
const HIDDEN_POLL_MS = 15000;
const PAGE_SIZE = 100;
const FINAL = new Set(['Succeeded', 'Failed', 'Cancelled']);

const $ = (selector) => document.querySelector(selector);
// The token lives for this tab's session only (sessionStorage: it survives a reload, not closing the
// tab, and no other tab or later visit reads it). Sign out forgets it at once. A token an earlier
// version of the page kept in localStorage is removed.
localStorage.removeItem(TOKEN_KEY);
let token = sessionStorage.getItem(TOKEN_KEY) || '';
let pollTimer = null;
/** Only the latest refresh renders: a slow poll answering after a newer one must not show older rows. */
let refreshSeq = 0;
/** id → { tr, cells, task }: rows are updated in place, so a button is never replaced under the pointer. */
const rows = new Map();

class ApiFailure extends Error {
  constructor(status, error) {
    super(error.message);
    this.status = status;
    this.error = error;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiFailure(0, { code: 'network', message: `the nightwatch API did not answer (${err.message}); is it running?` });
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiFailure(response.status, data?.error ?? { code: 'http', message: `${method} ${path} failed with HTTP ${response.status}` });
  }
  return data;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children);
  return node;
}

// --- token -----------------------------------------------------------------------------------

function showTokenError(message) {
  const p = $('#token-error');
  p.textContent = message;
  p.hidden = !message;
}

async function connect() {
  stopPolling();
  $('#whoami').textContent = '';
  $('#sign-out').hidden = !token;
  if (!token) {
    showTokenError('Enter your API token (top right) to submit and see your tasks.');
    return;
  }
  try {
    const me = await api('GET', '/me');
    showTokenError('');
    $('#whoami').textContent = `signed in as ${me.userId}`;
    fillNamespaces(me.allowedNamespaces);
    await refresh();
  } catch (err) {
    showTokenError(err.status === 401 ? `Token rejected: ${err.message}` : err.message);
    if (err.status !== 401) schedulePoll();
  }
}

function fillNamespaces(allowed) {
  const select = $('#namespace');
  const text = $('#namespace-text');
  const any = allowed.includes('*');
  select.hidden = any;
  select.disabled = any;
  text.hidden = !any;
  text.disabled = !any;
  $('label[for="namespace"]').htmlFor = any ? 'namespace-text' : 'namespace';
  if (!any) {
    const current = select.value;
    select.replaceChildren(...allowed.map((ns) => el('option', { value: ns, textContent: ns })));
    if (allowed.includes(current)) select.value = current;
  }
}

/** Use another token, or none: forget the previous user's list before anything else is shown. */
function useToken(next) {
  token = next;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  // A poll already on its way must not render the previous user's rows.
  refreshSeq += 1;
  rows.clear();
  $('#tasks tbody').replaceChildren();
  $('#empty').hidden = true;
  $('#refreshed').textContent = '';
  $('#list-error').textContent = '';
  clearErrors();
  if (!token) $('#namespace').replaceChildren();
  void connect();
}

$('#token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const next = $('#token').value.trim();
  $('#token').value = '';
  useToken(next);
});

$('#sign-out').addEventListener('click', () => {
  useToken('');
  $('#token').focus();
});

// --- submitting --------------------------------------------------------------------------------

const lines = (text) => text.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== '');

function submission() {
  const namespace = $('#namespace').hidden ? $('#namespace-text').value.trim() : $('#namespace').value;
  const info = { image: $('#image').value.trim() };
  const command = lines($('#command').value);
  const args = lines($('#args').value);
  const timeout = $('#timeout').value.trim();
  if (command.length > 0) info.command = command;
  if (args.length > 0) info.args = args;
  // Anything typed is sent, so the server's message (the one source of the rules) explains a bad value.
  if (timeout !== '') info.timeoutSeconds = /^\d+$/.test(timeout) ? Number(timeout) : timeout;
  return { name: $('#name').value.trim(), namespace, info };
}

function clearErrors() {
  for (const p of document.querySelectorAll('[data-error-for]')) p.textContent = '';
  for (const input of document.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  $('#submit-error').textContent = '';
  $('#submit-ok').textContent = '';
}

/** The error slot for a field: "info.args[3]" shows next to Arguments ("info.args"). */
function errorSlot(field) {
  for (const p of document.querySelectorAll('[data-error-for]')) {
    const key = p.dataset.errorFor;
    if (field === key || field.startsWith(`${key}[`) || field.startsWith(`${key}.`)) return p;
  }
  return null;
}

function showSubmitError(err) {
  const fields = err.error?.fields ?? [];
  const unplaced = [];
  for (const { field, message } of fields) {
    const slot = errorSlot(field);
    if (!slot) {
      unplaced.push(message);
      continue;
    }
    slot.textContent = slot.textContent ? `${slot.textContent}\n${message}` : message;
    slot.parentElement.querySelector('input:not([hidden]), select:not([hidden]), textarea')?.setAttribute('aria-invalid', 'true');
  }
  $('#submit-error').textContent =
    fields.length === 0 ? err.message : unplaced.length > 0 ? unplaced.join('\n') : 'Not submitted: fix the fields marked in red.';
}

$('#submit-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors();
  const button = $('#submit');
  button.disabled = true;
  try {
    const task = await api('POST', '/tasks', submission());
    $('#submit-ok').textContent = `Submitted task ${task.id} (${task.namespace}/${task.name}).`;
    $('#name').value = '';
    await refresh();
  } catch (err) {
    showSubmitError(err);
  } finally {
    button.disabled = false;
  }
});

// --- the task list ---------------------------------------------------------------------------------

/** Only http(s) links: a workflow URL is built from configuration, but a link must never run script. */
function safeHref(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : null;
  } catch {
    return null;
  }
}

function createRow(id) {
  const cells = {};
  const tr = el('tr');
  tr.dataset.taskId = id;
  for (const key of ['id', 'name', 'namespace', 'status', 'attempt', 'reason', 'created', 'workflow', 'actions']) {
    cells[key] = el('td', { className: key === 'actions' ? 'actions-cell' : key });
    tr.append(cells[key]);
  }
  const row = { tr, cells, task: null };
  rows.set(id, row);
  return row;
}

/** "2026-11-22 14:05:09" in the viewer's time zone: short, and sorts the way it reads. */
function localTime(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function updateRow(row, task) {
  const before = row.task;
  row.task = task;
  const { cells, tr } = row;
  tr.dataset.name = task.name;
  tr.dataset.status = task.status;
  setText(cells.id, task.id);
  setText(cells.name, task.name);
  setText(cells.namespace, task.namespace);
  setText(cells.attempt, String(task.attempt));
  setText(cells.reason, task.reason ?? '');
  setText(cells.created, localTime(task.createdAt));
  if (before?.status !== task.status) {
    cells.status.replaceChildren(el('span', { className: `badge badge-${task.status}`, textContent: task.status }));
  }
  if (before?.workflowUrl !== task.workflowUrl) {
    const href = safeHref(task.workflowUrl);
    cells.workflow.replaceChildren(
      href ? el('a', { href, target: '_blank', rel: 'noopener noreferrer', textContent: task.workflowId }) : document.createTextNode(task.workflowId),
    );
  }
  if (before === null || FINAL.has(before.status) !== FINAL.has(task.status)) {
    const final = FINAL.has(task.status);
    const button = el('button', { type: 'button', className: 'secondary', textContent: final ? 'Retry' : 'Cancel' });
    button.addEventListener('click', () => act(button, row.task.id, final ? 'retry' : 'cancel'));
    cells.actions.replaceChildren(button);
  }
}

async function act(button, id, action) {
  button.disabled = true;
  $('#list-error').textContent = '';
  try {
    await api('POST', `/tasks/${encodeURIComponent(id)}/${action}`, {});
    await refresh();
  } catch (err) {
    $('#list-error').textContent = err.message;
  } finally {
    button.disabled = false;
  }
}

function render(tasks) {
  const tbody = $('#tasks tbody');
  const seen = new Set();
  tasks.forEach((task, index) => {
    seen.add(task.id);
    const row = rows.get(task.id) ?? createRow(task.id);
    updateRow(row, task);
    if (tbody.children[index] !== row.tr) tbody.insertBefore(row.tr, tbody.children[index] ?? null);
  });
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.tr.remove();
      rows.delete(id);
    }
  }
  $('#empty').hidden = tasks.length > 0;
}

async function refresh() {
  stopPolling();
  const seq = ++refreshSeq;
  try {
    const page = await api('GET', `/tasks?limit=${PAGE_SIZE}`);
    if (seq !== refreshSeq) return;
    render(page.tasks);
    $('#list-error').textContent = '';
    const more = page.nextCursor ? ` (newest ${PAGE_SIZE} shown)` : '';
    $('#refreshed').textContent = `updated ${new Date().toLocaleTimeString()}${more}`;
  } catch (err) {
    if (seq !== refreshSeq) return;
    if (err.status === 401) {
      showTokenError(`Token rejected: ${err.message}`);
      return;
    }
    $('#list-error').textContent = `Could not refresh the list: ${err.message}`;
  }
  schedulePoll();
}

function schedulePoll() {
  stopPolling();
  pollTimer = setTimeout(refresh, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
}

function stopPolling() {
  clearTimeout(pollTimer);
  pollTimer = null;
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && token && pollTimer !== null) void refresh();
});

void connect();
