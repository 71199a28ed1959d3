// stockade dashboard: buttons and forms that call the JSON API, and live alerts (server-sent
// events). Plain JavaScript, no framework, no build step.
"use strict";

const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

async function post(url, body) {
  const r = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify(body || {}),
  });
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) throw new Error((data && data.detail && (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail))) || r.statusText);
  return data;
}

function toast(text, kind) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const el = document.createElement("div");
  el.className = "toast " + (kind || "");
  el.textContent = text;
  box.appendChild(el);
  while (box.children.length > 4) box.firstElementChild.remove();
  setTimeout(() => el.remove(), 6000);
}

function formBody(form) {
  const body = {};
  const collect = form.dataset.collect;
  if (collect) body[collect] = [];
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === "checkbox") {
      if (el.checked && collect === el.name) body[collect].push(el.value);
    } else {
      body[el.name] = el.value;
    }
  }
  return body;
}

async function act(url, body, done) {
  try {
    await post(url, body);
    if (done === "reload") location.reload();
  } catch (e) {
    toast(e.message, "error");
  }
}

function rowFor(a) {
  const tr = document.createElement("tr");
  tr.className = "sev-" + a.severity + " fresh";
  tr.dataset.id = a.id;
  const cells = [
    ["Time", new Date(a.time * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC"],
    ["Severity", null],
    ["Part", a.part],
    ["What", null],
  ];
  for (const [label, text] of cells) {
    const td = document.createElement("td");
    td.dataset.label = label;
    if (label === "Severity") {
      const b = document.createElement("span");
      b.className = "badge sev-" + a.severity;
      b.textContent = a.severity;
      td.appendChild(b);
    } else if (label === "What") {
      const link = document.createElement("a");
      link.href = "/alerts/" + a.id;
      link.textContent = a.kind;
      td.appendChild(link);
      td.appendChild(document.createTextNode(" " + a.subject));
      const msg = document.createElement("div");
      msg.className = "msg";
      msg.textContent = a.message;
      td.appendChild(msg);
    } else {
      td.textContent = text;
    }
    tr.appendChild(td);
  }
  return tr;
}

function live() {
  const badge = document.getElementById("live");
  if (!badge || !window.EventSource) return;
  const source = new EventSource("/api/alerts/stream");
  source.addEventListener("hello", () => badge.classList.add("on"));
  source.onerror = () => badge.classList.remove("on");
  source.addEventListener("alert", (ev) => {
    const a = JSON.parse(ev.data);
    const rows = document.querySelector('[data-live="prepend"]');
    if (rows) {
      const empty = rows.querySelector("tr.empty");
      if (empty) empty.remove();
      rows.prepend(rowFor(a));
    }
    const unacked = document.getElementById("unacked");
    if (unacked) unacked.textContent = String(Number(unacked.textContent) + 1);
    toast("new " + a.severity + " alert: " + a.kind + " " + a.subject, "sev-" + a.severity);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("button.act")) {
    b.addEventListener("click", () => act(b.dataset.post, b.dataset.body ? JSON.parse(b.dataset.body) : {}, b.dataset.done));
  }
  for (const f of document.querySelectorAll("form.act-form")) {
    f.addEventListener("submit", (ev) => {
      ev.preventDefault();
      act(f.dataset.post, formBody(f), f.dataset.done);
    });
  }
  for (const all of document.querySelectorAll("input.all")) {
    all.addEventListener("change", () => {
      for (const c of all.closest("form").querySelectorAll('input[type="checkbox"][name]')) c.checked = all.checked;
    });
  }
  live();
});
