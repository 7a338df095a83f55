/**
 * The two examples in headless Chromium, as a user meets them: log in on the Express app, be
 * logged in on the axum app (another port of the same host, so the same cookie), sign out of
 * every device there, and be logged out of the Express app. Needs Debian's chromium and
 * chromium-driver (`scripts/browser-setup`, which ./scripts/test runs): without them it fails.
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";

import { type Examples, startExamples } from "./examples.js";
import { REPO, stopProcess } from "./server.js";

/** The W3C WebDriver key of an element reference. */
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";

let examples: Examples;
let driver: ChildProcess;
let driverUrl: string;
let profile: string;

before(async () => {
  examples = await startExamples();
  const port = await freePort();
  driver = spawn("chromedriver", [`--port=${port}`], { stdio: "ignore" });
  driver.once("error", (e) => assert.fail(`cannot start chromedriver (${e.message}): run scripts/browser-setup`));
  driverUrl = `http://127.0.0.1:${port}`;
  for (let waited = 0; !(await fetch(`${driverUrl}/status`).then((r) => r.ok, () => false)); waited += 50) {
    assert.ok(waited < 30_000, "chromedriver did not listen within 30 s");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  profile = mkdtempSync(join(tmpdir(), "sessanger-chromium-"));
});

after(async () => {
  await stopProcess(driver);
  await examples.stop();
  rmSync(profile, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const probe = createServer().listen(0, "127.0.0.1");
  await new Promise((resolve) => probe.once("listening", resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** One Chromium, driven over the W3C WebDriver protocol: what the test needs of it. */
class Browser {
  private constructor(private readonly session: string) {}

  static async open(): Promise<Browser> {
    const args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1280,900"];
    const options = { args: [...args, `--user-data-dir=${profile}`], binary: "/usr/bin/chromium" };
    const capabilities = { alwaysMatch: { browserName: "chrome", "goog:chromeOptions": options } };
    const { sessionId } = (await command("POST", "/session", { capabilities })) as { sessionId: string };
    return new Browser(sessionId);
  }

  async go(url: string): Promise<void> {
    await this.#call("POST", "/url", { url });
  }

  async url(): Promise<string> {
    return (await this.#call("GET", "/url")) as string;
  }

  async text(css: string): Promise<string> {
    return (await this.#onElement(css, "GET", "/text")) as string;
  }

  async type(css: string, text: string): Promise<void> {
    await this.#onElement(css, "POST", "/value", { text });
  }

  async click(css: string): Promise<void> {
    await this.#onElement(css, "POST", "/click", {});
  }

  /**
   * `path` of the element `css` finds. Found again while the page under it is being replaced:
   * after a click that submits a form, the old page's element can be found and then be gone
   * (WebDriver's `stale element reference`) before the new page is there.
   */
  async #onElement(css: string, method: string, path: string, body?: object): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#call(method, `/element/${await this.#find(css)}${path}`, body);
      } catch (error) {
        if (attempt >= 50 || !String(error).includes("stale element reference")) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  /** Saves the page as `target/screenshots/<name>.png` and prints where. */
  async screenshot(name: string): Promise<void> {
    const dir = join(process.env.CARGO_TARGET_DIR ?? join(REPO, "target"), "screenshots");
    mkdirSync(dir, { recursive: true });
    const path = join(dir, `${name}.png`);
    writeFileSync(path, Buffer.from((await this.#call("GET", "/screenshot")) as string, "base64"));
    console.error(`screenshot: ${path}`);
  }

  async close(): Promise<void> {
    await command("DELETE", `/session/${this.session}`);
  }

  async #find(css: string): Promise<string> {
    const found = (await this.#call("POST", "/element", { using: "css selector", value: css })) as Record<string, string>;
    return found[ELEMENT]!;
  }

  #call(method: string, path: string, body?: object): Promise<unknown> {
    return command(method, `/session/${this.session}${path}`, body);
  }
}

async function command(method: string, path: string, body?: object): Promise<unknown> {
  const answer = await fetch(`${driverUrl}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const { value } = (await answer.json()) as { value: unknown };
  assert.ok(answer.ok, `${method} ${path}: ${JSON.stringify(value).slice(0, 300)}`);
  return value;
}

it("a user logged in on the Express app is logged in on the axum app, and signed out of both there", async () => {
  const browser = await Browser.open();
  try {
    const { expressUrl, axumUrl } = examples;
    await browser.go(`${expressUrl}/`);
    assert.equal(await browser.url(), `${expressUrl}/login`, "not logged in yet");
    await browser.type("#user", "alice");
    await browser.type("#password", "wonderland");
    await browser.click("#login");
    assert.equal(await browser.text("h1"), "Hello, alice");
    assert.equal(await browser.text("#counter"), "1");
    await browser.screenshot("express-app-home");

    await browser.go(`${axumUrl}/`);
    assert.equal(await browser.text("h1"), "Hello, alice", "the axum app reads the Express app's session");
    assert.equal(await browser.text("#counter"), "2", "and its data");
    assert.match(await browser.text("#sessions"), /\(this device\)/);
    await browser.screenshot("web-app-home-after-express-login");

    await browser.click("#sign-out-everywhere");
    assert.equal(await browser.url(), `${axumUrl}/login`);
    await browser.go(`${expressUrl}/`);
    assert.equal(await browser.url(), `${expressUrl}/login`, "signed out of the Express app too");
    assert.equal((await examples.client.listUserSessions("alice")).sessions.length, 0);
  } finally {
    await browser.close();
  }
});
