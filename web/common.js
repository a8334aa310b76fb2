// common.js — helpers shared by the pages: API calls (with the access token when the server
// needs one), the progress WebSocket with reconnection, and DOM building that only ever puts
// server text into the page through textContent / attributes (never innerHTML).
'use strict';

const M2P = (() => {
  const params = new URLSearchParams(location.search);
  if (params.get('token')) sessionStorage.setItem('m2p-token', params.get('token'));
  const token = sessionStorage.getItem('m2p-token') || '';

  function withToken(url) {
    if (!token) return url;
    return url + (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token);
  }

  async function api(method, path, body) {
    const opt = { method, headers: {} };
    if (token) opt.headers.Authorization = 'Bearer ' + token;
    if (body instanceof FormData) {
      opt.body = body;
    } else if (body !== undefined) {
      opt.headers['Content-Type'] = 'application/json';
      opt.body = JSON.stringify(body);
    }
    let r;
    try { r = await fetch(path, opt); } catch (e) {
      throw new Error('The server cannot be reached: check that mus2pic serve is running, then try again.');
    }
    let data = null;
    try { data = await r.json(); } catch (e) { data = { error: 'the server answered ' + r.status }; }
    if (!r.ok) {
      const err = new Error((data && (data.error || data.detail)) || ('HTTP ' + r.status));
      err.field = data && data.field;
      err.status = r.status;
      throw err;
    }
    return data;
  }

  // el('div', {class: 'x', text: 'hello'}, child, ...): text always goes in as textContent.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children) if (c) e.append(c);
    return e;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  // One WebSocket for the page: subscribe(jobId, handler). Reconnects with back-off and
  // subscribes again; the server then sends each job's current state. onStatus(connected), when
  // given, hears when the connection is lost and when it is back.
  function progress(onStatus) {
    const handlers = new Map();
    let ws = null, open = false, delay = 500;
    function connect() {
      const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
      ws = new WebSocket(withToken(proto + '//' + location.host + '/ws/progress'));
      ws.onopen = () => {
        open = true; delay = 500;
        if (onStatus) onStatus(true);
        const ids = [...handlers.keys()];
        for (let i = 0; i < ids.length; i += 64)
          ws.send(JSON.stringify({ type: 'subscribe', jobs: ids.slice(i, i + 64) }));
      };
      ws.onmessage = (ev) => {
        let m;
        try { m = JSON.parse(ev.data); } catch (e) { return; }
        const h = m && handlers.get(m.job);
        if (h) h(m);
      };
      ws.onclose = () => {
        open = false;
        if (onStatus) onStatus(false);
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 8000);
      };
    }
    connect();
    return {
      subscribe(job, handler) {
        handlers.set(job, handler);
        if (open) ws.send(JSON.stringify({ type: 'subscribe', jobs: [job] }));
      },
      unsubscribe(job) {
        handlers.delete(job);
        if (open) ws.send(JSON.stringify({ type: 'unsubscribe', jobs: [job] }));
      },
    };
  }

  function fmtSeconds(s) {
    if (s === undefined || s === null || isNaN(s)) return '';
    return s < 1 ? s.toFixed(2) + ' s' : s < 10 ? s.toFixed(1) + ' s' : Math.round(s) + ' s';
  }

  // A download name that says what the file is: artist-song-seed.png (ASCII letters and digits,
  // other characters folded into '-'), mus2pic-seed.png without a song.
  function slug(s) {
    return String(s || '').normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
      .replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60);
  }
  function posterName(source, im) {
    const parts = [slug(source.band), slug(source.song)].filter(Boolean);
    return (parts.length ? parts.join('-') : 'mus2pic') + '-' + im.seed + '.png';
  }

  return { api, el, clear, progress, withToken, fmtSeconds, params, posterName };
})();
