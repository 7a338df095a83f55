/** The express-session store contract, and an Express app on it, against a real `sessanger serve`. */

import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";

import express from "express";
import session from "express-session";

import { Client, sessionIdOf } from "../src/index.js";
import { SessangerStore } from "../src/express.js";
import { anonymousUserOf, isSharedCookieId, mintCookieId, shardTag } from "../src/ids.js";
import { type Server, startServer } from "./server.js";

declare module "express-session" {
  interface SessionData {
    count?: number;
    user_id?: string;
  }
}

let server: Server;
let clientA: Client;
let clientB: Client;

before(async () => {
  server = await startServer();
  const admin = new Client({ baseUrl: server.url, token: server.adminToken });
  const token = async (id: string) => (await admin.createService({ id, permissions: ["read", "write"] })).token;
  clientA = new Client({ baseUrl: server.url, token: await token("app-a") });
  clientB = new Client({ baseUrl: server.url, token: await token("app-b") });
});

after(async () => {
  await server.stop();
});

/** The id in a `sid=s%3A<id>.<signature>` cookie. */
function cookieId(cookie: string): string {
  const signed = decodeURIComponent(cookie.slice("sid=".length));
  return signed.slice(2, signed.lastIndexOf("."));
}

type Callback<T> = (error?: unknown, value?: T) => void;

/** A store method's outcome as a promise. */
function call<T = void>(method: (callback: Callback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => method((error, value) => (error ? reject(error) : resolve(value as T))));
}

/** What express-session stores for a cookie that lasts `maxAge` ms (or until the browser closes). */
function data(fields: Record<string, unknown>, maxAge: number | null = null): session.SessionData {
  const expires = maxAge === null ? null : new Date(Date.now() + maxAge).toISOString();
  return { cookie: { originalMaxAge: maxAge, expires, httpOnly: true, path: "/" }, ...fields } as unknown as session.SessionData;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A store as `session()` sets it up (with the store's `genid`, or express-session's own). */
function storeFor(client: Client, genid = true): SessangerStore {
  const store = new SessangerStore({ client });
  session({ store, genid: genid ? store.genid : undefined, secret: "test secret" });
  return store;
}

/** The id express-session generates for a new session, as it does for a request without one. */
function newSid(store: SessangerStore): string {
  const req = {} as express.Request;
  store.generate(req);
  return req.sessionID;
}

describe("the store contract", () => {
  for (const genid of [true, false]) {
  it(`get, set, touch and destroy a session (${genid ? "the store's" : "express-session's"} ids)`, async () => {
    const store = storeFor(clientA, genid);
    const sid = newSid(store);
    assert.equal(isSharedCookieId(sid), genid);
    assert.equal(await call<session.SessionData | null>((cb) => store.get(sid, cb)), null);

    await call((cb) => store.set(sid, data({ count: 1, nested: { a: [1] } }), cb));
    const loaded = (await call<session.SessionData | null>((cb) => store.get(sid, cb)))!;
    assert.deepEqual(loaded, data({ count: 1, nested: { a: [1] } }));

    // The same session through /v1: an anonymous user of its own, the cookie options kept aside.
    const id = sessionIdOf(sid)!;
    const stored = await clientB.getSession(id);
    assert.equal(stored.user_id, anonymousUserOf(sid));
    assert.equal(stored.created_by, "app-a");
    assert.equal(stored.attributes.count, 1);
    assert.equal(stored.idle_ttl_secs, 86_400, "a browser-session cookie lives ttl on the server");

    await call((cb) => store.set(sid, data({ count: 2 }), cb));
    assert.equal(((await call<session.SessionData | null>((cb) => store.get(sid, cb)))!).count, 2);
    await sleep(20);
    const before = await clientB.getSession(id);
    await call((cb) => store.touch(sid, data({ count: 2 }), cb));
    assert.ok((await clientB.getSession(id)).expires_at > before.expires_at, "touch renews the deadline");

    await call((cb) => store.destroy(sid, cb));
    assert.equal(await call<session.SessionData | null>((cb) => store.get(sid, cb)), null);
    // A request in flight when the session was deleted does not bring it back.
    await call((cb) => store.set(sid, data({ count: 3 }), cb));
    assert.equal(await call<session.SessionData | null>((cb) => store.get(sid, cb)), null);
    await call((cb) => store.destroy(sid, cb)); // absent: fine
    await call((cb) => store.touch(sid, data({}), cb));
  });
  }

  it("create no session under an id express-session did not just generate", async () => {
    const store = storeFor(clientA);
    for (const sid of ["", "short", "not base64url at all!!", "AAECAwQFBgcICQoLDA0ODx", store.genid()]) {
      assert.equal(await call<session.SessionData | null>((cb) => store.get(sid, cb)), null, sid);
      await call((cb) => store.set(sid, data({ planted: true }), cb));
      assert.equal(await call<session.SessionData | null>((cb) => store.get(sid, cb)), null, `nothing planted under ${sid}`);
    }
  });

  it("keep a session until its cookie expires, renewed by each save", async () => {
    const store = storeFor(clientA);
    const sid = newSid(store);
    await call((cb) => store.set(sid, data({ count: 1 }, 1_500), cb));
    assert.equal((await clientA.getSession(sessionIdOf(sid)!)).idle_ttl_secs, 2, "1.5 s, in whole seconds up");
    await sleep(2_300);
    assert.equal(await call<session.SessionData | null>((cb) => store.get(sid, cb)), null, "gone with its cookie");
  });

  it("list, count and clear only the sessions of its own service", async () => {
    const [a, b] = [storeFor(clientA), storeFor(clientB)];
    await call((cb) => a.clear(cb));
    await call((cb) => b.clear(cb));
    const mine = [];
    for (let i = 0; i < 3; i++) {
      const sid = newSid(a);
      await call((cb) => a.set(sid, data({ count: i }), cb));
      mine.push(sessionIdOf(sid)!);
    }
    for (let i = 0; i < 2; i++) {
      const sid = newSid(b);
      await call((cb) => b.set(sid, data({ count: 10 + i }), cb));
    }
    const all = await call<Record<string, session.SessionData>>((cb) => a.all(cb));
    assert.deepEqual(Object.keys(all).sort(), mine.sort(), "keyed by sessanger session id");
    assert.deepEqual(Object.values(all).map((s) => s.count).sort(), [0, 1, 2]);
    assert.equal(await call<number>((cb) => a.length(cb)), 3);
    await call((cb) => a.clear(cb));
    assert.equal(await call<number>((cb) => a.length(cb)), 0);
    assert.equal(await call<number>((cb) => b.length(cb)), 2, "another service's sessions stay");
  });
});

for (const genid of [true, false]) {
describe(`an Express app on the store (${genid ? "the store's" : "express-session's"} ids)`, () => {
  let base: string;
  let store: SessangerStore;
  let close: () => void;
  const errors: string[] = [];

  before(async () => {
    store = new SessangerStore({ client: clientA });
    const app = express();
    app.use(
      session({ store, genid: genid ? store.genid : undefined, secret: "test secret", name: "sid", resave: false, saveUninitialized: false }),
    );
    app.get("/count", (req, res) => {
      req.session.count = (req.session.count ?? 0) + 1;
      res.json({ count: req.session.count, user: store.currentUser(req) ?? null });
    });
    app.post("/login/:user", async (req, res) => {
      await store.logIn(req, req.params.user, { user_agent: req.get("user-agent") ?? null });
      res.json({ session: store.sessionId(req) });
    });
    app.post("/forge/:user", (req, res) => {
      req.session.user_id = req.params.user; // not through logIn: the save must be refused
      res.json({});
    });
    app.post("/everywhere", async (req, res) => {
      res.json({ deleted: await store.signOutEverywhere(req) });
    });
    // express-session hands a failed save to the error handler, after the answer started.
    app.use((error: Error, _req: express.Request, _res: express.Response, next: express.NextFunction) => {
      errors.push(error.message);
      next();
    });
    const listener = app.listen(0, "127.0.0.1");
    await new Promise((resolve) => listener.once("listening", resolve));
    base = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`;
    close = () => {
      listener.closeAllConnections();
      listener.close();
    };
  });

  after(() => close());

  /** A browser's cookie jar for the app's one cookie. */
  class Browser {
    cookie = "";
    constructor(readonly agent: string) {}
    async request(method: string, path: string): Promise<Response> {
      const response = await fetch(`${base}${path}`, { method, headers: { cookie: this.cookie, "user-agent": this.agent } });
      const set = response.headers.get("set-cookie");
      if (set) this.cookie = set.split(";")[0]!;
      return response;
    }
    async json(method: string, path: string): Promise<Record<string, unknown>> {
      const response = await this.request(method, path);
      assert.equal(response.status, 200, await response.clone().text());
      return (await response.json()) as Record<string, unknown>;
    }
  }

  it("logs in on a fresh id on the user's shard, keeps the data, and signs out everywhere", async () => {
    const phone = new Browser("phone/1");
    assert.deepEqual(await phone.json("GET", "/count"), { count: 1, user: null });
    assert.deepEqual(await phone.json("GET", "/count"), { count: 2, user: null });
    const anonymous = phone.cookie;

    assert.equal(isSharedCookieId(cookieId(anonymous)), genid);
    const { session } = (await phone.json("POST", "/login/frank")) as { session: string };
    assert.notEqual(phone.cookie, anonymous, "login moves the session to a fresh id");
    assert.ok(isSharedCookieId(cookieId(phone.cookie)), "a logged-in session's id is one axum reads");
    assert.equal(session.slice(0, 2), shardTag("frank"));
    assert.deepEqual(await phone.json("GET", "/count"), { count: 3, user: "frank" }, "data before login is kept");
    const stored = await clientB.getSession(session);
    assert.deepEqual([stored.user_id, stored.device.user_agent], ["frank", "phone/1"]);
    const old = new Browser("phone/1");
    old.cookie = anonymous;
    assert.deepEqual(await old.json("GET", "/count"), { count: 1, user: null }, "the pre-login id is worthless");

    const laptop = new Browser("laptop/2");
    await laptop.json("POST", "/login/frank");
    const devices = await store.listUserSessions("frank");
    assert.deepEqual(devices.map((s) => s.device.user_agent).sort(), ["laptop/2", "phone/1"]);

    assert.deepEqual(await laptop.json("POST", "/everywhere"), { deleted: 2 });
    assert.deepEqual(await phone.json("GET", "/count"), { count: 1, user: null }, "the phone is signed out too");
    assert.equal((await clientB.listUserSessions("frank")).sessions.length, 0);
  });

  it("refuses a session whose user changes without a new id", async () => {
    const browser = new Browser("x");
    await browser.json("GET", "/count");
    await browser.json("POST", "/forge/mallory");
    // express-session reports a failed save once the answer is on its way: wait for it.
    for (let waited = 0; errors.length === 0 && waited < 2_000; waited += 10) await sleep(10);
    assert.match(errors.join("\n"), /user changed without a new id/);
    assert.equal((await clientB.listUserSessions("mallory")).sessions.length, 0);
    assert.deepEqual(await browser.json("GET", "/count"), { count: 2, user: null }, "nothing of the forgery stored");
  });

  it("is revoked for the app when another service revokes it through /v1", async () => {
    const browser = new Browser("y");
    const { session } = (await browser.json("POST", "/login/grace")) as { session: string };
    await browser.json("GET", "/count");
    await clientB.deleteSession(session);
    assert.deepEqual(await browser.json("GET", "/count"), { count: 1, user: null });
  });

  if (genid) it("mints the ids sessanger-tower makes for the same user", () => {
    assert.equal(sessionIdOf("AAECAwQFBgcICQoLDA0ODw"), "DwFSVumkvBJpBexbDEu9yHoNfvpRl5MOhM6wytyReSZ");
    for (const user of ["alice", "bob", "carol@example.com"]) {
      assert.equal(sessionIdOf(mintCookieId(shardTag(user)))!.slice(0, 2), shardTag(user));
    }
  });
});
}
