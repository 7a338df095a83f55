/**
 * The two example apps, Express (`examples/express-app`) and axum (`examples/web-app`), started
 * as a user starts them, on free ports of 127.0.0.1 and one sessanger, with one service token
 * and one cookie secret.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { Client } from "../src/index.js";
import { REPO, type Server, binary, startServer, stopProcess } from "./server.js";

const SECRET = "a secret both apps sign the cookie with";

export interface Examples {
  /** The sessanger both keep their sessions in (replaced when a test restarts it). */
  server: Server;
  /** A client of it as the apps' service. */
  client: Client;
  expressUrl: string;
  axumUrl: string;
  stop(): Promise<void>;
}

export async function startExamples(): Promise<Examples> {
  const server = await startServer();
  const admin = new Client({ baseUrl: server.url, token: server.adminToken });
  const { token } = await admin.createService({ id: "web", permissions: ["read", "write"] });
  const env = { ...process.env, SESSANGER_TOKEN: token, SESSION_SECRET: SECRET, RUST_LOG: "warn" };
  const apps: ChildProcess[] = [];
  const start = (command: string, args: string[]) => {
    const app = spawn(command, args, { env });
    apps.push(app);
    return listening(app);
  };
  const remote = ["--listen", "127.0.0.1:0", "--remote", server.url];
  const examples: Examples = {
    server,
    client: new Client({ baseUrl: server.url, token }),
    expressUrl: await start(process.execPath, [join(REPO, "examples/express-app/server.js"), ...remote]),
    axumUrl: await start(binary("example-web-app"), [...remote, "--token", token, "--express-secret", SECRET]),
    stop: async () => {
      await Promise.all(apps.map(stopProcess));
      await examples.server.stop();
    },
  };
  return examples;
}

/** The app's URL, from the `listening on http://…` line it prints once it listens. */
async function listening(app: ChildProcess): Promise<string> {
  const lines = createInterface({ input: app.stdout! });
  let log = "";
  app.stderr!.on("data", (chunk: Buffer) => (log += chunk.toString()));
  const timeout = setTimeout(() => app.kill(), 20_000);
  try {
    for await (const line of lines) {
      const url = /^listening on (http:\/\/\S+)/.exec(line)?.[1];
      if (url) return url;
    }
  } finally {
    clearTimeout(timeout);
  }
  throw new Error(`the app exited before it listened: ${log}`);
}
