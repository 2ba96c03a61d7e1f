// The xtgrad model report: draws the ten sections of the page from the JSON document inlined in #report-data
// (schema: docs/report.md). Charts are SVG written here; nothing is loaded from anywhere.
(function () {
  'use strict';

  const t0 = performance.now();
  const status = window.__xtgrad;
  const doc = JSON.parse(document.getElementById('report-data').textContent);
  const runs = doc.runs;
  const PALETTE = ['#2f6fdf', '#e8590c', '#2b9348', '#9c36b5', '#d6336c', '#0c8599', '#5c940d', '#495057'];
  const runColor = (i) => PALETTE[i % PALETTE.length];
  const DASHES = ['', '6 4', '2 3', '10 3 2 3'];

  // ---------------------------------------------------------------------------------------------------------
  // DOM helpers. Text always goes in as text nodes: nothing from the data is ever parsed as HTML.

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, kids);
    return el;
  }
  const SVG_NS = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    append(el, kids);
    return el;
  }
  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const k in attrs) {
      const v = attrs[k];
      if (v === null || v === undefined || v === false) continue;
      if (k === 'on') for (const ev in v) el.addEventListener(ev, v[ev]);
      else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  function append(el, kids) {
    for (const k of kids) {
      if (k === null || k === undefined || k === false) continue;
      if (Array.isArray(k)) append(el, k);
      else el.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
    }
  }
  function widthOf(el, fallback) {
    const w = Math.floor(el.getBoundingClientRect().width);
    return w > 50 ? w : fallback;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Numbers

  function fmt(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 1 : 2) + 'G';
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 1 : 2) + 'M';
    if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + 'k';
    if (a >= 100) return v.toFixed(0);
    if (a === 0) return '0';
    if (a >= 1e-3) return String(+v.toPrecision(digits || 3));
    return v.toExponential(1);
  }
  const fmtInt = (v) => (v === null || v === undefined || !isFinite(v) ? '–' : Math.round(v).toLocaleString('en-US'));
  const fmtPct = (v, d) => (v === null || v === undefined || !isFinite(v) ? '–' : (100 * v).toFixed(d === undefined ? 1 : d) + '%');
  function fmtSeconds(sec) {
    if (sec === null || sec === undefined || !isFinite(sec)) return '–';
    if (sec === 0) return '0';
    if (sec < 1e-3) return (sec * 1e6).toFixed(0) + ' µs';
    if (sec < 1) return +(sec * 1e3).toPrecision(3) + ' ms';
    if (sec < 120) return +sec.toPrecision(3) + ' s';
    if (sec < 7200) return (sec / 60).toFixed(1) + ' min';
    return (sec / 3600).toFixed(2) + ' h';
  }
  const finite = (v) => typeof v === 'number' && isFinite(v);
  function extent(values, positiveOnly) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) {
      if (!finite(v) || (positiveOnly && v <= 0)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return lo <= hi ? [lo, hi] : null;
  }
  function niceStep(range, n) {
    const raw = range / Math.max(1, n);
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / p;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
  }

  // An axis: domain, ticks and a mapping to pixels. ax: {min, max, log, nice, ticks, format}
  function makeAxis(values, ax, r0, r1) {
    ax = ax || {};
    const e = extent(values, ax.log) || (ax.log ? [1, 10] : [0, 1]);
    let lo = ax.min !== undefined ? ax.min : e[0];
    let hi = ax.max !== undefined ? ax.max : e[1];
    if (ax.zero && !ax.log) lo = Math.min(lo, 0);
    if (lo === hi) {
      if (ax.log) { lo /= 2; hi *= 2; } else { const d = Math.abs(lo) * 0.1 || 1; lo -= d; hi += d; }
    }
    if (ax.pad && !ax.log) {
      const d = (hi - lo) * ax.pad;
      if (ax.min === undefined) lo -= d;
      if (ax.max === undefined) hi += d;
    }
    let ticks;
    if (ax.log) {
      if (ax.min === undefined) lo = lo / Math.pow(hi / lo, 0.04);
      if (ax.max === undefined) hi = hi * Math.pow(hi / lo, 0.04);
      ticks = logTicks(lo, hi);
    } else {
      const st = niceStep(hi - lo, ax.ticks || 5);
      if (ax.min === undefined && ax.nice !== false) lo = Math.floor(lo / st + 1e-9) * st;
      if (ax.max === undefined && ax.nice !== false) hi = Math.ceil(hi / st - 1e-9) * st;
      ticks = [];
      for (let v = Math.ceil(lo / st - 1e-9) * st; v <= hi + st * 1e-6; v += st) ticks.push(+v.toPrecision(12));
    }
    const l0 = ax.log ? Math.log10(lo) : lo, l1 = ax.log ? Math.log10(hi) : hi;
    const k = (r1 - r0) / (l1 - l0);
    const map = (v) => r0 + ((ax.log ? Math.log10(v) : v) - l0) * k;
    const inv = (p) => { const u = l0 + (p - r0) / k; return ax.log ? Math.pow(10, u) : u; };
    return { lo, hi, ticks, map, inv, log: !!ax.log, format: ax.format || (ax.log ? fmtLog : fmt) };
  }
  const SUPERSCRIPT = { '-': '⁻', 0: '⁰', 1: '¹', 2: '²', 3: '³', 4: '⁴', 5: '⁵', 6: '⁶', 7: '⁷', 8: '⁸', 9: '⁹' };
  // A log-axis label: 10⁻⁴ for powers of ten far from 1, else the number.
  function fmtLog(v) {
    const e = Math.round(Math.log10(v));
    if (Math.abs(e) >= 3 && Math.abs(v / Math.pow(10, e) - 1) < 1e-6) return '10' + String(e).split('').map((c) => SUPERSCRIPT[c]).join('');
    return fmt(v);
  }
  function logTicks(lo, hi) {
    const e0 = Math.floor(Math.log10(lo)), e1 = Math.ceil(Math.log10(hi));
    const span = Math.log10(hi / lo);
    const mult = span < 0.7 ? [1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9] : span < 1.5 ? [1, 2, 3, 5] : span < 3 ? [1, 2, 5] : [1];
    const every = span > 9 ? Math.ceil(span / 8) : 1;
    const out = [];
    for (let e = e0; e <= e1; e++) {
      if ((e - e0) % every) continue;
      for (const m of mult) {
        const v = m * Math.pow(10, e);
        if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(+v.toPrecision(6));
      }
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Tooltip: one floating box for the whole page.

  const tip = h('div', { id: 'tip', role: 'tooltip' });
  function showTip(content, x, y) {
    tip.textContent = '';
    append(tip, [content]);
    tip.style.display = 'block';
    const r = tip.getBoundingClientRect();
    let left = x + 14, top = y + 14;
    if (left + r.width > window.innerWidth - 8) left = Math.max(8, x - r.width - 14);
    if (top + r.height > window.innerHeight - 8) top = Math.max(8, y - r.height - 14);
    tip.style.left = left + 'px';
    tip.style.top = top + 'px';
  }
  function hideTip() { tip.style.display = 'none'; }

  // ---------------------------------------------------------------------------------------------------------
  // Colour scales

  const DIVERGING = [[33, 102, 172], [103, 169, 207], [209, 229, 240], [247, 247, 247], [253, 219, 199], [239, 138, 98], [178, 24, 43]];
  const HEAT = [[255, 255, 255], [255, 237, 204], [254, 196, 138], [245, 126, 76], [214, 55, 43], [150, 10, 30]];
  const BLUES = [[247, 251, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
  const VIRIDIS = [[68, 1, 84], [65, 68, 135], [42, 120, 142], [34, 168, 132], [122, 209, 81], [253, 231, 37]];
  function ramp(stops, t) {
    t = Math.max(0, Math.min(1, t));
    const x = t * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(x)), f = x - i;
    const a = stops[i], b = stops[i + 1];
    return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
  }
  const css = (c) => `rgb(${c[0] | 0},${c[1] | 0},${c[2] | 0})`;
  const inkOn = (c) => (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2] < 120 ? '#fff' : '#1c2230');
  function gradientCss(stops) {
    return 'linear-gradient(to right,' + stops.map((c, i) => css(c) + ' ' + (100 * i / (stops.length - 1)).toFixed(0) + '%').join(',') + ')';
  }
  function scaleBar(stops, left, right, label) {
    return h('div', { class: 'scalebar' }, label ? h('span', null, label) : null, h('span', null, left),
      h('span', { class: 'bar', style: { background: gradientCss(stops) } }), h('span', null, right));
  }

  // ---------------------------------------------------------------------------------------------------------
  // Charts

  function legend(items) {
    return h('div', { class: 'legend' }, items.map((it) => h('span', { class: 'item' },
      s('svg', { width: it.square ? 12 : 24, height: 10 },
        it.marker ? s('circle', { cx: 12, cy: 5, r: 3.5, fill: it.color }) : null,
        it.square ? s('rect', { x: 1, y: 0, width: 10, height: 10, rx: 2, fill: it.color }) : null,
        it.line === false || it.square ? null : s('line', { x1: 1, y1: 5, x2: 23, y2: 5, stroke: it.color, 'stroke-width': it.width || 2, 'stroke-dasharray': it.dash || null })),
      it.name)));
  }

  function chartBox(title, hint) {
    return h('figure', { class: 'chart-box' }, h('figcaption', null, title, hint ? h('span', { class: 'hint' }, hint) : null));
  }

  // Axes, grid lines and labels of a frame; returns the plot area.
  function drawAxes(svg, f) {
    const { W, H, m, x, y } = f;
    let lastY = Infinity;
    for (const t of y.ticks) {
      const py = y.map(t);
      if (py < m.t - 0.5 || py > H - m.b + 0.5) continue;
      if (Math.abs(lastY - py) < 13) continue;  // no overlapping tick labels
      lastY = py;
      svg.appendChild(s('line', { class: 'grid', x1: m.l, x2: W - m.r, y1: py, y2: py }));
      svg.appendChild(s('text', { x: m.l - 6, y: py, 'text-anchor': 'end', 'dominant-baseline': 'middle' }, y.format(t)));
    }
    if (f.xCategories) {
      f.xCategories.forEach((c, i) => svg.appendChild(s('text', { x: f.xCategoryAt(i), y: H - m.b + 15, 'text-anchor': 'middle' }, c)));
    } else {
      let lastRight = -Infinity;
      for (const t of x.ticks) {
        const px = x.map(t);
        if (px < m.l - 0.5 || px > W - m.r + 0.5) continue;
        const label = x.format(t);
        if (px - label.length * 3.3 < lastRight + 6) continue;  // no overlapping tick labels
        lastRight = px + label.length * 3.3;
        svg.appendChild(s('line', { class: 'axis', x1: px, x2: px, y1: H - m.b, y2: H - m.b + 4 }));
        svg.appendChild(s('text', { x: px, y: H - m.b + 16, 'text-anchor': 'middle' }, label));
      }
    }
    svg.appendChild(s('line', { class: 'axis', x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }));
    svg.appendChild(s('line', { class: 'axis', x1: m.l, x2: m.l, y1: m.t, y2: H - m.b }));
    if (f.xLabel) svg.appendChild(s('text', { class: 'axis-label', x: (m.l + W - m.r) / 2, y: H - 6, 'text-anchor': 'middle' }, f.xLabel));
    if (f.yLabel) svg.appendChild(s('text', { class: 'axis-label', transform: `translate(${Math.max(13, m.l - f.tickWidth - 16)},${(m.t + H - m.b) / 2}) rotate(-90)`, 'text-anchor': 'middle' }, f.yLabel));
  }

  // The left margin that fits an axis's tick labels and its title.
  function leftMargin(y, hasLabel) {
    const w = tickWidth(y);
    return { margin: Math.max(40, Math.ceil(w + (hasLabel ? 30 : 12))), width: w };
  }
  function tickWidth(y) {
    let n = 0;
    for (const t of y.ticks) n = Math.max(n, y.format(t).length);
    return n * 6.3;
  }

  function pathOf(points, x, y, step) {
    let d = '', open = false, prev = null;
    for (const p of points) {
      const ok = finite(p[0]) && finite(p[1]) && (!y.log || p[1] > 0);
      if (!ok) { open = false; continue; }
      const px = x.map(p[0]).toFixed(1), py = y.map(p[1]).toFixed(1);
      if (!open) d += `M${px},${py}`;
      else if (step) d += `H${px}V${py}`;
      else d += `L${px},${py}`;
      open = true;
      prev = p;
    }
    return prev ? d : '';
  }

  // Lines over a numeric x. o: {series: [{name, color, dash, width, points: [[x, y]], markers, step}],
  //   x: axis, y: axis, xLabel, yLabel, width, height, refs: [{y, label}], fmtX}
  function lineChart(o) {
    const W = o.width || 520, H = o.height || 240;
    const m = { l: 56, r: 14, t: 10, b: o.xLabel ? 40 : 26 };
    const xs = [], ys = [];
    for (const se of o.series) for (const p of se.points) { xs.push(p[0]); ys.push(p[1]); }
    for (const r of o.refs || []) ys.push(r.y);
    const y = makeAxis(ys, o.y, H - m.b, m.t);
    const lm = leftMargin(y, !!o.yLabel);
    m.l = lm.margin;
    const x = makeAxis(xs, o.x, m.l, W - m.r);
    const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img' });
    drawAxes(svg, { W, H, m, x, y, xLabel: o.xLabel, yLabel: o.yLabel, tickWidth: lm.width });
    const clipId = 'clip' + Math.random().toString(36).slice(2);
    svg.appendChild(s('clipPath', { id: clipId }, s('rect', { x: m.l - 5, y: m.t - 5, width: W - m.l - m.r + 10, height: H - m.t - m.b + 10 })));
    const plot = s('g', { 'clip-path': `url(#${clipId})` });
    svg.appendChild(plot);
    for (const r of o.refs || []) {
      if (y.log && r.y <= 0) continue;
      const py = y.map(r.y);
      plot.appendChild(s('line', { class: 'ref', x1: m.l, x2: W - m.r, y1: py, y2: py }));
      svg.appendChild(s('text', { x: W - m.r - 4, y: py - 4, 'text-anchor': 'end' }, r.label));
    }
    for (const se of o.series) {
      if (se.area) {  // filled down to the axis' bottom
        const pts = se.points.filter((p) => finite(p[0]) && finite(p[1]) && (!y.log || p[1] > 0));
        if (pts.length) {
          const base = (H - m.b).toFixed(1);
          let d = `M${x.map(pts[0][0]).toFixed(1)},${base}`;
          for (const p of pts) d += (se.step ? `H${x.map(p[0]).toFixed(1)}V` : `L${x.map(p[0]).toFixed(1)},`) + y.map(p[1]).toFixed(1);
          d += `L${x.map(pts[pts.length - 1][0]).toFixed(1)},${base}Z`;
          plot.appendChild(s('path', { d, fill: se.color, 'fill-opacity': se.areaOpacity || 0.35, stroke: 'none' }));
        }
        continue;
      }
      const d = pathOf(se.points, x, y, se.step);
      if (d) plot.appendChild(s('path', { d, fill: 'none', stroke: se.color, 'stroke-width': se.width || 1.8, 'stroke-dasharray': se.dash || null, 'stroke-linejoin': 'round', 'stroke-linecap': 'round', opacity: se.opacity || null }));
      if (se.markers) for (const p of se.points) {
        if (!finite(p[0]) || !finite(p[1]) || (y.log && p[1] <= 0)) continue;
        plot.appendChild(s('circle', { cx: x.map(p[0]), cy: y.map(p[1]), r: 3.2, fill: '#fff', stroke: se.color, 'stroke-width': 1.8 }));
      }
    }
    // Hover: a guide line and, for each series, the point nearest the pointer's x.
    const guide = s('line', { class: 'guide', y1: m.t, y2: H - m.b, visibility: 'hidden' });
    const dots = s('g');
    svg.appendChild(guide);
    svg.appendChild(dots);
    const sorted = o.series.map((se) => se.points.filter((p) => finite(p[0]) && finite(p[1])).sort((a, b) => a[0] - b[0]));
    const overlay = s('rect', { x: m.l, y: m.t, width: W - m.l - m.r, height: H - m.t - m.b, fill: 'transparent' });
    svg.appendChild(overlay);
    const fmtX = o.fmtX || ((v) => fmt(v, 4));
    overlay.addEventListener('mousemove', (ev) => {
      const box = svg.getBoundingClientRect();
      const px = (ev.clientX - box.left) * (W / box.width);
      const xv = x.inv(px);
      const rows = [];
      dots.textContent = '';
      let gx = null;
      sorted.forEach((pts, i) => {
        if (!pts.length) return;
        let lo = 0, hi = pts.length - 1;
        while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (pts[mid][0] < xv) lo = mid; else hi = mid; }
        const p = Math.abs(pts[lo][0] - xv) <= Math.abs(pts[hi][0] - xv) ? pts[lo] : pts[hi];
        if (Math.abs(x.map(p[0]) - px) > 40) return;
        if (y.log && p[1] <= 0) return;
        gx = gx === null ? x.map(p[0]) : gx;
        dots.appendChild(s('circle', { cx: x.map(p[0]), cy: y.map(p[1]), r: 4, fill: o.series[i].color, stroke: '#fff', 'stroke-width': 1.5 }));
        rows.push(h('tr', null, h('td', null, h('span', { class: 'swatch-dot', style: { background: o.series[i].color } })), h('td', null, o.series[i].name),
          h('td', { class: 'num' }, y.format === fmt ? fmt(p[1], 4) : y.format(p[1])), h('td', { class: 'muted' }, '@ ' + fmtX(p[0]))));
      });
      if (!rows.length) { hideTip(); guide.setAttribute('visibility', 'hidden'); return; }
      guide.setAttribute('x1', gx);
      guide.setAttribute('x2', gx);
      guide.setAttribute('visibility', 'visible');
      showTip(h('div', null, o.yLabel ? h('b', null, o.yLabel) : null, h('table', null, rows)), ev.clientX, ev.clientY);
    });
    overlay.addEventListener('mouseleave', () => { hideTip(); dots.textContent = ''; guide.setAttribute('visibility', 'hidden'); });
    if (o.onClickX) {
      overlay.style.cursor = 'pointer';
      overlay.addEventListener('click', (ev) => {
        const box = svg.getBoundingClientRect();
        o.onClickX(x.inv((ev.clientX - box.left) * (W / box.width)));
      });
    }
    return svg;
  }

  // Points in a plane. o: {points: [{x, y, color, r, opacity, tip(): Node, click()}], x, y, xLabel, yLabel,
  //   width, height, diagonal, labels: [{x, y, text}], highlight: index}
  function scatterChart(o) {
    const W = o.width || 300, H = o.height || 300;
    const m = Object.assign({ l: 44, r: 12, t: 8, b: 38 }, o.margin);
    const y = makeAxis(o.points.map((p) => p.y), o.y, H - m.b, m.t);
    const lm = leftMargin(y, !!o.yLabel);
    m.l = lm.margin;
    const x = makeAxis(o.points.map((p) => p.x), o.x, m.l, W - m.r);
    const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img' });
    drawAxes(svg, { W, H, m, x, y, xLabel: o.xLabel, yLabel: o.yLabel, tickWidth: lm.width });
    if (o.diagonal) svg.appendChild(s('line', { class: 'ref', x1: x.map(0), y1: y.map(1), x2: x.map(1), y2: y.map(0) }));
    const g = s('g');
    svg.appendChild(g);
    const circles = o.points.map((p, i) => {
      const c = s('circle', { class: 'pt', cx: x.map(p.x).toFixed(1), cy: y.map(p.y).toFixed(1), r: p.r || 2.6, fill: p.color || PALETTE[0], 'fill-opacity': p.opacity === undefined ? 0.45 : p.opacity, 'data-i': i });
      g.appendChild(c);
      return c;
    });
    for (const l of o.labels || []) {
      svg.appendChild(s('text', { class: 'point-label', x: x.map(l.x) + 5, y: y.map(l.y) + 3.5 }, l.text));
    }
    g.addEventListener('mousemove', (ev) => {
      const i = ev.target.getAttribute && ev.target.getAttribute('data-i');
      if (i === null || i === undefined) return hideTip();
      const p = o.points[+i];
      if (p.tip) showTip(p.tip(), ev.clientX, ev.clientY);
    });
    g.addEventListener('mouseleave', hideTip);
    g.addEventListener('click', (ev) => {
      const i = ev.target.getAttribute && ev.target.getAttribute('data-i');
      if (i !== null && i !== undefined && o.points[+i].click) o.points[+i].click();
    });
    svg.highlight = (i) => circles.forEach((c, k) => c.classList.toggle('hi', k === i));
    svg.circles = circles;
    return svg;
  }

  // Vertical bars in groups. o: {categories: [label], series: [{name, color, values}], yLabel, xLabel, width, height}
  function groupedBars(o) {
    const W = o.width || 520, H = o.height || 240;
    const m = { l: 56, r: 10, t: 10, b: o.xLabel ? 42 : 28 };
    const all = [];
    for (const se of o.series) for (const v of se.values) all.push(v);
    const y = makeAxis(all, Object.assign({ zero: true }, o.y), H - m.b, m.t);
    const lm = leftMargin(y, !!o.yLabel);
    m.l = lm.margin;
    const x = makeAxis([0, 1], { min: 0, max: 1 }, m.l, W - m.r);
    const n = o.categories.length, band = (W - m.l - m.r) / Math.max(1, n);
    const inner = band * 0.76, bw = inner / Math.max(1, o.series.length);
    const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img' });
    drawAxes(svg, { W, H, m, x, y, xLabel: o.xLabel, yLabel: o.yLabel, tickWidth: lm.width, xCategories: o.categories, xCategoryAt: (i) => m.l + band * (i + 0.5) });
    o.series.forEach((se, k) => se.values.forEach((v, i) => {
      if (!finite(v)) return;
      const x0 = m.l + band * i + (band - inner) / 2 + bw * k;
      const y0 = y.map(Math.max(v, y.lo)), yb = y.map(Math.max(0, y.lo));
      const rect = s('rect', { x: x0 + 1, y: Math.min(y0, yb), width: Math.max(1, bw - 2), height: Math.abs(yb - y0), fill: se.color, rx: 2 });
      rect.addEventListener('mousemove', (ev) => showTip(h('div', null, h('b', null, o.categories[i]), h('br'), se.name + ': ' + fmt(v, 4), se.extra ? h('div', { class: 'muted' }, se.extra[i]) : null), ev.clientX, ev.clientY));
      rect.addEventListener('mouseleave', hideTip);
      svg.appendChild(rect);
    }));
    return svg;
  }

  // Horizontal stacked bars. o: {rows: [{label, parts: [value], tip(): Node}], parts: [{name, color}], width, xLabel}
  function stackedBars(o) {
    const W = o.width || 520, rowH = 22;
    const m = { l: o.labelWidth || 190, r: 16, t: 6, b: 36 };
    const H = m.t + m.b + rowH * o.rows.length;
    const totals = o.rows.map((r) => r.parts.reduce((a, b) => a + (b || 0), 0));
    const x = makeAxis([0].concat(totals), { min: 0, max: o.max, format: o.format }, m.l, W - m.r);
    const y = makeAxis([0, 1], { min: 0, max: 1 }, H - m.b, m.t);
    y.ticks = [];
    const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img' });
    for (const t of x.ticks) svg.appendChild(s('line', { class: 'grid', x1: x.map(t), x2: x.map(t), y1: m.t, y2: H - m.b }));
    drawAxes(svg, { W, H, m, x, y, xLabel: o.xLabel, tickWidth: 0 });
    o.rows.forEach((r, i) => {
      const cy = m.t + rowH * i;
      const label = r.label.length > 30 ? r.label.slice(0, 29) + '…' : r.label;
      svg.appendChild(s('text', { x: m.l - 8, y: cy + rowH / 2, 'text-anchor': 'end', 'dominant-baseline': 'middle', style: 'fill:#4a5366;font-size:11.5px' }, label));
      let acc = 0;
      const g = s('g');
      r.parts.forEach((v, k) => {
        if (!(v > 0)) return;
        g.appendChild(s('rect', { x: x.map(acc), y: cy + 4, width: Math.max(0.5, x.map(acc + v) - x.map(acc)), height: rowH - 8, fill: o.parts[k].color, rx: 1.5 }));
        acc += v;
      });
      g.appendChild(s('rect', { x: m.l, y: cy, width: W - m.l - m.r, height: rowH, fill: 'transparent' }));
      if (r.tip) {
        g.addEventListener('mousemove', (ev) => showTip(r.tip(), ev.clientX, ev.clientY));
        g.addEventListener('mouseleave', hideTip);
      }
      svg.appendChild(g);
    });
    return svg;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Shared pieces

  function runTitle(i) {
    return h('div', { class: 'run-title' }, h('span', { class: 'swatch-dot', style: { background: runColor(i) } }), runs[i].name);
  }
  function absentNote(text, small) { return h('p', { class: 'absent-note' + (small ? ' small' : '') }, text); }
  function missingFor(key, what) {
    const missing = runs.filter((r) => !r[key]).map((r) => r.name);
    return missing.length && missing.length < runs.length ? absentNote(`${what} not recorded for ${missing.join(', ')}.`, true) : null;
  }
  function control(label, el) { return h('label', { class: 'control' }, h('span', null, label), el); }
  function select(options, value, onChange) {
    const el = h('select', null, options.map((o) => h('option', { value: o.value, selected: String(o.value) === String(value) }, o.label)));
    el.addEventListener('change', () => onChange(el.value));
    return el;
  }
  // A run picker among the runs that have a section, or null when only one has it.
  function runPicker(indices, value, onChange) {
    if (indices.length < 2) return null;
    return control('Run', select(indices.map((i) => ({ value: i, label: runs[i].name })), value, (v) => onChange(+v)));
  }

  // The tokens of a passage as spans; word level puts a space between tokens, and the end-of-line token (or "\n")
  // starts a new line.
  function tokenView(passage) {
    const box = h('div', { class: 'tokens ' + (passage.level === 'char' ? 'char' : 'word') });
    const eos = passage.level === 'char' ? '\n' : (passage.eos || '<eos>');
    const spans = new Array(passage.tokens.length);
    const frag = document.createDocumentFragment();
    passage.tokens.forEach((tok, i) => {
      const isEos = tok === eos;
      const sp = document.createElement('span');
      sp.className = isEos ? 'tok eos' : 'tok';
      sp.textContent = isEos ? '↵' : tok;
      sp.dataset.i = i;
      frag.appendChild(sp);
      if (isEos) frag.appendChild(document.createElement('br'));
      else if (passage.level !== 'char') frag.appendChild(document.createTextNode(' '));
      spans[i] = sp;
    });
    box.appendChild(frag);
    return { box, spans };
  }
  function tokenLabel(tok) { return tok === '\n' ? '\\n' : tok === ' ' ? '␣' : tok; }
  function bindTokenTips(box, content) {
    box.addEventListener('mousemove', (ev) => {
      const i = ev.target.dataset && ev.target.dataset.i;
      if (i === undefined) return hideTip();
      showTip(content(+i), ev.clientX, ev.clientY);
    });
    box.addEventListener('mouseleave', hideTip);
  }

  // Decodes a "matrix" object (docs/report.md): base64 bytes, unit-major, u8 or u4 per value.
  function matrix(m) {
    if (!m._bytes) {
      const bin = atob(m.data);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      m._bytes = bytes;
      m._levels = m.encoding === 'u8' ? 255 : 15;
      let lo = Infinity, hi = -Infinity;
      for (let u = 0; u < m.cols; u++) { lo = Math.min(lo, m.min[u]); hi = Math.max(hi, m.max[u]); }
      m._range = [lo, hi];
    }
    return m;
  }
  function unitColumn(m, u) {
    matrix(m);
    const T = m.rows, out = new Float32Array(T), lo = m.min[u], span = m.max[u] - m.min[u], L = m._levels, b = m._bytes;
    for (let t = 0; t < T; t++) {
      const k = u * T + t;
      const q = L === 255 ? b[k] : (k & 1 ? b[k >> 1] & 15 : b[k >> 1] >> 4);
      out[t] = lo + (span * q) / L;
    }
    return out;
  }
  // The colour domain of a kind: [0, 1] for gates, [-1, 1] for tanh-bounded values, else +-max|v| of the unit.
  function colourDomain(m, u) {
    matrix(m);
    const [lo, hi] = m._range;
    if (lo >= 0 && hi <= 1) return { lo: 0, hi: 1, kind: 'gate' };
    if (lo >= -1 && hi <= 1) return { lo: -1, hi: 1, kind: 'tanh' };
    const a = Math.max(Math.abs(m.min[u]), Math.abs(m.max[u])) || 1;
    return { lo: -a, hi: a, kind: 'unit' };
  }

  // ---------------------------------------------------------------------------------------------------------
  // 1. Run card

  function renderCard(body) {
    const idx = runs.map((_, i) => i).filter((i) => runs[i].card);
    const cards = idx.map((i) => runs[i].card);
    const rows = [
      ['Model', (c) => c.model],
      ['Parameters', (c) => (finite(c.parameters) ? fmtInt(c.parameters) : null)],
      ['Best valid ppl', (c) => c.best_valid_ppl, 'min'],
      ['Test ppl', (c) => c.test_ppl, 'min'],
      ['Tokens / s', (c) => c.tokens_per_s, 'max'],
      ['Wall time', (c) => (finite(c.wall_time_s) ? fmtSeconds(c.wall_time_s) : null)],
      ['Epochs', (c) => c.epochs],
      ['Data', (c) => c.data && c.data.path],
      ['Level', (c) => c.data && c.data.level],
      ['Vocabulary', (c) => c.data && finite(c.data.vocab_size) ? fmtInt(c.data.vocab_size) : null],
      ['Training tokens', (c) => c.data && finite(c.data.train_tokens) ? fmtInt(c.data.train_tokens) : null],
      ['Data checksum', (c) => c.data && c.data.checksum],
      ['Checkpoint', (c) => c.checkpoint],
    ];
    const table = h('table', { class: 'cmp' },
      h('thead', null, h('tr', null, h('th', null, ''), idx.map((i) => h('th', null, h('span', { class: 'swatch-dot', style: { background: runColor(i), marginRight: '6px' } }), runs[i].name)))));
    const tbody = h('tbody');
    for (const [label, get, best] of rows) {
      const vals = cards.map((c) => { const v = get(c); return v === undefined ? null : v; });
      if (vals.every((v) => v === null)) continue;
      let bestVal = null;
      if (best && cards.length > 1) {
        const nums = vals.filter(finite);
        if (nums.length > 1) bestVal = best === 'min' ? Math.min(...nums) : Math.max(...nums);
      }
      tbody.appendChild(h('tr', null, h('th', null, label), vals.map((v) => {
        const text = v === null ? '–' : typeof v === 'number' ? (label.indexOf('ppl') >= 0 ? v.toFixed(2) : fmt(v, 4)) : String(v);
        const mono = label === 'Data checksum' || label === 'Checkpoint' || label === 'Data';
        return h('td', { class: (typeof v === 'number' ? 'num' : '') + (v !== null && v === bestVal ? ' best' : ''), style: mono ? { fontFamily: 'var(--mono)', fontSize: '12px', wordBreak: 'break-all' } : null }, text);
      })));
    }
    table.appendChild(tbody);
    body.appendChild(table);
    idx.forEach((i) => {
      const c = runs[i].card;
      if (!c.command && !c.config && !c.notes) return;
      const det = h('details', { open: idx.length === 1 ? true : null }, h('summary', null, `${runs[i].name}: command line and configuration`));
      if (c.command) det.appendChild(h('pre', { class: 'cmd' }, c.command));
      if (c.config) {
        const keys = Object.keys(c.config);
        const half = Math.ceil(keys.length / 2);
        const kv = (ks) => h('table', { class: 'kv' }, ks.map((k) => h('tr', null, h('th', null, k), h('td', null, Array.isArray(c.config[k]) ? '[' + c.config[k].join(', ') + ']' : String(c.config[k])))));
        det.appendChild(h('div', { class: 'grid2', style: { marginTop: '8px', gap: '0 22px' } }, kv(keys.slice(0, half)), kv(keys.slice(half))));
      }
      if (c.notes) det.appendChild(h('p', { class: 'caption' }, c.notes));
      body.appendChild(det);
    });
    const miss = missingFor('card', 'Run card');
    if (miss) body.appendChild(miss);
  }

  // ---------------------------------------------------------------------------------------------------------
  // 2. Training curves

  function renderCurves(body) {
    const idx = runs.map((_, i) => i).filter((i) => runs[i].curves);
    const xOf = (e) => e.epoch - 1 + (e.batches ? e.batch / e.batches : 1);
    body.appendChild(legend(idx.map((i) => ({ name: runs[i].name, color: runColor(i) }))
      .concat([{ name: 'train (per log interval)', color: '#868e96' }, { name: 'valid (per epoch)', color: '#868e96', dash: '5 4', marker: true }])));
    const grid = h('div', { class: 'grid2' });
    body.appendChild(grid);
    const xAxis = { min: 0 };
    let maxEpoch = 0;
    for (const i of idx) {
      const c = runs[i].curves;
      for (const e of c.train || []) maxEpoch = Math.max(maxEpoch, xOf(e));
      for (const e of c.epochs || []) maxEpoch = Math.max(maxEpoch, e.epoch);
    }
    xAxis.max = Math.max(1, maxEpoch);
    const fmtEpoch = (v) => 'epoch ' + v.toFixed(2);
    function chart(title, hint, build, opts) {
      const series = [];
      const refs = [];
      for (const i of idx) build(runs[i].curves, runColor(i), runs[i].name, series, refs);
      const box = chartBox(title, hint);
      grid.appendChild(box);
      if (!series.some((se) => se.points.some((p) => finite(p[1])))) {
        box.appendChild(absentNote('Not logged for these runs.', true));
        return;
      }
      box.appendChild(lineChart(Object.assign({ width: widthOf(box, 520), height: 230, series, refs, x: xAxis, xLabel: 'epoch', fmtX: fmtEpoch }, opts)));
    }
    const trainSeries = (key) => (c, color, name, out) => {
      if (c.train && c.train.some((e) => finite(e[key]))) out.push({ name: name + ' train', color, points: c.train.map((e) => [xOf(e), e[key]]), markers: c.train.length < 4 });
    };
    const validSeries = (key) => (c, color, name, out) => {
      if (c.epochs && c.epochs.some((e) => finite(e[key]))) out.push({ name: name + ' valid', color, dash: '5 4', points: c.epochs.map((e) => [e.epoch, e[key]]), markers: true });
    };
    const both = (a, b) => (c, color, name, out, refs) => { a(c, color, name, out, refs); b(c, color, name, out, refs); };
    chart('Perplexity', 'log scale', both(trainSeries('ppl'), validSeries('val_ppl')), { y: { log: true }, yLabel: 'perplexity' });
    chart('Loss', 'nats per token', both(trainSeries('loss'), validSeries('val_loss')), { yLabel: 'loss (nats)' });
    const lrs = [];
    for (const i of idx) for (const e of runs[i].curves.train || []) if (finite(e.lr) && e.lr > 0) lrs.push(e.lr);
    const lrExt = extent(lrs, true);
    chart('Learning rate', null, (c, color, name, out) => {
      if (c.train && c.train.some((e) => finite(e.lr))) out.push({ name, color, step: true, points: c.train.map((e) => [xOf(e), e.lr]) });
    }, { y: { log: !!(lrExt && lrExt[1] / lrExt[0] > 8) }, yLabel: 'learning rate' });
    chart('Gradient norm before clipping', 'mean over each log interval', (c, color, name, out, refs) => {
      trainSeries('grad_norm')(c, color, name, out);
      if (finite(c.clip) && !refs.some((r) => r.y === c.clip)) refs.push({ y: c.clip, label: 'clip ' + fmt(c.clip) });
    }, { y: { log: true }, yLabel: '‖g‖ before clipping' });
    chart('Batches clipped', 'share of each log interval', (c, color, name, out) => {
      if (c.train && c.train.some((e) => finite(e.clip_fraction))) out.push({ name, color, points: c.train.map((e) => [xOf(e), e.clip_fraction]) });
    }, { y: { min: 0, max: 1, format: (v) => fmtPct(v, 0) }, yLabel: 'clipped' });
    chart('Throughput', 'training tokens per second', trainSeries('tokens_per_s'), { y: { zero: true }, yLabel: 'tokens / s' });

    const tests = idx.filter((i) => runs[i].curves.test && finite(runs[i].curves.test.ppl));
    if (tests.length) {
      body.appendChild(h('div', { class: 'stats', style: { marginTop: '16px' } }, tests.map((i) => {
        const t = runs[i].curves.test;
        return h('div', { class: 'stat' }, h('div', { class: 'k' }, h('span', { class: 'swatch-dot', style: { background: runColor(i), marginRight: '6px' } }), runs[i].name + ' · ' + (t.split || 'test') + ' ppl'), h('div', { class: 'v' }, t.ppl.toFixed(2)));
      })));
    }
    const miss = missingFor('curves', 'Training curves');
    if (miss) body.appendChild(miss);
  }

  // ---------------------------------------------------------------------------------------------------------
  // 3. Gradient flow

  function renderGradientFlow(body) {
    const idx = runs.map((_, i) => i).filter((i) => runs[i].gradient_flow);
    let logScale = true, relative = false;
    const controls = h('div', { class: 'controls' },
      h('label', { class: 'toggle' }, h('input', { type: 'checkbox', checked: true, on: { change: (e) => { logScale = e.target.checked; draw(); } } }), 'log scale'),
      h('label', { class: 'toggle' }, h('input', { type: 'checkbox', on: { change: (e) => { relative = e.target.checked; draw(); } } }), 'relative to the last step'));
    body.appendChild(controls);
    const legendBox = h('div');
    const chartHolder = h('figure', { class: 'chart-box' });
    body.appendChild(legendBox);
    body.appendChild(chartHolder);
    const descriptions = idx.map((i) => runs[i].gradient_flow.description).filter(Boolean);
    if (descriptions.length) body.appendChild(h('p', { class: 'caption' }, descriptions[0]));
    function draw() {
      const series = [];
      const items = [];
      for (const i of idx) {
        const g = runs[i].gradient_flow;
        const L = g.norms.length;
        g.norms.forEach((norms, l) => {
          const last = norms[norms.length - 1];
          const pts = norms.map((v, t) => [t, relative ? (finite(v) && last > 0 ? v / last : null) : v]);
          const dash = DASHES[(L - 1 - l) % DASHES.length];  // top layer solid
          series.push({ name: `${runs[i].name} · layer ${l}`, color: runColor(i), dash, points: pts, width: 2 });
          items.push({ name: `${runs[i].name} · layer ${l}`, color: runColor(i), dash });
        });
      }
      legendBox.textContent = '';
      legendBox.appendChild(legend(items));
      chartHolder.textContent = '';
      chartHolder.appendChild(lineChart({ width: widthOf(chartHolder, 900), height: 320, series, x: { min: 0 }, y: { log: logScale },
        xLabel: 'time step t in the BPTT window', yLabel: relative ? '‖dL/dh_t‖ / ‖dL/dh_T‖' : '‖dL/dh_t‖', fmtX: (v) => 't = ' + v }));
    }
    draw();
    const miss = missingFor('gradient_flow', 'Gradient flow');
    if (miss) body.appendChild(miss);
  }

  // ---------------------------------------------------------------------------------------------------------
  // 4. Gate saturation

  function renderSaturation(body) {
    const idx = runs.map((_, i) => i).filter((i) => runs[i].gate_saturation);
    let columns = 1;
    for (const i of idx) columns = Math.max(columns, new Set(runs[i].gate_saturation.gates.map((g) => g.gate)).size);
    columns = Math.min(columns, 4);
    for (const i of idx) {
      const gs = runs[i].gate_saturation;
      const low = finite(gs.low) ? gs.low : 0.1, high = finite(gs.high) ? gs.high : 0.9;
      body.appendChild(runTitle(i));
      const layers = [...new Set(gs.gates.map((g) => g.layer))].sort((a, b) => a - b);
      const names = [];
      for (const g of gs.gates) if (names.indexOf(g.gate) < 0) names.push(g.gate);
      const grid = h('div', { style: { display: 'grid', gridTemplateColumns: `repeat(${columns}, minmax(0, 1fr))`, gap: '10px 16px' } });
      body.appendChild(grid);
      for (const l of layers) for (let k = 0; k < Math.ceil(names.length / columns) * columns; k++) {
        const name = names[k];
        if (name === undefined) { grid.appendChild(h('div')); continue; }
        const g = gs.gates.find((e) => e.layer === l && e.gate === name);
        const box = chartBox(`layer ${l} · gate ${name}`, g ? `mean ${fmtPct(avg(g.left), 0)} left, ${fmtPct(avg(g.right), 0)} right` : 'not recorded');
        grid.appendChild(box);
        if (!g) continue;
        const clickable = unitsHas(i, l, name);
        const points = g.left.map((lv, u) => ({
          x: lv, y: g.right[u], color: runColor(i), r: 2.4, opacity: 0.4,
          tip: () => h('div', null, h('b', null, `layer ${l} · ${name} · unit ${u}`), h('br'), `< ${low}: ${fmtPct(lv)} of the time`, h('br'), `> ${high}: ${fmtPct(g.right[u])} of the time`, clickable ? h('div', { class: 'muted' }, 'click: show this unit over the text') : null),
          click: clickable ? () => selectUnit(i, l, name, u, true) : null,
        }));
        const w = widthOf(box, 260);
        box.appendChild(scatterChart({ width: w, height: Math.min(w, 300), points, x: { min: 0, max: 1, format: (v) => fmtPct(v, 0), ticks: 4 }, y: { min: 0, max: 1, format: (v) => fmtPct(v, 0), ticks: 4 },
          xLabel: `left-saturated (< ${low})`, yLabel: `right-saturated (> ${high})`, diagonal: true }));
      }
    }
    body.appendChild(h('p', { class: 'caption' }, 'Each dot is one unit: how often its gate is nearly closed (x) against nearly open (y). Units near the diagonal are nearly always saturated; units near the origin behave like smooth, non-saturating gates.'));
    const miss = missingFor('gate_saturation', 'Gate saturation');
    if (miss) body.appendChild(miss);
  }
  const avg = (a) => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);

  // ---------------------------------------------------------------------------------------------------------
  // 5. Units over text

  let unitsApi = null;  // set when the units section is drawn: select(run, layer, kind, unit)
  function unitsHas(i, layer, kind) {
    const u = runs[i].units;
    return !!(u && u.layers.some((L) => L.layer === layer && L.kinds.some((k) => k.name === kind)));
  }
  function selectUnit(run, layer, kind, unit, scroll) {
    if (!unitsApi) return;
    unitsApi.select(run, layer, kind, unit);
    if (scroll) document.getElementById('sec-units').scrollIntoView({ block: 'start' });
  }

  function renderUnits(body) {
    const idx = runs.map((_, i) => i).filter((i) => runs[i].units);
    const st = { run: idx[0], li: 0, kind: null, unit: 0, probe: '' };
    const first = runs[idx[0]].units.top && runs[idx[0]].units.top[0];
    if (first) Object.assign(st, { li: Math.max(0, runs[idx[0]].units.layers.findIndex((L) => L.layer === first.layer)), kind: first.kind, unit: first.unit, probe: first.probe });

    const controls = h('div', { class: 'controls' });
    const layout = h('div', { class: 'units-layout' });
    const main = h('div', { style: { minWidth: 0 } });
    const side = h('div', { class: 'finder' });
    layout.append(main, side);
    body.append(controls, layout);

    const info = h('div', { class: 'caption', style: { margin: '0 0 8px' } });
    const scaleHolder = h('div', { style: { marginBottom: '8px' } });
    let view = null, trackBox = h('figure', { class: 'chart-box', style: { marginTop: '14px' } });
    let values = null;

    const U = () => runs[st.run].units;
    const layerOf = () => U().layers[st.li];
    const kindOf = () => layerOf().kinds.find((k) => k.name === st.kind) || layerOf().kinds[0];

    function buildControls() {
      controls.textContent = '';
      const rp = runPicker(idx, st.run, (v) => { st.run = v; st.li = 0; st.kind = null; st.unit = 0; rebuildRun(); });
      if (rp) controls.appendChild(rp);
      controls.appendChild(control('Layer', select(U().layers.map((L, k) => ({ value: k, label: 'layer ' + L.layer })), st.li, (v) => { st.li = +v; st.kind = kindOf().name; st.unit = Math.min(st.unit, layerOf().size - 1); buildControls(); update(); })));
      controls.appendChild(control('Value', select(layerOf().kinds.map((k) => ({ value: k.name, label: kindLabel(k.name) })), kindOf().name, (v) => { st.kind = v; update(); })));
      const size = layerOf().size;
      const num = h('input', { type: 'number', min: 0, max: size - 1, value: st.unit });
      const range = h('input', { type: 'range', min: 0, max: size - 1, value: st.unit });
      const set = (u) => { st.unit = Math.max(0, Math.min(size - 1, u | 0)); num.value = st.unit; range.value = st.unit; update(); };
      num.addEventListener('change', () => set(+num.value));
      range.addEventListener('input', () => set(+range.value));
      controls.appendChild(control(`Unit (0–${size - 1})`, h('div', { class: 'control-row' },
        h('button', { title: 'previous unit', on: { click: () => set(st.unit - 1) } }, '‹'), num,
        h('button', { title: 'next unit', on: { click: () => set(st.unit + 1) } }, '›'), range)));
      const probes = U().probes || [];
      if (probes.length) controls.appendChild(control('Compare with probe', select([{ value: '', label: '(none)' }].concat(probes.map((p) => ({ value: p.name, label: p.name }))), st.probe, (v) => { st.probe = v; drawTrack(); })));
      controls.sync = () => { num.value = st.unit; range.value = st.unit; };
    }
    function kindLabel(k) {
      return k === 'h' ? 'h (hidden state)' : k === 'c' ? 'c (cell state)' : 'gate ' + k;
    }

    function buildFinder() {
      side.textContent = '';
      const top = U().top || [];
      side.appendChild(h('h4', null, 'Most interpretable units ', h('span', { class: 'hint' }, '· correlation with a probe')));
      if (!top.length) { side.appendChild(absentNote('No unit ranking recorded for this run.', true)); return; }
      const list = h('div', { class: 'finder-list' });
      top.forEach((e) => {
        const pos = e.r >= 0;
        const row = h('div', { class: 'finder-row', 'data-key': `${e.layer}/${e.kind}/${e.unit}`, on: { click: () => { st.probe = e.probe; select2(e.layer, e.kind, e.unit); } } },
          h('span', { class: 'probe' }, e.probe),
          h('span', { class: 'r', style: { color: pos ? '#b2182b' : '#2166ac' } }, (pos ? '+' : '−') + Math.abs(e.r).toFixed(2),
            h('span', { class: 'rbar' }, h('i', { style: { left: '0', width: (Math.abs(e.r) * 100).toFixed(0) + '%', background: pos ? '#ef8a62' : '#67a9cf' } }))),
          h('span', { class: 'unit' }, `layer ${e.layer} · ${e.kind} · unit ${e.unit}`));
        list.appendChild(row);
      });
      side.appendChild(list);
    }
    function markFinder() {
      const key = `${layerOf().layer}/${kindOf().name}/${st.unit}`;
      side.querySelectorAll('.finder-row').forEach((r) => r.classList.toggle('active', r.dataset.key === key));
    }

    function rebuildRun() {
      main.textContent = '';
      const passage = runs[st.run].passage;
      view = tokenView(passage);
      main.append(info, scaleHolder, view.box, trackBox);
      bindTokenTips(view.box, (i) => h('div', null, h('b', null, tokenLabel(passage.tokens[i])), h('span', { class: 'muted' }, ` · token ${i}`), h('br'),
        `${kindOf().name}[${st.unit}] = ${values ? values[i].toFixed(3) : '–'}`,
        probeValues() ? h('div', { class: 'muted' }, `${st.probe}: ${fmt(probeValues()[i])}`) : null));
      if (!st.kind) st.kind = kindOf().name;
      buildControls();
      buildFinder();
      update();
    }
    function select2(layer, kind, unit) {
      const li = U().layers.findIndex((L) => L.layer === layer);
      if (li < 0) return;
      st.li = li;
      st.kind = kind;
      st.unit = Math.max(0, Math.min(unit, layerOf().size - 1));
      buildControls();
      update();
    }
    function probeValues() {
      const p = (U().probes || []).find((q) => q.name === st.probe);
      return p ? p.values : null;
    }

    function update() {
      const k = kindOf();
      st.kind = k.name;
      values = unitColumn(k.values, st.unit);
      const dom = colourDomain(k.values, st.unit);
      const spans = view.spans;
      for (let t = 0; t < spans.length; t++) {
        const c = ramp(DIVERGING, (values[t] - dom.lo) / (dom.hi - dom.lo));
        spans[t].style.background = css(c);
        spans[t].style.color = inkOn(c);
      }
      info.textContent = '';
      const ranked = (U().top || []).find((e) => e.layer === layerOf().layer && e.kind === k.name && e.unit === st.unit);
      append(info, [`${runs[st.run].name} · layer ${layerOf().layer} · ${kindLabel(k.name)} · unit ${st.unit} of ${layerOf().size}`,
        ranked ? ` · r = ${ranked.r.toFixed(2)} with “${ranked.probe}”` : '']);
      scaleHolder.textContent = '';
      scaleHolder.appendChild(scaleBar(DIVERGING, fmt(dom.lo), fmt(dom.hi), dom.kind === 'gate' ? 'closed → open' : dom.kind === 'unit' ? 'scaled to this unit’s largest |value|' : null));
      markFinder();
      drawTrack();
    }

    function drawTrack() {
      trackBox.textContent = '';
      const passage = runs[st.run].passage;
      trackBox.appendChild(h('figcaption', null, 'Activation along the passage', h('span', { class: 'hint' }, st.probe ? `grey area: ${st.probe}, scaled to fit` : 'hover to find the token')));
      const pts = Array.from(values, (v, t) => [t, v]);
      const series = [];
      const pv = probeValues();
      if (pv) {
        const e = extent(pv) || [0, 1];
        const [lo, hi] = extent(values) || [0, 1];
        const span = (e[1] - e[0]) || 1;
        series.push({ name: st.probe, color: '#adb5bd', area: true, areaOpacity: 0.5, step: true, points: pv.map((v, t) => [t, finite(v) ? lo + ((v - e[0]) / span) * (hi - lo) : null]) });
      }
      series.push({ name: `${kindOf().name}[${st.unit}]`, color: runColor(st.run), width: 1.5, points: pts });
      const chart = lineChart({ width: widthOf(trackBox, 800), height: 170, series, x: { min: 0, max: Math.max(1, values.length - 1) }, xLabel: 'token (click to find it in the text)',
        fmtX: (t) => `${t} “${tokenLabel(passage.tokens[t | 0])}”`,
        onClickX: (xv) => {
          const i = Math.max(0, Math.min(view.spans.length - 1, Math.round(xv)));
          view.spans.forEach((sp) => sp.classList.remove('hl'));
          view.spans[i].classList.add('hl');
          view.box.scrollTop = view.spans[i].offsetTop - view.box.clientHeight / 2;  // .tokens is the offset parent
        } });
      trackBox.appendChild(chart);
    }

    unitsApi = {
      select(run, layer, kind, unit) {
        if (!runs[run] || !runs[run].units) return;
        if (st.run !== run) {
          st.run = run;
          st.li = Math.max(0, runs[run].units.layers.findIndex((L) => L.layer === layer));
          st.kind = kind;
          st.unit = Math.min(unit, layerOf().size - 1);
          rebuildRun();
        }
        select2(layer, kind, unit);
      },
    };
    rebuildRun();
    const miss = missingFor('units', 'Unit activations');
    if (miss) body.appendChild(miss);
  }

  // ---------------------------------------------------------------------------------------------------------
  // 6. Surprisal

  function renderSurprisal(body) {
    const idx = runs.map((_, i) => i).filter((i) => runs[i].surprisal);
    let cur = idx[0];
    const controls = h('div', { class: 'controls' });
    const stats = h('div', { class: 'stats' });
    const holder = h('div');
    body.append(controls, stats, holder);
    const rp = runPicker(idx, cur, (v) => { cur = v; draw(); });
    if (rp) controls.appendChild(rp);

    function draw() {
      const r = runs[cur], sp = r.surprisal, passage = r.passage;
      const losses = sp.loss.filter(finite);
      const mean = avg(losses);
      const sortedL = losses.slice().sort((a, b) => a - b);
      const cap = Math.max(4, sortedL[Math.floor(0.98 * (sortedL.length - 1))] || 1);
      stats.textContent = '';
      const stat = (k, v) => h('div', { class: 'stat' }, h('div', { class: 'k' }, k), h('div', { class: 'v' }, v));
      stats.append(stat('tokens scored', fmtInt(losses.length)), stat('mean loss', mean.toFixed(3) + ' nats'), stat('perplexity', fmt(Math.exp(mean), 4)),
        stat('top-1 accuracy', sp.top ? fmtPct(top1(sp, passage)) : '–'));
      holder.textContent = '';
      holder.appendChild(h('div', { style: { marginBottom: '8px' } }, scaleBar(HEAT, '0', cap.toFixed(1) + '+ nats', 'loss of each token')));
      const view = tokenView(passage);
      holder.appendChild(view.box);
      view.spans.forEach((el, t) => {
        const v = sp.loss[t];
        if (!finite(v)) { el.style.background = '#f1f3f5'; return; }
        const c = ramp(HEAT, v / cap);
        el.style.background = css(c);
        el.style.color = inkOn(c);
      });
      bindTokenTips(view.box, (t) => surprisalTip(sp, passage, t));
      holder.appendChild(h('p', { class: 'caption' }, 'Hover a token: its loss, the probability the model gave it, and the model’s five most likely next tokens before it was read.'));
    }
    draw();

    // Charts over all runs.
    const grid = h('div', { class: 'grid2', style: { marginTop: '18px' } });
    body.appendChild(grid);
    const withFreq = idx.filter((i) => runs[i].surprisal.by_frequency && runs[i].surprisal.by_frequency.length);
    const fbox = chartBox('Loss by token frequency', 'buckets of training-set frequency');
    grid.appendChild(fbox);
    if (withFreq.length) {
      const cats = runs[withFreq[0]].surprisal.by_frequency.map((b) => b.label);
      fbox.appendChild(groupedBars({ width: widthOf(fbox, 520), height: 240, categories: cats, yLabel: 'mean loss (nats)',
        series: withFreq.map((i) => ({ name: runs[i].name, color: runColor(i),
          values: cats.map((c) => { const b = runs[i].surprisal.by_frequency.find((x) => x.label === c); return b ? b.loss : null; }),
          extra: cats.map((c) => { const b = runs[i].surprisal.by_frequency.find((x) => x.label === c); return b && finite(b.count) ? fmtInt(b.count) + ' tokens' : ''; }) })) }));
      if (withFreq.length > 1) fbox.appendChild(legend(withFreq.map((i) => ({ name: runs[i].name, color: runColor(i), square: true }))));
    } else fbox.appendChild(absentNote('Not recorded for this model.', true));
    const withPos = idx.filter((i) => runs[i].surprisal.by_position && runs[i].surprisal.by_position.length);
    const posNote = withPos.length ? runs[withPos[0]].surprisal.position_description : null;
    const pbox = chartBox('Loss by position in the BPTT window', posNote || 'mean over the passage');
    grid.appendChild(pbox);
    if (withPos.length) {
      pbox.appendChild(lineChart({ width: widthOf(pbox, 520), height: 240, x: { min: 0 }, xLabel: 'position in window', yLabel: 'mean loss (nats)', fmtX: (v) => 'position ' + v,
        series: withPos.map((i) => ({ name: runs[i].name, color: runColor(i), points: runs[i].surprisal.by_position.map((v, t) => [t, v]), markers: runs[i].surprisal.by_position.length < 40 })) }));
      if (withPos.length > 1) pbox.appendChild(legend(withPos.map((i) => ({ name: runs[i].name, color: runColor(i) }))));
    } else pbox.appendChild(absentNote('Not recorded for this model.', true));
    const miss = missingFor('surprisal', 'Surprisal');
    if (miss) body.appendChild(miss);
  }
  function top1(sp, passage) {
    let hit = 0, n = 0;
    sp.top.forEach((e, t) => { if (e && e.length) { n++; if (e[0][0] === passage.tokens[t]) hit++; } });
    return n ? hit / n : NaN;
  }
  function surprisalTip(sp, passage, t) {
    const tok = passage.tokens[t], loss = sp.loss[t];
    const out = h('div', null, h('b', null, tokenLabel(tok)), h('span', { class: 'muted' }, ` · token ${t}`), h('br'),
      finite(loss) ? `loss ${loss.toFixed(2)} nats · p = ${fmtPct(Math.exp(-loss), 2)}` : 'not scored (first token)');
    const top = sp.top && sp.top[t];
    if (top && top.length) {
      out.appendChild(h('div', { class: 'muted', style: { marginTop: '4px' } }, 'model’s top predictions:'));
      const pmax = top[0][1] || 1;
      out.appendChild(h('table', null, top.map(([w, p]) => h('tr', { class: w === tok ? 'actual' : null }, h('td', { class: 'w' }, tokenLabel(w)),
        h('td', null, h('span', { class: 'pbar', style: { width: Math.max(2, (60 * p) / pmax).toFixed(0) + 'px' } })), h('td', null, fmtPct(p, 1))))));
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------------------------
  // 7. Embeddings

  function renderEmbeddings(body) {
    const idx = runs.map((_, i) => i).filter((i) => runs[i].embeddings);
    let cur = idx[0];
    const controls = h('div', { class: 'controls' });
    const holder = h('div');
    body.append(controls, holder);
    const rp = runPicker(idx, cur, (v) => { cur = v; draw(); });
    if (rp) controls.appendChild(rp);
    const search = h('input', { type: 'search', placeholder: 'find a word…', list: 'emb-words' });
    controls.appendChild(control('Word', search));
    let api = null;
    search.addEventListener('input', () => api && api.find(search.value.trim()));

    function draw() {
      holder.textContent = '';
      const e = runs[cur].embeddings;
      const layout = h('div', { class: 'emb-layout' });
      holder.appendChild(layout);
      const left = chartBox('2-D projection (PCA)', e.explained ? `components explain ${fmtPct(e.explained[0])} and ${fmtPct(e.explained[1])} of the variance` : (e.matrix || ''));
      const right = h('div');
      layout.append(left, right);
      let scatter = null;
      const words = e.points ? e.points.words : [];
      const pos = new Map(words.map((w, k) => [w, k]));
      if (e.points) {
        const counts = e.points.count;
        const lc = counts ? counts.map((c) => Math.log10(1 + c)) : null;
        const cx = lc ? extent(lc) : null;
        const pts = words.map((w, k) => {
          const c = lc && cx ? ramp(VIRIDIS, 0.12 + 0.82 * (1 - (lc[k] - cx[0]) / ((cx[1] - cx[0]) || 1))) : null;
          return { x: e.points.x[k], y: e.points.y[k], color: c ? css(c) : runColor(cur), r: 3, opacity: 0.7,
            tip: () => h('div', null, h('b', null, tokenLabel(w)), counts ? h('span', { class: 'muted' }, ` · ${fmtInt(counts[k])} in training`) : null),
            click: () => api.find(w) };
        });
        // Labels for the most frequent words, skipping those that would overlap a label already placed.
        const order = words.map((_, k) => k);
        if (counts) order.sort((a, b) => counts[b] - counts[a]);
        const w = widthOf(left, 620), H = Math.round(Math.min(560, Math.max(380, w * 0.75)));
        const xe = extent(e.points.x) || [0, 1], ye = extent(e.points.y) || [0, 1];
        const placed = [], labels = [];
        for (const k of order.slice(0, 160)) {
          const px = ((e.points.x[k] - xe[0]) / ((xe[1] - xe[0]) || 1)) * (w - 60), py = ((e.points.y[k] - ye[0]) / ((ye[1] - ye[0]) || 1)) * (H - 50);
          const bw = words[k].length * 6.2 + 6, bh = 13;
          if (placed.some((b) => px < b[0] + b[2] && px + bw > b[0] && py < b[1] + bh && py + bh > b[1])) continue;
          placed.push([px, py, bw]);
          labels.push({ x: e.points.x[k], y: e.points.y[k], text: tokenLabel(words[k]) });
          if (labels.length >= 60) break;
        }
        scatter = scatterChart({ width: w, height: H, points: pts, labels, x: { nice: false, pad: 0.04 }, y: { nice: false, pad: 0.04 }, xLabel: 'PC 1', yLabel: 'PC 2', margin: { r: 16, t: 10 } });
        left.appendChild(scatter);
        if (counts) left.appendChild(h('div', { style: { marginTop: '6px' } }, scaleBar(VIRIDIS.slice().reverse(), 'rare', 'frequent', 'colour')));
      } else left.appendChild(absentNote('No projection recorded.', true));

      right.appendChild(h('h3', null, 'Nearest neighbours', h('span', { class: 'caption', style: { margin: 0, fontWeight: 400 } }, 'cosine similarity of embedding rows')));
      const grid = h('div', { class: 'nbr-grid' });
      right.appendChild(grid);
      const cards = new Map();
      for (const n of e.neighbours || []) {
        const card = h('div', { class: 'nbr', on: { click: () => api.find(n.word) } }, h('div', { class: 'w' }, tokenLabel(n.word)),
          h('div', { class: 'n' }, n.near.slice(0, 6).map(([w, c], k) => [k ? ', ' : '', tokenLabel(w), h('span', null, ' ' + c.toFixed(2))])));
        grid.appendChild(card);
        cards.set(n.word, card);
      }
      if (!(e.neighbours || []).length) grid.appendChild(absentNote('No neighbours recorded.', true));
      const dl = h('datalist', { id: 'emb-words' }, words.slice(0, 2000).map((w) => h('option', { value: w })));
      holder.appendChild(dl);
      api = {
        find(word) {
          const k = pos.get(word);
          if (scatter) scatter.highlight(k === undefined ? -1 : k);
          if (scatter && k !== undefined) { const c = scatter.circles[k]; c.parentNode.appendChild(c); }
          cards.forEach((card, w) => card.classList.toggle('active', w === word));
          const card = cards.get(word);
          if (card) card.scrollIntoView({ block: 'nearest' });
        },
      };
    }
    draw();
    const miss = missingFor('embeddings', 'Embeddings');
    if (miss) body.appendChild(miss);
  }

  // ---------------------------------------------------------------------------------------------------------
  // 8. Samples

  function renderSamples(body) {
    const idx = runs.map((_, i) => i).filter((i) => runs[i].samples);
    for (const i of idx) {
      const sm = runs[i].samples;
      body.appendChild(runTitle(i));
      const char = runs[i].passage ? runs[i].passage.level === 'char' : (runs[i].card && runs[i].card.data && runs[i].card.data.level === 'char');
      const grid = h('div', { class: 'grid3' });
      body.appendChild(grid);
      for (const it of sm.items) {
        const text = h('div', { class: 'text' + (char ? ' char' : '') });
        if (sm.prompt) text.appendChild(h('span', { class: 'prompt', title: 'prompt' }, sm.prompt));
        text.appendChild(document.createTextNode((sm.prompt && !char ? ' ' : '') + it.text));
        grid.appendChild(h('div', { class: 'sample' }, h('div', { class: 'temp' }, 'temperature ' + it.temperature), text));
      }
    }
    const miss = missingFor('samples', 'Samples');
    if (miss) body.appendChild(miss);
  }

  // ---------------------------------------------------------------------------------------------------------
  // 9. Attention

  function renderAttention(body) {
    const idx = runs.map((_, i) => i).filter((i) => runs[i].attention);
    let cur = idx[0], mi = 0;
    const controls = h('div', { class: 'controls' });
    const holder = h('div');
    body.append(controls, holder);
    function build() {
      controls.textContent = '';
      const rp = runPicker(idx, cur, (v) => { cur = v; mi = 0; build(); });
      if (rp) controls.appendChild(rp);
      const maps = runs[cur].attention.maps;
      if (maps.length > 1) controls.appendChild(control('Map', select(maps.map((m, k) => ({ value: k, label: m.name })), mi, (v) => { mi = +v; draw(); })));
      draw();
    }
    function draw() {
      holder.textContent = '';
      const a = runs[cur].attention, m = a.maps[mi], tokens = runs[cur].passage.tokens;
      const Q = m.queries.length, K = m.keys.length;
      const cell = Math.max(6, Math.min(22, Math.floor((widthOf(holder, 900) - 140) / K)));
      let longest = 1;
      for (const t of m.keys.concat(m.queries)) longest = Math.max(longest, Math.min(12, tokenLabel(tokens[t]).length));
      const ml = 24 + longest * 6.5, mt = 16 + longest * 6, W = ml + K * cell + 10, H = mt + Q * cell + 10;
      const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, style: `max-width:${W}px`, role: 'img' });
      let vmax = 0;
      for (const row of m.weights) for (const v of row) if (finite(v)) vmax = Math.max(vmax, v);
      vmax = vmax || 1;
      const lab = (t) => { const w = tokenLabel(tokens[t]); return w.length > 12 ? w.slice(0, 11) + '…' : w; };
      m.keys.forEach((t, k) => { if (cell >= 9) svg.appendChild(s('text', { transform: `translate(${ml + k * cell + cell / 2 + 3},${mt - 6}) rotate(-60)`, style: 'font-size:10.5px' }, lab(t))); });
      m.queries.forEach((t, q) => { if (cell >= 9) svg.appendChild(s('text', { x: ml - 6, y: mt + q * cell + cell / 2, 'text-anchor': 'end', 'dominant-baseline': 'middle', style: 'font-size:10.5px' }, lab(t))); });
      const g = s('g');
      m.weights.forEach((row, q) => row.forEach((v, k) => {
        const c = finite(v) ? ramp(BLUES, v / vmax) : [241, 243, 245];
        g.appendChild(s('rect', { class: 'cell', x: ml + k * cell, y: mt + q * cell, width: cell - 1, height: cell - 1, fill: css(c), 'data-q': q, 'data-k': k }));
      }));
      g.addEventListener('mousemove', (ev) => {
        const q = ev.target.getAttribute('data-q'), k = ev.target.getAttribute('data-k');
        if (q === null) return hideTip();
        const v = m.weights[+q][+k];
        showTip(h('div', null, h('b', null, tokenLabel(tokens[m.queries[+q]])), ` (token ${m.queries[+q]}) attends to `, h('b', null, tokenLabel(tokens[m.keys[+k]])), ` (token ${m.keys[+k]})`, h('br'), 'weight ' + (finite(v) ? v.toFixed(3) : '–')), ev.clientX, ev.clientY);
      });
      g.addEventListener('mouseleave', hideTip);
      svg.appendChild(g);
      holder.appendChild(h('div', { style: { marginBottom: '8px' } }, scaleBar(BLUES, '0', fmt(vmax), 'weight')));
      holder.appendChild(h('div', { style: { overflowX: 'auto' } }, svg));
      holder.appendChild(h('p', { class: 'caption' }, a.description || 'Rows: the token doing the attending (query); columns: the tokens it attends to (keys).'));
    }
    build();
    const miss = missingFor('attention', 'Attention');
    if (miss) body.appendChild(miss);
  }

  // ---------------------------------------------------------------------------------------------------------
  // 10. Where the time goes

  function renderTiming(body) {
    const idx = runs.map((_, i) => i).filter((i) => runs[i].timing);
    const parts = [{ name: 'forward', color: '#4c84e6' }, { name: 'backward', color: '#f08c4a' }, { name: 'outside the tape', color: '#9aa3b2' }];
    body.appendChild(legend(parts.map((p) => ({ name: p.name, color: p.color, square: true }))));
    const grid = h('div', { class: idx.length > 1 ? 'grid2' : '' });
    body.appendChild(grid);
    const built = idx.map((i) => timingRows(runs[i].timing));
    const shared = Math.max(...built.map((b) => Math.max(0, ...b.shown.map((r) => r.parts.reduce((x, y) => x + y, 0)))));
    idx.forEach((i, n) => {
      const tm = runs[i].timing;
      const { rows, shown, wall } = built[n];
      const box = h('div', { style: { minWidth: 0 } });
      grid.appendChild(box);
      box.appendChild(runTitle(i));
      box.appendChild(h('div', { class: 'stats' },
        h('div', { class: 'stat' }, h('div', { class: 'k' }, 'measured'), h('div', { class: 'v' }, fmtSeconds(wall))),
        finite(tm.batches) ? h('div', { class: 'stat' }, h('div', { class: 'k' }, 'per batch'), h('div', { class: 'v' }, fmtSeconds(wall / Math.max(1, tm.batches)))) : null,
        h('div', { class: 'stat' }, h('div', { class: 'k' }, 'forward / backward'), h('div', { class: 'v' }, fmtSeconds(rows.reduce((a, r) => a + r.parts[0], 0)) + ' / ' + fmtSeconds(rows.reduce((a, r) => a + r.parts[1], 0))))));
      box.appendChild(stackedBars({ width: widthOf(box, 560), rows: shown, parts, xLabel: 'seconds', format: fmtSeconds, labelWidth: 170, max: shared > 0 ? shared : undefined }));
      if (tm.description) box.appendChild(h('p', { class: 'caption' }, tm.description));
      if (tm.trace_file) box.appendChild(h('p', { class: 'caption' }, 'Timeline: ', h('code', null, tm.trace_file), ' (open it in chrome://tracing or ui.perfetto.dev).'));
    });
    const miss = missingFor('timing', 'Timing');
    if (miss) body.appendChild(miss);
  }

  // The rows of a timing chart: ops grouped by name ("matmul (700 x 650)" -> "matmul") and the time outside the
  // tape, largest first, the smallest folded into one row.
  function timingRows(tm) {
    const groups = new Map();
    for (const op of tm.ops || []) {
      const name = op.name.replace(/ \(\d+ x \d+\)$/, '');
      const g = groups.get(name) || { name, f: 0, b: 0, calls: 0, shapes: [] };
      g.f += op.forward_s || 0;
      g.b += op.backward_s || 0;
      g.calls += op.calls || 0;
      g.shapes.push(op);
      groups.set(name, g);
    }
    const rows = [...groups.values()].map((g) => ({ label: g.name, parts: [g.f, g.b, 0], g }));
    for (const o of tm.other || []) rows.push({ label: o.name, parts: [0, 0, o.seconds], other: o });
    rows.sort((a, b) => b.parts.reduce((x, y) => x + y, 0) - a.parts.reduce((x, y) => x + y, 0));
    const total = rows.reduce((acc, r) => acc + r.parts.reduce((x, y) => x + y, 0), 0);
    const wall = finite(tm.seconds) ? tm.seconds : total;
    const shown = rows.slice(0, 14);
    if (rows.length > shown.length) {
      const rest = rows.slice(shown.length);
      shown.push({ label: `${rest.length} more`, parts: [0, 1, 2].map((k) => rest.reduce((a, r) => a + r.parts[k], 0)) });
    }
    for (const r of shown) {
      r.tip = () => {
        const sum = r.parts.reduce((x, y) => x + y, 0);
        const out = h('div', null, h('b', null, r.label), h('span', { class: 'muted' }, ` · ${fmtPct(sum / (wall || 1))} of the time`), h('br'));
        if (r.g) {
          out.appendChild(document.createTextNode(`forward ${fmtSeconds(r.g.f)} · backward ${fmtSeconds(r.g.b)} · ${fmtInt(r.g.calls)} calls`));
          const shapes = r.g.shapes.slice().sort((a, b) => ((b.forward_s || 0) + (b.backward_s || 0)) - ((a.forward_s || 0) + (a.backward_s || 0))).slice(0, 6);
          if (shapes.length > 1 || shapes[0].name !== r.label) out.appendChild(h('table', null, shapes.map((op) => h('tr', null, h('td', { class: 'w' }, op.name), h('td', null, fmtSeconds((op.forward_s || 0) + (op.backward_s || 0)))))));
        } else out.appendChild(document.createTextNode(fmtSeconds(sum)));
        return out;
      };
    }
    return { rows, shown, wall };
  }

  // ---------------------------------------------------------------------------------------------------------
  // The page

  const SECTIONS = [
    { id: 'card', key: 'card', title: 'Run card', render: renderCard,
      lede: 'What was trained, on what, with which settings, and how well it did.' },
    { id: 'curves', key: 'curves', title: 'Training curves', render: renderCurves,
      lede: 'Training loss and perplexity per log interval, validation perplexity per epoch, the learning rate, the gradient norm before clipping and how often clipping fired, and throughput.' },
    { id: 'gradient_flow', key: 'gradient_flow', title: 'Gradient flow through time', nav: 'Gradient flow', render: renderGradientFlow,
      lede: 'How much gradient of the loss reaches the hidden state of each earlier time step: the vanishing-gradient picture. A plain tanh RNN’s curve falls steeply; gated cells keep it flat for longer.' },
    { id: 'gate_saturation', key: 'gate_saturation', title: 'Gate saturation', render: renderSaturation,
      lede: 'For every gate unit, the fraction of time it is left-saturated (< 0.1, closed) against right-saturated (> 0.9, open), as in Karpathy, Johnson & Fei-Fei (2015). Click a unit to see it over the text.' },
    { id: 'units', key: 'units', title: 'Units over text', render: renderUnits,
      lede: 'The passage coloured token by token by one unit’s activation. Pick a layer, a value (hidden state, cell state or a gate) and a unit, or start from the units that follow simple properties of the text best.' },
    { id: 'surprisal', key: 'surprisal', title: 'Surprisal', render: renderSurprisal,
      lede: 'The passage coloured by each token’s loss (how surprised the model was), with the model’s top-5 guesses on hover; then the loss by word frequency and by position in the truncated-BPTT window.' },
    { id: 'embeddings', key: 'embeddings', title: 'Embeddings', render: renderEmbeddings,
      lede: 'The input embedding table: a 2-D principal-component projection of frequent words, and the nearest neighbours of frequent words by cosine similarity.' },
    { id: 'samples', key: 'samples', title: 'Samples', render: renderSamples,
      lede: 'Text the model writes from a prompt at different temperatures: low is safe and repetitive, high is varied and less coherent.' },
    { id: 'attention', key: 'attention', title: 'Attention', render: renderAttention, absent: 'Not recorded for this model: its cells record no attention weights.',
      lede: 'Attention weights as a heatmap, for models whose cells record them.' },
    { id: 'timing', key: 'timing', title: 'Where the time goes', render: renderTiming,
      lede: 'The profiler’s breakdown of a training run: forward and backward time per op, and time spent outside the tape.' },
  ];

  function header() {
    const meta = [];
    if (doc.created) meta.push('created ' + doc.created);
    if (doc.generator) meta.push(doc.generator);
    meta.push(runs.length === 1 ? '1 run' : runs.length + ' runs compared');
    return h('header', { class: 'top' }, h('div', { class: 'top-inner' },
      h('div', { class: 'brand' }, h('b', null, 'xtgrad'), ' · model report'),
      h('h1', null, doc.title || runs.map((r) => r.name).join(' vs ')),
      h('div', { class: 'meta' }, meta.join(' · ')),
      h('div', { class: 'chips' }, runs.map((r, i) => {
        const c = r.card || {};
        const sub = [c.model, finite(c.best_valid_ppl) ? 'valid ppl ' + c.best_valid_ppl.toFixed(1) : null].filter(Boolean).join(' · ');
        return h('span', { class: 'chip' }, h('span', { class: 'dot', style: { background: runColor(i) } }), h('b', null, r.name), sub ? h('span', { class: 'sub' }, sub) : null);
      }))));
  }

  function main() {
    const app = document.getElementById('app');
    document.body.appendChild(tip);
    app.appendChild(header());
    const layout = h('div', { class: 'layout' });
    const nav = h('nav', { class: 'toc', 'aria-label': 'sections' });
    const navList = h('ol');
    nav.appendChild(navList);
    const content = h('main');
    layout.append(nav, content);
    app.appendChild(layout);
    app.appendChild(h('footer', null, 'Written by xtgrad-lm report · one self-contained file: the data, script and style are inline, and it loads nothing.'));

    const built = SECTIONS.map((sec, k) => {
      const el = h('section', { class: 'sec', id: 'sec-' + sec.id, 'data-section': sec.id, 'data-state': 'pending' },
        h('h2', null, h('span', { class: 'num' }, String(k + 1)), sec.title), h('p', { class: 'lede' }, sec.lede));
      const bodyEl = h('div', { class: 'sec-body' });
      el.appendChild(bodyEl);
      content.appendChild(el);
      const link = h('a', { href: '#sec-' + sec.id }, sec.nav || sec.title);
      navList.appendChild(h('li', null, link));
      return { sec, el, bodyEl, link };
    });
    for (const { sec, el, bodyEl, link } of built) {
      if (!runs.some((r) => r[sec.key])) {
        bodyEl.appendChild(absentNote(sec.absent || 'Not recorded for this model.'));
        el.setAttribute('data-state', 'absent');
        link.classList.add('absent');
        continue;
      }
      try {
        sec.render(bodyEl);
        el.setAttribute('data-state', 'done');
      } catch (e) {
        el.setAttribute('data-state', 'error');
        link.classList.add('failed');
        bodyEl.appendChild(h('p', { class: 'section-error' }, 'This section could not be drawn: ' + (e && e.stack ? e.stack : e)));
        status.add('section ' + sec.id, String(e && e.message ? e.message : e));
      }
    }
  }

  // The address's fragment, once the page is drawn: "#sec-units" scrolls to a section; "#unit=RUN,LAYER,KIND,UNIT"
  // shows a unit over the text; "#only=units" shows one section alone; "#tip=surprisal,57" hovers token 57 of a
  // section (for screenshots); joined with "&".
  function followHash() {
    const params = {};
    for (const part of decodeURIComponent(location.hash.slice(1)).split('&')) {
      const eq = part.indexOf('=');
      if (part) params[eq < 0 ? part : part.slice(0, eq)] = eq < 0 ? '' : part.slice(eq + 1);
    }
    if (params.only !== undefined) {
      document.querySelectorAll('section.sec').forEach((el) => { if (el.dataset.section !== params.only) el.style.display = 'none'; });
    }
    const m = /^(\d+),(\d+),([^,]+),(\d+)$/.exec(params.unit || '');
    if (m) selectUnit(+m[1], +m[2], m[3], +m[4], params.only === undefined);
    for (const k in params) {
      const el = k.startsWith('sec-') && document.getElementById(k);
      if (el) el.scrollIntoView({ block: 'start' });
    }
    const tipAt = /^([a-z_]+),(\d+)$/.exec(params.tip || '');
    const span = tipAt && document.querySelector(`#sec-${tipAt[1]} .tok[data-i="${tipAt[2]}"]`);
    if (span) {
      span.scrollIntoView({ block: 'nearest' });
      const r = span.getBoundingClientRect();
      span.classList.add('hl');
      span.dispatchEvent(new MouseEvent('mousemove', { bubbles: true, clientX: r.left + r.width / 2, clientY: r.bottom - 2 }));
    }
  }

  main();
  followHash();
  status.render_ms = Math.round(performance.now() - t0);
  status.done = true;
  status.write();
})();
