// app.js — the main page: song (URL or upload) -> analysis job with live stages -> check artist
// and song, feature tiles and the energy/beat plot -> edit the prompt (style switch, token count
// from the server's tokenizer, LLM option) -> generation jobs with a live bar and preview per
// variation, a list of this browser's runs (queued, running, done) -> posters per run.
// The form, the analysis and the runs live in localStorage, so a reload mid-run restores them.
// All server text reaches the page through textContent (M2P.el), never as HTML.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const { api, el, clear, fmtSeconds } = M2P;
  const bus = M2P.progress((connected) => { $('conn-lost').hidden = connected; });
  const TERMINAL = ['done', 'failed', 'canceled'];
  const BLANK = 'data:image/gif;base64,R0lGODlhAQABAAAAACw='; // an empty preview until the first step
  const TOKEN_LIMIT = 77; // CLIP reads 77 tokens, start and end included (CLIPTextModel max_position_embeddings)
  let analysis = null;      // the finished analysis result
  let autoPrompt = null;    // the prompt as the page last wrote it (anything else is the user's edit)
  let models = {};
  let runs = [];            // this browser's generations: {job, n, prompt, state, seed, step, steps, result, error}
  let watched = 0;          // the run the progress card shows
  let shownResult = 0;      // the run whose posters the results card shows

  const STAGES = {
    queued: 'Waiting in the queue…', download: 'Downloading', downloading: 'Downloading',
    decoding: 'Decoding the audio…', analysing: 'Listening: tempo, key, energy…',
    genre: 'Finding the genre…', prompts: 'Writing the prompts…', loading_model: 'Loading the model (once)…',
    encoding: 'Reading the prompt…', decoding_image: 'Finishing the images…', running: 'Starting…',
  };
  // Request fields -> the control that sets them (an error naming a field points at it).
  const FIELDS = {
    prompt: 'prompt', negative_prompt: 'negative', steps: 'steps', num_steps: 'steps', width: 'size', height: 'size',
    guidance: 'guidance', seed: 'seed', variations: 'variations', num_variations: 'variations', model: 'model',
    url: 'url', file: 'file',
  };

  // Messages name their field already ("steps is 80; it must be from 1 to 50"): the field is
  // marked on its control instead of being printed a second time.
  function showError(node, err) {
    document.querySelectorAll('[aria-invalid="true"]').forEach((n) => n.removeAttribute('aria-invalid'));
    node.hidden = !err;
    node.textContent = err ? err.message : '';
    const ctl = err && err.field && $(FIELDS[err.field] || '');
    if (ctl) ctl.setAttribute('aria-invalid', 'true');
    if (err) {
      node.scrollIntoView({ block: 'nearest' });
      keepInView(node);
    }
  }

  // Content still rendering (the waveform and tiles after a reload, on a busy machine) can push
  // a message just scrolled into view off the screen again: for a few seconds, while the page
  // grows or shrinks, bring it back, until the user scrolls or types themselves.
  let stopKeeping = null;
  function keepInView(node, ms = 8000) {
    if (stopKeeping) stopKeeping();
    if (typeof ResizeObserver !== 'function') return;
    const follow = () => {
      if (node.hidden) return stop();
      const r = node.getBoundingClientRect();
      if (r.top < 0 || r.bottom > window.innerHeight) node.scrollIntoView({ block: 'nearest' });
    };
    const ro = new ResizeObserver(follow);
    const timer = setTimeout(() => stop(), ms);
    const events = ['wheel', 'touchmove', 'keydown', 'mousedown'];
    function stop() {
      ro.disconnect();
      clearTimeout(timer);
      events.forEach((e) => window.removeEventListener(e, stop, true));
      if (stopKeeping === stop) stopKeeping = null;
    }
    events.forEach((e) => window.addEventListener(e, stop, true));
    stopKeeping = stop;
    ro.observe(document.body);
    requestAnimationFrame(follow);
  }

  // ---- the form, kept across reloads ----
  const SAVED = ['url', 'duration', 'prompt-version', 'band', 'song', 'prompt', 'negative', 'model', 'size', 'steps',
    'guidance', 'variations', 'seed', 'text-layout', 'text-title', 'text-artist'];
  function loadState() { try { return JSON.parse(localStorage.getItem('m2p-state') || 'null') || {}; } catch (e) { return {}; } }
  let saveTimer = 0;
  function writeState() {
    clearTimeout(saveTimer);
    const st = { fields: {}, analysis, autoPrompt };
    for (const id of SAVED) st.fields[id] = $(id).value;
    try { localStorage.setItem('m2p-state', JSON.stringify(st)); } catch (e) { /* full: keep going */ }
  }
  function saveState() {
    clearTimeout(saveTimer);
    saveTimer = setTimeout(writeState, 150);
  }
  document.addEventListener('input', saveState);
  document.addEventListener('change', saveState);
  // A reload or close within the debounce still keeps the last edit.
  window.addEventListener('pagehide', writeState);

  function saveRuns() {
    const keep = runs.slice(-20).map(({ job, n, prompt, state, seed, error, source }) => ({ job, n, prompt, state, seed, error, source }));
    try { localStorage.setItem('m2p-runs', JSON.stringify(keep)); } catch (e) { /* ignore */ }
  }

  // ---- models ----
  async function loadModels() {
    try {
      const m = await api('GET', '/api/models');
      models = m.models || {};
      const sel = $('model');
      const want = sel.dataset.want || sel.value;
      clear(sel);
      for (const [name, info] of Object.entries(models)) {
        if (!info.installed) continue;
        sel.append(el('option', { value: name, text: name + ' — ' + (info.name || name) }));
      }
      if (want && models[want] && models[want].installed) sel.value = want;
      else if (m.default_model) { sel.value = m.default_model; modelDefaults(); }
      const usable = !!sel.value;
      $('no-model').hidden = usable || !!(m.problems || []).length;
      $('generate').disabled = !usable;
      showBadModels(m);
      const vs = $('variations');
      const wantN = vs.dataset.want || vs.value || '1';
      clear(vs);
      for (let i = 1; i <= (m.max_variations || 4); i++) vs.append(el('option', { value: i, text: i }));
      vs.value = Number(wantN) <= (m.max_variations || 4) ? wantN : '1';
      describeModel();
      showModelList();
    } catch (e) {
      $('no-model').hidden = false;
    }
  }

  // ---- the model manager: installed models, their needs, downloads with progress ----
  function showModelList() {
    const ul = $('model-list');
    clear(ul);
    for (const [name, info] of Object.entries(models)) {
      const li = el('li', { 'data-model': name },
        el('strong', { text: name }), el('span', { text: ' — ' + (info.name || name) }),
        el('div', { class: 'muted small needs', text: needsText(info) }),
        el('div', { class: 'muted small', text: [info.speed && 'speed: ' + info.speed, info.hub_id].filter(Boolean).join(' · ') }));
      if (info.installed) li.append(el('span', { class: 'q-state q-done', text: info.loaded ? 'installed, loaded' : 'installed' }));
      else if (info.supported === false) li.append(el('span', { class: 'q-state', text: 'this version cannot run it yet' }));
      else li.append(el('button', { type: 'button', class: 'small', text: 'Download', onclick: () => startFetch(name) }));
      ul.append(li);
    }
  }
  // What a model needs here: memory in this server's dtype (weights + working memory at its
  // own size), and the disk: what its folder takes once installed, else what the download is.
  function gb(n) { return n >= 1e9 ? (n / 1e9).toFixed(1) + ' GB' : Math.max(1, Math.round(n / 1e6)) + ' MB'; }
  function needsText(info) {
    const parts = [];
    if (typeof info.ram_bytes === 'number') parts.push('RAM: about ' + gb(info.ram_bytes) + ' (' + (info.dtype || 'f32') + ')');
    if (typeof info.disk_bytes === 'number') parts.push('disk: ' + gb(info.disk_bytes) + ' here');
    else if (typeof info.download_bytes === 'number') parts.push('disk: about ' + gb(info.download_bytes) + ' to download');
    if (info.installed) parts.push(info.preview === 'taesd' ? 'live previews: TAESD' : 'live previews: colour sketch (no TAESD)');
    return parts.join(' · ');
  }
  let fetchTimer = 0;
  async function startFetch(name) {
    showError($('fetch-error'), null);
    try {
      await api('POST', '/api/models/fetch', { name });
      followFetch();
    } catch (e) { showError($('fetch-error'), e); }
  }
  function mb(n) { return (n / 1048576).toFixed(n < 10485760 ? 1 : 0) + ' MB'; }
  async function followFetch() {
    clearTimeout(fetchTimer);
    let f;
    try { f = await api('GET', '/api/models/fetch'); } catch (e) { fetchTimer = setTimeout(followFetch, 2000); return; }
    if (f.state === 'idle') { $('fetch-box').hidden = true; return; }
    $('fetch-box').hidden = false;
    document.querySelectorAll('#model-list button').forEach((b) => { b.disabled = f.state === 'downloading'; });
    if (f.state === 'downloading') {
      const pctv = f.total > 0 ? 100 * f.done / f.total : 0;
      $('fetch-bar').style.width = pctv + '%';
      $('fetch-text').textContent = 'Downloading ' + f.name + ': ' + (f.file || 'the file list') +
        (f.total > 0 ? ' ' + Math.round(pctv) + '% of ' + mb(f.total) : '') + ' — ' + f.files_done + ' file(s), ' + mb(f.bytes_done) + ' so far';
      fetchTimer = setTimeout(followFetch, 500);
    } else if (f.state === 'done') {
      $('fetch-bar').style.width = '100%';
      $('fetch-text').textContent = f.name + ' is installed (' + f.files_done + ' files, ' + mb(f.bytes_done) + ' in ' + fmtSeconds(f.seconds) + ').';
      await loadModels();
    } else {
      $('fetch-box').hidden = true;
      showError($('fetch-error'), { message: 'The download of ' + f.name + ' failed: ' + (f.error || 'no reason given') });
      showModelList();
    }
  }
  // Models given with --model NAME=DIR (or MUS2PIC_MODEL) whose folder is not usable: the
  // server's message names the folder.
  function showBadModels(m) {
    const bad = (m.problems || []).map((p) => p.name + ': ' + p.message);
    const b = $('bad-models');
    b.hidden = !bad.length;
    b.textContent = bad.length ? 'The server was started with a model it cannot use — ' + bad.join('; ') +
      '. Fix the folder given with --model NAME=DIR (or MUS2PIC_MODEL) and restart the server.' : '';
  }
  // The chosen model's own defaults (/api/models, the original's registry): steps, guidance and
  // size (SD 2.1 768², SDXL Lightning 1024², Turbo 512² at guidance 0). LCM models start at 4
  // steps, the step count the README's speeds are for (the original's 8 doubles the wait).
  function modelDefaults() {
    const info = models[$('model').value];
    if (!info) return;
    $('steps').value = info.guidance_embedded ? 4 : (info.default_steps || 4);
    if (typeof info.default_guidance === 'number') $('guidance').value = info.default_guidance;
    if (info.default_width && info.default_height) {
      const v = info.default_width + 'x' + info.default_height;
      if (![...$('size').options].some((o) => o.value === v))
        $('size').append(el('option', { value: v, text: info.default_width + '×' + info.default_height }));
      $('size').value = v;
    }
    nativeSize(info);
  }
  // The option of the model's own size says so.
  function nativeSize(info) {
    const v = info && info.default_width ? info.default_width + 'x' + info.default_height : '';
    for (const o of $('size').options) {
      o.textContent = o.textContent.replace(/ — this model's size$/, '');
      if (o.value === v) o.textContent += ' — this model\'s size';
    }
  }
  // Why the negative prompt would do nothing, or '' when it is used: it only enters through
  // classifier-free guidance (the unconditional half of the batch, guidance > 1, diffusers
  // StableDiffusionPipeline do_classifier_free_guidance); LCM builds the guidance into the UNet
  // and runs no unconditional pass (diffusers LatentConsistencyModelPipeline takes none).
  function negativeIgnored(name) {
    const info = models[name];
    if (!info) return '';
    if (info.guidance_embedded)
      return 'This model ignores the negative prompt (LCM builds the guidance into the model), so it is not sent; the guidance value still applies.';
    const g = Number($('guidance').value);
    if (!(g > 1))
      return 'At guidance ' + (Number.isFinite(g) ? g : 0) + ' the negative prompt has no effect (it only counts above 1), so it is not sent. ' +
        (info.default_guidance > 1 ? 'This model\'s default is ' + info.default_guidance + '.' : 'This model is made to run without guidance.');
    return '';
  }
  function negativeHint() {
    const why = negativeIgnored($('model').value);
    $('negative-hint').hidden = !why;
    $('negative-hint').textContent = why;
    $('negative').classList.toggle('ignored', !!why);
  }
  $('guidance').addEventListener('input', negativeHint);
  // The time shown is the last generation measured on this server (the original's fixed
  // "6-12 seconds" was for a GPU and is not shown).
  function describeModel() {
    const name = $('model').value;
    const info = models[name];
    const m = info && info.measured;
    const took = m ? 'last run here: ' + m.images + ' image' + (m.images === 1 ? '' : 's') + ' at ' + m.width + '×' + m.height +
      ', ' + m.steps + ' steps in ' + fmtSeconds(m.seconds) : '';
    $('model-desc').textContent = info ? [info.description, took].filter(Boolean).join(' — ') : '';
    negativeHint();
    nativeSize(info);
    estimate();
  }
  function size() {
    const [w, h] = $('size').value.split('x').map(Number);
    return { width: w || 512, height: h || w || 512 };
  }
  // Expected time before the click: the last measured run here, scaled by pixels x steps x
  // images (the UNet's cost grows with each; the model load it may have included is not removed).
  function estimate() {
    const info = models[$('model').value];
    const m = info && info.measured;
    const { width, height } = size();
    const steps = Number($('steps').value) || 0, n = Number($('variations').value) || 1;
    if (!m || !m.seconds || !m.steps || !m.images || !m.width || !m.height || !steps) {
      $('estimate').textContent = info ? 'No run measured on this server yet: the first one also loads the model.' : '';
      return;
    }
    const t = m.seconds * (width * height * steps * n) / (m.width * m.height * m.steps * m.images);
    $('estimate').textContent = 'Expected: about ' + fmtSeconds(t) + ' (scaled from the last run here)';
  }
  async function refreshModels() {
    try { models = (await api('GET', '/api/models')).models || models; describeModel(); } catch (e) { /* keep the old text */ }
  }
  $('model').addEventListener('change', () => { modelDefaults(); describeModel(); countTokens(); });
  for (const id of ['size', 'steps', 'variations']) $(id).addEventListener('input', estimate);

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
        showAnalysis(result, true);
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
    if (!f) { showError($('analysis-error'), { field: 'file', message: 'Choose an audio file first.' }); return; }
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

  // fresh: a new analysis writes its artist, song and prompt into the form (asking before it
  // replaces an edited prompt); a restored one only shows what it found.
  function showAnalysis(a, fresh) {
    analysis = a;
    $('analysis-progress').hidden = true;
    $('verify').hidden = false;
    if (fresh) {
      $('band').value = a.band || '';
      $('song').value = a.song || '';
      offerPrompt(a.prompt || '', a.negative_prompt || '', 'the prompt written for this song');
    }
    $('genre').textContent = a.genre || 'unknown';
    $('genre-source').textContent = a.genre_source || '';
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
    saveState();
  }

  // The energy envelope over time, the beat grid under it (downbeats brighter when the analysis
  // has them), and the key in the corner.
  function drawPlot(f, a) {
    const c = $('plot');
    const ctx = c.getContext('2d');
    const w = c.width, h = c.height, pad = 24;
    ctx.clearRect(0, 0, w, h);
    const env = Array.isArray(f.envelope) ? f.envelope : [];
    const hop = f.envelope_hop_s || 0;
    const total = env.length * hop || f.duration_analyzed || 1;
    const x = (t) => pad + (t / total) * (w - 2 * pad);
    const beats = Array.isArray(a.beats) ? a.beats : (f.beats || []);
    const downbeats = new Set((Array.isArray(a.downbeats) ? a.downbeats : (f.downbeats || [])).map((t) => t.toFixed(3)));
    ctx.lineWidth = 1;
    for (const b of beats) {
      if (b > total) break;
      ctx.strokeStyle = downbeats.has(b.toFixed(3)) ? 'rgba(255,255,255,0.45)' : 'rgba(255,255,255,0.18)';
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
    const conf = typeof (a.beat_confidence ?? f.beat_confidence) === 'number' ? ', beat confidence ' + pct(a.beat_confidence ?? f.beat_confidence) : '';
    $('plot-caption').textContent = 'Energy over ' + total.toFixed(1) + ' s with ' + beats.length + ' beats' +
      (f.tempo ? ' (' + Math.round(f.tempo) + ' BPM)' : '') + (downbeats.size ? ', ' + downbeats.size + ' downbeats' : '') + conf;
  }

  // ---- the prompt ----
  // Put a prompt the page wrote into the box; when the box holds the user's own edit, ask first.
  let pending = null;
  function offerPrompt(prompt, negative, what) {
    const cur = $('prompt').value.trim();
    if (!cur || cur === (autoPrompt || '').trim() || cur === prompt.trim()) { applyPrompt(prompt, negative); return; }
    pending = { prompt, negative };
    $('replace-text').textContent = 'You edited the prompt. Replace it with ' + what + '?';
    $('replace-bar').hidden = false;
  }
  function applyPrompt(prompt, negative) {
    $('prompt').value = prompt;
    $('negative').value = negative;
    autoPrompt = prompt;
    pending = null;
    $('replace-bar').hidden = true;
    countTokens();
    saveState();
  }
  $('replace-yes').addEventListener('click', () => { if (pending) applyPrompt(pending.prompt, pending.negative); });
  $('replace-no').addEventListener('click', () => { pending = null; $('replace-bar').hidden = true; });

  // The prompt of the chosen style: the analysis holds V1, V3 and V4 for the artist and song it
  // found; with a corrected artist or song the server writes it again from the same features.
  async function promptForStyle(version) {
    const band = $('band').value, song = $('song').value;
    const p = analysis.prompts && analysis.prompts[version];
    if (p && band === (analysis.band || '') && song === (analysis.song || '')) return p;
    return api('POST', '/api/generate-prompt', {
      features: analysis.features, band_name: band, song_title: song,
      genre: analysis.genre_raw || analysis.genre || '', prompt_version: version,
    });
  }
  async function restyle() {
    if (!analysis) return;
    const v = $('prompt-version').value;
    try {
      const p = await promptForStyle(v);
      offerPrompt(p.prompt || '', p.negative_prompt || '', 'the ' + v.toUpperCase() + ' prompt');
    } catch (e) { showError($('analysis-error'), e); }
  }
  $('prompt-version').addEventListener('change', restyle);
  $('rebuild').addEventListener('click', restyle);

  // Token counter: the server's CLIP tokenizer for the chosen model counts, and names what the
  // model will not read past its 77 tokens.
  let tokenTimer = 0, tokenSeq = 0;
  function countTokens() {
    clearTimeout(tokenTimer);
    tokenTimer = setTimeout(async () => {
      const text = $('prompt').value;
      const seq = ++tokenSeq;
      if (!text.trim() || !$('model').value) { $('tokens').textContent = ''; return; }
      try {
        const r = await api('POST', '/api/tokens', { text, model: $('model').value });
        if (seq !== tokenSeq) return;
        const over = r.count > r.limit;
        $('tokens').className = over ? 'error small' : 'muted small';
        $('tokens').textContent = r.count + ' of ' + r.limit + ' tokens' +
          (over ? ' — the model reads only the first ' + r.limit + '; it ignores: “' + r.ignored + '”' : '');
      } catch (e) {
        if (seq === tokenSeq) { $('tokens').className = 'muted small'; $('tokens').textContent = ''; }
      }
    }, 250);
  }
  $('prompt').addEventListener('input', countTokens);

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
    if ($('history').value !== '' && h) { $('prompt').value = h.prompt; $('negative').value = h.negative_prompt || ''; countTokens(); }
  });

  // The LLM prompt (POST /api/generate-prompt-llm, as the original's page offered).
  $('llm-write').addEventListener('click', async () => {
    const btn = $('llm-write');
    showError($('llm-error'), null);
    if (!$('band').value.trim() && !$('song').value.trim()) {
      showError($('llm-error'), { message: 'Analyse a song first: the language model writes from its artist, song and genre (card 2).' });
      return;
    }
    btn.disabled = true;
    btn.textContent = 'Writing…';
    try {
      const body = { song_title: $('song').value, artist: $('band').value, genre: analysis ? analysis.genre || '' : '' };
      if ($('llm-key').value) body.api_key = $('llm-key').value;
      const r = await api('POST', '/api/generate-prompt-llm', body);
      offerPrompt(r.prompt || '', $('negative').value, 'the language model\'s prompt');
    } catch (e) { showError($('llm-error'), e); }
    btn.disabled = false;
    btn.textContent = 'Write it';
  });

  // ---- poster text: drawn by the server on the finished image; the plain one stays ----
  function posterText() {
    const layout = $('text-layout').value;
    if (!layout) return null;
    const title = $('text-title').value.trim() || $('song').value.trim();
    const artist = $('text-artist').value.trim() || $('band').value.trim();
    return title || artist ? { layout, title, artist } : null;
  }
  function textControls() {
    const on = !!$('text-layout').value;
    $('text-hint').hidden = !on;
    $('text-fields').hidden = !on;
    $('text-title').placeholder = $('song').value || 'the song';
    $('text-artist').placeholder = $('band').value || 'the artist';
  }
  $('text-layout').addEventListener('change', () => { textControls(); if (shownResult) showResults(runs.find((r) => r.job === shownResult)); });
  for (const id of ['song', 'band']) $(id).addEventListener('input', textControls);

  // ---- generation ----
  $('random-seed').addEventListener('click', () => { $('seed').value = ''; saveState(); });

  function genRequest() {
    const { width, height } = size();
    const req = {
      prompt: $('prompt').value, model: $('model').value,
      steps: Number($('steps').value), variations: Number($('variations').value), width, height,
      guidance: Number($('guidance').value),
    };
    // sent only where it changes the image, so the PNG's parameters never claim one that was not used
    if (!negativeIgnored(req.model)) req.negative_prompt = $('negative').value;
    if ($('seed').value !== '') req.seed = Number($('seed').value);
    if (analysis) {
      const f = {};
      for (const [k, v] of Object.entries(analysis.features || {})) if (typeof v === 'number') f[k] = v;
      req.features = f;
      req.source = { band: $('band').value, song: $('song').value, genre: analysis.genre, url: $('url').value || undefined, id: analysis.source && analysis.source.id };
    }
    return req;
  }

  function activeRuns() { return runs.filter((r) => !TERMINAL.includes(r.state)); }
  // The Generate button says what a click does now: start, or queue behind the runs in flight.
  function buttonState() {
    const b = $('generate');
    const n = activeRuns().length;
    b.textContent = n ? 'Queue another run (' + n + ' in progress)' : 'Generate posters';
  }

  $('generate').addEventListener('click', async () => {
    const btn = $('generate');
    showError($('generate-error'), null);
    if (!$('prompt').value.trim()) {
      showError($('generate-error'), { field: 'prompt', message: 'Write a prompt first, or analyse a song to get one.' });
      $('prompt').focus();
      return;
    }
    const req = genRequest();
    btn.disabled = true;
    btn.textContent = 'Sending…';
    let r;
    try { r = await api('POST', '/api/generate', req); } catch (e) {
      btn.disabled = false;
      buttonState();
      showError($('generate-error'), e);
      return;
    }
    btn.disabled = false;
    remember({ prompt: req.prompt, negative_prompt: $('negative').value });
    const run = { job: r.job_id, n: r.params.variations, prompt: req.prompt, state: 'queued', seed: r.seed, source: req.source };
    runs.push(run);
    saveRuns();
    follow(run);
    if (!watched || activeRuns().length === 1) watch(run);
    else { showQueue(); queuedNote(run); }
    buttonState();
    $('progress-card').hidden = false;
    $('progress-card').scrollIntoView({ block: 'start' });
  });

  function queuedNote(run) {
    const ahead = activeRuns().length - 1;
    $('queue-note').hidden = false;
    $('queue-note').textContent = 'Run ' + run.job + ' is queued behind ' + ahead + (ahead === 1 ? ' run' : ' runs') +
      '; this card moves on to it when ' + (ahead === 1 ? 'that one finishes' : 'those finish') + '. Its posters stay listed under Your runs.';
  }

  // ---- the runs: each followed over the WebSocket; the progress card shows one of them ----
  let rows = [];
  function watch(run) {
    watched = run.job;
    $('queue-note').hidden = true;
    $('progress-card').hidden = false;
    $('gen-job').textContent = '— run ' + run.job;
    $('gen-stage').className = 'muted';
    $('gen-stage').textContent = run.state === 'queued' ? STAGES.queued : '';
    $('cancel').disabled = TERMINAL.includes(run.state);
    // A new run's card starts clean: the posters shown below belong to another run.
    if (shownResult && shownResult !== run.job) { $('results-card').hidden = true; shownResult = 0; }
    const grid = $('variations-progress');
    clear(grid);
    rows = [];
    for (let i = 0; i < run.n; i++) {
      const img = el('img', { class: 'preview', alt: '', src: BLANK });
      const fill = el('div', { class: 'fill' });
      const label = el('div', { class: 'muted', text: 'variation ' + (i + 1) + '/' + run.n + ' – waiting' });
      grid.append(el('div', { class: 'var', 'data-variation': i + 1 }, img, el('div', { class: 'bar' }, fill), label));
      rows.push({ img, fill, label });
    }
    if (run.state === 'done' && run.result) finishedView(run);
    else if (TERMINAL.includes(run.state)) endedView(run);
    showQueue();
  }

  function follow(run) {
    bus.subscribe(run.job, (m) => onEvent(run, m));
  }

  function onEvent(run, m) {
    const mine = run.job === watched;
    if (m.type === 'stage') {
      if (run.state === 'queued' && m.stage !== 'queued') run.state = 'running';
      run.stage = STAGES[m.stage] || m.stage;
      if (mine) $('gen-stage').textContent = run.stage;
    } else if (m.type === 'step') {
      run.state = 'running';
      run.step = m.step; run.steps = m.steps; run.variation = m.variation;
      if (mine) {
        const row = rows[m.variation - 1];
        if (row) {
          row.fill.style.width = (100 * m.step / m.steps) + '%';
          row.label.textContent = 'variation ' + m.variation + '/' + m.variations + ' – step ' + m.step + '/' + m.steps +
            ' – ' + fmtSeconds(m.elapsed) + (m.step < m.steps ? ', about ' + fmtSeconds(m.eta) + ' left' : '');
          if (m.preview && m.preview.startsWith('data:image/png;base64,')) {
            row.img.src = m.preview;
            row.img.alt = 'preview of variation ' + m.variation + ' at step ' + m.step;
          }
        }
        $('gen-stage').textContent = 'Step ' + m.step + ' of ' + m.steps;
      }
    } else if (m.type === 'done' || (m.type === 'state' && m.state.state === 'done')) {
      bus.unsubscribe(run.job);
      run.state = 'done';
      run.result = m.type === 'done' ? m : m.state.result;
      if (mine) finishedView(run);
      refreshModels();
      next(run);
    } else if (m.type === 'error' || (m.type === 'state' && ['failed', 'canceled'].includes(m.state.state))) {
      bus.unsubscribe(run.job);
      const st = m.type === 'state' ? m.state.state : (/cancel/i.test(m.message || '') ? 'canceled' : 'failed');
      run.state = st;
      run.error = m.message || m.state.error || '';
      if (mine) endedView(run);
      next(run);
    } else if (m.type === 'state') {
      // After a (re)subscription: where the run is now. Queued or running; the steps follow.
      if (run.state !== m.state.state && m.state.state === 'queued' && mine) {
        $('gen-stage').textContent = STAGES.queued;
        rows.forEach((r, i) => { r.fill.style.width = '0%'; r.label.textContent = 'variation ' + (i + 1) + '/' + run.n + ' – waiting'; });
      }
      run.state = m.state.state;
    }
    saveRuns();
    showQueue();
    buttonState();
  }

  function finishedView(run) {
    $('cancel').disabled = true;
    $('gen-stage').className = 'muted';
    $('gen-stage').textContent = 'Done';
    rows.forEach((r, i) => {
      r.fill.style.width = '100%';
      r.label.textContent = 'variation ' + (i + 1) + '/' + run.n + ' – done';
    });
    showResults(run);
  }
  // Canceled is what the user asked for: a neutral note, no error colour, no ETA left behind.
  function endedView(run) {
    $('cancel').disabled = true;
    const canceled = run.state === 'canceled';
    $('gen-stage').className = canceled ? 'muted' : 'error';
    $('gen-stage').textContent = canceled ? 'Canceled. Nothing was saved from this run.' : 'This run failed: ' + (run.error || 'no reason given');
    rows.forEach((r, i) => {
      r.fill.style.width = '0%';
      r.label.textContent = 'variation ' + (i + 1) + '/' + run.n + ' – ' + (canceled ? 'canceled' : 'failed');
    });
    if (shownResult === run.job || canceled) { $('results-card').hidden = true; shownResult = 0; }
  }
  // When the watched run ends, the card moves on to the next run in flight.
  function next(run) {
    if (run.job !== watched) return;
    const n = activeRuns()[0];
    if (n) watch(n);
  }

  function showQueue() {
    const list = $('queue');
    clear(list);
    if (activeRuns().length <= 1) $('queue-note').hidden = true; // nothing waits behind the card's run
    const shown = runs.slice(-8).reverse();
    $('queue-box').hidden = shown.length < 2;
    for (const r of shown) {
      const state = r.state === 'running' && r.steps ? 'step ' + r.step + '/' + r.steps + (r.n > 1 ? ' of variation ' + r.variation + '/' + r.n : '') : r.state;
      const li = el('li', { 'data-job': r.job, class: r.job === watched ? 'current' : '' },
        el('span', { class: 'q-state q-' + r.state, text: state }),
        el('span', { class: 'q-prompt', text: 'run ' + r.job + ': ' + r.prompt.slice(0, 60) }));
      if (r.job !== watched) li.append(el('button', { type: 'button', class: 'small', text: 'Show', onclick: () => watch(r) }));
      if (!TERMINAL.includes(r.state))
        li.append(el('button', { type: 'button', class: 'small', text: 'Cancel', onclick: () => cancel(r.job) }));
      list.append(li);
    }
  }

  async function cancel(job) {
    try { await api('POST', '/api/jobs/' + job + '/cancel'); } catch (e) { showError($('generate-error'), e); }
  }
  $('cancel').addEventListener('click', () => {
    if (!watched) return;
    $('cancel').disabled = true;
    $('gen-stage').className = 'muted';
    $('gen-stage').textContent = 'Canceling…';
    rows.forEach((r) => { r.label.textContent = r.label.textContent.replace(/, about .* left$/, ''); });
    cancel(watched);
  });

  function showResults(run) {
    const res = run.result;
    if (!res || !res.images) return;
    shownResult = run.job;
    $('results-card').hidden = false;
    const box = $('results');
    clear(box);
    $('results-info').textContent = 'Run ' + run.job + ': ' + res.images.length + ' poster(s) in ' + fmtSeconds(res.total_time) + ' — seed ' + res.seed;
    const text = posterText();
    for (const im of res.images) {
      const url = M2P.withToken(im.url);
      const name = M2P.posterName(run.source || {}, im);
      const shown = text ? M2P.withToken('/api/images/' + im.id + '/poster.png?' + new URLSearchParams(text).toString()) : url;
      const reuse = el('button', { type: 'button', text: 'Reuse seed ' + im.seed, onclick: () => { $('seed').value = im.seed; $('variations').value = '1'; saveState(); estimate(); } });
      const img = el('img', { src: shown, alt: 'poster ' + im.variation, width: im.width, height: im.height });
      img.addEventListener('error', () => img.replaceWith(el('p', { class: 'muted', text: 'This poster was deleted in the gallery.' })));
      const links = text
        ? [el('a', { href: shown, download: name.replace(/\.png$/, '-text.png'), class: 'button', text: 'Download' }),
          el('a', { href: url, download: name, class: 'button plain', text: 'Plain image' })]
        : [el('a', { href: url, download: name, class: 'button', text: 'Download' })];
      box.append(el('figure', { class: 'result' }, img,
        el('figcaption', {},
          el('span', { class: 'muted', text: 'seed ' + im.seed + ' · ' + fmtSeconds(im.seconds) }), ...links, reuse)));
    }
  }

  // ---- start: the saved form, then the gallery's "use again" parameters over it ----
  function restore() {
    const st = loadState();
    const f = st.fields || {};
    for (const id of SAVED) {
      if (f[id] === undefined || f[id] === null) continue;
      if (id === 'model' || id === 'variations') $(id).dataset.want = f[id];
      if ($(id).tagName === 'SELECT' && ![...$(id).options].some((o) => o.value === f[id])) continue;
      $(id).value = f[id];
    }
    autoPrompt = st.autoPrompt || null;
    if (st.analysis) showAnalysis(st.analysis, false);
    const p = M2P.params;
    const set = (id, key) => { if (p.get(key) !== null) $(id).value = p.get(key); };
    if (p.get('prompt') !== null) { set('prompt', 'prompt'); $('negative').value = p.get('negative_prompt') || ''; }
    set('seed', 'seed');
    set('steps', 'steps');
    set('guidance', 'guidance');
    if (p.get('width') && p.get('height')) {
      const v = p.get('width') + 'x' + p.get('height');
      if (![...$('size').options].some((o) => o.value === v))
        $('size').append(el('option', { value: v, text: p.get('width') + '×' + p.get('height') }));
      $('size').value = v;
    }
    if (p.get('model')) $('model').dataset.want = p.get('model');
    if (p.get('variations')) $('variations').dataset.want = p.get('variations');
    if (p.get('prompt') !== null) { history.replaceState(null, '', 'index.html'); saveState(); }
  }

  // The runs this browser started: the ones still in flight are followed again (the server
  // sends each one's current state), the last one is shown.
  async function restoreRuns() {
    let saved = [];
    try { saved = JSON.parse(localStorage.getItem('m2p-runs') || '[]'); } catch (e) { saved = []; }
    saved = saved.filter((r) => r && r.job > 0 && r.n > 0 && r.n <= 8);
    const checked = await Promise.all(saved.map(async (r) => {
      try {
        const j = await api('GET', '/api/jobs/' + r.job);
        return { ...r, state: j.state, result: j.result, error: j.error || r.error || '' };
      } catch (e) { return null; } // deleted meanwhile
    }));
    runs = checked.filter(Boolean);
    saveRuns();
    for (const r of runs) if (!TERMINAL.includes(r.state)) follow(r);
    const show = activeRuns()[0] || runs[runs.length - 1];
    if (show) watch(show);
    buttonState();
  }

  restore();
  textControls();
  showHistory();
  loadModels().then(() => { countTokens(); estimate(); followFetch(); });
  restoreRuns();
})();
