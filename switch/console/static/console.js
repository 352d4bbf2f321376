// Switchyard console: the only script of the console (served from the binary;
// the Content-Security-Policy allows no other). The pages work without it; it
// keeps the dashboard live over server-sent events and refreshes a page that
// shows a job in progress. Every text it writes goes through textContent, never
// innerHTML, so data from the switch can never become markup.
"use strict";

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
}

function rows(tbody, items, fn) {
  const next = document.createElement("tbody");
  for (const it of items || []) {
    const tr = document.createElement("tr");
    fn(tr, it);
    next.appendChild(tr);
  }
  tbody.replaceWith(next);
}

function set(id, text) {
  const el = document.getElementById(id);
  if (el) el.textContent = text;
}

function live() {
  const root = document.getElementById("live");
  if (!root || !window.EventSource) return;
  const es = new EventSource("/console/events");
  es.addEventListener("summary", (ev) => {
    const s = JSON.parse(ev.data);
    set("auth-per-sec", s.auth_per_sec.toFixed(1));
    set("approval-rate", (100 * s.approval_rate).toFixed(1) + "%");
    set("total", s.total.toFixed(0));
    set("latency", s.p50_ms.toFixed(1) + " / " + s.p99_ms.toFixed(1) + " ms");
    set("saf", s.saf_backlog.toFixed(0));
    set("updated", s.time);
    const rc = document.querySelector("#rc tbody");
    if (rc) rows(rc, s.response_codes, (tr, c) => { cell(tr, c.key); cell(tr, c.n.toFixed(0)); });
    const br = document.querySelector("#breakers tbody");
    if (br) rows(br, s.breakers, (tr, b) => { cell(tr, b.issuer); cell(tr, b.state, "st-" + b.state); });
    const inc = document.querySelector("#dash-incidents tbody");
    if (inc) rows(inc, s.incidents, (tr, i) => { cell(tr, i.id); cell(tr, i.time); cell(tr, i.reason); cell(tr, i.terminal); cell(tr, i.merchant); });
    const dec = document.getElementById("declines");
    if (dec) {
      const tables = dec.querySelectorAll("table tbody");
      (s.declines || []).forEach((g, i) => {
        if (tables[i]) rows(tables[i], g.top, (tr, c) => { cell(tr, c.key); cell(tr, c.n.toFixed(0)); });
      });
    }
    const w = document.getElementById("warnings");
    if (w) {
      w.replaceChildren();
      for (const x of s.warnings || []) {
        const p = document.createElement("p");
        p.className = "warn";
        p.textContent = "⚠ " + x.key + ": " + x.last_hour.toFixed(0) + " / h (" + x.baseline.toFixed(1) + " / h)";
        w.appendChild(p);
      }
    }
    root.dataset.live = "1";
  });
}

function refresh() {
  const el = document.querySelector("[data-refresh]");
  if (el) setTimeout(() => location.reload(), 1000 * Number(el.dataset.refresh || 2));
}

function markNav() {
  const here = location.pathname;
  for (const a of document.querySelectorAll("#nav a")) {
    const p = a.getAttribute("href");
    if (p === here || (p !== "/console/" && here.startsWith(p + "/"))) a.classList.add("here");
  }
}

document.addEventListener("DOMContentLoaded", () => { live(); refresh(); markNav(); });
