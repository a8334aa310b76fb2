// fake_llm.js — a stand-in for an OpenAI-compatible chat endpoint, for the page's "write the
// prompt with a language model" test: POST /v1/chat/completions answers a fixed prompt (with
// the song named in the request) when the Bearer key is "sk-test", 401 otherwise; GET /last
// returns the last request (headers and body) so the test can check what was sent.
'use strict';
const http = require('http');
const port = Number(process.argv[2] || 0); // 0: the kernel picks, and the line printed says which
let last = null;
http.createServer((req, res) => {
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', () => {
    if (req.method === 'GET' && req.url === '/last') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(last));
      return;
    }
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') { res.writeHead(404); res.end(); return; }
    last = { auth: req.headers.authorization || '', body };
    if (req.headers.authorization !== 'Bearer sk-test') {
      res.writeHead(401, { 'Content-Type': 'application/json' });
      res.end('{"error":{"message":"Incorrect API key provided"}}');
      return;
    }
    let song = '';
    try { song = JSON.stringify(JSON.parse(body).messages).includes('choice') ? 'choice' : ''; } catch (e) { song = ''; }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content: 'a neon skyline poster for ' + song + ', bold type' } }],
      usage: { total_tokens: 42 }, model: 'fake' }));
  });
}).listen(port, '127.0.0.1', function () { console.log('listening ' + this.address().port); });
