// Plays live streams in headless Chromium with hls.js and dash.js (run by
// bins/tests/browser_players.rs). Usage:
//   node play.js NODE_MODULES SECONDS player=url [player=url ...]     (player: hls | dash)
// Serves a tiny page plus the players' dist files on a local port, opens one page per stream,
// waits for playback, then watches video.currentTime for SECONDS. Prints one JSON line per
// stream: {player, url, started, advanced, errors: [...], fatal: [...]} and exits 0 (the Rust
// test judges the numbers).
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
window.report = { errors: [], fatal: [], started: false };
const v = document.getElementById('v');
v.addEventListener('playing', () => { report.started = true; });
v.addEventListener('error', () => { report.fatal.push('video element: ' + (v.error && v.error.message)); });
function start(player, url) {
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
      '--autoplay-policy=no-user-gesture-required'],
  });
  const run = async (job) => {
    const [player, url] = [job.slice(0, job.indexOf('=')), job.slice(job.indexOf('=') + 1)];
    const p = await ctx.newPage();
    const console_errors = [];
    p.on('pageerror', (e) => console_errors.push(String(e)));
    if (process.env.PLAY_DEBUG) {
      // Every request the player makes with its status, and the page's console, on stderr.
      p.on('console', (m) => console.error(`[${player}] console ${m.type()}: ${m.text()}`));
      p.on('response', (r) => console.error(`[${player}] ${Date.now() % 100000} ${r.status()} ${r.url()}`));
    }
    await p.goto(base);
    if (process.env.PLAY_DEBUG) await p.evaluate(() => { window.PLAY_DEBUG = true; });
    await p.evaluate(([pl, u]) => start(pl, u), [player, url]);
    const until = Date.now() + 20000;
    while (Date.now() < until && !(await p.evaluate(() => report.started && document.getElementById('v').currentTime > 0))) {
      await p.waitForTimeout(200);
    }
    const t0 = await p.evaluate(() => document.getElementById('v').currentTime);
    await p.waitForTimeout(Number(secs) * 1000);
    const r = await p.evaluate(() => ({ ...report, t: document.getElementById('v').currentTime,
      w: document.getElementById('v').videoWidth, h: document.getElementById('v').videoHeight }));
    await p.close();
    return { player, url, started: r.started, t0, advanced: r.t - t0, width: r.w, height: r.h,
      errors: r.errors, fatal: r.fatal.concat(console_errors) };
  };
  const results = await Promise.all(jobs.map(run));
  for (const r of results) console.log(JSON.stringify(r));
  if (process.env.PLAY_DEBUG) await new Promise((r) => setTimeout(r, 100));
  await ctx.close();
  fs.rmSync(dir, { recursive: true, force: true });
  server.close();
})().catch((e) => { console.error(e); process.exit(1); });
