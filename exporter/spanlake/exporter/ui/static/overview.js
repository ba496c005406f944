// spanlake overview: one experiment's traces, errors, latency, tokens and cost over time,
// overall and split by model, from /api/stats (the `spanlake stats` JSON). A click on a
// bar or point opens the trace list filtered to that bucket (and model).
"use strict";

const RANGES = { "1h": 3600e3, "6h": 6 * 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
const INTERVALS = [["1m", 60e3], ["5m", 300e3], ["15m", 900e3], ["1h", 3600e3], ["3h", 3 * 3600e3],
  ["6h", 6 * 3600e3], ["12h", 12 * 3600e3], ["1d", 86400e3], ["7d", 7 * 86400e3]];
const MAX_BUCKETS = 72;
// One bucket holding any range (buckets align to the epoch): the whole-range summary.
const WHOLE = "36500d";

function overviewParams() {
  const query = location.hash.includes("?") ? location.hash.slice(location.hash.indexOf("?") + 1) : "";
  return new URLSearchParams(query);
}

function autoInterval(spanMs) {
  for (const [name, ms] of INTERVALS) if (spanMs / ms <= MAX_BUCKETS) return [name, ms];
  return INTERVALS[INTERVALS.length - 1];
}

function intervalMs(name) {
  const m = /^(\d+)([smhd])$/.exec(name || "");
  if (!m) return null;
  return Number(m[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2]];
}

function toLocalInput(ms) {
  return new Date(ms).toISOString().slice(0, 16);
}

function fromLocalInput(text) {
  const ms = Date.parse(text + ":00Z");
  return Number.isNaN(ms) ? null : ms;
}

// [start, end) for the picker's choice; "all" asks the store for the oldest/newest trace.
async function resolveRange(params) {
  const range = params.get("range") || (params.get("start") ? "custom" : "all");
  if (range === "custom") {
    return { range, start: Number(params.get("start")), end: Number(params.get("end")) || Date.now() };
  }
  if (RANGES[range]) {
    const end = Date.now();
    return { range, start: end - RANGES[range], end };
  }
  const edge = async (order) => {
    const p = new URLSearchParams();
    if (state.experiment) p.append("experiment", state.experiment);
    if (state.filter) p.append("filter", state.filter);
    p.append("order_by", order);
    p.append("max_results", "1");
    const data = await api("/api/traces", p);
    return data.traces.length ? data.traces[0].request_time_ms : null;
  };
  const first = await edge("request_time_ms ASC");
  const last = await edge("request_time_ms DESC");
  if (first === null) return { range: "all", start: Date.now() - 86400e3, end: Date.now() };
  return { range: "all", start: first, end: last + 1 };
}

async function stats(start, end, interval, groupBy) {
  const p = new URLSearchParams();
  if (state.experiment) p.append("experiment", state.experiment);
  if (state.filter) p.append("filter", state.filter);
  if (groupBy) p.append("group_by", groupBy);
  p.append("interval", interval);
  p.append("start", String(start));
  p.append("end", String(end));
  return api("/api/stats", p);
}

async function showOverview() {
  $("list-view").hidden = true;
  $("trace-view").hidden = true;
  $("overview-view").hidden = false;
  setTab("overview");
  const params = overviewParams();
  const body = clear($("overview-body"));
  body.appendChild(el("p", { class: "muted" }, "Loading…"));
  try {
    const { range, start, end } = await resolveRange(params);
    const wanted = params.get("interval") || "auto";
    let [interval, iv] = wanted === "auto" ? autoInterval(end - start) : [wanted, intervalMs(wanted)];
    if (!iv) [interval, iv] = autoInterval(end - start);
    syncPicker(range, start, end, wanted);
    const [total, byModel, whole] = await Promise.all([
      stats(start, end, interval, null), stats(start, end, interval, "model"), stats(start, end, WHOLE, null)]);
    clearError();
    renderOverview(body, { start, end, interval, iv, total, byModel, whole });
  } catch (err) {
    clear(body);
    showError(err.message);
  }
}

function syncPicker(range, start, end, interval) {
  $("range").value = range;
  $("interval").value = INTERVALS.some(([n]) => n === interval) ? interval : "auto";
  $("custom-range").hidden = range !== "custom";
  $("range-start").value = toLocalInput(start);
  $("range-end").value = toLocalInput(end);
}

function applyPicker() {
  const p = new URLSearchParams();
  const range = $("range").value;
  p.set("range", range);
  if (range === "custom") {
    const start = fromLocalInput($("range-start").value);
    const end = fromLocalInput($("range-end").value);
    if (start === null || end === null || end <= start) {
      showError("Custom range: pick a start before the end");
      return;
    }
    p.set("start", String(start));
    p.set("end", String(end));
  }
  if ($("interval").value !== "auto") p.set("interval", $("interval").value);
  location.hash = "#overview?" + p.toString();
}

function bucketsOf(start, end, iv) {
  const out = [];
  for (let b = start - (start % iv); b < end; b += iv) out.push(b);
  return out;
}

function column(rows, buckets, metric, match) {
  const at = new Map();
  for (const r of rows) if (match(r)) at.set(r.bucket_start_ms, r[metric]);
  return buckets.map((b) => (at.has(b) ? at.get(b) : null));
}

const fmtCount = (v) => (Math.abs(v) >= 1e6 ? (v / 1e6).toFixed(1) + "M" : Math.abs(v) >= 1e4 ? (v / 1e3).toFixed(0) + "k" : String(Math.round(v * 100) / 100));
const fmtPct = (v) => (v * 100).toFixed(v < 0.1 && v > 0 ? 1 : 0) + "%";
const fmtMs = (v) => fmtDuration(v);
const fmtUsd = (v) => "$" + (v >= 1 ? v.toFixed(2) : v >= 0.01 ? v.toFixed(3) : v.toPrecision(2));

function renderOverview(body, d) {
  clear(body);
  const buckets = bucketsOf(d.start, d.end, d.iv);
  const rows = d.total.rows;
  const all = () => true;
  const zero = (values) => values.map((v) => v || 0);
  const w = d.whole.rows.reduce((acc, r) => acc || r, null);
  body.appendChild(el("div", { class: "tiles", id: "tiles" },
    tile("Traces", w ? fmtCount(w.count) : "0", "tile-traces"),
    tile("Error rate", w ? `${fmtPct(w.error_rate)} (${w.error_count})` : "-", "tile-errors"),
    tile("Latency p50 / p90 / p99", w ? [w.latency_p50_ms, w.latency_p90_ms, w.latency_p99_ms].map(fmtDuration).join(" / ") : "-", "tile-latency"),
    tile("Tokens in / out", w ? `${fmtCount(w.input_tokens)} / ${fmtCount(w.output_tokens)}` : "-", "tile-tokens"),
    tile("Cost", w && w.cost_usd !== null ? fmtUsd(w.cost_usd) : "-", "tile-cost")));
  body.appendChild(el("p", { class: "muted", id: "overview-range" },
    `${fmtBucketLong(d.start)} – ${fmtBucketLong(d.end)} · ${buckets.length} buckets of ${d.interval} · click a bar or point for its traces`));
  if (!rows.length) {
    body.appendChild(el("p", { id: "overview-empty" }, "No traces in this range."));
    return;
  }
  const pick = (chartGroup) => (bucket, series) => openBucket(bucket, d.iv, series && chartGroup ? series.group : undefined);
  const common = { buckets, intervalMs: d.iv };
  const counts = zero(column(rows, buckets, "count", all));
  const errors = zero(column(rows, buckets, "error_count", all));
  const over = [
    drawChart({ ...common, id: "chart-traces", title: "Traces", kind: "stack", format: fmtCount, onPick: pick(false),
      series: [
        { name: "ok", label: "OK / in progress", values: counts.map((c, i) => c - errors[i]), color: PALETTE[0] },
        { name: "errors", label: "errors", values: errors, color: PALETTE[5] }] }),
    drawChart({ ...common, id: "chart-error-rate", title: "Error rate", kind: "line", format: fmtPct, onPick: pick(false),
      series: [{ name: "error_rate", label: "error rate", values: column(rows, buckets, "error_rate", all), color: PALETTE[5] }] }),
    drawChart({ ...common, id: "chart-latency", title: "Latency (trace duration)", kind: "line", format: fmtMs, onPick: pick(false),
      series: ["p50", "p90", "p99"].map((p, i) => ({ name: `latency_${p}_ms`, label: p, values: column(rows, buckets, `latency_${p}_ms`, all), color: PALETTE[i] })) }),
    drawChart({ ...common, id: "chart-tokens", title: "Tokens", kind: "stack", format: fmtCount, onPick: pick(false),
      series: [
        { name: "input_tokens", label: "input", values: zero(column(rows, buckets, "input_tokens", all)), color: PALETTE[0] },
        { name: "output_tokens", label: "output", values: zero(column(rows, buckets, "output_tokens", all)), color: PALETTE[1] }] }),
    drawChart({ ...common, id: "chart-cost", title: "Cost (USD)", kind: "bar", format: fmtUsd, onPick: pick(false),
      series: [{ name: "cost_usd", label: "cost", values: zero(column(rows, buckets, "cost_usd", all)), color: PALETTE[2] }] }),
  ];
  const models = [...new Set(d.byModel.rows.map((r) => r.group.model))].sort((a, b) =>
    a === null ? 1 : b === null ? -1 : a < b ? -1 : a > b ? 1 : 0);
  const perModel = (metric) => models.map((m, i) => ({
    name: m === null ? "(no model)" : m, group: m, color: PALETTE[i % PALETTE.length],
    values: column(d.byModel.rows, buckets, metric, (r) => r.group.model === m) }));
  const zeroed = (list) => list.map((s) => ({ ...s, values: zero(s.values) }));
  const split = [
    drawChart({ ...common, id: "chart-model-traces", title: "Traces by model", kind: "line", format: fmtCount, onPick: pick(true), series: zeroed(perModel("count")) }),
    drawChart({ ...common, id: "chart-model-errors", title: "Error rate by model", kind: "line", format: fmtPct, onPick: pick(true), series: perModel("error_rate") }),
    drawChart({ ...common, id: "chart-model-latency", title: "Latency p90 by model", kind: "line", format: fmtMs, onPick: pick(true), series: perModel("latency_p90_ms") }),
    drawChart({ ...common, id: "chart-model-tokens", title: "Tokens by model", kind: "line", format: fmtCount, onPick: pick(true), series: zeroed(perModel("total_tokens")) }),
    drawChart({ ...common, id: "chart-model-cost", title: "Cost by model (USD)", kind: "line", format: fmtUsd, onPick: pick(true), series: zeroed(perModel("cost_usd")) }),
  ];
  body.appendChild(el("h2", {}, "Over time"));
  body.appendChild(el("div", { class: "charts", id: "charts-total" }, over));
  body.appendChild(el("h2", {}, "By model"));
  body.appendChild(el("p", { class: "muted" }, "A trace that used several models counts under each of them."));
  body.appendChild(el("div", { class: "charts", id: "charts-model" }, split));
}

function tile(label, value, id) {
  return el("div", { class: "tile", id }, el("div", { class: "tile-label" }, label), el("div", { class: "tile-value" }, value));
}

function quote(text) {
  return "'" + String(text).replace(/\\/g, "\\\\").replace(/'/g, "''") + "'";
}

// The trace list behind one bucket (and one model; undefined: every model).
function openBucket(bucket, iv, model) {
  const parts = [];
  if (state.filter) parts.push(`(${state.filter})`);
  parts.push(`timestamp_ms >= ${bucket}`, `timestamp_ms < ${bucket + iv}`);
  if (model !== undefined) parts.push(model === null ? "model NOT LIKE '%'" : `model = ${quote(model)}`);
  state.filter = parts.join(" AND ");
  $("search").value = state.filter;
  state.tokens = [null];
  state.page = 0;
  location.hash = "#traces";
}

function initOverview() {
  // A preset range applies at once; "Custom" first shows its inputs (applied by the
  // button); the bucket size applies to whichever range is shown.
  $("range").addEventListener("change", () => {
    $("custom-range").hidden = $("range").value !== "custom";
    if ($("range").value !== "custom") applyPicker();
  });
  $("interval").addEventListener("change", applyPicker);
  $("range-apply").addEventListener("click", applyPicker);
}
