// atf HTML report. Reads the run from the JSON script element with id "data"
// and builds the page with DOM calls and textContent only: no data is ever
// parsed as HTML. Case and step bodies are built when first opened.
//
// URL state, in the fragment (or the query): #status=failed,error&tag=smoke&q=text&expand=1&case=NAME
//   status  comma-separated statuses to show (passed, flaky, failed, error, skipped); none: all
//   tag     only cases with this tag
//   q       only cases whose name or file contains this text (case-insensitive)
//   expand  any value but 0: open every case the filters show
//   case    open the case with exactly this name and scroll to it
(function () {
  'use strict';

  var STATUSES = ['passed', 'flaky', 'failed', 'error', 'skipped'];
  var LABEL = { passed: 'passed', flaky: 'flaky', failed: 'failed', error: 'error', skipped: 'skipped' };
  var PHASES = ['prepare', 'steps', 'cleanup'];

  var data;
  try {
    data = JSON.parse(document.getElementById('data').textContent);
  } catch (e) {
    document.getElementById('app').textContent = 'The report data cannot be read: ' + e;
    return;
  }
  var cases = Array.isArray(data.cases) ? data.cases : [];
  var suites = Array.isArray(data.suites) ? data.suites : [];
  var summary = data.summary || {};

  // ---- small DOM helpers -------------------------------------------------

  // Control characters (but tab and line breaks) shown as \uXXXX, not as boxes.
  var CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g;
  function visible(text) {
    return String(text).replace(CONTROL, function (c) {
      return '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');
    });
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = visible(text);
    return e;
  }
  function num(n) {
    return typeof n === 'number' ? n.toLocaleString('en-US') : '';
  }
  function add(parent, child) {
    parent.appendChild(child);
    return child;
  }
  function statusOf(s) {
    return STATUSES.indexOf(s) >= 0 ? s : 'skipped';
  }
  function dur(ms) {
    if (typeof ms !== 'number' || !isFinite(ms)) return '';
    if (ms < 1000) return ms + ' ms';
    var s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + ' s';
    var m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + String(Math.floor(s % 60)).padStart(2, '0') + 's';
    return Math.floor(m / 60) + 'h ' + String(m % 60).padStart(2, '0') + 'm';
  }
  function compact(v) {
    if (v === undefined) return '';
    var t = JSON.stringify(v);
    return t === undefined ? String(v) : t;
  }

  // Pretty JSON with light highlighting, built from text nodes and spans.
  var TOKEN = /("(?:[^"\\]|\\.)*")(\s*:)?|\b(?:true|false|null)\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
  function jsonBlock(value) {
    var pre = el('pre', 'json');
    var text = JSON.stringify(value, null, 2);
    if (text === undefined) text = String(value);
    if (text.length > 300000) {
      pre.textContent = text;
      return pre;
    }
    var last = 0;
    var m;
    TOKEN.lastIndex = 0;
    while ((m = TOKEN.exec(text)) !== null) {
      if (m.index > last) pre.appendChild(document.createTextNode(text.slice(last, m.index)));
      var cls;
      if (m[1] !== undefined) cls = m[2] !== undefined ? 'k' : 's';
      else if (m[0] === 'null') cls = 'n';
      else if (m[0] === 'true' || m[0] === 'false') cls = 'b';
      else cls = 'num';
      add(pre, el('span', cls, m[1] !== undefined ? m[1] : m[0]));
      if (m[2] !== undefined) pre.appendChild(document.createTextNode(m[2]));
      last = TOKEN.lastIndex;
    }
    if (last < text.length) pre.appendChild(document.createTextNode(text.slice(last)));
    return pre;
  }
  function isEmpty(v) {
    return v === undefined || v === null ||
      (typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0);
  }

  // ---- filter state --------------------------------------------------------

  var state = { status: [], tag: '', q: '' };

  function readUrl() {
    // A fragment, even an empty one, wins over the query.
    var href = location.href;
    var at = href.indexOf('#');
    var raw = at >= 0 ? href.slice(at + 1) : location.search.slice(1);
    var p = new URLSearchParams(raw);
    var st = (p.get('status') || '').split(',').map(function (s) { return s.trim().toLowerCase(); });
    state.status = STATUSES.filter(function (s) { return st.indexOf(s) >= 0; });
    state.tag = p.get('tag') || '';
    state.q = p.get('q') || '';
    var expand = p.get('expand');
    return { expand: expand !== null && expand !== '0' && expand !== 'false', open: p.get('case') };
  }
  function writeUrl() {
    var p = new URLSearchParams();
    if (state.status.length) p.set('status', state.status.join(','));
    if (state.tag) p.set('tag', state.tag);
    if (state.q) p.set('q', state.q);
    var s = p.toString();
    try {
      history.replaceState(null, '', '#' + s);
    } catch (e) {
      // Some browsers refuse history changes on file:// pages; the filters still work.
    }
  }

  // ---- page skeleton -------------------------------------------------------

  var app = document.getElementById('app');
  var counts = { passed: 0, flaky: 0, failed: 0, error: 0, skipped: 0 };
  var tagCounts = Object.create(null);
  cases.forEach(function (c) {
    counts[statusOf(c.status)] += 1;
    (c.tags || []).forEach(function (t) { tagCounts[t] = (tagCounts[t] || 0) + 1; });
  });

  var header = add(app, el('header', 'top'));
  var hw = add(header, el('div', 'wrap'));
  var titleRow = add(hw, el('div', 'title-row'));
  add(titleRow, el('h1', null, 'atf report'));
  var meta = add(titleRow, el('div', 'meta'));
  function metaItem(label, value) {
    if (value === undefined || value === null || value === '') return;
    var s = add(meta, el('span', null, label + ' '));
    add(s, el('b', null, value));
  }
  metaItem('started', data.started_at);
  metaItem('env', data.env);
  metaItem('shard', data.shard);
  metaItem('duration', dur(summary.duration_ms));
  document.title = 'atf report' + (data.started_at ? ' — ' + data.started_at : '');

  var cards = add(hw, el('div', 'cards'));
  var total = cases.length;
  var totalCard = add(cards, el('button', 'card total'));
  add(totalCard, el('span', 'n', num(total)));
  add(totalCard, el('span', 'l', 'cases'));
  totalCard.type = 'button';
  totalCard.title = 'Show every case';
  totalCard.addEventListener('click', function () {
    state.status = [];
    apply(true);
  });
  var statusCards = {};
  STATUSES.forEach(function (s) {
    var b = add(cards, el('button', 'card ' + s));
    b.type = 'button';
    b.title = 'Show only ' + LABEL[s] + ' cases';
    add(b, el('span', 'n', num(counts[s])));
    add(b, el('span', 'l', LABEL[s]));
    b.addEventListener('click', function () {
      state.status = state.status.length === 1 && state.status[0] === s ? [] : [s];
      apply(true);
    });
    statusCards[s] = b;
  });
  if (total > 0) {
    var bar = add(hw, el('div', 'bar'));
    STATUSES.forEach(function (s) {
      if (!counts[s]) return;
      var seg = add(bar, el('span', s));
      seg.style.width = (100 * counts[s] / total) + '%';
      seg.title = counts[s] + ' ' + LABEL[s];
    });
  }

  var toolbar = add(app, el('div', 'toolbar'));
  var tw = add(toolbar, el('div', 'wrap'));
  var toggles = add(tw, el('div', 'toggles'));
  var toggleButtons = {};
  STATUSES.forEach(function (s) {
    var b = add(toggles, el('button', 'toggle'));
    b.type = 'button';
    b.dataset.status = s;
    add(b, el('span', 'dot ' + s));
    b.appendChild(document.createTextNode(LABEL[s] + ' ' + num(counts[s])));
    b.addEventListener('click', function () {
      var i = state.status.indexOf(s);
      if (i >= 0) state.status.splice(i, 1);
      else state.status.push(s);
      state.status = STATUSES.filter(function (x) { return state.status.indexOf(x) >= 0; });
      apply(true);
    });
    toggleButtons[s] = b;
  });

  var tagSelect = add(tw, el('select'));
  tagSelect.title = 'Filter by tag';
  add(tagSelect, el('option', null, 'all tags')).value = '';
  Object.keys(tagCounts).sort().forEach(function (t) {
    add(tagSelect, el('option', null, t + ' (' + tagCounts[t] + ')')).value = t;
  });
  tagSelect.addEventListener('change', function () {
    state.tag = tagSelect.value;
    apply(true);
  });

  var search = add(tw, el('input'));
  search.type = 'search';
  search.placeholder = 'Search case names and files';
  search.setAttribute('aria-label', 'Search case names and files');
  var searchTimer = 0;
  search.addEventListener('input', function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () {
      state.q = search.value;
      apply(true);
    }, 120);
  });

  var expandBtn = add(tw, el('button', 'btn', 'Expand shown'));
  expandBtn.type = 'button';
  expandBtn.addEventListener('click', function () { setOpen(true); });
  var collapseBtn = add(tw, el('button', 'btn', 'Collapse all'));
  collapseBtn.type = 'button';
  collapseBtn.addEventListener('click', function () { setOpen(false); });
  var shown = add(tw, el('span', 'shown'));

  var main = add(app, el('main'));
  var mw = add(main, el('div', 'wrap'));

  // ---- steps ---------------------------------------------------------------

  function stepBody(body, step) {
    var failures = Array.isArray(step.failures) ? step.failures : [];
    if (failures.length) {
      add(body, el('div', 'label', 'failed expectations'));
      var table = add(body, el('table', 'failures'));
      var cg = add(table, el('colgroup'));
      ['path', 'exp', 'act', 'msg'].forEach(function (c) { add(cg, el('col', c)); });
      var hr = add(add(table, el('thead')), el('tr'));
      ['path', 'expected', 'actual', 'message'].forEach(function (h) { add(hr, el('th', null, h)); });
      var tb = add(table, el('tbody'));
      failures.forEach(function (f) {
        var tr = add(tb, el('tr'));
        add(add(tr, el('td')), el('code', null, f.path));
        add(add(tr, el('td')), el('code', null, compact(f.expected)));
        add(add(tr, el('td')), el('code', null, compact(f.actual)));
        add(tr, el('td', null, f.message));
      });
    }
    if (step.error) {
      add(body, el('div', 'label', 'error'));
      add(body, el('pre', 'text err', step.error));
    }
    if (!isEmpty(step.args)) {
      add(body, el('div', 'label', 'arguments'));
      add(body, jsonBlock(step.args));
    }
    if (step.result !== undefined && step.result !== null) {
      add(body, el('div', 'label', 'result'));
      add(body, jsonBlock(step.result));
    }
    if (!body.firstChild) add(body, el('div', 'label', 'no arguments, no result'));
  }

  function stepElement(step, showSet) {
    var status = statusOf(step.status);
    var d = el('details', 'step ' + status);
    var sum = add(d, el('summary', 'srow'));
    add(sum, el('span', 'chev', '▶'));
    add(sum, el('span', 'badge ' + status, LABEL[status]));
    var idx = '#' + step.index;
    if (showSet && step.set) idx = step.set + '.' + step.index;
    add(sum, el('span', 'sidx', idx));
    add(sum, el('span', 'kw', step.keyword));
    if (step.undo) add(sum, el('span', 'pill undo', 'undo'));
    var msg = step.keyword === 'log' && step.result && step.result.message !== undefined
      ? step.result.message : undefined;
    if (msg !== undefined) {
      add(sum, el('span', 'logmsg', typeof msg === 'string' ? msg : compact(msg)));
    }
    if (step.remark) add(sum, el('span', 'remark', step.remark));
    else if (msg === undefined) add(sum, el('span', 'remark'));
    if (step.attempts > 1) add(sum, el('span', 'pill retry', step.attempts + ' attempts'));
    add(sum, el('span', 'sdur', dur(step.duration_ms)));
    var built = false;
    function build() {
      if (built) return;
      built = true;
      stepBody(add(d, el('div', 'step-body')), step);
    }
    d.addEventListener('toggle', function () { if (d.open) build(); });
    if (status === 'failed' || status === 'error') {
      build();
      d.open = true;
    }
    return d;
  }

  function phaseBlock(parent, name, steps) {
    if (!Array.isArray(steps) || steps.length === 0) return;
    var h = add(parent, el('h3', 'phase', name + ' '));
    add(h, el('span', 'count', '(' + steps.length + (steps.length === 1 ? ' step)' : ' steps)')));
    var sets = steps.some(function (s) { return s.set; });
    var list = null;
    var lastSet;
    steps.forEach(function (s) {
      if (list === null || (sets && s.set !== lastSet)) {
        lastSet = s.set;
        if (sets) add(parent, el('div', 'set-head', s.set ? 'step set ' + s.set : 'steps'));
        list = add(parent, el('div', 'steps'));
      }
      add(list, stepElement(s, sets));
    });
  }

  // ---- cases ---------------------------------------------------------------

  function caseBody(body, c) {
    var status = statusOf(c.status);
    if (c.error) add(body, el('div', 'case-error ' + status, c.error));
    var dl = add(body, el('dl', 'case-meta'));
    function row(k, v) {
      if (v === undefined || v === null || v === '') return;
      add(dl, el('dt', null, k));
      add(dl, el('dd', null, v));
    }
    row('file', c.file);
    row('remark', c.remark);
    if (typeof c.data_index === 'number') row('data row', String(c.data_index));
    if (c.tags && c.tags.length) row('tags', c.tags.join(', '));
    if (c.matrix) row('matrix', cellLabel(c.matrix));
    if (typeof c.repetition === 'number') row('repetition', String(c.repetition));
    row('duration', dur(c.duration_ms));
    if (Array.isArray(c.attempts) && c.attempts.length) {
      add(body, el('div', 'label', 'runs (' + c.attempts.length + ' of at most ' + (c.max_attempts || c.attempts.length) + ')'));
      var ol = add(body, el('ol', 'attempts'));
      c.attempts.forEach(function (a) {
        var li = add(ol, el('li'));
        var st = statusOf(a.status);
        add(li, el('span', 'badge ' + st, LABEL[st]));
        li.appendChild(document.createTextNode(' ' + dur(a.duration_ms) + (a.error ? ' — ' + visible(a.error) : '')));
      });
    }
    PHASES.forEach(function (p) { phaseBlock(body, p, c[p]); });
    if (!PHASES.some(function (p) { return c[p] && c[p].length; })) {
      add(body, el('div', 'label', 'no step ran'));
    }
  }

  var chipsByTag = Object.create(null);
  function tagChip(t) {
    var chip = el('span', 'tag', t);
    (chipsByTag[t] = chipsByTag[t] || []).push(chip);
    chip.title = 'Show only cases tagged ' + t;
    chip.addEventListener('click', function (e) {
      e.preventDefault();
      e.stopPropagation();
      state.tag = state.tag === t ? '' : t;
      apply(true);
    });
    return chip;
  }

  var rows = [];
  function ensureBody(r) {
    if (r.built) return;
    r.built = true;
    caseBody(add(r.el, el('div', 'case-body')), r.c);
  }

  if (suites.length) {
    add(mw, el('h2', null, 'Suites'));
    var slist = add(mw, el('div', 'list'));
    suites.forEach(function (s) {
      var status = s.status ? statusOf(s.status) : 'passed';
      var d = add(slist, el('details', 'suite ' + status));
      var sum = add(d, el('summary', 'row'));
      add(sum, el('span', 'chev', '▶'));
      add(sum, el('span', 'badge ' + status, LABEL[status]));
      add(sum, el('span', 'name', s.file));
      add(sum, el('span', 'file', ((s.prepare || []).length + (s.cleanup || []).length) + ' suite steps'));
      add(sum, el('span', 'tags'));
      var ms = (s.prepare || []).concat(s.cleanup || []).reduce(function (a, x) { return a + (x.duration_ms || 0); }, 0);
      add(sum, el('span', 'dur', dur(ms)));
      var built = false;
      d.addEventListener('toggle', function () {
        if (!d.open || built) return;
        built = true;
        var body = add(d, el('div', 'suite-body'));
        phaseBlock(body, 'prepare', s.prepare);
        phaseBlock(body, 'cleanup', s.cleanup);
      });
    });
  }

  // The matrix grid: a row per case, a column per cell, so a case that
  // passes in one cell and fails in another shows at a glance.
  function cellLabel(m) {
    return Object.keys(m).map(function (k) {
      var v = m[k];
      return k + '=' + (typeof v === 'string' ? v : JSON.stringify(v));
    }).join(', ');
  }
  var matrixCases = cases.filter(function (c) { return c.matrix && typeof c.matrix === 'object'; });
  if (matrixCases.length) {
    var cellOrder = [];
    var caseOrder = [];
    var grid = Object.create(null);
    matrixCases.forEach(function (c) {
      var label = cellLabel(c.matrix);
      var suffix = ' [' + label + ']';
      var base = String(c.name || '');
      if (base.slice(-suffix.length) === suffix) base = base.slice(0, -suffix.length);
      var key = (c.file || '') + '\n' + base;
      if (cellOrder.indexOf(label) < 0) cellOrder.push(label);
      if (!grid[key]) { grid[key] = { name: base, file: c.file, cells: Object.create(null) }; caseOrder.push(key); }
      grid[key].cells[label] = c;
    });
    add(mw, el('h2', null, 'Matrix'));
    var table = add(mw, el('table', 'matrix'));
    var hr = add(add(table, el('thead')), el('tr'));
    add(hr, el('th', null, 'case'));
    cellOrder.forEach(function (l) { add(hr, el('th', null, l)); });
    var tb = add(table, el('tbody'));
    caseOrder.forEach(function (key) {
      var g = grid[key];
      var tr = add(tb, el('tr'));
      add(tr, el('td', 'name', g.name)).title = g.file || '';
      cellOrder.forEach(function (l) {
        var c = g.cells[l];
        if (!c) { add(tr, el('td', 'none', '—')); return; }
        var st = statusOf(c.status);
        var b = add(add(tr, el('td', 'cell ' + st)), el('span', 'badge ' + st, LABEL[st]));
        b.title = c.name + (c.error ? ' — ' + c.error : '');
        b.addEventListener('click', function () { location.hash = 'case=' + encodeURIComponent(c.name); });
      });
    });
  }

  add(mw, el('h2', null, 'Cases'));
  var list = add(mw, el('div', 'list'));
  var empty = add(mw, el('div', 'empty', cases.length ? 'No case matches the filters.' : 'This run selected no case.'));
  empty.hidden = true;
  var frag = document.createDocumentFragment();
  cases.forEach(function (c, i) {
    var status = statusOf(c.status);
    var d = el('details', 'case ' + status);
    d.dataset.case = String(i);
    d.dataset.status = status;
    var sum = add(d, el('summary', 'row'));
    add(sum, el('span', 'chev', '▶'));
    add(sum, el('span', 'badge ' + status, LABEL[status]));
    var name = add(sum, el('span', 'name', c.name));
    name.title = c.name + (c.remark ? ' — ' + c.remark : '');
    add(sum, el('span', 'file', c.file)).title = c.file || '';
    var tags = add(sum, el('span', 'tags'));
    (c.tags || []).forEach(function (t) { add(tags, tagChip(t)); });
    add(sum, el('span', 'dur', dur(c.duration_ms)));
    var r = {
      c: c,
      el: d,
      status: status,
      tags: c.tags || [],
      text: (String(c.name || '') + '\n' + String(c.file || '')).toLowerCase(),
      built: false
    };
    d.addEventListener('toggle', function () { if (d.open) ensureBody(r); });
    rows.push(r);
    frag.appendChild(d);
  });
  list.appendChild(frag);

  // ---- filtering -----------------------------------------------------------

  var litTag = '';
  function apply(fromUser) {
    var q = state.q.trim().toLowerCase();
    var n = 0;
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      var show = (state.status.length === 0 || state.status.indexOf(r.status) >= 0) &&
        (!state.tag || r.tags.indexOf(state.tag) >= 0) &&
        (!q || r.text.indexOf(q) >= 0);
      if (r.el.hidden === show) r.el.hidden = !show;
      if (show) n++;
    }
    STATUSES.forEach(function (s) {
      var on = state.status.indexOf(s) >= 0;
      toggleButtons[s].setAttribute('aria-pressed', on ? 'true' : 'false');
      statusCards[s].setAttribute('aria-pressed', on && state.status.length === 1 ? 'true' : 'false');
    });
    totalCard.setAttribute('aria-pressed', state.status.length === 0 ? 'true' : 'false');
    if (tagSelect.value !== state.tag) {
      if (state.tag && !Object.prototype.hasOwnProperty.call(tagCounts, state.tag)) {
        add(tagSelect, el('option', null, state.tag + ' (0)')).value = state.tag;
      }
      tagSelect.value = state.tag;
    }
    if (search.value !== state.q) search.value = state.q;
    if (litTag !== state.tag) {
      (chipsByTag[litTag] || []).forEach(function (c) { c.classList.remove('on'); });
      (chipsByTag[state.tag] || []).forEach(function (c) { c.classList.add('on'); });
      litTag = state.tag;
    }
    shown.textContent = n === rows.length
      ? num(rows.length) + (rows.length === 1 ? ' case' : ' cases')
      : num(n) + ' of ' + num(rows.length) + ' cases shown';
    list.hidden = n === 0;
    empty.hidden = n !== 0;
    if (fromUser) writeUrl();
    return n;
  }

  function setOpen(open) {
    rows.forEach(function (r) {
      if (open && r.el.hidden) return;
      if (open) ensureBody(r);
      r.el.open = open;
    });
  }

  function fromUrl() {
    var extra = readUrl();
    apply(false);
    if (extra.expand) setOpen(true);
    if (extra.open) {
      for (var i = 0; i < rows.length; i++) {
        if (rows[i].c.name === extra.open) {
          rows[i].el.hidden = false;
          ensureBody(rows[i]);
          rows[i].el.open = true;
          rows[i].el.scrollIntoView({ block: 'start' });
          break;
        }
      }
    }
  }

  window.addEventListener('hashchange', fromUrl);
  fromUrl();
})();
