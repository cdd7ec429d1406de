// The local page: polls /status and /points and draws them. Read-only.
// Every value shown comes from devices or the hub, so text goes in with
// textContent only, never as HTML.
"use strict";

const POLL_MS = 2000;
const WINDOW_MS = 3600 * 1000;
const series = new Map(); // "adapter/device/point" -> {view, samples: [[ms, v]]}
let messages = []; // devices that send ready messages, with their newest one
let resolutionMs = 10000;
let since = 0;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}

function age(seconds) {
  if (seconds == null) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

function ago(now, iso) {
  return iso ? age((now - Date.parse(iso)) / 1000) + " ago" : "never";
}

function bytes(n) {
  if (n == null) return "?";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(6).replace(/\.?0+$/, "");
  return String(v);
}

function fact(dl, name, value) {
  dl.append(el("div", {}, el("dt", { text: name }), el("dd", { text: String(value) })));
}

function renderReady(st) {
  const badge = document.getElementById("ready");
  const ok = st.ready.ready;
  badge.textContent = ok ? "ready" : "not ready";
  badge.className = "badge " + (ok ? "ok" : "bad");
  const r = document.getElementById("reasons");
  r.hidden = ok;
  r.textContent = (st.ready.reasons || []).map(x => (x.subject ? x.subject + ": " : "") + x.detail).join("\n");
  document.getElementById("updated").textContent =
    "up " + age(st.uptime_seconds) + " · updated " + new Date(st.time).toLocaleTimeString();
}

function renderIdentities(st, now) {
  const body = document.querySelector("#identities tbody");
  body.replaceChildren(...st.identities.map(id => {
    const hub = el("td", {}, el("span", { class: "dot " + (id.connected ? "up" : "down") }), id.connected ? "connected" : "disconnected");
    let err = "";
    if (id.last_error) {
      err = id.last_error.message + " (" + ago(now, id.last_error.time) + (id.last_error.cleared ? ", cleared)" : ")");
    }
    return el("tr", { "data-identity": id.id },
      el("td", { text: id.id }), hub,
      el("td", { text: String(id.queued_messages) }),
      el("td", { text: age(id.oldest_queued_age_seconds) }),
      el("td", { text: String(id.in_flight) }),
      el("td", { text: ago(now, id.last_ack) }),
      el("td", { text: String(id.messages_sent) }),
      el("td", { text: String(id.messages_acknowledged) }),
      el("td", { text: String(id.reconnects) }),
      el("td", { class: "err", text: err }));
  }));
}

function renderBuffer(st) {
  const b = st.buffer;
  const dl = document.getElementById("buffer");
  dl.replaceChildren();
  fact(dl, "records", b.records);
  fact(dl, "stored", bytes(b.stored_bytes) + " of " + bytes(b.max_bytes));
  fact(dl, "on disk", bytes(b.disk_usage_bytes));
  fact(dl, "disk free", bytes(b.disk_free_bytes) + (b.disk_full ? " (FULL: appends refused)" : ""));
  fact(dl, "messages per commit", b.append_commits ? (b.records_appended / b.append_commits).toFixed(1) : "–");
  const drops = Object.entries(b.drops || {}).filter(([, n]) => n > 0).map(([k, n]) => k + " " + n).join(", ");
  fact(dl, "dropped", drops || "none");
}

function adapterFacts(a, dl) {
  if (a.lanmqtt) {
    const s = a.lanmqtt;
    fact(dl, "clients", s.clients);
    fact(dl, "publishes", s.publishes_stored + " stored of " + s.publishes_received);
    fact(dl, "auth failures", s.auth_failures);
    fact(dl, "ACL denials", s.acl_denials);
  } else if (a.modbus) {
    const s = a.modbus;
    fact(dl, "bus", s.bus + (s.connected ? " (connected)" : " (not connected)"));
    fact(dl, "connects", s.connects);
    fact(dl, "connect errors", s.connect_errors);
  } else if (a.opcua) {
    const s = a.opcua;
    fact(dl, "server", s.endpoint + (s.connected ? " (connected)" : " (not connected)"));
    fact(dl, "security", s.security);
    fact(dl, "connects", s.connects);
    fact(dl, "connect errors", s.connect_errors);
    if (s.untrusted_certificate) fact(dl, "untrusted certificate", s.untrusted_certificate);
    if (s.last_error && !s.last_error.cleared) fact(dl, "error", s.last_error.message);
  } else if (a.serial) {
    const s = a.serial;
    fact(dl, "port", s.open ? "open" : "closed");
    fact(dl, "lines", s.lines);
    fact(dl, "garbage", s.garbage_lines);
  } else if (a.simulator) {
    fact(dl, "readings", a.simulator.readings);
  }
}

// devicesOf lists an adapter's devices: Modbus and OPC UA know their own
// (with their state: an OPC UA device is up while the session is); the
// others' come from the points seen.
function devicesOf(a) {
  const out = new Map();
  if (a.modbus) {
    for (const d of a.modbus.devices) out.set(d.name, { state: d.state, detail: d });
  }
  if (a.opcua) {
    const u = a.opcua;
    const state = u.connected ? "up" : u.connect_errors + u.disconnects > 0 ? "disconnected" : "unknown";
    for (const d of u.devices) out.set(d.name, { state, detail: d });
  }
  for (const s of series.values()) {
    if (s.view.adapter === a.name && !out.has(s.view.device)) out.set(s.view.device, { state: null });
  }
  for (const m of messages) {
    if (m.adapter === a.name && !out.has(m.device)) out.set(m.device, { state: null });
  }
  return out;
}

// plot draws samples over the time since the first one (at most the
// window), scaled to their range.
function plot(samples) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 300 48");
  svg.setAttribute("preserveAspectRatio", "none");
  const line = document.createElementNS(ns, "polyline");
  let lo = Infinity, hi = -Infinity;
  for (const [, v] of samples) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const now = Date.now();
  const start = Math.max(now - WINDOW_MS, Math.min(samples[0][0], now - 10 * resolutionMs));
  const width = Math.max(1, now - start);
  line.setAttribute("points", samples.map(([t, v]) => {
    const x = 300 * Math.min(1, Math.max(0, (t - start) / width));
    const y = hi > lo ? 44 - 40 * (v - lo) / (hi - lo) : 24;
    return x.toFixed(1) + "," + y.toFixed(1);
  }).join(" "));
  svg.append(line);
  return { svg, lo, hi, start };
}

function renderPoint(s) {
  const v = s.view;
  const row = el("div", { class: "point", "data-point": v.adapter + "/" + v.device + "/" + v.point, "data-samples": String(s.samples.length) },
    el("span", { class: "name", text: v.point }),
    el("span", { class: "value", text: fmt(v.value) + (v.unit ? " " + v.unit : "") }));
  if (s.samples.length > 0) {
    const p = plot(s.samples);
    const from = Date.now() - p.start >= WINDOW_MS - resolutionMs ? "last hour" : "since " + new Date(p.start).toLocaleTimeString();
    row.append(p.svg, el("span", { class: "range", text: from + ": " + fmt(p.lo) + " … " + fmt(p.hi) }));
  }
  return row;
}

function renderAdapters(st, now) {
  const box = document.getElementById("adapters");
  box.replaceChildren(...st.adapters.map(a => {
    const dl = el("dl", { class: "facts" });
    adapterFacts(a, dl);
    const card = el("div", { class: "card", "data-adapter": a.name }, el("h3", { text: a.name + " · " + a.kind }), dl);
    for (const [name, d] of devicesOf(a)) {
      const head = el("div", {}, name);
      if (d.state) {
        head.prepend(el("span", { class: "dot " + (d.state === "up" ? "up" : d.state === "unknown" ? "unknown" : "down"), title: d.state }));
        head.append(el("span", { class: "muted", text: " " + d.state }));
        if (d.state !== "up" && d.detail.last_error) head.append(el("div", { class: "muted", text: d.detail.last_error.message + " (" + ago(now, d.detail.last_error.time) + ")" }));
      }
      const dev = el("div", { class: "device", "data-device": a.name + "/" + name }, head);
      for (const s of series.values()) {
        if (s.view.adapter === a.name && s.view.device === name) dev.append(renderPoint(s));
      }
      for (const m of messages) {
        if (m.adapter !== a.name || m.device !== name) continue;
        dev.append(el("div", { class: "muted", text: m.count + (m.count === 1 ? " message" : " messages") + ", newest " + ago(now, m.time) + ", " + bytes(m.bytes) }));
        if (m.preview) dev.append(el("pre", { class: "preview", text: m.preview + (m.bytes > m.preview.length ? " …" : "") }));
      }
      card.append(dev);
    }
    return card;
  }));
}

function renderCommands(st) {
  const body = document.querySelector("#commands tbody");
  body.replaceChildren(...st.commands.recent.map(c => el("tr", {},
    el("td", { text: new Date(c.time).toLocaleTimeString() }),
    el("td", { text: c.identity }),
    el("td", { text: c.kind }),
    el("td", { text: c.name || "" }),
    el("td", { text: String(c.status) }),
    el("td", { text: c.seconds.toFixed(3) }))));
}

function mergePoints(pv) {
  resolutionMs = pv.resolution_seconds * 1000;
  messages = pv.messages || [];
  document.getElementById("resolution").textContent = String(pv.resolution_seconds);
  const cut = Date.now() - WINDOW_MS;
  for (const v of pv.points) {
    const key = v.adapter + "/" + v.device + "/" + v.point;
    let s = series.get(key);
    if (!s) { s = { view: v, samples: [] }; series.set(key, s); }
    s.view = v;
    for (const x of v.samples) {
      const last = s.samples[s.samples.length - 1];
      if (last && Math.floor(last[0] / resolutionMs) === Math.floor(x[0] / resolutionMs)) s.samples[s.samples.length - 1] = x;
      else if (!last || x[0] > last[0]) s.samples.push(x);
      since = Math.max(since, x[0] - 1);
    }
    while (s.samples.length && s.samples[0][0] < cut) s.samples.shift();
  }
}

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok && r.status !== 503) throw new Error(url + ": " + r.status);
  return r.json();
}

async function tick() {
  const err = document.getElementById("error");
  try {
    const [st, pv] = await Promise.all([getJSON("/status"), getJSON("/points?since=" + since)]);
    mergePoints(pv);
    const now = Date.parse(st.time);
    renderReady(st);
    renderIdentities(st, now);
    renderBuffer(st);
    renderAdapters(st, now);
    renderCommands(st);
    err.hidden = true;
  } catch (e) {
    err.hidden = false;
    err.textContent = "gateway not answering: " + e.message;
  }
  setTimeout(tick, POLL_MS);
}

tick();
