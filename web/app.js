// app.js — the main page: song (URL or upload) -> analysis job with live stages -> check artist
// and song, feature tiles and the energy/beat plot -> edit the prompt -> generation job with a
// live bar and preview per variation -> posters with download links, timing and the seed.
// All server text reaches the page through textContent (M2P.el), never as HTML.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const { api, el, clear, fmtSeconds } = M2P;
  const bus = M2P.progress();
  let analysis = null;      // the finished analysis result
  let currentJob = 0;       // the generation being watched
  let models = {};

  const STAGES = {
    queued: 'Waiting in the queue…', download: 'Downloading', downloading: 'Downloading',
    decoding: 'Decoding the audio…', analysing: 'Listening: tempo, key, energy…',
    genre: 'Finding the genre…', prompts: 'Writing the prompts…', loading_model: 'Loading the model (once)…',
    encoding: 'Reading the prompt…', decoding_image: 'Finishing the images…',
  };

  function showError(node, err) {
    node.hidden = !err;
    node.textContent = err ? (err.field ? err.field + ': ' : '') + err.message : '';
  }

  // ---- models ----
  async function loadModels() {
    try {
      const m = await api('GET', '/api/models');
      models = m.models || {};
      const sel = $('model');
      clear(sel);
      for (const [name, info] of Object.entries(models)) {
        if (!info.installed) continue;
        sel.append(el('option', { value: name, text: name + ' — ' + (info.name || name) }));
      }
      if (m.default_model) sel.value = m.default_model;
      $('no-model').hidden = !!m.default_model;
      $('generate').disabled = !m.default_model;
      const vs = $('variations');
      clear(vs);
      for (let i = 1; i <= (m.max_variations || 4); i++) vs.append(el('option', { value: i, text: i }));
      describeModel();
      const info = models[sel.value];
      if (info && info.default_steps) $('steps').value = info.default_steps;
    } catch (e) {
      $('no-model').hidden = false;
    }
  }
  // The time shown is the last generation measured on this server (the original's fixed
  // "6-12 seconds" was for a GPU and is not shown).
  function describeModel() {
    const info = models[$('model').value];
    const m = info && info.measured;
    const took = m ? 'last run here: ' + m.images + ' image' + (m.images === 1 ? '' : 's') + ' at ' + m.width + '×' + m.height +
      ', ' + m.steps + ' steps in ' + fmtSeconds(m.seconds) : '';
    $('model-desc').textContent = info ? [info.description, took].filter(Boolean).join(' — ') : '';
  }
  async function refreshModels() {
    try { models = (await api('GET', '/api/models')).models || models; describeModel(); } catch (e) { /* keep the old text */ }
  }
  $('model').addEventListener('change', () => {
    describeModel();
    const info = models[$('model').value];
    if (info && info.default_steps) $('steps').value = info.default_steps;
  });

  // ---- analysis ----
  function duration() {
    const v = $('duration').value;
    return v === 'full' ? 'full' : Number(v);
  }

  function analysisStarted(job) {
    $('analysis-progress').hidden = false;
    $('analysis-bar').style.width = '0%';
    $('analysis-stage').textContent = STAGES.queued;
    showError($('analysis-error'), null);
    bus.subscribe(job, (m) => {
      if (m.type === 'stage') {
        const label = STAGES[m.stage] || m.stage;
        const pct = typeof m.percent === 'number' ? m.percent : null;
        $('analysis-stage').textContent = pct !== null && m.stage === 'download' ? label + ' ' + Math.round(pct) + '%' : label;
        if (pct !== null && m.stage === 'download') $('analysis-bar').style.width = pct + '%';
        else if (m.stage !== 'queued') $('analysis-bar').style.width = '100%';
      } else if (m.type === 'done' || (m.type === 'state' && m.state.state === 'done')) {
        bus.unsubscribe(job);
        const result = m.type === 'done' ? m.result : m.state.result;
        showAnalysis(result);
      } else if (m.type === 'error' || (m.type === 'state' && ['failed', 'canceled'].includes(m.state.state))) {
        bus.unsubscribe(job);
        $('analysis-progress').hidden = true;
        showError($('analysis-error'), { message: m.message || m.state.error || 'the analysis failed' });
      }
    });
  }

  $('url-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const r = await api('POST', '/api/analyze', { url: $('url').value.trim(), duration: duration(), prompt_version: $('prompt-version').value });
      analysisStarted(r.job_id);
    } catch (e) { showError($('analysis-error'), e); }
  });

  $('file-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = $('file').files[0];
    if (!f) { showError($('analysis-error'), { field: 'file', message: 'choose an audio file first' }); return; }
    const fd = new FormData();
    fd.append('duration', String(duration()));
    fd.append('prompt_version', $('prompt-version').value);
    fd.append('file', f, f.name);
    try {
      const r = await api('POST', '/api/analyze', fd);
      analysisStarted(r.job_id);
    } catch (e) { showError($('analysis-error'), e); }
  });

  const TILES = [
    ['Tempo', (f) => f.tempo ? Math.round(f.tempo) + ' BPM' : '—', (f) => Math.min(1, (f.tempo || 0) / 200)],
    ['Energy', (f) => pct(f.energy), (f) => f.energy],
    ['Key', (f, a) => a.key ? a.key + ' ' + (a.mode || '') : '—', (f) => f.mode_confidence],
    ['Valence', (f) => pct(f.valence_scientific), (f) => f.valence_scientific],
    ['Arousal', (f) => pct(f.arousal_scientific), (f) => f.arousal_scientific],
    ['Chaos', (f) => pct(f.spectral_flux), (f) => f.spectral_flux],
    ['Density', (f) => pct(f.onset_density), (f) => f.onset_density],
    ['Melodic', (f) => pct(f.hp_ratio), (f) => f.hp_ratio],
    ['Dynamic', (f) => pct(f.dynamic_range), (f) => f.dynamic_range],
  ];
  function pct(v) { return typeof v === 'number' ? Math.round(v * 100) + '%' : '—'; }

  function showAnalysis(a) {
    analysis = a;
    $('analysis-progress').hidden = true;
    $('verify').hidden = false;
    $('band').value = a.band || '';
    $('song').value = a.song || '';
    $('genre').textContent = a.genre || 'unknown';
    $('genre-source').textContent = a.genre_source || '';
    $('prompt').value = a.prompt || '';
    $('negative').value = a.negative_prompt || '';
    const f = a.features || {};
    const tiles = $('tiles');
    clear(tiles);
    for (const [name, text, level] of TILES) {
      const v = Number(level(f, a)) || 0;
      const meter = el('div', { class: 'meter' }, el('div', { class: 'meter-fill' }));
      meter.firstChild.style.width = Math.max(0, Math.min(1, v)) * 100 + '%';
      tiles.append(el('div', { class: 'tile', 'data-feature': name.toLowerCase() },
        el('div', { class: 'tile-name', text: name }), el('div', { class: 'tile-value', text: text(f, a) }), meter));
    }
    drawPlot(f, a);
  }

  // The energy envelope over time, the beat grid under it, and the key in the corner.
  function drawPlot(f, a) {
    const c = $('plot');
    const ctx = c.getContext('2d');
    const w = c.width, h = c.height, pad = 24;
    ctx.clearRect(0, 0, w, h);
    const env = Array.isArray(f.envelope) ? f.envelope : [];
    const hop = f.envelope_hop_s || 0;
    const total = env.length * hop || f.duration_analyzed || 1;
    const x = (t) => pad + (t / total) * (w - 2 * pad);
    ctx.strokeStyle = 'rgba(255,255,255,0.18)';
    ctx.lineWidth = 1;
    for (const b of (f.beats || [])) {
      if (b > total) break;
      ctx.beginPath(); ctx.moveTo(x(b), pad / 2); ctx.lineTo(x(b), h - pad); ctx.stroke();
    }
    const max = Math.max(1e-6, ...env);
    ctx.beginPath();
    env.forEach((v, i) => {
      const px = x(i * hop), py = h - pad - (v / max) * (h - 1.5 * pad);
      if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    ctx.strokeStyle = '#ff7a59';
    ctx.lineWidth = 2;
    ctx.stroke();
    ctx.fillStyle = '#ddd';
    ctx.font = '14px sans-serif';
    ctx.fillText(a.key ? 'key ' + a.key + ' ' + (a.mode || '') : 'key undetermined', w - 150, 18);
    ctx.fillText('0 s', pad, h - 6);
    ctx.fillText(total.toFixed(0) + ' s', w - pad - 30, h - 6);
    $('plot-caption').textContent = 'Energy over ' + total.toFixed(1) + ' s with ' + (f.beats || []).length + ' beats' + (f.tempo ? ' (' + Math.round(f.tempo) + ' BPM)' : '');
  }

  $('rebuild').addEventListener('click', async () => {
    if (!analysis) return;
    try {
      const r = await api('POST', '/api/generate-prompt', {
        features: analysis.features, band_name: $('band').value, song_title: $('song').value,
        genre: analysis.genre_raw || analysis.genre || '', prompt_version: $('prompt-version').value,
      });
      $('prompt').value = r.prompt;
      $('negative').value = r.negative_prompt;
    } catch (e) { showError($('analysis-error'), e); }
  });

  // ---- generation ----
  $('random-seed').addEventListener('click', () => { $('seed').value = ''; });

  function genRequest() {
    const size = Number($('size').value);
    const req = {
      prompt: $('prompt').value, negative_prompt: $('negative').value, model: $('model').value,
      steps: Number($('steps').value), variations: Number($('variations').value), width: size, height: size,
    };
    if ($('seed').value !== '') req.seed = Number($('seed').value);
    if (analysis) {
      const f = {};
      for (const [k, v] of Object.entries(analysis.features || {})) if (typeof v === 'number') f[k] = v;
      req.features = f;
      req.source = { band: $('band').value, song: $('song').value, genre: analysis.genre, url: $('url').value || undefined, id: analysis.source && analysis.source.id };
    }
    return req;
  }

  // Prompt history: the last 20 prompts used on this browser.
  function promptHistory() { try { return JSON.parse(localStorage.getItem('m2p-history') || '[]'); } catch (e) { return []; } }
  function showHistory() {
    const sel = $('history');
    clear(sel);
    sel.append(el('option', { value: '', text: promptHistory().length ? '— choose —' : '—' }));
    promptHistory().forEach((h, i) => sel.append(el('option', { value: String(i), text: h.prompt.slice(0, 90) })));
  }
  function remember(req) {
    const h = promptHistory().filter((x) => x.prompt !== req.prompt);
    h.unshift({ prompt: req.prompt, negative_prompt: req.negative_prompt });
    localStorage.setItem('m2p-history', JSON.stringify(h.slice(0, 20)));
    showHistory();
  }
  $('history').addEventListener('change', () => {
    const h = promptHistory()[Number($('history').value)];
    if ($('history').value !== '' && h) { $('prompt').value = h.prompt; $('negative').value = h.negative_prompt || ''; }
  });

  $('generate').addEventListener('click', async () => {
    showError($('generate-error'), null);
    let r;
    const req = genRequest();
    try { r = await api('POST', '/api/generate', req); } catch (e) { showError($('generate-error'), e); return; }
    remember(req);
    watchGeneration(r.job_id, r.params.variations, r.seed);
  });

  function watchGeneration(job, n, seed) {
    if (currentJob) bus.unsubscribe(currentJob);
    currentJob = job;
    // After a reload the page follows this job again: the server sends its current state.
    sessionStorage.setItem('m2p-job', JSON.stringify({ job, n }));
    $('progress-card').hidden = false;
    $('cancel').disabled = false;
    $('gen-stage').textContent = STAGES.queued;
    const grid = $('variations-progress');
    clear(grid);
    const rows = [];
    for (let i = 0; i < n; i++) {
      const img = el('img', { class: 'preview', alt: 'preview of variation ' + (i + 1) });
      const fill = el('div', { class: 'fill' });
      const label = el('div', { class: 'muted', text: 'variation ' + (i + 1) + '/' + n + ' – waiting' });
      grid.append(el('div', { class: 'var', 'data-variation': i + 1 }, img, el('div', { class: 'bar' }, fill), label));
      rows.push({ img, fill, label });
    }
    bus.subscribe(job, (m) => {
      if (m.type === 'stage') {
        $('gen-stage').textContent = STAGES[m.stage] || m.stage;
      } else if (m.type === 'step') {
        const row = rows[m.variation - 1];
        if (!row) return;
        row.fill.style.width = (100 * m.step / m.steps) + '%';
        row.label.textContent = 'variation ' + m.variation + '/' + m.variations + ' – step ' + m.step + '/' + m.steps +
          ' – ' + fmtSeconds(m.elapsed) + (m.step < m.steps ? ', about ' + fmtSeconds(m.eta) + ' left' : '');
        if (m.preview && m.preview.startsWith('data:image/png;base64,')) row.img.src = m.preview;
        $('gen-stage').textContent = 'Step ' + m.step + ' of ' + m.steps;
      } else if (m.type === 'done' || (m.type === 'state' && m.state.state === 'done')) {
        const res = m.type === 'done' ? m : m.state.result;
        bus.unsubscribe(job);
        $('cancel').disabled = true;
        $('gen-stage').textContent = 'Done';
        rows.forEach((r) => { r.fill.style.width = '100%'; });
        showResults(res);
        refreshModels();
      } else if (m.type === 'error' || (m.type === 'state' && ['failed', 'canceled'].includes(m.state.state))) {
        bus.unsubscribe(job);
        $('cancel').disabled = true;
        $('gen-stage').textContent = '';
        showError($('generate-error'), { message: m.message || m.state.error || 'the generation failed' });
      }
    });
  }

  $('cancel').addEventListener('click', async () => {
    if (!currentJob) return;
    try { await api('POST', '/api/jobs/' + currentJob + '/cancel'); } catch (e) { showError($('generate-error'), e); }
  });

  function showResults(res) {
    $('results-card').hidden = false;
    const box = $('results');
    clear(box);
    $('results-info').textContent = res.images.length + ' poster(s) in ' + fmtSeconds(res.total_time) + ' — seed ' + res.seed;
    for (const im of res.images) {
      const url = M2P.withToken(im.url);
      const reuse = el('button', { type: 'button', text: 'Reuse seed ' + im.seed, onclick: () => { $('seed').value = im.seed; $('variations').value = '1'; } });
      box.append(el('figure', { class: 'result' },
        el('img', { src: url, alt: 'poster ' + im.variation, width: im.width, height: im.height }),
        el('figcaption', {},
          el('span', { class: 'muted', text: 'seed ' + im.seed + ' · ' + fmtSeconds(im.seconds) }),
          el('a', { href: url, download: im.filename, class: 'button', text: 'Download' }), reuse)));
    }
  }

  // Prefill from the gallery's "use again" link.
  if (M2P.params.get('prompt')) $('prompt').value = M2P.params.get('prompt');
  if (M2P.params.get('negative_prompt')) $('negative').value = M2P.params.get('negative_prompt');
  if (M2P.params.get('seed')) $('seed').value = M2P.params.get('seed');
  showHistory();
  loadModels();
  (async () => {
    let last = null;
    try { last = JSON.parse(sessionStorage.getItem('m2p-job') || 'null'); } catch (e) { last = null; }
    if (!last || !(last.job > 0) || !(last.n > 0 && last.n <= 8)) return;
    try {
      await api('GET', '/api/jobs/' + last.job);
      watchGeneration(last.job, last.n);
    } catch (e) {
      sessionStorage.removeItem('m2p-job'); // deleted meanwhile
    }
  })();
})();
