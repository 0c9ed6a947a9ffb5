// Drives the Activity page in headless Chromium (Debian's /usr/bin/chromium, through
// playwright-core): signs in with the management key, changes the grouping and sees the table
// change, filters by end user, downloads the CSV and the PDF, and checks their totals against
// the JSON the page showed. Screenshots go to SWITCHYARD_SCREENSHOTS when it is set.
//
// Environment: SWITCHYARD_CONSOLE_URL, SWITCHYARD_MANAGEMENT_KEY, SWITCHYARD_API (the control
// plane's base URL, for the reference numbers). Prints one line per check; exits non-zero on
// the first failure.

import { readFile } from "node:fs/promises";
import { chromium } from "playwright-core";

const url = process.env.SWITCHYARD_CONSOLE_URL;
const key = process.env.SWITCHYARD_MANAGEMENT_KEY;
const api = process.env.SWITCHYARD_API;
const shots = process.env.SWITCHYARD_SCREENSHOTS;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

function check(condition, what) {
  if (!condition) throw new Error(`FAIL ${what}`);
  console.log(`PASS ${what}`);
}

async function reference(query) {
  const response = await fetch(`${api}/api/v1/activity/export?${query}`, {
    headers: { Authorization: `Bearer ${key}` },
  });
  return (await response.json()).data;
}

const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));

  await page.goto(url);
  check(await page.isVisible("#sign-in"), "the page asks to sign in");
  await page.fill("#key", "sk-sy-v1-not-a-key");
  await page.click("#sign-in-form button");
  await page.waitForSelector("#sign-in-error:not([hidden])");
  check(await page.isVisible("#sign-in"), "a wrong key is refused");
  errors.length = 0; // the refused key's 401, expected

  await page.fill("#key", key);
  await page.click("#sign-in-form button");
  await page.waitForSelector("body[data-loaded^='model:']");
  check(await page.isHidden("#sign-in"), "signed in with the management key");
  check(
    (await page.evaluate(() => Object.keys(sessionStorage))).length === 1 &&
      (await page.evaluate(() => Object.keys(localStorage))).length === 0,
    "the key is kept in the tab's session only",
  );
  check((await page.textContent("#who")) === "Admin", "an admin sees the admin filters");

  const byModel = await reference("format=json&group_by=model&" + new URLSearchParams(await page.evaluate(() => {
    const d = (x) => x.toISOString().slice(0, 10);
    return { start: d(new Date(Date.now() - 29 * 86400000)), end: d(new Date()) };
  })));
  const models = await page.$$eval("#table tbody tr td:first-child", (tds) => tds.map((t) => t.textContent));
  check(
    JSON.stringify(models) === JSON.stringify(byModel.lines.map((l) => l.label)),
    `the table lists the models (${models.join(", ")})`,
  );
  const bars = await page.$$eval("#chart rect.bar", (rs) => rs.filter((r) => Number(r.getAttribute("height")) > 0).length);
  check(bars >= 1, `the chart draws the spend (${bars} day(s) with spend)`);
  check(
    (await page.textContent("#total-requests")) === new Intl.NumberFormat("en-US").format(byModel.total.requests),
    "the totals match the API's",
  );
  if (shots) await page.screenshot({ path: `${shots}/console-activity-by-model.png`, fullPage: true });

  await page.selectOption("#group", "user");
  await page.waitForSelector("body[data-loaded^='user:']");
  const users = await page.$$eval("#table tbody tr td:first-child", (tds) => tds.map((t) => t.textContent));
  check((await page.textContent("#group-heading")) === "End user", "the heading follows the grouping");
  check(
    users.includes("alice") && users.includes("bob") && JSON.stringify(users) !== JSON.stringify(models),
    `grouping by end user changes the table (${users.join(", ")})`,
  );

  await page.fill("#filter-user", "alice");
  await page.dispatchEvent("#filter-user", "change");
  await page.waitForFunction(() => document.querySelectorAll("#table tbody tr").length === 1);
  check(
    (await page.textContent("#table tbody tr td:first-child")) === "alice",
    "filtering by end user narrows the table",
  );
  await page.fill("#filter-user", "");
  await page.dispatchEvent("#filter-user", "change");
  await page.waitForFunction(() => document.querySelectorAll("#table tbody tr").length > 1);

  const [csvDownload] = await Promise.all([page.waitForEvent("download"), page.click("#download-csv")]);
  const csv = await readFile(await csvDownload.path(), "utf8");
  const total = csv.trim().split("\n").at(-1).split(",");
  const byUser = await reference(`format=json&group_by=user&start=${byModel.start}&end=${byModel.end}`);
  check(
    csvDownload.suggestedFilename().endsWith("-by-user.csv") && total[0] === "total" && total[7] === byUser.total.usage,
    `the CSV downloads with the page's total (${total[7]} USD)`,
  );

  const [pdfDownload] = await Promise.all([page.waitForEvent("download"), page.click("#download-pdf")]);
  const pdf = await readFile(await pdfDownload.path());
  check(
    pdfDownload.suggestedFilename().endsWith(".pdf") && pdf.subarray(0, 5).toString() === "%PDF-" && pdf.length > 1000,
    `the PDF downloads (${pdf.length} bytes)`,
  );
  if (shots) await page.screenshot({ path: `${shots}/console-activity-by-user.png`, fullPage: true });

  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  check(!overflow, "the page fits a phone's width");
  if (shots) await page.screenshot({ path: `${shots}/console-activity-phone.png`, fullPage: true });

  await page.click("#sign-out");
  check(
    (await page.isVisible("#sign-in")) && (await page.evaluate(() => sessionStorage.length)) === 0,
    "signing out forgets the key",
  );
  check(errors.length === 0, `no script errors (${errors.join("; ")})`);
  console.log("console: all passed");
} finally {
  await browser.close();
}
