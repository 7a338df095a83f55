/**
 * The Express example and the axum example, side by side on one host and one sessanger: a user
 * logged in through one is logged in through the other, and signing out through either
 * revokes the session in both.
 */

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { TransportError } from "../src/index.js";
import { type Examples, startExamples } from "./examples.js";
import { startServer } from "./server.js";

let examples: Examples;
let expressUrl: string;
let axumUrl: string;

before(async () => {
  examples = await startExamples();
  ({ expressUrl, axumUrl } = examples);
});

after(async () => {
  await examples.stop();
});

/** A browser on 127.0.0.1: one cookie jar for every port of the host, as browsers keep it. */
class Browser {
  cookie = "";

  async get(url: string): Promise<Response> {
    return this.#send(url, { method: "GET" });
  }

  async post(url: string, form: Record<string, string> = {}): Promise<Response> {
    const body = new URLSearchParams(form).toString();
    return this.#send(url, { method: "POST", body, headers: { "content-type": "application/x-www-form-urlencoded" } });
  }

  /** Logs in through the app at `base` with its login form. */
  async logIn(base: string, user: string, password: string): Promise<void> {
    const form = await (await this.get(`${base}/login`)).text();
    const token = /name="token" value="([^"]+)"/.exec(form)?.[1];
    assert.ok(token, form);
    const answer = await this.post(`${base}/login`, { token, user, password });
    assert.ok([302, 303].includes(answer.status), `${answer.status}: ${await answer.clone().text()}`);
    assert.equal(answer.headers.get("location"), "/");
  }

  /** The home page's greeting and counter, or `null` when it sends the browser to log in. */
  async home(base: string): Promise<{ user: string; counter: number; devices: number } | null> {
    const answer = await this.get(`${base}/`);
    if ([302, 303].includes(answer.status)) {
      assert.equal(answer.headers.get("location"), "/login");
      return null;
    }
    const html = await answer.text();
    assert.equal(answer.status, 200, html);
    return {
      user: /<h1>Hello, ([^<]+)<\/h1>/.exec(html)![1]!,
      counter: Number(/<span id="counter">(\d+)<\/span>/.exec(html)![1]),
      devices: (html.match(/<tr><td>/g) ?? []).length,
    };
  }

  async #send(url: string, init: RequestInit): Promise<Response> {
    const headers = { ...(init.headers as Record<string, string>), cookie: this.cookie };
    const answer = await fetch(url, { ...init, headers, redirect: "manual" });
    for (const set of answer.headers.getSetCookie()) {
      const [pair] = set.split(";");
      if (pair!.startsWith("sid=")) this.cookie = /Max-Age=0|Expires=Thu, 01 Jan 1970/i.test(set) ? "" : pair!;
    }
    return answer;
  }
}

describe("the Express and the axum examples share sessions", () => {
  it("log in through Express, be logged in through axum, sign out everywhere through axum", async () => {
    const browser = new Browser();
    await browser.logIn(expressUrl, "alice", "wonderland");
    assert.match(browser.cookie, /^sid=s%3A[A-Za-z0-9_-]{22}\./, "express-session's signed cookie");
    assert.deepEqual(await browser.home(expressUrl), { user: "alice", counter: 1, devices: 1 });
    assert.deepEqual(await browser.home(axumUrl), { user: "alice", counter: 2, devices: 1 }, "the same session, read by axum");
    assert.deepEqual(await browser.home(expressUrl), { user: "alice", counter: 3, devices: 1 }, "and written by axum");

    const [session] = (await examples.client.listUserSessions("alice")).sessions;
    assert.equal(session?.attributes.counter, 3);

    const revoked = await browser.post(`${axumUrl}/sign-out-everywhere`);
    assert.equal(revoked.headers.get("location"), "/login");
    assert.equal(await browser.home(expressUrl), null, "revoked by axum, gone for Express");
    assert.equal((await examples.client.listUserSessions("alice")).sessions.length, 0);
  });

  it("log in through axum, be logged in through Express, sign out everywhere through Express", async () => {
    const [laptop, phone] = [new Browser(), new Browser()];
    await laptop.logIn(axumUrl, "alice", "wonderland");
    await phone.logIn(expressUrl, "alice", "wonderland");
    assert.deepEqual(await laptop.home(axumUrl), { user: "alice", counter: 1, devices: 2 });
    assert.deepEqual(await laptop.home(expressUrl), { user: "alice", counter: 2, devices: 2 }, "axum's session, read by Express");
    assert.deepEqual(await phone.home(axumUrl), { user: "alice", counter: 1, devices: 2 });

    const revoked = await laptop.post(`${expressUrl}/sign-out-everywhere`);
    assert.equal(revoked.headers.get("location"), "/login");
    assert.equal(await laptop.home(axumUrl), null, "revoked by Express, gone for axum");
    assert.equal(await phone.home(axumUrl), null, "on every device");
    assert.equal(await phone.home(expressUrl), null);
  });

  it("take no cookie that the shared secret did not sign", async () => {
    const browser = new Browser();
    await browser.logIn(axumUrl, "alice", "wonderland");
    const signed = decodeURIComponent(browser.cookie.slice("sid=".length));
    const id = signed.slice(2, signed.lastIndexOf("."));
    for (const forged of [`sid=${id}`, `sid=${encodeURIComponent(`s:${id}.${"A".repeat(43)}`)}`]) {
      const attacker = new Browser();
      attacker.cookie = forged;
      assert.equal(await attacker.home(axumUrl), null, `axum refuses ${forged}`);
      attacker.cookie = forged;
      assert.equal(await attacker.home(expressUrl), null, `Express refuses ${forged}`);
    }
    assert.deepEqual((await browser.home(expressUrl))?.user, "alice", "the signed cookie still works");
    await browser.post(`${expressUrl}/logout`);
    assert.equal(await browser.home(axumUrl), null, "logged out through Express, out through axum");
  });

  it("keep a user logged in through sessanger killed mid-load and restarted", async () => {
    const browser = new Browser();
    await browser.logIn(expressUrl, "alice", "wonderland");
    const seen: (number | null)[] = [];
    const statuses = new Map<number, number>();
    let done = false;
    const load = (async () => {
      while (!done) {
        const answer = await browser.get(`${expressUrl}/`);
        const html = await answer.text();
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        if (answer.status === 200) seen.push(Number(/<span id="counter">(\d+)<\/span>/.exec(html)![1]));
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const before = seen.length;
    const { server } = examples;
    await server.kill();
    await assert.rejects(examples.client.stats(), TransportError, "sessanger is down");
    await new Promise((resolve) => setTimeout(resolve, 300));
    const { port } = new URL(server.url);
    const restarted = await startServer([], { listen: `127.0.0.1:${port}`, dataDir: server.dataDir });
    examples.server = restarted;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    done = true;
    await load;
    assert.ok(before > 0 && seen.length > before, `answers before the kill (${before}) and after the restart (${seen.length})`);
    assert.equal(statuses.get(302), undefined, `never sent to log in again: ${JSON.stringify([...statuses])}`);
    // Requests meeting the outage failed (500) or, retried by the client, waited it out.
    assert.deepEqual([...statuses.keys()].filter((s) => s !== 200 && s !== 500), []);
    assert.deepEqual((await browser.home(axumUrl))?.user, "alice", "and axum still knows the session");
    assert.ok(seen.at(-1)! >= before, "the counter carried on");
  });
});
