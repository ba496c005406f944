// spanlake trace viewer. Trace content is untrusted: it only ever reaches the page as
// text nodes (textContent) or attribute values, never as parsed HTML markup.
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

function fmtDuration(ms) {
  if (ms === null || ms === undefined) return "-";
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
  return el("pre", { class: "json" }, text === undefined ? "null" : text);
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

function traceRow(t) {
  const open = () => { location.hash = "#trace/" + encodeURIComponent(t.trace_id); };
  return el("tr", { class: "trace-row", "data-trace-id": t.trace_id, onclick: open },
    el("td", { class: "num" }, fmtTime(t.request_time_ms)),
    el("td", { class: "mono", title: t.trace_id }, t.trace_id.slice(0, 12)),
    el("td", { class: "trace-name" }, t.name || "-"),
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
  if (location.hash && location.hash !== "#") location.hash = "";
  else route();
}

// -- trace detail -----------------------------------------------------------------------

async function showTrace(traceId) {
  $("list-view").hidden = true;
  $("trace-view").hidden = false;
  clear($("trace-summary")).appendChild(el("p", { class: "muted" }, "Loading…"));
  clear($("span-tree"));
  clear($("span-detail"));
  try {
    const trace = await api("/api/traces/" + encodeURIComponent(traceId));
    clearError();
    renderTrace(trace);
  } catch (err) {
    clear($("trace-summary"));
    showError(err.message);
  }
}

function renderTrace(trace) {
  const info = trace.info;
  const u = info.token_usage || {};
  // Our append(), not Element.append(): the DOM's turns a null child (no assessments)
  // into the text "null".
  append(clear($("trace-summary")), [
    el("h2", { id: "trace-title" }, info.name || info.trace_id),
    dl([
      ["Trace ID", el("span", { class: "mono" }, info.trace_id)],
      ["Experiment", info.experiment],
      ["State", el("span", { class: `state-${info.state}` }, info.state)],
      ["Started", fmtTime(info.request_time_ms)],
      ["Duration", fmtDuration(info.execution_time_ms)],
      ["Spans", String(info.span_count)],
      ["Tokens", el("span", { id: "trace-tokens" }, fmtTokens(u) +
        (u.cache_read_input_tokens ? `, cache read ${u.cache_read_input_tokens}` : "") +
        (u.reasoning_output_tokens ? `, reasoning ${u.reasoning_output_tokens}` : ""))],
      ["Cost", el("span", { id: "trace-cost" }, fmtCost(info.cost_usd))],
      ["Models", (info.models || []).join(", ")],
      ["Service", info.service_name],
      ["Client request", info.client_request_id],
      ["Tags", Object.keys(info.tags || {}).length ? el("span", { id: "trace-tags" }, tags(info.tags)) : null],
      ["Metadata", Object.keys(info.metadata || {}).length ? el("span", { id: "trace-metadata" }, tags(info.metadata)) : null],
    ]),
    assessments(trace.assessments || []),
  ]);

  const spans = trace.spans;
  const ids = new Set(spans.map((s) => s.span_id));
  const children = new Map();
  for (const s of spans) {
    const parent = ids.has(s.parent_span_id) ? s.parent_span_id : null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(s);
  }
  // reduce, not Math.min(...spans): a spread of a huge trace overflows the call stack.
  const start = spans.reduce((m, s) => Math.min(m, s.start_time_ns), Infinity);
  const end = spans.reduce((m, s) => Math.max(m, s.end_time_ns || s.start_time_ns), -Infinity);
  const total = Math.max(end - start, 1);
  const tree = clear($("span-tree"));
  const rows = [];
  const walk = (parent, depth) => {
    for (const s of children.get(parent) || []) {
      rows.push(spanRow(s, depth, start, total));
      walk(s.span_id, depth + 1);
    }
  };
  walk(null, 0);
  append(tree, rows);
  if (spans.length) selectSpan(children.get(null)[0], start);
  // One handler per shown trace (assigned, not added, so no earlier trace's handler stays).
  tree.onclick = (ev) => {
    const row = ev.target.closest(".span-row");
    if (!row) return;
    const span = spans.find((s) => s.span_id === row.getAttribute("data-span-id"));
    if (span) selectSpan(span, start);
  };
}

function assessments(list) {
  if (!list.length) return null;
  return el("div", { id: "assessments" },
    el("h3", {}, "Assessments"),
    el("table", {},
      el("thead", {}, el("tr", {}, ["Kind", "Name", "Value", "Rationale", "Source", "Span"].map((h) => el("th", {}, h)))),
      el("tbody", {}, list.map((a) => el("tr", {},
        el("td", {}, a.kind), el("td", {}, a.name), el("td", { class: "mono" }, JSON.stringify(a.value)),
        el("td", {}, a.rationale || ""),
        el("td", {}, a.source ? [a.source.type, a.source.id ? ` (${a.source.id})` : ""] : ""),
        el("td", { class: "mono" }, a.span_id || ""))))));
}

function spanDurationMs(s) {
  return s.end_time_ns === null || s.end_time_ns === undefined ? null : (s.end_time_ns - s.start_time_ns) / 1e6;
}

function spanRow(s, depth, start, total) {
  const left = ((s.start_time_ns - start) / total) * 100;
  const end = s.end_time_ns === null || s.end_time_ns === undefined ? start + total : s.end_time_ns;
  const width = ((end - s.start_time_ns) / total) * 100;
  const d = spanDurationMs(s);
  const bar = el("div", { class: "bar", title: `+${fmtDuration((s.start_time_ns - start) / 1e6)}, ${d === null ? "in progress" : fmtDuration(d)}` });
  bar.style.left = `${left}%`;
  bar.style.width = `${Math.max(width, 0)}%`;
  const label = el("div", { class: "span-label" },
    el("span", { class: "span-name" }, s.name),
    el("span", { class: "span-type" }, s.span_type),
    s.model ? el("span", { class: "span-model tag" }, s.model) : null,
    s.status === "ERROR" ? el("span", { class: "status-ERROR" }, " ERROR") : null);
  label.style.paddingLeft = `${depth * 1.2}em`;
  return el("div", { class: `span-row status-${s.status}`, role: "treeitem", "data-span-id": s.span_id },
    label,
    el("div", {},
      el("span", { class: "span-time" }, d === null ? "in progress" : fmtDuration(d)),
      s.token_usage ? el("span", { class: "span-time" }, `${s.token_usage.total_tokens} tok`) : null,
      el("div", { class: "timeline" }, bar)));
}

function selectSpan(s, traceStart) {
  for (const row of document.querySelectorAll(".span-row")) {
    row.classList.toggle("selected", row.getAttribute("data-span-id") === s.span_id);
  }
  const u = s.token_usage;
  const d = spanDurationMs(s);
  const detail = clear($("span-detail"));
  append(detail, [
    el("h2", { id: "span-title" }, s.name),
    dl([
      ["Type", el("span", { id: "span-type" }, s.span_type)],
      ["Span ID", el("span", { class: "mono" }, s.span_id)],
      ["Kind", s.kind],
      ["Status", el("span", { id: "span-status", class: `status-${s.status}` },
        s.status + (s.status_message ? `: ${s.status_message}` : ""))],
      ["Model", s.model ? el("span", { id: "span-model" }, s.model) : null],
      ["Provider", s.provider],
      ["Start", `+${fmtDuration((s.start_time_ns - traceStart) / 1e6)}`],
      ["Duration", d === null ? "in progress" : fmtDuration(d)],
      ["Tokens", u ? el("span", { id: "span-tokens" }, fmtTokens(u) +
        (u.cache_read_input_tokens ? `, cache read ${u.cache_read_input_tokens}` : "") +
        (u.cache_creation_input_tokens ? `, cache write ${u.cache_creation_input_tokens}` : "") +
        (u.reasoning_output_tokens ? `, reasoning ${u.reasoning_output_tokens}` : "")) : null],
      ["Scope", s.scope],
    ]),
  ]);
  const chat = chatMessages(s);
  if (chat.length) append(detail, [el("h3", {}, "Chat"), el("div", { class: "chat", id: "chat" }, chat.map(chatMessage))]);
  append(detail, [
    el("h3", {}, "Inputs"), el("div", { id: "span-inputs" }, jsonBlock(s.inputs)),
    el("h3", {}, "Outputs"), el("div", { id: "span-outputs" }, jsonBlock(s.outputs)),
  ]);
  if (s.events && s.events.length) {
    append(detail, [el("h3", {}, "Events"), el("div", { id: "span-events" }, s.events.map((e) => el("div", { class: "event" },
      el("strong", {}, e.name), el("span", { class: "muted" }, ` +${fmtDuration((e.time_ns - traceStart) / 1e6)}`),
      Object.keys(e.attributes || {}).length ? jsonBlock(e.attributes) : null)))]);
  }
  append(detail, [el("h3", {}, "Attributes"), attributeTable(s.attributes, "span-attributes")]);
  if (s.resource && Object.keys(s.resource).length) append(detail, [el("h3", {}, "Resource"), attributeTable(s.resource, "span-resource")]);
}

function attributeTable(attrs, id) {
  const entries = Object.entries(attrs || {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (!entries.length) return el("p", { class: "muted", id }, "none");
  return el("table", { id, class: "attributes" }, el("tbody", {}, entries.map(([k, v]) => {
    const parsed = parseMaybe(v);
    const cell = parsed !== null && typeof parsed === "object" ? jsonBlock(parsed) : String(v);
    return el("tr", {}, el("td", { class: "mono" }, k), el("td", {}, cell));
  })));
}

// -- chat view --------------------------------------------------------------------------

function isMessage(m) {
  return m !== null && typeof m === "object" && !Array.isArray(m) && typeof m.role === "string";
}

function messageList(value) {
  const v = parseMaybe(value);
  if (Array.isArray(v) && v.length && v.every(isMessage)) return v;
  if (v && typeof v === "object" && !Array.isArray(v)) {
    if (Array.isArray(v.messages) && v.messages.every(isMessage)) return v.messages;
    if (isMessage(v)) return [v];
    if (isMessage(v.message)) return [v.message];
    if (Array.isArray(v.choices)) {
      const out = v.choices.map((c) => c && c.message).filter(isMessage);
      if (out.length) return out;
    }
  }
  return [];
}

// The messages of a span: the GenAI semconv attributes when present, else chat-shaped
// inputs/outputs (OpenAI / Anthropic style, or {"messages": [...]}).
function chatMessages(s) {
  const attrs = s.attributes || {};
  const out = [];
  const system = parseMaybe(attrs["gen_ai.system_instructions"]);
  if (system) out.push({ role: "system", parts: Array.isArray(system) ? system : [{ type: "text", content: String(system) }] });
  const input = messageList(attrs["gen_ai.input.messages"]);
  out.push(...(input.length ? input : messageList(s.inputs)));
  const output = messageList(attrs["gen_ai.output.messages"]);
  out.push(...(output.length ? output : messageList(s.outputs)));
  return out;
}

function partsOf(m) {
  if (Array.isArray(m.parts)) return m.parts;
  const parts = [];
  const content = m.content;
  if (typeof content === "string") {
    parts.push(m.role === "tool" ? { type: "tool_call_response", id: m.tool_call_id, response: content } : { type: "text", content });
  } else if (Array.isArray(content)) {
    for (const c of content) {
      if (typeof c === "string") parts.push({ type: "text", content: c });
      else if (c && (c.type === "text" || c.type === "input_text" || c.type === "output_text")) parts.push({ type: "text", content: c.text ?? c.content });
      else if (c && c.type === "tool_use") parts.push({ type: "tool_call", id: c.id, name: c.name, arguments: c.input });
      else if (c && c.type === "tool_result") parts.push({ type: "tool_call_response", id: c.tool_use_id, response: c.content });
      else if (c && c.type === "thinking") parts.push({ type: "reasoning", content: c.thinking });
      else parts.push(c);
    }
  } else if (content !== undefined && content !== null) {
    parts.push({ type: "json", value: content });
  }
  for (const call of m.tool_calls || []) {
    const fn = call.function || {};
    parts.push({ type: "tool_call", id: call.id, name: fn.name ?? call.name, arguments: parseMaybe(fn.arguments ?? call.arguments) });
  }
  return parts;
}

function chatMessage(m) {
  const role = String(m.role);
  return el("div", { class: `chat-message role-${role.replace(/[^a-z_-]/gi, "")}` },
    el("div", { class: "role" }, role, m.name ? ` (${m.name})` : "",
      m.finish_reason ? el("span", { class: "muted" }, ` · ${m.finish_reason}`) : null),
    partsOf(m).map(chatPart));
}

function chatPart(p) {
  if (p === null || typeof p !== "object") return el("div", { class: "chat-text" }, String(p));
  switch (p.type) {
    case "text":
      return el("div", { class: "chat-text" }, p.content ?? "");
    case "reasoning":
      return el("div", { class: "chat-reasoning" }, p.content ?? "");
    case "tool_call":
      return el("div", { class: "tool-call" },
        el("div", {}, "Tool call ", el("span", { class: "tool-name" }, p.name ?? "?"),
          p.id ? el("span", { class: "muted" }, ` ${p.id}`) : null),
        jsonBlock(p.arguments ?? null));
    case "tool_call_response":
      return el("div", { class: "tool-response" },
        el("div", {}, "Tool result", p.id ? el("span", { class: "muted" }, ` ${p.id}`) : null),
        jsonBlock(p.response ?? null));
    case "json":
      return jsonBlock(p.value);
    default:
      return el("div", { class: "chat-other" }, el("span", { class: "muted" }, String(p.type ?? "part")), jsonBlock(p));
  }
}

// -- routing ----------------------------------------------------------------------------

function route() {
  const match = location.hash.match(/^#trace\/(.+)$/);
  if (match) {
    showTrace(decodeURIComponent(match[1]));
  } else {
    $("trace-view").hidden = true;
    $("list-view").hidden = false;
    loadList();
  }
}

async function init() {
  $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); search(); });
  $("experiment").addEventListener("change", search);
  $("order").addEventListener("change", search);
  $("back").addEventListener("click", () => { location.hash = ""; });
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
