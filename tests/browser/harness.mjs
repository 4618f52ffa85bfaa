// Shared by the browser tests: Debian's Chromium (never a downloaded browser) driven by
// playwright-core, a check helper, and one place that collects failures and sets the exit code.

import { chromium } from "playwright-core";

export const TIMEOUT = 60_000;

export function check(cond, message) {
  if (!cond) throw new Error("check failed: " + message);
}

/** Runs `body(browser, watch)` in headless Chromium; exits 1 with every failure collected. */
export async function runInChromium(body) {
  const browser = await chromium.launch({
    executablePath: process.env.KEFU_CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  const failures = [];
  // Page errors and dialogs (an alert from an XSS payload) count as failures.
  const watch = (name, page) => {
    page.setDefaultTimeout(TIMEOUT);
    page.on("pageerror", (e) => failures.push(`${name} page error: ${e.message}`));
    page.on("dialog", (d) => { failures.push(`${name} dialog opened: ${d.message()}`); d.dismiss(); });
  };
  try {
    await body(browser, watch);
  } catch (e) {
    failures.push(e.stack || String(e));
  } finally {
    await browser.close();
  }
  if (failures.length) {
    console.error(failures.join("\n"));
    process.exit(1);
  }
}

/** Logs `page` into the agent console at `base` and waits until it is online. */
export async function consoleLogin(page, base, name, password) {
  await page.goto(base + "/console");
  await page.fill("[data-testid=login-name]", name);
  await page.fill("[data-testid=login-password]", password);
  await page.click("[data-testid=login-submit]");
  await page.waitForSelector("[data-testid=conn]:has-text('online')");
}
