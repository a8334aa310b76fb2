// batch.js — the batch page: many URLs -> POST /api/batches; then each URL's analysis and
// generation, polled from GET /api/batches/{id} every second and followed live over the
// WebSocket (download %, stages, steps), with the posters as they finish.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const { api, el, clear } = M2P;
  const bus = M2P.progress();
  let batchId = Number(M2P.params.get('id')) || 0;
  let timer = 0;
  const rows = new Map();       // index -> row elements
  const watched = new Set();    // job ids followed over the WebSocket

  let models = {};
  async function loadModels() {
    try {
      const m = await api('GET', '/api/models');
      models = m.models || {};
      const sel = $('model');
      clear(sel);
      for (const [name, info] of Object.entries(models))
        if (info.installed) sel.append(el('option', { value: name, text: name }));
      if (m.default_model) { sel.value = m.default_model; modelDefaults(); }
      else $('error').textContent = 'No model is installed: run mus2pic models fetch lcm', $('error').hidden = false;
    } catch (e) { showError(e); }
  }
  // As on the main page: the chosen model's steps and size (LCM: 4 steps); its guidance is sent.
  function modelDefaults() {
    const info = models[$('model').value];
    if (!info) return;
    $('steps').value = info.guidance_embedded ? 4 : (info.default_steps || 4);
    if (info.default_width && info.default_height) {
      const v = info.default_width + 'x' + info.default_height;
      if (![...$('size').options].some((o) => o.value === v))
        $('size').append(el('option', { value: v, text: info.default_width + '×' + info.default_height }));
      $('size').value = v;
    }
  }
  $('model').addEventListener('change', modelDefaults);

  // The message names its field or line already.
  function showError(e) { $('error').hidden = !e; $('error').textContent = e ? e.message : ''; }

  $('start').addEventListener('click', async () => {
    const urls = $('urls').value.split('\n').map((s) => s.trim()).filter(Boolean);
    const [width, height] = $('size').value.split('x').map(Number);
    const d = $('duration').value;
    try {
      const r = await api('POST', '/api/batches', {
        urls, duration: d === 'full' ? 'full' : Number(d), prompt_version: $('prompt-version').value,
        model: $('model').value, steps: Number($('steps').value), variations: Number($('variations').value),
        width, height, guidance: (models[$('model').value] || {}).default_guidance,
      });
      showError(null);
      batchId = r.batch_id;
      history.replaceState(null, '', 'batch.html?id=' + batchId);
      rows.clear();
      clear($('items'));
      refresh();
      listBatches();
    } catch (e) { showError(e); }
  });

  function row(index, url) {
    if (rows.has(index)) return rows.get(index);
    const fill = el('div', { class: 'fill' });
    const r = {
      song: el('td', { text: '…' }), state: el('div', { class: 'muted', text: 'queued' }), fill,
      posters: el('td', { class: 'posters' }), shown: new Set(),
    };
    $('items').append(el('tr', { 'data-index': index }, el('td', { text: index + 1 }), el('td', { class: 'url', text: url }),
      r.song, el('td', {}, el('div', { class: 'bar' }, fill), r.state), r.posters));
    rows.set(index, r);
    return r;
  }

  function follow(job, r, kind) {
    if (!job || watched.has(job.id) || ['done', 'failed', 'canceled'].includes(job.state)) return;
    watched.add(job.id);
    bus.subscribe(job.id, (m) => {
      if (m.type === 'stage') {
        r.state.textContent = kind + ': ' + m.stage + (typeof m.percent === 'number' ? ' ' + Math.round(m.percent) + '%' : '');
        if (m.stage === 'download' && typeof m.percent === 'number') r.fill.style.width = (m.percent / 2) + '%';
      } else if (m.type === 'step') {
        r.state.textContent = 'poster ' + m.variation + '/' + m.variations + ': step ' + m.step + '/' + m.steps;
        r.fill.style.width = (50 + 50 * m.step / m.steps) + '%';
      } else if (m.type === 'done' || m.type === 'error') {
        bus.unsubscribe(job.id);
        refresh();
      }
    });
  }

  async function refresh() {
    clearTimeout(timer);
    if (!batchId) return;
    let b;
    try { b = await api('GET', '/api/batches/' + batchId); } catch (e) { showError(e); return; }
    $('batch-card').hidden = false;
    $('batch-title').textContent = 'Batch ' + b.id;
    $('batch-summary').textContent = b.done + ' of ' + b.total + ' done' + (b.failed ? ', ' + b.failed + ' failed' : '') + (b.state === 'finished' ? ' — finished' : ' — working');
    for (const it of b.items) {
      const r = row(it.index, it.url);
      const a = it.analysis, g = it.generation;
      if (a && a.state === 'done') r.song.textContent = [a.band, a.song].filter(Boolean).join(' – ') || '(unknown)';
      if (a && a.state !== 'done') {
        r.state.textContent = 'analysis: ' + a.state + (a.error ? ' — ' + a.error : '');
        if (a.state === 'failed') r.state.className = 'error';
      }
      if (g) {
        r.state.textContent = 'posters: ' + g.state + (g.error ? ' — ' + g.error : '');
        r.state.className = g.state === 'failed' ? 'error' : 'muted';
        if (g.state === 'done') r.fill.style.width = '100%';
        for (const im of (g.images || [])) {
          if (r.shown.has(im.id)) continue;
          r.shown.add(im.id);
          const url = M2P.withToken(im.url);
          r.posters.append(el('a', { href: url, download: im.filename, title: 'seed ' + im.seed }, el('img', { src: url, alt: 'poster ' + im.id })));
        }
      }
      follow(a, r, 'analysis');
      follow(g, r, 'posters');
    }
    if (b.state !== 'finished') timer = setTimeout(refresh, 1000);
    else if (listedRunning.has(b.id)) listBatches(); // the list below said it was running
  }

  const listedRunning = new Set(); // batches the list shows as running
  async function listBatches() {
    try {
      const l = await api('GET', '/api/batches');
      const ul = $('batches');
      clear(ul);
      listedRunning.clear();
      for (const b of l.batches) {
        if (b.state !== 'finished') listedRunning.add(b.id);
        ul.append(el('li', {}, el('a', { href: 'batch.html?id=' + b.id, text: 'Batch ' + b.id }),
          el('span', { class: 'muted', text: ' — ' + b.total + (b.total === 1 ? ' song, ' : ' songs, ') + b.done + ' done' +
            (b.failed ? ', ' + b.failed + ' failed' : '') + ', ' + b.state + ', ' + new Date(b.created_ms).toLocaleString() })));
      }
    } catch (e) { showError(e); }
  }

  loadModels();
  listBatches();
  refresh();
})();
