/**
 * `sessanger`: a typed client of sessanger's native `/v1` HTTP API, on Node's own `fetch`.
 * The express-session store is `sessanger/express`.
 */

export {
  Client,
  type ClientOptions,
  type CallOptions,
  type WriteOptions,
  type PageOptions,
  type Written,
  type Session,
  type CreateSession,
  type ReplaceSession,
  type Patch,
  type Regenerated,
  type SessionList,
  type SessionScan,
  type Stats,
  type Service,
  type CreateService,
  type CreatedService,
  type UpdateService,
  type ServiceList,
} from "./client.js";
export { ApiError, SessangerError, TransportError, type ErrorCode } from "./errors.js";
export type { Event, EventOptions, Received } from "./events.js";
export { ANONYMOUS_PREFIX, sessionIdOf, shardTag } from "./ids.js";
export type { components, paths } from "./schema.js";
