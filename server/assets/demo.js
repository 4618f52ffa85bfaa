"use strict";
// A visitor chat page for the `demo` site: session via REST, then the WebSocket protocol
// (hello, subscribe with resume, send with client_msg_id, typing, request_human).
const SITE = new URLSearchParams(location.search).get("site") || "demo";
const store = window.localStorage;
const KEY = "kefu.demo." + SITE;
const $ = (id) => document.getElementById(id);
let session = JSON.parse(store.getItem(KEY) || "null");
let ws = null, lastSeq = 0, backoff = 500, typingTimer = null, typingSent = false;
const shown = new Map();   // seq -> element
const outbox = new Map();  // client_msg_id -> { text, el }

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text; // never innerHTML: messages are inert text
  return e;
}
function scroll() { const l = $("log"); l.scrollTop = l.scrollHeight; }
function save() { store.setItem(KEY, JSON.stringify(session)); }

async function startSession() {
  const r = await fetch("/v1/visitor/sessions", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ site_key: SITE }),
  });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error ? body.error.code + ": " + body.error.message : r.status);
  session = { token: body.token, conversation_id: body.conversation_id, last_seq: 0 };
  save();
}

function render(m) {
  if (shown.has(m.seq)) return;
  if (m.client_msg_id && outbox.has(m.client_msg_id)) {
    outbox.get(m.client_msg_id).el.remove();
    outbox.delete(m.client_msg_id);
  }
  const kind = m.author.kind;
  const box = el("div", "msg " + kind);
  box.dataset.seq = m.seq;
  box.dataset.testid = "msg-" + kind;
  const who = { visitor: "我 / Me", bot: "智能客服 / Bot", system: "", agent: (m.author.name || "客服") }[kind];
  if (who) box.append(el("div", "who", who));
  box.append(el("div", "text", m.text));
  if (m.sources && m.sources.length) {
    box.append(el("div", "sources", "来源 / Source: " + m.sources.map((s) => s.title + " (" + s.source + ")").join("; ")));
  }
  if (m.quick_replies && m.quick_replies.length) {
    const q = el("div", "quick");
    for (const text of m.quick_replies) {
      const b = el("button", "", text);
      b.type = "button";
      b.onclick = () => send(text);
      q.append(b);
    }
    box.append(q);
  }
  // Keep seq order even when a replay and live frames interleave.
  let before = null;
  for (const [seq, e] of shown) if (seq > m.seq && (!before || seq < Number(before.dataset.seq))) before = e;
  $("log").insertBefore(box, before);
  shown.set(m.seq, box);
  if (m.seq > lastSeq) { lastSeq = m.seq; session.last_seq = lastSeq; save(); }
  if (kind !== "visitor") $("typing").textContent = "";
  scroll();
}

function setState(state, agent) {
  const text = { bot: "智能客服 / Bot", queued: "等待人工 / Waiting for an agent", agent: "人工客服 / Agent: " + (agent || ""), resolved: "已结束 / Resolved" }[state] || state;
  $("status").textContent = text;
  $("status").dataset.state = state;
  $("new").style.display = state === "resolved" ? "block" : "none";
}

function frame(obj) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(obj)); }

function send(text) {
  text = text.trim();
  if (!text) return;
  const id = "w-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 8);
  const pending = el("div", "msg visitor pending", text);
  $("log").append(pending);
  outbox.set(id, { text, el: pending });
  scroll();
  frame({ type: "send", conversation_id: session.conversation_id, client_msg_id: id, text });
  stopTyping();
}

function stopTyping() {
  clearTimeout(typingTimer);
  if (typingSent) { frame({ type: "typing", conversation_id: session.conversation_id, typing: false }); typingSent = false; }
}

function connect() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/ws?site_key=" + encodeURIComponent(SITE);
  ws = new WebSocket(url);
  $("status").textContent = "connecting…";
  ws.onopen = () => frame({ type: "hello", version: 1, token: session.token });
  ws.onmessage = async (ev) => {
    const f = JSON.parse(ev.data);
    switch (f.type) {
      case "welcome":
        backoff = 500;
        frame({ type: "subscribe", conversation_id: session.conversation_id, after_seq: lastSeq });
        // Resend what was never acknowledged; the server dedupes by client_msg_id.
        for (const [id, o] of outbox) frame({ type: "send", conversation_id: session.conversation_id, client_msg_id: id, text: o.text });
        break;
      case "message": render(f.message); break;
      case "state": setState(f.state, f.agent); break;
      case "typing": $("typing").textContent = f.typing ? "对方正在输入… / typing…" : ""; break;
      case "ack": break;
      case "error":
        if (f.code === "unauthorized") { store.removeItem(KEY); session = null; ws.close(); return; }
        if (f.client_msg_id && outbox.has(f.client_msg_id)) {
          const o = outbox.get(f.client_msg_id);
          o.el.classList.remove("pending");
          o.el.append(el("div", "sources", "未发送 / not sent: " + f.message));
          outbox.delete(f.client_msg_id);
        }
        break;
    }
  };
  ws.onclose = () => {
    $("status").textContent = "reconnecting…";
    setTimeout(boot, backoff + Math.random() * backoff);
    backoff = Math.min(backoff * 2, 15000);
  };
}

async function boot() {
  try {
    if (!session) {
      await startSession();
      lastSeq = 0; shown.clear(); $("log").textContent = "";
    }
    connect(); // resumes after lastSeq: only what was missed is replayed
  } catch (e) {
    $("status").textContent = "error: " + e.message;
    setTimeout(boot, 3000);
  }
}

$("composer").onsubmit = (e) => { e.preventDefault(); const t = $("text"); send(t.value); t.value = ""; };
$("text").onkeydown = (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); } };
$("text").oninput = () => {
  if (!typingSent) { frame({ type: "typing", conversation_id: session.conversation_id, typing: true }); typingSent = true; }
  clearTimeout(typingTimer);
  typingTimer = setTimeout(stopTyping, 3000);
};
$("human").onclick = () => frame({ type: "request_human", conversation_id: session.conversation_id });
$("new").onclick = async () => {
  const r = await fetch("/v1/visitor/conversations", { method: "POST", headers: { Authorization: "Bearer " + session.token } });
  const body = await r.json();
  if (r.ok) { session.conversation_id = body.conversation_id; session.last_seq = 0; save(); ws.close(); }
};
boot();
