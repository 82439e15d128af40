// meshcd's view: draws the gate chart with uPlot and keeps the page current. The daemon tells
// the page of each change by server-sent events; the page then fetches its own main part
// again (rendered and escaped by the server) and swaps it in, without a reload.
'use strict';
(function () {
  function drawCharts() {
    const data = document.getElementById('gate-data');
    const el = document.getElementById('gate-chart');
    if (!data || !el || typeof uPlot === 'undefined') return;
    const d = JSON.parse(data.textContent);
    el.textContent = '';
    const flat = (v) => d.x.map(() => v);
    const series = [
      {label: 'run', value: (u, i) => (i == null ? '--' : d.revisions[i] + ' ' + new Date(d.x[i] * 1000).toISOString().slice(0, 19) + 'Z')},
      {label: 'p50 ms', stroke: '#0969da', width: 2},
      {label: 'p90 ms', stroke: '#bf8700', width: 2},
      {label: 'p99 ms', stroke: '#8250df', width: 2},
      {label: 'baseline p99 ms', stroke: '#6e7781', dash: [4, 4]},
      {label: 'failed run', stroke: '#cf222e', width: 0, points: {show: true, size: 12, fill: '#cf222e'}},
      {label: 'error rate %', stroke: '#cf222e', scale: '%', dash: [2, 3]},
    ];
    // One step per run, labelled with its revision: the chart reads over revisions.
    const x = d.x.map((_, i) => i);
    const cols = [x, d.p50, d.p90, d.p99, d.baseline, d.failed, d.errorRate];
    for (const k of Object.keys(d.budget || {}).sort()) {
      if (k === 'errorRate') {
        series.push({label: 'budget error rate %', stroke: '#cf222e', scale: '%', dash: [10, 5]});
        cols.push(flat(100 * d.budget[k]));
      } else {
        series.push({label: 'budget ' + k + ' ms', stroke: '#1a7f37', dash: [10, 5]});
        cols.push(flat(d.budget[k]));
      }
    }
    const width = Math.max(400, Math.min(el.clientWidth || 1000, 1200));
    new uPlot({
      width: width, height: 300, series: series,
      scales: {x: {time: false, range: (u, min, max) => [min - 0.5, max + 0.5]}, '%': {range: (u, min, max) => [0, Math.max(1, max)]}},
      axes: [
        {label: 'revision', splits: () => x, values: (u, splits) => splits.map((i) => d.revisions[i] || '')},
        {label: 'ms'},
        {scale: '%', side: 1, label: 'error %', grid: {show: false}},
      ],
    }, cols, el);
    el.dataset.points = String(d.x.length);
    el.dataset.failed = String(d.failed.filter((v) => v !== null).length);
  }

  let busy = false;
  let again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, {headers: {'X-Partial': '1'}, credentials: 'same-origin', cache: 'no-store'})
      .then((r) => (r.ok ? r.text() : Promise.reject(new Error(String(r.status)))))
      .then((html) => {
        document.querySelector('main').innerHTML = html;
        drawCharts();
        document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
      })
      .catch(() => {})
      .finally(() => {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  drawCharts();
  const live = document.getElementById('live');
  if (window.EventSource) {
    const es = new EventSource('/events');
    es.addEventListener('change', refresh);
    es.onopen = () => { live.classList.add('on'); refresh(); };
    es.onerror = () => live.classList.remove('on');
  }
})();
