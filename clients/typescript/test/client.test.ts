/** Every method of the client, against a real `sessanger serve`. */

import assert from "node:assert/strict";
import { type Server as HttpServer, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";

import { ApiError, Client, type Received, SessangerError, TransportError } from "../src/index.js";
import { type Server, startServer } from "./server.js";

let server: Server;
let admin: Client;
let writer: Client;

before(async () => {
  server = await startServer();
  admin = new Client({ baseUrl: server.url, token: server.adminToken });
  const created = await admin.createService({ id: "ts-writer", permissions: ["read", "write"] });
  writer = new Client({ baseUrl: `${server.url}/`, token: created.token });
});

after(async () => {
  await server.stop();
});

/** The `ApiError` `call` throws, checked to carry `status` and `code`. */
async function refused(call: Promise<unknown>, status: number, code: string): Promise<ApiError> {
  const error = await call.then(
    () => assert.fail(`expected ${status} ${code}, got a success`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ApiError, `expected an ApiError, got ${String(error)}`);
  assert.deepEqual([error.status, error.code], [status, code], error.message);
  return error;
}

describe("sessions", () => {
  it("are created, read, and read again only when changed", async () => {
    const session = await writer.createSession({
      user_id: "alice",
      device_id: "phone",
      user_agent: "test/1",
      attributes: { theme: "dark", cart: [1, 2] },
      ttl_secs: 600,
    });
    assert.equal(session.user_id, "alice");
    assert.equal(session.session_id.length, 24);
    assert.deepEqual(session.device, { device_id: "phone", user_agent: "test/1" });
    assert.deepEqual(session.attributes, { theme: "dark", cart: [1, 2] });
    assert.equal(session.idle_ttl_secs, 600);
    assert.equal(session.created_by, "ts-writer");

    const read = await writer.getSession(session.session_id);
    assert.deepEqual(read.attributes, session.attributes);
    assert.equal(await writer.getSessionIfChanged(session.session_id, read.version), null);
    await writer.patchAttributes(session.session_id, { set: { theme: "light" } });
    const changed = await writer.getSessionIfChanged(session.session_id, read.version);
    assert.equal(changed?.attributes.theme, "light");
  });

  it("are patched atomically: set, remove and incr in one step, conditionally, minimally", async () => {
    const { session_id: id, version } = await writer.createSession({ user_id: "bob", attributes: { a: 1, b: 2 } });
    const patched = await writer.patchAttributes(id, { set: { c: { deep: true } }, remove: ["a"], incr: { n: 5 } });
    assert.deepEqual(patched.attributes, { b: 2, c: { deep: true }, n: 5 });
    assert.equal(patched.version, version + 1);

    await refused(writer.patchAttributes(id, { incr: { n: 1 } }, { ifMatch: version }), 412, "version_mismatch");
    const written = await writer.patchAttributes(id, { incr: { n: 1 } }, { ifMatch: patched.version, minimal: true });
    assert.deepEqual(written, { version: patched.version + 1 });
    const any = await writer.patchAttributes(id, { incr: { n: 1 } }, { ifMatch: "*" });
    assert.equal(any.attributes.n, 7);

    // Valid JSON, absurd content: refused with its code, nothing stored.
    await refused(writer.patchAttributes(id, { incr: { b: 1 }, remove: ["b"] }), 422, "invalid_patch");
    await writer.patchAttributes(id, { set: { s: "text" } });
    await refused(writer.patchAttributes(id, { incr: { s: 1 } }), 422, "not_an_integer");
    assert.equal((await writer.getSession(id)).attributes.s, "text");
  });

  it("are replaced whole at the version read, never without one", async () => {
    const { session_id: id, version } = await writer.createSession({ user_id: "carol", attributes: { old: true } });
    const replaced = await writer.replaceSession(id, { attributes: { fresh: 1 }, device: { ip: "10.0.0.1" } }, { ifMatch: version });
    assert.deepEqual([replaced.attributes, replaced.device], [{ fresh: 1 }, { ip: "10.0.0.1" }]);
    await refused(writer.replaceSession(id, { attributes: {} }, { ifMatch: version }), 412, "version_mismatch");
    const minimal = await writer.replaceSession(id, { attributes: { x: 2 } }, { ifMatch: replaced.version, minimal: true });
    assert.deepEqual(minimal, { version: replaced.version + 1 });
  });

  it("are refreshed, regenerated and deleted", async () => {
    const created = await writer.createSession({ user_id: "dave", ttl_secs: 60 });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const refreshed = await writer.refreshSession(created.session_id);
    assert.ok(refreshed.expires_at > created.expires_at, `${refreshed.expires_at} after ${created.expires_at}`);

    const { session_id: fresh, session } = await writer.regenerateSession(created.session_id);
    assert.notEqual(fresh, created.session_id);
    assert.equal(session.user_id, "dave");
    await refused(writer.getSession(created.session_id), 404, "session_not_found");

    await writer.deleteSession(fresh);
    const gone = await refused(writer.deleteSession(fresh), 404, "session_not_found");
    assert.ok(gone.notFound && !gone.retryable);
    await refused(writer.getSession("not a session id"), 404, "invalid_session_id");
  });

  it("lose no increment when 64 clients count at once", async () => {
    const { session_id: id, version } = await writer.createSession({ user_id: "counter" });
    const answers = await Promise.all(
      Array.from({ length: 64 }, () => writer.patchAttributes(id, { incr: { hits: 1 } })),
    );
    const final = await writer.getSession(id);
    assert.equal(final.attributes.hits, 64);
    assert.equal(final.version, version + 64);
    // Each client was answered its own increment: 64 distinct counts and versions.
    assert.equal(new Set(answers.map((s) => s.attributes.hits)).size, 64);
    assert.equal(new Set(answers.map((s) => s.version)).size, 64);
  });
});

describe("users", () => {
  it("have their sessions listed in pages, and revoked all at once", async () => {
    const user = "erin / ü@example.com"; // percent-encoded into the path
    for (let i = 0; i < 5; i++) await writer.createSession({ user_id: user, device_id: `d${i}` });
    const first = await writer.listUserSessions(user, { limit: 2 });
    assert.equal(first.sessions.length, 2);
    assert.ok(first.next_cursor);
    const second = await writer.listUserSessions(user, { limit: 2, cursor: first.next_cursor! });
    assert.equal(second.sessions.length, 2);
    const all = [];
    for await (const s of writer.userSessions(user, { pageSize: 2 })) all.push(s.device.device_id);
    assert.deepEqual(all, ["d0", "d1", "d2", "d3", "d4"]);

    assert.equal(await writer.revokeUserSessions(user), 5);
    assert.equal((await writer.listUserSessions(user)).sessions.length, 0);
    await refused(writer.listUserSessions(user, { limit: 0 }), 400, "invalid_request");
  });

  it("and every session can be paged through, or one creator's only", async () => {
    const mine = new Set<string>();
    for (let i = 0; i < 7; i++) mine.add((await writer.createSession({ user_id: `scan-${i}` })).session_id);
    await admin.createSession({ user_id: "scan-admin" });
    const listed = new Set<string>();
    for await (const s of writer.sessions({ createdBy: "ts-writer", pageSize: 3 })) {
      assert.equal(s.created_by, "ts-writer");
      listed.add(s.session_id);
    }
    for (const id of mine) assert.ok(listed.has(id));
    let everything = 0;
    for await (const _ of admin.sessions()) everything++;
    assert.ok(everything >= listed.size + 1);
    assert.equal((await admin.stats()).active_sessions, everything);
  });
});

describe("services", () => {
  it("are registered, listed, changed and removed by an admin", async () => {
    const created = await admin.createService({ id: "ts-reader", permissions: ["read"] });
    const reader = new Client({ baseUrl: server.url, token: created.token });
    assert.equal(reader.service, "ts-reader");
    assert.ok(!JSON.stringify(reader).includes(created.token.split(".")[1]!), "the secret never shows");

    const ids = [];
    for (let cursor: string | undefined; ; ) {
      const page = await admin.listServices({ limit: 2, cursor });
      ids.push(...page.services.map((s) => s.id));
      if (!page.next_cursor) break;
      cursor = page.next_cursor;
    }
    assert.deepEqual(ids, ["admin", "ts-reader", "ts-writer"]);

    await refused(reader.createSession({ user_id: "x" }), 403, "forbidden");
    const changed = await admin.updateService("ts-reader", { permissions: ["write", "read"] });
    assert.deepEqual(changed.permissions, ["read", "write"]);
    await reader.createSession({ user_id: "x" });

    await refused(writer.listServices(), 403, "forbidden");
    await refused(admin.createService({ id: "ts-reader", permissions: ["read"] }), 409, "service_exists");
    await admin.deleteService("ts-reader");
    await refused(reader.stats(), 401, "unauthorized");
    await refused(admin.deleteService("ts-reader"), 404, "service_not_found");
  });
});

describe("events", () => {
  it("stream what happens, from the oldest kept, until aborted", async () => {
    const { session_id: id } = await writer.createSession({ user_id: "eve" });
    await writer.patchAttributes(id, { set: { k: 1 } });
    await writer.deleteSession(id);
    const stop = new AbortController();
    const seen: string[] = [];
    for await (const message of writer.events({ after: "0", userId: "eve", signal: stop.signal })) {
      assert.equal(message.kind, "event");
      if (message.kind === "event") seen.push(message.event.type);
      if (seen.length === 3) stop.abort();
    }
    assert.deepEqual(seen, ["created", "attributes_changed", "deleted"]);
    const filtered = writer.events({ types: ["no_such_type"] });
    await refused(filtered.next(), 400, "invalid_request");
  });

  it("resume after the last event received when the stream drops", async () => {
    // A stand-in server that ends each stream after one event, to watch the client reconnect.
    const resumedFrom: (string | undefined)[] = [];
    const fake = await listen(
      createServer((req, res) => {
        const last = req.headers["last-event-id"] as string | undefined;
        resumedFrom.push(last);
        const next = Number(last ?? 0) + 1;
        res.writeHead(200, { "content-type": "text/event-stream" });
        const data = JSON.stringify({ id: String(next), type: "created", user_id: "u", fingerprint: "f", at: "" });
        const lost = next === 2 ? 'event: lost\ndata: {"after": 1, "trimmed_through": 1}\n\n' : "";
        res.end(`: heartbeat\r\n${lost}id: ${next}\r\nevent: created\r\ndata: ${data}\r\n\r\n`);
      }),
    );
    const client = new Client({ baseUrl: fake.url, token: "svc.secret" });
    const stop = new AbortController();
    const received: Received[] = [];
    for await (const message of client.events({ signal: stop.signal })) {
      received.push(message);
      if (received.length === 4) stop.abort();
    }
    await fake.close();
    assert.deepEqual(resumedFrom.slice(0, 3), [undefined, "1", "2"]);
    assert.deepEqual(
      received.map((m) => (m.kind === "event" ? m.event.id : `lost ${m.after}-${m.trimmedThrough}`)),
      ["1", "lost 1-1", "2", "3"],
    );
  });
});

describe("failures", () => {
  it("retry idempotent calls only, and say when the server cannot be reached", async () => {
    const closed = await listen(createServer());
    await closed.close(); // nothing listens there now
    let calls = 0;
    const counting: typeof fetch = (input, init) => {
      calls++;
      return fetch(input, init);
    };
    const client = new Client({ baseUrl: closed.url, token: "svc.secret", fetch: counting, retryDelayMs: 1 });
    const error = await client.getSession("x").catch((e: unknown) => e);
    assert.ok(error instanceof TransportError && error.retryable && !error.timedOut, String(error));
    assert.equal(calls, 3, "a read is tried three times");
    calls = 0;
    await assert.rejects(client.createSession({ user_id: "u" }), TransportError);
    assert.equal(calls, 1, "a create never twice");
  });

  it("take a retried delete that finds the session gone for done", async () => {
    // The first attempt's answer is lost (the connection drops); the retry finds nothing left.
    let attempts = 0;
    const flaky = await listen(
      createServer((req, res) => {
        attempts++;
        if (attempts === 1) return req.socket.destroy();
        res.writeHead(404, { "content-type": "application/json" });
        res.end('{"error": {"code": "session_not_found", "message": "no such session"}}');
      }),
    );
    const client = new Client({ baseUrl: flaky.url, token: "svc.secret", retryDelayMs: 1 });
    await client.deleteSession("x");
    assert.equal(attempts, 2);
    await refused(client.deleteSession("x"), 404, "session_not_found"); // not retried: absent before
    await flaky.close();
  });

  it("time out on a server that never answers", async () => {
    const silent = await listen(createServer(() => {}));
    const client = new Client({ baseUrl: silent.url, token: "svc.secret", timeoutMs: 200, retries: 1, retryDelayMs: 1 });
    const started = Date.now();
    const error = await client.stats().catch((e: unknown) => e);
    assert.ok(error instanceof TransportError && error.timedOut, String(error));
    assert.ok(error instanceof SessangerError);
    assert.ok(Date.now() - started < 2_000);
    await silent.close();
  });

  it("refuse a base URL that is not http(s)", () => {
    assert.throws(() => new Client({ baseUrl: "localhost:8090", token: "t" }), TypeError);
  });

  it("carry the server's codes, and 'unknown' for an answer that is not one", async () => {
    await refused(new Client({ baseUrl: server.url, token: "admin.wrong" }).stats(), 401, "unauthorized");
    const proxy = await listen(createServer((_req, res) => res.writeHead(502).end("<html>bad gateway</html>")));
    await refused(new Client({ baseUrl: proxy.url, token: "t", retries: 0 }).stats(), 502, "unknown");
    const newer = await listen(
      createServer((_req, res) => res.writeHead(409).end('{"error": {"code": "some_future_code", "message": "m"}}')),
    );
    await refused(new Client({ baseUrl: newer.url, token: "t" }).stats(), 409, "unknown");
    await newer.close();
    await proxy.close();
  });
});

/** Starts `http` on a free port of 127.0.0.1. */
async function listen(http: HttpServer): Promise<{ url: string; close: () => Promise<void> }> {
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  };
}
