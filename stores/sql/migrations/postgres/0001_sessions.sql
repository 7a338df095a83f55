-- Times are integer milliseconds since the Unix epoch, exactly as `Timestamp` holds them:
-- no time zone, no rounding, the same in every dialect. Ids compare bytewise (COLLATE "C"):
-- they are case-sensitive base64url, and bytewise order is what a b-tree does fastest.
CREATE TABLE sessions (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    user_id             TEXT COLLATE "C" NOT NULL,
    created_at          BIGINT NOT NULL,
    last_access_at      BIGINT NOT NULL,
    idle_ttl_ms         BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    device              JSONB NOT NULL,
    created_by          TEXT,
    attributes          JSONB NOT NULL,
    version             BIGINT NOT NULL
);

-- A user's sessions, oldest first: list_user, delete_user and the per-user limit read one range.
CREATE INDEX sessions_by_user ON sessions (user_id, created_at, id);
-- Sessions in the order they die: the purge reads only the due ones.
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE services (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT NOT NULL,
    permissions   JSONB NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
