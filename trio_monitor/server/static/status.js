// The status page's script (see trio_monitor/server/page.py): renders the JSON API.
"use strict";
(function () {
  const body = document.body;
  const REFRESH_S = Math.max(5, Number(body.dataset.refresh) || 30);
  // The availability scale is the server's (trio_monitor/_palette.py), rendered into
  // this page: the script keeps no copy of it (nor of its colours: see the CSS).
  const OK_FROM = Number(body.dataset.okFrom), WARN_FROM = Number(body.dataset.warnFrom);
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
  // UP, with an open early warning (the target's `degrading`): shown, not counted apart
  const DEGRADING = { cls: "degrading", mark: "!", word: "DEGRADING" };
  const ORDER = { DOWN: 0, UNKNOWN: 1, UP: 2 };

  const $ = (id) => document.getElementById(id);
  const list = $("targets"), banner = $("banner"), bannerMsg = $("banner-msg");
  const updated = $("updated"), filterBox = $("filter"), shown = $("shown");
  const openList = $("open-incidents"), resolvedList = $("resolved-incidents");
  const resolvedBox = $("resolved"), resolvedCount = $("resolved-count");
  const incNote = $("incidents-note"), summaryLine = $("summary-line");
  const labelBox = $("label-filter"), groupByBox = $("group-by");
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
  const obj = (x) => (x && typeof x === "object" && !Array.isArray(x) ? x : null);
  const count = (x) => (Number.isInteger(x) && x >= 0 ? x : null);
  const isStatus = (x) => Number.isInteger(x) && x >= 100 && x <= 999;
  // hostile or merely long text: cut to n characters, control characters as spaces
  function clip(s, n) {
    const t = String(s).slice(0, n + 1).replace(/[\u0000-\u001f\u007f-\u009f]/g, " ");
    return t.length > n ? t.slice(0, n - 1) + "\u2026" : t;
  }
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
    // sub-millisecond (an ICMP round trip on a LAN): two decimals, or it reads 0.1 or 0.2
    return (x < 1 ? x.toFixed(2) : x < 10 ? x.toFixed(1) : String(Math.round(x))) + " ms";
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
  // the answer's JSON; with `blob`, the answer as it came (a browser artifact)
  async function api(path, blob) {
    const headers = new Headers({ Accept: blob ? "*/*" : "application/json" });
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
      try { return await (blob ? resp.blob() : resp.json()); }
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
          : "This status page needs a token: log in at ./login, or open it " +
            "as this address followed by #token=YOUR_TOKEN (HTTP " + e.status + detail + ").";
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
    const c = { name, state: "UNKNOWN", at: { "24h": 0, "7d": 0 }, busy: false, notes: {},
      labels: Object.create(null), labelText: "" };
    c.el = el("article", "card");
    c.el.dataset.name = name;
    const info = el("div", "info");
    const head = el("div", "head");
    c.pill = el("span", "pill unknown");
    c.nameEl = el("h2", "name", name);
    c.kindEl = el("span", "kind");  // what it checks: http, tcp, dns, ...
    c.heldEl = el("span", "held");  // what holds its alerts: a window or a silence
    c.heldEl.hidden = true;
    head.append(c.pill, c.nameEl, c.kindEl, c.heldEl);
    c.urlEl = el("div", "url");
    const facts = el("ul", "facts");
    c.sinceEl = el("li", "since");
    c.suppressedEl = el("li", "suppressed muted");  // DOWN behind DOWN parents (depends_on)
    c.suppressedEl.hidden = true;
    c.lastEl = el("li", "last");
    c.statsEl = el("li", "stats muted");
    c.certEl = el("li", "cert");
    c.certEl.hidden = true;
    c.phasesEl = el("li", "phases muted");
    c.phasesEl.hidden = true;
    c.condEl = el("li", "conds");
    c.condEl.hidden = true;
    c.warnEl = el("li", "degrading-note");
    c.warnEl.hidden = true;
    c.facts = facts;
    c.factEls = [];
    c.labelsEl = el("li", "labels muted");
    c.labelsEl.hidden = true;
    facts.append(c.sinceEl, c.suppressedEl, c.warnEl, c.lastEl, c.condEl, c.statsEl, c.certEl,
      c.phasesEl, c.labelsEl);
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
  // the evidence of an open early warning: what moved, from what to what, since when
  function showWarning(c, w) {
    c.warnEl.hidden = !w;
    if (!w) {
      c.warnEl.textContent = "";
      return;
    }
    const since = parseTime(w.since);
    const parts = [str(w.detail) || clip(str(w.signal), 16) + " off its baseline"];
    if (since !== null) parts.push("since " + hhmmss(since));
    if (isNum(w.score)) parts.push("score " + w.score.toFixed(1));
    c.warnEl.textContent = "degrading: " + parts.join(" \u00b7 ");
    c.warnEl.title = "early warning: signal " + str(w.signal) + ", baseline " + str(w.baseline) +
      ", current " + str(w.current);
  }
  function updateCard(c, t) {
    c.state = Object.prototype.hasOwnProperty.call(STATES, t.state) ? t.state : "UNKNOWN";
    const warning = c.state === "UP" && t.degrading && typeof t.degrading === "object"
      ? t.degrading : null;
    const st = warning ? DEGRADING : STATES[c.state];
    c.el.className = "card st-" + st.cls;
    c.pill.className = "pill " + st.cls;
    c.pill.textContent = st.mark + " " + st.word;
    showWarning(c, warning);
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
    showSuppression(c, t.suppressed_by);
    const last = t.last && typeof t.last === "object" ? t.last : null;
    if (last) {
      const parts = ["last check " + (parseTime(last.ts) !== null ? hhmmss(parseTime(last.ts))
        : "?")];
      // an HTTP status when there is one; otherwise the kind says what was checked
      const outcome = last.ok ? "ok" : "failed";
      const kind = clip(str(last.kind) || str(t.kind) || "http", 16);
      if (isStatus(last.status)) parts.push("HTTP " + last.status);
      if (isNum(last.latency_ms)) parts.push(ms(last.latency_ms));
      parts.push(isStatus(last.status) ? outcome : kind + " " + outcome);
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
    c.kindEl.textContent = clip(str(t.kind) || str(last && last.kind) || "http", 16);
    showHeld(c, str(t.maintenance));
    showFacts(c, last ? kindFacts(last) : []);
    showConditions(c, last && Array.isArray(last.conditions) ? last.conditions : []);
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
    // the target's latest certificate, or the last probe's (any kind: https, tls, wss)
    updateCert(c, obj(t.tls) || obj(last && last.tls));
    showPhases(c, t.phases_24h_ms);
    showLabels(c, t.labels);
    c.avail24 = isNum(t.availability_24h_pct) ? t.availability_24h_pct : null;
    c.p95 = isNum(t.p95_24h_ms) ? t.p95_24h_ms : null;
    if (c.avail24 !== null) c.vals["24h"].textContent = pct(c.avail24);
  }

  // A target DOWN while parents it depends on are DOWN: not paged, and the page says why.
  function showSuppression(c, parents) {
    const names = Array.isArray(parents) ? parents.map(str).filter(Boolean) : [];
    c.suppressedEl.textContent = names.length ? "suppressed by " + names.join(", ") : "";
    c.suppressedEl.hidden = names.length === 0;
  }

  // The certificate of the latest probe that got one: days left until its not_after
  // (counted now, not at the probe), the chain's earlier expiry if one comes first.
  const CERT_WARN_DAYS = 14;  // the default cert_expiry
  function updateCert(c, tls) {
    const until = tls ? parseTime(tls.not_after) : null;
    if (until === null) {
      c.certEl.hidden = true;
      c.certEl.textContent = "";
      return;
    }
    const days = Math.floor((until - now()) / 86400000);
    const earliest = parseTime(tls.earliest_not_after);
    let text = days < 0 ? "certificate expired " + (-days) + " days ago"
      : "certificate: " + days + (days === 1 ? " day" : " days") + " left";
    if (earliest !== null && earliest < until) {
      text += " (chain: " + Math.floor((earliest - now()) / 86400000) + " days)";
    }
    c.certEl.textContent = text;
    c.certEl.className = "cert " + (Math.min(until, earliest === null ? until : earliest) -
      now() < CERT_WARN_DAYS * 86400000 ? "cert-warn" : "muted");
    c.certEl.dataset.daysLeft = String(days);
    c.certEl.title = str(tls.subject) + ", issued by " + str(tls.issuer) + "; expires " +
      str(tls.not_after) + (tls.version ? "; " + str(tls.version) : "");
    c.certEl.hidden = false;
  }

  // --- what the last probe found, by what its kind reports -----------------------------
  // Each fact is read from its own field of `last` when that is an object of the
  // contract's shape; anything else (missing, wrong types, huge) shows less, never breaks.
  const MAX_ANSWERS = 3;
  function icmpFact(o) {
    const sent = count(o.sent), got = count(o.received);
    const loss = isNum(o.loss_pct) ? Math.min(100, Math.max(0, o.loss_pct))
      : sent && got !== null && got <= sent ? (100 * (sent - got)) / sent : null;
    const text = (isNum(o.rtt_avg_ms) ? "ping: avg " + ms(o.rtt_avg_ms) : "ping: no reply") +
      (loss === null ? "" : " \u00b7 loss " + (Math.round(loss * 10) / 10) + "%" +
        (sent !== null && got !== null ? " (" + got + " of " + sent + " replied)" : ""));
    const title = "round trip min / avg / max: " + [o.rtt_min_ms, o.rtt_avg_ms, o.rtt_max_ms]
      .map(ms).join(" / ") + (str(o.addr) ? "; " + clip(o.addr, 64) : "") +
      (str(o.socket) ? " (" + clip(o.socket, 8) + " socket)" : "");
    return { key: "icmp", text, title, warn: loss === null || loss > 0 };
  }
  function dnsFact(o, ok) {
    const answers = Array.isArray(o.answers) ? o.answers.filter((a) => typeof a === "string") : [];
    const rcode = clip(str(o.rcode) || "?", 16);
    const more = answers.length - MAX_ANSWERS;
    const text = "DNS " + clip(str(o.record_type) || "?", 10) + " " + rcode + ": " +
      (answers.length ? answers.slice(0, MAX_ANSWERS).map((a) => clip(a, 60)).join(", ") +
        (more > 0 ? " (+" + more + " more)" : "") : "no answers");
    const title = answers.slice(0, 20).map((a) => clip(a, 200)).join("\n") +
      (answers.length > 20 ? "\n\u2026" : "") + (answers.length ? "\n" : "") +
      "from " + (clip(str(o.server), 64) || "?") + (o.tcp === true ? " over TCP" : "");
    // NXDOMAIN can be what a condition asks for: a warning only on a failed probe
    return { key: "dns", text, title, warn: rcode !== "NOERROR" && !ok };
  }
  function pushFact(o) {
    const lastPing = parseTime(o.last_ping), due = parseTime(o.next_due);
    const code = Number.isInteger(o.exit_code) ? o.exit_code : null;
    const failed = o.last_event === "fail" || (code !== null && code !== 0);
    let text = lastPing === null ? "no ping yet"
      : "last ping " + duration(now() - lastPing) + " ago";
    const how = [];
    if (o.last_event === "fail") how.push("reported a failure");
    if (code !== null) how.push("exit " + code);
    if (isNum(o.run_ms)) how.push("ran " + ms(o.run_ms));
    if (how.length) text += " (" + how.join(", ") + ")";
    const overdue = due !== null && due < now();
    if (due !== null) {
      text += " \u00b7 " + (overdue ? "overdue by " + duration(now() - due)
        : "next due in " + duration(due - now()));
    }
    const title = "last ping: " + (lastPing === null ? "none" : dateTime(lastPing)) +
      "; next due: " + (due === null ? "?" : dateTime(due));
    return { key: "push", text, title, warn: failed || overdue };
  }
  function receivedFact(text) {
    // the first line with something on it: a banner, a greeting, the first message
    const line = text.slice(0, 1024).split(/\r\n|\r|\n/).find((l) => l.trim()) || "";
    return {
      key: "received", text: line ? "received: \u201c" + clip(line, 120) + "\u201d"
        : "received nothing", title: clip(text, 256), warn: false,
    };
  }
  // a failed browser probe's artifacts: "browser-artifacts/<slug>/<file>" -> its API URL
  const ARTIFACT = /^browser-artifacts\/[^/]+\/(\d{8}T\d{6}\.\d{3}Z(?:-\d+)?\.(?:png|log))$/;
  function artifactLinks(name, o) {
    const links = [];
    for (const [key, text] of [["screenshot", "screenshot"], ["console_log", "console log"]]) {
      const m = typeof o[key] === "string" ? ARTIFACT.exec(o[key]) : null;
      if (m && typeof name === "string") {
        links.push({ text, href: "api/v1/targets/" + encodeURIComponent(name) + "/artifacts/" +
          encodeURIComponent(m[1]) });
      }
    }
    return links;
  }
  // with a #token the API wants it as a header, which a plain link cannot send: fetch the
  // file and open what came
  async function openArtifact(event) {
    const t = token();
    if (!t) return;  // a login session's cookie goes with the link itself
    event.preventDefault();
    const win = window.open("", "_blank");
    try {
      const blob = await api(event.currentTarget.getAttribute("href"), true);
      if (win) win.location.assign(URL.createObjectURL(blob));
    } catch (e) {
      if (win) win.close();
    }
  }
  function browserFact(o, name) {
    const failed = count(o.failed_requests), errors = count(o.console_errors);
    const requests = count(o.requests);
    const parts = [isNum(o.load_ms) ? "page: load " + ms(o.load_ms) : "page: not loaded"];
    if (requests !== null) parts.push(requests + (requests === 1 ? " request" : " requests"));
    if (failed !== null) parts.push(failed + " failed");
    if (errors !== null) parts.push(errors + (errors === 1 ? " error" : " errors"));
    const title = "DOMContentLoaded " + ms(o.dom_content_loaded_ms) + " \u00b7 LCP " +
      ms(o.lcp_ms) + (isNum(o.transfer_bytes) ? " \u00b7 " + thousands(o.transfer_bytes) +
        " bytes transferred" : "");
    return {
      key: "browser", text: parts.join(" \u00b7 "), title, warn: !!(failed || errors),
      links: artifactLinks(name, o),
    };
  }
  function kindFacts(last) {
    const facts = [];
    const browser = obj(last.browser);
    if (browser) facts.push(browserFact(browser, last.target));
    const icmp = obj(last.icmp), dns = obj(last.dns), push = obj(last.push);
    if (icmp) facts.push(icmpFact(icmp));
    if (dns) facts.push(dnsFact(dns, last.ok === true));
    if (push) facts.push(pushFact(push));
    if (typeof last.received === "string") facts.push(receivedFact(last.received));
    return facts;
  }
  function showFacts(c, facts) {
    for (const e of c.factEls) e.remove();
    c.factEls = facts.map((f) => {
      const li = el("li", "fact " + (f.warn ? "fact-warn" : "muted"), f.text);
      li.dataset.fact = f.key;
      li.title = f.title;
      for (const link of f.links || []) {
        const a = el("a", "artifact", link.text);
        a.setAttribute("href", link.href);
        a.target = "_blank";
        a.rel = "noopener";
        a.addEventListener("click", openArtifact);
        li.append(" \u00b7 ", a);
      }
      return li;
    });
    for (const li of c.factEls) c.facts.insertBefore(li, c.condEl);
  }
  // conditions: how many passed; the failed ones with the value they saw
  const MAX_FAILED = 5;
  function showConditions(c, list) {
    const conds = list.filter(obj);
    c.condEl.hidden = !conds.length;
    if (!conds.length) { c.condEl.replaceChildren(); return; }
    const failed = conds.filter((x) => x.ok !== true);
    const head = el("span", failed.length ? "fact-warn" : "muted",
      "conditions: " + (conds.length - failed.length) + " of " + conds.length + " ok");
    const items = failed.slice(0, MAX_FAILED).map((x) => el("li", "",
      "\u2715 " + (clip(str(x.condition), 160) || "?") + " \u2014 actual: " +
      (typeof x.actual === "string" ? clip(x.actual, 60) : "missing")));
    if (failed.length > MAX_FAILED) {
      items.push(el("li", "muted", "\u2026 and " + (failed.length - MAX_FAILED) + " more"));
    }
    const ul = el("ul", "failed");
    ul.append(...items);
    c.condEl.replaceChildren(head, ...(items.length ? [ul] : []));
  }

  // where the time goes, over the same 24 hours: "p50 dns 0.4 / connect 1.1 / ttfb 39 ms",
  // only the phases that happened; the p95s in the tooltip
  const PHASES = ["dns", "connect", "tls", "ttfb", "transfer"];
  const num = (x) => (x < 10 ? x.toFixed(1) : String(Math.round(x)));
  function showPhases(c, phases) {
    const seen = PHASES.filter((p) => phases && typeof phases === "object" && phases[p] &&
      isNum(phases[p].p50) && isNum(phases[p].p95));
    c.phasesEl.hidden = !seen.length;
    c.phasesEl.textContent = seen.length
      ? "24 h p50: " + seen.map((p) => p + " " + num(phases[p].p50)).join(" / ") + " ms"
      : "";
    c.phasesEl.title = seen.length
      ? "p95: " + seen.map((p) => p + " " + num(phases[p].p95)).join(" / ") + " ms"
      : "";
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
  function level(p) {
    if (!isNum(p)) return "nodata";
    return p >= OK_FROM ? "ok" : p >= WARN_FROM ? "warn" : "bad";
  }
  const segClass = (s) => (s.n ? level((100 * (s.n - s.failed)) / s.n) : "nodata");
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
      c.spark.appendChild(svgEl("path", { class: "line", d, fill: "none",
        "stroke-width": 1.6, "stroke-linejoin": "round", "stroke-linecap": "round",
        "vector-effect": "non-scaling-stroke" }));
    }
    if (ticks) {
      c.spark.appendChild(svgEl("path", { class: "fails", d: ticks, "stroke-width": 2,
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
    if (gridOn) return out;  // cells show no bars
    for (const node of list.querySelectorAll(".card")) {
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

  // --- labels: the card's line, the label filter and "group by" -----------------------------
  // Both are kept in the page's address, so a reload (or a shared link) shows the same:
  // ?label=team=payments (repeatable: all must match) and ?group_by=team.
  const MAX_LABELS = 32, MAX_LABEL_NAME = 64, MAX_LABEL_VALUE = 200;
  const hasOwn = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
  function labelPairs(texts) {
    const out = [];
    for (const x of Array.isArray(texts) ? texts : []) {
      const i = typeof x === "string" ? x.indexOf("=") : -1;
      if (i > 0) out.push([x.slice(0, i), x.slice(i + 1)]);
    }
    return out;
  }
  const pairText = ([k, v]) => k + "=" + v;
  const address = new URLSearchParams(location.search);
  let labelWanted = labelPairs(address.getAll("label"));
  let groupBy = address.get("group_by") || "";
  let lastTargets = [];
  function showLabels(c, labels) {
    c.labels = Object.create(null);
    const o = obj(labels);
    for (const k of o ? Object.keys(o).slice(0, MAX_LABELS) : []) {
      if (typeof o[k] === "string") {
        c.labels[clip(k, MAX_LABEL_NAME)] = clip(o[k], MAX_LABEL_VALUE);
      }
    }
    c.labelText = Object.entries(c.labels).map(pairText).join(" \u00b7 ");
    c.labelsEl.textContent = c.labelText;
    c.labelsEl.hidden = c.labelText === "";
  }
  const hasWantedLabels = (c) =>
    labelWanted.every(([k, v]) => hasOwn(c.labels, k) && c.labels[k] === v);
  // the heading a card goes under: its `group`, or its value of the label chosen
  function groupOf(c) {
    if (!groupBy) return c.group;
    return hasOwn(c.labels, groupBy) ? groupBy + ": " + c.labels[groupBy] : "";
  }
  function setOptions(select, options, value) {
    const signature = JSON.stringify(options);
    if (select.dataset.options !== signature) {
      select.dataset.options = signature;
      select.replaceChildren(...options.map(([v, text]) => {
        const o = el("option", "", text);
        o.value = v;
        return o;
      }));
    }
    select.value = value;
  }
  // the choices: every name=value and every label name the targets have (and what the
  // address asks for, even if no target has it now)
  function labelControls() {
    const pairs = new Set(), names = new Set();
    for (const c of cards.values()) {
      for (const k of Object.keys(c.labels)) {
        names.add(k);
        pairs.add(pairText([k, c.labels[k]]));
      }
    }
    const current = labelWanted.length ? JSON.stringify(labelWanted.map(pairText)) : "";
    const filters = [["", "all labels"],
      ...[...pairs].sort(byName).map((p) => [JSON.stringify([p]), p])];
    if (current && !filters.some(([v]) => v === current)) {
      filters.push([current, labelWanted.map(pairText).join(" and ")]);
    }
    setOptions(labelBox, filters, current);
    if (groupBy) names.add(groupBy);
    setOptions(groupByBox, [["", "group by group"],
      ...[...names].sort(byName).map((k) => [k, "group by " + k])], groupBy);
    labelBox.hidden = groupByBox.hidden = names.size === 0 && !labelWanted.length;
  }
  function keepInAddress() {
    const enc = (s) => encodeURIComponent(s).replace(/%3D/gi, "=");
    const parts = [...new URLSearchParams(location.search)]
      .filter(([k]) => k !== "label" && k !== "group_by")
      .map(([k, v]) => enc(k) + "=" + enc(v));
    for (const p of labelWanted) parts.push("label=" + enc(pairText(p)));
    if (groupBy) parts.push("group_by=" + enc(groupBy));
    history.replaceState(history.state, "",
      location.pathname + (parts.length ? "?" + parts.join("&") : "") + location.hash);
  }

  // --- the list, the summary and the incidents -----------------------------------------
  // Targets are listed by group (a heading each, by name; those without a group last,
  // with no heading when no target has one), and in a group by state, then name.
  const MAX_GROUP = 100;
  const groups = new Map();  // group name ("" for none) -> its section
  function groupBox(name) {
    let g = groups.get(name);
    if (!g) {
      g = { name, el: el("section", "group"), count: el("span", "group-count muted") };
      g.el.dataset.group = name;
      g.title = el("h2", "group-title");
      g.nameEl = el("span", "group-name");
      g.title.append(g.nameEl, g.count);
      g.box = el("div", "group-cards");
      g.el.append(g.title, g.box);
      groups.set(name, g);
    }
    return g;
  }
  const byName = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  const sameNodes = (nodes, want) =>
    nodes.length === want.length && want.every((n, i) => nodes[i] === n);
  function renderTargets(data) {
    if (!Array.isArray(data)) throw new ApiError("http", 0, "the target list is not a list");
    lastTargets = data;
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
      gridCell(c);
      c.group = typeof t.group === "string" ? clip(t.group.trim(), MAX_GROUP) : "";
      c.kind = c.kindEl.textContent;
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
      ORDER[a.state] - ORDER[b.state] || byName(a.name, b.name));
    const members = new Map();
    for (const c of order) {
      const key = groupOf(c);
      if (!members.has(key)) members.set(key, []);
      members.get(key).push(c);
    }
    const names = [...members.keys()].sort((a, b) => (a === "") - (b === "") || byName(a, b));
    const headed = names.some((n) => n !== "");
    for (const [name, g] of groups) if (!members.has(name)) { g.el.remove(); groups.delete(name); }
    const sections = names.map((name) => {
      const g = groupBox(name), cs = members.get(name);
      g.nameEl.textContent = name || (groupBy ? "No " + groupBy + " label" : "Other targets");
      if (!sameNodes(g.box.children, cs.map((c) => c.el))) g.box.replaceChildren(...cs.map((c) => c.el));
      const down = cs.filter((c) => c.state === "DOWN").length;
      g.count.textContent = " \u00b7 " + cs.length + (cs.length === 1 ? " target" : " targets") +
        (down ? ", " + down + " down" : "");
      g.title.hidden = !headed;
      return g.el;
    });
    if (!sameNodes(list.children, sections)) list.replaceChildren(...sections);
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
    labelControls();
    applyFilter();
  }
  function applyFilter() {
    const q = filterBox.value.trim().toLowerCase();
    let n = 0;
    for (const c of cards.values()) {
      const hide = (q !== "" && ![c.name, c.url, c.group, c.kind, c.labelText].some((s) =>
        (s || "").toLowerCase().includes(q))) || !hasWantedLabels(c);
      c.el.hidden = hide;
      if (!hide) n++;
    }
    for (const g of groups.values()) {
      g.el.hidden = [...g.box.children].every((node) => node.hidden);
    }
    shown.textContent = q || labelWanted.length ? "showing " + n + " of " + cards.size : "";
    pump();
  }
  function incidentItem(i, open) {
    const li = el("li");
    const start = parseTime(i.start), end = parseTime(i.end);
    li.append(el("strong", "", str(i.target)));
    let text;
    const lastSeen = parseTime(i.last_seen);
    if (open && i.unobserved === true) {
      // not probed any more: the outage stopped growing at its last probe
      text = " down since " + (start !== null ? dateTime(start) : "?") +
        " \u00b7 no data since " + (lastSeen !== null ? dateTime(lastSeen) : "?");
    } else if (open) {
      text = " down since " + (start !== null ? dateTime(start) + " (for " +
        duration(now() - start) + ")" : "?");
    } else {
      text = ": " + (start !== null ? dateTime(start) : "?") + " \u2013 " +
        (end !== null ? dateTime(end) : "?") +
        (isNum(i.duration_s) ? " (" + duration(i.duration_s * 1000) + ")" : "");
    }
    if (str(i.error)) text += " \u00b7 " + str(i.error);
    if (i.end_reason === "removed") text += " \u00b7 removed (no longer monitored)";
    li.append(document.createTextNode(text));
    return li;
  }
  // Open incidents: the groups the API found (targets DOWN together with a shared
  // cause, as storm grouping groups their downs) first, each one collapsed line with its
  // count; then at most OPEN_SHOWN others, the rest behind one "N more" line, so a mass
  // outage never pushes the targets off the first screen.
  // Each collapsed line has a key (its group's cause, or "more"): a refresh re-renders
  // the list, and what the reader opened stays open, the line they focused focused.
  const OPEN_SHOWN = 5;
  function collapsed(key, summaryText, items, cls) {
    const li = el("li", cls);
    li.dataset.key = key;
    const d = el("details");
    const ul = el("ul");
    ul.replaceChildren(...items);
    d.append(el("summary", "", summaryText), ul);
    li.append(d);
    return li;
  }
  function keepOpen(render) {
    const opened = new Set([...openList.querySelectorAll("li[data-key] > details[open]")]
      .map((d) => d.parentNode.dataset.key));
    const active = document.activeElement;
    const focused = active && active.tagName === "SUMMARY" && openList.contains(active)
      ? active.closest("li[data-key]").dataset.key : null;
    render();
    for (const li of openList.querySelectorAll("li[data-key]")) {
      if (opened.has(li.dataset.key)) li.firstChild.open = true;
      if (li.dataset.key === focused) li.querySelector("summary").focus();
    }
  }
  function groupedIncidents(open, groupsData) {
    const byTarget = new Map(open.map((i) => [str(i.target), i]));
    const inGroup = new Set();
    const out = [];
    for (const g of Array.isArray(groupsData) ? groupsData : []) {
      if (!g || !Array.isArray(g.members)) continue;
      const members = g.members.map(str).filter((m) => byTarget.has(m) && !inGroup.has(m));
      if (members.length < 2) continue;
      members.forEach((m) => inGroup.add(m));
      const li = collapsed("group " + str(g.cause),
        str(g.detail) || members.length + " targets down",
        members.map((m) => incidentItem(byTarget.get(m), true)), "inc-group");
      li.dataset.count = String(members.length);
      out.push(li);
    }
    const alone = open.filter((i) => !inGroup.has(str(i.target)));
    out.push(...alone.slice(0, OPEN_SHOWN).map((i) => incidentItem(i, true)));
    const rest = alone.slice(OPEN_SHOWN, 100 + OPEN_SHOWN);
    if (rest.length) {
      const more = alone.length - OPEN_SHOWN;
      out.push(collapsed("more", more + " more open incident" + (more === 1 ? "" : "s"),
        rest.map((i) => incidentItem(i, true)), "inc-more"));
    }
    return out;
  }
  function renderIncidents(data) {
    const all = data && Array.isArray(data.incidents) ? data.incidents.filter(
      (i) => i && typeof i === "object") : [];
    const open = all.filter((i) => i.end === null || i.end === undefined)
      .sort((a, b) => (parseTime(b.start) || 0) - (parseTime(a.start) || 0));
    const done = all.filter((i) => !(i.end === null || i.end === undefined))
      .sort((a, b) => (parseTime(b.end) || 0) - (parseTime(a.end) || 0));
    keepOpen(() => openList.replaceChildren(...(open.length
      ? groupedIncidents(open, data && data.groups)
      : [el("li", "muted", "No open incidents.")])));
    resolvedList.replaceChildren(...done.slice(0, 20).map((i) => incidentItem(i, false)));
    resolvedCount.textContent = String(done.length);
    resolvedBox.hidden = done.length === 0;
    incNote.hidden = true;
    $("incidents").hidden = false;
  }

  // --- maintenance: windows holding now or soon, silences, and held targets' badges -----
  // (GET api/v1/maintenance; a server without it, or an error, hides the panel)
  function showHeld(c, holder) {
    const silence = holder.startsWith("silence:");
    c.heldEl.hidden = !holder;
    c.heldEl.textContent = holder ? (silence ? "silenced" : "maintenance") : "";
    c.heldEl.title = holder ? "alerts held by " + clip(holder, 80) : "";
  }
  function windowItem(w) {
    const start = parseTime(w.start), end = parseTime(w.end);
    const names = Array.isArray(w.targets) ? w.targets.filter((n) => typeof n === "string") : [];
    const when = w.active === true
      ? "now, until " + (end !== null ? dateTime(end) : "?")
      : "from " + (start !== null ? dateTime(start) : "?") + " to " +
        (end !== null ? dateTime(end) : "?");
    const li = el("li", w.active === true ? "active" : "upcoming",
      "Maintenance " + clip(str(w.name), 64) + ": " + when + " \u00b7 " +
      (names.length === 1 ? "1 target" : names.length + " targets"));
    li.title = names.slice(0, 50).join(", ");
    return li;
  }
  function silenceItem(s) {
    const until = parseTime(s.until);
    const names = Array.isArray(s.targets) ? s.targets.filter((n) => typeof n === "string") : [];
    const labels = obj(s.match) ? Object.keys(s.match).map((k) => k + "=" + str(s.match[k])) : [];
    const what = names.concat(labels.length ? ["{" + labels.join(", ") + "}"] : []).join(" ");
    const note = [str(s.author), str(s.comment)].filter(Boolean).join(": ");
    return el("li", "silence", "Silenced " + clip(what, 120) + " until " +
      (until !== null ? dateTime(until) : "?") + (note ? " (" + clip(note, 120) + ")" : ""));
  }
  function renderMaintenance(data) {
    const box = $("maintenance");
    const windows = data && Array.isArray(data.windows) ? data.windows.filter(obj) : [];
    const silences = data && Array.isArray(data.silences) ?
      data.silences.filter((s) => obj(s) && s.active === true) : [];
    $("maintenance-list").replaceChildren(...windows.map(windowItem), ...silences.map(silenceItem));
    box.hidden = windows.length + silences.length === 0;
  }

  // --- the grid view: one small coloured cell per target, for fleets of hundreds ---------
  // A toggle (remembered in localStorage). Each cell is its card, restyled: focusable,
  // named by aria-label and a tooltip on hover and focus; Enter or a click opens that
  // card in the list. No history is fetched while the grid is shown.
  const gridButton = $("grid-toggle");
  let gridOn = false;
  function gridCell(c) {
    if (gridOn) {
      const label = c.name + ": " + STATES[c.state].word.toLowerCase();
      c.el.tabIndex = 0;
      c.el.setAttribute("role", "button");
      c.el.setAttribute("aria-label", label);
      c.el.dataset.tip = label;
    } else {
      c.el.removeAttribute("tabindex");
      c.el.removeAttribute("role");
      c.el.removeAttribute("aria-label");
      delete c.el.dataset.tip;
    }
  }
  function setGrid(on) {
    gridOn = on;
    list.classList.toggle("grid", on);
    gridButton.setAttribute("aria-pressed", on ? "true" : "false");
    try { localStorage.setItem("trio-monitor-grid", on ? "1" : "0"); } catch (e) { /* private mode */ }
    for (const c of cards.values()) gridCell(c);
    pump();
  }
  function openCell(node) {
    if (!gridOn || !cardOf.get(node)) return;
    setGrid(false);
    node.tabIndex = -1;
    node.focus();
    node.scrollIntoView({ block: "start" });
  }
  gridButton.addEventListener("click", () => setGrid(!gridOn));
  list.addEventListener("click", (e) => {
    const node = e.target.closest && e.target.closest(".card");
    if (node) openCell(node);
  });
  list.addEventListener("keydown", (e) => {
    if ((e.key === "Enter" || e.key === " ") && e.target.classList.contains("card")) {
      e.preventDefault();
      openCell(e.target);
    }
  });
  // --- the cluster panel (cluster mode only: /api/v1/cluster is null otherwise) ---------
  function renderCluster(data) {
    const box = $("cluster");
    if (!data || typeof data !== "object" || !Array.isArray(data.members)) {
      box.hidden = true;
      return;
    }
    const redis = data.redis || {};
    const locs = Object.entries(data.locations || {}).map(([l, n]) => l + " (" + n + ")");
    const lag = data.lag || {};
    // redis.error names its kind ("unreachable: ...", "error reply: WRONGTYPE ...")
    let line = "Redis " + str(redis.url) + ": " +
      (redis.error ? str(redis.error) : redis.ok ? "ok" : "unreachable") + " \u00b7 this node " +
      str(data.node) + ", " + (Array.isArray(data.owned) ? data.owned.length : 0) +
      " targets \u00b7 locations: " + (locs.join(", ") || "none");
    if (typeof lag.fold_s === "number") line += " \u00b7 history " + lag.fold_s + " s behind";
    if (typeof lag.queue === "number" && lag.queue) line += " \u00b7 " + lag.queue + " results queued";
    $("cluster-line").textContent = line;
    $("cluster-members").replaceChildren(...data.members.map((m) => {
      const lease = typeof m.lease_left_s === "number" ? m.lease_left_s.toFixed(1) + " s" : "?";
      const li = el("li", m.config_matches ? "" : "down",
        str(m.member) + " \u00b7 " + m.targets + " targets \u00b7 lease " + lease +
        (m.config_matches ? "" : " \u00b7 targets or alerting config differ"));
      li.dataset.member = str(m.member);
      return li;
    }));
    box.hidden = false;
  }

  // --- refreshing -----------------------------------------------------------------------
  async function refresh() {
    if (running) { again = true; return; }
    running = true;
    again = false;
    clearTimeout(timer);
    body.dataset.refreshing = "1";
    try {
      const [targets, incidents, cluster, maintenance] = await Promise.allSettled([
        api("api/v1/targets"), api("api/v1/incidents?since=7d"), api("api/v1/cluster"),
        api("api/v1/maintenance"),
      ]);
      if (targets.status === "rejected") throw targets.reason;
      renderTargets(targets.value);
      renderCluster(cluster.status === "fulfilled" ? cluster.value : null);
      renderMaintenance(maintenance.status === "fulfilled" ? maintenance.value : null);
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
  labelBox.addEventListener("change", () => {
    labelWanted = labelBox.value ? labelPairs(JSON.parse(labelBox.value)) : [];
    keepInAddress();
    applyFilter();
  });
  groupByBox.addEventListener("change", () => {
    groupBy = groupByBox.value;
    keepInAddress();
    renderTargets(lastTargets);
  });
  filterBox.addEventListener("input", applyFilter);
  try { if (localStorage.getItem("trio-monitor-grid") === "1") setGrid(true); } catch (e) { /* none */ }
  refresh();
})();
