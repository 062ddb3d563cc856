// Makes the manifest's images, committed in public/:
// - the maskable icons (icons/maskable-*.png) from icon-512.png: the same
//   picture shrunk into the safe zone (the middle 80 % circle that every
//   mask keeps) on a full-bleed background;
// - with a running server's URL, the install dialog's screenshots of its
//   Nodes page (screenshots/nodes-{narrow,wide}.png).
// Run when the icon or the page changes: `node e2e/make-icons.mjs [url]`.
import { mkdirSync, readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const publicDir = join(dirname(fileURLToPath(import.meta.url)), "..", "public");
const icons = join(publicDir, "icons");
const source = readFileSync(join(icons, "icon-512.png")).toString("base64");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu"],
});
try {
  for (const size of [192, 512]) {
    const page = await browser.newPage({ viewport: { width: size, height: size } });
    const inner = Math.round(size * 0.78);
    await page.setContent(
      `<body style="margin:0;width:${size}px;height:${size}px;background:#0f172a;display:grid;place-items:center">` +
        `<img src="data:image/png;base64,${source}" width="${inner}" height="${inner}"></body>`,
    );
    await page.locator("img").evaluate((img) => img.decode());
    await page.screenshot({ path: join(icons, `maskable-${size}.png`) });
    await page.close();
  }
  const url = process.argv[2];
  if (url) {
    mkdirSync(join(publicDir, "screenshots"), { recursive: true });
    for (const [name, viewport, deviceScaleFactor] of [
      ["narrow", { width: 360, height: 740 }, 2],
      ["wide", { width: 1280, height: 800 }, 1],
    ]) {
      const page = await browser.newPage({ viewport, deviceScaleFactor });
      await page.goto(url);
      await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
      await page.locator("tr.node-row").first().waitFor({ timeout: 60_000 });
      await page.screenshot({ path: join(publicDir, "screenshots", `nodes-${name}.png`) });
      await page.close();
    }
  }
} finally {
  await browser.close();
}
