/** `npm pack` makes a package that a fresh project installs from the tarball, type-checks
 * against and uses. */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, it } from "node:test";
import { promisify } from "node:util";

import { type Server, startServer } from "./server.js";

const run = promisify(execFile);
const PACKAGE = resolve(import.meta.dirname ?? ".", "../..");

let server: Server;
let dir: string;

before(async () => {
  server = await startServer();
  dir = mkdtempSync(join(tmpdir(), "sessanger-pack-"));
});

after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

it("npm pack makes a package a fresh project installs and uses", async () => {
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", dir], { cwd: PACKAGE });
  const [packed] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
  const files = packed!.files.map((f) => f.path).sort();
  for (const file of ["dist/index.js", "dist/index.d.ts", "dist/express.js", "dist/express.d.ts", "package.json", "README.md"]) {
    assert.ok(files.includes(file), `${file} is packed: ${files.join(", ")}`);
  }
  assert.ok(files.every((f) => f.startsWith("dist/") || ["package.json", "README.md"].includes(f)), files.join(", "));

  const app = join(dir, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "fresh-app", private: true, type: "module" }));
  // express-session is the store's peer, as it is for connect-redis; the types are a TS app's own.
  const install = ["install", "--no-audit", "--no-fund", "--prefer-offline", join(dir, packed!.filename)];
  await run("npm", [...install, "express-session@1.19.0", "@types/express-session@1.19.0", "@types/node@20"], { cwd: app });

  writeFileSync(
    join(app, "check.ts"),
    `import { ApiError, Client, type Session } from "sessanger";
import { SessangerStore } from "sessanger/express";
const client = new Client({ baseUrl: process.env.URL!, token: process.env.TOKEN! });
const session: Session = await client.createSession({ user_id: "packed", attributes: { n: 1 } });
const patched = await client.patchAttributes(session.session_id, { incr: { n: 1 } });
const store = new SessangerStore({ client });
const code = await client.getSession("missing").catch((e: unknown) => (e instanceof ApiError ? e.code : "other"));
console.log(JSON.stringify({ n: patched.attributes.n, code, genid: typeof store.genid }));
`,
  );
  const tsc = join(PACKAGE, "node_modules/.bin/tsc");
  const options = ["--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--types", "node"];
  await run(tsc, [...options, "check.ts"], { cwd: app });
  const env = { ...process.env, URL: server.url, TOKEN: server.adminToken };
  const output = await run(process.execPath, ["check.js"], { cwd: app, env });
  assert.deepEqual(JSON.parse(output.stdout), { n: 2, code: "invalid_session_id", genid: "function" });
});
