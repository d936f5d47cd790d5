// atf serve: the case editor, the run form and the "New case" form.
// Vanilla JavaScript, no build step. Every text from the server goes in
// through textContent.
//
// The editor is a textarea with a line-numbered gutter. As you type (and
// before saving) the text goes to POST /api/check, which runs `atf
// check`'s own loader and checks; the diagnostics are shown at their line.
// Completion (Ctrl+Space, or as you type a keyword name or an argument
// key) comes from GET /api/keywords and GET /api/schema/case.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const encodePath = (p) => p.split("/").map(encodeURIComponent).join("/");

  async function call(method, url, body, headers) {
    const init = { method, headers: Object.assign({}, headers || {}) };
    // A session (a server with a token) needs the page's CSRF token on
    // every request that changes something; runs started here are the UI's.
    const meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && method !== "GET") init.headers["x-csrf-token"] = meta.content;
    if (method === "POST" && url === "/api/runs") init.headers["x-atf-source"] = "ui";
    if (body !== undefined) {
      init.body = typeof body === "string" ? body : JSON.stringify(body);
      init.headers["content-type"] = "application/json";
    }
    const res = await fetch(url, init);
    let json = null;
    try { json = await res.json(); } catch (_) { json = null; }
    return { res, json };
  }

  // ---- The JSON scanner behind completion -------------------------------
  //
  // Scans the whole text once, keeping the stack of open objects and
  // arrays; at the caret it notes where it is (in a key, in a value, the
  // key a value belongs to, the containers around). Scanning on to the end
  // fills in what comes after the caret too (a step's `keyword` written
  // after its `args`).
  function scan(text, pos) {
    const stack = [];
    let here = null;
    const top = () => stack[stack.length - 1];
    const parentKey = () => {
      const t = top();
      if (!t) return null;
      return t.type === "obj" ? t.curKey : t.index;
    };
    const snap = (extra) => {
      const t = top();
      here = Object.assign({
        frames: stack.slice(),
        isKey: !!t && t.type === "obj" && t.expectKey,
        key: t && t.type === "obj" ? t.curKey : null,
        inString: false,
        start: pos,
        end: pos,
        closed: true,
        prefix: "",
      }, extra);
    };
    let i = 0;
    const n = text.length;
    while (i < n) {
      if (here === null && i >= pos) snap({});
      const c = text[i];
      if (c === '"') {
        const start = i;
        let j = i + 1;
        let s = "";
        while (j < n && text[j] !== '"' && text[j] !== "\n") {
          if (text[j] === "\\" && j + 1 < n) { s += text[j + 1]; j += 2; } else { s += text[j]; j += 1; }
        }
        const closed = j < n && text[j] === '"';
        const t = top();
        const isKey = !!t && t.type === "obj" && t.expectKey;
        if (here === null && pos > start && pos <= j) {
          snap({
            inString: true, isKey, start: start + 1, end: j, closed,
            prefix: text.slice(start + 1, pos),
          });
        }
        if (t && t.type === "obj") {
          if (isKey) { t.curKey = s; t.keys.add(s); } else if (t.curKey !== null) { t.values[t.curKey] = s; }
        }
        i = closed ? j + 1 : j;
        continue;
      }
      if (c === "{") {
        stack.push({ type: "obj", inKey: parentKey(), expectKey: true, curKey: null, keys: new Set(), values: {} });
      } else if (c === "[") {
        stack.push({ type: "arr", inKey: parentKey(), index: 0 });
      } else if (c === "}" || c === "]") {
        stack.pop();
      } else if (c === ",") {
        const t = top();
        if (t && t.type === "obj") { t.expectKey = true; t.curKey = null; } else if (t) { t.index += 1; }
      } else if (c === ":") {
        const t = top();
        if (t && t.type === "obj") t.expectKey = false;
      }
      i += 1;
    }
    if (here === null) snap({});
    return here;
  }

  const STEP_LISTS = new Set(["prepare", "steps", "cleanup"]);

  // Whether the object frames[k] is a step: in a step list (a parallel
  // step set is a list of lists), or a step's `undo`.
  function isStep(frames, k) {
    const f = frames[k];
    if (!f || f.type !== "obj") return false;
    if (f.inKey === "undo") return true;
    let j = k - 1;
    while (j >= 0 && frames[j].type === "arr") {
      if (typeof frames[j].inKey === "string") return STEP_LISTS.has(frames[j].inKey) && j === 1 && frames[0].type === "obj";
      j -= 1;
    }
    return false;
  }

  // The property names a schema node allows ($ref, allOf/anyOf/oneOf followed).
  function schemaProps(schema, node, depth) {
    const out = new Map();
    if (!node || depth > 8) return out;
    if (node.$ref && node.$ref.startsWith("#/$defs/")) {
      const def = schema.$defs && schema.$defs[node.$ref.slice(8)];
      for (const [k, v] of schemaProps(schema, def, depth + 1)) out.set(k, v);
    }
    for (const [k, v] of Object.entries(node.properties || {})) {
      out.set(k, (v && v.description) || "");
    }
    for (const key of ["allOf", "anyOf", "oneOf"]) {
      for (const sub of node[key] || []) {
        for (const [k, v] of schemaProps(schema, sub, depth + 1)) if (!out.has(k)) out.set(k, v);
      }
    }
    return out;
  }

  // ---- The editor ----------------------------------------------------------
  function initEditor(root) {
    const path = root.dataset.path;
    let etag = root.dataset.etag;
    const src = $("source");
    const gutter = $("gutter");
    const pop = $("complete");
    const diagList = $("diagnostics");
    const status = $("ed-status");
    const save = $("save");
    const summary = $("check-summary");
    const staticView = document.querySelector("table.src");
    if (staticView) staticView.hidden = true;
    src.readOnly = false;
    let saved = src.value;
    let diags = [];
    let seq = 0;
    let timer = null;
    let keywords = null;
    let schema = null;

    const say = (text, cls) => { status.textContent = text; status.className = cls || ""; };

    function renderGutter() {
      const lines = src.value.split("\n").length;
      const bad = new Map();
      for (const d of diags) if (d.line) bad.set(d.line, (bad.get(d.line) ? bad.get(d.line) + "\n" : "") + d.message);
      const frag = document.createDocumentFragment();
      for (let l = 1; l <= lines; l++) {
        const s = document.createElement("span");
        s.textContent = String(l);
        s.dataset.line = String(l);
        if (bad.has(l)) { s.className = "bad"; s.title = bad.get(l); }
        frag.append(s, "\n");
      }
      gutter.replaceChildren(frag);
      gutter.scrollTop = src.scrollTop;
    }

    function goTo(line, col) {
      const lines = src.value.split("\n");
      let at = 0;
      for (let l = 1; l < line && l <= lines.length; l++) at += lines[l - 1].length + 1;
      at += Math.max(0, (col || 1) - 1);
      src.focus();
      src.setSelectionRange(at, at);
      const lh = parseFloat(getComputedStyle(src).lineHeight) || 18;
      src.scrollTop = Math.max(0, (line - 3) * lh);
    }

    function setDiags(list) {
      diags = list || [];
      const items = diags.map((d) => {
        const li = document.createElement("li");
        li.className = "diag";
        const where = d.line ? `line ${d.line}${d.column ? ":" + d.column : ""}` : "whole file";
        const mine = !d.file || d.file === path || d.file.endsWith("/" + path);
        li.textContent = `${mine ? "" : d.file + " "}${where}: ${d.message}${d.hint ? " (" + d.hint + ")" : ""}`;
        if (d.line) {
          li.dataset.line = String(d.line);
          li.tabIndex = 0;
          li.addEventListener("click", () => goTo(d.line, d.column));
        }
        return li;
      });
      diagList.replaceChildren(...items);
      if (summary) {
        summary.textContent = diags.length === 0 ? "atf check: no problems found" : `atf check: ${diags.length} problem(s)`;
        summary.className = diags.length === 0 ? "ok" : "error";
      }
      renderGutter();
    }

    async function check() {
      const mine = ++seq;
      const { res, json } = await call("POST", "/api/check", { path, content: src.value });
      if (mine !== seq) return null; // a newer check is on its way
      if (!res.ok) { say(`atf check failed: ${(json && json.error) || res.status}`, "error"); return null; }
      setDiags(json.diagnostics);
      return json.diagnostics;
    }

    function changed() {
      const dirty = src.value !== saved;
      save.disabled = !dirty;
      say(dirty ? "Unsaved changes" : "Saved", dirty ? "" : "ok");
      renderGutter();
      clearTimeout(timer);
      timer = setTimeout(check, 400);
    }

    async function saveNow() {
      clearTimeout(timer);
      const text = src.value;
      say("Checking and saving…");
      const found = await check();
      const { res, json } = await call("PUT", "/api/cases/" + encodePath(path), text, { "if-match": etag });
      if (res.status === 409) {
        say(`Not saved: ${json && json.error} Your text is still here: copy it, reload the page and apply your change again.`, "error conflict");
        return;
      }
      if (!res.ok) { say(`Not saved: ${(json && json.error) || res.status}`, "error"); return; }
      etag = res.headers.get("etag") || json.etag;
      root.dataset.etag = etag;
      saved = text;
      save.disabled = src.value === saved;
      setDiags(json.diagnostics);
      const n = (json.diagnostics || found || []).length;
      say(n === 0 ? "Saved" : `Saved, with ${n} problem(s) atf check reports below`, n === 0 ? "ok" : "error");
    }

    // ---- completion ----
    async function loadCatalog() {
      if (keywords === null) {
        const k = await call("GET", "/api/keywords");
        keywords = k.res.ok ? k.json : [];
        const s = await call("GET", "/api/schema/case");
        schema = s.res.ok ? s.json : {};
      }
    }

    // The completion items at the caret, and what they replace.
    function suggestions() {
      const ctx = scan(src.value, src.selectionStart);
      if (!ctx) return null;
      const frames = ctx.frames;
      const k = frames.length - 1;
      const t = frames[k];
      let items = [];
      if (!ctx.isKey && ctx.inString && ctx.key === "keyword" && isStep(frames, k)) {
        items = keywords.map((s) => ({ name: s.name, doc: s.summary }));
      } else if (ctx.isKey && t && t.inKey === "args" && isStep(frames, k - 1)) {
        const kw = frames[k - 1].values.keyword;
        const spec = keywords.find((s) => s.name === kw);
        if (spec) {
          items = spec.args
            .filter((a) => !t.keys.has(a.name) || a.name === ctx.prefix)
            .map((a) => ({ name: a.name, doc: `${a.type || "any"}${a.required ? ", required" : ""}: ${a.doc}` }));
        }
      } else if (ctx.isKey && isStep(frames, k)) {
        const props = schemaProps(schema, (schema.$defs || {}).step, 0);
        items = [...props].filter(([n]) => !t.keys.has(n) || n === ctx.prefix).map(([n, d]) => ({ name: n, doc: d }));
      } else if (ctx.isKey && k === 0) {
        const props = schemaProps(schema, schema, 0);
        items = [...props].filter(([n]) => !t.keys.has(n) || n === ctx.prefix).map(([n, d]) => ({ name: n, doc: d }));
      }
      const p = ctx.prefix.toLowerCase();
      items = items.filter((it) => it.name.toLowerCase().startsWith(p));
      return { ctx, items };
    }

    let current = null;
    let chosen = 0;

    function hide() { pop.hidden = true; current = null; }

    function place() {
      const before = src.value.slice(0, src.selectionStart);
      const line = before.split("\n").length - 1;
      const col = before.length - before.lastIndexOf("\n") - 1;
      const cs = getComputedStyle(src);
      const lh = parseFloat(cs.lineHeight) || 18;
      const ctx2d = document.createElement("canvas").getContext("2d");
      ctx2d.font = cs.font;
      const cw = ctx2d.measureText("M").width || 8;
      const padTop = parseFloat(cs.paddingTop) || 0;
      const padLeft = parseFloat(cs.paddingLeft) || 0;
      pop.style.top = `${src.offsetTop + padTop + (line + 1) * lh - src.scrollTop}px`;
      pop.style.left = `${src.offsetLeft + padLeft + col * cw - src.scrollLeft}px`;
    }

    function render() {
      const lis = current.items.slice(0, 50).map((it, i) => {
        const li = document.createElement("li");
        li.setAttribute("role", "option");
        li.dataset.name = it.name;
        if (i === chosen) { li.className = "chosen"; li.setAttribute("aria-selected", "true"); }
        const b = document.createElement("b");
        b.textContent = it.name;
        const s = document.createElement("small");
        s.textContent = it.doc ? " " + it.doc : "";
        li.append(b, s);
        li.addEventListener("mousedown", (e) => { e.preventDefault(); chosen = i; accept(); });
        return li;
      });
      pop.replaceChildren(...lis);
      pop.hidden = lis.length === 0;
      place();
    }

    async function complete(explicit) {
      await loadCatalog();
      const s = suggestions();
      if (!s || s.items.length === 0 || (!explicit && !s.ctx.inString)) { hide(); return; }
      current = s;
      chosen = 0;
      render();
    }

    function accept() {
      if (!current) return;
      const it = current.items[chosen];
      const ctx = current.ctx;
      hide();
      if (!it) return;
      const text = src.value;
      let start;
      let end;
      let insert;
      if (ctx.inString) {
        // The whole string's text, its closing quote included.
        start = ctx.start;
        end = ctx.closed ? ctx.end + 1 : ctx.end;
        insert = it.name + '"';
        if (ctx.isKey) {
          let after = end;
          while (after < text.length && (text[after] === " " || text[after] === "\t")) after += 1;
          if (text[after] !== ":") insert += ": ";
        }
      } else {
        start = src.selectionStart;
        end = start;
        insert = `"${it.name}": `;
      }
      src.setRangeText(insert, start, end, "end");
      changed();
    }

    src.addEventListener("input", (e) => {
      changed();
      const typed = e.data || "";
      if (/^[\w.\-"]$/.test(typed)) complete(false); else hide();
    });
    src.addEventListener("scroll", () => { gutter.scrollTop = src.scrollTop; if (current) place(); });
    src.addEventListener("blur", () => setTimeout(hide, 150));
    src.addEventListener("keydown", (e) => {
      if (current && !pop.hidden) {
        const n = Math.min(current.items.length, 50);
        if (e.key === "ArrowDown") { chosen = (chosen + 1) % n; render(); e.preventDefault(); return; }
        if (e.key === "ArrowUp") { chosen = (chosen + n - 1) % n; render(); e.preventDefault(); return; }
        if (e.key === "Enter" || e.key === "Tab") { accept(); e.preventDefault(); return; }
        if (e.key === "Escape") { hide(); e.preventDefault(); return; }
      }
      if (e.key === " " && e.ctrlKey) { complete(true); e.preventDefault(); return; }
      if (e.key === "s" && (e.ctrlKey || e.metaKey)) { saveNow(); e.preventDefault(); return; }
      if (e.key === "Tab" && !e.shiftKey && !e.ctrlKey && !e.altKey) {
        src.setRangeText("  ", src.selectionStart, src.selectionEnd, "end");
        changed();
        e.preventDefault();
      }
    });
    save.addEventListener("click", saveNow);
    window.addEventListener("beforeunload", (e) => { if (src.value !== saved) e.preventDefault(); });
    // The diagnostics the page was rendered with, then live ones.
    check();
  }

  // ---- The index page's forms ----------------------------------------------
  function pairs(text, sep) {
    const out = {};
    for (const raw of text.split(sep)) {
      const line = raw.trim();
      if (!line) continue;
      const eq = line.indexOf("=");
      if (eq <= 0) throw new Error(`\`${line}\`: write NAME=VALUE`);
      out[line.slice(0, eq).trim()] = line.slice(eq + 1);
    }
    return out;
  }

  function initRunForm(form) {
    const err = form.querySelector(".form-error");
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      err.textContent = "";
      const f = new FormData(form);
      const req = {};
      try {
        const paths = String(f.get("paths") || "").split(/\s+/).filter((p) => p);
        if (paths.length) req.paths = paths;
        const tags = String(f.get("tags") || "").trim();
        if (tags) req.tags = tags;
        const env = String(f.get("env") || "").trim();
        if (env) req.env = env;
        const vars = pairs(String(f.get("vars") || ""), "\n");
        if (Object.keys(vars).length) req.vars = vars;
        const matrix = String(f.get("matrix") || "").split("\n").map((l) => l.trim()).filter((l) => l);
        if (matrix.length) req.matrix = matrix;
        const labels = pairs(String(f.get("labels") || ""), /[,\n]/);
        if (Object.keys(labels).length) req.labels = labels;
      } catch (x) {
        err.textContent = x.message;
        return;
      }
      const { res, json } = await call("POST", "/api/runs", req);
      if (res.ok) location.href = "/runs/" + json.id;
      else err.textContent = (json && json.error) || `the server answered ${res.status}`;
    });
  }

  async function initNewCase(form) {
    const err = form.querySelector(".form-error");
    const select = form.querySelector("select[name=template]");
    const { res, json } = await call("GET", "/api/templates");
    if (res.ok) {
      select.replaceChildren(...json.map((t) => {
        const o = document.createElement("option");
        o.value = t.name;
        o.textContent = `${t.name} — ${t.description}`;
        return o;
      }));
    }
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      err.textContent = "";
      const f = new FormData(form);
      const body = { path: String(f.get("path") || "").trim(), template: String(f.get("template") || "http") };
      const name = String(f.get("name") || "").trim();
      if (name) body.name = name;
      const r = await call("POST", "/api/cases", body);
      if (r.res.ok) location.href = "/cases/" + encodePath(r.json.path);
      else err.textContent = (r.json && r.json.error) || `the server answered ${r.res.status}`;
    });
  }

  function start() {
    const ed = $("editor");
    if (ed) initEditor(ed);
    const run = $("run-form");
    if (run) initRunForm(run);
    const nc = $("new-case");
    if (nc) initNewCase(nc);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
