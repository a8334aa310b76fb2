// flow.js — the whole flow in a real browser (Debian's chromium, headless, driven by
// playwright-core): upload a local audio file, watch the analysis, check the tiles and the plot,
// correct the artist, generate two posters with the tiny model while recording the live progress
// and previews, check the images, the seed and its reuse; then the gallery (server text stays
// text) and a one-URL batch through the fake yt-dlp. Exits nonzero on the first failure.
'use strict';

const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

const base = process.env.M2P_URL;
const audio = process.env.M2P_AUDIO;
const assert = (cond, what) => { if (!cond) throw new Error('FAILED: ' + what); };
// M2P_SHOTS=DIR keeps a full-page screenshot of each step there, to look at.
const shot = async (page, name) => {
  if (process.env.M2P_SHOTS) await page.screenshot({ path: path.join(process.env.M2P_SHOTS, name + '.png'), fullPage: true });
};

// page.waitForFunction evaluates a string in the page, which the page's Content-Security-Policy
// (script-src 'self') forbids; page.evaluate is not subject to it, so poll with that instead.
async function waitFor(page, fn, what, timeoutMs = 60000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await page.evaluate(fn)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('FAILED: timed out waiting for ' + what);
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
  const problems = [];
  let failed = false;
  try {
    const page = browser.pages()[0] || await browser.newPage();
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
    page.on('dialog', (d) => { problems.push('dialog: ' + d.message()); d.dismiss(); });
    page.setDefaultTimeout(60000);

    // 1. the page loads with the tiny model installed
    await page.goto(base + '/index.html');
    await page.waitForSelector('#model option[value="lcm"]', { state: 'attached' });
    assert(await page.isHidden('#no-model'), 'the no-model banner is hidden when a model is installed');
    assert(!/6-12|seconds/.test(await page.textContent('#model-desc')), 'no time is claimed before one was measured');
    await shot(page, '1-start');

    // 2. upload and analyse
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
    await shot(page, '2-analysed');

    // 3. correct the artist and rebuild the prompt (features posted back, no download)
    await page.fill('#band', 'Admiral Bob');
    await page.selectOption('#prompt-version', 'v1');
    await page.click('#rebuild');
    await waitFor(page, () => document.getElementById('prompt').value.includes('Admiral Bob'), 'the rebuilt prompt');

    // 4. generate two posters and record what the progress area shows
    await page.evaluate(() => {
      window.__seen = { labels: new Set(), previews: 0 };
      new MutationObserver(() => {
        for (const v of document.querySelectorAll('#variations-progress .var')) {
          window.__seen.labels.add(v.querySelector('.muted').textContent);
          if ((v.querySelector('img').getAttribute('src') || '').startsWith('data:image/png')) window.__seen.previews++;
        }
      }).observe(document.getElementById('variations-progress'), { subtree: true, childList: true, attributes: true, characterData: true });
    });
    await page.fill('#prompt', '<b>bold</b> neon poster <img src=x onerror=alert(1)>');
    await page.selectOption('#size', '64');
    await page.fill('#steps', '4');
    await page.selectOption('#variations', '2');
    await page.fill('#seed', '123');
    await page.click('#generate');
    // For the screenshot only (what progress showed is checked through window.__seen below): a
    // mid-run step, or the posters when the tiny model finished before the page could show one.
    await waitFor(page, () => /step [23]\/4/.test(document.getElementById('variations-progress').textContent) ||
      document.querySelectorAll('#results figure img').length === 2, 'a step or the posters');
    await shot(page, '3-painting');
    await waitFor(page, () => document.querySelectorAll('#results figure img').length === 2, 'two posters');
    await waitFor(page, () => [...document.querySelectorAll('#results figure img')].every((i) => i.complete && i.naturalWidth === 64), 'the posters to load');
    const seen = await page.evaluate(() => ({ labels: [...window.__seen.labels], previews: window.__seen.previews }));
    assert(seen.labels.some((l) => /variation 1\/2 – step \d\/4/.test(l)), 'live progress of variation 1: ' + seen.labels.join(' | '));
    assert(seen.labels.some((l) => /variation 2\/2 – step \d\/4/.test(l)), 'live progress of variation 2');
    assert(seen.previews > 0, 'preview images were shown during the steps');
    const info = await page.textContent('#results-info');
    assert(/seed 123/.test(info) && /2 poster/.test(info), 'results say the seed and the count: ' + info);
    await waitFor(page, () => /last run here: 2 images at 64×64, 4 steps in/.test(document.getElementById('model-desc').textContent), 'the measured time in the model description');
    await shot(page, '4-posters');
    const dl = await page.$$eval('#results a[download]', (a) => a.map((x) => x.getAttribute('download')));
    assert(dl.length === 2 && dl.every((d) => d.endsWith('.png')), 'download links: ' + dl);
    await page.click('#results figure:nth-child(2) button');
    assert((await page.inputValue('#seed')) === '124', 'reusing the second poster\'s seed (123 + 1)');

    // a reload follows the same job again and shows its posters (the server's current state);
    // the prompt went into the history
    await page.reload();
    await waitFor(page, () => document.querySelectorAll('#results figure img').length === 2, 'the posters after a reload');
    assert(/seed 123/.test(await page.textContent('#results-info')), 'the seed after a reload');
    const hist = await page.$$eval('#history option', (o) => o.map((x) => x.textContent));
    assert(hist.some((h) => h.startsWith('<b>bold</b> neon poster')), 'the prompt history: ' + hist);

    // 5. the gallery shows it, with server text as text
    await page.goto(base + '/gallery.html');
    await page.waitForSelector('.gallery .item');
    const prompts = await page.$$eval('.gallery .item .prompt', (p) => p.map((x) => x.textContent));
    assert(prompts.includes('<b>bold</b> neon poster <img src=x onerror=alert(1)>'), 'the prompt is shown as text');
    assert((await page.$$('.gallery .item .prompt b, .gallery .item .prompt img')).length === 0, 'no HTML from the server was rendered');
    assert(/\d+ poster/.test(await page.textContent('#summary')), 'the gallery counts posters');
    await shot(page, '5-gallery');

    // 6. a batch of one URL through the fake yt-dlp
    await page.goto(base + '/batch.html');
    await page.waitForSelector('#model option[value="lcm"]', { state: 'attached' });
    await page.fill('#urls', 'https://www.youtube.com/watch?v=fakeid12345');
    await page.selectOption('#duration', '30');
    await page.selectOption('#size', '64');
    await page.fill('#steps', '2');
    await page.click('#start');
    await page.waitForSelector('#items tr .posters img');
    await waitFor(page, () => /finished/.test(document.getElementById('batch-summary').textContent), 'the batch to finish');
    assert(/Admiral Bob/.test(await page.textContent('#items tr')), 'the batch row names the artist');
    await waitFor(page, () => /1 song, 1 done, finished/.test(document.getElementById('batches').textContent), 'the list of batches to show it finished', 10000);
    await shot(page, '6-batch');

    assert(problems.length === 0, 'no page errors: ' + problems.join('; '));
    console.log('e2e: the whole flow passed');
  } catch (e) {
    failed = true;
    console.error(e.message);
    if (problems.length) console.error(problems.join('\n'));
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
})();
