// atf load report. Reads the run from the JSON data element and draws the
// summary, thresholds, charts (inline SVG) and tables with DOM calls and
// textContent only: nothing from a run is ever parsed as markup.
'use strict';
(function () {
  var data;
  try {
    data = JSON.parse(document.getElementById('data').textContent);
  } catch (e) {
    document.getElementById('app').textContent = 'The load data cannot be read: ' + e;
    return;
  }
  var SVG = 'http://www.w3.org/2000/svg';
  var COLORS = ['#0969da', '#1a7f37', '#bf8700', '#cf222e', '#8250df', '#1b7c83', '#bc4c00', '#6e7781'];

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function sv(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function ms(v) {
    if (typeof v !== 'number' || !isFinite(v)) return '-';
    if (v >= 1000) return (v / 1000).toFixed(2) + 's';
    if (v >= 100) return v.toFixed(0) + 'ms';
    if (v >= 10) return v.toFixed(1) + 'ms';
    return v.toFixed(2) + 'ms';
  }
  function num(v, digits) {
    if (typeof v !== 'number' || !isFinite(v)) return '-';
    return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  }
  function nice(max) {
    if (!(max > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(max)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= max) return steps[i] * p;
    return 10 * p;
  }

  // A line chart: series of [x, y] points, y from 0, optional custom x ticks.
  function chart(id, title, series, opt) {
    var W = 1100, H = 280, L = 64, R = 16, T = 30, B = 40;
    var svg = sv('svg', { id: id, class: 'chart', viewBox: '0 0 ' + W + ' ' + H, role: 'img' });
    svg.appendChild(sv('title', {}, title));
    svg.appendChild(sv('text', { x: L, y: 18, class: 'title' }, title));
    var xmax = opt.xmax, ymax = 0;
    series.forEach(function (s) {
      s.points.forEach(function (p) {
        if (xmax === undefined || p[0] > xmax) xmax = Math.max(xmax || 0, p[0]);
        if (p[1] > ymax) ymax = p[1];
      });
    });
    if (!(xmax > 0)) xmax = 1;
    ymax = nice(ymax * 1.05);
    var px = function (x) { return L + (W - L - R) * (x / xmax); };
    var py = function (y) { return T + (H - T - B) * (1 - y / ymax); };
    for (var i = 0; i <= 4; i++) {
      var y = ymax * i / 4;
      svg.appendChild(sv('line', { x1: L, x2: W - R, y1: py(y), y2: py(y), class: 'grid' }));
      svg.appendChild(sv('text', { x: L - 6, y: py(y) + 4, 'text-anchor': 'end' }, opt.yfmt(y)));
    }
    var xt = opt.xticks || (function () {
      var step = nice(xmax / 8), out = [];
      for (var x = 0; x <= xmax + 1e-9; x += step) out.push([x, String(Math.round(x * 100) / 100) + (opt.xunit || '')]);
      return out;
    })();
    xt.forEach(function (t) {
      svg.appendChild(sv('line', { x1: px(t[0]), x2: px(t[0]), y1: T, y2: H - B, class: 'grid' }));
      svg.appendChild(sv('text', { x: px(t[0]), y: H - B + 16, 'text-anchor': 'middle' }, t[1]));
    });
    svg.appendChild(sv('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'axis' }));
    svg.appendChild(sv('line', { x1: L, x2: L, y1: T, y2: H - B, class: 'axis' }));
    if (opt.xlabel) svg.appendChild(sv('text', { x: (L + W - R) / 2, y: H - 6, 'text-anchor': 'middle' }, opt.xlabel));
    var lx = L + 10;
    series.forEach(function (s, i) {
      var color = s.color || COLORS[i % COLORS.length];
      if (s.points.length === 1) {
        svg.appendChild(sv('circle', { cx: px(s.points[0][0]), cy: py(s.points[0][1]), r: 3, fill: color, 'data-series': s.name }));
      }
      var d = s.points.map(function (p, j) {
        return (j ? 'L' : 'M') + px(p[0]).toFixed(1) + ' ' + py(p[1]).toFixed(1);
      }).join(' ');
      var path = sv('path', { d: d, class: 'line', stroke: color, 'data-series': s.name });
      if (s.dash) path.setAttribute('stroke-dasharray', '5 4');
      path.appendChild(sv('title', {}, s.name));
      svg.appendChild(path);
      svg.appendChild(sv('rect', { x: lx, y: T + 2, width: 12, height: 3, fill: color }));
      var label = sv('text', { x: lx + 16, y: T + 7, class: 'legend' }, s.name);
      svg.appendChild(label);
      lx += 28 + s.name.length * 6.5;
    });
    return svg;
  }

  var app = document.getElementById('app');
  var main = el('main');
  app.appendChild(main);
  var c = data.config || {}, s = data.summary || {}, total = data.total || {};
  main.appendChild(el('h1', null, 'atf load report'));
  var shape = c.model === 'open'
    ? 'open model, ' + c.rate + ' iterations/s, up to ' + c.max_vus + ' VUs'
    : 'closed model, ' + c.vus + ' VUs';
  var parts = [shape];
  if (c.duration_s) parts.push(c.duration_s + ' s');
  if (c.iterations) parts.push(c.iterations + ' iterations');
  if (c.ramp_s) parts.push('ramp ' + c.ramp_s + ' s');
  if (c.warmup_s) parts.push('warm-up ' + c.warmup_s + ' s');
  parts.push('iteration: ' + c.iteration);
  if (data.env) parts.push('env ' + data.env);
  if (data.shards && data.shards.length) parts.push('shards ' + data.shards.join(', '));
  if (s.interrupted) parts.push('interrupted');
  main.appendChild(el('div', 'sub', (data.started_at || '') + ' · ' + parts.join(' · ')));

  var cards = el('div', 'cards');
  function card(k, v, bad) {
    var d = el('div', 'card' + (bad ? ' bad' : ''));
    d.appendChild(el('div', 'k', k));
    d.appendChild(el('div', 'v', v));
    d.setAttribute('data-card', k);
    cards.appendChild(d);
  }
  var dur = s.duration_s || 0;
  card('iterations', num(s.iterations, 0));
  card('iterations/s', num(dur ? s.iterations / dur : 0, 1));
  card('requests/s', num(dur ? s.requests / dur : 0, 1));
  card('p95', ms(total.p95_ms));
  card('p99', ms(total.p99_ms));
  card('errors', num(total.error_pct, 2) + '%', s.errors > 0);
  card('failed iterations', num(s.failed_iterations, 0), s.failed_iterations > 0);
  card('dropped', num(s.dropped, 0), s.dropped > 0);
  card('max VUs', num(s.max_vus, 0));
  main.appendChild(cards);

  if (data.thresholds && data.thresholds.length) {
    main.appendChild(el('h2', null, 'Thresholds'));
    var ul = el('ul', 'thresholds panel');
    data.thresholds.forEach(function (t) {
      var li = el('li');
      li.setAttribute('data-ok', t.ok ? 'true' : 'false');
      li.appendChild(el('span', 'verdict', t.ok ? '✓ met' : '✗ breached'));
      li.appendChild(el('span', 'expr', t.expr));
      li.appendChild(el('span', 'muted', '  measured ' + t.measured + ' · ' + t.source));
      ul.appendChild(li);
    });
    main.appendChild(ul);
  }

  var series = data.series || [];
  main.appendChild(el('h2', null, 'Over time'));
  var p1 = el('div', 'panel');
  var pick = function (key) { return series.map(function (p) { return [p.t, p[key]]; }); };
  p1.appendChild(chart('chart-latency', 'Latency percentiles of step samples (ms)', [
    { name: 'p50', points: pick('p50_ms') },
    { name: 'p90', points: pick('p90_ms') },
    { name: 'p95', points: pick('p95_ms') },
    { name: 'p99', points: pick('p99_ms') },
    { name: 'max', points: pick('max_ms'), dash: true, color: '#6e7781' }
  ], { yfmt: ms, xunit: 's', xlabel: 'seconds' }));
  var per = function (key) {
    return series.map(function (p) { return [p.t, p.dt > 0 ? p[key] / p.dt : 0]; });
  };
  p1.appendChild(chart('chart-throughput', 'Throughput and errors (per second)', [
    { name: 'requests/s', points: per('requests') },
    { name: 'iterations/s', points: per('iterations') },
    { name: 'errors/s', points: per('errors'), color: '#cf222e' },
    { name: 'dropped/s', points: per('dropped'), color: '#bf8700', dash: true },
    { name: 'VUs', points: pick('vus'), color: '#6e7781', dash: true }
  ], { yfmt: function (v) { return num(v, v < 10 ? 1 : 0); }, xunit: 's', xlabel: 'seconds' }));
  main.appendChild(p1);

  // The distribution: latency by percentile, x spread as -log10(1 - p).
  main.appendChild(el('h2', null, 'Latency distribution'));
  var p2 = el('div', 'panel');
  var spread = function (p) { return -Math.log10(Math.max(1 - p / 100, 1e-5)); };
  var dist = [{ name: 'TOTAL', points: (total.distribution || []).map(function (d) { return [spread(d[0]), d[1]]; }), color: '#1f2328' }];
  (data.steps || []).slice(0, 7).forEach(function (r) {
    dist.push({ name: r.label, points: (r.distribution || []).map(function (d) { return [spread(d[0]), d[1]]; }) });
  });
  p2.appendChild(chart('chart-distribution', 'Latency by percentile (ms)', dist, {
    yfmt: ms, xmax: 5,
    xticks: [[0, '0%'], [1, '90%'], [2, '99%'], [3, '99.9%'], [4, '99.99%'], [5, '99.999%']],
    xlabel: 'percentile'
  }));
  main.appendChild(p2);

  function rowsTable(id, title, rows, withTotal) {
    main.appendChild(el('h2', null, title));
    var wrap = el('div', 'panel');
    var t = el('table');
    t.id = id;
    var head = el('tr');
    ['Label', '# Samples', 'Average', 'Median', '90% Line', '95% Line', '99% Line', 'Min', 'Max',
      'Error %', 'Throughput', 'Received KB/sec', 'Sent KB/sec'].forEach(function (h) { head.appendChild(el('th', null, h)); });
    var thead = el('thead');
    thead.appendChild(head);
    t.appendChild(thead);
    var body = el('tbody');
    var add = function (r, label, cls) {
      var tr = el('tr', cls);
      tr.setAttribute('data-label', label);
      [label, num(r.samples, 0), ms(r.mean_ms), ms(r.median_ms), ms(r.p90_ms), ms(r.p95_ms), ms(r.p99_ms),
        ms(r.min_ms), ms(r.max_ms), num(r.error_pct, 2) + '%', num(r.throughput, 1) + '/s',
        num(r.received_kbps, 2), num(r.sent_kbps, 2)].forEach(function (v, i) {
        var td = el('td', i === 9 && r.errors > 0 ? 'bad' : null, v);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    };
    rows.forEach(function (r) { add(r, r.label); });
    if (withTotal) add(total, 'TOTAL', 'total');
    t.appendChild(body);
    wrap.appendChild(t);
    main.appendChild(wrap);
  }
  rowsTable('steps', 'Steps', data.steps || [], true);
  rowsTable('cases', 'Cases (whole iterations, from their intended start)', data.cases || [], false);

  var bad = (data.steps || []).concat(data.cases || []).filter(function (r) { return r.errors > 0; });
  if (bad.length) {
    main.appendChild(el('h2', null, 'Errors'));
    var ep = el('div', 'panel errors');
    bad.forEach(function (r) {
      ep.appendChild(el('strong', null, r.label + ' — ' + r.errors + ' of ' + r.samples));
      var kinds = Object.keys(r.errors_by_kind || {}).sort(function (a, b) { return r.errors_by_kind[b] - r.errors_by_kind[a]; });
      var list = el('ul');
      kinds.forEach(function (k) { list.appendChild(el('li', null, r.errors_by_kind[k] + ' × ' + k)); });
      ep.appendChild(list);
      (r.messages || []).forEach(function (m) { ep.appendChild(el('pre', null, m)); });
    });
    main.appendChild(ep);
  }
})();
