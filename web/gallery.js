// gallery.js — past results, newest first, a page at a time: each poster with its prompt,
// parameters, seed, a few features and the song it came from; "use again" opens the main page
// with the prompt and seed filled in; "delete" removes the image from the database.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const { api, el, clear, fmtSeconds } = M2P;
  const perPage = 24;
  let page = Math.max(1, Number(M2P.params.get('page')) || 1);

  function fmt(v) { return typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v); }

  function item(it) {
    const meta = it.meta || {};
    const src = meta.source || {};
    const f = meta.features || {};
    const url = M2P.withToken(it.url);
    const dl = el('dl');
    const add = (k, v) => { if (v !== undefined && v !== null && v !== '') dl.append(el('dt', { text: k }), el('dd', { text: fmt(v) })); };
    add('song', [src.band, src.song].filter(Boolean).join(' – '));
    add('genre', src.genre);
    add('model', meta.model);
    add('steps', meta.steps);
    add('size', it.width + '×' + it.height);
    add('seed', it.seed);
    add('guidance', meta.guidance);
    add('tempo', typeof f.tempo === 'number' ? Math.round(f.tempo) + ' BPM' : undefined);
    add('energy', f.energy);
    add('time', fmtSeconds(it.seconds));
    add('made', new Date(it.created_ms).toLocaleString());
    const again = new URLSearchParams({ prompt: meta.prompt || '', negative_prompt: meta.negative_prompt || '', seed: String(it.seed) });
    const fig = el('figure', { class: 'item', 'data-id': it.id },
      el('a', { href: url, target: '_blank', rel: 'noopener' }, el('img', { src: url, alt: 'poster ' + it.id, loading: 'lazy' })),
      el('p', { class: 'prompt', text: meta.prompt || '' }),
      dl,
      el('figcaption', {},
        el('a', { class: 'button', href: url, download: 'mus2pic-' + it.id + '.png', text: 'Download' }),
        el('a', { class: 'button', href: 'index.html?' + again.toString(), text: 'Use again' }),
        el('button', { type: 'button', text: 'Delete', onclick: async () => {
          try { await api('DELETE', '/api/images/' + it.id); fig.remove(); } catch (e) { showError(e); }
        } })));
    return fig;
  }

  function showError(e) { $('error').hidden = !e; $('error').textContent = e ? e.message : ''; }

  async function load() {
    try {
      const g = await api('GET', '/api/gallery?page=' + page + '&per_page=' + perPage);
      const box = $('gallery');
      clear(box);
      for (const it of g.items) box.append(item(it));
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
