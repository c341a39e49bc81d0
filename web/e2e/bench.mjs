// Dashboard load time in Debian's chromium (called by the apiserver's bench example):
// a cold load of /dashboard until its charts have drawn, and of /runs until the run table is
// filled (EXPECT_RUN_ROWS rows, default 200: the page's limit), five times each; prints the
// median and the worst.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const url = process.env.DASHBOARD_URL.replace(/\/$/, "");
const profile = mkdtempSync(join(tmpdir(), "sympozium-bench-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
try {
  const page = await browser.newPage();
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(url);
  await page.evaluate(
    ([t, ns]) => {
      localStorage.setItem("sympozium_token", t);
      localStorage.setItem("sympozium_namespace", ns);
    },
    [process.env.DASHBOARD_TOKEN, process.env.DASHBOARD_NAMESPACE],
  );
  const measure = async (path, ready) => {
    const times = [];
    for (let i = 0; i < 5; i++) {
      const t = Date.now();
      await page.goto(`${url}${path}`);
      await ready();
      times.push(Date.now() - t);
    }
    times.sort((a, b) => a - b);
    console.log(`page ${path.padEnd(12)} median ${times[2]} ms, worst ${times[4]} ms`);
  };
  await measure("/dashboard", () => page.locator('[data-testid="chart-Runs by status"] rect.bar').first().waitFor({ timeout: 60000 }));
  const rows = Number(process.env.EXPECT_RUN_ROWS ?? 200);
  await measure("/runs", () => page.locator("tbody tr").nth(rows - 1).waitFor({ timeout: 60000 }));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
