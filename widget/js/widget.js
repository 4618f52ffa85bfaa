/*! Kefu chat widget. Add to any page:
 *    <script src="https://YOUR-KEFU-HOST/widget.js" data-site-key="YOUR-SITE-KEY" async></script>
 *  Optional: data-lang="zh|en" (default: the page's language), data-title="…", and for signed-in
 *  users data-user-id + data-user-hash (hex HMAC-SHA256 of the id with the site's identity secret,
 *  computed by your backend) and data-name.
 *  The bubble and panel live in a shadow DOM; message text is rendered by the wasm engine into
 *  text nodes and a few formatting elements, never as HTML from the wire. */
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || !script.src) return;
  const scriptUrl = new URL(script.src, location.href);
  const base = scriptUrl.href.replace(/widget\.js(\?.*)?$/, "");
  const server = script.dataset.server || scriptUrl.origin;
  const siteKey = script.dataset.siteKey || "demo";
  // Attachment links are relative to the server (the first node, when several are named).
  const fileBase = server.split(",")[0].trim();
  const pageLang = (script.dataset.lang || document.documentElement.lang || navigator.language || "en").toLowerCase();
  const zh = pageLang.startsWith("zh");

  const T = zh ? {
    open: "在线客服", title: script.dataset.title || "在线客服", close: "关闭", send: "发送",
    placeholder: "输入消息，回车发送", human: "转人工", bot: "智能助手为您服务", queued: "正在等待人工客服…",
    agent: (a) => `${a} 正在为您服务`, agentDefault: "人工客服正在为您服务", resolved: "会话已结束，发送消息开始新的会话",
    connecting: "正在连接…", reconnecting: "连接中断，正在重新连接…", typing: "对方正在输入…",
    sources: "参考", pending: "发送中", failed: "发送失败", you: "我", system: "系统",
    offlineTitle: "目前没有在线客服，请留言，我们会尽快联系您。", contact: "邮箱或电话",
    offlineMessage: "您的问题", offlineSend: "提交留言", offlineThanks: "留言已收到，我们会尽快联系您。",
    offlinePrefix: "【留言】", contactLabel: "联系方式", stopped: "无法连接客服",
    rateTitle: "请为本次服务评分", star: (n) => `${n} 星`, rateComment: "还有什么想告诉我们的？（选填）",
    rateSend: "提交评价", rateThanks: "感谢您的评价！", rateFailed: "评价未能提交，请重试",
    attach: "发送图片或文件", uploading: (n) => `正在上传 ${n}…`, uploadFailed: (n) => `${n} 未能发送`,
  } : {
    open: "Chat with us", title: script.dataset.title || "Customer service", close: "Close", send: "Send",
    placeholder: "Type a message, Enter to send", human: "Talk to a human", bot: "Assistant",
    queued: "Waiting for an agent…", agent: (a) => `${a} is helping you`, agentDefault: "An agent is helping you",
    resolved: "Conversation closed. Send a message to start a new one.", connecting: "Connecting…",
    reconnecting: "Connection lost, reconnecting…", typing: "Typing…", sources: "Sources", pending: "Sending",
    failed: "Not sent", you: "You", system: "System",
    offlineTitle: "No agent is online right now. Leave a message and we'll get back to you.",
    contact: "Email or phone", offlineMessage: "Your question", offlineSend: "Leave message",
    offlineThanks: "Message received. We'll get back to you soon.", offlinePrefix: "[Offline message]",
    contactLabel: "Contact", stopped: "Cannot reach the chat service",
    rateTitle: "How did we do?", star: (n) => `${n} star${n > 1 ? "s" : ""}`,
    rateComment: "Anything else to tell us? (optional)", rateSend: "Send rating",
    rateThanks: "Thanks for your rating!", rateFailed: "The rating was not sent, please try again",
    attach: "Send a photo or file", uploading: (n) => `Uploading ${n}…`, uploadFailed: (n) => `${n} was not sent`,
  };

  const CSS = `
:host { all: initial; }
.root { all: initial; position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; display: block;
  font: 14px/1.45 -apple-system, "Segoe UI", "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif;
  color: #1f2328; text-align: left; direction: ltr; }
.root * { box-sizing: border-box; font: inherit; color: inherit; letter-spacing: normal; }
button { cursor: pointer; border: 0; background: none; padding: 0; margin: 0; }
button:focus-visible, textarea:focus-visible, input:focus-visible, a:focus-visible { outline: 2px solid #2563eb; outline-offset: 2px; }
.bubble { width: 56px; height: 56px; border-radius: 50%; background: #2563eb; color: #fff; box-shadow: 0 4px 14px rgba(0,0,0,.25);
  display: flex; align-items: center; justify-content: center; float: right; }
.bubble svg { width: 28px; height: 28px; fill: #fff; }
.panel { width: 360px; max-width: calc(100vw - 40px); height: 520px; max-height: calc(100vh - 100px); background: #fff; border-radius: 12px;
  box-shadow: 0 8px 30px rgba(0,0,0,.25); display: flex; flex-direction: column; overflow: hidden; margin-bottom: 12px; }
.panel[hidden], [hidden] { display: none !important; }
header { background: #2563eb; color: #fff; padding: 10px 12px; display: flex; align-items: center; gap: 8px; }
header .titles { flex: 1; min-width: 0; }
header .title { font-weight: 600; display: block; }
header .status { font-size: 12px; opacity: .9; display: block; }
header button { color: #fff; padding: 4px 8px; border-radius: 6px; }
header .human { border: 1px solid rgba(255,255,255,.7); font-size: 12px; }
header .close { font-size: 20px; line-height: 1; }
.banner { background: #fef3c7; color: #92400e; font-size: 12px; padding: 4px 12px; }
.log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 8px; background: #f6f8fa; }
.msg { max-width: 85%; padding: 8px 10px; border-radius: 10px; background: #fff; border: 1px solid #e5e7eb; overflow-wrap: anywhere; }
.msg.visitor { align-self: flex-end; background: #2563eb; color: #fff; border-color: #2563eb; white-space: pre-wrap; }
.msg.system { align-self: center; background: transparent; border: 0; color: #57606a; font-size: 12px; text-align: center; }
.msg.pending { opacity: .6; }
.msg.draft .body::after { content: "▍"; opacity: .5; }
.msg.failed { background: #fee2e2; color: #991b1b; border-color: #fca5a5; }
.msg .who { font-size: 11px; color: #57606a; display: block; margin-bottom: 2px; }
.msg p, .msg ul, .msg ol, .msg pre, .msg blockquote { margin: 0 0 6px; }
.msg > .body > :last-child { margin-bottom: 0; }
.msg ul, .msg ol { padding-left: 20px; }
.msg pre { background: #f3f4f6; padding: 6px; border-radius: 6px; overflow-x: auto; white-space: pre; }
.msg code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; }
.msg blockquote { border-left: 3px solid #d0d7de; padding-left: 8px; color: #57606a; }
.msg a { color: #2563eb; text-decoration: underline; }
.files { display: flex; flex-direction: column; gap: 4px; margin-top: 4px; }
.files img { display: block; max-width: 100%; height: auto; border-radius: 6px; background: #e5e7eb; }
.msg.visitor .files a { color: #fff; }
form .attach { border: 1px solid #d0d7de; border-radius: 8px; min-width: 36px; min-height: 36px; font-size: 18px; color: #57606a; }
.sources { margin: 6px 0 0; padding: 6px 0 0; border-top: 1px solid #e5e7eb; list-style: none; font-size: 12px; color: #57606a; }
.chips { display: flex; flex-wrap: wrap; gap: 6px; padding: 6px 12px 0; background: #f6f8fa; }
.chips button { border: 1px solid #2563eb; color: #2563eb; border-radius: 14px; padding: 3px 10px; background: #fff; font-size: 13px; }
.typing { font-size: 12px; color: #57606a; padding: 2px 12px; background: #f6f8fa; }
form { display: flex; gap: 8px; padding: 10px 12px; border-top: 1px solid #e5e7eb; background: #fff; margin: 0; }
form.offline { flex-direction: column; background: #fffbeb; }
textarea, input { flex: 1; resize: none; border: 1px solid #d0d7de; border-radius: 8px; padding: 6px 8px; min-height: 36px; max-height: 120px; background: #fff; }
form button[type=submit] { background: #2563eb; color: #fff; border-radius: 8px; padding: 0 14px; min-height: 36px; }
form button[disabled] { opacity: .5; cursor: default; }
form.rating { flex-direction: column; background: #f0f9ff; }
.stars { display: flex; gap: 4px; }
.stars button { font-size: 22px; line-height: 1; color: #9ca3af; padding: 2px; }
.stars button[aria-pressed=true] { color: #f59e0b; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === false || v === null || v === undefined) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  const userId = script.dataset.userId || undefined;
  const userHash = script.dataset.userHash || undefined;
  const userName = script.dataset.name || undefined;
  // One saved session per site and user, so a different sign-in never resumes another's chat.
  const storageKey = `kefu:${server}:${siteKey}:${userId || ""}`;
  const storage = {
    get() { try { return localStorage.getItem(storageKey) || undefined; } catch { return undefined; } },
    set(v) { try { localStorage.setItem(storageKey, v); } catch { /* storage blocked: no resume */ } },
  };

  async function start() {
    const engine = await import(base + "widget/kefu_widget.js");
    await engine.default({ module_or_path: base + "widget/kefu_widget_bg.wasm" });

    const host = document.createElement("kefu-chat");
    host.setAttribute("style", "all: initial !important; display: block !important; position: static !important;");
    const shadow = host.attachShadow({ mode: "open" });
    const style = el("style");
    style.textContent = CSS;

    const bubbleIcon = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    bubbleIcon.setAttribute("viewBox", "0 0 24 24");
    bubbleIcon.setAttribute("aria-hidden", "true");
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H8l-4 4V5a2 2 0 0 1 2-2z");
    bubbleIcon.append(path);
    const bubble = el("button", { class: "bubble", type: "button", "aria-label": T.open, "aria-expanded": "false", "aria-controls": "kefu-panel" }, bubbleIcon);

    const status = el("span", { class: "status", "aria-live": "polite" });
    const human = el("button", { class: "human", type: "button", text: T.human });
    const closeBtn = el("button", { class: "close", type: "button", "aria-label": T.close, text: "×" });
    const header = el("header", {}, el("div", { class: "titles" }, el("span", { class: "title", id: "kefu-title", text: T.title }), status), human, closeBtn);
    const banner = el("div", { class: "banner", role: "status", hidden: true });
    const log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-labelledby": "kefu-title", tabindex: "0" });
    const typing = el("div", { class: "typing", hidden: true, text: T.typing });
    const chips = el("div", { class: "chips", hidden: true });
    const input = el("textarea", { rows: "1", maxlength: "4000", placeholder: T.placeholder, "aria-label": T.placeholder });
    const filePicker = el("input", { type: "file", hidden: true, accept: "image/png,image/jpeg,image/gif,image/webp,application/pdf,.docx,.xlsx,.pptx,.txt" });
    const attach = el("button", { class: "attach", type: "button", "aria-label": T.attach, title: T.attach, text: "📎" });
    const composer = el("form", { class: "composer" }, attach, filePicker, input, el("button", { type: "submit", text: T.send }));
    const contact = el("input", { name: "contact", type: "text", maxlength: "200", placeholder: T.contact, "aria-label": T.contact });
    const offlineText = el("textarea", { name: "message", rows: "3", maxlength: "3500", placeholder: T.offlineMessage, "aria-label": T.offlineMessage });
    const offline = el("form", { class: "offline", hidden: true }, el("p", { text: T.offlineTitle }), contact, offlineText, el("button", { type: "submit", text: T.offlineSend }));
    const stars = el("div", { class: "stars", role: "group", "aria-label": T.rateTitle });
    const rateComment = el("textarea", { name: "comment", rows: "2", maxlength: "1000", placeholder: T.rateComment, "aria-label": T.rateComment });
    const rateSend = el("button", { type: "submit", text: T.rateSend, disabled: true });
    const rateNote = el("p", { role: "status", hidden: true });
    const rating = el("form", { class: "rating", hidden: true }, el("p", { text: T.rateTitle }), stars, rateComment, rateSend, rateNote);
    let score = 0;
    for (let n = 1; n <= 5; n++) {
      const b = el("button", { type: "button", "aria-label": T.star(n), "aria-pressed": "false", "data-score": String(n), text: "★" });
      b.addEventListener("click", () => {
        score = n;
        for (const s of stars.children) s.setAttribute("aria-pressed", String(Number(s.dataset.score) <= n));
        rateSend.disabled = false;
      });
      stars.append(b);
    }
    const panel = el("section", { class: "panel", id: "kefu-panel", role: "dialog", "aria-labelledby": "kefu-title", hidden: true },
      header, banner, log, typing, chips, offline, rating, composer);
    const root = el("div", { class: "root", lang: zh ? "zh-CN" : "en" }, panel, bubble);
    shadow.append(style, root);
    document.body.append(host);

    const bySeq = new Map();
    const pending = new Map();
    let state = "bot";
    let lastSeq = 0;
    let typingTimer = 0;
    let myTypingTimer = 0;
    let myTyping = false;

    function scroll() { log.scrollTop = log.scrollHeight; }
    function isOpen() { return !panel.hidden; }

    function renderBody(target, text, markdown) {
      if (markdown) engine.renderMessage(target, text);
      else target.textContent = text;
    }

    function sizeText(n) {
      return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} KB`;
    }

    // Files sent with a message: images as thumbnails linking to the file, others as links.
    // Links are relative to the server and expire; every read of the message brings fresh ones.
    function showFiles(node, files) {
      if (!files || !files.length || node.querySelector(".files")) return;
      const box = el("div", { class: "files" });
      for (const f of files) {
        const link = el("a", { href: new URL(f.url, fileBase).href, target: "_blank", rel: "noopener noreferrer" });
        if (f.thumbnail_url) {
          link.append(el("img", { src: new URL(f.thumbnail_url, fileBase).href, alt: f.name, loading: "lazy" }));
        } else {
          link.setAttribute("download", f.name);
          link.textContent = `📎 ${f.name} (${sizeText(f.size)})`;
        }
        box.append(link);
      }
      node.append(box);
    }

    function who(author) {
      if (author.kind === "agent") return author.name || T.agentDefault;
      if (author.kind === "bot") return T.bot;
      return "";
    }

    // A bot answer being written (LLM answer mode), shown as plain text until the committed
    // message replaces it.
    let draft = null;

    function showDelta(e) {
      if (!draft || draft.id !== e.stream_id) {
        clearDraft();
        const node = el("div", { class: "msg bot draft", "aria-busy": "true", "data-stream-id": e.stream_id });
        node.append(el("span", { class: "who", text: T.bot }));
        const body = el("div", { class: "body" });
        node.append(body);
        node.dataset.seq = String(Number.MAX_SAFE_INTEGER);
        log.append(node);
        draft = { id: e.stream_id, node, body, text: "" };
      }
      draft.text += e.text;
      draft.body.textContent = draft.text;
      typing.hidden = true;
      scroll();
    }

    function clearDraft() {
      if (draft) { draft.node.remove(); draft = null; }
    }

    function showMessage(m) {
      if (bySeq.has(m.seq)) return;
      const kind = m.author.kind;
      if ((kind === "bot" || kind === "system") && m.seq > lastSeq) clearDraft();
      let node = m.client_msg_id && pending.get(m.client_msg_id);
      if (node) {
        pending.delete(m.client_msg_id);
        node.classList.remove("pending");
        node.removeAttribute("aria-busy");
        showFiles(node, m.attachments);
      } else {
        node = el("div", { class: `msg ${kind}` });
        const label = who(m.author);
        if (label) node.append(el("span", { class: "who", text: label }));
        const body = el("div", { class: "body" });
        renderBody(body, m.text, kind === "bot" || kind === "agent");
        node.append(body);
        showFiles(node, m.attachments);
        if (m.sources && m.sources.length) {
          const list = el("ul", { class: "sources", "aria-label": T.sources });
          for (const s of m.sources) list.append(el("li", { text: `${T.sources}: ${s.title}` }));
          node.append(list);
        }
        insertInOrder(node, m.seq);
      }
      node.dataset.seq = String(m.seq);
      bySeq.set(m.seq, node);
      lastSeq = Math.max(lastSeq, m.seq);
      if (kind === "bot" || kind === "agent") {
        showChips(m.quick_replies || []);
        typing.hidden = true;
      }
      if (isOpen() && kind !== "visitor") chat.markRead(m.seq);
      scroll();
    }

    function insertInOrder(node, seq) {
      let after = null;
      for (const child of log.children) {
        const s = Number(child.dataset.seq || 0);
        if (s > seq) { after = child; break; }
      }
      log.insertBefore(node, after);
    }

    function showChips(replies) {
      chips.replaceChildren();
      for (const r of replies) {
        const b = el("button", { type: "button", text: r });
        b.addEventListener("click", () => send(r));
        chips.append(b);
      }
      chips.hidden = replies.length === 0;
    }

    function setState(s, agent, isOffline) {
      state = s;
      human.hidden = s !== "bot";
      status.textContent = s === "bot" ? T.bot : s === "queued" ? T.queued : s === "agent" ? (agent ? T.agent(agent) : T.agentDefault) : T.resolved;
      offline.hidden = !(s === "queued" && isOffline);
      if (s !== "bot") showChips([]);
      if (s === "resolved") offerRating();
      else if (!rated) rating.hidden = true;
    }

    // A resolved conversation asks for a 1-5 rating and a comment, once.
    let rated = false;
    function offerRating() {
      if (rated) return;
      rating.hidden = false;
      scroll();
    }
    function resetRating() {
      rated = false;
      score = 0;
      rating.hidden = true;
      rateComment.value = "";
      rateNote.hidden = true;
      rateSend.disabled = true;
      for (const s of stars.children) { s.setAttribute("aria-pressed", "false"); s.disabled = false; }
      rateComment.disabled = false;
      rateSend.hidden = false;
    }

    function onEvent(json) {
      const e = JSON.parse(json);
      switch (e.type) {
        case "connection":
          if (e.status === "connected") { banner.hidden = true; }
          else if (e.status === "waiting") { banner.textContent = T.reconnecting; banner.hidden = false; }
          else if (e.status === "stopped") { banner.textContent = T.stopped; banner.hidden = false; }
          else if (e.status === "connecting" && banner.hidden === false) { banner.textContent = T.reconnecting; }
          break;
        case "session_started":
          storage.set(JSON.stringify({ token: e.token, visitor_id: e.visitor_id, conversation_id: e.conversation_id }));
          break;
        case "conversation_started": {
          try {
            const saved = JSON.parse(storage.get() || "{}");
            saved.conversation_id = e.conversation_id;
            storage.set(JSON.stringify(saved));
          } catch { /* ignore */ }
          // Earlier conversations stay above, out of the new one's seq order.
          for (const child of log.children) child.dataset.seq = child.classList.contains("pending") ? child.dataset.seq : "-1";
          log.append(el("div", { class: "msg system", role: "separator", "data-seq": "-1" }));
          resetRating();
          bySeq.clear();
          lastSeq = 0;
          break;
        }
        case "message": showMessage(e.message); break;
        case "message_delta": showDelta(e); break;
        case "message_queued": {
          const node = el("div", { class: "msg visitor pending", "aria-busy": "true", "data-client-id": e.client_msg_id });
          const body = el("div", { class: "body" });
          renderBody(body, e.text, false);
          node.append(body);
          node.dataset.seq = String(Number.MAX_SAFE_INTEGER);
          log.append(node);
          pending.set(e.client_msg_id, node);
          scroll();
          break;
        }
        case "message_acked": break;
        case "message_failed": {
          const node = pending.get(e.client_msg_id);
          if (node) {
            node.classList.remove("pending");
            node.classList.add("failed");
            node.append(el("span", { class: "who", text: `${T.failed}: ${e.error.message || e.error.kind}` }));
            pending.delete(e.client_msg_id);
          }
          break;
        }
        case "typing":
          if (e.author.kind !== "visitor") {
            typing.hidden = !e.typing;
            clearTimeout(typingTimer);
            if (e.typing) typingTimer = setTimeout(() => { typing.hidden = true; }, 8000);
          }
          break;
        case "state_changed": setState(e.state, e.agent, e.offline); break;
        case "history": for (const m of e.messages) showMessage(m); break;
        case "error": console.warn("kefu:", e.error); break;
      }
    }

    const chat = new engine.KefuChat(server, siteKey, storage.get(), onEvent, userId, userHash, userName);

    function send(text) {
      const t = text.trim();
      if (!t) return false;
      try { chat.send(t); } catch (err) { console.warn("kefu:", err); return false; }
      stopTyping();
      return true;
    }

    // Uploads a picked file, then sends it with whatever is typed; refusals (too large, a kind
    // the site does not accept) are shown in the log.
    async function sendFile(file) {
      // A note outside the messages' seq order (no data-seq).
      const note = el("div", { class: "msg system", role: "status", text: T.uploading(file.name) });
      log.append(note);
      scroll();
      try {
        const bytes = new Uint8Array(await file.arrayBuffer());
        const attachment = JSON.parse(await chat.uploadAttachment(file.name, bytes));
        chat.sendWithAttachments(input.value.trim(), [attachment.id]);
        input.value = "";
        stopTyping();
        note.remove();
      } catch (err) {
        note.textContent = `${T.uploadFailed(file.name)}: ${(err && err.message) || err}`;
      }
    }

    function stopTyping() {
      clearTimeout(myTypingTimer);
      if (myTyping) { myTyping = false; chat.setTyping(false); }
    }

    function open() {
      panel.hidden = false;
      bubble.setAttribute("aria-expanded", "true");
      if (lastSeq) chat.markRead(lastSeq);
      scroll();
      input.focus();
    }
    function close() {
      panel.hidden = true;
      bubble.setAttribute("aria-expanded", "false");
      bubble.focus();
    }

    bubble.addEventListener("click", () => (isOpen() ? close() : open()));
    closeBtn.addEventListener("click", close);
    root.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape" && isOpen()) { ev.preventDefault(); close(); }
    });
    human.addEventListener("click", () => chat.requestHuman());
    attach.addEventListener("click", () => filePicker.click());
    filePicker.addEventListener("change", () => {
      const file = filePicker.files && filePicker.files[0];
      filePicker.value = "";
      if (file) sendFile(file);
    });
    composer.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (send(input.value)) input.value = "";
      input.focus();
    });
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        composer.requestSubmit();
      }
    });
    input.addEventListener("input", () => {
      if (!myTyping && input.value) { myTyping = true; chat.setTyping(true); }
      clearTimeout(myTypingTimer);
      myTypingTimer = setTimeout(stopTyping, 3000);
    });
    offline.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const msg = offlineText.value.trim();
      if (!msg) { offlineText.focus(); return; }
      const c = contact.value.trim();
      if (send(`${T.offlinePrefix}\n${T.contactLabel}: ${c || "-"}\n\n${msg}`)) {
        offline.replaceChildren(el("p", { role: "status", text: T.offlineThanks }));
      }
    });
    rating.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!score) return;
      rateSend.disabled = true;
      try {
        await chat.rate(score, rateComment.value.trim() || undefined);
        rated = true;
        for (const s of stars.children) s.disabled = true;
        rateComment.disabled = true;
        rateSend.hidden = true;
        rateNote.textContent = T.rateThanks;
      } catch (err) {
        console.warn("kefu:", err);
        rateSend.disabled = false;
        rateNote.textContent = T.rateFailed;
      }
      rateNote.hidden = false;
    });
    status.textContent = T.connecting;
    window.KefuWidget = { open, close, chat };
  }

  const boot = () => start().catch((err) => console.error("kefu widget failed to start:", err));
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
