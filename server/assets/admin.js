"use strict";
// The operator's console: knowledge bases (upload, browse, edit, try a question, thresholds),
// analytics and settings, over the admin REST API. Chinese or English by the browser's language.
// Every stored or visitor-provided string is set with textContent, never as HTML.
const $ = (id) => document.getElementById(id);
const ss = window.sessionStorage;
const ZH = (navigator.language || "").toLowerCase().startsWith("zh");

const TEXT = {
  title: ["Kefu 运营后台", "Kefu operator console"],
  login: ["登录", "Log in"], logout: ["退出", "Log out"], name: ["用户名", "Name"], password: ["密码", "Password"],
  knowledge: ["知识库", "Knowledge"], training: ["训练", "Training"], analytics: ["数据分析", "Analytics"], settings: ["设置", "Settings"],
  agentConsole: ["客服工作台", "Agent console"], kb: ["知识库", "Knowledge base"], newKb: ["新知识库名称", "new knowledge base"],
  deleteKb: ["删除知识库", "Delete knowledge base"], confirmDeleteKb: ["删除知识库 {0} 及其全部条目？", "Delete knowledge base {0} and all its entries?"],
  upload: ["上传文件", "Upload a file"], uploadGo: ["上传并导入", "Upload and import"],
  uploadHint: ["FAQ（CSV、JSON、YAML）或文档（Markdown、HTML、文本、PDF、DOCX）。同名文档会被替换。", "FAQ files (CSV, JSON, YAML) or documents (Markdown, HTML, text, PDF, DOCX). A document uploaded again replaces its old version."],
  job: ["任务", "Job"], status: ["状态", "Status"], result: ["结果", "Result"],
  queued: ["排队中", "queued"], running: ["进行中", "running"], done: ["完成", "done"], failed: ["失败", "failed"],
  imported: ["{0} 条：新增 {1}，更新 {2}，未变 {3}，删除 {4}", "{0} entries: {1} added, {2} updated, {3} unchanged, {4} removed"],
  try: ["试问一个问题", "Try a question"], ask: ["提问", "Ask"], band: ["档位", "Band"], modeLabel: ["方式", "Mode"],
  sources: ["出处", "Sources"], quick: ["快捷选项", "Quick replies"], hits: ["检索结果", "Hits"], score: ["分数", "Score"],
  entries: ["条目", "Entries"], allKinds: ["全部", "all"], passages: ["文档段落", "passages"], search: ["搜索", "Search"],
  newFaq: ["新建 FAQ", "New FAQ"], total: ["共 {0} 条", "{0} in all"], question: ["问题", "Question"], answer: ["答案", "Answer"],
  source: ["来源", "Source"], alternates: ["其他问法（每行一个）", "Other phrasings (one per line)"], tags: ["标签（逗号分隔）", "Tags (comma-separated)"],
  save: ["保存", "Save"], delete: ["删除", "Delete"], cancel: ["取消", "Cancel"], editFaq: ["编辑 FAQ #{0}", "Edit FAQ #{0}"],
  passageReadOnly: ["文档段落 #{0}（重新上传文档来修改）", "Passage #{0} (upload the document again to change it)"],
  confirmDelete: ["删除这个条目？", "Delete this entry?"], saved: ["已保存", "Saved"],
  settingsKb: ["回答方式与阈值", "Answer mode and thresholds"],
  evalTitle: ["回答质量评估", "Answer quality"],
  evalHint: ["上传标注好的问题（JSONL：question，expect 为条目 id 或 \"none\"，可选 answer_contains），像访客一样逐条提问并打分；曲线显示不同回答阈值下的覆盖率与准确率。",
    "Upload labelled questions (JSONL: question, expect = entry id(s) or \"none\", optional answer_contains); each is asked as a visitor would ask it and judged. The curve shows coverage and precision at each answer threshold."],
  evalGo: ["评估", "Measure"], evalLang: ["语言", "Language"], rightAnswers: ["答对", "Right answers"], answered: ["作答", "Answered"],
  precision: ["准确率", "Precision"], suggested: ["建议", "Suggested"], fellBack: ["未答", "Fell back"], oosHeld: ["域外未乱答", "Out of scope held"],
  coverage: ["覆盖率", "coverage"], oosAnswered: ["域外被答", "out of scope answered"], threshold: ["阈值", "threshold"],
  evalDone: ["{0} 个问题：答对 {1}", "{0} questions: {1} right"], mode: ["回答方式", "Answer mode"],
  modeFaq: ["仅 FAQ", "FAQ only"], modeExtractive: ["FAQ + 文档摘录", "FAQ + document extracts"], modeLlm: ["大模型（需配置）", "LLM (if configured)"],
  answerAt: ["回答", "answer"], suggestAt: ["建议", "suggest"], margin: ["领先", "margin"], docAnswer: ["文档回答", "doc answer"], docSuggest: ["文档建议", "doc suggest"],
  from: ["从", "From"], to: ["到", "To"], site: ["站点", "Site"], allSites: ["全部站点", "all sites"], show: ["查看", "Show"], csv: ["导出 CSV", "Export CSV"],
  perDay: ["每日", "Per day"], hours: ["最忙时段（访客消息）", "Busiest hours (visitor messages)"], gaps: ["未解答的问题", "Top unanswered questions"],
  alsoAsked: ["也问过：{0}", "Also asked: {0}"],
  times: ["次数", "Times"], makeFaq: ["写成 FAQ", "Make an FAQ"],
  conversations: ["会话", "Conversations"], visitorMessages: ["访客消息", "Visitor messages"], answered: ["已回答", "Answered"],
  suggested: ["给出建议", "Suggested"], fallback: ["未能回答", "Fallback"], resolvedBot: ["机器人独立解决", "Resolved without an agent"],
  handoffs: ["转人工", "Handoffs"], firstResponse: ["人工首次响应（中位）", "Agent first response (median)"],
  toResolve: ["解决用时（中位）", "Time to resolve (median)"], csatLabel: ["满意度", "CSAT"], ratings: ["{0} 个评分", "{0} ratings"],
  requested: ["访客要求", "requested"], rule: ["规则", "rule"], intent: ["意图", "intent"], repeated_fallback: ["多次未答", "repeated fallback"], unknown: ["未知", "unknown"],
  siteSettings: ["站点设置", "Site settings"], businessHours: ["营业时间", "Business hours"],
  alwaysOpen: ["全天开放", "Always open"], openNow: ["现在营业中", "Open now"], closedNow: ["现在不营业，{0} 恢复", "Closed now, back at {0}"],
  noHours: ["未设置营业时间：全天开放", "No business hours: always open"],
  retention: ["数据保留", "Data retention"], retentionHint: ["天后删除不活跃的会话（0 = 永久保留）", "days, then idle conversations are deleted (0 keeps everything)"],
  attachments: ["附件", "Attachments"], maxMb: ["最大（MB）", "Largest (MB)"], kinds: ["类型", "Kinds"],
  webhooks: ["事件 Webhook", "Event webhooks"], events: ["事件", "Events"], allEvents: ["全部事件", "every event"],
  enabledLabel: ["启用", "enabled"], disabledLabel: ["已停用：{0}", "disabled: {0}"], remove: ["删除", "Remove"],
  secretOnce: ["签名密钥只显示这一次：", "The signing secret, shown this once:"], saved: ["已保存", "Saved"],
  channelsHint: ["API 渠道与微信公众号用命令行设置：kefu site set KEY --api-token / --wechat-token …", "The API channel and WeChat Official Accounts are set up with the CLI: kefu site set KEY --api-token / --wechat-token …"],
  sites: ["站点", "Sites"], siteKey: ["站点 key", "Site key"], embed: ["嵌入代码", "Embed snippet"], origins: ["允许的来源（逗号分隔）", "allowed origins (comma-separated)"],
  add: ["添加", "Add"], people: ["客服与管理员", "Agents and operators"], role: ["角色", "Role"], capacity: ["容量", "Capacity"],
  roleAgent: ["客服", "agent"], roleAdmin: ["管理员", "admin"], roleVisitor: ["访客", "visitor"], roleBot: ["机器人", "bot"],
  examples: ["来自这些历史对话", "From these past chats"], signOut: ["强制下线", "Sign out"], online: ["在线", "online"],
  sec: ["{0} 秒", "{0} s"], none: ["—", "—"],
  rules: ["规则文件", "Rules file"], check: ["检查", "Check"],
  apiKeys: ["API 密钥", "API keys"], apiKeysHint: ["给脚本和集成用的管理员密钥（Authorization: Bearer …）；运营人员请用自己的账号登录。", "Admin keys for scripts and integrations (Authorization: Bearer …); operators sign in with their own account."],
  expires: ["到期", "Expires"], issueKey: ["生成密钥", "Issue a key"], revoke: ["吊销", "Revoke"],
  keyOnce: ["新密钥只显示这一次：", "The new key, shown this once:"],
  rulesWhere: ["{0}（{1}）。保存前按启动时的规则检查，保存后下一条消息即生效。", "{0} ({1}). Checked as at start-up before saving; in force from the next message."],
  rulesNew: ["尚未创建：以下是模板，保存后生效。", "Not created yet: a starter is shown; saving creates it."],
  rulesFixed: ["只有内置规则，本服务器没有可保存的规则文件。", "Built-in rules only: this server has no rules file to save to."],
  rulesOk: ["有效：{0} 条规则，{1} 条快捷回复，{2} 个意图路由", "Valid: {0} rules, {1} canned replies, {2} intent routes"],
  rulesSaved: ["已保存并生效：{0} 条规则，{1} 条快捷回复，{2} 个意图路由", "Saved and in force: {0} rules, {1} canned replies, {2} intent routes"],
  llm: ["大模型后端", "LLM backend"], llmTest: ["测试连接", "Test the connection"],
  llmHint: ["OpenAI 兼容接口（Ollama、vLLM、DeepSeek、通义千问……），知识库的回答方式选“大模型”时使用。在这里设置后立即生效并保存；用 --llm-url 启动时以启动参数为准。",
    "An OpenAI-compatible API (Ollama, vLLM, DeepSeek, Qwen, …), used by knowledge bases in answer mode “LLM”. Set here, it is used at once and saved; a server started with --llm-url uses its flags instead."],
  llmRemove: ["停用", "Remove"], llmKeyKeep: ["API key（留空则不变）", "API key (empty: unchanged)"],
  llmSource: ["来源", "Source"], llmFromFlags: ["启动参数（只读）", "start-up flags (read-only)"], llmFromConsole: ["运营后台", "this console"],
  llmNone: ["未配置：所有知识库都在本地作答。", "Not configured: every knowledge base answers locally."],
  llmEndpoint: ["地址", "Endpoint"], llmModel: ["模型", "Model"], llmKey: ["API key", "API key"], llmKeySet: ["已设置", "set"], llmKeyUnset: ["未设置", "not set"],
  llmTimeouts: ["超时（首字 / 全部）", "Timeouts (first token / whole)"],
  llmOk: ["连接正常：首字 {0} ms，共 {1} ms", "Works: first token {0} ms, {1} ms in all"], llmFailed: ["失败（{0}）：{1}", "Failed ({0}): {1}"],
  intentModels: ["意图模型", "Intent models"],
  intentHint: ["上传带标注的话术（JSONL：text、intent；或 CSV：text,intent；intent 为 oos 表示域外）训练新版本；可另附测试集评估。比较各版本并启用或回滚。",
    "Upload labelled utterances (JSONL: text, intent; or CSV: text,intent; intent oos marks out-of-scope) to train a new version, optionally with a test file to evaluate it. Compare versions, activate or roll back."],
  intentData: ["训练数据", "Training data"], intentTest: ["测试集（选填）", "Test file (optional)"],
  fineTune: ["微调编码器（较慢，数分钟）", "Fine-tune the encoder (slower, minutes)"],
  oosClass: ["用 oos 样例训练“超出范围”输出", "Train an out-of-scope output on the oos examples"],
  alsoEncoder: ["同时用英文编码器 all-minilm-l6-v2 读取（英文更准，每条消息多算一次）", "Also read with the English encoder all-minilm-l6-v2 (more accurate in English, one more pass per message)"],
  oosOutput: ["含超出范围输出", "out-of-scope output"], activateWhenDone: ["训练完成后启用", "Activate when trained"],
  train: ["训练新版本", "Train a new version"], testSet: ["测试集结果", "Test set"],
  trained: ["{0}：{1} 个意图，{2} 条样本；准确率 {3}", "{0}: {1} intents, {2} examples; accuracy {3}"],
  version: ["版本", "Version"], created: ["创建时间", "Created"], intentsCount: ["意图数", "Intents"], accuracy: ["准确率", "Accuracy"],
  oosRecall: ["域外召回", "Out-of-scope recall"], encoder: ["编码器", "Encoder"], activate: ["启用", "Activate"], active: ["使用中", "active"], rollback: ["回滚到上一版本", "Roll back to the previous version"],
  history: ["导入历史对话", "Import past chats"], jobs: ["任务", "Jobs"],
  historyHint: ["JSONL（每行一个会话：id、messages[role, text, time]）或 CSV（conversation_id, role, text, time）。重复导入不会重复记录。", "JSONL (one conversation per line: id, messages of role, text, time) or CSV (conversation_id, role, text, time). Importing again adds nothing twice."],
  mine: ["从历史对话挖掘 FAQ", "Mine FAQs from the chats"], mineHint: ["把访客常问、客服回答过、知识库还答不了的问题放进审核队列。", "Questions visitors ask often, that agents answered and the knowledge base cannot yet, go to the review queue."],
  queue: ["FAQ 审核队列", "FAQ review queue"], pending: ["待审核", "pending"], approved: ["已通过", "approved"], rejected: ["已拒绝", "rejected"],
  support: ["提问次数", "Asked"], approve: ["通过并加入知识库", "Approve into the knowledge base"], reject: ["拒绝", "Reject"],
  mined: ["{0} 个会话，{1} 组问答，{2} 个聚类；新增 {3}，更新 {4}", "{0} conversations, {1} question/answer pairs, {2} clusters; {3} new, {4} updated"],
  historyDone: ["新增 {0} 个会话，更新 {1}，未变 {2}；跳过 {3} 条", "{0} conversations added, {1} updated, {2} unchanged; {3} records skipped"],
};
function t(key, ...args) {
  const pair = TEXT[key];
  let s = pair ? pair[ZH ? 0 : 1] : key;
  args.forEach((a, i) => { s = s.replace("{" + i + "}", String(a)); });
  return s;
}
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}
function num(x, digits = 2) { return typeof x === "number" ? x.toFixed(digits) : "—"; }

document.documentElement.lang = ZH ? "zh-CN" : "en";
document.title = t("title");
for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
$("name").placeholder = t("name"); $("password").placeholder = t("password");
$("kbNew").placeholder = t("newKb"); $("siteOrigins").placeholder = t("origins");
$("siteKey").placeholder = t("siteKey"); $("personName").placeholder = t("name"); $("personPassword").placeholder = t("password");

let token = ss.getItem("kefu.admin.token");
let kb = ss.getItem("kefu.admin.kb") || "default";
let entryOffset = 0, editing = null;
const PAGE = 20;

async function api(method, path, body, raw) {
  const headers = { Authorization: "Bearer " + token };
  if (body !== undefined && !(body instanceof FormData)) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body instanceof FormData ? body : body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) { logout(); throw new Error("session expired"); }
  if (raw && r.ok) return r;
  const data = r.status === 204 ? {} : await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error ? data.error.code + ": " + data.error.message : String(r.status));
  return data;
}
function showError(id, err) { $(id).textContent = err ? (err.message || String(err)) : ""; }

$("login").onsubmit = async (e) => {
  e.preventDefault();
  showError("loginError");
  const r = await fetch("/v1/admin/login", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: $("name").value, password: $("password").value }),
  });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) { $("loginError").textContent = data.error ? data.error.message : "login failed"; return; }
  token = data.token;
  ss.setItem("kefu.admin.token", token);
  ss.setItem("kefu.admin.name", data.account.name);
  start();
};
function logout() { ss.removeItem("kefu.admin.token"); token = null; location.reload(); }
$("logout").onclick = logout;

for (const b of document.querySelectorAll("header nav button")) b.onclick = () => showTab(b.dataset.tab);
function showTab(name) {
  for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== "tab-" + name;
  for (const b of document.querySelectorAll("header nav button")) b.classList.toggle("active", b.dataset.tab === name);
  ss.setItem("kefu.admin.tab", name);
  if (name === "training") {
    loadProposals().catch((e) => showError("appError", e));
    loadIntents().catch((e) => showError("intentError", e));
  }
  if (name === "analytics") loadAnalytics().catch((e) => showError("appError", e));
  if (name === "settings") {
    loadSettings().catch((e) => showError("appError", e));
    loadRules().catch((e) => showError("rulesError", e));
    loadKeys().catch((e) => showError("keyError", e));
    loadLlm().catch((e) => showError("appError", e));
  }
}

async function start() {
  $("login").style.display = "none";
  $("app").style.display = "block";
  $("me").textContent = ss.getItem("kefu.admin.name") || "";
  const today = new Date();
  const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 10);
  $("anTo").value = local(today);
  $("anFrom").value = local(new Date(today.getTime() - 6 * 86400000));
  try {
    await loadKbs();
    await loadJobs();
  } catch (err) { showError("appError", err); }
  showTab(ss.getItem("kefu.admin.tab") || "knowledge");
}

// ----- knowledge -----

async function loadKbs() {
  const data = await api("GET", "/v1/admin/kbs");
  const select = $("kbSelect");
  select.textContent = "";
  const names = data.kbs.map((k) => k.name);
  if (!names.includes(kb)) names.push(kb);
  for (const name of names) { const o = el("option", "", name); o.value = name; select.append(o); }
  select.value = kb;
  const info = data.kbs.find((k) => k.name === kb);
  $("kbCounts").textContent = info
    ? `${info.faqs} FAQ · ${info.chunks} ${t("passages")} · ${info.sources} ${t("source")} · ${info.model}`
    : "—";
  if (info) {
    $("kbMode").value = info.mode;
    $("thAnswer").value = info.thresholds.answer.toFixed(2);
    $("thSuggest").value = info.thresholds.suggest.toFixed(2);
    $("thMargin").value = info.thresholds.margin.toFixed(2);
    $("thDocAnswer").value = info.thresholds.doc_answer.toFixed(2);
    $("thDocSuggest").value = info.thresholds.doc_suggest.toFixed(2);
  }
  await loadEntries();
}
$("kbSelect").onchange = () => selectKb($("kbSelect").value);
$("kbNew").onchange = () => { const v = $("kbNew").value.trim(); if (v) { $("kbNew").value = ""; selectKb(v); } };
function selectKb(name) {
  kb = name; ss.setItem("kefu.admin.kb", kb); entryOffset = 0; closeEditor();
  loadKbs().catch((e) => showError("appError", e));
}
$("kbDelete").onclick = async () => {
  if (!confirm(t("confirmDeleteKb", kb))) return;
  try { await api("DELETE", "/v1/admin/kbs/" + encodeURIComponent(kb)); selectKb("default"); }
  catch (e) { showError("appError", e); }
};

$("uploadGo").onclick = async () => {
  const file = $("uploadFile").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    await api("POST", "/v1/admin/kbs/" + encodeURIComponent(kb) + "/documents", form);
    $("uploadFile").value = "";
    await loadJobs(true);
  } catch (e) { showError("appError", e); }
};

let jobTimer = null;
// Reads the jobs (again every 0.7 s while one runs); when the running ones end, the knowledge
// base and the review queue are read again. `submitted`: a job was just started.
async function loadJobs(submitted) {
  if (submitted) jobsWereActive = true;
  const data = await api("GET", "/v1/admin/jobs");
  let active = false;
  for (const rows of document.querySelectorAll("[data-jobs]")) {
    rows.textContent = "";
    for (const j of data.jobs.slice(0, 8)) {
      const tr = el("tr");
      tr.dataset.status = j.status;
      tr.append(el("td", "", (j.detail ? j.detail + " → " : j.kind + " → ") + j.target));
      const st = el("td");
      st.append(el("span", "badge " + j.status, t(j.status)));
      if (j.status === "running") { const p = el("progress"); p.max = 1; p.value = j.progress; st.append(" ", p); }
      tr.append(st);
      tr.append(el("td", j.error ? "error" : "", jobResult(j)));
      rows.append(tr);
      if (j.status === "queued" || j.status === "running") active = true;
    }
  }
  clearTimeout(jobTimer);
  if (active) jobTimer = setTimeout(() => loadJobs().catch(() => {}), 700);
  else if (jobsWereActive) {
    loadKbs().catch(() => {}); loadProposals().catch(() => {}); loadIntents().catch(() => {});
    const ev = data.jobs.find((j) => j.kind === "eval" && j.status === "done" && j.id === evalJob);
    if (ev) drawEval(ev.result);
  }
  jobsWereActive = active;
}
let jobsWereActive = false;
function jobResult(j) {
  if (j.error) return j.error.code + ": " + j.error.message;
  const r = j.result;
  if (!r) return "";
  if (j.kind === "import") return t("imported", r.entries, r.added, r.updated, r.unchanged, r.removed);
  if (j.kind === "history") return t("historyDone", r.report.added, r.report.updated, r.report.unchanged, r.skipped_count);
  if (j.kind === "mine") return t("mined", r.conversations, r.pairs, r.clusters, r.queue.added, r.queue.updated);
  if (j.kind === "eval") return t("evalDone", r.report.overall.questions, (r.report.overall.right_answer_rate * 100).toFixed(1) + "%");
  if (j.kind === "intents") {
    const m = r.eval ? r.eval.metrics : r.calibration;
    return t("trained", r.version, r.intents, r.train_examples, (m.in_scope_accuracy * 100).toFixed(1) + "%");
  }
  return "";
}

// ----- answer-quality eval -----

let evalJob = null;
$("evalGo").onclick = async () => {
  const file = $("evalFile").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file, file.name);
  showError("kbError");
  try {
    evalJob = (await api("POST", "/v1/admin/kbs/" + encodeURIComponent(kb) + "/eval", form)).job;
    $("evalFile").value = "";
    await loadJobs(true);
  } catch (e) { showError("kbError", e); }
};
function drawEval(r) {
  const pct = (x) => (typeof x === "number" ? (x * 100).toFixed(1) + "%" : "—");
  const rows = $("evalRows");
  rows.textContent = "";
  const head = el("tr");
  for (const k of ["evalLang", "rightAnswers", "answered", "precision", "suggested", "fellBack", "oosHeld"]) head.append(el("th", "", t(k)));
  rows.append(head);
  for (const [name, s] of [["all", r.report.overall], ["zh", r.report.zh], ["en", r.report.en]]) {
    if (!s) continue;
    const tr = el("tr");
    tr.dataset.lang = name;
    tr.append(el("td", "", name + " (" + s.questions + ")"), el("td", "", pct(s.right_answer_rate)), el("td", "", pct(s.answer_rate)),
      el("td", "", pct(s.answer_precision)), el("td", "", pct(s.suggest_rate)), el("td", "", pct(s.fallback_rate)),
      el("td", "", s.out_of_scope ? pct(s.out_of_scope_held) : "—"));
    rows.append(tr);
  }
  drawCurve($("evalCurve"), r.report.curve, Number($("thAnswer").value));
}
// Coverage, precision and out-of-scope answered over the answer threshold, as an SVG line chart
// with the knowledge base's current FAQ answer threshold marked.
function drawCurve(box, points, current) {
  const NS = "http://www.w3.org/2000/svg";
  const W = 520, H = 200, P = 30;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", String(W));
  const lo = points[0].threshold, hi = points[points.length - 1].threshold;
  const x = (th) => P + ((th - lo) / (hi - lo)) * (W - 2 * P);
  const y = (v) => H - P - v * (H - 2 * P);
  const line = (key, color) => {
    const path = document.createElementNS(NS, "polyline");
    path.setAttribute("points", points.map((p) => x(p.threshold).toFixed(1) + "," + y(p[key]).toFixed(1)).join(" "));
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", color);
    path.setAttribute("stroke-width", "2");
    path.dataset.series = key;
    svg.append(path);
  };
  const axis = document.createElementNS(NS, "line");
  for (const [k, v] of Object.entries({ x1: P, y1: H - P, x2: W - P, y2: H - P, stroke: "#999" })) axis.setAttribute(k, String(v));
  svg.append(axis);
  line("coverage", "#2450a6");
  line("precision", "#3c8d5a");
  line("out_of_scope_answered", "#c0504d");
  if (current >= lo && current <= hi) {
    const mark = document.createElementNS(NS, "line");
    for (const [k, v] of Object.entries({ x1: x(current), y1: P / 2, x2: x(current), y2: H - P, stroke: "#e0a526", "stroke-dasharray": "4 3" })) mark.setAttribute(k, String(v));
    svg.append(mark);
  }
  for (const th of [lo, (lo + hi) / 2, hi]) {
    const label = document.createElementNS(NS, "text");
    label.setAttribute("x", String(x(th) - 10));
    label.setAttribute("y", String(H - 8));
    label.setAttribute("font-size", "11");
    label.textContent = th.toFixed(2);
    svg.append(label);
  }
  box.textContent = "";
  const legend = el("div", "muted");
  for (const [key, color] of [["coverage", "#2450a6"], ["precision", "#3c8d5a"], ["oosAnswered", "#c0504d"], ["threshold", "#e0a526"]]) {
    const swatch = el("span", "", "■ ");
    swatch.style.color = color;
    legend.append(swatch, t(key) + (key === "threshold" ? " " + current.toFixed(2) : "") + "  ");
  }
  box.append(svg, legend);
}

$("askForm").onsubmit = async (e) => {
  e.preventDefault();
  const out = $("askOut");
  out.textContent = "";
  const question = $("askText").value.trim();
  if (!question) return;
  try {
    const r = await api("POST", "/v1/admin/kbs/" + encodeURIComponent(kb) + "/ask", { question });
    const head = el("div", "row");
    head.append(el("span", "badge " + r.band, t("band") + ": " + r.band), el("span", "muted", t("modeLabel") + ": " + r.mode));
    out.append(head, el("div", "reply", r.answer));
    if (r.quick_replies.length) out.append(el("div", "muted", t("quick") + ": " + r.quick_replies.join(" · ")));
    for (const c of r.citations) out.append(el("div", "muted", t("sources") + ": " + c.title + " — " + c.source));
    const hits = (r.trace.kb && r.trace.kb.hits) || [];
    if (hits.length) {
      const table = el("table");
      const h = el("tr"); h.append(el("th", "", t("score")), el("th", "", t("question")), el("th", "", t("source")));
      table.append(h);
      for (const hit of hits) {
        const tr = el("tr");
        tr.append(el("td", "", num(hit.score)), el("td", "clip", hit.question || hit.id), el("td", "clip", hit.source || ""));
        table.append(tr);
      }
      out.append(el("div", "muted", t("hits")), table);
    }
  } catch (err) { out.append(el("div", "error", err.message)); }
};

$("entrySearch").onsubmit = (e) => { e.preventDefault(); entryOffset = 0; loadEntries().catch((x) => showError("appError", x)); };
$("entryPrev").onclick = () => { entryOffset = Math.max(0, entryOffset - PAGE); loadEntries(); };
$("entryNext").onclick = () => { entryOffset += PAGE; loadEntries(); };
async function loadEntries() {
  const rows = $("entryRows");
  const q = new URLSearchParams({ q: $("entryQ").value, kind: $("entryKind").value, offset: entryOffset, limit: PAGE });
  let data;
  try { data = await api("GET", "/v1/admin/kbs/" + encodeURIComponent(kb) + "/entries?" + q); }
  catch (e) { rows.textContent = ""; $("entryTotal").textContent = ""; if (!e.message.startsWith("kb_not_found")) throw e; return; }
  rows.textContent = "";
  $("entryTotal").textContent = t("total", data.total);
  for (const entry of data.entries) {
    const tr = el("tr", "pick");
    tr.append(el("td", "", entry.kind === "faq" ? String(entry.id) : "¶" + entry.id), el("td", "clip", entry.question),
      el("td", "clip", entry.answer), el("td", "clip", entry.source));
    tr.onclick = () => openEditor(entry);
    rows.append(tr);
  }
  $("entryPrev").disabled = entryOffset === 0;
  $("entryNext").disabled = entryOffset + PAGE >= data.total;
}

function openEditor(entry, question, alternates) {
  editing = entry;
  const faq = !entry || entry.kind === "faq";
  $("editor").hidden = false;
  $("editorTitle").textContent = !entry ? t("newFaq") : faq ? t("editFaq", entry.id) : t("passageReadOnly", entry.id);
  $("edQuestion").value = entry ? entry.question : question || "";
  $("edAnswer").value = entry ? entry.answer : "";
  $("edAlternates").value = entry ? entry.alternates.join("\n") : (alternates || []).join("\n");
  $("edTags").value = entry ? entry.tags.join(", ") : "";
  for (const id of ["edQuestion", "edAnswer", "edAlternates", "edTags", "edSave"]) $(id).disabled = !faq;
  $("edDelete").hidden = !entry;
  showError("edError");
  $("editor").scrollIntoView({ behavior: "smooth" });
}
function closeEditor() { editing = null; $("editor").hidden = true; }
$("entryNew").onclick = () => openEditor(null);
$("edCancel").onclick = closeEditor;
$("edSave").onclick = async () => {
  const body = {
    question: $("edQuestion").value,
    answer: $("edAnswer").value,
    alternates: $("edAlternates").value.split("\n").map((s) => s.trim()).filter(Boolean),
    tags: $("edTags").value.split(/[,，]/).map((s) => s.trim()).filter(Boolean),
  };
  const base = "/v1/admin/kbs/" + encodeURIComponent(kb) + "/entries";
  try {
    if (editing) await api("PUT", base + "/" + editing.id, body);
    else await api("POST", base, body);
    closeEditor();
    await loadKbs();
  } catch (e) { showError("edError", e); }
};
$("edDelete").onclick = async () => {
  if (!editing || !confirm(t("confirmDelete"))) return;
  try {
    await api("DELETE", "/v1/admin/kbs/" + encodeURIComponent(kb) + "/entries/" + editing.id);
    closeEditor();
    await loadKbs();
  } catch (e) { showError("edError", e); }
};

$("kbSettings").onsubmit = async (e) => {
  e.preventDefault();
  showError("kbError");
  const value = (id) => ($(id).value === "" ? undefined : Number($(id).value));
  try {
    await api("PUT", "/v1/admin/kbs/" + encodeURIComponent(kb) + "/mode", { mode: $("kbMode").value });
    await api("PUT", "/v1/admin/kbs/" + encodeURIComponent(kb) + "/thresholds", {
      answer: value("thAnswer"), suggest: value("thSuggest"), margin: value("thMargin"),
      doc_answer: value("thDocAnswer"), doc_suggest: value("thDocSuggest"),
    });
    await loadKbs();
    $("kbError").textContent = t("saved");
  } catch (err) { showError("kbError", err); }
};

// ----- training -----

$("historyGo").onclick = async () => {
  const file = $("historyFile").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    await api("POST", "/v1/admin/training/history", form);
    $("historyFile").value = "";
    await loadJobs(true);
  } catch (e) { showError("appError", e); }
};
$("mineGo").onclick = async () => {
  try { await api("POST", "/v1/admin/training/mine", { kb }); await loadJobs(true); }
  catch (e) { showError("appError", e); }
};
$("proposalStatus").onchange = () => loadProposals().catch((e) => showError("appError", e));
let proposal = null;
async function loadProposals() {
  const status = $("proposalStatus").value;
  const data = await api("GET", "/v1/admin/training/proposals" + (status ? "?status=" + status : ""));
  const rows = $("proposalRows");
  rows.textContent = "";
  for (const p of data.proposals) {
    const tr = el("tr", "pick");
    tr.dataset.id = p.id;
    const q = el("td");
    q.append(el("div", "", p.question));
    if (p.alternates.length) q.append(el("div", "muted", p.alternates.join(" · ")));
    tr.append(el("td", "", String(p.support)), q, el("td", "clip", p.answer),
      el("td", "", p.status === "approved" && p.kb ? t("approved") + " → " + p.kb : t(p.status)));
    tr.onclick = () => openProposal(p);
    rows.append(tr);
  }
}
function openProposal(p) {
  proposal = p;
  $("proposalEditor").hidden = false;
  $("prQuestion").value = p.question;
  $("prAnswer").value = p.answer;
  $("prAlternates").value = p.alternates.join("\n");
  $("prReject").hidden = p.status === "approved";
  showError("prError");
  loadExamples(p).catch((e) => showError("prError", e));
}
async function loadExamples(p) {
  const box = $("prExamples");
  box.textContent = "";
  if (!p.examples) { box.append(el("div", "muted", t("none"))); return; }
  const data = await api("GET", "/v1/admin/training/proposals/" + p.id + "/conversations");
  if (proposal !== p) return;
  for (const c of data.conversations) {
    const div = el("div", "example");
    div.append(el("div", "muted", c.id));
    for (const m of c.messages) div.append(el("div", m.role, t(m.role === "visitor" ? "roleVisitor" : m.role === "agent" ? "roleAgent" : "roleBot") + ": " + m.text));
    box.append(div);
  }
}
async function saveProposal() {
  return api("PUT", "/v1/admin/training/proposals/" + proposal.id, {
    question: $("prQuestion").value, answer: $("prAnswer").value,
    alternates: $("prAlternates").value.split("\n").map((x) => x.trim()).filter(Boolean),
  });
}
$("prSave").onclick = async () => {
  try { await saveProposal(); await loadProposals(); } catch (e) { showError("prError", e); }
};
$("prApprove").onclick = async () => {
  try {
    await saveProposal();
    await api("POST", "/v1/admin/training/proposals/" + proposal.id + "/approve", { kb });
    $("proposalEditor").hidden = true;
    await loadProposals();
    await loadKbs();
  } catch (e) { showError("prError", e); }
};
$("prReject").onclick = async () => {
  try {
    await api("POST", "/v1/admin/training/proposals/" + proposal.id + "/reject");
    $("proposalEditor").hidden = true;
    await loadProposals();
  } catch (e) { showError("prError", e); }
};

function drawIntents(data) {
  const rows = $("intentRows");
  rows.textContent = "";
  const pct = (x) => (typeof x === "number" ? (x * 100).toFixed(1) + "%" : "—");
  for (const v of data.versions.slice().reverse()) {
    const tr = el("tr");
    tr.dataset.version = v.version;
    const act = el("td");
    if (v.version === data.active) act.append(el("span", "badge done", t("active")));
    else {
      const b = el("button", "secondary", t("activate"));
      b.type = "button";
      b.onclick = async () => {
        try { drawIntents(await api("POST", "/v1/admin/intents/" + encodeURIComponent(v.version) + "/activate", {})); }
        catch (e) { showError("intentError", e); }
      };
      act.append(b);
    }
    const test = el("td", "test");
    if (v.eval) {
      const langs = Object.entries(v.eval.by_language).map(([l, m]) => l + " " + pct(m.in_scope_accuracy)).join(" · ");
      test.append(el("div", "", pct(v.eval.metrics.in_scope_accuracy) + " / " + pct(v.eval.metrics.oos_recall)),
        el("div", "muted", v.eval.data + (langs ? " · " + langs : "")));
    } else test.textContent = "—";
    tr.append(el("td", "", v.version), el("td", "", new Date(v.created_at).toLocaleString()), el("td", "", String(v.intents)),
      el("td", "", pct(v.metrics && v.metrics.in_scope_accuracy)), el("td", "", pct(v.metrics && v.metrics.oos_recall)),
      test, el("td", "clip", [v.embedding_model, v.oos_class ? t("oosOutput") : "", v.data_file].filter(Boolean).join(" · ")), act);
    rows.append(tr);
  }
  $("intentRollback").disabled = !data.active;
}
async function loadIntents() { showError("intentError"); drawIntents(await api("GET", "/v1/admin/intents")); }
$("intentTrain").onclick = async () => {
  const file = $("intentFile").files[0];
  if (!file) { showError("intentError", new Error(t("intentData") + "?")); return; }
  const form = new FormData();
  form.append("file", file, file.name);
  const test = $("intentTest").files[0];
  if (test) form.append("test", test, test.name);
  const q = "?fine_tune=" + $("intentFineTune").checked + "&activate=" + $("intentActivate").checked
    + "&oos_class=" + $("intentOosClass").checked
    + ($("intentAlsoEncoder").checked ? "&also_encoder=all-minilm-l6-v2" : "");
  try {
    await api("POST", "/v1/admin/intents/train" + q, form);
    $("intentFile").value = "";
    $("intentTest").value = "";
    showError("intentError");
    await loadJobs(true);
  } catch (e) { showError("intentError", e); }
};
$("intentRollback").onclick = async () => {
  try { drawIntents(await api("POST", "/v1/admin/intents/rollback")); } catch (e) { showError("intentError", e); }
};

// ----- analytics -----

function analyticsQuery(format) {
  const q = new URLSearchParams({ from: $("anFrom").value, to: $("anTo").value, tz_offset_minutes: -new Date().getTimezoneOffset() });
  if ($("anSite").value) q.set("site", $("anSite").value);
  if (format) q.set("format", format);
  return "/v1/admin/analytics?" + q;
}
$("anForm").onsubmit = (e) => { e.preventDefault(); loadAnalytics().catch((x) => showError("appError", x)); };
$("anCsv").onclick = async () => {
  try {
    const r = await api("GET", analyticsQuery("csv"), undefined, true);
    const url = URL.createObjectURL(await r.blob());
    const a = el("a");
    a.href = url; a.download = `kefu-analytics-${$("anFrom").value}-${$("anTo").value}.csv`;
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (e) { showError("appError", e); }
};

async function loadSitesInto(select) {
  const keep = select.value;
  const data = await api("GET", "/v1/admin/sites");
  select.textContent = "";
  const all = el("option", "", t("allSites")); all.value = ""; select.append(all);
  for (const s of data.sites) { const o = el("option", "", s.key); o.value = s.key; select.append(o); }
  select.value = keep;
  return data.sites;
}

async function loadAnalytics() {
  if ($("anSite").options.length === 0) await loadSitesInto($("anSite"));
  const r = await api("GET", analyticsQuery());
  const cards = $("anCards");
  cards.textContent = "";
  const card = (label, value, note, key) => {
    const c = el("div", "card");
    if (key) c.dataset.testid = "an-" + key;
    c.append(el("div", "n", value), el("div", "l", label));
    if (note) c.append(el("div", "muted", note));
    cards.append(c);
  };
  const pct = (x) => (x * 100).toFixed(1) + "%";
  card(t("conversations"), r.conversations, null, "conversations");
  card(t("visitorMessages"), r.visitor_messages, null, "visitor-messages");
  card(t("answered"), r.bot_replies.answered, null, "answered");
  card(t("suggested"), r.bot_replies.suggested, null, "suggested");
  card(t("fallback"), r.bot_replies.fallback, null, "fallback");
  card(t("resolvedBot"), r.resolved_without_agent, pct(r.resolution_rate), "resolved");
  const reasons = Object.entries(r.handoffs.by_reason).map(([k, v]) => `${t(k)} ${v}`).join(" · ");
  card(t("handoffs"), r.handoffs.total, pct(r.handoffs.rate) + (reasons ? " · " + reasons : ""), "handoffs");
  const secs = (s) => (s.median === null ? "—" : t("sec", s.median.toFixed(0)));
  card(t("firstResponse"), secs(r.agents.first_response_s), null, "first-response");
  card(t("toResolve"), secs(r.agents.time_to_resolve_s), null, "to-resolve");
  card(t("csatLabel"), r.csat.mean === null ? "—" : r.csat.mean.toFixed(2) + " / 5", t("ratings", r.csat.count), "csat");

  const colors = { answered: "#3c8d5a", suggested: "#e0a526", fallback: "#c0504d" };
  bars($("anDays"), r.days.map((d) => ({ label: d.date.slice(5), parts: [["answered", d.answered], ["suggested", d.suggested], ["fallback", d.fallback]] })), colors);
  bars($("anHours"), r.busiest_hours.map((n, h) => ({ label: String(h), parts: [["visitorMessages", n]] })), { visitorMessages: "#2450a6" });

  const gaps = $("anGaps");
  gaps.textContent = "";
  for (const g of r.top_unanswered) {
    const tr = el("tr");
    const make = el("button", "secondary", t("makeFaq"));
    make.type = "button";
    make.onclick = () => { showTab("knowledge"); openEditor(null, g.question, g.examples); };
    const action = el("td"); action.append(make);
    const q = el("td", "", g.question);
    if (g.examples.length) q.append(el("div", "muted", t("alsoAsked", g.examples.join(" · "))));
    tr.append(q, el("td", "", String(g.count)), action);
    gaps.append(tr);
  }
}

// A stacked bar chart of `items` ({label, parts: [[key, n]…]}), drawn with plain elements.
function bars(box, items, colors) {
  box.textContent = "";
  const max = Math.max(1, ...items.map((i) => i.parts.reduce((s, p) => s + p[1], 0)));
  const chart = el("div", "bars"), axis = el("div", "axis");
  for (const item of items) {
    const bar = el("div", "bar");
    bar.title = item.label + ": " + item.parts.map((p) => `${t(p[0])} ${p[1]}`).join(", ");
    for (const [key, n] of item.parts) {
      const seg = el("div", "seg");
      seg.style.height = (n / max) * 130 + "px";
      seg.style.background = colors[key];
      bar.append(seg);
    }
    chart.append(bar);
    axis.append(el("span", "", item.label));
  }
  const legend = el("div", "legend");
  for (const [key, color] of Object.entries(colors)) {
    const i = el("i"); i.style.background = color;
    const s = el("span"); s.append(i, t(key));
    legend.append(s);
  }
  box.append(chart, axis, legend);
}

// ----- settings -----

// ----- one site's settings: business hours, retention, attachment limits, event webhooks -----

function ssSite() { return encodeURIComponent($("ssSite").value); }
function ssSaved() { $("ssStatus").textContent = t("saved"); setTimeout(() => { $("ssStatus").textContent = ""; }, 3000); }
function drawHours(h) {
  $("ssZone").value = h.hours ? h.hours.time_zone : "";
  $("ssWeekly").value = h.hours ? h.hours.weekly : "";
  $("ssHolidays").value = h.hours ? h.hours.holidays.join(", ") : "";
  $("ssOpen").textContent = !h.hours ? t("noHours") : h.open_now ? t("openNow") : t("closedNow", h.reopens_at || "—");
}
async function loadSiteSettings() {
  showError("ssError");
  $("ssHookNew").hidden = true;
  if (!$("ssSite").value) return;
  const [hours, retention, files, hooks] = await Promise.all([
    api("GET", "/v1/admin/sites/" + ssSite() + "/hours"),
    api("GET", "/v1/admin/sites/" + ssSite() + "/retention"),
    api("GET", "/v1/admin/sites/" + ssSite() + "/attachments"),
    api("GET", "/v1/admin/webhooks?site=" + ssSite()),
  ]);
  drawHours(hours);
  $("ssDays").value = retention.days;
  $("ssMaxMb").value = Math.round(files.max_bytes / 1048576);
  $("ssKinds").value = files.kinds || "none";
  const rows = $("ssHooks");
  rows.textContent = "";
  for (const e of hooks.endpoints) {
    const tr = el("tr");
    const b = el("button", "danger", t("remove"));
    b.type = "button";
    b.onclick = async () => {
      try { await api("DELETE", "/v1/admin/webhooks/" + encodeURIComponent(e.id)); await loadSiteSettings(); } catch (x) { showError("ssError", x); }
    };
    const act = el("td"); act.append(b);
    tr.append(el("td", "", e.url), el("td", "", e.events.length ? e.events.join(", ") : t("allEvents")),
      el("td", "", e.enabled ? t("enabledLabel") : t("disabledLabel", e.disabled_reason || "")), act);
    rows.append(tr);
  }
}
function ssRun(fn) {
  return async (ev) => {
    ev.preventDefault();
    showError("ssError");
    try { await fn(); ssSaved(); } catch (x) { showError("ssError", x); }
  };
}
$("ssSite").onchange = () => loadSiteSettings().catch((x) => showError("ssError", x));
$("ssHours").onsubmit = ssRun(async () => {
  const holidays = $("ssHolidays").value.split(/[,，\s]+/).map((d) => d.trim()).filter(Boolean);
  drawHours(await api("PUT", "/v1/admin/sites/" + ssSite() + "/hours", { time_zone: $("ssZone").value.trim(), weekly: $("ssWeekly").value.trim(), holidays }));
});
$("ssHoursClear").onclick = ssRun(async () => drawHours(await api("DELETE", "/v1/admin/sites/" + ssSite() + "/hours")));
$("ssRetention").onsubmit = ssRun(async () => {
  await api("PUT", "/v1/admin/sites/" + ssSite() + "/retention", { days: Number($("ssDays").value || 0) });
});
$("ssFiles").onsubmit = ssRun(async () => {
  const r = await api("PUT", "/v1/admin/sites/" + ssSite() + "/attachments", { max_bytes: Math.round(Number($("ssMaxMb").value) * 1048576), kinds: $("ssKinds").value.trim() });
  $("ssKinds").value = r.kinds || "none";
});
$("ssHookForm").onsubmit = ssRun(async () => {
  const events = $("ssHookEvents").value.split(/[,，\s]+/).map((x) => x.trim()).filter(Boolean);
  const r = await api("POST", "/v1/admin/webhooks", { site_key: $("ssSite").value, url: $("ssHookUrl").value.trim(), events });
  await loadSiteSettings();
  $("ssHookSecret").textContent = r.secret;
  $("ssHookNew").hidden = false;
  $("ssHookUrl").value = ""; $("ssHookEvents").value = "";
});

async function loadSettings() {
  const sites = await loadSitesInto($("anSite"));
  const keep = $("ssSite").value;
  $("ssSite").textContent = "";
  for (const s of sites) { const o = el("option", "", s.key); o.value = s.key; $("ssSite").append(o); }
  if (keep) $("ssSite").value = keep;
  await loadSiteSettings();
  const rows = $("siteRows");
  rows.textContent = "";
  for (const s of sites) {
    const tr = el("tr");
    const snippet = `<script src="${location.origin}/widget.js" data-site-key="${s.key}" async></script>`;
    const td = el("td"); td.append(el("code", "snippet", snippet));
    if (s.allowed_origins.length) td.append(el("div", "muted", s.allowed_origins.join(", ")));
    tr.append(el("td", "", s.key), td);
    rows.append(tr);
  }
  const people = await api("GET", "/v1/admin/agents");
  const prow = $("peopleRows");
  prow.textContent = "";
  for (const a of people.agents) {
    const tr = el("tr");
    const out = el("button", "danger", t("signOut"));
    out.type = "button";
    out.onclick = async () => {
      try { await api("POST", "/v1/admin/agents/" + encodeURIComponent(a.name) + "/revoke", {}); } catch (e) { showError("personError", e); }
    };
    const act = el("td"); act.append(out);
    tr.append(el("td", "", a.display_name + " (" + a.name + ")" + (a.online ? " · " + t("online") : "")),
      el("td", "", t(a.role === "admin" ? "roleAdmin" : "roleAgent")), el("td", "", `${a.active}/${a.capacity}`), act);
    prow.append(tr);
  }
}
async function loadKeys() {
  const data = await api("GET", "/v1/admin/keys");
  const rows = $("keyRows");
  rows.textContent = "";
  for (const k of data.keys) {
    const tr = el("tr");
    tr.dataset.name = k.name;
    const b = el("button", "danger", t("revoke"));
    b.type = "button";
    b.onclick = async () => {
      try { await api("POST", "/v1/admin/keys/" + encodeURIComponent(k.name) + "/revoke", {}); await loadKeys(); }
      catch (e) { showError("keyError", e); }
    };
    const act = el("td"); act.append(b);
    tr.append(el("td", "", k.name + (k.count > 1 ? " ×" + k.count : "")), el("td", "", new Date(k.created_at).toLocaleDateString()),
      el("td", "", new Date(k.expires_at).toLocaleDateString()), act);
    rows.append(tr);
  }
}
$("keyForm").onsubmit = async (e) => {
  e.preventDefault();
  showError("keyError");
  try {
    const k = await api("POST", "/v1/admin/keys", { name: $("keyName").value.trim() });
    $("keyValue").textContent = k.key;
    $("keyNew").hidden = false;
    $("keyName").value = "";
    await loadKeys();
  } catch (err) { showError("keyError", err); }
};
async function loadRules() {
  const r = await api("GET", "/v1/admin/rules");
  $("rulesText").value = r.text;
  $("rulesWhere").textContent = r.path ? t("rulesWhere", r.path, r.format.toUpperCase()) + (r.exists ? "" : " " + t("rulesNew")) : t("rulesFixed");
  $("rulesSave").disabled = !r.path;
  $("rulesStatus").textContent = t("rulesOk", r.rules, r.canned, r.intents);
  showError("rulesError");
}
$("rulesCheck").onclick = async () => {
  $("rulesStatus").textContent = "";
  showError("rulesError");
  try {
    const c = await api("POST", "/v1/admin/rules/validate", { text: $("rulesText").value });
    if (c.valid) $("rulesStatus").textContent = t("rulesOk", c.summary.rules, c.summary.canned, c.summary.intents);
    else showError("rulesError", new Error(c.error));
  } catch (e) { showError("rulesError", e); }
};
$("rulesSave").onclick = async () => {
  $("rulesStatus").textContent = "";
  showError("rulesError");
  try {
    const r = await api("PUT", "/v1/admin/rules", { text: $("rulesText").value });
    $("rulesStatus").textContent = t("rulesSaved", r.rules, r.canned, r.intents);
  } catch (e) { showError("rulesError", e); }
};
async function loadLlm() {
  const l = await api("GET", "/v1/admin/llm");
  const rows = $("llmRows");
  rows.textContent = "";
  const row = (k, v) => { const tr = el("tr"); tr.append(el("th", "", t(k)), el("td", "", v)); rows.append(tr); };
  if (!l.configured) row("llm", t("llmNone"));
  else {
    row("llmSource", t(l.source === "flags" ? "llmFromFlags" : "llmFromConsole"));
    row("llmEndpoint", l.endpoint);
    row("llmModel", l.model);
    row("llmKey", t(l.api_key_set ? "llmKeySet" : "llmKeyUnset"));
    row("llmTimeouts", l.first_token_timeout_ms + " ms / " + l.timeout_ms + " ms");
  }
  $("llmTest").disabled = !l.configured;
  for (const id of ["llmUrl", "llmModel", "llmKey"]) $(id).disabled = !l.editable;
  $("llmForm").querySelector("[type=submit]").disabled = !l.editable;
  $("llmClear").disabled = !l.editable || !l.configured;
  $("llmKey").placeholder = t("llmKeyKeep");
  if (l.configured) { $("llmUrl").value = l.url; $("llmModel").value = l.model; }
}
$("llmForm").onsubmit = async (e) => {
  e.preventDefault();
  showError("llmError");
  $("llmStatus").textContent = "";
  const body = { url: $("llmUrl").value.trim(), model: $("llmModel").value.trim() };
  if ($("llmKey").value) body.api_key = $("llmKey").value;
  try { await api("PUT", "/v1/admin/llm", body); $("llmKey").value = ""; await loadLlm(); }
  catch (err) { showError("llmError", err); }
};
$("llmClear").onclick = async () => {
  showError("llmError");
  try { await api("DELETE", "/v1/admin/llm"); $("llmUrl").value = ""; $("llmModel").value = ""; await loadLlm(); }
  catch (err) { showError("llmError", err); }
};
$("llmTest").onclick = async () => {
  $("llmStatus").textContent = "…";
  try {
    const r = await api("POST", "/v1/admin/llm/test", {});
    $("llmStatus").textContent = r.ok ? t("llmOk", r.first_token_ms ?? "—", r.total_ms) : t("llmFailed", r.error, r.message);
  } catch (e) { $("llmStatus").textContent = e.message; }
};
$("siteForm").onsubmit = async (e) => {
  e.preventDefault();
  showError("siteError");
  const origins = $("siteOrigins").value.split(/[,，\s]+/).map((s) => s.trim()).filter(Boolean);
  try {
    await api("POST", "/v1/admin/sites", { key: $("siteKey").value.trim(), allowed_origins: origins });
    $("siteKey").value = ""; $("siteOrigins").value = "";
    await loadSettings();
  } catch (err) { showError("siteError", err); }
};
$("personForm").onsubmit = async (e) => {
  e.preventDefault();
  showError("personError");
  try {
    await api("POST", "/v1/admin/agents", { name: $("personName").value.trim(), password: $("personPassword").value, role: $("personRole").value });
    $("personName").value = ""; $("personPassword").value = "";
    await loadSettings();
  } catch (err) { showError("personError", err); }
};

if (token) start();
