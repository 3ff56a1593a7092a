"""The live status page (`GET /`) and the SVG badges, as strings for the HTTP server.

`status_page_html()` is one self-contained HTML document: inline CSS and JavaScript,
nothing fetched but the same-origin JSON API it renders (`api/v1/targets`,
`api/v1/targets/{name}/history`, `api/v1/incidents`, resolved against the page's own
URL, so it also works behind a reverse proxy under a path prefix). Its
Content-Security-Policy (a `<meta>` tag, and `status_page_csp()` for a header) only
lets the page's own script and style run and only lets it connect to its own origin.

Tokens: when the API needs one and the page is public, open the page as
`https://host:port/#token=SECRET`. The fragment never leaves the browser; the script
sends it as `Authorization: Bearer SECRET` on its API calls only. Without it, a 401/403
shows "this status page needs a token".

Bounded requests: every refresh (30 s) fetches the target list and the incidents, two
requests whatever the number of targets. Histories are fetched lazily, only for the
target cards on (or within 300 px of) the screen, at most 24 cards, 3 requests at a
time; a card's 24 h history is re-fetched at most once a minute and its 7 d history at
most every 10 minutes. Scrolling fetches the cards that come into view. Nothing is
fetched while the tab is hidden.

Badges (`badge_svg`, `status_badge`, `uptime_badge`) are flat shields.io-style SVGs;
serve them as `image/svg+xml; charset=utf-8`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import math
import re
import unicodedata
from decimal import ROUND_DOWN, Decimal
from xml.sax.saxutils import escape as _xml_escape

__all__ = [
    "BADGE_COLORS",
    "badge_svg",
    "status_badge",
    "status_page_csp",
    "status_page_html",
    "uptime_badge",
]

# The uptime-bar palette, the same as the HTML report's (trio_monitor/_report.py).
COLOR_OK = "#2da44e"  # every check in the segment ok
COLOR_WARN = "#d4a72c"  # some failed (at most half)
COLOR_BAD = "#cf222e"  # mostly failed (more than half)
COLOR_NODATA = "#d0d7de"  # no checks in the segment
COLOR_LINE = "#0969da"  # the latency sparkline

# --- the status page ---------------------------------------------------------------------

_CSS = """
:root{--bg:#f6f8fa;--fg:#1f2328;--muted:#59636e;--card:#fff;--line:#d0d7de;
--ok:#2da44e;--warn:#d4a72c;--bad:#cf222e;--none:#d0d7de;--accent:#0969da;
--up-bg:#dafbe1;--up-fg:#116329;--down-bg:#ffebe9;--down-fg:#a40e26;
--unk-bg:#eaeef2;--unk-fg:#424a53;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;
--card:#161b22;--line:#30363d;--none:#3d444d;--up-bg:#12361f;--up-fg:#6fdd8b;
--down-bg:#42161c;--down-fg:#ff9492;--unk-bg:#262c36;--unk-fg:#c9d1d9}}
*{box-sizing:border-box}
[hidden]{display:none!important}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",
"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
.wrap{max-width:1120px;margin:0 auto;padding:14px 16px 24px}
header{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;
gap:8px 16px;margin-bottom:10px}
h1{font-size:20px;margin:0;overflow-wrap:anywhere}
h2{font-size:15px;margin:0}
.muted{color:var(--muted)}
.summary{display:flex;flex-wrap:wrap;gap:6px;margin:0;padding:0;list-style:none}
.count,.pill{display:inline-block;border-radius:999px;padding:1px 10px;font-weight:600;
border:1px solid;white-space:nowrap}
.up{background:var(--up-bg);color:var(--up-fg);border-color:var(--ok)}
.down{background:var(--down-bg);color:var(--down-fg);border-color:var(--bad)}
.unknown{background:var(--unk-bg);color:var(--unk-fg);border-color:#8c959f}
.tools{display:flex;flex-wrap:wrap;align-items:center;gap:8px}
input[type=search]{font:inherit;padding:4px 8px;border:1px solid var(--line);
border-radius:6px;background:var(--card);color:var(--fg);width:12em;max-width:100%}
button{font:inherit;padding:4px 12px;border:1px solid var(--line);border-radius:6px;
background:var(--card);color:var(--fg);cursor:pointer}
.banner{display:flex;gap:8px;align-items:flex-start;background:var(--down-bg);
color:var(--down-fg);border:1px solid var(--bad);border-radius:8px;padding:10px 12px;
margin:0 0 12px;font-weight:600;overflow-wrap:anywhere}
.panel{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:10px 14px;margin:0 0 12px}
.panel ul{margin:6px 0 0;padding-left:20px}
.panel li{overflow-wrap:anywhere;margin:2px 0}
details summary{cursor:pointer;margin-top:6px}
.card{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.15fr);gap:8px 22px;
background:var(--card);border:1px solid var(--line);border-left:6px solid #8c959f;
border-radius:8px;padding:10px 14px;margin:0 0 10px}
.card.st-up{border-left-color:var(--ok)}
.card.st-down{border-left-color:var(--bad)}
.head{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 10px}
.name{font-size:16px;overflow-wrap:anywhere;min-width:0}
.url{font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;color:var(--muted);
overflow-wrap:anywhere;margin-top:2px}
.facts{list-style:none;margin:6px 0 0;padding:0}
.facts li{overflow-wrap:anywhere}
.err{color:var(--down-fg);font-weight:600;overflow-wrap:anywhere;margin:4px 0 0}
.row{display:grid;grid-template-columns:2.6em minmax(0,1fr) 5.2em;align-items:center;
gap:8px;margin:2px 0 6px}
.lbl{font-size:12px;color:var(--muted)}
.val{font-size:12px;text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.bar{display:flex;gap:2px;height:18px}
.seg{flex:1 1 0;min-width:0;border-radius:2px;background:var(--none)}
.seg.pending{background:transparent;outline:1px dashed var(--line);outline-offset:-1px}
.seg.ok{background:#2da44e}.seg.warn{background:#d4a72c}
.seg.bad{background:#cf222e}.seg.none{background:#d0d7de}
.spark{display:block;width:100%;height:36px;overflow:visible}
.note{font-size:12px;color:var(--muted);margin:0}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;color:var(--muted);
margin-top:14px}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;
vertical-align:-1px}
.sw.ok{background:#2da44e}.sw.warn{background:#d4a72c}.sw.bad{background:#cf222e}
.sw.none{background:#d0d7de}
@media (max-width:760px){.card{grid-template-columns:minmax(0,1fr)}
.wrap{padding:10px 10px 20px}h1{font-size:18px}input[type=search]{width:9em}}
"""

_JS = r"""
"use strict";
(function () {
  const body = document.body;
  const REFRESH_S = Math.max(5, Number(body.dataset.refresh) || 30);
  const TTL_MS = { "24h": 60e3, "7d": 600e3 };
  const SEGMENTS = { "24h": 24, "7d": 28 };
  const SPAN_MS = { "24h": 864e5, "7d": 6048e5 };
  const MAX_INFLIGHT = 3;
  const MAX_HISTORY_CARDS = 24;
  const TIMEOUT_MS = 20000;
  const SPARK_BUCKETS = 144;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const STATES = {
    UP: { cls: "up", mark: "\u2713", word: "UP" },
    DOWN: { cls: "down", mark: "\u2715", word: "DOWN" },
    UNKNOWN: { cls: "unknown", mark: "?", word: "UNKNOWN" },
  };
  const ORDER = { DOWN: 0, UNKNOWN: 1, UP: 2 };

  const $ = (id) => document.getElementById(id);
  const list = $("targets"), banner = $("banner"), bannerMsg = $("banner-msg");
  const updated = $("updated"), filterBox = $("filter"), shown = $("shown");
  const openList = $("open-incidents"), resolvedList = $("resolved-incidents");
  const resolvedBox = $("resolved"), resolvedCount = $("resolved-count");
  const incNote = $("incidents-note"), summaryLine = $("summary-line");
  const baseTitle = document.title;

  const cards = new Map();
  const cardOf = new WeakMap();
  const visible = new Set();
  let inflight = 0, lastOk = 0, generation = 0, timer = 0, running = false;
  let missedWhileHidden = false, again = false, skew = 0;

  const now = () => Date.now() + skew;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svgEl(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const k of Object.keys(attrs)) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  const isNum = (x) => typeof x === "number" && isFinite(x);
  const str = (x) => (typeof x === "string" ? x : "");
  const pad = (n) => String(n).padStart(2, "0");
  function hhmmss(ms) {
    const d = new Date(ms);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function dateTime(ms) {
    const d = new Date(ms);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) +
      " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  function shortTime(ms) {
    const d = new Date(ms);
    return pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" +
      pad(d.getMinutes());
  }
  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min";
    const h = Math.floor(m / 60);
    if (h < 48) return h + " h" + (m % 60 ? " " + (m % 60) + " min" : "");
    const d = Math.floor(h / 24);
    return d + " d" + (h % 24 ? " " + (h % 24) + " h" : "");
  }
  function ms(x) {
    if (!isNum(x)) return "\u2013";
    if (x >= 1000) return (x / 1000).toFixed(2) + " s";
    return (x < 10 ? x.toFixed(1) : String(Math.round(x))) + " ms";
  }
  function pct(p) {
    if (!isNum(p)) return "n/a";
    const t = Math.floor(Math.min(100, Math.max(0, p)) * 100 + 1e-6) / 100;
    return String(t) + "%";
  }
  function parseTime(s) {
    const t = typeof s === "string" ? Date.parse(s) : NaN;
    return isFinite(t) ? t : null;
  }
  const thousands = (n) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");

  // --- the API ----------------------------------------------------------------------
  function token() {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (!m) return "";
    try { return decodeURIComponent(m[1]); } catch (e) { return m[1]; }
  }
  class ApiError extends Error {
    constructor(kind, status, detail) {
      super(detail || kind);
      this.kind = kind;
      this.status = status;
      this.detail = detail || "";
    }
  }
  async function api(path) {
    const headers = new Headers({ Accept: "application/json" });
    const t = token();
    if (t) {
      try { headers.set("Authorization", "Bearer " + t); }
      catch (e) { throw new ApiError("badtoken", 0, ""); }
    }
    const ctl = new AbortController();
    const timeout = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    try {
      let resp;
      try {
        resp = await fetch(new URL(path, location.href), {
          headers, cache: "no-store", credentials: "same-origin", signal: ctl.signal,
        });
      } catch (e) {
        throw new ApiError("network", 0, ctl.signal.aborted
          ? "no answer within " + TIMEOUT_MS / 1000 + " s" : "network error");
      }
      const date = Date.parse(resp.headers.get("Date") || "");
      if (isFinite(date)) {
        const s = date - Date.now();
        skew = Math.abs(s) > 5000 ? s : 0;
      }
      if (!resp.ok) {
        let detail = "";
        try {
          const j = await resp.json();
          if (j && typeof j.error === "string") detail = j.error;
        } catch (e) { /* not JSON: the status says enough */ }
        const auth = resp.status === 401 || resp.status === 403;
        const err = new ApiError(auth ? "auth" : "http", resp.status, detail);
        err.token = t;
        throw err;
      }
      try { return await resp.json(); }
      catch (e) {
        if (ctl.signal.aborted) throw new ApiError("network", 0, "the answer was cut off");
        throw new ApiError("http", resp.status, "the answer is not JSON");
      }
    } finally {
      clearTimeout(timeout);
    }
  }
  function describe(e) {
    if (!(e instanceof ApiError)) return "Unexpected error: " + String((e && e.message) || e);
    const detail = e.detail ? ": " + e.detail.slice(0, 300) : "";
    switch (e.kind) {
      case "auth":
        return token()
          ? "The token was refused (HTTP " + e.status + detail + "). Check the #token=\u2026 " +
            "part of this page's address."
          : "This status page needs a token: open it as this address followed by " +
            "#token=YOUR_TOKEN (HTTP " + e.status + detail + ").";
      case "badtoken":
        return "The #token=\u2026 in this page's address is not a valid token.";
      case "network":
        return "Cannot reach the monitor (" + e.detail + ").";
      default:
        return "The monitor's API failed (" + (e.status ? "HTTP " + e.status : "bad answer") +
          detail + ").";
    }
  }
  function showError(e) {
    if (!lastOk) updated.textContent = "not loaded";
    bannerMsg.textContent = describe(e) + " Retrying every " + REFRESH_S + " s" +
      (lastOk ? "; showing data from " + hhmmss(lastOk) + "." : ".");
    banner.hidden = false;
    body.dataset.status = "error";
    body.dataset.error = e instanceof ApiError ? e.kind : "error";
  }
  function clearError() {
    banner.hidden = true;
    bannerMsg.textContent = "";
    body.dataset.status = "ok";
    delete body.dataset.error;
  }

  // --- target cards -----------------------------------------------------------------
  function makeBar(kind) {
    const bar = el("div", "bar");
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", (kind === "24h" ? "24 hour" : "7 day") +
      " uptime: not loaded yet");
    bar.dataset.range = kind;
    for (let i = 0; i < SEGMENTS[kind]; i++) bar.appendChild(el("div", "seg pending"));
    return bar;
  }
  function makeRow(label, graphic) {
    const row = el("div", "row");
    const val = el("span", "val muted", "");
    row.append(el("span", "lbl", label), graphic, val);
    return { row, val };
  }
  function makeCard(name) {
    const c = { name, state: "UNKNOWN", at: { "24h": 0, "7d": 0 }, busy: false, notes: {} };
    c.el = el("article", "card");
    c.el.dataset.name = name;
    const info = el("div", "info");
    const head = el("div", "head");
    c.pill = el("span", "pill unknown");
    c.nameEl = el("h2", "name", name);
    head.append(c.pill, c.nameEl);
    c.urlEl = el("div", "url");
    const facts = el("ul", "facts");
    c.sinceEl = el("li", "since");
    c.lastEl = el("li", "last");
    c.statsEl = el("li", "stats muted");
    facts.append(c.sinceEl, c.lastEl, c.statsEl);
    c.errEl = el("p", "err");
    c.errEl.hidden = true;
    info.append(head, c.urlEl, facts, c.errEl);
    const charts = el("div", "charts");
    c.bars = { "24h": makeBar("24h"), "7d": makeBar("7d") };
    const r24 = makeRow("24 h", c.bars["24h"]);
    const r7 = makeRow("7 d", c.bars["7d"]);
    c.spark = svgEl("svg", {
      class: "spark", viewBox: "0 0 288 36", preserveAspectRatio: "none", role: "img",
      "aria-label": "latency over 24 hours: not loaded yet",
    });
    const rs = makeRow("ms", c.spark);
    c.vals = { "24h": r24.val, "7d": r7.val, spark: rs.val };
    c.noteEl = el("p", "note");
    c.noteEl.hidden = true;
    charts.append(r24.row, r7.row, rs.row, c.noteEl);
    c.el.append(info, charts);
    cardOf.set(c.el, c);
    if (observer) observer.observe(c.el);
    return c;
  }
  function updateCard(c, t) {
    c.state = Object.prototype.hasOwnProperty.call(STATES, t.state) ? t.state : "UNKNOWN";
    const st = STATES[c.state];
    c.el.className = "card st-" + st.cls;
    c.pill.className = "pill " + st.cls;
    c.pill.textContent = st.mark + " " + st.word;
    c.urlEl.textContent = str(t.url);
    c.url = str(t.url);
    const since = parseTime(t.since);
    if (since !== null) {
      c.sinceEl.textContent = (c.state === "UNKNOWN" ? "unknown since " : st.word.toLowerCase() +
        " since ") + dateTime(since) + " (" + duration(now() - since) + ")";
      c.sinceEl.title = t.since;
    } else {
      c.sinceEl.textContent = c.state === "UNKNOWN" ? "no decision yet" : "";
    }
    const last = t.last && typeof t.last === "object" ? t.last : null;
    if (last) {
      const parts = ["last check " + (parseTime(last.ts) !== null ? hhmmss(parseTime(last.ts))
        : "?")];
      if (isNum(last.status)) parts.push("HTTP " + last.status);
      if (isNum(last.latency_ms)) parts.push(ms(last.latency_ms));
      parts.push(last.ok ? "ok" : "failed");
      c.lastEl.textContent = parts.join(" \u00b7 ");
      const err = str(last.error), detail = str(last.error_detail);
      if (!last.ok && (err || detail)) {
        c.errEl.textContent = "\u2715 " + (err || "error") + (detail ? ": " + detail : "");
        c.errEl.hidden = false;
      } else {
        c.errEl.hidden = true;
        c.errEl.textContent = "";
      }
    } else {
      c.lastEl.textContent = "no checks yet";
      c.errEl.hidden = true;
      c.errEl.textContent = "";
    }
    const stats = [];
    if (isNum(t.availability_24h_pct)) {
      stats.push("24 h: " + pct(t.availability_24h_pct) +
        (isNum(t.checks_24h) ? " of " + thousands(t.checks_24h) + " checks" : ""));
    } else {
      stats.push("24 h: no checks");
    }
    if (isNum(t.p95_24h_ms)) stats.push("p95 " + ms(t.p95_24h_ms));
    if (isNum(t.interval_s)) stats.push("every " + duration(t.interval_s * 1000));
    c.statsEl.textContent = stats.join(" \u00b7 ");
    c.avail24 = isNum(t.availability_24h_pct) ? t.availability_24h_pct : null;
    c.p95 = isNum(t.p95_24h_ms) ? t.p95_24h_ms : null;
    if (c.avail24 !== null) c.vals["24h"].textContent = pct(c.avail24);
  }

  // --- history: uptime bars and the sparkline -----------------------------------------
  function segments(samples, since, until, n) {
    const segs = [];
    for (let i = 0; i < n; i++) segs.push({ n: 0, failed: 0 });
    const width = (until - since) / n;
    for (const s of samples) {
      const t = parseTime(s && s.ts);
      if (t === null || t < since || t > until) continue;
      const seg = segs[Math.min(n - 1, Math.floor((t - since) / width))];
      seg.n++;
      if (!s.ok) seg.failed++;
    }
    return segs;
  }
  function segClass(s) {
    if (!s.n) return "none";
    if (!s.failed) return "ok";
    return s.failed * 2 > s.n ? "bad" : "warn";
  }
  function drawBar(c, kind, data) {
    const n = SEGMENTS[kind];
    let until = parseTime(data.until);
    if (until === null) until = now();
    let since = parseTime(data.since);
    if (since === null || since >= until) since = until - SPAN_MS[kind];
    const samples = Array.isArray(data.samples) ? data.samples : [];
    const segs = segments(samples, since, until, n);
    const width = (until - since) / n;
    const bar = c.bars[kind];
    let total = 0, failed = 0;
    segs.forEach((s, i) => {
      total += s.n;
      failed += s.failed;
      const seg = bar.children[i];
      seg.className = "seg " + segClass(s);
      const what = s.n ? s.n + " checks, " + s.failed + " failed" : "no data";
      seg.title = shortTime(since + i * width) + "\u2013" + shortTime(since + (i + 1) * width) +
        ": " + what;
    });
    const label = (kind === "24h" ? "24 hour" : "7 day") + " uptime: ";
    const p = total ? (100 * (total - failed)) / total : null;
    bar.setAttribute("aria-label", label + (total ? pct(p) + " of " + total + " checks ok"
      : "no data") + (data.truncated ? " (partial)" : ""));
    bar.dataset.loaded = "1";
    if (kind === "7d" || c.avail24 === null) {
      c.vals[kind].textContent = (data.truncated && total ? "\u2248" : "") + pct(p);
    }
    if (kind === "24h") drawSpark(c, samples, since, until);
    setNote(c, kind, data.truncated ? (kind === "24h" ? "24 h" : "7 d") +
      " history is partial (the server truncated it)" : "");
  }
  function drawSpark(c, samples, since, until) {
    const W = 288, H = 36, B = SPARK_BUCKETS;
    const sum = new Array(B).fill(0), cnt = new Array(B).fill(0), fail = new Array(B).fill(0);
    const width = (until - since) / B;
    let peak = 0;
    for (const s of samples) {
      const t = parseTime(s && s.ts);
      if (t === null || t < since || t > until) continue;
      const i = Math.min(B - 1, Math.floor((t - since) / width));
      if (!s.ok) fail[i]++;
      else if (isNum(s.latency_ms)) { sum[i] += s.latency_ms; cnt[i]++; }
    }
    const mean = sum.map((v, i) => (cnt[i] ? v / cnt[i] : null));
    for (const v of mean) if (v !== null && v > peak) peak = v;
    while (c.spark.firstChild) c.spark.removeChild(c.spark.firstChild);
    const xs = (i) => ((i + 0.5) * W) / B;
    let d = "", ticks = "", prev = false;
    mean.forEach((v, i) => {
      if (fail[i]) ticks += "M" + xs(i).toFixed(1) + " " + H + "v-6";
      if (v === null) { prev = false; return; }
      const y = H - 3 - (peak > 0 ? (v / peak) * (H - 8) : 0);
      d += (prev ? "L" : "M") + xs(i).toFixed(1) + " " + y.toFixed(1);
      if (!prev && (i === B - 1 || mean[i + 1] === null)) d += "h0.01";
      prev = true;
    });
    c.spark.appendChild(svgEl("line", { x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5,
      stroke: "currentColor", "stroke-opacity": 0.2, "vector-effect": "non-scaling-stroke" }));
    if (d) {
      c.spark.appendChild(svgEl("path", { d, fill: "none", stroke: "#0969da",
        "stroke-width": 1.6, "stroke-linejoin": "round", "stroke-linecap": "round",
        "vector-effect": "non-scaling-stroke" }));
    }
    if (ticks) {
      c.spark.appendChild(svgEl("path", { d: ticks, stroke: "#cf222e", "stroke-width": 2,
        "vector-effect": "non-scaling-stroke" }));
    }
    c.vals.spark.textContent = d ? "max " + ms(peak) : "no data";
    c.spark.setAttribute("aria-label", d ? "latency over 24 hours, peak " + ms(peak) +
      (c.p95 !== null ? ", p95 " + ms(c.p95) : "") : "no latency data in 24 hours");
  }
  function setNote(c, key, text) {
    if (text) c.notes[key] = text; else delete c.notes[key];
    const all = Object.values(c.notes);
    c.noteEl.textContent = all.join("; ");
    c.noteEl.hidden = all.length === 0;
  }

  const observer = "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => {
      for (const e of entries) {
        const c = cardOf.get(e.target);
        if (!c) continue;
        if (e.isIntersecting) visible.add(c); else visible.delete(c);
      }
      pump();
    }, { rootMargin: "300px 0px" })
    : null;

  function wanted() {
    const out = [];
    for (const node of list.children) {
      const c = cardOf.get(node);
      if (!c || node.hidden || (observer && !visible.has(c))) continue;
      out.push(c);
      if (out.length >= MAX_HISTORY_CARDS) break;
    }
    return out;
  }
  function pump() {
    // nothing while the tab is hidden or the last refresh failed (the banner says why)
    if (document.hidden || body.dataset.status === "error") {
      body.dataset.historyIdle = inflight === 0 ? "1" : "0";
      return;
    }
    const t = Date.now();
    for (const kind of ["24h", "7d"]) {
      for (const c of wanted()) {
        if (inflight >= MAX_INFLIGHT) break;
        if (c.busy || t - c.at[kind] < TTL_MS[kind]) continue;
        fetchHistory(c, kind);
      }
    }
    body.dataset.historyIdle = inflight === 0 ? "1" : "0";
  }
  async function fetchHistory(c, kind) {
    c.busy = true;
    inflight++;
    c.at[kind] = Date.now();
    try {
      const data = await api("api/v1/targets/" + encodeURIComponent(c.name) +
        "/history?since=" + kind);
      if (cards.get(c.name) === c && data && typeof data === "object") drawBar(c, kind, data);
      setNote(c, kind + "-error", "");
    } catch (e) {
      c.at[kind] = Date.now() - TTL_MS[kind] + REFRESH_S * 1000; // retry in one refresh
      // (an answer to a token the address no longer has is old news)
      if (e instanceof ApiError && e.kind === "auth" && e.token === token()) showError(e);
      setNote(c, kind + "-error", (kind === "24h" ? "24 h" : "7 d") + " history unavailable: " +
        (e instanceof ApiError ? (e.status ? "HTTP " + e.status : e.detail) : String(e)));
    } finally {
      c.busy = false;
      inflight--;
      pump();
    }
  }

  // --- the list, the summary and the incidents -----------------------------------------
  function renderTargets(data) {
    if (!Array.isArray(data)) throw new ApiError("http", 0, "the target list is not a list");
    const seen = new Set();
    const counts = { UP: 0, DOWN: 0, UNKNOWN: 0 };
    for (const t of data) {
      if (!t || typeof t.name !== "string" || seen.has(t.name)) continue;
      seen.add(t.name);
      let c = cards.get(t.name);
      if (!c) {
        c = makeCard(t.name);
        cards.set(t.name, c);
      }
      updateCard(c, t);
      counts[c.state]++;
    }
    for (const [name, c] of cards) {
      if (seen.has(name)) continue;
      if (observer) observer.unobserve(c.el);
      visible.delete(c);
      c.el.remove();
      cards.delete(name);
    }
    const order = [...cards.values()].sort((a, b) =>
      ORDER[a.state] - ORDER[b.state] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const current = [...list.children];
    if (order.length !== current.length || order.some((c, i) => c.el !== current[i])) {
      const empty = $("empty");
      if (empty) empty.remove();
      for (const c of order) list.appendChild(c.el);
    }
    if (!order.length && !$("empty")) {
      const p = el("p", "panel muted", "No targets configured.");
      p.id = "empty";
      list.appendChild(p);
    }
    $("summary").hidden = false;
    $("n-up").textContent = "\u2713 " + counts.UP + " up";
    $("n-down").textContent = "\u2715 " + counts.DOWN + " down";
    $("n-unknown").textContent = "? " + counts.UNKNOWN + " unknown";
    const total = order.length;
    summaryLine.textContent = !total ? "" : counts.DOWN
      ? counts.DOWN + " of " + total + " targets down"
      : counts.UNKNOWN ? "no target down; " + counts.UNKNOWN + " not checked yet"
      : "all " + total + " targets up";
    document.title = (counts.DOWN ? "(" + counts.DOWN + " down) " : "") + baseTitle;
    applyFilter();
  }
  function applyFilter() {
    const q = filterBox.value.trim().toLowerCase();
    let n = 0;
    for (const c of cards.values()) {
      const hide = q !== "" && !c.name.toLowerCase().includes(q) &&
        !(c.url || "").toLowerCase().includes(q);
      c.el.hidden = hide;
      if (!hide) n++;
    }
    shown.textContent = q ? "showing " + n + " of " + cards.size : "";
    pump();
  }
  function incidentItem(i, open) {
    const li = el("li");
    const start = parseTime(i.start), end = parseTime(i.end);
    li.append(el("strong", "", str(i.target)));
    let text;
    if (open) {
      text = " down since " + (start !== null ? dateTime(start) + " (for " +
        duration(now() - start) + ")" : "?");
    } else {
      text = ": " + (start !== null ? dateTime(start) : "?") + " \u2013 " +
        (end !== null ? dateTime(end) : "?") +
        (isNum(i.duration_s) ? " (" + duration(i.duration_s * 1000) + ")" : "");
    }
    if (str(i.error)) text += " \u00b7 " + str(i.error);
    li.append(document.createTextNode(text));
    return li;
  }
  function renderIncidents(data) {
    const all = data && Array.isArray(data.incidents) ? data.incidents.filter(
      (i) => i && typeof i === "object") : [];
    const open = all.filter((i) => i.end === null || i.end === undefined)
      .sort((a, b) => (parseTime(b.start) || 0) - (parseTime(a.start) || 0));
    const done = all.filter((i) => !(i.end === null || i.end === undefined))
      .sort((a, b) => (parseTime(b.end) || 0) - (parseTime(a.end) || 0));
    openList.replaceChildren(...open.slice(0, 100).map((i) => incidentItem(i, true)));
    if (!open.length) openList.replaceChildren(el("li", "muted", "No open incidents."));
    if (open.length > 100) openList.append(el("li", "muted", "\u2026 and " +
      (open.length - 100) + " more"));
    resolvedList.replaceChildren(...done.slice(0, 20).map((i) => incidentItem(i, false)));
    resolvedCount.textContent = String(done.length);
    resolvedBox.hidden = done.length === 0;
    incNote.hidden = true;
    $("incidents").hidden = false;
  }

  // --- refreshing -----------------------------------------------------------------------
  async function refresh() {
    if (running) { again = true; return; }
    running = true;
    again = false;
    clearTimeout(timer);
    body.dataset.refreshing = "1";
    try {
      const [targets, incidents] = await Promise.allSettled([
        api("api/v1/targets"), api("api/v1/incidents?since=7d"),
      ]);
      if (targets.status === "rejected") throw targets.reason;
      renderTargets(targets.value);
      if (incidents.status === "fulfilled") {
        renderIncidents(incidents.value);
      } else {
        const e = incidents.reason;
        if (e instanceof ApiError && (e.kind === "auth" || e.kind === "badtoken")) throw e;
        incNote.textContent = "Incidents unavailable: " + describe(e);
        incNote.hidden = false;
        $("incidents").hidden = false;
      }
      lastOk = Date.now();
      updated.textContent = "updated " + hhmmss(lastOk);
      clearError();
    } catch (e) {
      showError(e);
    } finally {
      running = false;
      generation++;
      body.dataset.generation = String(generation);
      delete body.dataset.refreshing;
      timer = setTimeout(tick, again ? 0 : REFRESH_S * 1000);
      pump();
    }
  }
  function tick() {
    if (document.hidden) { missedWhileHidden = true; return; }
    refresh();
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && missedWhileHidden) { missedWhileHidden = false; refresh(); }
    else if (!document.hidden) pump();
  });
  window.addEventListener("hashchange", () => {
    for (const c of cards.values()) { c.at["24h"] = 0; c.at["7d"] = 0; }
    refresh();
  });
  $("refresh").addEventListener("click", () => refresh());
  filterBox.addEventListener("input", applyFilter);
  refresh();
})();
"""

_BODY = """
<div class="wrap">
<header>
  <div>
    <h1>{title}</h1>
    <div class="muted" id="summary-line"></div>
  </div>
  <ul class="summary" id="summary" aria-label="targets by state" hidden>
    <li class="count up" id="n-up">\u2713 0 up</li>
    <li class="count down" id="n-down">\u2715 0 down</li>
    <li class="count unknown" id="n-unknown">? 0 unknown</li>
  </ul>
  <div class="tools">
    <input type="search" id="filter" placeholder="filter targets" aria-label="filter targets">
    <button type="button" id="refresh">Refresh</button>
    <span class="muted" id="updated" aria-live="polite">loading\u2026</span>
    <span class="muted" id="shown"></span>
  </div>
</header>
<div class="banner" id="banner" role="alert" hidden><span aria-hidden="true">\u26a0</span>
<span id="banner-msg"></span></div>
<noscript><div class="banner">This status page needs JavaScript.</div></noscript>
<section class="panel" id="incidents" aria-labelledby="incidents-title" hidden>
  <h2 id="incidents-title">Open incidents</h2>
  <p class="note" id="incidents-note" hidden></p>
  <ul id="open-incidents"></ul>
  <details id="resolved" hidden><summary>Resolved in the last 7 days
  (<span id="resolved-count">0</span>)</summary><ul id="resolved-incidents"></ul></details>
</section>
<main id="targets" aria-label="targets"></main>
<footer class="legend">
  <span>uptime bars: 24 h in hours, 7 d in 6-hour steps</span>
  <span><i class="sw ok"></i>all checks ok</span>
  <span><i class="sw warn"></i>some failed</span>
  <span><i class="sw bad"></i>mostly failed</span>
  <span><i class="sw none"></i>no data</span>
  <span>hover a segment for its numbers</span>
</footer>
</div>
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _csp(*, header: bool) -> str:
    policy = (
        "default-src 'none'; "
        f"script-src {_sha256(_JS)}; "
        f"style-src {_sha256(_CSS)}; "
        "connect-src 'self'; "
        "img-src data:; "
        "base-uri 'none'; "
        "form-action 'none'"
    )
    # frame-ancestors only works in a header, never in a <meta> tag
    return policy + "; frame-ancestors 'none'" if header else policy


def status_page_csp() -> str:
    """The page's Content-Security-Policy, for the server to send as a header too.

    (A header that does not allow the page's script hash would stop the page.)
    """
    return _csp(header=True)


@functools.lru_cache(maxsize=16)
def status_page_html(*, title: str = "trio-monitor status", refresh_s: int = 30) -> str:
    """The live status page: one self-contained HTML document (see the module doc)."""
    if not 5 <= refresh_s <= 3600:
        raise ValueError("refresh_s must be between 5 and 3600 seconds")
    assert "</script" not in _JS.lower()
    assert "</style" not in _CSS.lower()
    t = html.escape(title, quote=True)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_csp(header=False)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{t}</title>\n"
        f"<style>{_CSS}</style>\n"
        f'</head><body data-refresh="{int(refresh_s)}">'
        f"{_BODY.format(title=t)}"
        f"<script>{_JS}</script>\n"
        "</body></html>\n"
    )


# --- badges --------------------------------------------------------------------------

BADGE_COLORS: dict[str, str] = {
    "green": "#4c1",
    "brightgreen": "#4c1",
    "yellowgreen": "#a4a61d",
    "amber": "#dfb317",
    "yellow": "#dfb317",
    "orange": "#fe7d37",
    "red": "#e05d44",
    "blue": "#007ec6",
    "grey": "#9f9f9f",
    "gray": "#9f9f9f",
    "lightgrey": "#9f9f9f",
    "darkgrey": "#555",
}
_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
# characters XML 1.0 does not allow, and lone surrogates (not encodable as UTF-8)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
BADGE_MAX_CHARS = 48
_NARROW = set("fijlrtI!|.,:;'`()[]{} ")
_WIDE = set("mwMW%@")


def _badge_text(text: str) -> str:
    text = _NOT_XML.sub("\ufffd", " ".join(str(text).split()))
    if len(text) > BADGE_MAX_CHARS:
        text = text[: BADGE_MAX_CHARS - 1] + "\u2026"
    return text


def _text_width(text: str) -> int:
    """Estimated width in px of `text` in 11 px Verdana, from its characters."""
    w = 0.0
    for ch in text:
        if unicodedata.east_asian_width(ch) in "WF":
            w += 11
        elif ch in _NARROW:
            w += 4
        elif ch in _WIDE:
            w += 10
        elif ch.isupper() or ch.isdigit():
            w += 7.5
        else:
            w += 6.5
    return max(1, round(w))


def _badge_color(color: str) -> str:
    key = color.strip().lower()
    if key in BADGE_COLORS:
        return BADGE_COLORS[key]
    if _HEX.fullmatch(color.strip()):
        return color.strip().lower()
    raise ValueError(
        f"unknown badge colour {color!r}: use #rgb, #rrggbb or one of "
        f"{', '.join(sorted(BADGE_COLORS))}"
    )


def badge_svg(label: str, message: str, color: str) -> str:
    """A flat shields.io-style badge: `label` on grey, `message` on `color`.

    `color` is a name from BADGE_COLORS ("green", "red", "grey", "amber", ...) or a
    `#rgb`/`#rrggbb` hex colour; anything else is a ValueError. Text is XML-escaped,
    control characters become U+FFFD, and each part is cut to BADGE_MAX_CHARS.
    """
    fill = _badge_color(color)
    label, message = _badge_text(label), _badge_text(message)
    lw, mw = _text_width(label) + 10, _text_width(message) + 10
    width = lw + mw
    # ids unique per badge, so several badges can be inlined into one page
    uid = hashlib.sha1(f"{label}\0{message}\0{fill}".encode()).hexdigest()[:8]
    title = _xml_escape(f"{label}: {message}", {'"': "&quot;"})
    lt, mt = _xml_escape(label), _xml_escape(message)

    def text(x: float, tw: int, body: str) -> str:
        common = f'x="{x:g}" textLength="{tw}" lengthAdjust="spacingAndGlyphs"'
        return (
            f'<text {common} y="15" fill="#010101" fill-opacity=".3" aria-hidden="true">'
            f'{body}</text><text {common} y="14">{body}</text>'
        )

    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" '
        f'viewBox="0 0 {width} 20" role="img" aria-label="{title}">'
        f"<title>{title}</title>"
        f'<linearGradient id="s{uid}" x2="0" y2="100%">'
        '<stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r{uid}"><rect width="{width}" height="20" rx="3" fill="#fff"/>'
        "</clipPath>"
        f'<g clip-path="url(#r{uid})">'
        f'<rect width="{lw}" height="20" fill="#555"/>'
        f'<rect x="{lw}" width="{mw}" height="20" fill="{fill}"/>'
        f'<rect width="{width}" height="20" fill="url(#s{uid})"/></g>'
        '<g fill="#fff" text-anchor="middle" '
        'font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f"{text(lw / 2, lw - 10, lt)}{text(lw + mw / 2, mw - 10, mt)}</g></svg>"
    )


_STATE_COLORS = {"up": "green", "down": "red", "unknown": "grey"}


def status_badge(state: str, *, label: str = "status") -> str:
    """ "up" green, "down" red, anything else "unknown" grey (case-insensitive)."""
    key = state.strip().lower() if isinstance(state, str) else "unknown"
    if key not in _STATE_COLORS:
        key = "unknown"
    return badge_svg(label, key, _STATE_COLORS[key])


UPTIME_THRESHOLDS = ((99.9, "green"), (99.0, "yellowgreen"), (95.0, "amber"))


def uptime_badge(pct: float | None, *, label: str = "uptime") -> str:
    """E.g. "99.95%": green from 99.9, yellowgreen from 99, amber from 95, red below;
    "n/a" grey for None (no checks) or a non-finite number. The figure is cut, never
    rounded up, to two decimals: 99.999 shows "99.99%", never "100%"."""
    if pct is None or not math.isfinite(pct):
        return badge_svg(label, "n/a", "grey")
    pct = min(100.0, max(0.0, float(pct)))
    color = next((c for limit, c in UPTIME_THRESHOLDS if pct >= limit), "red")
    text = Decimal(repr(pct)).quantize(Decimal("0.01"), rounding=ROUND_DOWN).normalize()
    return badge_svg(label, f"{text:f}%", color)
