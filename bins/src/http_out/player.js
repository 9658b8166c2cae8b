/* mist-rs player (served as /player.js by MistOutHTTP). No dependencies, no bundler.
 *
 *   mistPlay('STREAM', { target: element, host: 'http://host:8080', autoplay: true,
 *                        muted: false, controls: true, poster: '', forceType: '' });
 *
 * Fetches HOST/json_STREAM.js and plays the first source this browser plays natively in a
 * <video> element: native HLS on Apple browsers (Safari, iOS), else progressive (fragmented)
 * MP4, else native HLS, else WebM. No hls.js/dash.js: only what the browser plays by itself.
 * Offline streams show the server's message and are retried every few seconds; a live stream
 * whose video errors, ends or stalls is reloaded. The chosen source type is on the video
 * element as data-source (its URL as data-url).
 */
(function () {
  'use strict';
  if (window.mistPlay) return;
  const me = document.currentScript && document.currentScript.src;
  const DEFAULT_HOST = (me ? new URL('.', me).href : location.origin).replace(/\/+$/, '');
  const RETRY_MS = 5000;
  const STALL_MS = 15000;
  const HLS = 'html5/application/vnd.apple.mpegurl';
  // RFC 6381 strings per MistServer codec name (generic profiles: enough for canPlayType).
  const RFC6381 = {
    H264: 'avc1.42E01E', HEVC: 'hev1.1.6.L93.B0', AV1: 'av01.0.08M.08', VP9: 'vp09.00.10.08',
    VP8: 'vp8', AAC: 'mp4a.40.2', MP3: 'mp4a.6B', opus: 'opus', AC3: 'ac-3', vorbis: 'vorbis',
  };
  // Progressive formats and the codecs MistOutHTTP puts in them.
  const FORMATS = {
    'html5/video/mp4': { mime: 'video/mp4', codecs: ['H264', 'HEVC', 'AV1', 'VP9', 'AAC', 'MP3', 'opus', 'AC3'] },
    'html5/video/webm': { mime: 'video/webm', codecs: ['VP8', 'VP9', 'AV1', 'opus', 'vorbis'] },
  };

  // Stream names as the server writes them in URLs (encodeURIComponent, but '+' kept).
  const enc = (s) => encodeURIComponent(s).replace(/%2B/gi, '+');

  // The MIME type with codecs of what the server would send in this format: the first video
  // and the first audio track the format carries (as MistOutHTTP selects them by default).
  function mimeFor(fmt, tracks) {
    const codecs = [];
    for (const kind of ['video', 'audio']) {
      const t = tracks.find((x) => x.type === kind && fmt.codecs.includes(x.codec));
      // The server's string (from the init data: real profile and level) where it has one.
      const exact = ['H264', 'HEVC', 'AV1', 'VP9', 'AAC'].includes(t && t.codec) && t.codecstring;
      if (t) codecs.push(exact || RFC6381[t.codec] || '');
    }
    if (!codecs.length) return null;
    if (codecs.includes('')) return fmt.mime;
    return `${fmt.mime}; codecs="${codecs.join(', ')}"`;
  }

  function playable(video, src, tracks) {
    if (src.type.indexOf(HLS) === 0) return video.canPlayType('application/vnd.apple.mpegurl') !== '';
    const fmt = FORMATS[src.type];
    const mime = fmt && mimeFor(fmt, tracks);
    return !!mime && video.canPlayType(mime) !== '';
  }

  function choose(video, info, tracks, force) {
    const list = Array.isArray(info.source) ? info.source : [];
    const isHls = (s) => s.type.indexOf(HLS) === 0;
    const order = [];
    if (force) {
      order.push((s) => s.type === force);
    } else {
      // Apple's own HLS first where it is the platform's way (Safari, iOS); elsewhere the
      // progressive MP4 (lower latency, and what Chromium/Firefox play best natively).
      if (/Apple/.test(navigator.vendor || '') || !window.MediaSource) order.push(isHls);
      order.push((s) => s.type === 'html5/video/mp4', isHls, (s) => s.type === 'html5/video/webm');
    }
    for (const want of order) {
      for (const s of list) {
        if (typeof s.type === 'string' && want(s) && playable(video, s, tracks)) return s;
      }
    }
    return null;
  }

  window.mistPlay = function (stream, options) {
    const o = Object.assign({ autoplay: true, muted: false, controls: true, poster: '', host: DEFAULT_HOST }, options || {});
    const target = typeof o.target === 'string' ? document.querySelector(o.target) : o.target;
    if (!target) throw new Error('mistPlay: no target element');
    const host = String(o.host).replace(/\/+$/, '');
    if (getComputedStyle(target).position === 'static') target.style.position = 'relative';
    const msg = document.createElement('div');
    msg.className = 'mistplayer-message';
    msg.style.cssText = 'position:absolute;left:0;right:0;top:50%;transform:translateY(-50%);' +
      'text-align:center;color:#ddd;font:16px sans-serif;padding:1em;pointer-events:none;display:none';
    target.appendChild(msg);
    let video = null;
    let timer = null;
    let stalled = null;
    let stopped = false;
    let fails = 0; // restarts since the video last played: the retry delay grows with them

    const show = (text) => { msg.textContent = text; msg.style.display = text ? '' : 'none'; };
    const retry = (ms) => { clearTimeout(timer); if (!stopped) timer = setTimeout(load, ms); };
    function drop() {
      clearInterval(stalled);
      if (!video) return;
      const v = video;
      video = null;
      v.removeAttribute('src');
      try { v.load(); } catch (e) { /* already gone */ }
      v.remove();
    }

    async function load() {
      if (stopped) return;
      let info;
      try {
        const r = await fetch(`${host}/json_${enc(stream)}.js`, { cache: 'no-store' });
        info = await r.json();
      } catch (e) {
        show(`Cannot reach the stream server (${e.message}); retrying…`);
        return retry(RETRY_MS);
      }
      if (stopped) return;
      if (!info || info.error) {
        drop();
        show(info && info.error ? String(info.error) : 'Stream is offline');
        return retry(RETRY_MS);
      }
      const tracks = Object.values((info.meta && info.meta.tracks) || {});
      const src = choose(video || document.createElement('video'), info, tracks, o.forceType);
      if (!src) {
        drop();
        show('This browser cannot play any of this stream\'s formats');
        return retry(RETRY_MS * 2);
      }
      start(src, info.type === 'live');
    }

    function start(src, live) {
      drop();
      show('');
      const url = src.relurl ? host + src.relurl : src.url;
      const v = document.createElement('video');
      v.playsInline = true;
      v.controls = !!o.controls;
      v.muted = !!o.muted;
      if (o.poster) v.poster = o.poster;
      v.setAttribute('data-source', src.type);
      v.setAttribute('data-url', url);
      v.style.cssText = 'display:block;width:100%;height:100%;background:#000;object-fit:contain';
      const restart = (why) => {
        if (video !== v || stopped) return;
        console.warn(`mistPlay(${stream}): ${why}`);
        show(`${why}; reloading…`);
        retry(Math.min(1000 << fails, 10000));
        fails = Math.min(fails + 1, 4);
      };
      v.addEventListener('error', () => {
        const e = v.error;
        restart(`Playback error${e ? ` ${e.code}${e.message ? `: ${e.message}` : ''}` : ''}`);
      });
      v.addEventListener('ended', () => { if (live) restart('The stream ended'); });
      v.addEventListener('playing', () => { fails = 0; show(''); });
      if (live) {
        // A live stream that stops advancing while it should play: start over.
        let last = -1;
        let since = Date.now();
        stalled = setInterval(() => {
          if (v.paused || v.currentTime !== last) { last = v.currentTime; since = Date.now(); return; }
          if (Date.now() - since > STALL_MS) restart('The stream stalled');
        }, 1000);
      }
      v.src = url;
      target.insertBefore(v, msg);
      video = v;
      if (o.autoplay) {
        v.play().catch((e) => {
          // Autoplay with sound is often refused: play muted instead (controls can unmute).
          if (e && e.name === 'NotAllowedError' && !v.muted && video === v) {
            v.muted = true;
            v.play().catch(() => show('Click to play'));
          }
        });
      }
    }

    load();
    return {
      get video() { return video; },
      stop() { stopped = true; clearTimeout(timer); drop(); show(''); },
    };
  };
})();
