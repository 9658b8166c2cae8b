// Plays live streams in headless Chromium with hls.js and dash.js (run by
// bins/tests/browser_players.rs). Usage:
//   node play.js NODE_MODULES SECONDS player=url [player=url ...]
// player: hls | dash (this script's page plays url with that library); page (opens url, a page
// such as MistOutHTTP's /STREAM.html, as it is); embed (a local page holding only
// <script src="url"></script>, e.g. MistOutHTTP's /embed_STREAM.js); offline (opens url and
// reports its text once it has some, for pages of streams that are not there or end).
// Serves a tiny page plus the players' dist files on a local port, opens one page per stream,
// waits for playback, then watches the first <video>'s currentTime for SECONDS. Prints one JSON
// line per stream: {player, url, started, advanced, waiting, joined, source, text, errors: [...],
// fatal: [...]} and exits 0 (the Rust test judges the numbers). `waiting`: the video's `waiting`
// events after it first played (stalls); `joined`: Unix ms at which the player was started; `t`
// and `wall`: the video's final currentTime and the Unix ms it was read at.
// With PLAY_GO=FILE in the environment, the hls/dash players wait: once every page is loaded,
// FILE.ready is created; the players start at the Unix ms written into FILE (polled; one line per
// job, the last line for the jobs after it), so a test can start a live stream after the browser
// is up and join it at chosen ages.
'use strict';
const http = require('http');
const fs = require('fs');
const os = require('os');
const path = require('path');

const [modules, secs, ...jobs] = process.argv.slice(2);
const { chromium } = require(path.join(modules, 'playwright-core'));
const files = {
  '/hls.js': path.join(modules, 'hls.js/dist/hls.min.js'),
  '/dash.js': path.join(modules, 'dashjs/dist/dash.all.min.js'),
};
const page = `<!doctype html><html><body>
<video id="v" muted playsinline width="320"></video>
<script src="/hls.js"></script><script src="/dash.js"></script>
<script>
window.report = { errors: [], fatal: [], started: false, waiting: 0, joined: 0 };
const v = document.getElementById('v');
v.addEventListener('playing', () => { report.started = true; });
v.addEventListener('waiting', () => { if (report.started) report.waiting += 1; });
v.addEventListener('error', () => { report.fatal.push('video element: ' + (v.error && v.error.message)); });
function start(player, url) {
  report.joined = Date.now();
  if (player === 'hls') {
    const h = new Hls({ liveSyncDurationCount: 3 });
    h.on(Hls.Events.ERROR, (e, d) => {
      const m = d.type + '/' + d.details + (d.response ? ' ' + d.response.code : '');
      (d.fatal ? report.fatal : report.errors).push(m);
    });
    h.on(Hls.Events.MANIFEST_PARSED, () => v.play().catch(() => {}));
    h.loadSource(url); h.attachMedia(v);
  } else {
    const p = dashjs.MediaPlayer().create();
    p.on(dashjs.MediaPlayer.events.ERROR, (e) => {
      report.fatal.push('dash.js: ' + JSON.stringify(e.error || e).slice(0, 300));
    });
    p.on(dashjs.MediaPlayer.events.PLAYBACK_ERROR, (e) => {
      report.fatal.push('dash.js playback: ' + JSON.stringify(e.error || e).slice(0, 300));
    });
    if (window.PLAY_DEBUG) p.updateSettings({ debug: { logLevel: dashjs.Debug.LOG_LEVEL_INFO } });
    // dash.js starts playback itself; a play() before it attached would leave its manifest
    // updater believing playback is paused (no MPD refreshes).
    p.initialize(v, url, true);
  }
}
</script></body></html>`;

const server = http.createServer((req, res) => {
  const u = req.url.split('?')[0];
  if (files[u]) {
    res.writeHead(200, { 'Content-Type': 'application/javascript' });
    fs.createReadStream(files[u]).pipe(res);
  } else if (u === '/embed') {
    const src = new URL(req.url, 'http://x').searchParams.get('src');
    const esc = (t) => t.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(`<!doctype html><html><body><h1>embedded</h1><script src="${esc(src)}"></script><p>after</p></body></html>`);
  } else if (u === '/') {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(page);
  } else {
    res.writeHead(404); res.end();
  }
});

(async () => {
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}/`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      // SPKI: base64 SHA-256 of a test certificate's public key, trusted for https:// media.
      ...(process.env.SPKI ? [`--ignore-certificate-errors-spki-list=${process.env.SPKI}`] : []),
      // HOST_RULES: names (e.g. of an ACME test certificate) resolved without DNS.
      ...(process.env.HOST_RULES ? [`--host-resolver-rules=${process.env.HOST_RULES}`] : [])],
  });
  // Pages not written by this script: report playing/error events of any media element
  // (they do not bubble, but the capture phase at window sees them).
  const watch = () => {
    window.report = { errors: [], fatal: [], started: false };
    window.addEventListener('playing', () => { report.started = true; }, true);
    window.addEventListener('error', (e) => {
      const v = e.target;
      if (v instanceof HTMLMediaElement) {
        report.fatal.push('video element: ' + (v.error && (v.error.code + ' ' + v.error.message)));
      }
    }, true);
  };
  const video = () => {
    const v = document.querySelector('video');
    return { t: v ? v.currentTime : 0, wall: Date.now(), w: v ? v.videoWidth : 0, h: v ? v.videoHeight : 0,
      source: v && v.getAttribute('data-source'), src: v && v.getAttribute('data-url'),
      embedded: !!document.querySelector('h1 + div.mistvideo'),
      text: document.body ? document.body.innerText.trim() : '' };
  };
  const run = async (job, index) => {
    const [player, url] = [job.slice(0, job.indexOf('=')), job.slice(job.indexOf('=') + 1)];
    const p = await ctx.newPage();
    const console_errors = [];
    const warnings = [];
    p.on('pageerror', (e) => console_errors.push(String(e)));
    // The mist-rs player logs each restart (error, end or stall of the video) as a warning.
    p.on('console', (m) => { if (m.text().startsWith('mistPlay(')) warnings.push(m.text()); });
    if (process.env.PLAY_DEBUG) {
      // Every request the player makes with its status, and the page's console, on stderr.
      p.on('console', (m) => console.error(`[${player}] console ${m.type()}: ${m.text()}`));
      p.on('response', (r) => console.error(`[${player}] ${Date.now() % 100000} ${r.status()} ${r.url()}`));
    }
    const own = player === 'hls' || player === 'dash';
    if (!own) await p.addInitScript(watch);
    if (own) await p.goto(base);
    else if (player === 'embed') await p.goto(`${base}embed?src=${encodeURIComponent(url)}`);
    else await p.goto(url);
    if (process.env.PLAY_DEBUG) await p.evaluate(() => { window.PLAY_DEBUG = true; });
    if (own && go) {
      const at = await go(index);
      if (at - Date.now() > 0) await p.waitForTimeout(at - Date.now());
    }
    if (own) await p.evaluate(([pl, u]) => start(pl, u), [player, url]);
    if (player === 'offline') {
      const until = Date.now() + 10000;
      while (Date.now() < until && !(await p.evaluate(video)).text) await p.waitForTimeout(200);
      await p.waitForTimeout(2000);
      const r = { ...(await p.evaluate(() => report)), ...(await p.evaluate(video)) };
      const videos = await p.evaluate(() => document.querySelectorAll('video').length);
      await p.close();
      return { player, url, started: r.started, text: r.text, videos, errors: r.errors,
        fatal: r.fatal.concat(console_errors) };
    }
    const until = Date.now() + 20000;
    while (Date.now() < until && !(await p.evaluate(() => report.started)
      && (await p.evaluate(video)).t > 0)) {
      await p.waitForTimeout(200);
    }
    const t0 = (await p.evaluate(video)).t;
    await p.waitForTimeout(Number(secs) * 1000);
    const r = { ...(await p.evaluate(() => report)), ...(await p.evaluate(video)) };
    await p.close();
    return { player, url, started: r.started, t0, advanced: r.t - t0, waiting: r.waiting,
      joined: r.joined, wall: r.wall, t: r.t, width: r.w, height: r.h,
      source: r.source, src: r.src, embedded: r.embedded, text: r.text,
      errors: own ? r.errors : r.errors.concat(warnings), fatal: r.fatal.concat(console_errors) };
  };
  // PLAY_GO: when every own page is loaded, FILE.ready; then the time in FILE.
  const goFile = process.env.PLAY_GO;
  const ownJobs = jobs.filter((j) => /^(hls|dash)=/.test(j)).length;
  let loaded = 0;
  let goAt = null;
  const go = goFile && (async (index) => {
    loaded += 1;
    if (loaded === ownJobs) fs.writeFileSync(goFile + '.ready', '');
    goAt = goAt || (async () => {
      for (;;) {
        try {
          const t = fs.readFileSync(goFile, 'utf8').trim().split('\n').map(Number);
          if (t.length && t.every((x) => x > 0)) return t;
        } catch (e) { /* not there yet */ }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const t = await goAt;
    return t[Math.min(index, t.length - 1)];
  });
  const results = await Promise.all(jobs.map((j, i) => run(j, i)));
  for (const r of results) console.log(JSON.stringify(r));
  if (process.env.PLAY_DEBUG) await new Promise((r) => setTimeout(r, 100));
  await ctx.close();
  fs.rmSync(dir, { recursive: true, force: true });
  server.close();
})().catch((e) => { console.error(e); process.exit(1); });
