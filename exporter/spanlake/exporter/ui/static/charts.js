// spanlake dashboards: small hand-drawn SVG charts (bars, stacked bars, lines) over time
// buckets. Labels and tooltips are text nodes only. Every data mark carries data-bucket,
// data-series and data-value, so a click can open the traces behind it (and tests can
// read the numbers back).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const CHART = { width: 600, height: 190, left: 52, right: 10, top: 10, bottom: 24 };
// Colour-blind-safe palette (Okabe-Ito, reordered): one colour per series.
const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#7f7f7f", "#f0e442"];

function svgEl(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children) if (child) node.appendChild(child);
  return node;
}

// 0 and up to four "nice" steps (1, 2, 2.5, 5 x 10^k) covering max.
function niceTicks(max) {
  if (!(max > 0)) return [0, 1];
  const rough = max / 4;
  const power = Math.pow(10, Math.floor(Math.log10(rough)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough);
  const ticks = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function fmtBucket(ms, intervalMs) {
  const iso = new Date(ms).toISOString();
  if (intervalMs >= 86400000) return iso.slice(5, 10);
  return iso.slice(intervalMs >= 3600000 ? 5 : 11, 16).replace("T", " ");
}

function fmtBucketLong(ms) {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

// spec: {id, title, buckets: [ms], intervalMs, kind: "bar"|"stack"|"line",
//        series: [{name, label, group, values: [number|null], color}],
//        format: (v) => string, onPick: (bucketMs, series|null) => void}
function drawChart(spec) {
  const { width, height, left, right, top, bottom } = CHART;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const n = spec.buckets.length;
  const series = spec.series.map((s, i) => ({ ...s, color: s.color || PALETTE[i % PALETTE.length] }));
  let max = 0;
  if (spec.kind === "stack") {
    for (let i = 0; i < n; i++) max = Math.max(max, series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  } else {
    for (const s of series) for (const v of s.values) if (v !== null && v > max) max = v;
  }
  const ticks = niceTicks(max);
  const top_ = ticks[ticks.length - 1];
  const y = (v) => top + plotH - (v / top_) * plotH;
  const slot = plotW / Math.max(n, 1);
  const xMid = (i) => left + slot * (i + 0.5);
  const root = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart-svg", role: "img", "aria-label": spec.title });

  const grid = svgEl("g", { class: "axis" });
  for (const t of ticks) {
    grid.appendChild(svgEl("line", { x1: left, x2: width - right, y1: y(t), y2: y(t), class: "grid" }));
    grid.appendChild(svgEl("text", { x: left - 6, y: y(t) + 4, "text-anchor": "end", text: spec.format(t) }));
  }
  const labels = Math.min(n, 6);
  for (let k = 0; k < labels; k++) {
    const i = labels === 1 ? 0 : Math.round((k * (n - 1)) / (labels - 1));
    grid.appendChild(svgEl("text", { x: xMid(i), y: height - 6, "text-anchor": "middle", text: fmtBucket(spec.buckets[i], spec.intervalMs) }));
  }
  root.appendChild(grid);

  const marks = svgEl("g", { class: "marks" });
  const mark = (node, i, s, value) => {
    node.setAttribute("class", "mark");
    node.setAttribute("data-bucket", String(spec.buckets[i]));
    node.setAttribute("data-series", s.name);
    node.setAttribute("data-value", String(value));
    node.appendChild(svgEl("title", { text: `${fmtBucketLong(spec.buckets[i])} · ${s.label || s.name}: ${spec.format(value)}` }));
    if (spec.onPick) node.addEventListener("click", (ev) => { ev.stopPropagation(); spec.onPick(spec.buckets[i], s); });
    marks.appendChild(node);
  };
  const barW = Math.max(Math.min(slot * 0.8, 40), 1);
  if (spec.kind === "bar" || spec.kind === "stack") {
    for (let i = 0; i < n; i++) {
      let base = 0;
      series.forEach((s, j) => {
        const v = s.values[i];
        if (!v) return;
        const bottomV = spec.kind === "stack" ? base : 0;
        const w = spec.kind === "stack" ? barW : barW / series.length;
        const x = spec.kind === "stack" ? xMid(i) - barW / 2 : xMid(i) - barW / 2 + j * w;
        const h = Math.max(y(bottomV) - y(bottomV + v), 1);
        mark(svgEl("rect", { x, y: y(bottomV + v), width: w, height: h, fill: s.color }), i, s, v);
        base += v;
      });
    }
  } else {
    for (const s of series) {
      let d = "";
      let pen = false;
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) { pen = false; return; }
        d += `${pen ? "L" : "M"}${xMid(i).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      });
      if (d) marks.appendChild(svgEl("path", { d, fill: "none", stroke: s.color, "stroke-width": 2, class: "line" }));
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) return;
        mark(svgEl("circle", { cx: xMid(i), cy: y(v), r: n > 60 ? 2.5 : 3.5, fill: s.color }), i, s, v);
      });
    }
  }
  // Whole-bucket click targets behind the marks: the bucket without a group.
  if (spec.onPick) {
    const hits = svgEl("g", { class: "hits" });
    for (let i = 0; i < n; i++) {
      const hit = svgEl("rect", { x: left + slot * i, y: top, width: slot, height: plotH, class: "hit", "data-bucket": spec.buckets[i] });
      hit.addEventListener("click", () => spec.onPick(spec.buckets[i], null));
      hits.appendChild(hit);
    }
    root.appendChild(hits);
  }
  root.appendChild(marks);

  const legend = el("div", { class: "legend" }, series.map((s) =>
    el("span", { class: "legend-item" }, swatch(s.color), s.label || s.name)));
  return el("figure", { class: "chart", id: spec.id, "data-kind": spec.kind },
    el("figcaption", {}, spec.title), series.length > 1 ? legend : null, root);
}

function swatch(color) {
  const box = svgEl("svg", { viewBox: "0 0 10 10", class: "swatch" }, svgEl("rect", { width: 10, height: 10, fill: color }));
  return box;
}
