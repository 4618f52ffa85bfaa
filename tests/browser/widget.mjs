// The embeddable web widget in headless Chromium against a real `kefu serve`:
// - on the demo shop (`/`, hostile page CSS added): keyboard open, a cited bot answer, a cited
//   document answer, a quick-reply
//   chip, visitor markup shown as text, a handoff answered from the console in a second browser
//   context (typing, markdown, XSS payloads inert), a message queued while the server restarts
//   (this script prints STOP / START; the Rust driver answers STOPPED / STARTED on stdin), the
//   agent resolves and the visitor rates the conversation in the widget; a photo and a file are
//   sent both ways (thumbnails, download links, a program refused);
// - in Chinese with no agent online: the offline-message form, stored as an offline conversation;
// - on a page of another origin (a page server on SHOP_PORT): the allow-listed site chats, a site that
//   does not allow that origin is refused.
// Prints the widget's transfer sizes as JSON, then PASS.
//
// usage: node widget.mjs BASE_URL AGENT_NAME AGENT_PASSWORD SHOP_PORT [SCREENSHOT_DIR]

import { readFileSync } from "node:fs";
import http from "node:http";
import readline from "node:readline";
import { check, consoleLogin, runInChromium } from "./harness.mjs";

const [base, agentName, agentPassword, shopPort, shots] = process.argv.slice(2);
if (!base || !agentName || !agentPassword || !shopPort) {
  console.error("usage: node widget.mjs BASE_URL AGENT_NAME AGENT_PASSWORD SHOP_PORT [SCREENSHOT_DIR]");
  process.exit(2);
}
const stdin = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

function step(msg) {
  console.error("[widget] " + msg);
}
async function control(word, answer) {
  console.log(word);
  const { value } = await stdin.next();
  check(value && value.trim() === answer, `expected ${answer}, got ${value}`);
}

const W = "kefu-chat";
await runInChromium(async (browser, watch) => {
  // ----- the agent is online in the console -----
  const agentCtx = await browser.newContext();
  const agent = await agentCtx.newPage();
  watch("agent", agent);
  await consoleLogin(agent, base, agentName, agentPassword);

  // ----- the visitor on the demo shop, with hostile page CSS -----
  const visitorCtx = await browser.newContext({ locale: "en-US" });
  const visitor = await visitorCtx.newPage();
  watch("visitor", visitor);
  await visitor.goto(base + "/?lang=en");
  const pageStyle = () => visitor.evaluate(() => {
    const p = document.querySelector("main p");
    const s = getComputedStyle(p);
    return `${s.color}|${s.marginTop}|${s.fontFamily}|${s.backgroundColor}`;
  });
  await visitor.locator(`${W} .bubble`).waitFor();
  const before = await pageStyle();
  await visitor.addStyleTag({
    content: "* { color: rgb(255, 0, 0) !important; font-size: 31px !important; } " +
      "button { display: none !important; } div { border: 7px solid rgb(0, 255, 0) !important; }",
  });
  check(await pageStyle() !== before, "the hostile CSS applies to the page itself");

  // Keyboard: focus the bubble, Enter opens the panel and focuses the input.
  const bubble = visitor.locator(`${W} .bubble`);
  check(await bubble.isVisible(), "page CSS (button { display: none }) does not hide the bubble");
  check(await bubble.getAttribute("aria-label") === "Chat with us", "English UI on an English page");
  await bubble.focus();
  await visitor.keyboard.press("Enter");
  await visitor.locator(`${W} .panel`).waitFor();
  check(await bubble.getAttribute("aria-expanded") === "true", "aria-expanded follows the panel");
  check(await visitor.evaluate(() => document.querySelector("kefu-chat").shadowRoot.activeElement?.tagName) === "TEXTAREA",
    "opening moves focus to the message box");

  // A knowledge-base question: a cited answer.
  await visitor.keyboard.type("How long does delivery take?");
  await visitor.keyboard.press("Enter");
  const firstBot = visitor.locator(`${W} .msg.bot`).first();
  await firstBot.waitFor();
  await firstBot.locator(".sources li").first().waitFor();
  const msgStyle = await firstBot.evaluate((e) => {
    const s = getComputedStyle(e.querySelector(".body"));
    return { color: s.color, size: s.fontSize, border: getComputedStyle(e).borderTopWidth };
  });
  check(msgStyle.color !== "rgb(255, 0, 0)" && msgStyle.size !== "31px" && msgStyle.border !== "7px",
    "page CSS does not leak into the widget: " + JSON.stringify(msgStyle));
  step("bot answered: " + (await firstBot.innerText()).replace(/\n/g, " / "));

  // A question only the policy document answers: the sentence that answers, cited by heading.
  await visitor.keyboard.type("When do my loyalty points expire?");
  await visitor.keyboard.press("Enter");
  const docAnswer = visitor.locator(`${W} .msg.bot`, { hasText: "end of the following calendar year" });
  await docAnswer.waitFor();
  const docText = await docAnswer.innerText();
  check(docText.includes("Loyalty points"), "the document answer cites its heading: " + docText);
  check(!/[\u4e00-\u9fff]/.test(docText), "an English question gets the English sentence only: " + docText);
  step("document answer: " + docText.replace(/\n/g, " / "));

  // An ambiguous question: quick-reply chips; tapping one asks it.
  await visitor.keyboard.type("gift");
  await visitor.keyboard.press("Enter");
  const chip = visitor.locator(`${W} .chips button`).first();
  await chip.waitFor();
  const botsBeforeChip = await visitor.locator(`${W} .msg.bot`).count();
  const chipText = await chip.innerText();
  await chip.click();
  await visitor.locator(`${W} .msg.bot`).nth(botsBeforeChip).waitFor();
  check(await visitor.locator(`${W} .msg.visitor:not(.pending)`, { hasText: chipText }).count() >= 1, "the chip's text was sent");
  step(`quick reply "${chipText}" asked`);

  // Visitor markup stays text.
  await visitor.fill(`${W} .composer textarea`, `<img src=x onerror="window.__xss='visitor'"> **not bold**`);
  await visitor.press(`${W} .composer textarea`, "Enter");
  await visitor.locator(`${W} .msg.visitor:not(.pending)`, { hasText: "<img src=x" }).waitFor();

  // ----- handoff, answered from the console -----
  await visitor.click(`${W} .human`);
  await visitor.locator(`${W} .status`, { hasText: "Waiting for an agent" }).waitFor();
  check(await visitor.locator(`${W} .offline`).isHidden(), "no offline form while an agent is online");
  const queued = agent.locator("[data-testid=queue] [data-testid=conv]").first();
  await queued.waitFor();
  await queued.click();
  await agent.click("[data-testid=claim]");
  await visitor.locator(`${W} .status`, { hasText: "is helping you" }).waitFor();
  await agent.waitForSelector("[data-testid=send]:not([disabled])");
  await agent.locator("[data-testid=reply]").pressSequentially("Hi", { delay: 20 });
  await visitor.locator(`${W} .typing`).waitFor({ state: "visible" });
  await agent.fill("[data-testid=reply]",
    "**Hello**, I'm Wang 王小二.\n<script>window.__xss='script'</script><img src=x onerror=\"window.__xss='img'\">\n" +
    "[bad link](javascript:window.__xss='link') and [our FAQ](https://shop.example/faq)");
  await agent.press("[data-testid=reply]", "Enter");
  const agentMsg = visitor.locator(`${W} .msg.agent`).first();
  await agentMsg.waitFor();
  check(await agentMsg.locator("strong", { hasText: "Hello" }).count() === 1, "agent markdown renders");
  check((await agentMsg.innerText()).includes("<script>"), "agent HTML is shown as text");
  check(await agentMsg.locator("a").count() === 1, "only the safe link is a link");
  check(await agentMsg.locator("a").getAttribute("href") === "https://shop.example/faq", "https link kept");
  check(await agentMsg.locator("a").getAttribute("rel") === "noopener noreferrer nofollow", "links are rel=noopener");
  await agentMsg.getByText("bad link").click();
  step("agent reply rendered safely");

  // ----- files both ways: the visitor's photo (a thumbnail in both views), the agent's text
  // file (a download link), and a program refused with the reason shown -----
  const photo = readFileSync(new URL("../fixtures/attachments/parcel.png", import.meta.url));
  await visitor.fill(`${W} .composer textarea`, "The parcel arrived broken 包裹破损");
  await visitor.setInputFiles(`${W} .composer input[type=file]`, { name: "parcel.png", mimeType: "image/png", buffer: photo });
  const sentPhoto = visitor.locator(`${W} .msg.visitor:not(.pending) .files img[alt="parcel.png"]`);
  await sentPhoto.waitFor();
  await visitor.waitForFunction((w) => {
    const img = document.querySelector(w).shadowRoot.querySelector(".msg.visitor .files img");
    return img && img.complete && img.naturalWidth === 320;
  }, W);
  check(await visitor.locator(`${W} .msg.visitor`, { hasText: "包裹破损" }).count() === 1, "the text went with the photo");
  const agentPhoto = agent.locator("[data-testid=transcript] .files img[alt='parcel.png']");
  await agentPhoto.waitFor();
  await agent.waitForFunction(() => {
    const img = document.querySelector("[data-testid=transcript] .files img");
    return img && img.complete && img.naturalHeight === 200;
  });
  const full = await (await fetch(new URL(await agentPhoto.locator("xpath=..").getAttribute("href"), base))).arrayBuffer();
  check(Buffer.from(full).equals(photo), "the link serves the photo as sent");
  await agent.setInputFiles("[data-testid=file]", { name: "退货地址.txt", mimeType: "text/plain", buffer: Buffer.from("上海市浦东新区 1 号\nReturn to: 1 Pudong Rd, Shanghai\n") });
  const fileLink = visitor.locator(`${W} .msg.agent .files a[download="退货地址.txt"]`);
  await fileLink.waitFor();
  const text = await (await fetch(new URL(await fileLink.getAttribute("href"), base))).text();
  check(text.includes("Return to: 1 Pudong Rd"), "the agent's file downloads");
  await visitor.setInputFiles(`${W} .composer input[type=file]`, { name: "setup.exe", mimeType: "application/octet-stream", buffer: Buffer.from("MZ\x90\x00\x03\x00\x00\x00\x04\x00", "latin1") });
  await visitor.locator(`${W} .msg.system`, { hasText: "setup.exe was not sent" }).waitFor();
  step("attachments sent, shown and refused");

  // ----- the server restarts; a message typed meanwhile is queued and delivered once -----
  await control("STOP", "STOPPED");
  await visitor.locator(`${W} .banner`).waitFor({ state: "visible" });
  const offlineText = "Sent while the server restarts / 重启期间发送";
  await visitor.fill(`${W} .composer textarea`, offlineText);
  await visitor.press(`${W} .composer textarea`, "Enter");
  await visitor.locator(`${W} .msg.visitor.pending`, { hasText: offlineText }).waitFor();
  await control("START", "STARTED");
  await visitor.locator(`${W} .msg.visitor:not(.pending)`, { hasText: offlineText }).waitFor();
  await visitor.locator(`${W} .banner`).waitFor({ state: "hidden" });
  check(await visitor.locator(`${W} .msg.visitor`, { hasText: offlineText }).count() === 1, "delivered exactly once");
  await agent.locator("[data-testid=transcript] [data-testid=msg-visitor]", { hasText: offlineText }).waitFor();
  const seqs = await visitor.locator(`${W} .msg[data-seq]`).evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
  check(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), "messages in seq order: " + seqs);
  step("queued message delivered after the restart");

  // ----- the agent resolves; the widget asks for a rating, the agent's transcript shows it -----
  await agent.click("[data-testid=resolve]");
  const rating = visitor.locator(`${W} form.rating`);
  await rating.waitFor({ state: "visible" });
  check(await rating.locator("button[type=submit]").isDisabled(), "no rating is sent before a score is chosen");
  await rating.locator("button[data-score='4']").click();
  check(await rating.locator(".stars button[aria-pressed=true]").count() === 4, "four stars lit");
  await rating.locator("textarea").fill("Quick and friendly 很快");
  await rating.locator("button[type=submit]").click();
  await rating.locator("[role=status]", { hasText: "Thanks for your rating" }).waitFor();
  const conversationId = await visitor.evaluate(() => {
    for (const k of Object.keys(localStorage)) if (k.startsWith("kefu:")) return JSON.parse(localStorage.getItem(k)).conversation_id;
  });
  const agentLogin = await (await fetch(base + "/v1/agent/login", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: agentName, password: agentPassword }),
  })).json();
  const transcript = await (await fetch(base + "/v1/agent/conversations/" + conversationId, {
    headers: { authorization: "Bearer " + agentLogin.token },
  })).json();
  check(transcript.rating && transcript.rating.score === 4 && transcript.rating.comment === "Quick and friendly 很快",
    "the rating is stored with the conversation: " + JSON.stringify(transcript.rating));
  await agent.locator("[data-testid=rating]", { hasText: "4/5" }).waitFor();
  step("rated 4/5 after the agent resolved");

  // Escape closes the panel and returns focus to the bubble.
  await visitor.locator(`${W} .composer textarea`).focus();
  await visitor.keyboard.press("Escape");
  check(await visitor.locator(`${W} .panel`).isHidden(), "Escape closes the panel");

  for (const [name, page] of [["visitor", visitor], ["agent", agent]]) {
    check(await page.evaluate(() => window.__xss === undefined), `${name}: no injected script ran`);
  }
  // The only image is the photo's thumbnail, which the widget made itself.
  const injected = await visitor.evaluate(() =>
    document.querySelector("kefu-chat").shadowRoot.querySelectorAll(".log .body img, .log script, .log iframe, .log img:not(.files img)").length);
  check(injected === 0, `no injected elements in the widget (${injected})`);

  // Transfer sizes (gzip on the wire) of the widget's files.
  const sizes = await visitor.evaluate(() => Object.fromEntries(performance.getEntriesByType("resource")
    .filter((e) => /widget/.test(e.name)).map((e) => [new URL(e.name).pathname, e.transferSize])));
  const total = Object.values(sizes).reduce((a, b) => a + b, 0);
  console.log(JSON.stringify({ widget_transfer_bytes: sizes, total }));
  if (shots) await visitor.screenshot({ path: shots + "/widget.png" });

  // ----- Chinese page, no agent online: the offline-message form -----
  await agentCtx.close();
  const zhCtx = await browser.newContext({ locale: "zh-CN" });
  const zh = await zhCtx.newPage();
  watch("zh visitor", zh);
  await zh.goto(base + "/?lang=zh");
  await zh.locator(`${W} .bubble[aria-label='在线客服']`).click();
  await zh.locator(`${W} .human`, { hasText: "转人工" }).click();
  const form = zh.locator(`${W} form.offline`);
  await form.waitFor({ state: "visible" });
  await form.locator("input").fill("li@example.com");
  await form.locator("textarea").fill("我想批发 100 套茶具，请联系我。");
  await form.locator("button[type=submit]").click();
  await zh.locator(`${W} form.offline [role=status]`).waitFor();
  await zh.locator(`${W} .msg.visitor:not(.pending)`, { hasText: "批发" }).waitFor();
  const login = await (await fetch(base + "/v1/agent/login", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: agentName, password: agentPassword }),
  })).json();
  const list = await (await fetch(base + "/v1/agent/conversations?state=queued", {
    headers: { authorization: "Bearer " + login.token },
  })).json();
  const convs = list.conversations || list;
  check(convs.some((c) => c.offline && (c.last_text || "").includes("批发")),
    "the offline message is queued as an offline conversation: " + JSON.stringify(convs));
  step("offline message stored");

  // ----- another origin (a real page server on another port): allowed for site `shop`,
  // refused for `demo` (same-origin only) -----
  const pages = http.createServer((req, res) => {
    const site = req.url.startsWith("/refused") ? "demo" : "shop";
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><html lang="en"><body><h1>Third-party shop</h1>` +
      `<script src="${base}/widget.js" data-site-key="${site}" async></script></body></html>`);
  });
  await new Promise((ok) => pages.listen(Number(shopPort), "127.0.0.1", ok));
  const shopOrigin = `http://127.0.0.1:${shopPort}`;
  const shopCtx = await browser.newContext();
  const shop = await shopCtx.newPage();
  watch("cross-origin", shop);
  shop.on("console", (m) => { if (m.type() === "error") step("cross-origin console: " + m.text()); });
  await shop.goto(shopOrigin + "/");
  await shop.locator(`${W} .bubble`).click();
  await shop.fill(`${W} .composer textarea`, "支持哪些付款方式？");
  await shop.press(`${W} .composer textarea`, "Enter");
  await shop.locator(`${W} .msg.bot .sources li`).first().waitFor();
  step("a page on an allow-listed origin chats");
  const other = await shopCtx.newPage();
  await other.goto(shopOrigin + "/refused");
  await other.locator(`${W} .bubble`).click();
  await other.locator(`${W} .banner`, { hasText: "Cannot reach" }).waitFor();
  step("a page on another origin is refused for a same-origin site");
  pages.close();
});
console.log("PASS");
process.exit(0);
