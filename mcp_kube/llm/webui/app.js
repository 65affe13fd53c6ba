// mcp-kube chat page: plain DOM, no third-party code, talks only to this origin.
"use strict";

const $ = (id) => document.getElementById(id);
const HEADERS = { "Content-Type": "application/json", "X-MCP-Kube": "1" };

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "data") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function api(path, body) {
  const opts = body === undefined
    ? { credentials: "same-origin" }
    : { method: "POST", headers: HEADERS, body: JSON.stringify(body), credentials: "same-origin" };
  return fetch(path, opts);
}

function show(loggedIn, who) {
  $("login").hidden = loggedIn;
  $("chat").hidden = !loggedIn;
  $("logout").hidden = !loggedIn;
  $("who").textContent = loggedIn ? `${who.principal}${who.groups.length ? " (" + who.groups.join(", ") + ")" : ""}` : "";
  (loggedIn ? $("question") : $("token")).focus();
}

function add(node) {
  const li = el("li", {}, node);
  $("log").append(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

// ---------------------------------------------------------------- tool results
function inventory(card, data) {
  const products = data.fleet_products || [];
  const table = el("table", { class: "inventory" },
    el("thead", {}, el("tr", {}, ...["Product", "Vendor", "Nodes", "GPUs", "Allocated", "Free"]
      .map((h, i) => el("th", i > 1 ? { class: "n" } : {}, h)))));
  const body = el("tbody");
  for (const p of products) {
    body.append(el("tr", {}, el("td", {}, p.product), el("td", {}, p.vendor),
      el("td", { class: "n" }, p.nodes), el("td", { class: "n" }, p.gpus),
      el("td", { class: "n" }, p.allocated), el("td", { class: "n" }, p.free)));
  }
  table.append(body);
  card.append(table);
  const bars = el("div", { class: "bars", role: "img", "aria-label": "GPUs per product: allocated and free" });
  for (const p of products) {
    const total = Math.max(p.allocatable, 1);
    const used = el("span", { class: "used" });
    const free = el("span", { class: "free" });
    used.style.width = `${(100 * p.allocated) / total}%`;
    free.style.width = `${(100 * p.free) / total}%`;
    bars.append(el("div", { class: "bar", data: { product: p.product } },
      el("span", {}, p.product), el("span", { class: "track" }, used, free),
      el("span", {}, `${p.free} free / ${p.allocatable}`)));
  }
  card.append(bars);
  const nodes = data.nodes || [];
  if (nodes.length) {
    const t = el("table", { class: "nodes" }, el("thead", {}, el("tr", {},
      ...["Cluster", "Node", "Product", "GPUs", "Free", "Schedulable"].map((h) => el("th", {}, h)))));
    const tb = el("tbody");
    for (const n of nodes.slice(0, 100)) {
      const free = (n.resources || []).reduce((s, r) => s + (r.free || 0), 0);
      tb.append(el("tr", {}, el("td", {}, n.cluster), el("td", {}, n.name), el("td", {}, n.product),
        el("td", { class: "n" }, n.gpus), el("td", { class: "n" }, free),
        el("td", {}, n.schedulable ? "yes" : "no")));
    }
    t.append(tb);
    card.append(t);
  }
}

function result(card, ev) {
  card.classList.toggle("failed", ev.is_error);
  if (!ev.is_error && ev.name === "gpu_inventory" && ev.structured) inventory(card, ev.structured);
  else {
    const text = ev.text.length > 4000 ? ev.text.slice(0, 4000) + "\n…" : ev.text;
    card.append(el("pre", {}, text));
  }
  card.append(el("div", { class: "status" }, `${ev.is_error ? "failed" : "done"} in ${ev.seconds}s`));
}

// ---------------------------------------------------------------- approvals
function approval(ev) {
  const box = el("div", { class: "approval", data: { approval: ev.id } },
    el("strong", {}, "Approval needed: the server asks you (not the model) to approve this change."),
    el("pre", {}, ev.text));
  const yes = el("button", { type: "button", data: { action: "approve" } }, "Approve");
  const no = el("button", { type: "button", class: "secondary", data: { action: "reject" } }, "Reject");
  const send = async (approve) => {
    yes.disabled = no.disabled = true;
    const r = await api(`/api/approvals/${encodeURIComponent(ev.id)}`, { approve });
    if (!r.ok) { yes.disabled = no.disabled = false; }
  };
  yes.addEventListener("click", () => send(true));
  no.addEventListener("click", () => send(false));
  box.append(el("div", { class: "buttons" }, yes, no));
  add(box);
}

// ---------------------------------------------------------------- a followed job (MCP task)
const TASK_ENDED = new Set(["completed", "failed", "cancelled"]);

function taskBox(ev) {
  const cancel = el("button", { type: "button", class: "secondary", data: { action: "cancel-task" } },
    "Cancel job");
  const box = el("div", { class: "task", data: { task: ev.task_id } },
    el("div", { class: "task-head" }, el("strong", { class: "task-state" }),
      el("span", { class: "task-numbers" })),
    el("progress", { class: "task-progress", max: "1" }),
    el("div", { class: "task-message" }),
    el("div", { class: "buttons" }, cancel));
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    const r = await api(`/api/tasks/${encodeURIComponent(ev.task_id)}/cancel`, {});
    const data = await r.json().catch(() => ({}));
    box.querySelector(".task-message").textContent = r.ok
      ? "cancel sent: the job is being deleted" : (data.error || "cancel failed");
    if (!r.ok) cancel.disabled = false;
  });
  return box;
}

function task(card, ev) {
  let box = document.querySelector(`[data-task="${CSS.escape(ev.task_id)}"]`);
  if (!box) {
    box = taskBox(ev);
    if (card) card.append(box);
    else add(box);
  }
  const ended = TASK_ENDED.has(ev.status) || !ev.following;
  box.dataset.status = ev.status;
  box.dataset.state = ev.state;
  box.querySelector(".task-state").textContent = `job ${ev.state}`;
  const numbers = [];
  if (ev.step !== null) numbers.push(`step ${ev.step}${ev.total ? " / " + ev.total : ""}`);
  if (ev.loss !== null) numbers.push(`loss ${ev.loss}`);
  if (ev.gpu_util !== null) numbers.push(`GPU ${ev.gpu_util}%`);
  if (ev.restarts) numbers.push(`${ev.restarts} restarts`);
  numbers.push(`${Math.round(ev.elapsed_s)}s`);
  box.querySelector(".task-numbers").textContent = numbers.join(" · ");
  const bar = box.querySelector(".task-progress");
  if (ev.fraction !== null) bar.value = ev.fraction;
  else if (ended) bar.value = 0;
  else bar.removeAttribute("value");  // indeterminate: the number of steps is not known
  bar.hidden = ended && ev.fraction === null;
  box.querySelector(".task-message").textContent = ev.note || ev.message;
  box.querySelector("[data-action='cancel-task']").hidden = ended;
}

// ---------------------------------------------------------------- a question
async function ask(question) {
  add(el("div", { class: "q" }, question));
  const cards = new Map();
  let answer = null;
  const send = $("send");
  send.disabled = true;
  try {
    const r = await api("/api/ask", { question });
    if (!r.ok) {
      const err = await r.json().catch(() => ({ error: r.statusText }));
      if (r.status === 401) show(false);
      add(el("div", { class: "error" }, err.error || "request failed"));
      return;
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.trim()) continue;
        const ev = JSON.parse(line);
        if (ev.type === "tool_call") {
          const card = el("div", { class: "card", data: { tool: ev.name } },
            el("h3", {}, ev.name), el("div", { class: "args" }, JSON.stringify(ev.arguments)));
          cards.set(ev.id, card);
          add(card);
        } else if (ev.type === "tool_result") {
          const card = cards.get(ev.id);
          if (card) result(card, ev);
        } else if (ev.type === "task") {
          task(cards.get(ev.id), ev);
        } else if (ev.type === "approval") {
          approval(ev);
        } else if (ev.type === "approval_done") {
          const box = document.querySelector(`[data-approval="${CSS.escape(ev.id)}"]`);
          if (box) {
            box.classList.add("done");
            box.append(el("div", { class: "status", data: { decision: ev.approved ? "approved" : "declined" } },
              ev.approved ? "approved by you" : "declined"));
          }
        } else if (ev.type === "token") {
          if (!answer) answer = add(el("div", { class: "a" })).firstChild;
          answer.textContent += ev.text;
        } else if (ev.type === "done") {
          if (!answer) answer = add(el("div", { class: "a" })).firstChild;
          answer.textContent = ev.answer;
          answer.dataset.done = "1";
          const s = ev.stats || {};
          add(el("div", { class: "status" }, `${s.tool_calls} call(s) · ${s.seconds}s`));
        } else if (ev.type === "error") {
          add(el("div", { class: "error" }, ev.message));
        }
      }
    }
  } catch (e) {
    add(el("div", { class: "error" }, `connection lost: ${e}`));
  } finally {
    send.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("login-error").textContent = "";
    const r = await api("/api/login", { token: $("token").value });
    const data = await r.json().catch(() => ({}));
    $("token").value = "";
    if (r.ok) show(true, data);
    else $("login-error").textContent = data.error || "login failed";
  });
  $("ask-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("question").value.trim();
    if (!q) return;
    $("question").value = "";
    ask(q);
  });
  $("logout").addEventListener("click", async () => {
    await api("/api/logout", {});
    $("log").replaceChildren();
    show(false);
  });
  const r = await api("/api/me");
  if (r.ok) show(true, await r.json());
  else show(false);
});
