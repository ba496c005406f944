// spanlake trace viewer: shared helpers, the trace list and routing (trace.js: one trace;
// overview.js + charts.js: the dashboards). Trace content is untrusted: it only ever
// reaches the page as text nodes (textContent) or attribute values, never as parsed HTML.
"use strict";

const PAGE_SIZE = 50;
const state = { experiment: "", filter: "", order: "", tokens: [null], page: 0, next: null };

// -- DOM helpers ------------------------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

const $ = (id) => document.getElementById(id);

// -- formatting -------------------------------------------------------------------------

function fmtTime(ms) {
  if (ms === null || ms === undefined) return "-";
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function fmtShortTime(ms) {
  if (ms === null || ms === undefined) return "-";
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined) return "-";
  if (ms === 0) return "0 ms";
  if (ms < 1) return ms.toFixed(2) + " ms";
  if (ms < 1000) return Math.round(ms) + " ms";
  return (ms / 1000).toFixed(2) + " s";
}

function fmtCost(usd) {
  return usd === null || usd === undefined ? "-" : "$" + Number(usd).toFixed(6);
}

function fmtTokens(usage) {
  if (!usage || !usage.total_tokens) return "-";
  return `${usage.total_tokens} (in ${usage.input_tokens} / out ${usage.output_tokens})`;
}

function parseMaybe(value) {
  if (typeof value !== "string") return value;
  const t = value.trim();
  if (!(t.startsWith("{") || t.startsWith("["))) return value;
  try { return JSON.parse(t); } catch (e) { return value; }
}

function jsonBlock(value) {
  const parsed = parseMaybe(value);
  const text = typeof parsed === "string" ? parsed : JSON.stringify(parsed, null, 2);
  return longText(text === undefined ? "null" : text, "pre", "json");  // trace.js
}

function tags(obj) {
  return Object.entries(obj || {}).map(([k, v]) => el("span", { class: "tag", title: `${k}=${v}` }, `${k}=${v}`));
}

function dl(rows) {
  const list = el("dl");
  for (const [key, value] of rows) {
    if (value === null || value === undefined || value === "") continue;
    append(list, [el("dt", {}, key), el("dd", {}, value)]);
  }
  return list;
}

// -- API --------------------------------------------------------------------------------

async function api(path, params) {
  const url = params ? `${path}?${params}` : path;
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return body;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  const box = $("error");
  box.textContent = "";
  box.hidden = true;
}

// -- trace list -------------------------------------------------------------------------

async function loadExperiments() {
  const data = await api("/api/experiments");
  const select = $("experiment");
  const names = data.experiments.map((e) => e.name);
  for (const name of names) select.appendChild(el("option", { value: name }, name));
  const wanted = data.default_experiment;
  if (wanted) {
    if (!names.includes(wanted)) select.appendChild(el("option", { value: wanted }, wanted));
    select.value = wanted;
    state.experiment = wanted;
  }
}

async function loadList() {
  const params = new URLSearchParams();
  if (state.experiment) params.append("experiment", state.experiment);
  if (state.filter) params.append("filter", state.filter);
  if (state.order) params.append("order_by", state.order);
  params.append("max_results", String(PAGE_SIZE));
  const token = state.tokens[state.page];
  if (token) params.append("page_token", token);
  const tbody = $("trace-list").querySelector("tbody");
  listHeader();
  try {
    const data = await api("/api/traces", params);
    clearError();
    clear(tbody);
    for (const t of data.traces) tbody.appendChild(traceRow(t));
    $("list-empty").hidden = data.traces.length > 0;
    state.next = data.next_page_token;
  } catch (err) {
    clear(tbody);
    $("list-empty").hidden = true;
    state.next = null;
    showError(err.message);
  }
  $("prev-page").disabled = state.page === 0;
  $("next-page").disabled = !state.next;
  $("page-label").textContent = `page ${state.page + 1}`;
}

// The Experiment column only when the list spans every experiment.
const COLUMNS = [["Time (UTC)", "col-time"], ["Experiment", "col-experiment"], ["Trace", "col-trace"],
  ["Name", "col-name"], ["State", "col-state"], ["Duration", "col-duration"], ["Tokens", "col-tokens"],
  ["Cost", "col-cost"], ["Request", "col-request"], ["Response", "col-response"], ["Tags", "col-tags"]];

function listHeader() {
  const shown = COLUMNS.filter(([, cls]) => cls !== "col-experiment" || !state.experiment);
  const table = $("trace-list");
  append(clear(table.querySelector("colgroup")), shown.map(([, cls]) => el("col", { class: cls })));
  clear(table.querySelector("thead")).appendChild(el("tr", {}, shown.map(([name, cls]) => el("th", { class: cls }, name))));
}

function traceRow(t) {
  const open = () => { location.hash = "#trace/" + encodeURIComponent(t.trace_id); };
  return el("tr", { class: "trace-row", "data-trace-id": t.trace_id, onclick: open },
    el("td", { class: "time", title: fmtTime(t.request_time_ms) }, fmtShortTime(t.request_time_ms)),
    state.experiment ? null : el("td", { class: "experiment", title: t.experiment }, t.experiment),
    el("td", { class: "mono", title: t.trace_id }, t.trace_id.slice(0, 12)),
    el("td", { class: "trace-name", title: t.name || "" }, t.name || "-"),
    el("td", { class: `state state-${t.state}` }, t.state),
    el("td", { class: "num" }, fmtDuration(t.execution_time_ms)),
    el("td", { class: "num tokens" }, t.token_usage && t.token_usage.total_tokens ? String(t.token_usage.total_tokens) : "-"),
    el("td", { class: "num cost" }, fmtCost(t.cost_usd)),
    el("td", { class: "preview request", title: t.request_preview || "" }, t.request_preview || ""),
    el("td", { class: "preview response", title: t.response_preview || "" }, t.response_preview || ""),
    el("td", { class: "tags" }, tags(t.tags)));
}

function search() {
  state.experiment = $("experiment").value;
  state.filter = $("search").value.trim();
  state.order = $("order").value;
  state.tokens = [null];
  state.page = 0;
  if (location.hash.startsWith("#overview")) route();  // the overview keeps its range
  else if (location.hash && location.hash !== "#" && location.hash !== "#traces") location.hash = "#traces";
  else route();
}

function setTab(name) {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.classList.toggle("active", tab.getAttribute("data-tab") === name);
  }
}

// -- routing ----------------------------------------------------------------------------

function route() {
  const match = location.hash.match(/^#trace\/(.+)$/);
  if (match) {
    showTrace(decodeURIComponent(match[1]));
  } else if (location.hash.startsWith("#overview")) {
    showOverview();
  } else {
    $("trace-view").hidden = true;
    $("overview-view").hidden = true;
    $("list-view").hidden = false;
    setTab("traces");
    loadList();
  }
}

async function init() {
  $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); search(); });
  $("experiment").addEventListener("change", search);
  $("order").addEventListener("change", search);
  $("back").addEventListener("click", () => { location.hash = "#traces"; });
  initOverview();
  $("next-page").addEventListener("click", () => {
    if (!state.next) return;
    state.tokens[state.page + 1] = state.next;
    state.page += 1;
    loadList();
  });
  $("prev-page").addEventListener("click", () => {
    if (state.page === 0) return;
    state.page -= 1;
    loadList();
  });
  window.addEventListener("hashchange", route);
  try {
    await loadExperiments();
  } catch (err) {
    showError(err.message);
  }
  route();
}

document.addEventListener("DOMContentLoaded", init);
