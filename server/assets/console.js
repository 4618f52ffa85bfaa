"use strict";
// The agent console: REST for the queue and actions, the WebSocket for live messages, typing,
// presence and queue updates. Every visitor-provided string is set with textContent.
const $ = (id) => document.getElementById(id);
const ss = window.sessionStorage;
let token = ss.getItem("kefu.agent.token"), me = ss.getItem("kefu.agent.name");
let ws = null, backoff = 500, current = null, typingSent = false, typingTimer = null;
const convs = new Map();   // id -> summary
const seqs = new Map();    // conversation id -> Set of rendered seqs (current conversation)

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

async function api(method, path, body) {
  const r = await fetch(path, {
    method, headers: Object.assign({ Authorization: "Bearer " + token }, body ? { "Content-Type": "application/json" } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await r.json().catch(() => ({}));
  if (r.status === 401) { logout(); throw new Error("session expired"); }
  if (!r.ok) throw new Error(data.error ? data.error.message : String(r.status));
  return data;
}

$("login").onsubmit = async (e) => {
  e.preventDefault();
  $("loginError").textContent = "";
  const r = await fetch("/v1/agent/login", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: $("name").value, password: $("password").value }),
  });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) { $("loginError").textContent = data.error ? data.error.message : "login failed"; return; }
  token = data.token; me = data.agent.name;
  if ("Notification" in window && Notification.permission === "default") Notification.requestPermission().catch(() => {});
  ss.setItem("kefu.agent.token", token); ss.setItem("kefu.agent.name", me);
  start();
};

function logout() {
  ss.clear(); token = null;
  if (ws) { ws.onclose = null; ws.close(); }
  location.reload();
}
$("logout").onclick = logout;

async function start() {
  $("login").style.display = "none";
  $("app").style.display = "grid";
  $("me").textContent = "客服 / Agent: " + me;
  try {
    const canned = await api("GET", "/v1/agent/canned");
    for (const c of canned.canned) { const o = el("option", "", c.title); o.value = c.text; $("canned").append(o); }
    const list = await api("GET", "/v1/agent/conversations?state=queued,agent,bot&limit=200");
    for (const c of list.conversations) convs.set(c.id, c);
    drawLists();
    await refreshAgents();
  } catch (err) { $("chatError").textContent = err.message; }
  connect();
}

function connect() {
  ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/ws");
  $("conn").textContent = "连接中 / connecting";
  ws.onopen = () => ws.send(JSON.stringify({ type: "hello", version: 1, token }));
  ws.onmessage = (ev) => onFrame(JSON.parse(ev.data));
  ws.onclose = () => {
    $("conn").textContent = "重连中 / reconnecting";
    setTimeout(connect, backoff + Math.random() * backoff);
    backoff = Math.min(backoff * 2, 15000);
  };
}

function send(obj) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(obj)); }

function onFrame(f) {
  switch (f.type) {
    case "welcome":
      backoff = 500;
      $("conn").textContent = "在线 / online";
      if (current) send({ type: "subscribe", conversation_id: current, after_seq: lastSeq() });
      break;
    case "conversation": {
      const before = convs.get(f.conversation.id);
      if (f.conversation.state === "queued" && (!before || before.state !== "queued")) notifyQueued(f.conversation);
      convs.set(f.conversation.id, f.conversation); drawLists(); if (f.conversation.id === current) drawHead(); break;
    }
    case "presence": drawOnline(f.agents); break;
    case "message": if (f.message.conversation_id === current) { renderMessage(f.message); if (f.message.author.kind === "visitor") loadSuggestions(); } break;
    case "state":
      if (convs.has(f.conversation_id)) {
        const c = convs.get(f.conversation_id);
        if (f.state === "queued" && c.state !== "queued") notifyQueued(c);
        c.state = f.state; c.agent = f.agent; drawLists();
      }
      if (f.conversation_id === current) drawHead();
      break;
    case "typing": if (f.conversation_id === current) $("typing").textContent = f.typing ? "访客正在输入… / visitor is typing…" : ""; break;
    case "error": $("chatError").textContent = f.code + ": " + f.message; break;
  }
}

// A newly queued conversation: a short tone and, when allowed, a desktop notification.
let audio = null;
function notifyQueued(c) {
  window.__kefuQueuedAlerts = (window.__kefuQueuedAlerts || 0) + 1;
  try {
    audio = audio || new AudioContext();
    const osc = audio.createOscillator(), gain = audio.createGain();
    osc.frequency.value = 880; gain.gain.value = 0.08;
    osc.connect(gain).connect(audio.destination);
    osc.start(); osc.stop(audio.currentTime + 0.25);
  } catch (_) { /* no audio device */ }
  if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
    new Notification("新的排队会话 / New conversation waiting", { body: visitorLabel(c) + (c.last_text ? ": " + c.last_text : "") });
  }
}

function drawOnline(agents) {
  $("online").textContent = "在线 / online: " + agents.map((a) => a.display_name + " (" + a.active + "/" + a.capacity + ")").join(", ");
  const sel = $("transferTo");
  const keep = sel.value;
  sel.textContent = "";
  for (const a of agents) if (a.name !== me) { const o = el("option", "", a.display_name); o.value = a.name; sel.append(o); }
  sel.value = keep;
}

async function refreshAgents() {
  const data = await api("GET", "/v1/agent/agents");
  drawOnline(data.agents.filter((a) => a.online));
}

function drawLists() {
  const lists = { queued: $("list-queued"), mine: $("list-mine"), other: $("list-other") };
  for (const l of Object.values(lists)) l.textContent = "";
  const sorted = [...convs.values()].sort((a, b) => (a.updated_at < b.updated_at ? 1 : -1));
  for (const c of sorted) {
    const where = c.state === "queued" ? "queued" : c.state === "agent" && c.agent === me ? "mine" : c.state === "resolved" ? null : "other";
    if (!where) continue;
    const item = el("div", "conv" + (c.id === current ? " active" : ""));
    item.dataset.id = c.id;
    item.dataset.testid = "conv";
    const line = el("div", "line1");
    line.append(el("span", "", visitorLabel(c)));
    const badge = el("span", "badge " + (c.offline ? "offline" : c.state), c.offline ? "留言 offline" : c.state + (c.agent ? " · " + c.agent : ""));
    line.append(badge);
    item.append(line, el("div", "preview", c.last_text || ""));
    if (c.state === "queued") { const w = el("div", "preview", waitingFor(c.updated_at)); w.dataset.testid = "waiting"; item.append(w); }
    item.onclick = () => openConversation(c.id);
    lists[where].append(item);
  }
}

// A visitor's name, or a short readable label from the id ("访客 #33A1 / Visitor #33A1").
function visitorLabel(c) {
  if (c.visitor_name) return c.visitor_name;
  const tag = c.visitor_id.replace(/^v_/, "").slice(0, 4).toUpperCase();
  return "访客 #" + tag + " / Visitor #" + tag;
}

// "等待 3 分钟 / waiting 3 min" since an RFC 3339 time.
function waitingFor(since) {
  const min = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 60000));
  return min < 1 ? "刚刚 / just now" : "等待 " + min + " 分钟 / waiting " + min + " min";
}

function lastSeq() { const s = seqs.get(current); return s && s.size ? Math.max(...s) : 0; }

async function openConversation(id) {
  current = id;
  seqs.set(id, new Set());
  $("transcript").textContent = "";
  $("typing").textContent = "";
  $("chatError").textContent = "";
  drawLists();
  try {
    const data = await api("GET", "/v1/agent/conversations/" + encodeURIComponent(id));
    convs.set(id, data.conversation);
    ratings.set(id, data.rating || null);
    for (const m of data.messages) renderMessage(m);
    drawHead();
    send({ type: "subscribe", conversation_id: id, after_seq: lastSeq() });
    loadSuggestions();
  } catch (err) { $("chatError").textContent = err.message; }
}

// The visitor's rating (CSAT) of a conversation, shown in its header; a resolved conversation
// without one yet is checked again every few seconds while it stays open.
const ratings = new Map();
function drawRating() {
  const r = ratings.get(current);
  const box = $("rating");
  box.hidden = !r;
  if (r) {
    box.textContent = "评分 / Rating: " + "★".repeat(r.score) + "☆".repeat(5 - r.score) + " " + r.score + "/5" + (r.comment ? " — " + r.comment : "");
  }
}
setInterval(async () => {
  const c = current && convs.get(current);
  if (!c || c.state !== "resolved" || ratings.get(current)) return;
  const id = current;
  try {
    const data = await api("GET", "/v1/agent/conversations/" + encodeURIComponent(id));
    ratings.set(id, data.rating || null);
    if (id === current) drawRating();
  } catch { /* the next tick tries again */ }
}, 3000);

function drawHead() {
  drawRating();
  const c = convs.get(current);
  if (!c) return;
  $("chatTitle").textContent = visitorLabel(c) + " — " + c.state + (c.agent ? " (" + c.agent + ")" : "");
  const mine = c.state === "agent" && c.agent === me;
  $("claim").disabled = !(c.state === "queued" || c.state === "bot");
  $("transfer").disabled = !mine;
  $("handback").disabled = !mine;
  $("resolve").disabled = c.state === "resolved" || (c.state === "agent" && !mine);
  $("send").disabled = !mine;
  $("attach").disabled = !mine;
}

// Files sent with a message: image thumbnails linking to the file, other files as downloads.
function filesView(files) {
  const box = el("div", "files");
  for (const f of files) {
    const a = el("a");
    a.href = f.url; a.target = "_blank"; a.rel = "noopener noreferrer";
    if (f.thumbnail_url) {
      const img = el("img"); img.src = f.thumbnail_url; img.alt = f.name; img.loading = "lazy";
      a.append(img);
    } else {
      a.download = f.name;
      a.textContent = "📎 " + f.name + " (" + Math.max(1, Math.round(f.size / 1024)) + " KB)";
    }
    box.append(a);
  }
  return box;
}

function renderMessage(m) {
  const seen = seqs.get(current);
  if (!seen || seen.has(m.seq)) return;
  seen.add(m.seq);
  const kind = m.author.kind;
  const box = el("div", "msg " + kind);
  box.dataset.seq = m.seq;
  box.dataset.testid = "msg-" + kind;
  const who = { visitor: "访客 / Visitor", bot: "机器人 / Bot", agent: m.author.name || "Agent", system: "" }[kind];
  if (who) box.append(el("div", "who", who + " · #" + m.seq));
  box.append(el("div", "text", m.text));
  if (m.attachments && m.attachments.length) box.append(filesView(m.attachments));
  if (m.quick_replies && m.quick_replies.length) box.append(el("div", "quick", "快捷选项 / Offered: " + m.quick_replies.join(" | ")));
  if (m.route_trace) box.append(traceView(m.route_trace));
  const t = $("transcript");
  let before = null;
  for (const e of t.children) if (Number(e.dataset.seq) > m.seq) { before = e; break; }
  t.insertBefore(box, before);
  t.scrollTop = t.scrollHeight;
  if (kind === "visitor") $("typing").textContent = "";
}

function traceView(tr) {
  const d = el("details", "trace");
  d.dataset.testid = "trace";
  let summary = "路由 / Route: " + tr.decision;
  if (tr.rule) summary += " · rule " + tr.rule.rule_id + " (“" + tr.rule.matched + "”)";
  if (tr.handoff) summary += " · handoff: " + tr.handoff.reason;
  if (tr.kb && tr.kb.band) summary += " · band " + tr.kb.band;
  d.append(el("summary", "", summary));
  const it = tr.intent;
  let intentLine = "intent: " + (it.name || "—") + " (" + it.status;
  if (typeof it.probability === "number") intentLine += ", p " + it.probability.toFixed(2) + (typeof it.threshold === "number" ? " / threshold " + it.threshold.toFixed(2) : "");
  if (it.closest && !it.name) intentLine += ", closest " + it.closest;
  if (it.model) intentLine += ", model " + it.model;
  if (it.routed) intentLine += ", routed";
  intentLine += ")";
  d.append(el("div", "", intentLine + " · lang " + tr.lang + " · " + tr.elapsed_ms.toFixed(1) + " ms"));
  if (tr.kb && tr.kb.tags && tr.kb.tags.length) d.append(el("div", "", "kb tags: " + tr.kb.tags.join(", ") + (tr.kb.widened ? " (no answer there: searched everything)" : "")));
  if (tr.kb) {
    const th = tr.kb.thresholds;
    if (th) d.append(el("div", "", "thresholds: answer ≥ " + th.answer.toFixed(2) + ", suggest ≥ " + th.suggest.toFixed(2) + ", margin " + th.margin.toFixed(2)));
    if (tr.kb.error) d.append(el("div", "", "kb error: " + tr.kb.error));
    const table = el("table");
    const head = el("tr");
    for (const h of ["score", "entry", "source"]) head.append(el("th", "", h));
    table.append(head);
    for (const h of tr.kb.hits) {
      const row = el("tr");
      row.append(el("td", "", h.score.toFixed(2)), el("td", "", h.question), el("td", "", h.source));
      table.append(row);
    }
    d.append(table);
  }
  return d;
}

async function loadSuggestions() {
  const box = $("suggestions");
  if (!current) return;
  try {
    const data = await api("GET", "/v1/agent/conversations/" + encodeURIComponent(current) + "/suggestions");
    box.textContent = "";
    if (data.question) box.append(el("div", "quick", "访客问 / Visitor asked: " + data.question));
    for (const s of data.suggestions) {
      const card = el("div", "sugg");
      card.dataset.testid = "suggestion";
      card.append(el("div", "q", s.question + " (" + s.score.toFixed(2) + ")"), el("div", "a", s.answer));
      const use = el("button", "secondary", "使用 / Use");
      use.type = "button";
      use.onclick = () => { $("reply").value = s.answer; $("reply").focus(); };
      card.append(use);
      box.append(card);
    }
  } catch (err) { box.textContent = err.message; }
}

async function act(what, body) {
  $("chatError").textContent = "";
  try { await api("POST", "/v1/agent/conversations/" + encodeURIComponent(current) + "/" + what, body); }
  catch (err) { $("chatError").textContent = err.message; }
}
$("claim").onclick = () => act("claim");
$("handback").onclick = () => act("handback");
$("resolve").onclick = () => act("resolve");
$("transfer").onclick = () => { if ($("transferTo").value) act("transfer", { agent: $("transferTo").value }); };
$("canned").onchange = () => { if ($("canned").value) { $("reply").value = $("canned").value; $("canned").value = ""; $("reply").focus(); } };

function stopTyping() {
  clearTimeout(typingTimer);
  if (typingSent && current) send({ type: "typing", conversation_id: current, typing: false });
  typingSent = false;
}
$("reply").oninput = () => {
  if (!current) return;
  if (!typingSent) { send({ type: "typing", conversation_id: current, typing: true }); typingSent = true; }
  clearTimeout(typingTimer);
  typingTimer = setTimeout(stopTyping, 3000);
};
$("reply").onkeydown = (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); } };
$("composer").onsubmit = (e) => {
  e.preventDefault();
  const text = $("reply").value.trim();
  if (!text || !current || $("send").disabled) return;
  const id = "c-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 8);
  send({ type: "send", conversation_id: current, client_msg_id: id, text });
  $("reply").value = "";
  stopTyping();
};

// An agent's file: uploaded to the conversation, then sent with whatever is typed.
$("attach").onclick = () => $("file").click();
$("file").onchange = async () => {
  const file = $("file").files[0];
  $("file").value = "";
  if (!file || !current || $("attach").disabled) return;
  $("chatError").textContent = "";
  try {
    const r = await fetch("/v1/conversations/" + encodeURIComponent(current) + "/attachments?name=" + encodeURIComponent(file.name), {
      method: "POST", headers: { Authorization: "Bearer " + token, "Content-Type": "application/octet-stream" }, body: file,
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.error ? data.error.message : String(r.status));
    const id = "c-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 8);
    send({ type: "send", conversation_id: current, client_msg_id: id, text: $("reply").value.trim(), attachments: [data.id] });
    $("reply").value = "";
    stopTyping();
  } catch (err) { $("chatError").textContent = file.name + ": " + err.message; }
};

if (token) start();
