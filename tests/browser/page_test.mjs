// Opens googlenet serve's page in headless Chromium, uploads one image through the page's file
// input, waits for its result, and prints {model, file, top1, bars} as JSON. With a third
// argument, saves a screenshot of the page there.
//
// node page_test.mjs URL IMAGE [SCREENSHOT]   (CHROMIUM: the browser, default /usr/bin/chromium)
import { chromium } from "playwright-core";

const [url, image, screenshot] = process.argv.slice(2);
if (!url || !image) {
  console.error("usage: node page_test.mjs URL IMAGE [SCREENSHOT]");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 960, height: 540 } });
  page.setDefaultTimeout(120_000);
  await page.goto(url);
  const model = page.locator("#model");
  await model.filter({ hasText: "GoogLeNet" }).waitFor();
  await page.setInputFiles("#files", image);
  const result = page.locator(".result").first();
  await result.locator(".bar-row").first().waitFor();
  const output = {
    model: await model.textContent(),
    file: await result.locator(".file").textContent(),
    top1: await result.locator(".bar-row .name").first().textContent(),
    bars: await result.locator(".bar-row").count(),
  };
  if (screenshot) await page.screenshot({ path: screenshot });
  console.log(JSON.stringify(output));
} finally {
  await browser.close();
}
