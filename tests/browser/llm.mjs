// The widget renders an LLM answer as it streams (a scripted OpenAI-compatible backend sends it
// in eight pieces 200 ms apart): a draft bubble grows, then the committed answer, with its
// citation, replaces it.
//
// usage: node llm.mjs BASE_URL

import { check, runInChromium } from "./harness.mjs";

const [base] = process.argv.slice(2);
if (!base) {
  console.error("usage: node llm.mjs BASE_URL");
  process.exit(2);
}
const W = "kefu-chat";
await runInChromium(async (browser, watch) => {
  const ctx = await browser.newContext({ locale: "en-US" });
  const page = await ctx.newPage();
  watch("visitor", page);
  await page.goto(base + "/?lang=en");
  await page.locator(`${W} .bubble`).click();
  await page.locator(`${W} .composer textarea`).fill("How long does delivery take?");
  await page.keyboard.press("Enter");

  // The draft appears and grows while the backend writes.
  const draft = page.locator(`${W} .msg.bot.draft .body`);
  await draft.waitFor();
  const early = await draft.textContent();
  check(early.length > 0, "the draft shows text before the answer is complete");
  const answer = page.locator(`${W} .msg.bot:not(.draft)`).first();
  await answer.waitFor();
  const text = await answer.locator(".body").textContent();
  check(text.startsWith(early.trim().slice(0, 10)), `the answer continues the draft: ${early} / ${text}`);
  check(text.includes("[1]"), `the answer keeps its citation marker: ${text}`);
  await answer.locator(".sources li").first().waitFor();
  check(await page.locator(`${W} .msg.bot.draft`).count() === 0, "the committed answer replaced the draft");
  console.log("PASS");
});
