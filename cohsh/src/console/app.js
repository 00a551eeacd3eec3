// The console page: panels replaced from the live stream (server-sent
// events, one update a second from the server; the browser never polls),
// actions posted with the session's CSRF token, each outcome listed with
// the exact line sent and the hive's answer. No inline code: the page's
// Content-Security-Policy allows only this file.
"use strict";

const csrf = document.querySelector('meta[name="csrf"]').content;
const live = document.getElementById("live");
const filter = document.getElementById("log-filter");

function applyFilter() {
  const want = filter.value.trim().toLowerCase();
  for (const line of document.querySelectorAll("#log .log span")) {
    line.hidden = want !== "" && !line.textContent.toLowerCase().includes(want);
  }
}
filter.addEventListener("input", applyFilter);

function connect() {
  const events = new EventSource("/events");
  events.addEventListener("state", (e) => {
    const panels = JSON.parse(e.data);
    for (const id of ["banner", "hive", "workers", "gpus", "jobs", "log"]) {
      document.getElementById(id).innerHTML = panels[id];
    }
    applyFilter();
    live.textContent = "live " + new Date().toLocaleTimeString();
    live.className = "good";
  });
  events.addEventListener("error", () => {
    if (events.readyState === EventSource.CLOSED) {
      live.textContent = "the console ended this session: reload to log in again";
      live.className = "bad";
    } else {
      live.textContent = "console unreachable: reconnecting…";
      live.className = "bad";
    }
  });
}

function show(outcome) {
  const li = document.createElement("li");
  li.className = outcome.ok ? "ok" : "refused";
  const sent = document.createElement("code");
  sent.textContent = (outcome.path ? outcome.path + " ← " : "") + outcome.sent;
  const answer = document.createElement("div");
  answer.textContent = (outcome.ok ? "hive: " : "refused: ") + outcome.answer;
  li.append(sent, answer);
  document.getElementById("outcomes").prepend(li);
}

async function post(form) {
  const fields = new URLSearchParams();
  fields.set("action", form.dataset.action);
  for (const input of form.querySelectorAll("input")) {
    if (input.type === "file") {
      const file = input.files[0];
      fields.set(input.name, file ? await file.text() : "");
    } else if (input.type === "checkbox") {
      if (input.checked) fields.set(input.name, "on");
    } else {
      fields.set(input.name, input.value);
    }
  }
  try {
    const r = await fetch("/action", {
      method: "POST",
      headers: { "x-csrf-token": csrf, "content-type": "application/x-www-form-urlencoded" },
      body: fields,
      credentials: "same-origin",
    });
    show(await r.json());
  } catch (e) {
    show({ ok: false, path: "", sent: form.dataset.action, answer: "the console did not answer: " + e });
  }
}

for (const form of document.querySelectorAll("form.action")) {
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    post(form);
  });
}
connect();
