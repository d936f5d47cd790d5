// atf serve: the little script of the server-rendered pages.
// No build step; every text from the server goes in through textContent.
"use strict";

// With a token the server keeps a browser's session in a cookie, and a
// request that changes something must send the page's CSRF token too.
function csrfHeaders(extra) {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const h = Object.assign({}, extra || {});
  if (meta) h["x-csrf-token"] = meta.content;
  return h;
}

function filterCases(q) {
  q = q.trim().toLowerCase();
  for (const li of document.querySelectorAll("li.case")) {
    li.hidden = q !== "" && !li.dataset.search.includes(q);
  }
}

function badge(status) {
  const s = document.createElement("span");
  s.className = "st st-" + status;
  s.textContent = status;
  return s;
}

function cell(row, content) {
  const td = row.insertCell();
  if (content instanceof Node) td.appendChild(content); else td.textContent = content;
  return td;
}

function followRun(table) {
  const id = table.dataset.run;
  const rows = new Map();
  const started = [];
  const src = new EventSource("/api/runs/" + id + "/events");
  const rowFor = (name, file) => {
    if (!rows.has(name)) {
      const tr = table.insertRow();
      cell(tr, name); cell(tr, file || ""); cell(tr, badge("running")); cell(tr, ""); cell(tr, "");
      rows.set(name, tr);
    }
    return rows.get(name);
  };
  src.addEventListener("run_started", (e) => {
    const ev = JSON.parse(e.data);
    started.length = 0;
    for (const c of ev.cases) started.push(c);
  });
  src.addEventListener("case_started", (e) => {
    const ev = JSON.parse(e.data);
    const info = started[ev.case] || {};
    rowFor(ev.name, info.file);
  });
  // Failed expectations of each case, from its steps, shown when it ends.
  const failures = new Map();
  src.addEventListener("step_finished", (e) => {
    const ev = JSON.parse(e.data);
    const info = started[ev.case];
    if (!info || !ev.report.failures || ev.report.failures.length === 0) return;
    const list = failures.get(info.name) || [];
    for (const f of ev.report.failures) {
      const at = f.location ? ` (${f.location.file}:${f.location.line})` : "";
      list.push(`step ${ev.index} ${ev.report.keyword}: ${f.message}${at}`);
    }
    failures.set(info.name, list);
  });
  src.addEventListener("case_finished", (e) => {
    const r = JSON.parse(e.data).report;
    const tr = rowFor(r.name, r.file);
    tr.cells[1].textContent = r.file;
    tr.cells[2].replaceChildren(badge(r.status));
    tr.cells[3].textContent = r.duration_ms + " ms";
    const pre = document.createElement("pre");
    pre.textContent = [r.error || "", ...(failures.get(r.name) || [])].filter((t) => t).join("\n");
    tr.cells[4].replaceChildren(pre);
  });
  src.addEventListener("run_finished", (e) => {
    const s = JSON.parse(e.data).summary;
    document.getElementById("summary").textContent =
      `${s.passed}/${s.total} passed, ${s.failed} failed, ${s.errored} error, ${s.skipped} skipped in ${s.duration_ms} ms`;
  });
  src.addEventListener("end", (e) => {
    src.close();
    const run = JSON.parse(e.data);
    if (run) document.getElementById("status").replaceChildren(badge(run.status));
    if (run && (run.status === "queued" || run.status === "running")) {
      // Not over: it waits for a worker, or went back to the queue because
      // its worker stopped answering. Follow its next attempt from scratch.
      if (rows.size > 0) {
        for (const tr of rows.values()) tr.remove();
        let note = document.getElementById("requeued");
        if (!note) {
          note = document.createElement("p");
          note.id = "requeued";
          table.before(note);
        }
        note.textContent = "The run was queued again (its worker stopped answering): following its next attempt.";
      }
      setTimeout(() => followRun(table), 1000);
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const search = document.getElementById("search");
  if (search) search.addEventListener("input", () => filterCases(search.value));
  const run = document.getElementById("run");
  if (run) run.addEventListener("click", async () => {
    run.disabled = true;
    const res = await fetch("/api/runs", {
      method: "POST",
      headers: csrfHeaders({ "content-type": "application/json", "x-atf-source": "ui" }),
      body: JSON.stringify({ paths: [run.dataset.path] }),
    });
    const body = await res.json();
    if (res.ok) location.href = "/runs/" + body.id;
    else { run.disabled = false; alert(body.error); }
  });
  const cases = document.getElementById("cases");
  if (cases) followRun(cases);
});
