// gallery.js — past results, newest first, a page at a time, the variations of one run grouped
// in one card: small cacheable thumbnails (/api/images/{id}/thumb.png) linking to the full PNG,
// the prompt, parameters, a few features and the song; "use again" opens the main page with
// every parameter of the run (prompt, negative prompt, seed, steps, size, guidance, model);
// "delete" asks once more before it removes an image.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const { api, el, clear, fmtSeconds } = M2P;
  const perPage = 24;
  let page = Math.max(1, Number(M2P.params.get('page')) || 1);

  function fmt(v) { return typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v); }

  // A Delete button that needs a second click within a few seconds: nothing is lost by one
  // stray click.
  function deleteButton(what, onDelete) {
    let armed = 0;
    const b = el('button', { type: 'button', text: 'Delete' + what, 'aria-label': 'Delete' + what });
    b.addEventListener('click', async () => {
      if (!armed) {
        b.textContent = 'Really delete?';
        b.classList.add('confirm');
        armed = setTimeout(() => { armed = 0; b.textContent = 'Delete' + what; b.classList.remove('confirm'); }, 10000);
        return;
      }
      clearTimeout(armed);
      armed = 0;
      b.disabled = true;
      try { await onDelete(); } catch (e) { b.disabled = false; b.textContent = 'Delete' + what; b.classList.remove('confirm'); showError(e); }
    });
    return b;
  }

  // One card per run: items holds its variations (newest first from the server).
  function group(items) {
    items.sort((a, b) => a.variation - b.variation);
    const first = items[0];
    const meta = first.meta || {};
    const src = meta.source || {};
    const f = meta.features || {};
    const dl = el('dl');
    const add = (k, v) => { if (v !== undefined && v !== null && v !== '') dl.append(el('dt', { text: k }), el('dd', { text: fmt(v) })); };
    add('song', [src.band, src.song].filter(Boolean).join(' – '));
    add('genre', src.genre);
    add('model', meta.model);
    add('steps', meta.steps);
    add('size', first.width + '×' + first.height);
    add('seed', items.length > 1 ? first.seed + '–' + items[items.length - 1].seed : first.seed);
    add('guidance', meta.guidance);
    add('tempo', typeof f.tempo === 'number' ? Math.round(f.tempo) + ' BPM' : undefined);
    add('energy', f.energy);
    add('time', fmtSeconds(items.reduce((t, it) => t + (it.seconds || 0), 0)));
    add('made', new Date(first.created_ms).toLocaleString());
    const fig = el('figure', { class: items.length > 1 ? 'item group' : 'item', 'data-job': first.job_id });
    const thumbs = el('div', { class: items.length > 1 ? 'thumbs' : '' });
    for (const it of items) {
      const url = M2P.withToken(it.url);
      const thumb = M2P.withToken('/api/images/' + it.id + '/thumb.png');
      const one = el('div', { class: 'thumb', 'data-id': it.id },
        el('a', { href: url, target: '_blank', rel: 'noopener', title: 'seed ' + it.seed + ' — open the full image' },
          el('img', { src: thumb, alt: 'poster ' + it.id, loading: 'lazy', width: it.width, height: it.height })));
      if (items.length > 1)
        one.append(el('div', { class: 'thumb-actions' },
          el('a', { class: 'button small', href: url, download: M2P.posterName(src, it), text: '↓', title: 'Download seed ' + it.seed }),
          deleteButton('', async () => { await api('DELETE', '/api/images/' + it.id); one.remove(); if (!thumbs.children.length) fig.remove(); })));
      thumbs.append(one);
    }
    const again = new URLSearchParams({ prompt: meta.prompt || '', negative_prompt: meta.negative_prompt || '', seed: String(first.seed) });
    for (const k of ['steps', 'guidance', 'model']) if (meta[k] !== undefined && meta[k] !== null) again.set(k, String(meta[k]));
    again.set('width', String(first.width));
    again.set('height', String(first.height));
    again.set('variations', String(items.length));
    const actions = el('figcaption', {},
      el('a', { class: 'button', href: 'index.html?' + again.toString(), text: 'Use again' }));
    if (items.length === 1) {
      actions.prepend(el('a', { class: 'button', href: M2P.withToken(first.url), download: M2P.posterName(src, first), text: 'Download' }));
      actions.append(deleteButton('', async () => { await api('DELETE', '/api/images/' + first.id); fig.remove(); }));
    } else {
      actions.append(deleteButton(' all ' + items.length, async () => {
        for (const it of items) await api('DELETE', '/api/images/' + it.id);
        fig.remove();
      }));
    }
    fig.append(thumbs, el('p', { class: 'prompt', text: meta.prompt || '' }), dl, actions);
    return fig;
  }

  function showError(e) { $('error').hidden = !e; $('error').textContent = e ? e.message : ''; }

  async function load() {
    try {
      const g = await api('GET', '/api/gallery?page=' + page + '&per_page=' + perPage);
      const box = $('gallery');
      clear(box);
      // Consecutive items of one job are its variations (the page is newest first).
      let run = [];
      for (const it of g.items) {
        if (run.length && run[0].job_id !== it.job_id) { box.append(group(run)); run = []; }
        run.push(it);
      }
      if (run.length) box.append(group(run));
      const pages = Math.max(1, Math.ceil(g.total / perPage));
      $('summary').textContent = g.total + ' poster(s)';
      $('page').textContent = 'page ' + page + ' of ' + pages;
      $('prev').disabled = page <= 1;
      $('next').disabled = page >= pages;
      showError(null);
    } catch (e) { showError(e); }
  }
  $('prev').addEventListener('click', () => { page--; load(); });
  $('next').addEventListener('click', () => { page++; load(); });
  load();
})();
