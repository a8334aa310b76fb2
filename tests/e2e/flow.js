// flow.js — the whole flow in a real browser (Debian's chromium, headless, driven by
// playwright-core), at 1280×900 and on a 390×844 phone: upload a local audio file, watch the
// analysis, check the tiles and the plot; the prompt style switch and the token counter (counts
// from transformers' CLIPTokenizer in the sd-tiny fixture's golden tokens.json); a reload keeps
// the form; generate posters with the tiny model (progress card in view, live progress and
// previews, a second click queued and listed, results); no horizontal overflow on the phone;
// then the gallery (runs grouped, thumbnails, "use again" with every parameter, delete asks
// first, server text stays text) and a one-URL batch through the fake yt-dlp. perModel: each
// model's defaults (steps, guidance, size), the negative prompt's hint and what is sent, the
// model list's RAM and disk, on a server with the tiny SD 2 and SDXL fixtures under registry names.
// modelManager: a download from the page through a fake hub, then TAESD previews.
// M2P_SHOTS=DIR keeps a screenshot of each main state there. Exits nonzero on the first failure.
'use strict';

const { chromium } = require('playwright-core');
const { spawn } = require('child_process');
const net = require('net');
const fs = require('fs');
const os = require('os');
const path = require('path');

const base = process.env.M2P_URL;
const audio = process.env.M2P_AUDIO;
const golden = JSON.parse(fs.readFileSync(process.env.M2P_TOKENS, 'utf8')).prompts;
const assert = (cond, what) => { if (!cond) throw new Error('FAILED: ' + what); };

// page.waitForFunction evaluates a string in the page, which the page's Content-Security-Policy
// (script-src 'self') forbids; page.evaluate is not subject to it, so poll with that instead.
async function waitFor(page, fn, what, timeoutMs = 60000, arg = undefined) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await page.evaluate(fn, arg)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('FAILED: timed out waiting for ' + what);
}

// The document is exactly as wide as the viewport: nothing scrolls sideways.
async function noOverflow(page, where) {
  const w = await page.evaluate(() => ({ doc: document.documentElement.scrollWidth, body: document.body.scrollWidth, vw: window.innerWidth }));
  assert(w.doc === w.vw && w.body <= w.vw, where + ': document ' + w.doc + ' px (body ' + w.body + ') on a ' + w.vw + ' px viewport');
}

// Every control and picture stays inside its card (a select as wide as its longest option, a
// file picker or a table can stick out of the card without widening the document).
async function inCards(page, where) {
  const out = await page.evaluate(() => {
    const bad = [];
    for (const card of document.querySelectorAll('.card')) {
      if (!card.offsetParent) continue;
      const c = card.getBoundingClientRect();
      for (const n of card.querySelectorAll('input, select, textarea, button, img, canvas, table, .bar')) {
        if (!n.offsetParent) continue;
        let scroller = false; // inside a box that scrolls sideways on purpose
        for (let a = n.parentElement; a && a !== card; a = a.parentElement)
          if (/(auto|scroll)/.test(getComputedStyle(a).overflowX)) scroller = true;
        const r = n.getBoundingClientRect();
        if (!scroller && (r.right > c.right + 0.5 || r.left < c.left - 0.5))
          bad.push((n.id || n.tagName.toLowerCase()) + ' in #' + card.id + ' [' + Math.round(r.left) + ',' + Math.round(r.right) + '] of [' + Math.round(c.left) + ',' + Math.round(c.right) + ']');
      }
    }
    return bad;
  });
  assert(out.length === 0, where + ': sticking out of their card: ' + out.join('; '));
}

async function inView(page, sel) {
  return page.$eval(sel, (n) => {
    const r = n.getBoundingClientRect();
    return r.top >= 0 && r.top < window.innerHeight - 40 && r.height > 0;
  });
}

async function flow(browser, vp) {
  const tag = vp.width < 600 ? 'phone' : 'desktop';
  const phone = tag === 'phone';
  const problems = [];
  const page = await browser.newPage();
  await page.setViewportSize(vp);
  const shot = async (name) => {
    if (process.env.M2P_SHOTS) await page.screenshot({ path: path.join(process.env.M2P_SHOTS, tag + '-' + name + '.png'), fullPage: true });
  };
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  // a 400 the test provokes on purpose is not a problem (Chromium logs each one to the console)
  let expectStatus = 0;
  page.on('console', (m) => { if (m.type() === 'error' && !(expectStatus && m.text().includes('status of ' + expectStatus))) problems.push('console: ' + m.text()); });
  page.on('response', (r) => { if (r.status() >= 400 && r.status() !== expectStatus) problems.push(r.status() + ' from ' + r.request().method() + ' ' + r.url()); });
  page.on('dialog', (d) => { problems.push('dialog: ' + d.message()); d.dismiss(); });
  // every JSON frame the page's WebSockets receive (section 6 reads what the server sent a run)
  const frames = [];
  page.on('websocket', (ws) => ws.on('framereceived', (f) => { try { frames.push(JSON.parse(f.payload)); } catch (e) { /* not JSON */ } }));
  page.setDefaultTimeout(60000);

  // 1. the page loads with the tiny model installed
  await page.goto(base + '/index.html');
  await page.waitForSelector('#model option[value="lcm"]', { state: 'attached' });
  assert(await page.isHidden('#no-model'), 'the no-model banner is hidden when a model is installed');
  assert(await page.isHidden('#bad-models'), 'no bad-model banner when every model folder is good');
  if (!phone) {
    assert(!/6-12|seconds/.test(await page.textContent('#model-desc')), 'no time is claimed before one was measured');
    assert(/No run measured/.test(await page.textContent('#estimate')), 'the estimate says none was measured yet');
  }
  assert((await page.inputValue('#steps')) === '4', 'the web default is 4 steps');
  const sizes = await page.$$eval('#size option', (o) => o.map((x) => x.value));
  assert(sizes.includes('512x768') && sizes.includes('768x512'), 'portrait and landscape sizes: ' + sizes);
  assert(await page.isVisible('#negative-hint'), 'the negative prompt says LCM ignores it');
  // the model manager lists the registry: lcm installed, every other model of the original offered for download
  await page.waitForSelector('#model-list li[data-model="lcm"]');
  assert(/installed/.test(await page.textContent('#model-list li[data-model="lcm"]')), 'lcm listed as installed');
  for (const m of ['sd14', 'sd21', 'lcm_sd21', 'turbo', 'sdxl_lightning'])
    assert((await page.$$('#model-list li[data-model="' + m + '"] button')).length === 1, m + ' offered for download');
  assert((await page.$$('#model-list li[data-model="lcm"] button')).length === 0, 'no download offered for an installed model');
  if (phone) { await noOverflow(page, 'the model list at 390 px'); await inCards(page, 'the start page at 390 px'); }
  await shot('1-start');

  // 2. a file that is not audio: the error names the file, not the server's folder for it
  if (!phone) {
    await page.setInputFiles('#file', { name: 'notes.mp3', mimeType: 'audio/mpeg', buffer: Buffer.from('these are not sounds') });
    await page.click('#analyze-file');
    await page.waitForSelector('#analysis-error', { state: 'visible' });
    const err = await page.textContent('#analysis-error');
    assert(/notes\.mp3/.test(err) && !/uploads|\/tmp\/|up-[0-9a-f]/.test(err), 'the upload error names the file only: ' + err);
  }
  // upload and analyse
  await page.selectOption('#duration', '30');
  await page.setInputFiles('#file', audio);
  await page.click('#analyze-file');
  await page.waitForSelector('#verify', { state: 'visible' });
  const tiles = await page.$$eval('#tiles .tile', (t) => t.map((x) => x.querySelector('.tile-name').textContent));
  assert(JSON.stringify(tiles) === JSON.stringify(['Tempo', 'Energy', 'Key', 'Valence', 'Arousal', 'Chaos', 'Density', 'Melodic', 'Dynamic']), 'nine feature tiles: ' + tiles);
  const tempo = await page.textContent('#tiles [data-feature="tempo"] .tile-value');
  assert(/\d+ BPM/.test(tempo), 'tempo tile shows BPM: ' + tempo);
  assert((await page.inputValue('#song')) === 'choice', 'the song title comes from the file name');
  assert((await page.inputValue('#prompt')).length > 20, 'a prompt was written');
  const painted = await page.$eval('#plot', (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
    return n;
  });
  assert(painted > 500, 'the energy/beat plot is drawn (' + painted + ' pixels)');
  assert(/beats/.test(await page.textContent('#plot-caption')), 'the plot caption counts beats');
  await shot('2-analysed');

  // 3. the style switch writes that style's prompt at once; over an edit it asks first
  // the three prompts the analysis wrote (the page keeps the analysis in localStorage)
  await waitFor(page, () => { try { return !!JSON.parse(localStorage.getItem('m2p-state')).analysis.prompts.v1; } catch (e) { return false; } }, 'the saved analysis');
  const prompts = await page.evaluate(() => JSON.parse(localStorage.getItem('m2p-state')).analysis.prompts);
  const before = await page.inputValue('#prompt');
  await page.selectOption('#prompt-version', 'v1');
  await waitFor(page, (b) => document.getElementById('prompt').value !== b, 'the V1 prompt after the style switch', 60000, before);
  const v1 = await page.inputValue('#prompt');
  assert(await page.isHidden('#replace-bar'), 'an unedited prompt is replaced without asking');
  assert(v1 === prompts.v1.prompt, 'the V1 prompt of the analysis');
  await page.fill('#prompt', v1 + ', my own words');
  await page.selectOption('#prompt-version', 'v3');
  await page.waitForSelector('#replace-bar', { state: 'visible' });
  assert((await page.inputValue('#prompt')) === v1 + ', my own words', 'an edited prompt stays until the user says');
  await shot('3-replace-ask');
  await page.click('#replace-yes');
  const v3 = await page.inputValue('#prompt');
  assert(v3 !== v1 + ', my own words' && v3.length > 20, 'the V3 prompt replaced the edit');
  // a corrected artist: the server writes the prompt again from the same features
  await page.fill('#band', 'Admiral Bob');
  await page.selectOption('#prompt-version', 'v1');
  await waitFor(page, () => document.getElementById('prompt').value.includes('Admiral Bob'), 'the V1 prompt with the corrected artist');

  // the LLM option: a wrong key is an error that says so; the right one writes the prompt
  if (!phone) {
    const kept = await page.inputValue('#prompt');
    await page.click('#llm summary');
    await page.fill('#llm-key', 'sk-wrong');
    expectStatus = 400; // the key is bad input: the server says so with the endpoint's words
    await page.click('#llm-write');
    await page.waitForSelector('#llm-error', { state: 'visible' });
    assert(/API key|401|Incorrect/i.test(await page.textContent('#llm-error')), 'a wrong LLM key: ' + await page.textContent('#llm-error'));
    await page.fill('#llm-key', 'sk-test');
    expectStatus = 0;
    await page.click('#llm-write');
    // the box held the page's own V1 prompt: replaced without asking
    await waitFor(page, () => document.getElementById('prompt').value === 'a neon skyline poster for choice, bold type, masterpiece, best quality', 'the LLM prompt (the original appends its quality words)');
    const sent = await (await fetch(process.env.M2P_LLM + '/last')).json();
    assert(sent.auth === 'Bearer sk-test' && /Admiral Bob/.test(sent.body) && /choice/.test(sent.body), 'what the LLM was sent: ' + JSON.stringify(sent));
    await page.fill('#prompt', kept);
  }

  // 4. the token counter, against transformers' CLIPTokenizer counts
  for (const g of [golden.find((p) => p.prompt === 'a photo of a cat'), golden.find((p) => p.truncated)]) {
    await page.fill('#prompt', g.prompt);
    await waitFor(page, (n) => document.getElementById('tokens').textContent.startsWith(n + ' of 77 tokens'), 'the token count ' + g.num_tokens_untruncated, 60000, g.num_tokens_untruncated);
    if (g.truncated) {
      const ignored = g.tokens_untruncated.slice(76, -1).map((t) => t.replace(/<\/w>$/, ' ')).join('').trim();
      const text = await page.textContent('#tokens');
      assert(text.includes('ignores: “' + ignored + '”'), 'the counter names the ignored words: ' + text + ' / ' + ignored);
      assert(await page.$eval('#tokens', (n) => n.className.includes('error')), 'past 77 tokens the counter is an error');
    }
  }
  await shot('4-tokens');

  // 5. a reload keeps the analysis and the form
  await page.fill('#prompt', '<b>bold</b> neon poster <img src=x onerror=alert(1)>');
  await page.selectOption('#size', '64x64');
  await page.fill('#guidance', '6.5');
  await page.fill('#seed', '123');
  await waitFor(page, () => { try { return JSON.parse(localStorage.getItem('m2p-state')).fields.seed === '123'; } catch (e) { return false; } }, 'the form saved');
  await page.reload();
  await page.waitForSelector('#verify', { state: 'visible' });
  assert((await page.inputValue('#prompt')) === '<b>bold</b> neon poster <img src=x onerror=alert(1)>', 'the prompt after a reload');
  assert((await page.inputValue('#band')) === 'Admiral Bob', 'the artist after a reload');
  assert((await page.inputValue('#size')) === '64x64' && (await page.inputValue('#guidance')) === '6.5' && (await page.inputValue('#seed')) === '123', 'the settings after a reload');
  assert((await page.$$('#tiles .tile')).length === 9, 'the analysis tiles after a reload');

  // 1 again: a request the server refuses is answered next to the button, on screen, with its
  // control marked and the field named once
  await page.fill('#steps', '80');
  expectStatus = 400;
  await page.click('#generate');
  await page.waitForSelector('#generate-error', { state: 'visible' });
  const gerr = await page.textContent('#generate-error');
  assert(/^steps is 80; it must be from 1 to 50/.test(gerr), 'the refused steps: ' + gerr);
  // on screen once the page has settled: after the reload above, content that renders late (the
  // waveform, the tiles) can still move the page under a loaded host, and the check is what the
  // user ends up seeing, so it waits up to 10 s instead of reading the first frame
  await waitFor(page, () => { const r = document.getElementById('generate-error').getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight && r.height > 0; }, 'the error is on screen', 10000);
  assert((await page.getAttribute('#steps', 'aria-invalid')) === 'true', 'the steps field is marked');
  assert(await page.isHidden('#progress-card'), 'no progress card for a refused request');
  await shot('5b-refused');
  expectStatus = 0;
  await page.fill('#steps', '4');

  // 6. generate; the progress card comes into view; record what the progress area shows
  await page.evaluate(() => {
    window.__seen = { labels: new Set(), previews: 0 };
    new MutationObserver(() => {
      for (const v of document.querySelectorAll('#variations-progress .var')) {
        window.__seen.labels.add(v.querySelector('.muted').textContent);
        if ((v.querySelector('img').getAttribute('src') || '').startsWith('data:image/png')) window.__seen.previews++;
      }
    }).observe(document.getElementById('variations-progress'), { subtree: true, childList: true, attributes: true, characterData: true });
  });
  const n = phone ? 4 : 2;
  await page.selectOption('#variations', String(n));
  // The tiny model paints a run in a fraction of a second, and a page slowed down by a loaded
  // machine may subscribe to its run only after the run finished: the server then sends the
  // finished state first and the page rightly shows the run done, with no steps to show. The
  // frames say which happened; only then is the run started again (at most three times).
  const jobOf = async () => Number(((await page.textContent('#gen-job')) || '').replace(/\D+/g, '')) || 0;
  const ended = (job) => frames.some((f) => f.job === job && (f.type === 'done' || (f.type === 'state' && f.state && f.state.state === 'done')));
  let seen;
  for (let attempt = 1, last = await jobOf(); ; attempt++) {
    await page.evaluate(() => { window.__seen = { labels: new Set(), previews: 0 }; });
    if (!phone) await page.evaluate(() => window.scrollTo(0, 0));
    await page.click('#generate');
    await page.waitForSelector('#progress-card', { state: 'visible' });
    // in view: its top on screen with room below it (the page may end before the card can reach the top)
    await waitFor(page, () => { const r = document.getElementById('progress-card').getBoundingClientRect(); return r.top >= 0 && r.top < window.innerHeight - 150; }, 'the progress card scrolled into view');
    assert(await inView(page, '#cancel'), 'Cancel is on screen with the progress card');
    await waitFor(page, (j) => Number(document.getElementById('gen-job').textContent.replace(/\D+/g, '')) !== j, 'the new run on the card', 60000, last);
    const job = await jobOf();
    last = job;
    // For the screenshot only: a mid-run step, or the posters when the tiny model was faster.
    await waitFor(page, () => /step [23]\/4/.test(document.getElementById('variations-progress').textContent) ||
      document.querySelectorAll('#results figure img').length > 0, 'a step or the posters');
    await shot('5-painting');
    for (const end = Date.now() + 60000; !ended(job); await new Promise((r) => setTimeout(r, 100)))
      assert(Date.now() < end, 'run ' + job + ' finished (its done event)');
    await waitFor(page, (k) => !document.getElementById('results-card').hidden && document.querySelectorAll('#results figure img').length === k, n + ' posters', 60000, n);
    await waitFor(page, () => [...document.querySelectorAll('#results figure img')].every((i) => i.complete && i.naturalWidth === 64), 'the posters to load');
    seen = await page.evaluate(() => ({ labels: [...window.__seen.labels], previews: window.__seen.previews }));
    const mine = frames.filter((f) => f.job === job);
    const finishedFirst = mine.length > 0 && mine[0].type === 'state' && mine[0].state && mine[0].state.state === 'done' && !mine.some((f) => f.type === 'step');
    if (!finishedFirst) break;
    assert(attempt < 3, 'three runs finished before the page subscribed to them');
  }
  assert(seen.labels.some((l) => new RegExp('variation 1/' + n + ' – step \\d/4').test(l)), 'live progress of variation 1: ' + seen.labels.join(' | '));
  assert(seen.labels.some((l) => new RegExp('variation 2/' + n + ' – step \\d/4').test(l)), 'live progress of variation 2');
  assert(seen.previews > 0, 'preview images were shown during the steps');
  const info = await page.textContent('#results-info');
  assert(/seed 123/.test(info) && new RegExp(n + ' poster').test(info), 'results say the seed and the count: ' + info);
  assert(!/left/.test(await page.textContent('#variations-progress')), 'no time-left label once done');
  await waitFor(page, (k) => new RegExp('last run here: ' + k + ' images at 64×64, 4 steps in').test(document.getElementById('model-desc').textContent), 'the measured time in the model description', 60000, n);
  await waitFor(page, () => /Expected: about/.test(document.getElementById('estimate').textContent), 'the expected time before the next click');
  await shot('6-posters');
  const dl = await page.$$eval('#results a[download]', (a) => a.map((x) => x.getAttribute('download')));
  assert(dl.length === n && dl[0] === 'admiral-bob-choice-123.png' && dl[1] === 'admiral-bob-choice-124.png', 'download names artist-song-seed.png: ' + dl);
  // the served PNG says how it was made (A1111 "parameters" text chunk) and downloads by name
  const png = await page.evaluate(async (u) => {
    const r = await fetch(u);
    const b = new Uint8Array(await r.arrayBuffer());
    const dv = new DataView(b.buffer);
    const chunks = {};
    for (let at = 8; at + 8 <= b.length;) {
      const len = dv.getUint32(at), type = String.fromCharCode(...b.slice(at + 4, at + 8));
      if (type === 'tEXt' || type === 'iTXt') {
        const body = b.slice(at + 8, at + 8 + len), z = body.indexOf(0);
        const key = new TextDecoder().decode(body.slice(0, z));
        let text = body.slice(z + 1);
        if (type === 'iTXt') { let k = 2, nul = 0; while (nul < 2) { if (text[k] === 0) nul++; k++; } text = text.slice(k); }
        chunks[key] = new TextDecoder(type === 'tEXt' ? 'latin1' : 'utf-8').decode(text);
      }
      at += 12 + len;
    }
    return { chunks, disposition: r.headers.get('content-disposition') };
  }, await page.getAttribute('#results figure:nth-child(1) a[download]', 'href'));
  assert(/filename="admiral-bob-choice-123\.png"/.test(png.disposition || ''), 'Content-Disposition: ' + png.disposition);
  const last = (png.chunks.parameters || '').split('\n').pop();
  assert(/^Steps: 4, Sampler: LCM, CFG scale: 6\.5, Seed: 123, Size: 64x64, Model: lcm, Song: Admiral Bob - choice, Version: mus2pic /.test(last), 'the PNG parameters: ' + JSON.stringify(png.chunks));
  assert((png.chunks.parameters || '').startsWith('<b>bold</b> neon poster'), 'the PNG carries the prompt');
  // poster text: the server draws song and artist on the poster; pixels change only in the band
  if (!phone) {
    await page.selectOption('#text-layout', 'band');
    await waitFor(page, () => [...document.querySelectorAll('#results figure img')].every((i) => /poster\.png\?/.test(i.src) && i.complete && i.naturalWidth === 64), 'the posters with text');
    const rows = await page.evaluate(async () => {
      const fig = document.querySelector('#results figure');
      const load = (u) => new Promise((res, rej) => { const i = new Image(); i.onload = () => res(i); i.onerror = rej; i.src = u; });
      const [a, b] = await Promise.all([load(fig.querySelector('a.plain').href), load(fig.querySelector('img').src)]);
      const px = (im) => { const c = document.createElement('canvas'); c.width = 64; c.height = 64; const x = c.getContext('2d'); x.drawImage(im, 0, 0); return x.getImageData(0, 0, 64, 64).data; };
      const pa = px(a), pb = px(b), changed = [];
      for (let y = 0; y < 64; y++) {
        let n = 0;
        for (let x = 0; x < 64; x++) for (let c = 0; c < 3; c++) if (pa[(y * 64 + x) * 4 + c] !== pb[(y * 64 + x) * 4 + c]) n++;
        if (n) changed.push(y);
      }
      return changed;
    });
    assert(rows.length >= 8 && rows[rows.length - 1] - rows[0] === rows.length - 1, 'one band of changed rows: ' + rows);
    assert(Math.abs((rows[0] + rows[rows.length - 1]) / 2 - 64 * 2 / 3) <= 2, 'the band across the lower third: ' + rows);
    const links = await page.$$eval('#results figure:first-child a[download]', (a) => a.map((x) => x.getAttribute('download')));
    assert(links[0] === 'admiral-bob-choice-123-text.png' && links[1] === 'admiral-bob-choice-123.png', 'downloads with text and plain: ' + links);
    await shot('6b-poster-text');
    await page.selectOption('#text-layout', '');
  }
  await page.click('#results figure:nth-child(2) button');
  assert((await page.inputValue('#seed')) === '124', 'reusing the second poster\'s seed (123 + 1)');
  if (phone) {
    await page.evaluate(() => window.scrollTo(0, 0));
    await noOverflow(page, 'the main page at 390 px after a generation');
    await inCards(page, 'the main page at 390 px after a generation');
    const h = await page.evaluate(() => document.getElementById('variations-progress').getBoundingClientRect().height);
    assert(h < 900, 'four variations in a grid, not a stack: ' + h + ' px');
  }

  // 7. a second click while one runs is queued and listed, never a silent switch
  await page.fill('#seed', '');
  await page.selectOption('#variations', '1');
  await page.click('#generate');
  await page.click('#generate');
  await page.waitForSelector('#queue-box', { state: 'visible' });
  await waitFor(page, () => document.querySelectorAll('#queue li').length >= 3, 'the runs listed');
  await shot('7-queued');
  await waitFor(page, () => [...document.querySelectorAll('#queue .q-state')].every((s) => s.textContent === 'done'), 'every run done');
  const jobs = await page.$$eval('#queue li', (l) => l.map((x) => Number(x.dataset.job)));
  assert(new Set(jobs).size === jobs.length, 'each run listed once: ' + jobs);
  // the earlier run's posters are one click away
  await page.click('#queue li:last-child button');
  await waitFor(page, (k) => document.querySelectorAll('#results figure img').length === k && /seed 123/.test(document.getElementById('results-info').textContent), 'the first run shown again', 60000, n);
  if (phone) await noOverflow(page, 'the main page at 390 px with the run list');

  // Cancel: a queued run from the list, then the running one from the card; both end in a
  // neutral state (no error colour, no time-left labels, no earlier run's posters)
  if (!phone) {
    await page.selectOption('#size', '512x512');
    await page.fill('#steps', '8');
    await page.selectOption('#variations', '4');
    await page.click('#generate');
    await waitFor(page, () => document.querySelectorAll('#queue li').length >= 4, 'the long run listed');
    await page.click('#generate');
    await waitFor(page, () => document.querySelectorAll('#queue li').length >= 5, 'the queued run listed');
    const queued = await page.$eval('#queue li:first-child', (li) => Number(li.dataset.job));
    const running = queued - 1;
    // a reload mid-run: the card follows the running run again, the queued one is listed
    await page.reload();
    await waitFor(page, (j) => document.getElementById('gen-job').textContent.includes('run ' + j) &&
      !!document.querySelector('#queue li[data-job="' + (j + 1) + '"]'), 'the running run followed after a reload', 60000, running);
    assert((await page.inputValue('#size')) === '512x512' && (await page.inputValue('#steps')) === '8', 'the settings after a reload mid-run');
    await page.click('#queue li:first-child button:has-text("Cancel")');
    await waitFor(page, (j) => document.querySelector('#queue li[data-job="' + j + '"] .q-state').textContent === 'canceled', 'the queued run canceled', 60000, queued);
    await page.click('#cancel');
    await waitFor(page, () => /^Canceled/.test(document.getElementById('gen-stage').textContent), 'the running run canceled', 300000); // at its next step: slow under ASan
    assert(!(await page.$eval('#gen-stage', (n) => n.className)).includes('error'), 'Canceled is not shown as an error');
    assert(!/left/.test(await page.textContent('#variations-progress')), 'no time-left labels after Cancel');
    assert(await page.isHidden('#results-card'), 'no earlier run\'s posters after Cancel');
    assert(await page.isHidden('#generate-error'), 'no error after Cancel');
    assert(await page.isHidden('#queue-note'), 'no "queued behind" note once nothing is queued');
    await shot('7b-canceled');
    await page.selectOption('#size', '64x64');
    await page.fill('#steps', '4');
    await page.selectOption('#variations', '1');
    await page.click('#generate');
    await waitFor(page, () => document.querySelectorAll('#results figure img').length === 1, 'a run after the cancel');
  }

  // a reload follows the runs again and shows the last one's posters; the prompt went into the history
  await page.reload();
  await waitFor(page, () => document.querySelectorAll('#results figure img').length === 1, 'the last run\'s poster after a reload');
  const hist = await page.$$eval('#history option', (o) => o.map((x) => x.textContent));
  assert(hist.some((x) => x.startsWith('<b>bold</b> neon poster')), 'the prompt history: ' + hist);
  if (phone) await noOverflow(page, 'the main page at 390 px after a reload with history');

  // 8. the gallery: runs grouped, thumbnails, server text as text, use again, delete asks
  await page.goto(base + '/gallery.html');
  await page.waitForSelector('.gallery .item');
  const group = await page.$$eval('.gallery .item', (items) => items.map((i) => i.querySelectorAll('.thumb').length));
  assert(group.includes(n), 'the ' + n + ' variations of one run in one card: ' + group);
  const prompts2 = await page.$$eval('.gallery .item .prompt', (p) => p.map((x) => x.textContent));
  assert(prompts2.includes('<b>bold</b> neon poster <img src=x onerror=alert(1)>'), 'the prompt is shown as text');
  assert((await page.$$('.gallery .item .prompt b, .gallery .item .prompt img')).length === 0, 'no HTML from the server was rendered');
  assert(/\d+ poster/.test(await page.textContent('#summary')), 'the gallery counts posters');
  const thumbs = await page.$$eval('.gallery .item img', (i) => i.map((x) => x.getAttribute('src')));
  assert(thumbs.every((s) => /\/api\/images\/\d+\/thumb\.png/.test(s)), 'thumbnails, not the full images: ' + thumbs[0]);
  const cache = await page.evaluate(async (u) => (await fetch(u)).headers.get('cache-control'), thumbs[0]);
  assert(/max-age=\d+/.test(cache || ''), 'thumbnails may be cached: ' + cache);
  if (phone) await noOverflow(page, 'the gallery at 390 px');
  await shot('8-gallery');
  // delete (an earlier run's poster): the first click only asks
  const before2 = (await page.$$('.gallery .item')).length;
  const single = await page.$('.gallery .item:nth-child(2) figcaption button');
  await single.click();
  assert(/Really delete/.test(await single.textContent()), 'Delete asks first');
  assert((await page.$$('.gallery .item')).length === before2, 'nothing deleted by one click');
  await single.click();
  await waitFor(page, (k) => document.querySelectorAll('.gallery .item').length === k - 1, 'the item deleted after the second click', 60000, before2);
  // use again: every parameter of the run comes back
  const again = await page.evaluate((k) => {
    const item = [...document.querySelectorAll('.gallery .item')].find((i) => i.querySelectorAll('.thumb').length === k);
    return item.querySelector('a.button[href^="index.html"]').getAttribute('href');
  }, n);
  await page.goto(base + '/' + again);
  await page.waitForSelector('#model option[value="lcm"]', { state: 'attached' });
  await waitFor(page, () => document.getElementById('variations').options.length > 0, 'the variations');
  assert((await page.inputValue('#prompt')) === '<b>bold</b> neon poster <img src=x onerror=alert(1)>', 'use again: the prompt');
  assert((await page.inputValue('#seed')) === '123' && (await page.inputValue('#steps')) === '4' &&
    (await page.inputValue('#size')) === '64x64' && (await page.inputValue('#guidance')) === '6.5' &&
    (await page.inputValue('#variations')) === String(n) && (await page.inputValue('#model')) === 'lcm', 'use again: seed, steps, size, guidance, variations, model');

  // 9. a batch of one URL through the fake yt-dlp; a bad line is named by its number from 1
  await page.goto(base + '/batch.html');
  await page.waitForSelector('#model option[value="lcm"]', { state: 'attached' });
  await page.fill('#urls', 'https://www.youtube.com/watch?v=fakeid12345\nnot a url');
  expectStatus = 400;
  await page.click('#start');
  await page.waitForSelector('#error', { state: 'visible' });
  const berr = await page.textContent('#error');
  assert(/^line 2: this is not a URL/.test(berr) && !/%20|urls\[/.test(berr), 'the bad batch line: ' + berr);
  await page.fill('#urls', 'https://www.youtube.com/watch?v=fakeid12345');
  expectStatus = 0; // after a round trip to the page: the 400's console line has arrived
  await page.selectOption('#duration', '30');
  await page.selectOption('#size', '64x64');
  await page.fill('#steps', '2');
  await page.click('#start');
  await page.waitForSelector('#items tr .posters img');
  await waitFor(page, () => /finished/.test(document.getElementById('batch-summary').textContent), 'the batch to finish');
  assert(/Admiral Bob/.test(await page.textContent('#items tr')), 'the batch row names the artist');
  await waitFor(page, () => /1 song, 1 done, finished/.test(document.getElementById('batches').textContent), 'the list of batches to show it finished');
  if (phone) { await noOverflow(page, 'the batch page at 390 px'); await inCards(page, 'the batch page at 390 px'); }
  await shot('9-batch');

  assert(problems.length === 0, 'no page errors: ' + problems.join('; '));
  await page.close();
}

// A server started with --model typo=/a/missing/folder: a banner names the folder, the other
// model still works, and a generation asking for the broken one says what is wrong with it.
async function badModel(browser, vp) {
  const page = await browser.newPage();
  await page.setViewportSize(vp);
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  await page.goto(process.env.M2P_BAD_URL + '/index.html');
  await page.waitForSelector('#bad-models', { state: 'visible' });
  const text = await page.textContent('#bad-models');
  assert(text.includes(process.env.M2P_BAD_FOLDER) && /typo/.test(text) && /no such folder/.test(text), 'the banner names the model and its folder: ' + text);
  assert(await page.isHidden('#no-model'), 'no "no model" banner as well');
  await page.waitForSelector('#model option[value="lcm"]', { state: 'attached' });
  assert(!(await page.$('#model option[value="typo"]')), 'the broken model is not offered');
  const r = await page.evaluate(async () => {
    const x = await fetch('/api/generate', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ prompt: 'a cat', model: 'typo' }) });
    return { status: x.status, body: await x.json() };
  });
  assert(r.status === 400 && r.body.field === 'model' && /no such folder/.test(r.body.error) && !/models fetch/.test(r.body.error), 'generate names the folder problem: ' + JSON.stringify(r.body));
  if (process.env.M2P_SHOTS) await page.screenshot({ path: path.join(process.env.M2P_SHOTS, (vp.width < 600 ? 'phone' : 'desktop') + '-0-bad-model.png') });
  if (vp.width < 600) await noOverflow(page, 'the bad-model banner at 390 px');
  assert(problems.length === 0, 'no page errors: ' + problems.join('; '));
  await page.close();
}

// The text chunks of a served PNG ({key: text}), read in the page.
async function pngChunks(page, url) {
  return page.evaluate(async (u) => {
    const b = new Uint8Array(await (await fetch(u)).arrayBuffer());
    const dv = new DataView(b.buffer);
    const chunks = {};
    for (let at = 8; at + 8 <= b.length;) {
      const len = dv.getUint32(at), type = String.fromCharCode(...b.slice(at + 4, at + 8));
      if (type === 'tEXt' || type === 'iTXt') {
        const body = b.slice(at + 8, at + 8 + len), z = body.indexOf(0);
        const key = new TextDecoder().decode(body.slice(0, z));
        let text = body.slice(z + 1);
        if (type === 'iTXt') { let k = 2, nul = 0; while (nul < 2) { if (text[k] === 0) nul++; k++; } text = text.slice(k); }
        chunks[key] = new TextDecoder(type === 'tEXt' ? 'latin1' : 'utf-8').decode(text);
      }
      at += 12 + len;
    }
    return chunks;
  }, url);
}

async function freePort() {
  return new Promise((res) => { const sv = net.createServer(); sv.listen(0, '127.0.0.1', () => { const p = sv.address().port; sv.close(() => res(p)); }); });
}
async function waitPort(port) {
  for (let i = 0; i < 300; i++) {
    const ok = await new Promise((res) => { const c = net.connect(port, '127.0.0.1', () => { c.end(); res(true); }); c.on('error', () => res(false)); });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('FAILED: the server on port ' + port + ' did not come up');
}

// Each model's own defaults (issue 8): a server with the tiny fixtures under registry names
// (lcm = sd-tiny, sd21 = sd2-tiny, turbo = sdxl-tiny). Picking a model sets its steps, guidance
// and size (the original's registry: SD 2.1 20 steps 7.5 768², Turbo 1 step 0.0 512², LCM 4
// steps as the README's speeds); the negative prompt says when it is ignored (LCM, guidance <= 1)
// and is sent, and lands in the PNG, only otherwise; the model list says what each needs.
async function perModel(browser, vp) {
  const tag = vp.width < 600 ? 'phone' : 'desktop';
  const port = await freePort();
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'm2p-models-'));
  const fx = process.env.M2P_FIXTURES;
  const srv = spawn(process.env.M2P_BIN, ['serve', '--port', String(port), '--data', data, '--offline',
    '--model', 'lcm=' + fx + '/sd-tiny/model', '--model', 'sd21=' + fx + '/sd2-tiny/model',
    '--model', 'turbo=' + fx + '/sdxl-tiny/model'], { stdio: 'ignore' });
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text() + ' at ' + JSON.stringify(m.location())); });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(r.status() + ' from ' + r.request().method() + ' ' + r.url()); });
  const sent = [];
  page.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/api/generate')) sent.push(JSON.parse(r.postData())); });
  try {
    await waitPort(port);
    await page.setViewportSize(vp);
    const url = 'http://127.0.0.1:' + port;
    await page.goto(url + '/index.html'); // a new port: a new origin with nothing saved
    for (const m of ['lcm', 'sd21', 'turbo']) await page.waitForSelector('#model option[value="' + m + '"]', { state: 'attached' });
    const form = async () => ({ steps: await page.inputValue('#steps'), guidance: await page.inputValue('#guidance'), size: await page.inputValue('#size'), hint: await page.isVisible('#negative-hint') });
    // lcm, the default model
    let f = await form();
    assert((await page.inputValue('#model')) === 'lcm' && f.steps === '4' && Number(f.guidance) === 1 && f.size === '512x512' && f.hint, 'lcm defaults: ' + JSON.stringify(f));
    assert(/LCM/.test(await page.textContent('#negative-hint')), 'the hint names LCM');
    // SD 2.1: 20 steps, guidance 7.5, 768², the negative prompt counts
    await page.selectOption('#model', 'sd21');
    f = await form();
    assert(f.steps === '20' && Number(f.guidance) === 7.5 && f.size === '768x768' && !f.hint, 'sd21 defaults: ' + JSON.stringify(f));
    assert(/this model's size/.test(await page.$eval('#size option[value="768x768"]', (o) => o.textContent)), 'the 768² option says it is the model\'s size');
    // SDXL Turbo: 1 step, guidance 0, 512²; the negative prompt is ignored at guidance 0
    await page.selectOption('#model', 'turbo');
    f = await form();
    assert(f.steps === '1' && Number(f.guidance) === 0 && f.size === '512x512' && f.hint, 'turbo defaults: ' + JSON.stringify(f));
    assert(/guidance 0/.test(await page.textContent('#negative-hint')), 'the hint says guidance 0: ' + await page.textContent('#negative-hint'));
    // back to SD 2.1: guidance 1 switches the negative prompt off, 7.5 on again
    await page.selectOption('#model', 'sd21');
    await page.fill('#guidance', '1');
    assert(await page.isVisible('#negative-hint'), 'guidance 1: the negative prompt is ignored');
    await page.fill('#guidance', '7.5');
    assert(await page.isHidden('#negative-hint'), 'guidance 7.5: the negative prompt is used');
    // the model list says what each needs: memory, and disk here or the download
    const needs = await page.$$eval('#model-list li', (l) => Object.fromEntries(l.map((x) => [x.dataset.model, x.querySelector('.needs').textContent])));
    assert(/RAM: about [\d.]+ [MG]B \(f32\)/.test(needs.sd21) && /disk: [\d.]+ [MG]B here/.test(needs.sd21), 'sd21 needs: ' + needs.sd21);
    assert(/disk: about [\d.]+ GB to download/.test(needs.sd14) && /RAM: about [\d.]+ GB/.test(needs.sd14), 'sd14 needs: ' + needs.sd14);
    if (vp.width < 600) await noOverflow(page, 'the per-model form at 390 px');
    if (process.env.M2P_SHOTS) await page.screenshot({ path: path.join(process.env.M2P_SHOTS, tag + '-11-model-defaults.png'), fullPage: true });

    // a run with sd21 (small and short for the test): the negative prompt is sent and kept in the PNG
    const run = async (model, k) => {
      await page.selectOption('#model', model);
      await page.selectOption('#size', '64x64');
      await page.fill('#steps', '2');
      await page.fill('#prompt', 'a lighthouse at dusk');
      await page.fill('#negative', 'blurry, low quality');
      await page.click('#generate');
      await waitFor(page, (j) => document.querySelectorAll('#results figure img').length === 1 &&
        new RegExp('^Run ' + j + ':').test(document.getElementById('results-info').textContent), model + '\'s poster', 120000, k);
      return pngChunks(page, await page.getAttribute('#results figure a[download]', 'href'));
    };
    let png = await run('sd21', 1);
    assert(sent[0].negative_prompt === 'blurry, low quality' && sent[0].guidance === 7.5, 'sd21 request: ' + JSON.stringify(sent[0]));
    assert(/\nNegative prompt: blurry, low quality\n/.test(png.parameters || '') && /CFG scale: 7\.5, /.test(png.parameters || ''), 'sd21 PNG: ' + png.parameters);
    // turbo at its guidance 0: not sent, and the PNG claims none
    png = await run('turbo', 2);
    assert(!('negative_prompt' in sent[1]) && sent[1].guidance === 0, 'turbo request: ' + JSON.stringify(sent[1]));
    assert(/Sampler: Euler a, /.test(png.parameters || '') && !/Negative prompt|CFG scale: [1-9]/.test(png.parameters || ''), 'turbo PNG: ' + png.parameters);

    // the batch page follows the chosen model too
    await page.goto(url + '/batch.html');
    await page.waitForSelector('#model option[value="sd21"]', { state: 'attached' });
    await page.selectOption('#model', 'sd21');
    assert((await page.inputValue('#steps')) === '20' && (await page.inputValue('#size')) === '768x768', 'the batch page takes sd21\'s steps and size');
    assert(problems.length === 0, 'no page errors: ' + problems.join('; '));
  } finally {
    await page.close();
    srv.kill('SIGTERM');
    await new Promise((r) => { if (srv.exitCode !== null) r(); else srv.on('exit', r); });
    fs.rmSync(data, { recursive: true, force: true });
  }
}

// The model manager from a clean start: a server with no model and an empty Hugging Face cache
// (HF_HOME), a fake hub (HF_ENDPOINT, fake_hub.js) serving the tiny model as lcm. Download on
// the page -> progress -> installed; TAESD came along and paints the live previews at full size
// (the latent colour sketch is 1/8 of it) without anyone naming its folder.
async function modelManager(browser) {
  const hubPort = await freePort(); // nobody listens there until the hub starts below
  let hub = null;
  const port = await freePort();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'm2p-manager-'));
  fs.mkdirSync(path.join(root, 'hf'));
  const env = { ...process.env, HF_HOME: path.join(root, 'hf'), HF_ENDPOINT: 'http://127.0.0.1:' + hubPort };
  delete env.HF_HUB_CACHE;
  delete env.MUS2PIC_MODEL;
  const srv = spawn(process.env.M2P_BIN, ['serve', '--port', String(port), '--data', path.join(root, 'data'), '--offline'],
    { stdio: 'ignore', env, cwd: root });
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  try {
    await waitPort(port);
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto('http://127.0.0.1:' + port + '/index.html');
    await page.waitForSelector('#no-model', { state: 'visible' });
    assert(await page.isDisabled('#generate'), 'Generate waits for a model');
    assert(/disk: about [\d.]+ GB to download/.test(await page.textContent('#model-list li[data-model="lcm"] .needs')), 'the download size before it starts');
    // the hub cannot be reached yet (as offline): the error says what to do instead
    await page.click('#model-list li[data-model="lcm"] button');
    await page.waitForSelector('#fetch-error', { state: 'visible', timeout: 120000 });
    const ferr = await page.textContent('#fetch-error');
    assert(/^The download of lcm failed: /.test(ferr) && /HF_ENDPOINT/.test(ferr) && /--model lcm=DIR/.test(ferr), 'the offline download error: ' + ferr);
    if (process.env.M2P_SHOTS) await page.screenshot({ path: path.join(process.env.M2P_SHOTS, 'desktop-12a-download-offline.png') });
    // the hub is back
    hub = await require('./fake_hub.js').start(process.env.M2P_FIXTURES, hubPort);
    await page.evaluate(() => {
      window.__fetchText = [];
      new MutationObserver(() => window.__fetchText.push(document.getElementById('fetch-text').textContent))
        .observe(document.getElementById('fetch-text'), { subtree: true, childList: true, characterData: true });
    });
    await page.click('#model-list li[data-model="lcm"] button');
    assert(await page.isHidden('#fetch-error'), 'the old error goes with a new try');
    await waitFor(page, () => window.__fetchText.some((t) => /^Downloading lcm: \S+safetensors \d+% of [\d.]+ MB/.test(t)), 'the download\'s progress (file, percent, size)');
    if (process.env.M2P_SHOTS) await page.screenshot({ path: path.join(process.env.M2P_SHOTS, 'desktop-12b-downloading.png') });
    await waitFor(page, () => /lcm is installed \(\d+ files/.test(document.getElementById('fetch-text').textContent), 'the download to finish');
    await page.waitForSelector('#model option[value="lcm"]', { state: 'attached' });
    assert(await page.isHidden('#no-model') && !(await page.isDisabled('#generate')), 'the banner goes and Generate is enabled once installed');
    const needs = await page.textContent('#model-list li[data-model="lcm"] .needs');
    assert(/disk: [\d.]+ MB here/.test(needs) && /live previews: TAESD/.test(needs), 'lcm installed, with TAESD: ' + needs);
    assert(hub.requests.some((r) => r.startsWith('/madebyollin/taesd/resolve/')), 'TAESD was fetched with the model');
    if (process.env.M2P_SHOTS) await page.screenshot({ path: path.join(process.env.M2P_SHOTS, 'desktop-12-model-downloaded.png'), fullPage: true });
    // a run: every preview is a full-size TAESD image
    await page.evaluate(() => {
      window.__previews = new Set();
      new MutationObserver(() => {
        for (const i of document.querySelectorAll('#variations-progress img')) if (i.src.startsWith('data:image/png')) window.__previews.add(i.src);
      }).observe(document.getElementById('variations-progress'), { subtree: true, childList: true, attributes: true });
    });
    await page.fill('#prompt', 'a lighthouse at dusk');
    await page.selectOption('#size', '64x64');
    await page.fill('#steps', '4');
    await page.click('#generate');
    await waitFor(page, () => document.querySelectorAll('#results figure img').length === 1, 'the poster', 120000);
    const sizes = await page.evaluate(() => Promise.all([...window.__previews].map((u) => new Promise((res) => {
      const i = new Image(); i.onload = () => res(i.naturalWidth + 'x' + i.naturalHeight); i.onerror = () => res('bad'); i.src = u;
    }))));
    assert(sizes.length > 0 && sizes.every((x) => x === '64x64'), 'TAESD previews at the image size: ' + sizes);
    assert(problems.length === 0, 'no page errors: ' + problems.join('; '));
  } finally {
    await page.close();
    srv.kill('SIGTERM');
    await new Promise((r) => { if (srv.exitCode !== null) r(); else srv.on('exit', r); });
    if (hub) await hub.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

// The page while its server restarts in the middle of a run: a "connection lost — reconnecting"
// notice that goes away by itself when the server is back (the page subscribes again and catches
// up), and the run is requeued and finishes (attempt 2), never shown as canceled.
async function restart(browser) {
  const port = await new Promise((res) => { const sv = net.createServer(); sv.listen(0, '127.0.0.1', () => { const p = sv.address().port; sv.close(() => res(p)); }); });
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'm2p-restart-'));
  const start = () => spawn(process.env.M2P_BIN, ['serve', '--port', String(port), '--data', data, '--offline',
    '--model', 'lcm=' + process.env.M2P_FIXTURES + '/sd-tiny/model'], { stdio: 'ignore' });
  const up = async () => {
    for (let i = 0; i < 100; i++) {
      const ok = await new Promise((res) => { const c = net.connect(port, '127.0.0.1', () => { c.end(); res(true); }); c.on('error', () => res(false)); });
      if (ok) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('FAILED: the restarted server did not come up');
  };
  let srv = start();
  const page = await browser.newPage();
  try {
    await up();
    await page.goto('http://127.0.0.1:' + port + '/index.html');
    await page.waitForSelector('#model option[value="lcm"]', { state: 'attached' });
    assert(await page.isHidden('#conn-lost'), 'no connection notice while connected');
    // a run in the middle of its steps when the server stops
    await page.evaluate(() => {
      window.__stages = [];
      new MutationObserver(() => window.__stages.push(document.getElementById('gen-stage').textContent))
        .observe(document.getElementById('gen-stage'), { subtree: true, childList: true, characterData: true });
    });
    await page.fill('#prompt', 'a run across a restart');
    await page.selectOption('#size', '256x256');
    await page.fill('#steps', '30');
    await page.selectOption('#variations', '2');
    await page.click('#generate');
    await waitFor(page, () => /^Step ([2-9]|1\d) of 30$/.test(document.getElementById('gen-stage').textContent), 'the run mid-way', 120000);
    const job = Number((await page.textContent('#gen-job')).replace(/\D+/g, ''));
    const gone = new Promise((r) => srv.on('exit', r));
    srv.kill('SIGTERM');
    await gone;
    await page.waitForSelector('#conn-lost', { state: 'visible' });
    if (process.env.M2P_SHOTS) await page.screenshot({ path: path.join(process.env.M2P_SHOTS, 'desktop-10-reconnecting.png') });
    srv = start();
    await up();
    await page.waitForSelector('#conn-lost', { state: 'hidden' });
    // the run is taken up again and finishes: posters, never "Canceled"
    await waitFor(page, () => document.querySelectorAll('#results figure img').length === 2, 'the run finished after the restart', 300000);
    const stages = await page.evaluate(() => window.__stages);
    assert(!stages.some((t) => /cancel|failed/i.test(t)), 'the run was never shown canceled or failed: ' + stages.filter((t, i) => t !== stages[i - 1]).join(' | '));
    const j = await page.evaluate(async (id) => (await fetch('/api/jobs/' + id)).json(), job);
    assert(j.state === 'done' && j.attempts === 2, 'the job requeued and done on its second attempt: ' + JSON.stringify({ state: j.state, attempts: j.attempts, error: j.error }));
    if (process.env.M2P_SHOTS) await page.screenshot({ path: path.join(process.env.M2P_SHOTS, 'desktop-10b-after-restart.png'), fullPage: true });
  } finally {
    await page.close();
    srv.kill('SIGTERM');
    await new Promise((r) => { if (srv.exitCode !== null) r(); else srv.on('exit', r); });
    fs.rmSync(data, { recursive: true, force: true });
  }
}

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'm2p-chromium-'));
  // A fresh profile folder each run (playwright passes it to chromium as --user-data-dir).
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  let failed = false;
  try {
    for (const vp of [{ width: 1280, height: 900 }, { width: 390, height: 844 }]) {
      // each viewport starts as a new visitor: nothing saved from the other one (cleared from a
      // page of the same origin that runs no script of ours)
      const p = browser.pages()[0] || await browser.newPage();
      await p.goto(base + '/style.css');
      await p.evaluate(() => localStorage.clear());
      await badModel(browser, vp);
      await perModel(browser, vp);
      console.log('e2e: per-model defaults passed at ' + vp.width + '×' + vp.height);
      await flow(browser, vp);
      console.log('e2e: the whole flow passed at ' + vp.width + '×' + vp.height);
    }
    await modelManager(browser);
    console.log('e2e: a model downloaded from the page, with TAESD previews');
    await restart(browser);
    console.log('e2e: the connection notice comes and goes with a server restart');
  } catch (e) {
    failed = true;
    console.error(e.message);
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
})();
