/**
 * Cookie ids and the sessanger session ids they name, exactly as `sessanger-tower` (the Rust
 * web middleware) makes them, so an Express app and an axum app on one site read one cookie
 * as one session.
 *
 * sessanger needs every session id to start with its user's shard tag, but a cookie must name
 * its session on its own. So the cookie holds a tower-sessions id (128 bits, 22 base64url
 * characters of its little-endian bytes) whose first 12 bits, read big-endian, are the user's
 * shard tag and the other 116 come from the OS CSPRNG; the session id is that tag followed by
 * 41 characters of the SHA-256 of the id. No mapping is stored, and the derivation is one-way:
 * a session id listed by `/v1` cannot be turned back into a cookie.
 */

import { createHash, randomBytes } from "node:crypto";

/** Separates this hash from any other SHA-256 of 16 bytes (the Rust side's `DOMAIN`). */
const DOMAIN = Buffer.from("sessanger-tower/v1 session id\0");

/** Separates the hash naming an anonymous user from the one naming a session. */
const ANONYMOUS_DOMAIN = Buffer.from("sessanger/express anonymous user\0");

/** Separates the hashes of the ids express-session makes itself (`genid` not given). */
const FOREIGN_DOMAIN = Buffer.from("sessanger/express foreign session id\0");
const FOREIGN_ANONYMOUS_DOMAIN = Buffer.from("sessanger/express foreign anonymous user\0");

/** The prefix of the users that hold sessions nobody has logged in to (as in `sessanger-tower`). */
export const ANONYMOUS_PREFIX = "~anonymous/";

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** A user's shard tag: the first two base64url characters of the SHA-256 of its id. */
export function shardTag(userId: string): string {
  return createHash("sha256").update(userId, "utf8").digest("base64url").slice(0, 2);
}

/** A fresh cookie id whose session lands on the shard `tag` names. */
export function mintCookieId(tag: string): string {
  return tagged(randomBytes(16), tag);
}

/** A fresh cookie id for an anonymous session: its tag is its own anonymous user's. */
export function mintAnonymousCookieId(): string {
  const bigEndian = randomBytes(16);
  // The anonymous user depends on the random bits only, so tagging keeps it.
  return tagged(bigEndian, shardTag(anonymousUserOfBytes(bigEndian)));
}

/** The cookie id of `bigEndian` with its first 12 bits set to `tag`. */
function tagged(bigEndian: Buffer, tag: string): string {
  const bits = (BASE64URL.indexOf(tag[0] ?? "") << 6) | BASE64URL.indexOf(tag[1] ?? "");
  bigEndian[0] = bits >> 4;
  bigEndian[1] = ((bits & 0x0f) << 4) | (bigEndian[1]! & 0x0f);
  return Buffer.from(bigEndian).reverse().toString("base64url");
}

/** The big-endian bytes of a cookie id of ours, or `null` for another string (tower-sessions
 * refuses the same strings: anything but 22 canonical base64url characters). */
function bytesOf(cookieId: string): Buffer | null {
  if (!/^[A-Za-z0-9_-]{22}$/.test(cookieId)) return null;
  const littleEndian = Buffer.from(cookieId, "base64url");
  // The last character carries 4 unused bits; a string with them set is not canonical.
  if (littleEndian.length !== 16 || littleEndian.toString("base64url") !== cookieId) return null;
  return littleEndian.reverse();
}

/**
 * The sessanger session id a cookie id names: for one of ours (22 base64url characters, as
 * `sessanger-tower` reads them) the tag it carries and 41 characters of its hash; for any other
 * string (express-session's own ids, when the store does not mint them) the tag of its
 * anonymous user and a hash of the string: such a session can only be anonymous, and logging
 * in moves it to an id of ours.
 */
export function sessionIdOf(cookieId: string): string {
  const bytes = bytesOf(cookieId);
  if (bytes === null) {
    const hash = createHash("sha256").update(FOREIGN_DOMAIN).update(cookieId, "utf8").digest("base64url");
    return shardTag(anonymousUserOf(cookieId)) + hash.slice(0, 41);
  }
  const tag = BASE64URL[bytes[0]! >> 2]! + BASE64URL[((bytes[0]! & 0x03) << 4) | (bytes[1]! >> 4)]!;
  const digest = createHash("sha256").update(DOMAIN).update(bytes).digest("base64url");
  return tag + digest.slice(0, 41);
}

/** Whether a cookie id is one of ours: one `sessanger-tower` reads too. */
export function isSharedCookieId(cookieId: string): boolean {
  return bytesOf(cookieId) !== null;
}

/**
 * The anonymous user of a session nobody has logged in to: a user of its own, so anonymous
 * sessions never share a user index entry, and named by the cookie's random part through a
 * one-way hash, so the store finds it again from the cookie alone.
 */
export function anonymousUserOf(cookieId: string): string {
  const bytes = bytesOf(cookieId);
  if (bytes !== null) return anonymousUserOfBytes(bytes);
  const hash = createHash("sha256").update(FOREIGN_ANONYMOUS_DOMAIN).update(cookieId, "utf8").digest("base64url");
  return ANONYMOUS_PREFIX + hash.slice(0, 22);
}

function anonymousUserOfBytes(bigEndian: Buffer): string {
  const random = Buffer.from(bigEndian);
  random[0] = 0;
  random[1]! &= 0x0f;
  return ANONYMOUS_PREFIX + createHash("sha256").update(ANONYMOUS_DOMAIN).update(random).digest("base64url").slice(0, 22);
}
