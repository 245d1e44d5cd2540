// swh-scheduler dashboard: a few views over the JSON routes of /ui/api (src/dashboard/mod.rs).
// No framework: h() builds elements (text is never parsed as HTML), views re-render on
// navigation, and the overview and a type's page refresh themselves while they are shown.
'use strict';

const REFRESH_MS = 5000;
const STATUSES = ['next_run_not_scheduled', 'next_run_scheduled', 'completed', 'disabled'];
const STATUS_LABELS = { next_run_not_scheduled: 'waiting', next_run_scheduled: 'scheduled',
  completed: 'completed', disabled: 'disabled' };
const RUN_SERIES = [
  { key: 'd', label: 'dispatched', color: 'var(--c1)' },
  { key: 'e', label: 'eventful', color: 'var(--c2)' },
  { key: 'u', label: 'uneventful', color: 'var(--c3)' },
  { key: 'f', label: 'failed', color: 'var(--c4)' },
  { key: 'l', label: 'lost', color: 'var(--c5)' },
];
const VISIT_SERIES = [
  { key: 'vs', label: 'sent', color: 'var(--c1)' },
  { key: 've', label: 'eventful', color: 'var(--c2)' },
  { key: 'vu', label: 'uneventful', color: 'var(--c3)' },
  { key: 'vf', label: 'failed', color: 'var(--c4)' },
  { key: 'vn', label: 'not found', color: 'var(--c6)' },
  { key: 'vl', label: 'lost', color: 'var(--c5)' },
];

// ---- helpers ------------------------------------------------------------------------------

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function svg(tag, attrs, ...kids) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const kid of kids.flat()) if (kid) el.append(kid);
  return el;
}

const fmt = n => (n === null || n === undefined) ? '–' : Number(n).toLocaleString('en-US');

function num(n, cls) {
  return h('td', { class: 'n ' + (cls || '') + (n ? '' : ' zero'), 'data-n': n ?? '' }, fmt(n));
}

function link(path, ...kids) {
  return h('a', { href: path, 'data-link': true }, ...kids);
}

// "3 min ago" / "in 2 h", the absolute time on hover; refreshed every 30 s.
function rel(iso) {
  if (!iso) return h('span', { class: 'muted' }, 'never');
  return h('time', { datetime: iso, title: new Date(iso).toLocaleString() }, ago(iso));
}

function ago(iso) {
  const s = (Date.parse(iso) - Date.now()) / 1000;
  const a = Math.abs(s);
  const v = a < 60 ? [Math.round(a), 's'] : a < 3600 ? [Math.round(a / 60), 'min']
    : a < 172800 ? [Math.round(a / 3600), 'h'] : [Math.round(a / 86400), 'd'];
  return s < 0 ? `${v[0]} ${v[1]} ago` : `in ${v[0]} ${v[1]}`;
}

function duration(s) {
  if (s === null || s === undefined) return '–';
  const a = Math.abs(s);
  if (a < 60) return `${a.toFixed(a < 10 ? 1 : 0)} s`;
  if (a < 3600) return `${(a / 60).toFixed(1)} min`;
  if (a < 172800) return `${(a / 3600).toFixed(1)} h`;
  return `${(a / 86400).toFixed(1)} d`;
}

setInterval(() => {
  for (const t of document.querySelectorAll('time[datetime]')) t.textContent = ago(t.dateTime);
}, 30000);

async function api(path, opts) {
  const r = await fetch('/ui/api/' + path, opts);
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new Error((body && body.error) || `${r.status} ${r.statusText}`);
  return body;
}

function post(path, body) {
  return api(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-swh-dashboard': '1' },
    body: JSON.stringify(body || {}),
  });
}

function errorBox(e) {
  return h('p', { class: 'error', role: 'alert' }, String(e.message || e));
}

// Asks before an action; resolves to true when confirmed.
function confirmAction(text) {
  const d = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  d.returnValue = '';
  d.showModal();
  document.getElementById('confirm-ok').focus();
  return new Promise(ok => d.addEventListener('close', () => ok(d.returnValue === 'ok'),
    { once: true }));
}

// ---- charts -------------------------------------------------------------------------------

// A line chart of per-minute counts: points [{t, counts}], series [{key, label, color}].
function chart(points, series) {
  const W = 1000, H = 170, L = 44, R = 8, T = 8, B = 22;
  const max = Math.max(1, ...points.flatMap(p => series.map(s => p.counts[s.key] || 0)));
  const x = i => L + (W - L - R) * (points.length < 2 ? 0 : i / (points.length - 1));
  const y = v => T + (H - T - B) * (1 - v / max);
  const g = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none',
    role: 'img', 'aria-label': 'runs per minute' });
  for (const f of [0, 0.5, 1]) {
    const v = Math.round(max * f);
    g.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    const t = svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' });
    t.textContent = fmt(v);
    g.append(t);
  }
  for (const i of [0, Math.floor((points.length - 1) / 2), points.length - 1]) {
    if (!points[i]) continue;
    const t = svg('text', { x: x(i), y: H - 6, 'text-anchor': i === 0 ? 'start' : i ===
      points.length - 1 ? 'end' : 'middle' });
    t.textContent = new Date(points[i].t).toLocaleTimeString([], { hour: '2-digit',
      minute: '2-digit' });
    g.append(t);
  }
  for (const s of series) {
    const d = points.map((p, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(p.counts[s.key] ||
      0).toFixed(1)}`).join('');
    g.append(svg('path', { d, fill: 'none', stroke: s.color, 'stroke-width': 1.6,
      'vector-effect': 'non-scaling-stroke' }));
  }
  const totals = {};
  for (const s of series) totals[s.key] = points.reduce((a, p) => a + (p.counts[s.key] || 0), 0);
  const legend = h('div', { class: 'legend' }, series.map(s =>
    h('span', {}, h('i', { style: `background:${s.color}` }), `${s.label} ${fmt(totals[s.key])}`)));
  return h('div', { class: 'panel' }, g, legend);
}

async function chartPanel(query, series, minutes) {
  const data = await api(`series?minutes=${minutes}${query}`);
  return chart(data.points, series);
}

// ---- views --------------------------------------------------------------------------------

let refreshTimer = null;
let view = null;

function live(ok) {
  const el = document.getElementById('live');
  el.textContent = ok ? `updated ${new Date().toLocaleTimeString()}` : 'not updated';
  el.classList.toggle('stale', !ok);
}

// Renders a view now, then again every REFRESH_MS while it is the one shown (and the page
// is visible).
async function show(render) {
  clearTimeout(refreshTimer);
  const token = view = {};
  const main = document.getElementById('main');
  const tick = async first => {
    if (view !== token) return;
    if (!first && document.hidden) {
      refreshTimer = setTimeout(() => tick(false), REFRESH_MS);
      return;
    }
    try {
      const node = await render(first);
      if (view !== token) return;
      if (node) main.replaceChildren(node);
      live(true);
    } catch (e) {
      if (first) main.replaceChildren(errorBox(e));
      live(false);
    }
    if (render.live) refreshTimer = setTimeout(() => tick(false), REFRESH_MS);
  };
  await tick(true);
}

function overview() {
  const render = async () => {
    const o = await api('overview');
    const minutes = 360;
    const parts = [h('h1', {}, 'Overview')];
    if (!o.actions) parts.push(h('p', { class: 'muted' }, o.actions_refused));
    parts.push(h('h2', {}, 'Runs per minute, all task types, last 6 hours'),
      await chartPanel('', RUN_SERIES, minutes));
    parts.push(h('h2', {}, 'Task types'), typesTable(o.types));
    if (o.visit_types.length) {
      parts.push(h('h2', {}, 'Visit types'), visitTable(o.visit_types));
    }
    return h('div', {}, parts);
  };
  render.live = true;
  return show(render);
}

function typesTable(types) {
  if (!types.length) return h('p', { class: 'muted' }, 'No task type yet.');
  const head = h('thead', {},
    h('tr', {}, h('th', {}), h('th', { class: 'group', colspan: 4 }, 'tasks'),
      h('th', { class: 'group', colspan: 3 }, 'due now'),
      h('th', { class: 'group', colspan: 2 }, 'sent'),
      h('th', { class: 'group', colspan: 5 }, 'runs ended, last hour')),
    h('tr', {}, h('th', {}, 'type'),
      STATUSES.map((s, i) => h('th', { class: 'n' + (i ? '' : ' sep') }, STATUS_LABELS[s])),
      h('th', { class: 'n sep' }, 'due'), h('th', { class: 'n' }, 'overdue'),
      h('th', { class: 'n' }, 'lag'), h('th', { class: 'n sep' }, 'in flight'),
      h('th', { class: 'n' }, 'queue'),
      h('th', { class: 'n sep' }, 'eventful'), h('th', { class: 'n' }, 'uneventful'),
      h('th', { class: 'n' }, 'failed'), h('th', { class: 'n' }, 'lost'),
      h('th', { class: 'n' }, 'failing now')));
  const rows = types.map(t => {
    const q = t.queue;
    const mql = t.max_queue_length;
    const fill = (q !== null && mql) ? Math.min(1, q / mql) : null;
    const lag = t.oldest_due ? (Date.now() - Date.parse(t.oldest_due)) / 1000 : null;
    const lh = t.last_hour;
    return h('tr', { 'data-type': t.task_type },
      h('td', {}, link(`/ui/types/${encodeURIComponent(t.task_type)}`, t.task_type)),
      STATUSES.map((s, i) => num(t.tasks[s], i ? '' : 'sep')),
      num(t.due + t.due_prio, 'sep'),
      num(t.overdue, t.overdue ? 'warn' : ''),
      h('td', { class: 'n' + (lag === null ? ' zero' : ''), title: t.oldest_due || '',
        'data-n': lag === null ? '' : Math.round(lag) }, lag === null ? '–' : duration(lag)),
      num(t.in_flight, 'sep'),
      h('td', { class: 'n', 'data-n': q ?? '' }, q === null ? '–' : fmt(q),
        mql ? h('span', { class: 'muted' }, ` / ${fmt(mql)}`) : '',
        fill === null ? '' : h('span', { class: 'bar' + (fill >= 1 ? ' full' : '') },
          h('i', { style: `width:${(fill * 100).toFixed(0)}%` }))),
      num(lh.e || 0, 'sep' + (lh.e ? ' okc' : '')),
      num(lh.u || 0), num(lh.f || 0, lh.f ? 'bad' : ''), num(lh.l || 0, lh.l ? 'bad' : ''),
      num(t.failing, t.failing ? 'bad' : ''));
  });
  return h('div', { class: 'scroll' }, h('table', { id: 'types' }, head, h('tbody', {}, rows)));
}

function visitTable(vts) {
  const head = h('thead', {}, h('tr', {}, h('th', {}, 'visit type'),
    h('th', { class: 'n sep' }, 'eligible'), h('th', { class: 'n' }, 'awaiting result'),
    h('th', { class: 'n' }, 'never visited'), h('th', { class: 'n' }, 'pending changes'),
    h('th', { class: 'n' }, 'known'), h('th', { class: 'n' }, 'queue'),
    h('th', { class: 'n sep' }, 'sent, last hour'), h('th', { class: 'n' }, 'results'),
    h('th', { class: 'sep' }, 'last listing')));
  const rows = vts.map(v => {
    const lh = v.last_hour;
    const results = ['ve', 'vu', 'vf', 'vn', 'vl'].reduce((a, k) => a + (lh[k] || 0), 0);
    const latest = v.listers.map(l => l.updated).filter(Boolean).sort().pop();
    return h('tr', { 'data-visit-type': v.visit_type },
      h('td', {}, link(`/ui/visits/${encodeURIComponent(v.visit_type)}`, v.visit_type)),
      num(v.eligible, 'sep'),
      num(v.awaiting), num(v.never_visited), num(v.pending_changes), num(v.known),
      h('td', { class: 'n' }, v.queue === null ? '–' : fmt(v.queue),
        v.max_queue_length ? h('span', { class: 'muted' }, ` / ${fmt(v.max_queue_length)}`) : ''),
      num(lh.vs || 0, 'sep'),
      num(results), h('td', { class: 'sep' }, latest ? rel(latest) : '–'));
  });
  return h('div', { class: 'scroll' }, h('table', { id: 'visit-types' }, head, h('tbody', {}, rows)));
}

function taskRow(t, score, actions, refresh) {
  const args = [JSON.stringify(t.args), JSON.stringify(t.kwargs)].join(' ');
  return h('tr', { 'data-task': t.id },
    h('td', {}, link(`/ui/tasks/${t.id}`, String(t.id))),
    h('td', {}, h('span', { class: 'chip ' + t.status }, STATUS_LABELS[t.status] || t.status)),
    h('td', {}, score ? rel(score) : rel(t.next_run)),
    h('td', {}, t.policy), h('td', {}, t.priority || ''),
    h('td', { class: 'args', title: args }, args),
    h('td', {}, taskActions(t, actions, refresh)));
}

function taskActions(t, allowed, done) {
  if (!allowed) return '';
  const act = (name, label, cls) => h('button', {
    type: 'button', class: cls, 'data-action': name,
    onclick: async ev => {
      if (!await confirmAction(`${label} task ${t.id} (${t.task_type})?`)) return;
      ev.target.disabled = true;
      try {
        await post(`tasks/${t.id}/${name}`);
        await done();
      } catch (e) {
        alert(e.message);
        ev.target.disabled = false;
      }
    },
  }, label);
  return [
    act('respawn', 'Respawn'),
    t.status === 'disabled' ? act('enable', 'Enable') : act('disable', 'Disable', 'danger'),
  ];
}

function tasksTable(firstColumn) {
  return h('table', { class: 'tasks' },
    h('thead', {}, h('tr', {}, h('th', {}, 'task'), h('th', {}, 'status'),
      h('th', {}, firstColumn), h('th', {}, 'policy'), h('th', {}, 'priority'),
      h('th', {}, 'arguments'), h('th', {}, ''))),
    h('tbody', {}));
}

// A paged list: fetches `path` with the cursor of the page before.
function pagedTasks(path, column, actions) {
  const box = h('div', {});
  const table = tasksTable(column);
  const more = h('button', { type: 'button' }, 'More');
  const count = h('p', { class: 'muted' });
  let cursor = null;
  const load = async reset => {
    if (reset) {
      cursor = null;
      table.tBodies[0].replaceChildren();
    }
    const sep = path.includes('?') ? '&' : '?';
    const p = await api(`${path}${sep}limit=50${cursor ? '&cursor=' + encodeURIComponent(cursor) : ''}`);
    for (let i = 0; i < p.tasks.length; i++) {
      table.tBodies[0].append(taskRow(p.tasks[i], p.scores[i], actions, () => load(true)));
    }
    cursor = p.next;
    more.hidden = !cursor;
    count.textContent = `${fmt(table.tBodies[0].rows.length)} shown of ${fmt(p.total)}`;
  };
  more.addEventListener('click', () => load(false).catch(e => box.append(errorBox(e))));
  box.append(count, h('div', { class: 'scroll' }, table), h('div', { class: 'row' }, more));
  return { box, load };
}

function typeView(name, tab) {
  const enc = encodeURIComponent(name);
  let minutes = 360;
  const render = async first => {
    const o = await api('overview');
    const t = o.types.find(x => x.task_type === name);
    if (!t) throw new Error(`no task type ${name}`);
    const cards = h('div', { class: 'cards', id: 'type-cards' },
      STATUSES.map(s => card(STATUS_LABELS[s], t.tasks[s], s)),
      card('due now', t.due + t.due_prio, 'due'), card('overdue', t.overdue, 'overdue'),
      card('in flight', t.in_flight, 'in_flight'), card('queue', t.queue, 'queue'),
      card('failing', t.failing, 'failing'));
    if (!first) {
      document.getElementById('type-cards')?.replaceWith(cards);
      const c = await chartPanel(`&name=${enc}`, RUN_SERIES, minutes);
      document.getElementById('type-chart')?.replaceChildren(c);
      return null;
    }
    const chartBox = h('div', { id: 'type-chart' }, await chartPanel(`&name=${enc}`, RUN_SERIES,
      minutes));
    const range = h('select', { 'aria-label': 'chart range', onchange: async ev => {
      minutes = Number(ev.target.value);
      chartBox.replaceChildren(await chartPanel(`&name=${enc}`, RUN_SERIES, minutes));
    } }, [[60, '1 hour'], [360, '6 hours'], [1440, '24 hours']].map(([v, l]) =>
      h('option', { value: v, selected: v === minutes }, l)));
    const tabs = h('nav', { class: 'tabs' }, [['due', 'Due'], ['failing', 'Failing'],
      ['search', 'Search']].map(([k, l]) => h('a', { href: `/ui/types/${enc}?tab=${k}`,
      'data-link': true, class: k === tab ? 'on' : '' }, l)));
    let body;
    if (tab === 'search') body = searchBox(name, o.actions);
    else if (tab === 'failing') body = failingBox(name, o.actions);
    else {
      const p = pagedTasks(`types/${enc}/due`, 'due since', o.actions);
      await p.load(true);
      body = p.box;
    }
    return h('div', {}, h('h1', {}, name, ' ', h('span', { class: 'muted' }, t.backend_name)),
      h('p', { class: 'muted' }, t.description, t.interval_s ? ` · interval ${duration(t.interval_s)}`
        : ''), cards, h('div', { class: 'row' }, h('h2', {}, 'Runs per minute'), range),
      chartBox, tabs, body);
  };
  render.live = true;
  return show(render);
}

function card(label, value, key) {
  return h('div', { class: 'card', 'data-k': key }, h('div', { class: 'v' }, fmt(value)),
    h('div', { class: 'k' }, label));
}

function failingBox(name, actions) {
  const enc = encodeURIComponent(name);
  const p = pagedTasks(`types/${enc}/failing`, 'failed', actions);
  p.load(true).catch(e => p.box.append(errorBox(e)));
  if (!actions) return p.box;
  // a day ago, in the browser's time zone (what datetime-local shows)
  const offset = new Date().getTimezoneOffset() * 60000;
  const day = new Date(Date.now() - 86400000 - offset).toISOString().slice(0, 16);
  const since = h('input', { type: 'datetime-local', value: day, 'aria-label': 'since' });
  const status = h('span', { class: 'muted' });
  const go = h('button', { type: 'button', class: 'primary', id: 'respawn-failing', onclick: async () => {
    const from = new Date(since.value);
    if (isNaN(from)) return;
    if (!await confirmAction(`Respawn every task of ${name} that failed since ${from.toLocaleString()}?`)) return;
    go.disabled = true;
    let offset = 0, total = 0;
    try {
      for (;;) {
        const r = await post(`types/${enc}/respawn-failing`, { since: from.toISOString(), offset });
        total += r.respawned;
        status.textContent = `${fmt(total)} respawned…`;
        if (r.next === null) break;
        offset = r.next;
      }
      status.textContent = `${fmt(total)} respawned`;
      await p.load(true);
    } catch (e) {
      status.textContent = e.message;
    }
    go.disabled = false;
  } }, 'Respawn failing since');
  return h('div', {}, h('div', { class: 'row' }, go, since, status), p.box);
}

function searchBox(name, actions) {
  const enc = encodeURIComponent(name);
  const input = h('input', { type: 'search', placeholder: 'text in the arguments',
    'aria-label': 'text in the arguments', id: 'arg-search' });
  const table = tasksTable('next run');
  const bar = h('i');
  const progress = h('span', { class: 'progress' }, bar);
  const status = h('span', { class: 'muted' });
  let running = null;
  const stop = h('button', { type: 'button', hidden: true, onclick: () => { running = null; } }, 'Stop');
  const form = h('form', { class: 'row', onsubmit: async ev => {
    ev.preventDefault();
    const q = input.value;
    if (!q) return;
    const me = running = {};
    table.tBodies[0].replaceChildren();
    progress.dataset.done = 'false';
    stop.hidden = false;
    let from = 0, found = 0;
    try {
      while (running === me) {
        const r = await api(`types/${enc}/search?q=${encodeURIComponent(q)}&from=${from}`);
        for (const t of r.tasks) table.tBodies[0].append(taskRow(t, null, actions, () => {}));
        found += r.tasks.length;
        const done = r.next === null ? r.buckets : r.next;
        bar.style.width = `${(100 * done / Math.max(1, r.buckets)).toFixed(1)}%`;
        status.textContent = `${fmt(found)} found, ${fmt(done * 64)} of about ${fmt(r.buckets * 64)} tasks read`;
        if (r.next === null) {
          progress.dataset.done = 'true';
          break;
        }
        from = r.next;
      }
    } catch (e) {
      status.textContent = e.message;
    }
    stop.hidden = true;
  } }, input, h('button', { type: 'submit' }, 'Search'), stop,
  progress, status);
  return h('div', {}, form, h('div', { class: 'scroll' }, table));
}

function taskView(id) {
  const render = async () => {
    const d = await api(`tasks/${encodeURIComponent(id)}`);
    const t = d.task;
    const refresh = () => taskView(id);
    const fields = h('dl', { class: 'fields', id: 'task-fields' },
      h('dt', {}, 'type'), h('dd', {}, link(`/ui/types/${encodeURIComponent(t.task_type)}`, t.task_type)),
      h('dt', {}, 'status'), h('dd', { 'data-k': 'status' }, h('span', { class: 'chip ' + t.status }, t.status)),
      h('dt', {}, 'next run'), h('dd', { 'data-k': 'next_run' }, rel(t.next_run)),
      h('dt', {}, 'policy'), h('dd', {}, t.policy),
      h('dt', {}, 'priority'), h('dd', {}, t.priority || 'none'),
      h('dt', {}, 'interval'), h('dd', {}, duration(t.current_interval_s),
        d.type ? h('span', { class: 'muted' }, ` (default ${duration(d.type.interval_s)}, between ${duration(d.type.min_interval_s)} and ${duration(d.type.max_interval_s)}, backoff ×${d.type.backoff_factor ?? 1})`) : ''),
      h('dt', {}, 'retries left'), h('dd', {}, t.retries_left),
      h('dt', {}, 'args'), h('dd', {}, h('pre', {}, JSON.stringify(t.args, null, 1))),
      h('dt', {}, 'kwargs'), h('dd', {}, h('pre', {}, JSON.stringify(t.kwargs, null, 1))));
    const runs = d.runs.slice().sort((a, b) => b.id - a.id);
    // the interval after each run: from its end to the next run's scheduling
    const gaps = runs.map((r, i) => {
      const next = runs[i - 1];
      if (!r.ended || !next || !next.scheduled) return null;
      return (Date.parse(next.scheduled) - Date.parse(r.ended)) / 1000;
    });
    const runsTable = h('table', { id: 'runs' }, h('thead', {}, h('tr', {},
      h('th', {}, 'run'), h('th', {}, 'status'), h('th', {}, 'scheduled'), h('th', {}, 'started'),
      h('th', {}, 'ended'), h('th', {}, 'took'), h('th', {}, 'then waited'),
      h('th', {}, 'metadata'))),
    h('tbody', {}, runs.map((r, i) => h('tr', { 'data-run': r.id },
      h('td', { title: r.backend_id }, String(r.id)),
      h('td', {}, h('span', { class: 'chip ' + r.status }, r.status)),
      h('td', {}, rel(r.scheduled)), h('td', {}, rel(r.started)), h('td', {}, rel(r.ended)),
      h('td', { class: 'n' }, r.started && r.ended ? duration((Date.parse(r.ended) - Date.parse(r.started)) / 1000) : '–'),
      h('td', { class: 'n' }, duration(gaps[i])),
      h('td', { class: 'args' }, h('pre', {}, r.metadata ? JSON.stringify(r.metadata) : ''))))));
    return h('div', {}, h('h1', {}, `Task ${t.id}`),
      h('div', { class: 'row' }, taskActions(t, d.actions, refresh)),
      h('div', { class: 'panel' }, fields), h('h2', {}, 'Runs (the last kept)'),
      runs.length ? h('div', { class: 'scroll' }, runsTable) : h('p', { class: 'muted' }, 'No run yet.'));
  };
  return show(render);
}

function visitView(name) {
  const render = async () => {
    const o = await api('overview');
    const v = o.visit_types.find(x => x.visit_type === name);
    if (!v) throw new Error(`no visit type ${name}`);
    const listers = h('table', { id: 'listers' }, h('thead', {}, h('tr', {}, h('th', {}, 'lister'),
      h('th', {}, 'instance'), h('th', {}, 'last listing'), h('th', { class: 'n' }, 'known'),
      h('th', { class: 'n' }, 'enabled'), h('th', { class: 'n' }, 'never visited'),
      h('th', { class: 'n' }, 'pending changes'))),
    h('tbody', {}, v.listers.map(l => h('tr', {}, h('td', {}, l.name), h('td', {}, l.instance_name),
      h('td', {}, rel(l.updated)), num(l.known), num(l.enabled), num(l.never_visited),
      num(l.pending_changes)))));
    return h('div', {}, h('h1', {}, `Visit type ${name}`),
      h('div', { class: 'cards' }, card('eligible now', v.eligible, 'eligible'),
        card('awaiting result', v.awaiting, 'awaiting'), card('never visited', v.never_visited, 'never_visited'),
        card('pending changes', v.pending_changes, 'pending_changes'), card('queue', v.queue, 'queue')),
      h('h2', {}, 'Visits per minute, last 6 hours'),
      await chartPanel(`&name=${encodeURIComponent(name)}&visit=true`, VISIT_SERIES, 360),
      h('h2', {}, 'Listers'), h('div', { class: 'scroll' }, listers));
  };
  render.live = true;
  return show(render);
}

// ---- routing ------------------------------------------------------------------------------

function route() {
  const path = decodeURIComponent(location.pathname.replace(/^\/ui\/?/, ''));
  const params = new URLSearchParams(location.search);
  let m;
  if ((m = path.match(/^types\/(.+)$/))) {
    document.title = `${m[1]} · swh-scheduler`;
    return typeView(m[1], params.get('tab') || 'due');
  }
  if ((m = path.match(/^tasks\/(.+)$/))) {
    document.title = `task ${m[1]} · swh-scheduler`;
    return taskView(m[1]);
  }
  if ((m = path.match(/^visits\/(.+)$/))) {
    document.title = `${m[1]} · swh-scheduler`;
    return visitView(m[1]);
  }
  document.title = 'swh-scheduler';
  return overview();
}

function navigate(href) {
  history.pushState(null, '', href);
  route();
  document.getElementById('main').focus({ preventScroll: true });
}

document.addEventListener('click', ev => {
  const a = ev.target.closest('a[data-link]');
  if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
  ev.preventDefault();
  navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', route);

document.getElementById('find').addEventListener('submit', ev => {
  ev.preventDefault();
  const v = document.getElementById('find-input').value.trim();
  if (/^\d+$/.test(v)) navigate(`/ui/tasks/${v}`);
});

document.addEventListener('keydown', ev => {
  if (ev.key === '/' && !['INPUT', 'SELECT', 'TEXTAREA'].includes(document.activeElement.tagName)) {
    ev.preventDefault();
    document.getElementById('find-input').focus();
  }
});

// Colours: the system's by default; a choice (or ?theme=) is kept in this browser.
const THEMES = ['auto', 'light', 'dark'];
function applyTheme(t) {
  if (t === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = t;
  document.getElementById('theme').textContent = t[0].toUpperCase() + t.slice(1);
}
{
  const asked = new URLSearchParams(location.search).get('theme');
  if (THEMES.includes(asked)) localStorage.setItem('swh-theme', asked);
  applyTheme(localStorage.getItem('swh-theme') || 'auto');
  document.getElementById('theme').addEventListener('click', () => {
    const next = THEMES[(THEMES.indexOf(localStorage.getItem('swh-theme') || 'auto') + 1) % 3];
    localStorage.setItem('swh-theme', next);
    applyTheme(next);
  });
}

route();
