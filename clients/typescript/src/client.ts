/**
 * {@link Client}: every route of sessanger's native `/v1` API, typed by the server's own
 * OpenAPI document (`schema.ts`, generated).
 */

import { ApiError, SessangerError, TransportError, apiError } from "./errors.js";
import { type EventOptions, type Received, readEvents } from "./events.js";
import type { components } from "./schema.js";

type Schemas = components["schemas"];

/** A session as the API shows it. */
export type Session = Schemas["SessionBody"];
/** The body of {@link Client.createSession}. */
export type CreateSession = Schemas["CreateSession"];
/** The body of {@link Client.replaceSession}. */
export type ReplaceSession = Schemas["ReplaceSession"];
/** What {@link Client.patchAttributes} changes, in one atomic step: `set` and `remove` keys, `incr` integers. */
export type Patch = Schemas["Patch"];
/** The answer of {@link Client.regenerateSession}. */
export type Regenerated = Schemas["Regenerated"];
/** One page of a user's sessions. */
export type SessionList = Schemas["SessionList"];
/** One page of every session (or of one creator's). */
export type SessionScan = Schemas["SessionScan"];
/** The answer of {@link Client.stats}. */
export type Stats = Schemas["Stats"];
/** A registered service as the API shows it (never its secret). */
export type Service = Schemas["ServiceBody"];
/** The body of {@link Client.createService}. */
export type CreateService = Schemas["CreateService"];
/** A service just registered, with its token (shown this once). */
export type CreatedService = Schemas["CreatedService"];
/** The body of {@link Client.updateService}. */
export type UpdateService = Schemas["UpdateService"];
/** One page of the services. */
export type ServiceList = Schemas["ServiceList"];
/** What a write answers under `Prefer: return=minimal`: the session's new version only. */
export interface Written {
  version: number;
}

/** Where a listing starts and how much of it comes at once. */
export interface PageOptions {
  /** The most items in the page: 1 to 1000; the server's default is 100. */
  limit?: number;
  /** The `next_cursor` of the page before; absent for the first. */
  cursor?: string;
}

/** What every call may take besides its own arguments. */
export interface CallOptions {
  /** Ends the call early (it then throws a {@link TransportError}). */
  signal?: AbortSignal;
}

/** The condition of a write: only if the session is still at this version (`If-Match`). */
export interface WriteOptions extends CallOptions {
  /** The version the caller read; `"*"` for any. A session changed since is `412 version_mismatch`. */
  ifMatch?: number | "*";
  /** Answer with the new version only (`Prefer: return=minimal`), not the whole session. */
  minimal?: boolean;
}

/** How a {@link Client} talks to its server. */
export interface ClientOptions {
  /** The server, e.g. `http://127.0.0.1:8090`. */
  baseUrl: string;
  /** A service token, `<service id>.<secret>`. */
  token: string;
  /** Longest one attempt may take, in milliseconds. Default 10 000. */
  timeoutMs?: number;
  /** How often a call that is safe to repeat is tried again after a failure a retry may cure
   * (the server unreachable, a timeout, `store_unavailable`, `request_timeout`). Default 2. */
  retries?: number;
  /** The first retry's wait in milliseconds, doubled for each next, with jitter. Default 100. */
  retryDelayMs?: number;
  /** The `fetch` to use; Node's own by default. */
  fetch?: typeof fetch;
}

interface Request {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** Whether sending it twice has the effect of sending it once: only then is it retried. */
  idempotent: boolean;
  signal?: AbortSignal | undefined;
  /** Told before each retry. */
  onRetry?: () => void;
}

/**
 * A client of one sessanger server, authenticated as one service. Node's `fetch` keeps
 * connections alive between calls; share one client per server.
 *
 * Calls that are safe to repeat (reads, `PUT` with `If-Match`, deletes, refresh) are retried
 * after failures a retry may cure; creates, patches and regenerations never are, since a
 * retry after a lost answer could apply them twice. Every failure is a {@link SessangerError}:
 * an {@link ApiError} with the server's stable `code`, or a {@link TransportError}.
 *
 * @example
 * const client = new Client({ baseUrl: "http://127.0.0.1:8090", token: process.env.SESSANGER_TOKEN! });
 * const session = await client.createSession({ user_id: "alice", attributes: { theme: "dark" } });
 * await client.patchAttributes(session.session_id, { incr: { visits: 1 } });
 */
export class Client {
  readonly baseUrl: string;
  readonly #token: string;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #retryDelayMs: number;
  readonly #fetch: typeof fetch;

  constructor(options: ClientOptions) {
    const base = options.baseUrl.replace(/\/+$/, "");
    if (!/^https?:\/\/[^/]/.test(base)) {
      throw new TypeError(`baseUrl must be an absolute http(s) URL, not \`${options.baseUrl}\``);
    }
    this.baseUrl = base;
    this.#token = options.token.trim();
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#retries = options.retries ?? 2;
    this.#retryDelayMs = options.retryDelayMs ?? 100;
    this.#fetch = options.fetch ?? fetch;
  }

  /** The service this client speaks for (the token's part before the dot); never the secret. */
  get service(): string {
    return this.#token.split(".", 1)[0] ?? "";
  }

  /** Never shows the token: clients end up in logged objects. */
  toJSON(): object {
    return { baseUrl: this.baseUrl, service: this.service };
  }

  /** `POST /v1/sessions`: a new session for `user_id`. */
  async createSession(body: CreateSession, options: CallOptions = {}): Promise<Session> {
    const request = { method: "POST", path: "/v1/sessions", body, idempotent: false, signal: options.signal } as const;
    return (await this.#call(request)).json() as Promise<Session>;
  }

  /** `GET /v1/sessions/{id}`. */
  async getSession(id: string, options: CallOptions = {}): Promise<Session> {
    const request = { method: "GET", path: sessionPath(id), idempotent: true, signal: options.signal } as const;
    return (await this.#call(request)).json() as Promise<Session>;
  }

  /** `GET /v1/sessions/{id}` with `If-None-Match`: `null` if the session is still at `version`. */
  async getSessionIfChanged(id: string, version: number, options: CallOptions = {}): Promise<Session | null> {
    const headers = { "if-none-match": etag(version) };
    const request = { method: "GET", path: sessionPath(id), headers, idempotent: true, signal: options.signal } as const;
    const response = await this.#call(request);
    return response.status === 304 ? null : ((await response.json()) as Session);
  }

  /** `PATCH /v1/sessions/{id}/attributes`: sets, removes and increments attributes in one
   * atomic step; concurrent increments are never lost. */
  patchAttributes(id: string, patch: Patch, options?: WriteOptions & { minimal?: false }): Promise<Session>;
  patchAttributes(id: string, patch: Patch, options: WriteOptions & { minimal: true }): Promise<Written>;
  async patchAttributes(id: string, patch: Patch, options: WriteOptions = {}): Promise<Session | Written> {
    const path = `${sessionPath(id)}/attributes`;
    return this.#write({ method: "PATCH", path, body: patch, idempotent: false }, options);
  }

  /** `PUT /v1/sessions/{id}`: replaces attributes and device (and the deadline, if given) if
   * the session is still at `options.ifMatch`, which is required. */
  replaceSession(id: string, body: ReplaceSession, options: WriteOptions & { ifMatch: number | "*"; minimal?: false }): Promise<Session>;
  replaceSession(id: string, body: ReplaceSession, options: WriteOptions & { ifMatch: number | "*"; minimal: true }): Promise<Written>;
  async replaceSession(id: string, body: ReplaceSession, options: WriteOptions & { ifMatch: number | "*" }): Promise<Session | Written> {
    // A conditional replacement applied twice is applied once: the second gets 412.
    return this.#write({ method: "PUT", path: sessionPath(id), body, idempotent: typeof options.ifMatch === "number" }, options);
  }

  /** `POST /v1/sessions/{id}/refresh`: renews the idle deadline. */
  async refreshSession(id: string, options: CallOptions = {}): Promise<Session> {
    // Refreshing twice leaves the session as refreshing once does.
    const request = { method: "POST", path: `${sessionPath(id)}/refresh`, idempotent: true, signal: options.signal } as const;
    return (await this.#call(request)).json() as Promise<Session>;
  }

  /** `POST /v1/sessions/{id}/regenerate`: moves the session to a fresh id (do it at login);
   * the old id stops working. */
  async regenerateSession(id: string, options: CallOptions = {}): Promise<Regenerated> {
    const request = { method: "POST", path: `${sessionPath(id)}/regenerate`, idempotent: false, signal: options.signal } as const;
    return (await this.#call(request)).json() as Promise<Regenerated>;
  }

  /** `DELETE /v1/sessions/{id}`. An absent session is `404 session_not_found`. */
  async deleteSession(id: string, options: CallOptions = {}): Promise<void> {
    await this.#delete(sessionPath(id), options.signal);
  }

  /** `GET /v1/users/{user_id}/sessions`: one page of the user's live sessions, oldest first. */
  async listUserSessions(userId: string, page: PageOptions = {}, options: CallOptions = {}): Promise<SessionList> {
    const path = `${userPath(userId)}${query({ limit: page.limit, cursor: page.cursor })}`;
    return (await this.#call({ method: "GET", path, idempotent: true, signal: options.signal })).json() as Promise<SessionList>;
  }

  /** Every live session of the user, page after page. */
  async *userSessions(userId: string, options: CallOptions & { pageSize?: number } = {}): AsyncGenerator<Session> {
    yield* pages((cursor) => this.listUserSessions(userId, { limit: options.pageSize, cursor }, options));
  }

  /** `DELETE /v1/users/{user_id}/sessions` ("sign out everywhere"): how many were deleted. */
  async revokeUserSessions(userId: string, options: CallOptions = {}): Promise<number> {
    const response = await this.#call({ method: "DELETE", path: userPath(userId), idempotent: true, signal: options.signal });
    return ((await response.json()) as Schemas["Deleted"]).deleted;
  }

  /** `GET /v1/sessions`: one page of every live session, or of those `createdBy` created.
   * A filtered page may hold fewer sessions than `limit`, even none, and still have a next. */
  async listSessions(page: PageOptions & { createdBy?: string } = {}, options: CallOptions = {}): Promise<SessionScan> {
    const path = `/v1/sessions${query({ limit: page.limit, cursor: page.cursor, created_by: page.createdBy })}`;
    return (await this.#call({ method: "GET", path, idempotent: true, signal: options.signal })).json() as Promise<SessionScan>;
  }

  /** Every live session (or every one `createdBy` created), page after page. */
  async *sessions(options: CallOptions & { createdBy?: string; pageSize?: number } = {}): AsyncGenerator<Session> {
    yield* pages((cursor) =>
      this.listSessions({ limit: options.pageSize, cursor, createdBy: options.createdBy }, options),
    );
  }

  /** `GET /v1/stats`. */
  async stats(options: CallOptions = {}): Promise<Stats> {
    return (await this.#call({ method: "GET", path: "/v1/stats", idempotent: true, signal: options.signal })).json() as Promise<Stats>;
  }

  /** `GET /v1/services` (admin): one page of the registered services, ordered by id. */
  async listServices(page: PageOptions = {}, options: CallOptions = {}): Promise<ServiceList> {
    const path = `/v1/services${query({ limit: page.limit, cursor: page.cursor })}`;
    return (await this.#call({ method: "GET", path, idempotent: true, signal: options.signal })).json() as Promise<ServiceList>;
  }

  /** `POST /v1/services` (admin): registers a service; its token is in the answer, once. */
  async createService(body: CreateService, options: CallOptions = {}): Promise<CreatedService> {
    const request = { method: "POST", path: "/v1/services", body, idempotent: false, signal: options.signal } as const;
    return (await this.#call(request)).json() as Promise<CreatedService>;
  }

  /** `PATCH /v1/services/{id}` (admin): replaces the service's permissions; its token keeps working. */
  async updateService(id: string, body: UpdateService, options: CallOptions = {}): Promise<Service> {
    // Setting the same permissions twice is setting them once.
    const request = { method: "PATCH", path: servicePath(id), body, idempotent: true, signal: options.signal } as const;
    return (await this.#call(request)).json() as Promise<Service>;
  }

  /** `DELETE /v1/services/{id}` (admin): its token stops working on every node. */
  async deleteService(id: string, options: CallOptions = {}): Promise<void> {
    await this.#delete(servicePath(id), options.signal);
  }

  /**
   * `GET /v1/events`: the server's events, as they happen (or from after the event `after`;
   * `"0"` for the oldest the server keeps), resumed from the last one received whenever the
   * connection drops, until the caller stops iterating or aborts `signal`. A server whose
   * store keeps no event log answers `501 events_unavailable`, thrown at the first step.
   */
  events(options: EventOptions = {}): AsyncGenerator<Received> {
    return readEvents(options, (after, signal) => {
      const params = query({ types: options.types?.join(","), user_id: options.userId });
      const headers: Record<string, string> = { accept: "text/event-stream" };
      if (after !== undefined) headers["last-event-id"] = after;
      // The stream lasts as long as it is read: no per-call timeout, only the caller's signal.
      return this.#send({ method: "GET", path: `/v1/events${params}`, headers, idempotent: true, signal }, null);
    });
  }

  async #delete(path: string, signal: AbortSignal | undefined): Promise<void> {
    let retried = false;
    try {
      await this.#call({ method: "DELETE", path, idempotent: true, signal, onRetry: () => (retried = true) });
    } catch (error) {
      // A delete retried after its answer was lost finds gone what the first attempt deleted.
      if (!(retried && error instanceof ApiError && error.notFound)) throw error;
    }
  }

  async #write(request: Request, options: WriteOptions): Promise<Session | Written> {
    const headers: Record<string, string> = {};
    if (options.ifMatch !== undefined) headers["if-match"] = options.ifMatch === "*" ? "*" : etag(options.ifMatch);
    if (options.minimal) headers.prefer = "return=minimal";
    const response = await this.#call({ ...request, headers, signal: options.signal });
    if (response.status === 204) return { version: versionOf(response) };
    return (await response.json()) as Session;
  }

  /** Sends `request`, retrying it if it is idempotent and the failure may pass. */
  async #call(request: Request): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#send(request, this.#timeoutMs);
      } catch (error) {
        const again = request.idempotent && attempt < this.#retries && error instanceof SessangerError && error.retryable;
        if (!again) throw error;
        request.onRetry?.();
        const delay = this.#retryDelayMs * 2 ** attempt * (0.5 + Math.random());
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  /** One attempt: the answer if it is a success (or 304), else the error it stands for. */
  async #send(request: Request, timeoutMs: number | null): Promise<Response> {
    const signals = [request.signal, timeoutMs === null ? undefined : AbortSignal.timeout(timeoutMs)];
    const signal = AbortSignal.any(signals.filter((s): s is AbortSignal => s !== undefined));
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, ...request.headers };
    let body: string | undefined;
    if (request.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(request.body);
    }
    let response: Response;
    try {
      response = await this.#fetch(`${this.baseUrl}${request.path}`, { method: request.method, headers, body, signal });
    } catch (cause) {
      const timedOut = cause instanceof DOMException && cause.name === "TimeoutError";
      const what = timedOut ? `timed out after ${timeoutMs} ms` : "failed";
      throw new TransportError(`${request.method} ${this.baseUrl}${request.path.split("?")[0]} ${what}`, timedOut, { cause });
    }
    if (response.ok || response.status === 304) return response;
    throw await apiError(response);
  }
}

/** Pages of a listing, followed by their `next_cursor`. */
async function* pages<T>(
  load: (cursor: string | undefined) => Promise<{ sessions: T[]; next_cursor?: string | null }>,
): AsyncGenerator<T> {
  let cursor: string | undefined;
  do {
    const page = await load(cursor);
    yield* page.sessions;
    cursor = page.next_cursor ?? undefined;
  } while (cursor !== undefined);
}

function etag(version: number): string {
  return `"${version}"`;
}

/** The version an `ETag` header names. */
function versionOf(response: Response): number {
  const tag = response.headers.get("etag") ?? "";
  const version = Number(tag.replace(/^"|"$/g, ""));
  if (!Number.isSafeInteger(version)) {
    throw new ApiError(response.status, "unknown", `the answer's ETag \`${tag}\` names no version`);
  }
  return version;
}

/** Ids are percent-encoded into paths: a user id may hold any printable character, and a
 * malformed session id must reach the server as one path segment to be refused there. */
function sessionPath(id: string): string {
  return `/v1/sessions/${encodeURIComponent(id)}`;
}

function userPath(userId: string): string {
  return `/v1/users/${encodeURIComponent(userId)}/sessions`;
}

function servicePath(id: string): string {
  return `/v1/services/${encodeURIComponent(id)}`;
}

/** `?a=1&b=2` of the parameters that are set. */
function query(params: Record<string, string | number | undefined>): string {
  const set = Object.entries(params).filter((entry): entry is [string, string | number] => entry[1] !== undefined);
  return set.length === 0 ? "" : `?${new URLSearchParams(set.map(([k, v]): [string, string] => [k, String(v)])).toString()}`;
}
