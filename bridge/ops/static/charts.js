// The map cards' charts: changes applied per minute, latency and lag over the last hour, one point a
// minute (GET /api/series), drawn by uPlot (vendored: static/vendor/README.md). app.js makes one
// set per card (dwCharts.create) and hands it every poll's series (update).
"use strict";

const dwCharts = (() => {
  const HEIGHT = 150;
  const sets = new Map(); // entity -> chart set

  const cssColor = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const fmtDur = (s) => {
    if (s == null) return "–";
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 120) return Number(s.toFixed(1)) + " s";
    return Number((s / 60).toFixed(1)) + " min";
  };
  const fmtCount = (v) => (v == null ? "–" : String(Math.round(v)));

  // chart -> its title, value format and series: [label, colour variable, values of a series, style]
  const KINDS = {
    throughput: {
      title: "Changes applied per minute", fmt: fmtCount,
      // Failures: a red dot in each minute that had any (no line along zero to read past).
      series: (s) => [["cds→scm", "--cds", s.applied_cds_scm, "bars-left"],
        ["scm→cds", "--scm", s.applied_scm_cds, "bars-right"],
        ["failed", "--bad", s.failed.map((v) => (v ? v : null)), "dots"]],
      top: 2, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000],
    },
    latency: {
      title: "Latency (receipt to applied), mean per minute", fmt: fmtDur, top: 1,
      // The first direction's points are larger: where both directions took about as long in a
      // minute, the second's point sits inside the first's ring instead of hiding it.
      series: (s) => [["cds→scm", "--cds", s.latency_cds_scm_s || [], "line-under"],
        ["scm→cds", "--scm", s.latency_scm_cds_s || [], "line"]],
    },
    lag: {
      title: "Lag: age of the oldest queued change", fmt: fmtDur, top: 1,
      series: (s) => [["lag", "--lag", s.lag_s, "area"]],
    },
  };

  function seriesOption(label, colour, style, fmt) {
    const stroke = cssColor(colour);
    const base = { label, stroke, width: 2, value: (u, v) => fmt(v), spanGaps: false };
    if (style.startsWith("bars")) {
      const align = style === "bars-left" ? -1 : 1;
      return { ...base, width: 0, fill: stroke, paths: uPlot.paths.bars({ size: [0.45, 14], align }),
        points: { show: false } };
    }
    if (style === "area") return { ...base, fill: stroke + "33", points: { show: true, size: 5 } };
    if (style === "dots") return { ...base, width: 0, paths: () => null, points: { show: true, size: 8, fill: stroke } };
    return { ...base, points: { show: true, size: style === "line-under" ? 11 : 6, fill: stroke } };
  }

  function options(kind, width) {
    const k = KINDS[kind];
    const labels = k.series({ applied_cds_scm: [], applied_scm_cds: [], failed: [], lag_s: [] });
    return {
      width, height: HEIGHT,
      cursor: { drag: { x: false, y: false } },
      legend: { show: true, live: true },
      // Half a minute either side of the first and last point, so their bars are not cut in half.
      scales: {
        x: { time: true, range: (u, min, max) => [min - 30, max + 30] },
        y: { range: (u, min, max) => [0, Math.max((max || 0) * 1.15, k.top)] }, // from 0; never a flat 0..0
      },
      axes: [
        { stroke: cssColor("--muted"), grid: { stroke: cssColor("--line"), width: 1 }, ticks: { show: false } },
        { stroke: cssColor("--muted"), grid: { stroke: cssColor("--line"), width: 1 }, ticks: { show: false },
          size: 56, values: (u, vals) => vals.map(k.fmt), ...(k.incrs ? { incrs: k.incrs } : {}) },
      ],
      series: [{ value: (u, ts) => (ts == null ? "–" : new Date(ts * 1000).toLocaleTimeString()) },
        ...labels.map(([label, colour, , style]) => seriesOption(label, colour, style, k.fmt))],
    };
  }

  function create(entity) {
    const root = document.createElement("div");
    root.className = "charts";
    const set = { entity, root, plots: {}, data: {}, boxes: {} };
    for (const kind of Object.keys(KINDS)) {
      const box = document.createElement("figure");
      box.className = "chart-box";
      box.dataset.chart = kind;
      const caption = document.createElement("figcaption");
      caption.textContent = KINDS[kind].title;
      const area = document.createElement("div");
      area.className = "chart-area";
      box.append(caption, area);
      root.append(box);
      set.boxes[kind] = area;
    }
    // Charts follow their card's width (a phone, a resized window).
    set.observer = new ResizeObserver(() => {
      for (const [kind, plot] of Object.entries(set.plots)) {
        const width = set.boxes[kind].clientWidth;
        if (width > 0 && width !== plot.width) plot.setSize({ width, height: HEIGHT });
      }
    });
    set.observer.observe(root);
    sets.set(entity, set);
    return set;
  }

  function update(set, s, startIso, step) {
    const start = Date.parse(startIso) / 1000;
    const xs = s.failed.map((_, i) => start + i * step + step / 2);
    for (const kind of Object.keys(KINDS)) {
      const data = [xs, ...KINDS[kind].series(s).map(([, , values]) => values)];
      set.data[kind] = data;
      const plot = set.plots[kind];
      if (plot) { plot.setData(data); continue; }
      const width = set.boxes[kind].clientWidth || 300;
      set.plots[kind] = new uPlot(options(kind, width), data, set.boxes[kind]);
    }
  }

  // For the browser test and the curious: how many points of a chart hold a value (not null, not 0).
  function points(entity, kind) {
    const data = sets.get(entity)?.data[kind];
    if (!data) return 0;
    return data.slice(1).reduce((n, ys) => n + ys.filter((v) => v != null && v !== 0).length, 0);
  }

  return { create, update, points };
})();
window.dwCharts = dwCharts;
