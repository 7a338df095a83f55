/**
 * A real `sessanger serve` for the tests: the binary the workspace built, on a free port of
 * 127.0.0.1, keeping its sessions in a temporary directory (the embedded store).
 */

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

/** The repository's root, from `clients/typescript/build/test/`. */
export const REPO = resolve(fileURLToPath(import.meta.url), "../../../../..");

/** A binary of the workspace: `SESSANGER_<NAME>_BIN` if set, else `target/debug/<name>`. */
export function binary(name: string): string {
  const path =
    process.env[`${name.toUpperCase().replaceAll("-", "_")}_BIN`] ??
    join(process.env.CARGO_TARGET_DIR ?? join(REPO, "target"), "debug", name);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: build it first (./scripts/test does; or cargo build -p ${name})`);
  }
  return path;
}

export interface Server {
  url: string;
  /** The `admin` service's token. */
  adminToken: string;
  dataDir: string;
  /** Stops it with SIGTERM, waits for it to exit, and removes its data. */
  stop(): Promise<void>;
  /** Kills it with SIGKILL, as a crash would, and keeps its data. */
  kill(): Promise<void>;
}

/** Starts `sessanger serve` with `args` (after its listen address and data directory): on a
 * free port and fresh data, or where `at` says (a restart after a crash). */
export async function startServer(args: string[] = [], at?: { listen: string; dataDir: string }): Promise<Server> {
  const dataDir = at?.dataDir ?? mkdtempSync(join(tmpdir(), "sessanger-ts-"));
  rmSync(join(dataDir, "server.url"), { force: true });
  // The machine's own configuration is not the test's.
  const { SESSANGER_CONFIG: _config, SESSANGER_STORE: _store, ...env } = process.env;
  const listen = at?.listen ?? "127.0.0.1:0";
  const child = spawn(binary("sessanger"), ["serve", "--listen", listen, "--data-dir", dataDir, ...args], {
    env: { ...env, RUST_LOG: "warn" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  // Its log (audit lines included) is kept for an early exit's message only.
  let log = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-4000);
  });
  const urlFile = join(dataDir, "server.url");
  const deadline = Date.now() + 20_000;
  while (!existsSync(urlFile)) {
    if (child.exitCode !== null) throw new Error(`sessanger exited early with ${child.exitCode}:\n${log}`);
    if (Date.now() > deadline) throw new Error("sessanger did not announce its URL within 20 s");
    await sleep(20);
  }
  return {
    url: readFileSync(urlFile, "utf8").trim(),
    adminToken: readFileSync(join(dataDir, "admin.token"), "utf8").trim(),
    dataDir,
    stop: async () => {
      await stopProcess(child);
      rmSync(dataDir, { recursive: true, force: true });
    },
    kill: async () => {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** SIGTERM, then SIGKILL after 10 s. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}
