// Headless Chromium against a real `kefu serve`: the operator's console at /admin. An agent cannot
// sign in; the operator (Chinese browser) reads analytics after a scripted day (exact counts on the
// page and in the CSV export), turns the top unanswered question into an FAQ that the bot then
// answers with, uploads a Markdown document and sees the bot answer from it in "try a question",
// measures answer quality on uploaded labelled questions (rates per language, the curve),
// imports past chats, mines FAQs and approves one that the bot then answers with, trains an intent
// model from an uploaded file (evaluated on an uploaded test file) and switches versions, edits the
// rules file (a broken rule refused inline, a good one followed at once), sets a site's business
// hours, retention, attachment limits and event webhooks, and stores markup in an
// FAQ that renders as inert text. An English browser gets English labels;
// the API reference page renders the OpenAPI document.
//
// usage: node admin.mjs BASE_URL OPERATOR PASSWORD AGENT AGENT_PASSWORD EXPECTED_JSON [SCREENSHOT_DIR]
// EXPECTED_JSON: {"conversations", "visitor_messages", "answered", "handoffs", "csat", "gap"}

import { readFileSync } from "node:fs";
import { check, runInChromium } from "./harness.mjs";

const [base, operator, password, agent, agentPassword, expectedJson, shots] = process.argv.slice(2);
if (!expectedJson) {
  console.error("usage: node admin.mjs BASE_URL OPERATOR PASSWORD AGENT AGENT_PASSWORD EXPECTED_JSON [SCREENSHOT_DIR]");
  process.exit(2);
}
const expected = JSON.parse(expectedJson);
const XSS = `<img src=x onerror="window.__xss='faq'">礼品卡<script>window.__xss='script'</script>`;
const RULE_BROKEN = `[[rules]]\nid = "invoice"\nregex = "(发票"\nactions = [{ type = "reply", text = "x" }]\n`;
const RULE_INVOICE = `builtin_rules = true\n\n[[rules]]\nid = "invoice"\npriority = 20\nkeywords = ["发票", "invoice"]\n` +
  `actions = [{ type = "reply", text = "电子发票在订单页下载。E-invoices are on the order page." }]\n`;
const intentLines = (pairs) => pairs.map(([text, intent]) => JSON.stringify({ text, intent })).join("\n");
const INTENTS_TRAIN = intentLines([
  ["where is my order", "order_status"], ["has my parcel shipped yet", "order_status"], ["track my package", "order_status"],
  ["我的订单到哪了", "order_status"], ["快递到哪里了", "order_status"], ["包裹发货了吗", "order_status"],
  ["I want a refund", "refund"], ["how do I get my money back", "refund"], ["refund my order please", "refund"],
  ["我要退款", "refund"], ["怎么申请退款", "refund"], ["钱能退给我吗", "refund"],
  ["what's the weather like", "oos"], ["今天天气怎么样", "oos"],
]);
const INTENTS_TEST = intentLines([
  ["where is my parcel now", "order_status"], ["我的快递到哪了", "order_status"],
  ["can I get a refund", "refund"], ["我想退款", "refund"],
]);
const EVAL = [
  { question: "怎么退货？", expect: "returns" },
  { question: "积分什么时候过期？", answer_contains: ["12"] },
  { question: "Do you rent out drones?", expect: "none" },
].map((x) => JSON.stringify(x)).join("\n");
const FAQ_EXTRA = "id,question,answer,alternates\nvat,可以开增值税专用发票吗？,可以，下单时填写公司抬头和税号即可开具增值税专用发票。,Can I get a VAT invoice?\n";
const XSS_HISTORY = ["x1", "x2"].map((id) => JSON.stringify({ id, messages: [
  { role: "visitor", text: `<img src=x onerror="window.__xss='history'">Do you ship to Mars?` },
  { role: "agent", text: `<script>window.__xss='answer'</script>Not yet, only to Earth addresses.` },
] })).join("\n");
const POLICY = "# 会员积分 Loyalty points\n\n积分在获得之日起 12 个月后过期。Points expire 12 months after the day they are earned.\n";

async function login(page, name, pw) {
  await page.goto(base + "/admin");
  await page.fill("[data-testid=admin-name]", name);
  await page.fill("[data-testid=admin-password]", pw);
  await page.click("[data-testid=admin-login-submit]");
}

const cardNumber = async (page, key) =>
  (await page.locator(`[data-testid=an-${key}] .n`).innerText()).trim();

await runInChromium(async (browser, watch) => {
  // An agent has no admin login.
  const agentPage = await (await browser.newContext({ locale: "en-US" })).newPage();
  watch("agent", agentPage);
  await login(agentPage, agent, agentPassword);
  await agentPage.locator("[data-testid=admin-login-error]", { hasText: "not an admin" }).waitFor();
  check(await agentPage.locator("#app").isHidden(), "the console stays closed for an agent");

  // The operator, in Chinese.
  const ctx = await browser.newContext({ locale: "zh-CN", acceptDownloads: true });
  const page = await ctx.newPage();
  watch("operator", page);
  await login(page, operator, password);
  await page.locator("[data-testid=tab-knowledge]", { hasText: "知识库" }).waitFor();

  // Analytics: exact counts on the page and in the CSV.
  await page.click("[data-testid=tab-analytics]");
  await page.locator("[data-testid=an-conversations]").waitFor();
  check(await cardNumber(page, "conversations") === String(expected.conversations), "conversations");
  check(await cardNumber(page, "visitor-messages") === String(expected.visitor_messages), "visitor messages");
  check(await cardNumber(page, "answered") === String(expected.answered), "answered");
  check(await cardNumber(page, "handoffs") === String(expected.handoffs), "handoffs");
  check((await cardNumber(page, "csat")).startsWith(expected.csat), "csat: " + await cardNumber(page, "csat"));
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("[data-testid=an-csv]")]);
  const csv = readFileSync(await download.path(), "utf8");
  const today = await page.inputValue("[data-testid=an-to]");
  check(csv.startsWith("date,conversations,visitor_messages,answered"), "csv header: " + csv);
  check(csv.includes(`${today},${expected.conversations},${expected.visitor_messages},${expected.answered},`), "csv row for today: " + csv);
  if (shots) await page.screenshot({ path: shots + "/admin-analytics.png", fullPage: true });

  // The top unanswered question becomes an FAQ, and the bot answers with it.
  const gap = page.locator("[data-testid=an-gaps] tr", { hasText: expected.gap });
  await gap.waitFor();
  await gap.locator("button").click();
  await page.locator("[data-testid=ed-question]").waitFor();
  check(await page.inputValue("[data-testid=ed-question]") === expected.gap, "the editor starts from the question");
  await page.fill("[data-testid=ed-answer]", "We only sell tea and tea ware, no electronics.");
  await page.click("[data-testid=ed-save]");
  await page.locator("[data-testid=entries] tr", { hasText: "no electronics" }).waitFor();
  await page.fill("[data-testid=ask-text]", expected.gap);
  await page.click("[data-testid=ask-go]");
  await page.locator("[data-testid=ask-out] .reply", { hasText: "no electronics" }).waitFor();

  // Upload an FAQ file; the bot answers from it.
  await page.setInputFiles("[data-testid=upload-file]", { name: "faq-extra.csv", mimeType: "text/csv", buffer: Buffer.from(FAQ_EXTRA) });
  await page.click("[data-testid=upload-go]");
  await page.locator("[data-testid=jobs] tr[data-status=done]", { hasText: "faq-extra.csv → default" }).waitFor();
  await page.fill("[data-testid=ask-text]", "可以开增值税专用发票吗？");
  await page.click("[data-testid=ask-go]");
  await page.locator("[data-testid=ask-out] .reply", { hasText: "专用发票" }).waitFor();
  check((await page.locator("[data-testid=ask-out]").innerText()).includes("faq-extra.csv"), "the answer cites the uploaded FAQ file");

  // Upload a document; the bot answers from it, with its citation.
  await page.setInputFiles("[data-testid=upload-file]", { name: "policy.md", mimeType: "text/markdown", buffer: Buffer.from(POLICY) });
  await page.click("[data-testid=upload-go]");
  await page.locator("[data-testid=jobs] tr[data-status=done]", { hasText: "policy.md → default" }).waitFor();
  await page.fill("[data-testid=ask-text]", "积分什么时候过期？");
  await page.click("[data-testid=ask-go]");
  await page.locator("[data-testid=ask-out] .reply", { hasText: "12" }).waitFor();
  const asked = await page.locator("[data-testid=ask-out]").innerText();
  check(asked.includes("policy.md"), "the reply cites the document: " + asked);

  // Answer quality: labelled questions measured as a job, rates per language and the curve.
  await page.setInputFiles("[data-testid=eval-file]", { name: "labelled.jsonl", mimeType: "application/jsonl", buffer: Buffer.from(EVAL) });
  await page.click("[data-testid=eval-go]");
  await page.locator("[data-testid=jobs] tr[data-status=done]", { hasText: "labelled.jsonl" }).waitFor();
  const zhRow = page.locator("[data-testid=eval-summary] tr[data-lang=zh]");
  await zhRow.waitFor();
  check((await zhRow.innerText()).includes("100.0%"), "both Chinese questions answered right: " + await zhRow.innerText());
  await page.locator("[data-testid=eval-summary] tr[data-lang=en]").waitFor();
  check(await page.locator("[data-testid=eval-curve] svg polyline").count() === 3, "coverage, precision and out-of-scope curves");

  // Training: past chats imported, FAQs mined into the review queue, one approved; the bot answers
  // with it.
  await page.click("[data-testid=tab-training]");
  await page.setInputFiles("[data-testid=history-file]", new URL("../fixtures/history/chat-history.jsonl", import.meta.url).pathname);
  await page.click("[data-testid=history-go]");
  await page.locator("[data-testid=training-jobs] tr[data-status=done]", { hasText: "chat-history.jsonl" }).waitFor();
  await page.setInputFiles("[data-testid=history-file]", { name: "xss-history.jsonl", mimeType: "application/jsonl", buffer: Buffer.from(XSS_HISTORY) });
  await page.click("[data-testid=history-go]");
  await page.locator("[data-testid=training-jobs] tr[data-status=done]", { hasText: "xss-history.jsonl" }).waitFor();
  await page.click("[data-testid=mine-go]");
  await page.locator("[data-testid=training-jobs] tr[data-status=done]", { hasText: "mine → default" }).waitFor();
  const app = page.locator("[data-testid=proposals] tr", { hasText: "mobile app" });
  await app.waitFor();
  check((await app.innerText()).startsWith("2"), "the proposal shows its support: " + await app.innerText());
  await app.click();
  // The conversations it was mined from are shown beside it.
  const examples = page.locator("[data-testid=pr-examples] .example", { hasText: "chat-history.jsonl/" });
  await examples.first().waitFor();
  check(await examples.count() === 2, "both source conversations: " + await page.locator("[data-testid=pr-examples]").innerText());
  check((await examples.first().innerText()).includes("mobile app"), "an example shows the visitor's question");
  await page.click("[data-testid=pr-approve]");
  // The approval reloads the queue and closes the editor: wait for it before opening the next one.
  await page.locator("[data-testid=proposals] tr", { hasText: "mobile app" }).waitFor({ state: "detached" });
  // Markup in past chats stays text in the queue and in its example conversations.
  const xssProposal = page.locator("[data-testid=proposals] tr", { hasText: "<img src=x" }).first();
  await xssProposal.waitFor();
  await xssProposal.click();
  await page.locator("[data-testid=pr-examples] .example", { hasText: "<img src=x" }).first().waitFor();
  check(await page.locator("[data-testid=proposals] img, [data-testid=pr-examples] img").count() === 0, "no element was made from past chats");
  check(await page.evaluate(() => window.__xss) === undefined, "no payload from past chats ran");
  // Intent models: v1 (trained on the server) is active; v2 is trained here from an uploaded file
  // and evaluated on an uploaded test file; switch to v2, then roll back to v1.
  const active = (v) => page.locator(`[data-testid=intent-versions] tr[data-version=${v}] .badge`).waitFor();
  await active("v1");
  await page.setInputFiles("[data-testid=intent-file]", { name: "intents.jsonl", mimeType: "application/jsonl", buffer: Buffer.from(INTENTS_TRAIN) });
  await page.setInputFiles("[data-testid=intent-test]", { name: "intents-test.jsonl", mimeType: "application/jsonl", buffer: Buffer.from(INTENTS_TEST) });
  await page.check("[data-testid=intent-oos-class]");
  await page.check("[data-testid=intent-also-encoder]");
  await page.click("[data-testid=intent-train]");
  await page.locator("[data-testid=training-jobs] tr[data-status=done]", { hasText: "intents.jsonl" }).waitFor({ timeout: 120000 });
  const v2 = page.locator("[data-testid=intent-versions] tr[data-version=v2]");
  await v2.locator("td.test", { hasText: "intents-test.jsonl" }).waitFor();
  const testCell = await v2.locator("td.test").innerText();
  const v2Encoder = await v2.locator("td.clip").innerText();
  check(/out-of-scope output|含超出范围输出/.test(v2Encoder), "v2 says it has the out-of-scope output: " + v2Encoder);
  const v1Encoder = await page.locator("[data-testid=intent-versions] tr[data-version=v1] td.clip").innerText();
  check(!/out-of-scope output|含超出范围输出/.test(v1Encoder), "v1 has none: " + v1Encoder);
  check(v2Encoder.includes("multilingual-e5-small|all-minilm-l6-v2"), "v2 reads with both encoders: " + v2Encoder);
  check(!v1Encoder.includes("all-minilm-l6-v2"), "v1 reads with one: " + v1Encoder);
  check(/zh \d/.test(testCell) && /en \d/.test(testCell), "the test set is reported per language: " + testCell);
  check(await v2.locator(".badge").count() === 0, "a version trained without 'activate' waits to be activated");
  await page.locator("[data-testid=intent-versions] tr[data-version=v2] button").click();
  await active("v2");
  await page.click("[data-testid=intent-rollback]");
  await active("v1");

  await page.click("[data-testid=tab-knowledge]");
  await page.fill("[data-testid=ask-text]", "Do you have a mobile app?");
  await page.click("[data-testid=ask-go]");
  await page.locator("[data-testid=ask-out] .reply", { hasText: "Google Play" }).waitFor();

  // Markup in an FAQ is stored and shown as text.
  await page.click("[data-testid=entry-new]");
  await page.fill("[data-testid=ed-question]", XSS);
  await page.fill("[data-testid=ed-answer]", XSS);
  await page.click("[data-testid=ed-save]");
  await page.locator("[data-testid=entries] td", { hasText: "<img src=x" }).first().waitFor();
  await page.fill("[data-testid=ask-text]", XSS);
  await page.click("[data-testid=ask-go]");
  await page.locator("[data-testid=ask-out] .reply").waitFor();
  check(await page.evaluate(() => window.__xss) === undefined, "no payload ran");
  check(await page.locator("[data-testid=entries] img, [data-testid=ask-out] img").count() === 0, "no element was made from stored text");
  if (shots) await page.screenshot({ path: shots + "/admin-knowledge.png", fullPage: true });

  // Settings list the sites with their embed snippet and the accounts with roles.
  await page.click("[data-testid=tab-settings]");
  await page.locator("[data-testid=sites] code", { hasText: "data-site-key" }).first().waitFor();
  await page.locator("[data-testid=people] tr", { hasText: operator }).waitFor();
  // A display name with markup is shown as text.
  await page.locator("[data-testid=people] td", { hasText: "<img src=x" }).first().waitFor();

  // A site's settings: business hours (a bad time zone refused inline), retention, attachment
  // limits, and an event webhook added (its secret shown once) and removed.
  await page.locator("[data-testid=ss-open]", { hasText: "全天开放" }).waitFor();
  await page.fill("[data-testid=ss-zone]", "Mars/Olympus");
  await page.fill("[data-testid=ss-weekly]", "mon-sun 00:00-24:00");
  await page.click("[data-testid=ss-hours-save]");
  await page.locator("[data-testid=ss-error]", { hasText: "invalid_input" }).waitFor();
  await page.fill("[data-testid=ss-zone]", "Asia/Shanghai");
  await page.click("[data-testid=ss-hours-save]");
  await page.locator("[data-testid=ss-open]", { hasText: "现在营业中" }).waitFor();
  await page.click("[data-testid=ss-hours-clear]");
  await page.locator("[data-testid=ss-open]", { hasText: "全天开放" }).waitFor();
  await page.fill("[data-testid=ss-days]", "180");
  await page.click("[data-testid=ss-days-save]");
  await page.locator("[data-testid=ss-status]", { hasText: "已保存" }).waitFor();
  check(await page.inputValue("[data-testid=ss-max-mb]") === "10", "the default attachment limit");
  await page.fill("[data-testid=ss-max-mb]", "5");
  await page.fill("[data-testid=ss-kinds]", "image,pdf");
  await page.click("[data-testid=ss-files-save]");
  await page.locator("[data-testid=ss-status]", { hasText: "已保存" }).waitFor();
  await page.fill("[data-testid=ss-hook-url]", "http://127.0.0.1:9/hooks");
  await page.fill("[data-testid=ss-hook-events]", "message.created, conversation.queued");
  await page.click("[data-testid=ss-hook-add]");
  await page.locator("[data-testid=ss-hook-secret] code", { hasText: "whsec_" }).waitFor();
  const hookRow = page.locator("[data-testid=ss-webhooks] tr", { hasText: "127.0.0.1:9/hooks" });
  await hookRow.waitFor();
  check(!(await page.locator("[data-testid=ss-webhooks]").innerText()).includes("whsec_"), "the list never shows secrets");
  // What the console saved is what the server keeps.
  await page.reload();
  await page.click("[data-testid=tab-settings]");
  await hookRow.waitFor();
  check(await page.inputValue("[data-testid=ss-days]") === "180", "retention kept");
  check(await page.inputValue("[data-testid=ss-max-mb]") === "5", "the attachment limit kept");
  check(await page.inputValue("[data-testid=ss-kinds]") === "image,pdf", "the attachment kinds kept");
  await hookRow.locator("button").click();
  await hookRow.waitFor({ state: "detached" });

  // API keys: one issued (shown once) and listed by name, then revoked.
  await page.fill("[data-testid=key-name]", "crm-sync");
  await page.click("[data-testid=key-add]");
  await page.locator("[data-testid=key-new] code", { hasText: "kadm_" }).waitFor();
  const keyRow = page.locator("[data-testid=keys] tr[data-name=crm-sync]");
  await keyRow.waitFor();
  check(!(await page.locator("[data-testid=keys]").innerText()).includes("kadm_"), "the list shows names, not keys");
  await keyRow.locator("button").click();
  await keyRow.waitFor({ state: "detached" });

  // Rules: a starter file; a broken rule is refused inline and nothing is saved; a good one is
  // saved and the bot follows it at once.
  await page.locator("[data-testid=rules-where]", { hasText: "rules.toml" }).waitFor();
  check((await page.inputValue("[data-testid=rules-text]")).includes("builtin_rules = true"), "the starter rules file");
  await page.fill("[data-testid=rules-text]", RULE_BROKEN);
  await page.click("[data-testid=rules-check]");
  await page.locator("[data-testid=rules-error]", { hasText: "regex" }).waitFor();
  await page.click("[data-testid=rules-save]");
  await page.locator("[data-testid=rules-error]", { hasText: "invalid_input" }).waitFor();
  await page.fill("[data-testid=rules-text]", RULE_INVOICE);
  await page.click("[data-testid=rules-check]");
  await page.locator("[data-testid=rules-status]", { hasText: "有效" }).waitFor();
  await page.click("[data-testid=rules-save]");
  await page.locator("[data-testid=rules-status]", { hasText: "已保存" }).waitFor();
  // The LLM backend: none yet; one set here (nothing listens there: the test request says so),
  // then removed. A bad URL is refused inline.
  await page.locator("[data-testid=llm]", { hasText: "未配置" }).waitFor();
  check(await page.locator("[data-testid=llm-test]").isDisabled(), "no backend to test");
  await page.fill("[data-testid=llm-url]", "ftp://models.example");
  await page.fill("[data-testid=llm-model]", "qwen2.5:7b-instruct");
  await page.click("[data-testid=llm-save]");
  await page.locator("[data-testid=llm-error]", { hasText: "invalid_input" }).waitFor();
  await page.fill("[data-testid=llm-url]", "http://127.0.0.1:9/v1");
  await page.fill("[data-testid=llm-key]", "sk-console-secret");
  await page.click("[data-testid=llm-save]");
  await page.locator("[data-testid=llm]", { hasText: "127.0.0.1:9" }).waitFor();
  check(!(await page.locator("[data-testid=llm]").innerText()).includes("sk-console-secret"), "the key is never shown");
  await page.click("[data-testid=llm-test]");
  await page.locator("[data-testid=llm-status]", { hasText: "unreachable" }).waitFor();
  await page.click("[data-testid=llm-clear]");
  await page.locator("[data-testid=llm]", { hasText: "未配置" }).waitFor();
  await page.click("[data-testid=tab-knowledge]");
  await page.fill("[data-testid=ask-text]", "我要开发票");
  await page.click("[data-testid=ask-go]");
  await page.locator("[data-testid=ask-out] .reply", { hasText: "电子发票" }).waitFor();

  // The API reference renders the OpenAPI document.
  await page.goto(base + "/docs/api");
  await page.locator("[data-testid=api-doc] code", { hasText: "/v1/admin/kbs/{kb}/ask" }).waitFor();
  await page.locator("[data-testid=api-doc]", { hasText: "kb_not_found" }).waitFor();

  // English by the browser's language.
  const en = await (await browser.newContext({ locale: "en-US" })).newPage();
  watch("english", en);
  await login(en, operator, password);
  await en.locator("[data-testid=tab-knowledge]", { hasText: "Knowledge" }).waitFor();
});
