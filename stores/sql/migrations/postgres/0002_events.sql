-- The event log. A row is written by the statement (or transaction) of the change it
-- describes. `id` is the order rows were written in, which is not the order they commit in;
-- `seq`, given to committed rows in `id` order by one sequencer at a time, is: consumers
-- read by `seq`, so a row that commits late is read late, never skipped.
CREATE TABLE events (
    id      BIGSERIAL PRIMARY KEY,
    seq     BIGINT UNIQUE,
    at      BIGINT NOT NULL,
    service TEXT,
    event   JSONB NOT NULL
);
-- The rows still waiting for their `seq`: the sequencer reads only those.
CREATE INDEX events_unsequenced ON events (id) WHERE seq IS NULL;

-- `last_seq`: the newest `seq` given; `trimmed_through`: the newest one trimming dropped.
CREATE TABLE event_counters (
    name  TEXT COLLATE "C" PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO event_counters (name, value) VALUES ('last_seq', 0), ('trimmed_through', 0);

-- Who forwards the log elsewhere (RabbitMQ), until when, and how far it got.
CREATE TABLE event_relays (
    name     TEXT COLLATE "C" PRIMARY KEY,
    holder   TEXT NOT NULL,
    until    BIGINT NOT NULL,
    position BIGINT
);
