// Runs before anything else on the page: records script errors (including a syntax error in the report's own
// script), rejected promises, console errors and warnings, and requests the page's Content-Security-Policy blocked.
// They show in a banner at the top, and in #report-status (JSON), which the browser test reads.
(function () {
  'use strict';
  var st = (window.__xtgrad = { errors: [], blocked: [], done: false });

  function banner() {
    var b = document.getElementById('report-errors');
    if (!b && document.body) {
      b = document.createElement('div');
      b.id = 'report-errors';
      b.className = 'error-banner';
      document.body.insertBefore(b, document.body.firstChild);
    }
    if (!b) return;
    b.textContent = '';
    var head = document.createElement('strong');
    head.textContent = 'This report hit a problem while drawing; some parts may be missing:';
    b.appendChild(head);
    var list = document.createElement('ul');
    st.errors.concat(st.blocked.map(function (u) { return 'blocked request: ' + u; })).forEach(function (e) {
      var li = document.createElement('li');
      li.textContent = e;
      list.appendChild(li);
    });
    b.appendChild(list);
  }

  // Writes the page's state as JSON into a hidden pre element, #report-status.
  st.write = function () {
    if (!document.body) return;
    var sections = {}, heights = {};
    var els = document.querySelectorAll('section[data-section]');
    for (var i = 0; i < els.length; i++) {
      sections[els[i].getAttribute('data-section')] = els[i].getAttribute('data-state');
      heights[els[i].getAttribute('data-section')] = els[i].offsetHeight;
    }
    var resources = [];
    if (window.performance && performance.getEntriesByType)
      resources = performance.getEntriesByType('resource').map(function (e) { return e.name; });
    var el = document.getElementById('report-status');
    if (!el) {
      el = document.createElement('pre');
      el.id = 'report-status';
      el.hidden = true;
      document.body.appendChild(el);
    }
    el.textContent = JSON.stringify({ done: st.done, sections: sections, errors: st.errors, blocked: st.blocked, resources: resources,
      height: document.documentElement.scrollHeight, section_heights: heights, render_ms: st.render_ms });
    var bad = st.errors.length > 0 || st.blocked.length > 0 || resources.length > 0;
    document.body.setAttribute('data-report', !st.done ? 'pending' : bad ? 'error' : 'done');
    if (st.errors.length || st.blocked.length) banner();
  };

  st.add = function (kind, text) {
    st.errors.push(kind + ': ' + text);
    st.write();
  };

  window.addEventListener('error', function (e) {
    st.add('error', (e.message || String(e.error || 'unknown')) + (e.filename ? ' (line ' + e.lineno + ':' + e.colno + ')' : ''));
  });
  window.addEventListener('unhandledrejection', function (e) { st.add('unhandled rejection', String(e.reason)); });
  document.addEventListener('securitypolicyviolation', function (e) {
    st.blocked.push((e.blockedURI || '(inline)') + ' [' + e.violatedDirective + ']');
    st.write();
  });
  ['error', 'warn'].forEach(function (level) {
    var original = console[level];
    console[level] = function () {
      st.add('console.' + level, Array.prototype.map.call(arguments, String).join(' '));
      return original.apply(console, arguments);
    };
  });
  window.addEventListener('load', function () {
    st.write();
    setTimeout(st.write, 300);
  });
})();
