// Drives Debian's chromium (no browser download) through the dashboard with playwright-core.
// Called by crates/sympozium-apiserver/tests/browser.rs, which serves the API over a test
// plane and passes what to expect in the environment:
//   DASHBOARD_URL, DASHBOARD_TOKEN, DASHBOARD_NAMESPACE, EXPECT_INSTANCE, EXPECT_RUN,
//   EXPECT_RESULT_TEXT (text of the run's Markdown result), EXPECT_STREAM_RUN and
//   EXPECT_STREAM_TEXT (a running run whose chunks arrive over the WebSocket),
//   EXPECT_PACK and EXPECT_PACK_INSTANCE (a disabled persona pack to activate, and an
//   instance its controller then makes), CHAT_INSTANCE, CHAT_TASK and EXPECT_CHAT_TEXT (a
//   chat message sent from the feed pane and the answer streamed back),
//   WIZARD_INSTANCE, WIZARD_NODE, WIZARD_PROVIDER, WIZARD_KEY, WIZARD_MODEL, WIZARD_SKILL,
//   WIZARD_CHANNEL_SECRET, WIZARD_CRON and WIZARD_TASK (an instance made through the create
//   wizard from an inference server the node probe found on a node, with a model from its
//   live list, a SkillPack, a Telegram channel reading its token from an existing Secret, and
//   a heartbeat), HOOK_INSTANCE (whose lifecycle hooks are edited),
//   SCREENSHOT_DIR, CHROMIUM (default /usr/bin/chromium).
// Exits non-zero with a message on the first expectation that fails.
import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const url = env("DASHBOARD_URL");
const shots = env("SCREENSHOT_DIR");
mkdirSync(shots, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "sympozium-chromium-"));

// A persistent context on a fresh profile directory: Playwright's way of giving chromium
// its own --user-data-dir.
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let failed = false;
try {
  for (const [width, height, tag] of [
    [1280, 900, "desktop"],
    [390, 844, "phone"],
  ]) {
    const page = await browser.newPage();
    await page.setViewportSize({ width, height });
    page.setDefaultTimeout(20000);
    // A script error in the page fails the run with its message (a blank page says nothing).
    page.on("pageerror", (e) => console.error(`page error (${tag}): ${e.message}\n${e.stack ?? ""}`));
    const step = async (name, fn) => {
      try {
        await fn();
        console.log(`ok   ${tag}: ${name}`);
      } catch (e) {
        await page.screenshot({ path: join(shots, `${tag}-FAILED-${name.replace(/\W+/g, "-")}.png`), fullPage: true }).catch(() => {});
        throw new Error(`${tag}: ${name}: ${e.message}`);
      }
    };
    await step("the login page asks for the token", async () => {
      await page.goto(url);
      // Each pass starts logged out (the profile is shared by both passes).
      await page.evaluate(() => localStorage.clear());
      await page.reload();
      await page.getByLabel("Token").waitFor();
    });
    await step("a wrong token is refused", async () => {
      await page.getByLabel("Token").fill("not-the-token");
      await page.getByRole("button", { name: "Log in" }).click();
      await page.getByRole("alert").filter({ hasText: "not accepted" }).waitFor();
    });
    await step("the right token logs in to the dashboard", async () => {
      await page.getByLabel("Token").fill(env("DASHBOARD_TOKEN"));
      await page.getByRole("button", { name: "Log in" }).click();
      await page.getByRole("heading", { name: "Dashboard" }).waitFor();
    });
    await step("the namespace selector offers the test namespace", async () => {
      await page.getByLabel("Namespace").selectOption(env("DASHBOARD_NAMESPACE"));
    });
    await step("the dashboard charts render with data", async () => {
      await page.locator('[data-testid="chart-Runs by status"] rect.bar').first().waitFor();
      await page.locator('[data-testid="chart-Tokens over time (24h)"] rect.bar').first().waitFor();
      const tokens = await page.locator(".tile", { hasText: "Total tokens" }).locator(".tile-value").innerText();
      if (!(Number(tokens) > 0)) throw new Error(`total tokens tile shows ${tokens}`);
      await page.screenshot({ path: join(shots, `${tag}-dashboard.png`), fullPage: true });
    });
    await step("a persona pack is activated through its wizard", async () => {
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Personas" }).click();
      const card = page.getByRole("article", { name: env("EXPECT_PACK") });
      if (tag === "desktop") {
        await card.getByRole("button", { name: "Activate…" }).click();
        const form = card.getByRole("form", { name: `Activate ${env("EXPECT_PACK")}` });
        await form.getByLabel("Provider").selectOption("openai");
        await form.getByLabel("Model").fill("gpt-4o-mini");
        await form.getByLabel("API key").fill("sk-browser-test");
        await form.getByRole("button", { name: "Activate" }).click();
      }
      await card.getByText(/^1 personas · enabled/).waitFor();
      await page.screenshot({ path: join(shots, `${tag}-personas.png`), fullPage: true });
    });
    await step("the pack's instances are listed", async () => {
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Instances" }).click();
      await page.getByRole("link", { name: env("EXPECT_PACK_INSTANCE") }).waitFor({ timeout: 60000 });
    });
    await step("a chat message sent from the feed gets its answer streamed in", async () => {
      await page.getByRole("button", { name: "Feed" }).click();
      const feed = page.getByRole("complementary", { name: "Feed" });
      await feed.getByLabel("Chat with").selectOption(env("CHAT_INSTANCE"));
      const box = feed.getByRole("textbox", { name: "Message" });
      await box.fill(env("CHAT_TASK"));
      // Sent from the keyboard: Enter sends, as in any chat.
      await box.press("Enter");
      await feed.getByText(env("CHAT_TASK")).waitFor();
      const answer = feed.locator('[data-testid^="feed-answer-"]').last();
      await answer.filter({ hasText: env("EXPECT_CHAT_TEXT") }).waitFor();
      if ((await answer.locator("strong").count()) === 0) throw new Error("the streamed Markdown was not rendered");
      await page.screenshot({ path: join(shots, `${tag}-feed.png`), fullPage: true });
      await feed.getByRole("button", { name: "Close the feed" }).click();
    });
    await step("every other page renders", async () => {
      for (const [link, heading] of [
        ["Policies", "Policies"],
        ["Skills", "Skills"],
        ["Schedules", "Schedules"],
        ["MCP servers", "MCP servers"],
        ["Gateway", "Gateway"],
      ]) {
        await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: link, exact: true }).click();
        await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
      }
      await page.getByRole("form", { name: "Gateway configuration" }).waitFor();
      await page.locator('[data-testid="chart-Web endpoint requests"]').waitFor();
      if (tag === "desktop") await page.screenshot({ path: join(shots, `${tag}-gateway.png`), fullPage: true });
    });
    await step("an instance's detail tabs all open", async () => {
      await page.goto(`${url.replace(/\/$/, "")}/instances/${env("EXPECT_INSTANCE")}`);
      for (const t of ["Skills", "Channels", "Memory", "Web endpoint", "Lifecycle", "Spec", "Overview"]) {
        await page.getByRole("tab", { name: t }).click();
        await page.getByRole("tabpanel").waitFor();
      }
    });
    await step("the instance created on the plane is listed", async () => {
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Instances" }).click();
      await page.getByRole("link", { name: env("EXPECT_INSTANCE") }).waitFor();
      await page.screenshot({ path: join(shots, `${tag}-instances.png`), fullPage: true });
    });
    await step("its detail page shows its model and runs", async () => {
      await page.getByRole("link", { name: env("EXPECT_INSTANCE") }).click();
      await page.getByRole("heading", { name: env("EXPECT_INSTANCE") }).waitFor();
      await page.getByRole("tab", { name: "Runs" }).click();
      await page.getByRole("link", { name: env("EXPECT_RUN") }).waitFor();
    });
    await step("the run's Markdown result is rendered (and its HTML is not)", async () => {
      await page.getByRole("link", { name: env("EXPECT_RUN") }).click();
      const result = page.getByTestId("run-result");
      await result.locator("strong", { hasText: env("EXPECT_RESULT_TEXT") }).waitFor();
      await result.locator("li").first().waitFor();
      if ((await result.locator("script, img").count()) !== 0) throw new Error("raw HTML from the result reached the page");
      await page.screenshot({ path: join(shots, `${tag}-run.png`), fullPage: true });
    });
    if (tag === "desktop") {
      await step("an instance is made with the wizard from a node's provider and its live models", async () => {
        await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Instances" }).click();
        await page.getByRole("button", { name: "New instance" }).click();
        const form = page.getByRole("form", { name: "New instance" });
        await form.getByLabel("Name").fill(env("WIZARD_INSTANCE"));
        const found = form.getByRole("group", { name: "Found on your nodes" });
        await found.getByRole("button", { name: `Use ${env("WIZARD_PROVIDER")} on ${env("WIZARD_NODE")}` }).click();
        await form.getByRole("button", { name: "Next" }).click();
        await form.getByLabel("API key (stored in a Secret)").fill(env("WIZARD_KEY"));
        await form.getByRole("button", { name: "Next" }).click();
        // The list comes live from the provider (through the API server), with the key.
        const live = form.getByLabel(/^Live models \(2\)/);
        await live.waitFor();
        await live.selectOption(env("WIZARD_MODEL"));
        await page.screenshot({ path: join(shots, `${tag}-wizard-models.png`), fullPage: true });
        await form.getByRole("button", { name: "Next" }).click();
        // Skills: the cluster's SkillPacks, listed by the API.
        await form.getByRole("group", { name: "SkillPacks" }).getByRole("checkbox", { name: env("WIZARD_SKILL") }).check();
        await form.getByRole("button", { name: "Next" }).click();
        // Channel: a type and the Secret holding its token; Next without one names the field.
        await form.getByLabel("Channel").selectOption("telegram");
        await form.getByRole("button", { name: "Next" }).click();
        await form.getByRole("alert").filter({ hasText: "Token Secret: is required for telegram" }).waitFor();
        await form.getByLabel("Token Secret").fill("Not_A_Name");
        await form.getByRole("alert").filter({ hasText: "Token Secret: use lower-case letters" }).waitFor();
        await form.getByLabel("Token Secret").fill(env("WIZARD_CHANNEL_SECRET"));
        await form.getByRole("button", { name: "Next" }).click();
        // Heartbeat: a bad cron field is named before anything is sent.
        await form.getByLabel("Run a heartbeat").check();
        await form.getByLabel("Schedule (cron)").fill("0 24 * * *");
        await form.getByRole("button", { name: "Next" }).click();
        await form.getByRole("alert").filter({ hasText: "Heartbeat schedule: hour field" }).waitFor();
        await form.getByLabel("Schedule (cron)").fill(env("WIZARD_CRON"));
        await form.getByLabel("Task").fill(env("WIZARD_TASK"));
        await form.getByRole("button", { name: "Next" }).click();
        await form.getByText(`${env("WIZARD_NODE")}`).waitFor();
        await form.getByText(`telegram, token in Secret ${env("WIZARD_CHANNEL_SECRET")}`).waitFor();
        await form.getByText(`${env("WIZARD_CRON")}: ${env("WIZARD_TASK")}`).waitFor();
        await page.screenshot({ path: join(shots, `${tag}-wizard-confirm.png`), fullPage: true });
        await form.getByRole("button", { name: "Create" }).click();
        await page.getByRole("heading", { name: env("WIZARD_INSTANCE") }).waitFor();
      });
      await step("an instance's lifecycle hooks are edited and saved", async () => {
        await page.goto(`${url.replace(/\/$/, "")}/instances/${env("HOOK_INSTANCE")}`);
        await page.getByRole("tab", { name: "Lifecycle" }).click();
        const form = page.getByRole("form", { name: "Lifecycle hooks" });
        await form.getByRole("button", { name: "Add a pre-run hook" }).click();
        const hook = form.getByRole("group", { name: "Pre-run hooks 1" });
        await hook.getByLabel("Name").fill("fetch-context");
        await hook.getByLabel("Image").fill("busybox");
        await hook.getByLabel("Command").fill("sh -c true");
        await hook.getByLabel("Timeout").fill("2m");
        await form.getByRole("button", { name: "Add a rule" }).click();
        await form.getByRole("group", { name: "Rule 1" }).getByLabel("Resources").fill("pods, pods/log");
        await form.getByRole("button", { name: "Save hooks" }).click();
        await form.getByRole("status").filter({ hasText: "Saved." }).waitFor();
        await page.screenshot({ path: join(shots, `${tag}-lifecycle.png`), fullPage: true });
      });
    }
    await step("a running run's answer streams in", async () => {
      await page.goto(`${url.replace(/\/$/, "")}/runs/${env("EXPECT_STREAM_RUN")}`);
      await page.getByTestId("run-result").filter({ hasText: env("EXPECT_STREAM_TEXT") }).waitFor();
      await page.screenshot({ path: join(shots, `${tag}-stream.png`), fullPage: true });
    });
    await page.close();
  }
} catch (e) {
  console.error(`FAILED ${e.message}`);
  failed = true;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
