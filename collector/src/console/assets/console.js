// Vigil console: live desk (server-sent events), countdowns, sound for new danger,
// keyboard shortcuts, theme, copy buttons. No framework, nothing fetched from elsewhere.
"use strict";
(function () {
  const $ = (s, r) => (r || document).querySelector(s);
  const $$ = (s, r) => Array.from((r || document).querySelectorAll(s));
  const store = window.localStorage;

  // Theme: light, dark, or the system's.
  const root = document.documentElement;
  if (store.getItem("vigil.theme")) root.dataset.theme = store.getItem("vigil.theme");
  function toggleTheme() {
    const dark = root.dataset.theme === "dark" ||
      (!root.dataset.theme && matchMedia("(prefers-color-scheme: dark)").matches);
    root.dataset.theme = dark ? "light" : "dark";
    store.setItem("vigil.theme", root.dataset.theme);
  }

  function span(secs) {
    const a = Math.abs(secs), p = (n) => String(n).padStart(2, "0");
    const t = a >= 86400 ? `${Math.floor(a / 86400)}d ${p(Math.floor(a % 86400 / 3600))}h`
      : a >= 3600 ? `${Math.floor(a / 3600)}h ${p(Math.floor(a % 3600 / 60))}m`
      : `${Math.floor(a / 60)}m ${p(a % 60)}s`;
    return secs >= 0 ? `in ${t}` : `${t} ago`;
  }
  function tick() {
    const now = Date.now();
    for (const el of $$(".countdown[data-until]")) {
      const secs = Math.round((Date.parse(el.dataset.until) - now) / 1000);
      el.textContent = span(secs);
      el.classList.toggle("late", secs < 0);
      el.classList.toggle("soon", secs >= 0 && secs < 300);
    }
  }

  // Sound for a new danger incident; muted with m, remembered.
  let muted = store.getItem("vigil.muted") === "1";
  function showSound() {
    const b = $("#sound");
    if (b) { b.textContent = muted ? "Sound off" : "Sound on"; b.setAttribute("aria-pressed", String(!muted)); }
  }
  function toggleSound() { muted = !muted; store.setItem("vigil.muted", muted ? "1" : "0"); showSound(); }
  let audio;
  function beep() {
    window.vigilBeeps = (window.vigilBeeps || 0) + 1;
    if (muted) return;
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      for (const [at, f] of [[0, 880], [0.25, 660], [0.5, 880]]) {
        const o = audio.createOscillator(), g = audio.createGain();
        o.frequency.value = f; g.gain.value = 0.2;
        o.connect(g); g.connect(audio.destination);
        o.start(audio.currentTime + at); o.stop(audio.currentTime + at + 0.2);
      }
    } catch (e) { /* no audio device: the row still flashes */ }
  }

  // The live desk: the server says when something changed; the rows are fetched again.
  function liveDesk() {
    const body = $("#queue");
    if (!body || !window.EventSource) return;
    const seen = new Set($$("tr[data-id]", body).map((r) => r.dataset.id));
    let first = true;
    const es = new EventSource("/desk/events");
    es.addEventListener("open", () => $("#live") && $("#live").classList.add("on"));
    es.addEventListener("error", () => $("#live") && $("#live").classList.remove("on"));
    es.addEventListener("changed", async () => {
      if (first) { first = false; return; }
      const r = await fetch(body.dataset.src, { credentials: "same-origin" });
      if (r.redirected && new URL(r.url).pathname === "/login") { location.href = r.url; return; }
      if (!r.ok) return;
      const checked = new Set($$("input[name=id]:checked", body).map((c) => c.value));
      const cursor = $("tr.cursor", body);
      body.innerHTML = await r.text();
      let danger = false;
      for (const row of $$("tr[data-id]", body)) {
        if (checked.has(row.dataset.id)) $("input[name=id]", row).checked = true;
        if (cursor && cursor.dataset.id === row.dataset.id) row.classList.add("cursor");
        if (!seen.has(row.dataset.id)) {
          row.classList.add("fresh");
          if (row.dataset.danger === "1" && row.dataset.status === "open") danger = true;
          seen.add(row.dataset.id);
        }
      }
      tick();
      if (danger) beep();
    });
  }

  // Keyboard: a shortcut for each frequent action (? lists them).
  let prefix = false;
  function rows() { return $$("#queue tr[data-id]"); }
  function move(d) {
    const all = rows(); if (!all.length) return;
    const i = all.findIndex((r) => r.classList.contains("cursor"));
    const next = all[Math.max(0, Math.min(all.length - 1, i + d))];
    all.forEach((r) => r.classList.remove("cursor"));
    next.classList.add("cursor"); next.scrollIntoView({ block: "nearest" });
  }
  const go = { d: "/desk", h: "/hunt", t: "/tasks", s: "/shift", r: "/rules", u: "/uptime", a: "/agents" };
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) {
      if (e.key === "Escape") t.blur();
      return;
    }
    if (prefix) { prefix = false; if (go[e.key]) { location.href = go[e.key]; e.preventDefault(); } return; }
    const cur = $("#queue tr.cursor");
    switch (e.key) {
      case "g": prefix = true; break;
      case "j": move(1); break;
      case "k": move(-1); break;
      case "x": if (cur) { const c = $("input[name=id]", cur); c.checked = !c.checked; } break;
      case "o": case "Enter": if (cur) location.href = "/incidents/" + cur.dataset.id; else return; break;
      case "A": if ($("#ack-selected")) $("#ack-selected").click(); else if ($("#ack")) $("#ack").click(); break;
      case "c": if ($("#comment")) $("#comment").focus(); break;
      case "n": location.href = "/incidents/new"; break;
      case "/": { const q = $("#q"); if (q) q.focus(); else location.href = "/hunt"; } break;
      case "m": toggleSound(); break;
      case "t": toggleTheme(); break;
      case "?": { const d = $("#keys"); if (d && d.showModal) d.showModal(); } break;
      default: return;
    }
    e.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", () => {
    showSound();
    tick(); setInterval(tick, 1000);
    liveDesk();
    const all = $("#all");
    if (all) all.addEventListener("change", () => rows().forEach((r) => { $("input[name=id]", r).checked = all.checked; }));
    if ($("#sound")) $("#sound").addEventListener("click", toggleSound);
    if ($("#theme")) $("#theme").addEventListener("click", toggleTheme);
    for (const b of $$("button.copy")) b.addEventListener("click", async () => {
      try { await navigator.clipboard.writeText(b.dataset.copy); b.textContent = "Copied"; }
      catch (e) { window.prompt("Copy:", b.dataset.copy); }
    });
    // An exact range replaces the relative one.
    const abs = $("details.absolute");
    if (abs) abs.addEventListener("toggle", () => {
      $("#from-abs").disabled = !abs.open; $("#range").disabled = abs.open;
    });
  });
})();
