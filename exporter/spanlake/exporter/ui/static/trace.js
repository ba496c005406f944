// spanlake trace view: summary, the collapsible span tree on a time axis, one span's
// detail (status, chat, inputs/outputs, events, attributes). Text-only DOM, as app.js.
"use strict";

// Text longer than this is cut to its head with a "show all" button.
const LONG_TEXT_CHARS = 2000;
const LONG_TEXT_LINES = 40;
const HEAD_CHARS = 800;
const HEAD_LINES = 15;
// Runs of at least this many same-named events (stream chunks) fold into one line.
const FOLD_EVENTS = 3;
const AXIS_TICKS = 4;

async function showTrace(traceId) {
  $("list-view").hidden = true;
  $("overview-view").hidden = true;
  $("trace-view").hidden = false;
  setTab(null);
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
  const parentOf = new Map();
  const errorsBelow = new Map();  // span id -> error spans among its descendants
  const walk = (parent, depth) => {
    let errors = 0;
    for (const s of children.get(parent) || []) {
      parentOf.set(s.span_id, parent);
      const row = spanRow(s, depth, start, total, children.has(s.span_id));
      rows.push(row);
      const below = walk(s.span_id, depth + 1);
      errorsBelow.set(s.span_id, below);
      errors += below + (s.status === "ERROR" ? 1 : 0);
    }
    return errors;
  };
  walk(null, 0);
  append(tree, [timeAxis(total), rows]);
  const collapsed = new Set();
  const relayout = () => {
    for (const row of rows) {
      const id = row.getAttribute("data-span-id");
      let hidden = false;
      for (let p = parentOf.get(id); p !== null && p !== undefined; p = parentOf.get(p)) {
        if (collapsed.has(p)) { hidden = true; break; }
      }
      row.hidden = hidden;
      const closed = collapsed.has(id);
      row.classList.toggle("collapsed", closed);
      const toggle = row.querySelector(".toggle");
      if (toggle) {
        toggle.textContent = closed ? "▸" : "▾";
        toggle.setAttribute("aria-expanded", String(!closed));
      }
      const inside = row.querySelector(".hidden-errors");
      if (inside) inside.hidden = !(closed && errorsBelow.get(id));
    }
  };
  if (spans.length) selectSpan(children.get(null)[0], start);
  // One handler per shown trace (assigned, not added, so no earlier trace's handler stays).
  tree.onclick = (ev) => {
    const row = ev.target.closest(".span-row");
    if (!row) return;
    const id = row.getAttribute("data-span-id");
    if (ev.target.closest(".toggle")) {
      if (collapsed.has(id)) collapsed.delete(id);
      else collapsed.add(id);
      relayout();
      return;
    }
    const span = spans.find((s) => s.span_id === id);
    if (span) selectSpan(span, start);
  };
}

// The header row: offsets from the trace start at evenly spaced ticks.
function timeAxis(total) {
  const ticks = el("div", { class: "axis-ticks" });
  for (let k = 0; k <= AXIS_TICKS; k++) {
    const tick = el("span", { class: "axis-tick" }, k === 0 ? "0" : fmtDuration((total * k) / AXIS_TICKS / 1e6));
    tick.style.left = `${(100 * k) / AXIS_TICKS}%`;
    ticks.appendChild(tick);
  }
  return el("div", { class: "tree-axis", id: "time-axis" }, el("div", { class: "muted" }, "Span"), ticks);
}

// OTel's UNSET means the span did not fail: show it as OK.
function statusLabel(s) {
  if (s.status === "ERROR") return "ERROR";
  if (s.end_time_ns === null || s.end_time_ns === undefined) return "IN PROGRESS";
  return "OK";
}

function typeClass(spanType) {
  return "type-" + String(spanType || "UNKNOWN").replace(/[^A-Za-z_]/g, "");
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

function spanRow(s, depth, start, total, hasChildren) {
  const left = ((s.start_time_ns - start) / total) * 100;
  const end = s.end_time_ns === null || s.end_time_ns === undefined ? start + total : s.end_time_ns;
  const width = ((end - s.start_time_ns) / total) * 100;
  const d = spanDurationMs(s);
  const offset = `+${fmtDuration((s.start_time_ns - start) / 1e6)}`;
  const bar = el("div", { class: `bar ${typeClass(s.span_type)}`, title: `${offset}, ${d === null ? "in progress" : fmtDuration(d)}` });
  bar.style.left = `${left}%`;
  bar.style.width = `${Math.max(width, 0)}%`;
  const failed = s.status === "ERROR";
  const label = el("div", { class: "span-label" },
    hasChildren ? el("button", { type: "button", class: "toggle", "aria-expanded": "true", title: "collapse / expand" }, "▾")
      : el("span", { class: "toggle-space" }),
    failed ? el("span", { class: "error-mark", title: s.status_message || "error" }, "✖") : null,
    el("span", { class: "span-name" }, s.name),
    el("span", { class: `span-type ${typeClass(s.span_type)}` }, s.span_type),
    s.model ? el("span", { class: "span-model tag" }, s.model) : null,
    el("span", { class: "hidden-errors", hidden: true, title: "a span inside failed" }, "✖ inside"));
  label.style.paddingLeft = `${depth * 1.1}em`;
  return el("div", { class: `span-row status-${s.status}`, role: "treeitem", "data-span-id": s.span_id, "data-depth": depth },
    label,
    el("div", { class: "span-when" },
      el("span", { class: "span-offset" }, offset),
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
      ["Status", el("span", { id: "span-status", class: `status-${statusLabel(s).replace(" ", "_")}` },
        statusLabel(s) + (s.status_message ? `: ${s.status_message}` : ""))],
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
  const value = (v) => (v === null || v === undefined ? el("p", { class: "muted" }, "none") : jsonBlock(v));
  append(detail, [
    el("h3", {}, "Inputs"), el("div", { id: "span-inputs" }, value(s.inputs)),
    el("h3", {}, "Outputs"), el("div", { id: "span-outputs" }, value(s.outputs)),
  ]);
  if (s.events && s.events.length) {
    append(detail, [el("h3", {}, "Events"), el("div", { id: "span-events" }, eventList(s.events, traceStart))]);
  }
  append(detail, [el("h3", {}, "Attributes"), attributeTable(s.attributes, "span-attributes")]);
  if (s.resource && Object.keys(s.resource).length) append(detail, [el("h3", {}, "Resource"), attributeTable(s.resource, "span-resource")]);
}

function attributeTable(attrs, id) {
  const entries = Object.entries(attrs || {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (!entries.length) return el("p", { class: "muted", id }, "none");
  return el("table", { id, class: "attributes" }, el("tbody", {}, entries.map(([k, v]) => {
    const parsed = parseMaybe(v);
    let cell;
    if (parsed !== null && typeof parsed === "object") cell = jsonBlock(parsed);
    else if (typeof v === "string" && v.includes("\n")) cell = longText(v, "pre", "text");  // stack traces
    else cell = longText(String(v), "span", "value");
    return el("tr", {}, el("td", { class: "mono" }, k), el("td", {}, cell));
  })));
}

// -- long text, events ------------------------------------------------------------------

// `text` in a <tag class=cls>; past LONG_TEXT_* only its head, with "show all".
function longText(text, tag, cls) {
  const lines = text.split("\n");
  if (text.length <= LONG_TEXT_CHARS && lines.length <= LONG_TEXT_LINES) return el(tag, { class: cls }, text);
  const head = lines.slice(0, HEAD_LINES).join("\n").slice(0, HEAD_CHARS);
  const body = el(tag, { class: `${cls} long collapsed` }, head + " …");
  const button = el("button", { type: "button", class: "show-all" },
    `show all (${text.length.toLocaleString("en")} characters, ${lines.length} lines)`);
  button.addEventListener("click", () => {
    const open = body.classList.toggle("collapsed");
    body.textContent = open ? head + " …" : text;
    button.textContent = open ? `show all (${text.length.toLocaleString("en")} characters, ${lines.length} lines)` : "show less";
  });
  return el("div", { class: "long-text" }, body, button);
}

function eventList(events, traceStart) {
  const out = [];
  for (let i = 0; i < events.length;) {
    let j = i + 1;
    while (j < events.length && events[j].name === events[i].name) j++;
    if (j - i >= FOLD_EVENTS) out.push(eventRun(events.slice(i, j), traceStart));
    else for (const e of events.slice(i, j)) out.push(eventItem(e, traceStart));
    i = j;
  }
  return out;
}

function offsetOf(e, traceStart) {
  return `+${fmtDuration((e.time_ns - traceStart) / 1e6)}`;
}

// A stream's chunk events (any run of same-named events) as one summary line.
function eventRun(run, traceStart) {
  const text = run.map((e) => (e.attributes && typeof e.attributes.content === "string" ? e.attributes.content : "")).join("");
  const items = el("div", { class: "event-run-items", hidden: true }, run.map((e) => eventItem(e, traceStart)));
  const toggle = el("button", { type: "button", class: "show-all" }, `show all ${run.length}`);
  toggle.addEventListener("click", () => {
    items.hidden = !items.hidden;
    toggle.textContent = items.hidden ? `show all ${run.length}` : "hide";
  });
  return el("div", { class: "event event-run" },
    el("strong", {}, run[0].name), ` × ${run.length} `,
    el("span", { class: "muted" }, `${offsetOf(run[0], traceStart)} … ${offsetOf(run[run.length - 1], traceStart)}`),
    " ", toggle,
    text ? longText(text, "div", "event-text") : null,
    items);
}

function eventItem(e, traceStart) {
  const attrs = e.attributes || {};
  if (e.name === "exception") {
    return el("div", { class: "event exception" },
      el("strong", {}, "exception"), el("span", { class: "muted" }, ` ${offsetOf(e, traceStart)}`),
      el("div", { class: "exception-title status-ERROR" },
        [attrs["exception.type"], attrs["exception.message"]].filter((x) => x !== undefined && x !== null && x !== "").join(": ")),
      attrs["exception.stacktrace"] ? longText(String(attrs["exception.stacktrace"]), "pre", "stacktrace") : null);
  }
  return el("div", { class: "event" },
    el("strong", {}, e.name), el("span", { class: "muted" }, ` ${offsetOf(e, traceStart)}`),
    Object.keys(attrs).length ? attributeTable(attrs, null) : null);
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
      return longText(String(p.content ?? ""), "div", "chat-text");
    case "reasoning":
      return longText(String(p.content ?? ""), "div", "chat-reasoning");
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

