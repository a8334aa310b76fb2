// fake_hub.js — a stand-in for the Hugging Face hub (HF_ENDPOINT) for the page's model manager
// test, answering the two requests `models fetch` makes (src/model/fetch.c):
// GET /api/models/ORG/NAME/revision/main?blobs=true (commit sha and the file list with sizes,
// blob ids and, for weights, the LFS sha256) and GET /ORG/NAME/resolve/COMMIT/PATH (the file).
// It serves the sd-tiny fixture as SimianLuo/LCM_Dreamshaper_v7 and the taesd fixture as
// madebyollin/taesd (which fetching lcm brings along). start(fixtures, port = any free one) ->
// {port, requests, close}.
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const COMMIT = '0123456789abcdef0123456789abcdef01234567';

function walk(dir, rel = '') {
  const out = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? rel + '/' + e.name : e.name;
    if (e.isDirectory()) out.push(...walk(dir, r));
    else out.push(r);
  }
  return out;
}

function repoFiles(dir) {
  return walk(dir).map((rfilename) => {
    const data = fs.readFileSync(path.join(dir, rfilename));
    const sha256 = crypto.createHash('sha256').update(data).digest('hex');
    // git's blob id: sha1 of "blob <size>\0" + content
    const blobId = crypto.createHash('sha1').update('blob ' + data.length + '\0').update(data).digest('hex');
    const f = { rfilename, size: data.length, blobId };
    if (rfilename.endsWith('.safetensors')) f.lfs = { sha256, size: data.length };
    return { meta: f, data };
  });
}

function start(fixtures, port = 0) {
  const repos = {
    'SimianLuo/LCM_Dreamshaper_v7': repoFiles(path.join(fixtures, 'sd-tiny/model')),
    'madebyollin/taesd': repoFiles(path.join(fixtures, 'taesd/model')),
  };
  const requests = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    requests.push(url.pathname);
    let m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/main$/.exec(url.pathname);
    if (m && repos[m[1]]) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ id: m[1], sha: COMMIT, siblings: repos[m[1]].map((f) => f.meta) }));
      return;
    }
    m = /^\/([^/]+\/[^/]+)\/resolve\/([0-9a-f]+)\/(.+)$/.exec(url.pathname);
    const file = m && m[2] === COMMIT && repos[m[1]] && repos[m[1]].find((f) => f.meta.rfilename === m[3]);
    if (file) {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': file.data.length });
      // weights trickle in (256 KiB every 40 ms), so a page polling every 500 ms sees the bar move
      let at = 0;
      const more = () => {
        if (res.destroyed) return;
        const end = Math.min(file.data.length, at + (file.meta.lfs ? 262144 : file.data.length));
        res.write(file.data.subarray(at, end));
        at = end;
        if (at < file.data.length) setTimeout(more, 40); else res.end();
      };
      more();
      return;
    }
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end('{"error":"Repository not found"}');
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve({
    port: server.address().port,
    requests,
    close: () => new Promise((r) => server.close(r)),
  })));
}

module.exports = { start };
