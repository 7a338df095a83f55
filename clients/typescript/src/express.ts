/**
 * `sessanger/express`: an `express-session` store keeping sessions in sessanger.
 *
 * ```js
 * import session from "express-session";
 * import { Client } from "sessanger";
 * import { SessangerStore } from "sessanger/express";
 *
 * const store = new SessangerStore({ client: new Client({ baseUrl, token }) }); // was: new RedisStore({ client })
 * app.use(session({ store, secret, resave: false, saveUninitialized: false }));
 * ```
 *
 * Beyond what connect-redis offers, every session is indexed by its user: log in with
 * {@link SessangerStore.logIn}, list a user's devices with {@link SessangerStore.listUserSessions},
 * sign out everywhere with {@link SessangerStore.signOutEverywhere}; and every other service
 * sees the same sessions through `/v1`. A logged-in session's cookie id, and with
 * `genid: store.genid` every session's, is one `sessanger-tower` makes too (see `ids.ts`): an
 * axum app on the same site reads it as the same session.
 */

import type { Request } from "express";
import session from "express-session";

import type { Client, Session } from "./client.js";
import { ApiError } from "./errors.js";
import { ANONYMOUS_PREFIX, anonymousUserOf, mintAnonymousCookieId, mintCookieId, sessionIdOf, shardTag } from "./ids.js";

type SessionData = session.SessionData;
type Callback<T = void> = (error?: unknown, value?: T) => void;

/** The session data key holding the session's device, moved to sessanger's own device field
 * (as `sessanger-tower`'s `DEVICE_KEY`), so `/v1` and device lists show it. */
export const DEVICE_KEY = "sessanger.device";

/** The session data key keeping express-session's cookie options beside the data. */
const COOKIE_KEY = "express-session.cookie";

/** How often a write is tried again when another request changed the session in between. */
const SAVE_ATTEMPTS = 5;

/** How long, and for how many sessions, an id `genid` minted may still create its session. */
const FRESH_FOR_MS = 10 * 60_000;
const MOST_FRESH = 100_000;

/** What a session's device is: where the user opened it from. */
export interface Device {
  device_id?: string | null;
  ip?: string | null;
  user_agent?: string | null;
}

/** How a {@link SessangerStore} keeps sessions. */
export interface StoreOptions {
  /** The client of the sessanger server; its service needs `read` and `write`. */
  client: Client;
  /** The session data key holding the logged-in user (a string). Default `user_id`, as in `sessanger-tower`. */
  userAttribute?: string;
  /** How long, in seconds, a session whose cookie lasts until the browser closes lives on the
   * server without a request. Default one day, as connect-redis's `ttl`. */
  ttl?: number;
}

/**
 * An `express-session` store over sessanger: `get`, `set`, `destroy`, `touch`, `all`,
 * `length` and `clear`, and an optional `genid` for `session()`.
 *
 * - **Lifetime**: as connect-redis keeps it, a session lives on the server until its cookie's
 *   `expires` (or `ttl` for a cookie without one), renewed by each `set` and `touch`; never past
 *   the server's absolute lifetime.
 * - **No resurrection**: `set` creates a session only under an id express-session generated
 *   for a new session in this process in the last ten minutes; a session deleted meanwhile
 *   (logout elsewhere, sign out everywhere, expiry) is not brought back by a request that was
 *   in flight.
 * - **Users**: the data key `userAttribute` is the session's sessanger user; a session
 *   without it belongs to an anonymous user of its own. A session never changes user under
 *   the same id: log in with {@link logIn}, which regenerates the id first.
 * - **Concurrency**: `set` replaces the data at the version it read, retried when another
 *   request wrote in between, so the last writer wins whole, never half.
 */
export class SessangerStore extends session.Store {
  readonly client: Client;
  readonly userAttribute: string;
  readonly ttl: number;
  /** Logins in progress: the user whose shard the next id of this request must land on. */
  readonly #loggingIn = new WeakMap<object, string>();
  /** Ids generated here and not yet stored, with when, oldest first. */
  readonly #fresh = new Map<string, number>();
  /** express-session's own `generate`, which `session()` hands the store. */
  #generate: ((req: Request) => void) | undefined;

  constructor(options: StoreOptions) {
    super();
    this.client = options.client;
    this.userAttribute = options.userAttribute ?? "user_id";
    this.ttl = options.ttl ?? 86_400;
  }

  /**
   * Optional, as `session({ genid: store.genid })`: ids an axum app with `sessanger-tower`
   * reads too, so even sessions nobody has logged in to yet are shared. Without it,
   * express-session's own ids serve anonymous sessions. Either way {@link logIn} moves the
   * session to an id of this kind on the user's shard.
   */
  readonly genid = (): string => mintAnonymousCookieId();

  /**
   * express-session's `session()` gives its store a `generate` (a new id, session and cookie
   * for a request), called for each new session and by `regenerate`. The store wraps it: the
   * ids it makes are the only ones `set` may create a session under, and during a login the new
   * id must land on the user's shard.
   */
  set generate(generate: (req: Request) => void) {
    this.#generate = generate;
  }

  get generate(): (req: Request) => void {
    return (req) => {
      if (this.#generate === undefined) throw new Error("SessangerStore is used outside express-session's session()");
      this.#generate(req);
      const user = this.#loggingIn.get(req);
      if (user !== undefined) {
        // The new id of a login: one of ours, on the user's shard, with the cookie
        // express-session just made (the way it inflates a session read from a store).
        req.sessionID = mintCookieId(shardTag(user));
        this.createSession(req, { cookie: JSON.parse(JSON.stringify(req.session.cookie)) as session.Cookie });
      }
      this.#fresh.set(req.sessionID, Date.now());
      this.#forgetOldFresh();
    };
  }

  /** Drops the fresh ids past their time, or past the most kept. */
  #forgetOldFresh(): void {
    const since = Date.now() - FRESH_FOR_MS;
    for (const [id, at] of this.#fresh) {
      if (at > since && this.#fresh.size <= MOST_FRESH) break;
      this.#fresh.delete(id);
    }
  }

  override get(sid: string, callback: Callback<SessionData | null>): void {
    settle(this.#get(sid), callback);
  }

  override set(sid: string, data: SessionData, callback?: Callback): void {
    settle(this.#set(sid, data), callback);
  }

  override destroy(sid: string, callback?: Callback): void {
    settle(this.#destroy(sid), callback);
  }

  override touch(sid: string, _data: SessionData, callback?: Callback): void {
    settle(this.#touch(sid), callback);
  }

  /** Every live session this store's service created, keyed by sessanger session id (cookie ids
   * cannot be recovered from them: that mapping is one-way on purpose). */
  override all(callback: Callback<Record<string, SessionData>>): void {
    settle(this.#all(), callback);
  }

  /** How many live sessions this store's service created. */
  override length(callback: Callback<number>): void {
    settle(this.#all().then((all) => Object.keys(all).length), callback);
  }

  /** Deletes every session this store's service created (not those of other services). */
  override clear(callback?: Callback): void {
    settle(this.#clear(), callback);
  }

  /**
   * Logs `userId` in on this request's session: regenerates the session id first (the old one
   * is deleted, so an id planted before login is worthless), on the user's shard, then records
   * the user and the device. Data put in the session before login is kept, unless it belonged
   * to another user. The session is stored before it returns.
   */
  async logIn(req: Request, userId: string, device?: Device): Promise<void> {
    const current = req.session as unknown as Record<string, unknown>;
    const previous = current[this.userAttribute];
    const kept = previous === undefined || previous === userId ? dataOf(current) : {};
    this.#loggingIn.set(req, userId);
    try {
      await new Promise<void>((resolve, reject) => req.session.regenerate((e) => (e ? reject(e) : resolve())));
    } finally {
      this.#loggingIn.delete(req);
    }
    const fresh = req.session as unknown as Record<string, unknown>;
    Object.assign(fresh, kept, { [this.userAttribute]: userId });
    if (device !== undefined) fresh[DEVICE_KEY] = device;
    // Stored now, not when the answer ends: express-session sends the headers (a redirect
    // home, say) before its own save completes, and the browser would arrive logged out.
    await new Promise<void>((resolve, reject) => req.session.save((e) => (e ? reject(e) : resolve())));
  }

  /** The user logged in on this request's session, if any. */
  currentUser(req: Request): string | undefined {
    const user = (req.session as unknown as Record<string, unknown> | undefined)?.[this.userAttribute];
    return typeof user === "string" ? user : undefined;
  }

  /** The sessanger id of this request's session: compare with {@link listUserSessions} to mark "this device". */
  sessionId(req: Request): string {
    return sessionIdOf(req.sessionID);
  }

  /** Every live session of the user, across devices and services, oldest first. */
  async listUserSessions(userId: string): Promise<Session[]> {
    const sessions: Session[] = [];
    for await (const s of this.client.userSessions(userId)) sessions.push(s);
    return sessions;
  }

  /** Deletes every session of the logged-in user, on every device and in every service, this
   * one included; returns how many were deleted (0 for an anonymous session). */
  async signOutEverywhere(req: Request): Promise<number> {
    const user = this.currentUser(req);
    const deleted = user === undefined ? 0 : await this.client.revokeUserSessions(user);
    await new Promise<void>((resolve, reject) => req.session.destroy((e) => (e ? reject(e) : resolve())));
    return deleted;
  }

  async #get(sid: string): Promise<SessionData | null> {
    const stored = await orNull(this.client.getSession(sessionIdOf(sid)));
    return stored === null ? null : this.#data(stored);
  }

  async #set(sid: string, data: SessionData): Promise<void> {
    const id = sessionIdOf(sid);
    const { attributes, device, wanted } = this.#split(data);
    const ttl = this.#ttlOf(data);
    // A new session's first save creates it, in one round trip; the id is then no longer new.
    if (this.#fresh.delete(sid)) {
      const user = wanted ?? anonymousUserOf(sid);
      if (shardTag(user) !== id.slice(0, 2)) throw userChanged();
      try {
        await this.client.createSession({ session_id: id, user_id: user, attributes, ttl_secs: ttl, ...device });
        return;
      } catch (error) {
        // Taken: this process saved it already (two saves of one new session), so replace it.
        if (!(error instanceof ApiError && error.code === "session_id_taken")) {
          this.#fresh.set(sid, Date.now()); // not created: a retry of this save may still create it
          throw error;
        }
      }
    }
    for (let attempt = 0; attempt < SAVE_ATTEMPTS; attempt++) {
      const current = await orNull(this.client.getSession(id));
      // Deleted meanwhile (or never created): a request in flight does not bring it back.
      if (current === null) return;
      if (wanted === undefined ? !current.user_id.startsWith(ANONYMOUS_PREFIX) : current.user_id !== wanted) {
        throw userChanged();
      }
      try {
        await this.client.replaceSession(id, { attributes, device }, { ifMatch: current.version, minimal: true });
        // The cookie may have moved the deadline (rolling sessions): the idle window follows.
        await orNull(this.client.refreshSession(id));
        return;
      } catch (error) {
        if (error instanceof ApiError && error.code === "version_mismatch") continue;
        if (error instanceof ApiError && error.notFound) return;
        throw error;
      }
    }
    throw new Error(`session changed ${SAVE_ATTEMPTS} times while being saved`);
  }

  async #destroy(sid: string): Promise<void> {
    this.#fresh.delete(sid);
    await orNull(this.client.deleteSession(sessionIdOf(sid)));
  }

  async #touch(sid: string): Promise<void> {
    await orNull(this.client.refreshSession(sessionIdOf(sid)));
  }

  async #all(): Promise<Record<string, SessionData>> {
    const all: Record<string, SessionData> = {};
    for await (const s of this.client.sessions({ createdBy: this.client.service, pageSize: 1000 })) {
      all[s.session_id] = this.#data(s);
    }
    return all;
  }

  async #clear(): Promise<void> {
    for (const id of Object.keys(await this.#all())) await orNull(this.client.deleteSession(id));
  }

  /** A stored session as express-session data: its attributes, its device under
   * {@link DEVICE_KEY}, and its cookie (one a non-Express app created gets a browser-session cookie). */
  #data(stored: Session): SessionData {
    const { [COOKIE_KEY]: cookie, ...attributes } = stored.attributes as Record<string, unknown>;
    const device = Object.fromEntries(Object.entries(stored.device ?? {}).filter(([, v]) => v != null));
    const data: Record<string, unknown> = { ...attributes, cookie: cookie ?? { originalMaxAge: null, expires: null, path: "/", httpOnly: true } };
    if (Object.keys(device).length > 0) data[DEVICE_KEY] = device;
    return data as unknown as SessionData;
  }

  /** express-session data as sessanger attributes, device and user. */
  #split(data: SessionData): { attributes: Record<string, unknown>; device: Device; wanted: string | undefined } {
    const { cookie, [DEVICE_KEY]: device, ...rest } = data as unknown as Record<string, unknown>;
    const attributes = { ...rest, [COOKIE_KEY]: cookie };
    const user = rest[this.userAttribute];
    if (user !== undefined && (typeof user !== "string" || user.startsWith(ANONYMOUS_PREFIX))) {
      throw new Error(`session attribute \`${this.userAttribute}\` must be a user id, not ${JSON.stringify(user)}`);
    }
    return { attributes, device: (device ?? {}) as Device, wanted: user };
  }

  /** The idle window, in whole seconds: until the cookie expires, or {@link ttl} for a browser-session cookie. */
  #ttlOf(data: SessionData): number {
    const expires = data.cookie?.expires;
    if (expires == null) return this.ttl;
    return Math.max(1, Math.ceil((new Date(expires).getTime() - Date.now()) / 1000));
  }
}

/** The session's data without express-session's cookie. */
function dataOf(session: Record<string, unknown>): Record<string, unknown> {
  const { cookie: _cookie, ...data } = session;
  return data;
}

function userChanged(): Error {
  return new Error(
    "the session's user changed without a new id: log in with store.logIn(req, user) and log out with req.session.destroy()",
  );
}

/** The call's result, or `null` if the session is gone (404). */
async function orNull<T>(call: Promise<T>): Promise<T | null> {
  try {
    return await call;
  } catch (error) {
    if (error instanceof ApiError && error.notFound) return null;
    throw error;
  }
}

/** Calls express-session's callback with the promise's outcome. */
function settle<T>(promise: Promise<T>, callback: Callback<T> | undefined): void {
  promise.then(
    (value) => callback?.(null, value),
    (error: unknown) => callback?.(error),
  );
}
