// The live page: listens to /events (one "sample" every second) and updates counters, the
// zone map (sent only when it changed) and the error list. The latest sample is kept in
// window.liveState for whoever inspects the page (the browser test does).
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const num = (v, digits = 0) => v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  const limit = (n, max) => (max ? `${n} / ${max}` : `${n} / ∞`);
  const bytes = (b) => (b >= 1e12 ? `${num(b / 1e12, 2)} TB` : b >= 1e9 ? `${num(b / 1e9, 2)} GB` : `${num(b / 1e6, 1)} MB`);
  window.liveState = { samples: 0, mapUpdates: 0, last: null };

  function bar(el, n, max) {
    el.style.width = max ? `${Math.min(100, (100 * n) / max)}%` : '0';
    el.classList.toggle('full', !!max && n >= max);
  }

  function render(s) {
    const st = window.liveState;
    st.samples++;
    st.last = s;
    document.body.dataset.state = 'live';
    document.body.dataset.samples = String(st.samples);
    $('subject').textContent = s.subject;
    $('frontend').textContent = s.frontendConnected ? 'front-end connected' : 'no front-end';
    $('frontend').className = 'pill ' + (s.frontendConnected ? 'ok' : 'bad');
    $('iops').textContent = num(s.rates.iops);
    $('read-mbps').textContent = num(s.rates.readMBps, 1);
    $('write-mbps').textContent = num(s.rates.writeMBps, 1);
    $('resets').textContent = num(s.rates.resetsPerS, 1);
    $('inflight').textContent = num(s.inflight.reduce((a, b) => a + b, 0));
    if (s.zones) {
      $('open').textContent = limit(s.zones.open, s.zones.maxOpen);
      $('active').textContent = limit(s.zones.active, s.zones.maxActive);
      bar($('open-bar'), s.zones.open, s.zones.maxOpen);
      bar($('active-bar'), s.zones.active, s.zones.maxActive);
      $('written').textContent = bytes(s.zones.writtenBytes);
    }
    if (!s.zones && !st.regular) {
      st.regular = true;
      $('map').innerHTML = '<p class="hint">A regular disk (--model none): no zones to draw.</p>';
    }
    if (typeof s.map === 'string' && s.map) {
      // Our own daemon's SVG (no user-supplied markup in it: the title text is escaped).
      $('map').innerHTML = s.map;
      st.mapUpdates++;
      document.body.dataset.mapVersion = String(s.mapVersion);
    }
    $('error-total').textContent = s.totals.errors ? `(${num(s.totals.errors)} in total)` : '';
    const rows = s.errors.map((e) => {
      const tr = document.createElement('tr');
      for (const v of [new Date(e.time).toLocaleTimeString(), e.queue, e.op, e.sector, e.status]) {
        const td = document.createElement('td');
        td.textContent = String(v);
        tr.appendChild(td);
      }
      return tr;
    });
    $('errors').tBodies[0].replaceChildren(...rows);
  }

  const es = new EventSource('events');
  es.addEventListener('sample', (ev) => render(JSON.parse(ev.data)));
  es.onopen = () => { $('conn').textContent = 'live'; $('conn').className = 'pill ok'; };
  es.onerror = () => {
    $('conn').textContent = 'disconnected, retrying…';
    $('conn').className = 'pill bad';
    document.body.dataset.state = 'disconnected';
  };
})();
