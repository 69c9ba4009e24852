// The recurring-tasks view of the page (issue 9): create one, watch each one's live state (paused,
// next run times, recent runs and their statuses), pause, resume, run now, delete. Polled like the
// task list, with the token the page holds for this tab (sessionStorage). Every server value goes
// into the page through textContent, never as HTML.
'use strict';

(() => {
  const TOKEN_KEY = 'nightwatch.token';
  const POLL_MS = 3000;
  const HIDDEN_POLL_MS = 30000;
  const $ = (selector) => document.querySelector(selector);
  let timer = null;
  let seq = 0;

  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${token()}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = data?.error ?? { message: `${method} ${path} failed with HTTP ${response.status}` };
      const fields = (error.fields ?? []).map((f) => `${f.field}: ${f.message}`).join('; ');
      throw new Error(fields || error.message);
    }
    return data;
  }

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props);
    node.append(...children);
    return node;
  }

  const time = (iso) => new Date(iso).toLocaleString();

  function timing(rec) {
    const s = rec.settings;
    if (s.cron) return `cron ${s.cron}${s.timeZone ? ` (${s.timeZone})` : ''}`;
    if (s.calendar) return `calendar ${JSON.stringify(s.calendar)}${s.timeZone ? ` (${s.timeZone})` : ''}`;
    if (s.every) return `every ${s.every}${s.offset ? ` +${s.offset}` : ''}`;
    return `${s.delay} after each run`;
  }

  function button(text, onClick) {
    const b = el('button', { type: 'button', className: 'secondary', textContent: text });
    b.addEventListener('click', async () => {
      b.disabled = true;
      $('#recurring-error').textContent = '';
      try {
        await onClick();
        await refresh();
      } catch (err) {
        $('#recurring-error').textContent = err.message;
      } finally {
        b.disabled = false;
      }
    });
    return b;
  }

  function render(list) {
    const tbody = $('#recurring tbody');
    tbody.replaceChildren(
      ...list.map((rec) => {
        const live = rec.live ?? {};
        const state = live.missing ? 'missing in Temporal' : live.unavailable ? 'unknown' : live.paused ? 'paused' : live.status && live.status !== 'RUNNING' ? 'finished' : 'active';
        const next = (live.nextRunTimes ?? []).slice(0, 3).map(time).join(', ');
        const runs = el(
          'span',
          {},
          ...rec.recentRuns.map((r) => el('span', { className: `badge badge-${r.status}`, title: `${r.name} (task ${r.id})`, textContent: r.status })),
        );
        const base = `/recurring-tasks/${encodeURIComponent(rec.id)}`;
        const tr = el(
          'tr',
          {},
          el('td', { textContent: rec.id }),
          el('td', { textContent: rec.name }),
          el('td', { textContent: rec.namespace }),
          el('td', { textContent: timing(rec) }),
          el('td', { textContent: state }),
          el('td', { textContent: next }),
          el('td', {}, runs),
          el(
            'td',
            { className: 'actions-cell' },
            live.paused ? button('Resume', () => api('POST', `${base}/resume`, {})) : button('Pause', () => api('POST', `${base}/pause`, {})),
            button('Run now', () => api('POST', `${base}/trigger`, {})),
            button('Delete', () => api('DELETE', base)),
          ),
        );
        tr.dataset.recurringId = rec.id;
        tr.dataset.name = rec.name;
        return tr;
      }),
    );
    $('#recurring-empty').hidden = list.length > 0;
  }

  async function refresh() {
    clearTimeout(timer);
    const mine = ++seq;
    if (!token()) {
      // Signed out: show nothing of the last user's.
      $('#recurring tbody').replaceChildren();
      $('#recurring-empty').hidden = true;
    } else {
      try {
        const page = await api('GET', '/recurring-tasks?limit=50');
        if (mine !== seq) return;
        render(page.recurringTasks);
        $('#recurring-error').textContent = '';
      } catch (err) {
        if (mine !== seq) return;
        $('#recurring-error').textContent = `Could not refresh recurring tasks: ${err.message}`;
      }
    }
    timer = setTimeout(refresh, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }

  $('#recurring-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = event.target;
    const value = (name) => form.elements[name].value.trim();
    const body = { name: value('name'), namespace: value('namespace'), info: { image: value('image') } };
    const args = value('args');
    if (args) body.info.args = args.split('\n').map((a) => a.trim()).filter(Boolean);
    body[value('kind')] = value('when');
    if (value('timeZone')) body.timeZone = value('timeZone');
    $('#recurring-form-error').textContent = '';
    try {
      await api('POST', '/recurring-tasks', body);
      form.reset();
      await refresh();
    } catch (err) {
      $('#recurring-form-error').textContent = err.message;
    }
  });

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) void refresh();
  });
  void refresh();
})();
