// metaflowlike ui: the page over the JSON API under /api/. Vanilla JavaScript, no build.
//
// Every value from the datastore enters the page as text (h() makes text nodes), never
// as HTML, so a log or preview containing <script> shows as text. Pages are addressed
// by the URL fragment (#/flows/F, #/runs/F/R, #/tasks/F/R/S/T) and refresh themselves
// by polling while what they show is running.
"use strict";

const POLL_MS = 2000;
let timer = null;       // the pending refresh of the current page
let generation = 0;     // bumps on every navigation: stale responses are dropped

// --- small helpers ----------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = String(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const enc = encodeURIComponent;

async function api(path) {
  const r = await fetch("/api/" + path, { cache: "no-store" });
  let body;
  try { body = await r.json(); } catch (e) { body = { error: "HTTP " + r.status }; }
  if (!r.ok) throw new Error(body.error || "HTTP " + r.status);
  return body;
}

function when(ts) {
  if (ts === null || ts === undefined) return "-";
  const d = new Date(ts * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function secs(s) {
  if (s === null || s === undefined) return "-";
  if (s < 60) return s.toFixed(2) + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
}

function size(n) {
  if (n === null || n === undefined) return "-";
  if (n < 1024) return n + " B";
  if (n < 1 << 20) return (n / 1024).toFixed(1) + " KB";
  return (n / (1 << 20)).toFixed(1) + " MB";
}

function status(s) { return h("span", { class: "status " + s, text: s }); }

function table(headers, rows) {
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((x) => x instanceof Node ? x : h("th", { text: x })))),
    h("tbody", {}, rows));
}

function crumbs(...parts) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren(...parts.map(([label, href]) =>
    href ? h("a", { href }, label) : h("span", {}, label)));
}

function show(...nodes) { document.getElementById("main").replaceChildren(...nodes); }

function live(on) { document.getElementById("live").hidden = !on; }

function again(fn, gen) {
  clearTimeout(timer);
  timer = setTimeout(() => { if (gen === generation) fn(); }, POLL_MS);
}

function failure(e) { return h("p", { class: "error", text: e.message }); }

// --- pages ------------------------------------------------------------------------------

async function flowsPage(gen) {
  crumbs(["flows"]);
  const data = await api("flows");
  if (gen !== generation) return;
  const rows = data.flows.map((f) => h("tr", {},
    h("td", {}, h("a", { href: `#/flows/${enc(f.name)}` }, f.name)),
    h("td", { class: "num", text: f.runs })));
  show(h("h1", {}, "Flows"),
    h("section", {}, rows.length ? table(["flow", "runs"], rows)
      : h("p", { class: "note" }, "No runs in this datastore yet.")));
}

function query(params) {
  return Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined)
    .map(([k, v]) => `${enc(k)}=${enc(v)}`).join("&");
}

function editing() {
  // a refresh must not wipe what the user is typing in the filters
  const el = document.activeElement;
  return !!(el && el.closest && el.closest("form"));
}

async function runsPage(gen, flow, params, refresh) {
  if (refresh && editing()) {
    again(() => runsPage(gen, flow, params, true).catch((e) => show(failure(e))), gen);
    return;
  }
  crumbs(["flows", "#/"], [flow]);
  const limit = 50;
  const page = Math.max(0, parseInt(params.get("page") || "0", 10) || 0);
  const filters = {
    status: params.get("status") || "", tag: params.get("tag") || "",
    user: params.get("user") || "", sort: params.get("sort") || "created",
    order: params.get("order") || "desc",
  };
  const data = await api(`flows/${enc(flow)}/runs?` +
    query({ ...filters, offset: page * limit, limit }));
  if (gen !== generation) return;
  if (refresh && editing()) {  // the user started typing while we asked
    again(() => runsPage(gen, flow, params, true).catch((e) => show(failure(e))), gen);
    return;
  }
  const go = (changes) => {
    const next = { ...filters, page, ...changes };
    location.hash = `#/flows/${enc(flow)}?` + query(next);
  };
  const sortable = (label, key) => h("th", {
    class: "sortable", title: "sort",
    onclick: () => go({ sort: key, order: filters.sort === key && filters.order === "desc" ? "asc" : "desc", page: 0 }),
  }, label + (filters.sort === key ? (filters.order === "desc" ? " ▾" : " ▴") : ""));
  const rows = data.runs.map((r) => h("tr", { "data-run": r.id },
    h("td", {}, h("a", { href: `#/runs/${enc(flow)}/${enc(r.id)}` }, r.id)),
    h("td", {}, status(r.status)),
    h("td", {}, when(r.created_at)),
    h("td", { class: "num" }, secs(r.duration)),
    h("td", {}, r.user || "-"),
    h("td", {}, r.tags.map((t) => h("span", { class: "tag" }, t)))));
  const form = h("form", { class: "filters", onsubmit: (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    go({ status: f.get("status"), tag: f.get("tag"), user: f.get("user"), page: 0 });
  } },
  h("label", {}, "status", h("select", { name: "status" },
    ["", "running", "succeeded", "failed"].map((s) =>
      h("option", { value: s, selected: s === filters.status }, s || "any")))),
  h("label", {}, "tag", h("input", { name: "tag", value: filters.tag, placeholder: "e.g. user:anne" })),
  h("label", {}, "user", h("input", { name: "user", value: filters.user })),
  h("button", { type: "submit" }, "Filter"));
  const last = Math.max(0, Math.ceil(data.total / limit) - 1);
  const pager = h("div", { class: "pager" },
    h("button", { disabled: page <= 0, onclick: () => go({ page: page - 1 }) }, "← newer"),
    h("span", {}, `${data.total ? data.offset + 1 : 0}–${data.offset + data.runs.length} of ${data.total}`),
    h("button", { disabled: page >= last, onclick: () => go({ page: page + 1 }) }, "older →"));
  show(h("h1", {}, `Runs of ${flow}`),
    h("section", {}, form,
      rows.length ? table(["run", "status", sortable("started", "created"),
        sortable("duration", "duration"), sortable("user", "user"), "tags"], rows)
        : h("p", { class: "note" }, "No run matches."),
      pager));
  const running = data.runs.some((r) => r.status === "running");
  live(running);
  // new runs appear and running ones change: the list refreshes itself
  again(() => runsPage(gen, flow, params, true).catch((e) => show(failure(e))), gen);
}

function facts(pairs) {
  return h("dl", { class: "facts" },
    pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function gantt(tasks, t0, t1) {
  const span = Math.max(t1 - t0, 0.001);
  const rows = tasks.map((t) => {
    const lane = h("div", { class: "lane" });
    let prevEnd = null;
    for (const a of t.attempts) {
      const start = a.started_at ?? prevEnd ?? t0;
      const end = a.finished_at ?? (a.status === "running" ? t1 : start);
      const bar = h("div", {
        class: "bar " + a.status,
        title: `attempt ${a.attempt}: ${a.status}, ${secs(end - start)}`,
      });
      bar.style.left = (100 * (start - t0) / span) + "%";
      bar.style.width = Math.max(0.2, 100 * (end - start) / span) + "%";
      lane.append(bar);
      prevEnd = end;
    }
    const label = `${t.step}/${t.id}` + (t.attempts.length > 1 ? ` (${t.attempts.length} attempts)` : "");
    return h("div", { class: "row" },
      h("a", { class: "label", href: `#/tasks/${t.pathspec.split("/").map(enc).join("/")}`, title: label }, label),
      lane);
  });
  return h("div", { class: "gantt" }, rows,
    h("div", { class: "axis" }, h("span", {}, when(t0)), h("span", {}, secs(t1 - t0))));
}

async function runPage(gen, flow, runId, params) {
  crumbs(["flows", "#/"], [flow, `#/flows/${enc(flow)}`], [runId]);
  const base = `runs/${enc(flow)}/${enc(runId)}`;
  const tpage = Math.max(0, parseInt(params.get("tasks") || "0", 10) || 0);
  const tlimit = 200;
  const [run, tasks] = await Promise.all([
    api(base), api(`${base}/tasks?offset=${tpage * tlimit}&limit=${tlimit}`)]);
  if (gen !== generation) return;
  const nodes = [h("h1", {}, `Run ${flow}/${runId} `, status(run.status))];
  nodes.push(h("section", {}, facts([
    ["started", when(run.created_at)], ["finished", when(run.finished_at)],
    ["duration", secs(run.duration)], ["user", run.user || "-"],
    ["tags", run.tags.map((t) => h("span", { class: "tag" }, t))],
    ["resumed from", run.origin_run_id
      ? h("a", { href: `#/runs/${enc(flow)}/${enc(run.origin_run_id)}` }, run.origin_run_id) : "-"],
  ])));
  if (run.resume) {
    nodes.push(h("section", { class: "resume" },
      h("h2", {}, "This run failed" + (run.resume.failed_step ? ` in step ${run.resume.failed_step}` : "")),
      h("p", {}, "Fix the code, then rerun it, reusing every task that succeeded:"),
      h("pre", {}, run.resume.command),
      h("p", { class: "note" }, "See docs/ui.md and the resume section of the README.")));
  }
  const dag = h("img", { alt: `DAG of ${flow}/${runId}`, src: `/api/${base}/dag.svg?t=${Date.now()}` });
  dag.addEventListener("error", () => dag.replaceWith(h("p", { class: "note" },
    "(The DAG is drawn by Graphviz, which this server does not have.)")));
  nodes.push(h("section", { class: "dag" }, h("h2", {}, "DAG"), dag));
  const steps = run.steps.map((s) => h("tr", {},
    h("td", {}, s.first_task
      ? h("a", { href: `#/tasks/${enc(flow)}/${enc(runId)}/${enc(s.name)}/${enc(s.first_task)}` }, s.name)
      : s.name),
    h("td", {}, status(s.status)),
    h("td", { class: "num" }, s.tasks),
    h("td", { class: "num" }, s.counts.failed),
    h("td", { class: "num" }, s.retries),
    h("td", {}, when(s.started_at)),
    h("td", { class: "num" }, s.started_at && s.finished_at ? secs(s.finished_at - s.started_at) : "-")));
  nodes.push(h("section", {}, h("h2", {}, "Steps"),
    table(["step", "status", "tasks", "failed", "retries", "started", "took"], steps)));
  const starts = tasks.tasks.flatMap((t) => t.attempts.map((a) => a.started_at)).filter((x) => x);
  const ends = tasks.tasks.flatMap((t) => t.attempts.map((a) => a.finished_at)).filter((x) => x);
  const t0 = Math.min(...starts, run.created_at || Infinity);
  const t1 = run.status === "running" ? Date.now() / 1000 : Math.max(...ends, t0);
  const last = Math.max(0, Math.ceil(tasks.total / tlimit) - 1);
  const goTasks = (n) => { location.hash = `#/runs/${enc(flow)}/${enc(runId)}?tasks=${n}`; };
  nodes.push(h("section", {}, h("h2", {}, `Timeline (${tasks.total} tasks)`),
    tasks.tasks.length ? gantt(tasks.tasks, t0, t1) : h("p", { class: "note" }, "No task yet."),
    tasks.total > tlimit ? h("div", { class: "pager" },
      h("button", { disabled: tpage <= 0, onclick: () => goTasks(tpage - 1) }, "← previous"),
      h("span", {}, `tasks ${tasks.offset + 1}–${tasks.offset + tasks.tasks.length} of ${tasks.total}`),
      h("button", { disabled: tpage >= last, onclick: () => goTasks(tpage + 1) }, "next →")) : null));
  const params_ = Object.entries(run.parameters);
  nodes.push(h("section", {}, h("h2", {}, "Parameters"), params_.length
    ? table(["parameter", "value"], params_.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, h("code", {}, v)))))
    : h("p", { class: "note" }, "No parameters.")));
  show(...nodes);
  live(run.status === "running");
  if (run.status === "running") again(() => runPage(gen, flow, runId, params).catch((e) => show(failure(e))), gen);
}

function logView(base, stream, attempt, gen) {
  const pre = h("pre", { class: "log", "data-stream": stream });
  let offset = 0;
  async function follow() {
    if (gen !== generation) return;
    try {
      const d = await api(`${base}/logs/${stream}?attempt=${attempt}&offset=${offset}`);
      if (gen !== generation) return;
      if (d.offset < offset) pre.textContent = "";
      if (d.skipped) pre.append(`[... ${d.skipped} earlier bytes not shown ...]\n`);
      if (d.text) pre.append(d.text);
      offset = d.offset;
      if (!pre.textContent) pre.textContent = d.final ? "(empty)" : "";
      if (!d.final) setTimeout(follow, POLL_MS);
    } catch (e) { pre.append(h("span", { class: "error" }, e.message)); }
  }
  follow();
  return pre;
}

async function taskPage(gen, flow, runId, step, taskId, params) {
  crumbs(["flows", "#/"], [flow, `#/flows/${enc(flow)}`],
    [runId, `#/runs/${enc(flow)}/${enc(runId)}`], [`${step}/${taskId}`]);
  const base = `tasks/${enc(flow)}/${enc(runId)}/${enc(step)}/${enc(taskId)}`;
  const attemptArg = params.get("attempt");
  const task = await api(base + (attemptArg !== null ? `?attempt=${enc(attemptArg)}` : ""));
  if (gen !== generation) return;
  const here = `#/tasks/${enc(flow)}/${enc(runId)}/${enc(step)}/${enc(taskId)}`;
  const nodes = [h("h1", {}, `Task ${task.pathspec} `, status(task.status))];
  nodes.push(h("section", {}, facts([
    ["attempt", task.attempts.length > 1
      ? task.attempts.map((a) => h("a", { href: `${here}?attempt=${a.attempt}`, class: "status " + a.status,
        title: a.status }, `${a.attempt}${a.attempt === task.attempt ? " (shown)" : ""}`))
      : String(task.attempt ?? "-")],
    ["started", when(task.started_at)], ["finished", when(task.finished_at)],
    ["took", task.started_at && task.finished_at ? secs(task.finished_at - task.started_at) : "-"],
    ["foreach index", task.foreach_index ?? "-"],
    ["inputs", task.input_paths.length ? task.input_paths.join(", ") : "-"],
  ])));
  if (task.error) {
    nodes.push(h("section", {}, h("h2", {}, "Error"),
      h("p", { class: "error" }, `${task.error.type}: ${task.error.message}`),
      task.error.traceback ? h("pre", { class: "trace" }, task.error.traceback) : null));
  }
  const arts = task.artifacts.map((a) => {
    const cell = h("td", {}, a.preview !== null ? h("code", {}, a.preview) : "");
    if (a.preview === null) {
      cell.append(h("button", { class: "value", onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          const v = await api(`${base}/artifacts/${enc(a.name)}?attempt=${task.attempt}`);
          cell.replaceChildren(h("pre", {}, v.value));
        } catch (e) { cell.replaceChildren(h("span", { class: "note" }, e.message)); }
      } }, "show value"));
    }
    return h("tr", {}, h("td", {}, h("b", {}, a.name)), h("td", {}, a.type),
      h("td", { class: "num" }, size(a.size)), cell);
  });
  nodes.push(h("section", {}, h("h2", {}, "Artifacts"), arts.length
    ? table(["name", "type", "size", "preview"], arts)
    : h("p", { class: "note" }, task.status === "running" ? "Saved when the task ends." : "No artifacts.")));
  if (task.attempt !== null) {
    for (const stream of ["stdout", "stderr"]) {
      nodes.push(h("section", {}, h("h2", {}, stream), logView(base, stream, task.attempt, gen)));
    }
  }
  if (task.cards.length) {
    nodes.push(h("section", {}, h("h2", {}, "Cards"), task.cards.map((c) => [
      h("p", {}, `${c.type}${c.id ? " (" + c.id + ")" : ""}`),
      h("iframe", { class: "card", sandbox: "allow-scripts", title: `card ${c.type}`,
        src: `/api/${base}/cards/${enc(c.file)}?attempt=${task.attempt}` })])));
  }
  if (task.checkpoints.length) {
    nodes.push(h("section", {}, h("h2", {}, "Checkpoints"), table(["name", "id", "attempt", "saved"],
      task.checkpoints.map((c) => h("tr", {}, h("td", {}, c.name || "-"), h("td", {}, h("code", {}, c.id)),
        h("td", {}, c.attempt ?? "-"), h("td", {}, when(c.created_at)))))));
  }
  show(...nodes);
  live(task.status === "running");
  if (task.status === "running") {
    // the logs follow on their own; the rest reloads once the attempt ends
    const watch = async () => {
      try {
        const t = await api(base + (attemptArg !== null ? `?attempt=${enc(attemptArg)}` : ""));
        if (gen !== generation) return;
        if (t.status !== "running" || t.attempt !== task.attempt) { route(); return; }
      } catch (e) { /* keep trying */ }
      again(watch, gen);
    };
    again(watch, gen);
  }
}

// --- routing ----------------------------------------------------------------------------

function route() {
  clearTimeout(timer);
  const gen = ++generation;
  live(false);
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = raw.split("?");
  const parts = path.split("/").filter((p) => p).map(decodeURIComponent);
  const params = new URLSearchParams(qs || "");
  let page;
  if (parts.length === 0) page = flowsPage(gen);
  else if (parts[0] === "flows" && parts.length === 2) page = runsPage(gen, parts[1], params);
  else if (parts[0] === "runs" && parts.length === 3) page = runPage(gen, parts[1], parts[2], params);
  else if (parts[0] === "tasks" && parts.length === 5) page = taskPage(gen, ...parts.slice(1), params);
  else { show(h("p", { class: "error" }, `There is no page at #${raw}.`)); return; }
  page.catch((e) => { if (gen === generation) show(failure(e)); });
}

window.addEventListener("hashchange", route);
route();
