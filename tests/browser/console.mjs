// Headless Chromium against a real `kefu serve`: a visitor on /demo and an agent on /console.
// The visitor gets a cited bot answer, asks for a human, the agent claims the conversation, both
// exchange messages (with typing), the agent hands back and the bot answers again. A newly queued
// conversation alerts the agent (tone, desktop notification in the background). XSS payloads
// in messages must render as inert text on both pages.
//
// usage: node console.mjs BASE_URL AGENT_NAME AGENT_PASSWORD [SCREENSHOT_DIR]

import { check, consoleLogin, runInChromium } from "./harness.mjs";

const [base, agentName, agentPassword, shots] = process.argv.slice(2);
if (!base || !agentName || !agentPassword) {
  console.error("usage: node console.mjs BASE_URL AGENT_NAME AGENT_PASSWORD [SCREENSHOT_DIR]");
  process.exit(2);
}
const XSS_VISITOR = `<img src=x onerror="window.__xss='visitor'"><script>window.__xss='script'</script>`;
const XSS_AGENT = `<b onmouseover="window.__xss='agent'">bold?</b><iframe src="javascript:window.__xss='iframe'"></iframe>`;

await runInChromium(async (browser, watch) => {
  const visitorCtx = await browser.newContext();
  const agentCtx = await browser.newContext();
  const visitor = await visitorCtx.newPage();
  const agent = await agentCtx.newPage();
  watch("visitor", visitor);
  watch("agent", agent);

  // Desktop notifications are recorded (as the browser would show them) and the tab can pretend
  // to be in the background.
  await agent.addInitScript(() => {
    window.__notes = [];
    window.Notification = class {
      constructor(title, options) { window.__notes.push({ title, body: options && options.body }); }
      static get permission() { return "granted"; }
      static requestPermission() { return Promise.resolve("granted"); }
    };
    Object.defineProperty(document, "hidden", { configurable: true, get: () => window.__background === true });
  });
  // Agent logs in first so the handoff finds someone online.
  await consoleLogin(agent, base, agentName, agentPassword);
  await agent.waitForSelector(`[data-testid=online]:has-text('(')`);

  // The visitor asks a knowledge-base question and gets a cited answer.
  await visitor.goto(base + "/demo");
  await visitor.waitForSelector("[data-testid=status][data-state=bot]");
  await visitor.fill("[data-testid=input]", "下单后多久发货？");
  await visitor.press("[data-testid=input]", "Enter");
  const answer = visitor.locator("[data-testid=msg-bot]").first();
  await answer.waitFor();
  const answerText = await answer.innerText();
  check(answerText.includes("faq-zh.csv"), "the bot answer cites its source: " + answerText);

  // Markup from the visitor stays text.
  await visitor.fill("[data-testid=input]", XSS_VISITOR);
  await visitor.press("[data-testid=input]", "Enter");
  await visitor.locator("[data-testid=msg-visitor]", { hasText: "<img src=x" }).waitFor();
  await visitor.locator("[data-testid=msg-bot]").nth(1).waitFor();

  // Ask for a human while the agent's tab is in the background: a tone and a desktop notification.
  await agent.evaluate(() => { window.__background = true; });
  const alertsBefore = await agent.evaluate(() => window.__kefuQueuedAlerts || 0);
  await visitor.click("[data-testid=human]");
  await visitor.waitForSelector("[data-testid=status][data-state=queued]");
  await agent.waitForFunction((n) => (window.__kefuQueuedAlerts || 0) > n, alertsBefore);
  const notes = await agent.evaluate(() => window.__notes);
  check(notes.length === 1 && notes[0].title.includes("New conversation waiting"),
    "one desktop notification: " + JSON.stringify(notes));
  check(!notes[0].body.includes("v_"), "the visitor is named by a readable label, not an id: " + notes[0].body);
  await agent.evaluate(() => { window.__background = false; });

  // The agent sees it queued, opens it, sees the transcript with route traces, and claims it.
  const queued = agent.locator("[data-testid=queue] [data-testid=conv]").first();
  await queued.waitFor();
  await queued.click();
  await agent.locator("[data-testid=transcript] [data-testid=msg-visitor]", { hasText: "<img src=x" }).waitFor();
  check(await agent.locator("[data-testid=transcript] [data-testid=trace]").count() >= 2, "route traces are shown");
  await agent.locator("[data-testid=trace] summary").first().click();
  const traceText = await agent.locator("[data-testid=trace]").first().innerText();
  check(traceText.includes("answer") && traceText.includes("faq-zh.csv"), "the trace shows the decision and hits: " + traceText);
  await agent.locator("[data-testid=suggestion]").first().waitFor();
  await agent.click("[data-testid=claim]");
  await visitor.waitForSelector("[data-testid=status][data-state=agent]");
  await agent.waitForSelector("[data-testid=send]:not([disabled])");

  // Typing indicator, then the agent's reply (with markup) reaches the visitor as text.
  await agent.locator("[data-testid=reply]").pressSequentially("您好", { delay: 20 });
  await visitor.waitForSelector("[data-testid=typing]:has-text('输入')");
  await agent.fill("[data-testid=reply]", "您好，我是人工客服。" + XSS_AGENT);
  await agent.press("[data-testid=reply]", "Enter");
  const agentMsg = visitor.locator("[data-testid=msg-agent]").first();
  await agentMsg.waitFor();
  check((await agentMsg.innerText()).includes("<b onmouseover"), "agent markup is shown as text");
  await agentMsg.hover();

  // The visitor replies; the agent sees it live.
  await visitor.fill("[data-testid=input]", "好的，谢谢！Thanks");
  await visitor.press("[data-testid=input]", "Enter");
  await agent.locator("[data-testid=transcript] [data-testid=msg-visitor]", { hasText: "谢谢" }).waitFor();

  // Hand back: the bot answers again.
  await agent.click("[data-testid=handback]");
  await visitor.waitForSelector("[data-testid=status][data-state=bot]");
  const botsBefore = await visitor.locator("[data-testid=msg-bot]").count();
  await visitor.fill("[data-testid=input]", "支持哪些付款方式？");
  await visitor.press("[data-testid=input]", "Enter");
  await visitor.locator("[data-testid=msg-bot]").nth(botsBefore).waitFor();
  const again = await visitor.locator("[data-testid=msg-bot]").nth(botsBefore).innerText();
  check(again.includes("来源") || again.includes("Source"), "the bot answers with a source after hand back: " + again);

  // No payload ever ran, and no injected elements exist on either page.
  for (const [name, page] of [["visitor", visitor], ["agent", agent]]) {
    check(await page.evaluate(() => window.__xss === undefined), `${name}: no injected script ran`);
    const injected = await page.evaluate(() => document.querySelectorAll("#log img, #log script, #log iframe, #log b, #transcript img, #transcript script, #transcript iframe, #transcript b").length);
    check(injected === 0, `${name}: no injected elements (${injected})`);
  }
  if (shots) {
    await visitor.screenshot({ path: shots + "/visitor.png" });
    await agent.screenshot({ path: shots + "/console.png" });
  }
});
console.log("browser console test passed");
