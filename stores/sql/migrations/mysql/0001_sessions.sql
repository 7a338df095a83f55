-- Times are integer milliseconds since the Unix epoch, exactly as `Timestamp` holds them:
-- no time zone, no rounding, the same in every dialect. Ids and user ids compare bytewise
-- (`_bin` collations): session ids are case-sensitive base64url, and a user id is whatever
-- bytes the caller chose. JSON columns are LONGTEXT with a validity check on MariaDB.
CREATE TABLE sessions (
    id                  VARCHAR(43) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    user_id             VARCHAR(256) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    created_at          BIGINT NOT NULL,
    last_access_at      BIGINT NOT NULL,
    idle_ttl_ms         BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    device              JSON NOT NULL,
    created_by          VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    attributes          JSON NOT NULL,
    version             BIGINT NOT NULL,
    -- A user's sessions, oldest first: list_user, delete_user and the per-user limit read
    -- (and lock) one range.
    INDEX sessions_by_user (user_id, created_at, id),
    -- Sessions in the order they die: the purge reads only the due ones.
    INDEX sessions_by_expiry (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE services (
    id            VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    name          TEXT NOT NULL,
    permissions   JSON NOT NULL,
    secret_sha256 VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at    BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
