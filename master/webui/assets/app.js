// Universe dashboard: the live parts. Every page works without this file
// (server-rendered lists and forms); it adds live state, the live console,
// bulk actions with a result per instance, and drag-and-drop uploads. It
// talks to the same REST and WebSocket API as every client, signed in by
// the session cookie (HttpOnly: this script never sees it).

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

// signedOut sends the browser to the sign-in page, which says why.
function signedOut() { location.assign('/ui/'); }

async function api(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    if (body instanceof Blob || body instanceof ArrayBuffer || typeof body === 'string') {
      opts.body = body;
      opts.headers['Content-Type'] = 'application/octet-stream';
    } else {
      opts.body = JSON.stringify(body);
      opts.headers['Content-Type'] = 'application/json';
    }
  }
  const res = await fetch(path, opts);
  if (res.status === 401) { signedOut(); throw new Error('signed out'); }
  let data = null;
  const type = res.headers.get('Content-Type') || '';
  if (type.includes('json')) data = await res.json();
  if (!res.ok) throw new Error((data && data.error) || res.statusText);
  return data;
}

// ---- ANSI: the same rules as the server's rendering (webui.ANSI) ----
function ansi(line) {
  const frag = document.createDocumentFragment();
  let fg = '', bg = '', bold = false;
  const emit = text => {
    if (!text) return;
    if (!fg && !bg && !bold) { frag.append(text); return; }
    const s = document.createElement('span');
    const cls = [];
    if (fg) cls.push('f' + fg);
    if (bg) cls.push('b' + bg);
    if (bold) cls.push('bold');
    s.className = cls.join(' ');
    s.textContent = text;
    frag.append(s);
  };
  if (line.indexOf('\x1b') < 0) { frag.append(line.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, '')); return frag; }
  let i = 0, text = '';
  while (i < line.length) {
    const c = line.charCodeAt(i);
    if (c !== 27) { if (c >= 32 || c === 9) text += line[i]; i++; continue; }
    const n = line[i + 1];
    if (n === '[') {
      let j = i + 2;
      while (j < line.length && (line.charCodeAt(j) < 0x40 || line.charCodeAt(j) > 0x7e)) j++;
      if (j >= line.length) break;
      if (line[j] === 'm') {
        emit(text); text = '';
        const ps = (line.slice(i + 2, j) || '0').split(';');
        for (let k = 0; k < ps.length; k++) {
          const p = parseInt(ps[k], 10);
          if (Number.isNaN(p)) continue;
          if (p === 0) { fg = ''; bg = ''; bold = false; }
          else if (p === 1) bold = true;
          else if (p === 22) bold = false;
          else if (p >= 30 && p <= 37) fg = String(p - 30);
          else if (p >= 90 && p <= 97) fg = String(p - 82);
          else if (p === 39) fg = '';
          else if (p >= 40 && p <= 47) bg = String(p - 40);
          else if (p >= 100 && p <= 107) bg = String(p - 92);
          else if (p === 49) bg = '';
          else if (p === 38 || p === 48) k += ps[k + 1] === '5' ? 2 : ps[k + 1] === '2' ? 4 : 0;
        }
      }
      i = j + 1;
    } else if (n === ']') {
      let j = i + 2;
      while (j < line.length && line.charCodeAt(j) !== 7 && !(line.charCodeAt(j) === 27 && line[j + 1] === '\\')) j++;
      if (line.charCodeAt(j) === 27) j++;
      i = j + 1;
    } else {
      i += 2;
    }
  }
  emit(text);
  return frag;
}

// ---- Live console ----
class Console {
  static CHUNK = 250;
  constructor(el) {
    this.el = el;
    this.id = el.dataset.instance;
    this.cap = parseInt(el.dataset.cap, 10) || 5000;
    this.queue = [];
    this.scheduled = false;
    this.paused = false;
    this.filter = '';
    this.retry = 500;
    this.stats = { received: 0, rendered: 0, gaps: 0, reconnects: 0, firstAt: 0, lastAt: 0, flushes: 0, flushMs: 0, skipped: 0 };
    // Rows live in chunks of CHUNK lines: old lines leave a whole chunk at
    // a time, and chunks out of view skip layout and paint (CSS
    // content-visibility), so drawing costs the same with 5000 rows kept.
    const rows = Array.from(el.children);
    this.chunk = null;
    this.chunks = 0;
    for (const r of rows) this.chunkFor().append(r);
    const last = rows[rows.length - 1];
    this.lastSeq = last ? Number(last.dataset.seq) : 0;
    this.rows = rows.length;
    this.status = $('#status');
    this.pauseBtn = $('#pause');
    el.scrollTop = el.scrollHeight;
    el.addEventListener('scroll', () => this.onScroll());
    this.pauseBtn.addEventListener('click', () => this.resume());
    const f = $('#filter');
    f.addEventListener('input', () => { this.filter = f.value.toLowerCase(); this.refilter(); });
    const col = $('#colours');
    col.addEventListener('change', () => el.classList.toggle('plain', !col.checked));
    window.__universeConsole = this;
    this.connect();
  }

  // chunkFor returns the chunk new rows go into, starting one when full.
  chunkFor() {
    if (!this.chunk || this.chunk.childElementCount >= Console.CHUNK) {
      this.chunk = document.createElement('div');
      this.chunk.className = 'chunk';
      this.el.append(this.chunk);
      this.chunks++;
    }
    return this.chunk;
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const from = this.lastSeq > 0 ? 'since=' + this.lastSeq : 'lines=200'; // since: the lines after it
    return `${proto}//${location.host}/api/instances/${encodeURIComponent(this.id)}/live-log?format=json&batch=1&${from}`;
  }

  connect() {
    this.setStatus('connecting…');
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => { this.retry = 500; this.setStatus('live'); };
    ws.onmessage = ev => this.onFrame(JSON.parse(ev.data));
    ws.onclose = ev => {
      if (this.ws !== ws) return;
      if (ev.code === 1008 && /revoked|expired/.test(ev.reason)) { signedOut(); return; }
      if (ev.code === 1000 && this.deleted) { this.setStatus('instance deleted'); return; }
      this.stats.reconnects++;
      this.setStatus('reconnecting…');
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 5000);
    };
  }

  // drop closes the socket as a network failure would (tests use it).
  drop() { if (this.ws) this.ws.close(4000, 'dropped'); }

  onFrame(f) {
    switch (f.type) {
      case 'lines': for (const l of f.lines) this.push(l); break;
      case undefined: case '': this.push(f); break;
      case 'gap': this.stats.gaps += f.to - f.from + 1; this.queue.push({ gap: f }); this.lastSeq = Math.max(this.lastSeq, f.to); this.schedule(); break;
      case 'state':
        if (f.deleted) this.deleted = true;
        if (f.instance) showState(f.instance);
        break;
    }
  }

  push(l) {
    if (l.seq <= this.lastSeq) return; // already shown (a resume overlaps)
    this.lastSeq = l.seq;
    this.stats.received++;
    if (!this.stats.firstAt) this.stats.firstAt = performance.now();
    this.queue.push(l);
    this.schedule();
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => this.flush());
  }

  flush() {
    const t0 = performance.now();
    this.scheduled = false;
    let q = this.queue;
    this.queue = [];
    const n = q.length;
    if (n > this.cap) q = q.slice(n - this.cap); // older ones would be trimmed at once: never drawn
    let frag = document.createDocumentFragment();
    let target = this.chunkFor();
    let room = Console.CHUNK - target.childElementCount;
    for (const l of q) {
      if (room === 0) {
        target.append(frag);
        frag = document.createDocumentFragment();
        target = this.chunkFor();
        room = Console.CHUNK;
      }
      room--;
      const row = document.createElement('span');
      if (l.gap) {
        row.className = 'ln gap';
        row.textContent = `… ${l.gap.to - l.gap.from + 1} lines missing (${l.gap.from}–${l.gap.to})`;
      } else {
        row.className = l.stream === 'stderr' ? 'ln err' : l.stream === 'system' ? 'ln sys' : 'ln';
        row.dataset.seq = l.seq;
        row.append(ansi(l.line));
        if (this.filter && !row.textContent.toLowerCase().includes(this.filter)) row.classList.add('hidden');
      }
      frag.append(row);
    }
    target.append(frag);
    this.rows += q.length;
    this.stats.skipped += n - q.length;
    // Whole chunks leave once the rest still holds the cap.
    while (this.chunks > 1 && this.rows - this.el.firstElementChild.childElementCount >= this.cap) {
      this.rows -= this.el.firstElementChild.childElementCount;
      this.el.firstElementChild.remove();
      this.chunks--;
    }
    this.stats.rendered += n;
    this.stats.lastAt = performance.now();
    if (this.onRender) this.onRender(q); // benchmarks: what was just drawn
    this.stats.flushes++;
    this.stats.flushMs += performance.now() - t0;
    if (!this.paused) this.el.scrollTop = this.el.scrollHeight;
    this.setStatus(this.ws && this.ws.readyState === 1 ? 'live' : 'reconnecting…');
  }

  onScroll() {
    const atBottom = this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 8;
    if (!atBottom && !this.paused) { this.paused = true; this.pauseBtn.hidden = false; this.pauseBtn.classList.add('paused'); this.pauseBtn.setAttribute('aria-pressed', 'true'); }
    else if (atBottom && this.paused) this.resume();
  }

  resume() {
    this.paused = false;
    this.pauseBtn.hidden = true;
    this.pauseBtn.setAttribute('aria-pressed', 'false');
    this.el.scrollTop = this.el.scrollHeight;
  }

  refilter() {
    for (const row of this.el.querySelectorAll('.ln')) {
      row.classList.toggle('hidden', !!this.filter && !row.textContent.toLowerCase().includes(this.filter));
    }
  }

  setStatus(s) { if (this.status) this.status.textContent = `${this.rows} lines · ${s}`; }
}

function showState(i) {
  const b = $('#state');
  if (!b) return;
  b.dataset.state = i.state;
  b.textContent = i.state + (i.transition ? ' · ' + i.transition : '');
  const set = (id, v) => { const e = $('#' + id); if (e) e.textContent = v; };
  set('reason', i.reason || '—');
  set('pid', i.processPid ?? '—');
  set('restarts', i.restarts);
  set('exit', i.exitCode ?? '—');
  powerButtons(i.state);
}

// powerButtons offers what the state allows: Start when it does not run,
// Stop and Kill when it does (Restart always).
function powerButtons(state) {
  const running = state === 'ONLINE' || state === 'CREATING';
  for (const b of $$('form.power button')) {
    if (b.value === 'start') b.disabled = running;
    if (b.value === 'stop' || b.value === 'kill') b.disabled = !running;
  }
}

// ---- Command input with ↑/↓ history (in memory only) ----
function commandInput(form, id) {
  const input = $('input[name=command]', form);
  const history = [];
  let pos = 0;
  input.addEventListener('keydown', ev => {
    if (ev.key === 'ArrowUp' && pos > 0) { pos--; input.value = history[pos]; ev.preventDefault(); }
    else if (ev.key === 'ArrowDown' && pos < history.length) { pos++; input.value = history[pos] ?? ''; ev.preventDefault(); }
  });
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const cmd = input.value;
    if (!cmd.trim()) return;
    if (history[history.length - 1] !== cmd) history.push(cmd);
    if (history.length > 100) history.shift();
    pos = history.length;
    input.value = '';
    try { await api('POST', `/api/instances/${encodeURIComponent(id)}/execute`, { command: cmd }); }
    catch (e) { flash(e.message); }
  });
}

function flash(msg) {
  let a = $('#flash');
  if (!a) {
    a = document.createElement('div');
    a.id = 'flash';
    a.className = 'alert error';
    a.setAttribute('role', 'alert');
    $('main').prepend(a);
  }
  a.textContent = msg;
}

// ---- Power buttons and bulk actions: one request per instance ----
async function lifecycle(id, target) {
  const r = await api('PATCH', `/api/instances/${encodeURIComponent(id)}/lifecycle?target=${target}`);
  return r && r.accepted ? `${target}: accepted` : `${target}: nothing to do`;
}

function powerForm(form, id) {
  form.addEventListener('submit', async ev => {
    if (ev.submitter && ev.submitter.hasAttribute('formaction')) return; // (Drain: the form's own post)
    ev.preventDefault();
    const target = ev.submitter && ev.submitter.value;
    try { await lifecycle(id, target); } catch (e) { flash(e.message); }
  });
}

function instancesPage() {
  const form = $('#bulk');
  const boxes = () => $$('input[name=id]', form);
  const count = () => {
    const n = boxes().filter(b => b.checked).length;
    $('#selcount').textContent = n ? `${n} selected` : 'Select instances for bulk actions';
  };
  $('#selall').addEventListener('change', ev => { boxes().forEach(b => { b.checked = ev.target.checked; }); count(); });
  form.addEventListener('change', count);
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const target = ev.submitter && ev.submitter.value;
    const ids = boxes().filter(b => b.checked).map(b => b.value);
    const out = $('#results');
    out.replaceChildren();
    if (!ids.length) { out.append(li('bad', '✗', '', 'Select at least one instance.')); return; }
    await Promise.all(ids.map(async id => {
      try { out.append(li('ok', '✓', id, await lifecycle(id, target))); }
      catch (e) { out.append(li('bad', '✗', id, e.message)); }
    }));
    refreshStates();
  });
  // State changes come as events: the rows follow within a moment of one
  // (one list fetched for any number of events meanwhile, never two at
  // once), and every 5 s anyway for what no event tells (players).
  let busy = false, again = false;
  const refresh = async () => {
    if (busy) { again = true; return; }
    busy = true;
    try { await refreshStates(); } finally {
      busy = false;
      if (again) { again = false; setTimeout(refresh, 100); }
    }
  };
  // An instance's event carries its state and why: its row shows them at
  // once. Anything else (a gap, an instance this page has no row for)
  // fetches the list; players come with the 5 s refresh.
  let queued = false;
  followEvents(e => {
    if (!e.instanceId) return;
    const state = e.data && e.data.state;
    const tr = state && $(`#instances tbody tr[data-id="${CSS.escape(e.instanceId)}"]`);
    if (tr) {
      const b = $('[data-cell=state]', tr);
      b.dataset.state = state;
      b.textContent = state;
      $('[data-cell=reason]', tr).textContent = e.data.stateReason || '';
      return;
    }
    if (queued) return;
    queued = true;
    setTimeout(() => { queued = false; refresh(); }, 50);
  });
  setInterval(refresh, 5000);
}

// followEvents calls onEvent with each event from now on, over the live
// events socket, reconnecting with a backoff (and from where it was); a
// gap (events the log no longer holds) is reported as an event without
// an instance, so the page refreshes anyway.
function followEvents(onEvent) {
  let since = '', retry = 500;
  const connect = () => {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/api/events/live` + (since ? `?since=${since}` : ''));
    ws.onopen = () => { retry = 500; document.body.dataset.live = 'on'; };
    ws.onmessage = m => {
      for (const line of String(m.data).split('\n')) {
        let f;
        try { f = JSON.parse(line); } catch { continue; }
        if (f.gap) { since = String(f.gap.to); onEvent({ instanceId: '*' }); continue; }
        if (f.event) { since = String(f.event.seq); onEvent(f.event); }
      }
    };
    ws.onclose = ev => {
      if (ev.code === 1008) { signedOut(); return; }
      document.body.dataset.live = 'off';
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  };
  connect();
}

function li(cls, mark, id, msg) {
  const e = document.createElement('li');
  const m = document.createElement('span');
  m.className = cls;
  m.textContent = mark;
  e.append(m, ' ');
  if (id) { const c = document.createElement('code'); c.textContent = id; e.append(c, ' '); }
  e.append(msg);
  return e;
}

async function refreshStates() {
  if (document.hidden) return;
  let list;
  try { list = await api('GET', '/api/instances'); } catch { return; }
  const byID = new Map(list.map(i => [i.id, i]));
  for (const tr of $$('#instances tbody tr[data-id]')) {
    const i = byID.get(tr.dataset.id);
    const b = $('[data-cell=state]', tr);
    if (!i) { b.dataset.state = 'STOPPED'; b.textContent = 'deleted'; continue; }
    b.dataset.state = i.state;
    b.textContent = i.state + (i.transition ? ' · ' + i.transition : '');
    $('[data-cell=reason]', tr).textContent = i.reason || '';
    $('[data-cell=players]', tr).textContent = i.players + (i.maxPlayers ? ' / ' + i.maxPlayers : '') +
      (i.draining ? ' · draining' : (i.state === 'ONLINE' && !i.joinable && i.maxPlayers > 0 && i.players > 0 ? ' · full' : ''));
  }
}

// ---- Sparklines ----
function points(values) {
  if (!values.length) return '';
  const max = Math.max(...values, 1e-9);
  const step = values.length > 1 ? 120 / (values.length - 1) : 0;
  return values.map((v, i) => `${(i * step).toFixed(1)},${(40 - (v / max) * 36 - 2).toFixed(1)}`).join(' ');
}

async function sparklines(id) {
  try {
    const s = await api('GET', `/api/instances/${encodeURIComponent(id)}/stats`);
    const samples = s.samples || [];
    $('#cpu-line').setAttribute('points', points(samples.map(x => x.cpu)));
    $('#mem-line').setAttribute('points', points(samples.map(x => x.memoryBytes)));
    if (s.current) {
      $('#cpu-now').textContent = s.current.cpu.toFixed(2) + ' cores';
      const lim = Number($('#spark').dataset.ram || 0); // memory against its limit
      $('#mem-now').textContent = (s.current.memoryBytes / 1048576).toFixed(1) + ' MiB' + (lim > 0 ? ` of ${lim} MiB` : '');
    }
  } catch { /* shown again at the next tick */ }
}

// ---- Files: drag and drop, folders too ----
async function entries(item, prefix, out) {
  if (item.isFile) {
    out.push({ path: prefix + item.name, file: await new Promise((ok, bad) => item.file(ok, bad)) });
  } else if (item.isDirectory) {
    const reader = item.createReader();
    for (;;) {
      const batch = await new Promise((ok, bad) => reader.readEntries(ok, bad));
      if (!batch.length) break;
      for (const e of batch) await entries(e, prefix + item.name + '/', out);
    }
  }
}

function filesPage(panel) {
  const id = panel.dataset.instance;
  const dir = panel.dataset.dir ? panel.dataset.dir + '/' : '';
  const drop = $('#drop');
  const upload = async files => {
    drop.textContent = `Uploading ${files.length} file(s)…`;
    const enc = p => p.split('/').map(encodeURIComponent).join('/');
    try {
      for (const f of files) await api('PUT', `/api/instances/${encodeURIComponent(id)}/files/${enc(dir + f.path)}`, f.file);
      location.reload();
    } catch (e) { drop.textContent = 'Upload failed: ' + e.message; }
  };
  drop.addEventListener('dragover', ev => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', async ev => {
    ev.preventDefault();
    drop.classList.remove('over');
    const out = [];
    for (const it of ev.dataTransfer.items) {
      const e = it.webkitGetAsEntry && it.webkitGetAsEntry();
      if (e) await entries(e, '', out);
    }
    if (out.length) upload(out);
  });
}

// ---- Keys: the new token leaves the page when the operator is done ----
function keysPage() {
  const box = $('#created-token');
  if (!box) return;
  const tok = $('#token');
  $('#copy-token').addEventListener('click', async () => {
    try { await navigator.clipboard.writeText(tok.textContent); $('#copy-token').textContent = 'Copied'; } catch { /* select it instead */ getSelection().selectAllChildren(tok); }
  });
  $('#hide-token').addEventListener('click', () => box.remove());
}

// ---- Schedules: the cron helper shows the next five run times as the
// expression (or its time zone) is typed, or why it does not parse ----
function cronHelper(form) {
  const out = $('#cron-next', form);
  const cron = $('input[name=cron]', form), tz = $('input[name=timezone]', form);
  let timer = 0, asked = 0;
  const show = async () => {
    const n = ++asked;
    const q = new URLSearchParams({ cron: cron.value.trim(), timezone: tz.value.trim() });
    if (!q.get('cron')) { out.textContent = ''; return; }
    try {
      const p = await api('GET', '/api/schedules/preview?' + q);
      if (n !== asked) return;
      out.classList.remove('invalid');
      out.replaceChildren('Next: ');
      p.next.forEach((t, i) => {
        const s = document.createElement('span');
        s.className = 'mono';
        s.textContent = fmtIn(t, p.timezone);
        out.append(i ? ' · ' : '', s);
      });
      if (!p.next.length) out.append('never');
    } catch (e) {
      if (n !== asked) return;
      out.classList.add('invalid');
      out.textContent = e.message;
    }
  };
  const soon = () => { clearTimeout(timer); timer = setTimeout(show, 250); };
  cron.addEventListener('input', soon);
  tz.addEventListener('input', soon);
  show();
}

// fmtIn writes an instant as a wall-clock time in the IANA zone tz.
function fmtIn(t, tz) {
  const d = new Date(t);
  try {
    return new Intl.DateTimeFormat('sv-SE', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' }).format(d) + ' ' + tz;
  } catch {
    return d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  }
}

// ---- Events: the page follows the log live, newest on top; a gap row
// says how many events it missed ----
function eventsPage(body) {
  const type = body.dataset.type, inst = body.dataset.instance, rows = Number(body.dataset.rows) || 200;
  const status = $('#events-status');
  let since = body.dataset.since, retry = 500;
  const cell = (text, cls) => { const td = document.createElement('td'); if (cls) td.className = cls; td.textContent = text; return td; };
  const add = tr => {
    const none = $('tr.none', body);
    if (none) none.remove();
    tr.classList.add('fresh');
    body.prepend(tr);
    while (body.rows.length > rows) body.rows[body.rows.length - 1].remove();
  };
  const row = e => {
    const tr = document.createElement('tr');
    tr.dataset.seq = e.seq;
    const when = cell(new Date(e.time).toISOString().slice(0, 19).replace('T', ' '), 'hide-sm mono');
    const t = document.createElement('td');
    const b = document.createElement('span');
    b.className = 'badge'; b.dataset.type = e.type; b.textContent = e.type;
    t.append(b);
    const i = document.createElement('td');
    i.className = 'mono';
    if (e.instanceId) {
      const a = document.createElement('a');
      a.href = '/ui/instances/' + encodeURIComponent(e.instanceId);
      a.textContent = e.instanceId;
      i.append(a);
    } else i.textContent = '—';
    tr.append(when, t, i, cell(e.node || '—', 'hide-sm'), cell(e.message || '', 'wrap'));
    return tr;
  };
  const connect = () => {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/api/events/live?since=${since}`);
    ws.onopen = () => { retry = 500; status.textContent = 'Live'; };
    ws.onmessage = m => { for (const line of String(m.data).split('\n')) frame(line); };
    const frame = line => {
      let f;
      try { f = JSON.parse(line); } catch { return; }
      if (f.gap) {
        since = String(f.gap.to);
        const tr = document.createElement('tr');
        tr.className = 'gap';
        const n = f.gap.count || (f.gap.to - f.gap.from + 1);
        tr.append(cell(`… ${n} event${n === 1 ? '' : 's'} missed here (the log no longer holds them)`));
        tr.firstChild.colSpan = 5;
        add(tr);
        return;
      }
      const e = f.event;
      if (!e) return;
      since = String(e.seq);
      if ((type && e.type !== type) || (inst && e.instanceId !== inst)) return;
      add(row(e));
    };
    ws.onclose = ev => {
      if (ev.code === 1008) { signedOut(); return; }
      status.textContent = 'Reconnecting…';
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  };
  connect();
}

// ---- Session watch: every signed-in page holds /ui/session, which the
// master closes (1008) the moment the key is revoked or expires ----
function watchSession(retry = 500) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/ui/session`);
  ws.onopen = () => { retry = 500; };
  ws.onclose = ev => {
    if (ev.code === 1008) { signedOut(); return; }
    if (ev.code === 1000 && /shutting down/.test(ev.reason)) retry = 2000;
    // Dropped (or refused: the session may have ended): look again later.
    setTimeout(() => fetch('/api/auth', { credentials: 'same-origin' })
      .then(r => { if (r.status === 401) signedOut(); else watchSession(Math.min(retry * 2, 10000)); })
      .catch(() => watchSession(Math.min(retry * 2, 10000))), retry);
  };
  window.__universeSession = ws;
}

// ---- Backups: while one is under way the tab shows its progress anew
// every few seconds ----
{
  const b = document.getElementById('backups');
  if (b && b.dataset.refresh) setTimeout(() => location.reload(), Number(b.dataset.refresh) * 1000);
}

// Destructive buttons ask first (data-confirm holds the question).
document.addEventListener('submit', ev => {
  const q = ev.submitter && ev.submitter.dataset.confirm;
  if (q && !confirm(q)) { ev.preventDefault(); ev.stopImmediatePropagation(); }
}, true);

function main() {
  if (document.body.dataset.page === 'signin') return;
  watchSession();
  if ($('#bulk')) instancesPage();
  if ($('#created-token')) keysPage();
  const cron = $('#cron-next');
  if (cron) cronHelper(cron.closest('form'));
  const events = $('#events');
  if (events) eventsPage(events);
  const log = $('#log');
  if (log) {
    new Console(log);
    if ($('#cmdform')) commandInput($('#cmdform'), log.dataset.instance); // (absent without console.write)
  }
  const spark = $('#spark'); // (absent without stats.read)
  if (spark) {
    sparklines(spark.dataset.instance);
    setInterval(() => sparklines(spark.dataset.instance), 5000);
  }
  const power = $('form.power[aria-label=Power]');
  // getAttribute: the buttons named "action" shadow the form's action
  // property.
  if (power) powerForm(power, power.getAttribute('action').split('/').at(-2));
  const files = $('#files');
  if (files && $('#drop')) filesPage(files); // (no drop zone without file.write)
}

main();
