-- The event log. A row is written in the transaction of the change it describes. `id` is the
-- order rows were written in, which is not the order they commit in; `seq`, given to
-- committed rows in `id` order by one sequencer at a time, is: consumers read by `seq`, so a
-- row that commits late is read late, never skipped. The unique index on `seq` also lists
-- the rows still waiting for theirs (`seq IS NULL`) in `id` order, for the sequencer.
CREATE TABLE events (
    id      BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    seq     BIGINT NULL,
    at      BIGINT NOT NULL,
    service VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    event   JSON NOT NULL,
    UNIQUE INDEX events_by_seq (seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- `last_seq`: the newest `seq` given; `trimmed_through`: the newest one trimming dropped.
CREATE TABLE event_counters (
    name  VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
) ENGINE = InnoDB;
INSERT INTO event_counters (name, value) VALUES ('last_seq', 0), ('trimmed_through', 0);

-- Who forwards the log elsewhere (RabbitMQ), until when, and how far it got.
CREATE TABLE event_relays (
    name     VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    holder   VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    until    BIGINT NOT NULL,
    position BIGINT NULL
) ENGINE = InnoDB;
