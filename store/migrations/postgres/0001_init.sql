-- tranche-server's schema, version 1 (PostgreSQL). Rows mirror store/store.h and
-- the SQLite schema (store/migrations/sqlite/0001_init.sql) column for column.
-- Times are milliseconds since the Unix epoch (BIGINT); *_json columns hold JSON
-- text the server writes and reads whole (TEXT, not JSONB: the store never looks
-- inside, and TEXT gives back exactly the bytes written).

CREATE TABLE tenants (
  id                  TEXT PRIMARY KEY,
  enrollment_key_hash TEXT NOT NULL,
  policy_json         TEXT NOT NULL
);

CREATE TABLE operator_tokens (
  token_hash TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  role       SMALLINT NOT NULL CHECK (role BETWEEN 0 AND 2)  -- store::Role
);

-- No foreign key to tenants: a device row is written at enrollment, after the
-- server has checked the tenant in memory; the key would cost a lookup per row.
CREATE TABLE devices (
  id                 TEXT PRIMARY KEY,
  tenant             TEXT NOT NULL,
  token_hash         TEXT NOT NULL,
  tags_json          TEXT NOT NULL,
  utc_offset_minutes INTEGER NOT NULL,
  enrolled_at        BIGINT NOT NULL
);

CREATE TABLE device_states (
  device         TEXT PRIMARY KEY,
  versions_json  TEXT NOT NULL,
  failed_json    TEXT NOT NULL,
  health_json    TEXT NOT NULL,
  last_seen      BIGINT NOT NULL,
  said_goodbye   BOOLEAN NOT NULL,
  last_event_seq BIGINT NOT NULL
);

CREATE TABLE device_events (
  device      TEXT NOT NULL,
  seq         BIGINT NOT NULL,
  kind        TEXT NOT NULL,
  channel     TEXT NOT NULL,
  version     TEXT NOT NULL,
  detail_json TEXT NOT NULL,
  at          BIGINT NOT NULL,
  PRIMARY KEY (device, seq)  -- a replayed event is refused here too
);

CREATE TABLE releases (
  channel           TEXT NOT NULL,
  version           TEXT NOT NULL,
  targets_json      TEXT NOT NULL,
  contract_bypassed BOOLEAN NOT NULL,
  registered_at     BIGINT NOT NULL,
  PRIMARY KEY (channel, version)
);

CREATE TABLE rollouts (
  id          TEXT PRIMARY KEY,
  channel     TEXT NOT NULL,
  version     TEXT NOT NULL,
  previous    TEXT NOT NULL,
  plan_yaml   TEXT NOT NULL,
  salt        BIGINT NOT NULL,  -- the uint64 salt's bits as a signed 64-bit integer
  status_json TEXT NOT NULL,
  gate_json   TEXT NOT NULL,
  generation  BIGINT NOT NULL,
  created_at  BIGINT NOT NULL,
  updated_at  BIGINT NOT NULL
);

-- One row per applied transition; (rollout, generation) unique, so the same
-- transition can never be recorded twice, whichever server wrote it.
CREATE TABLE rollout_transitions (
  rollout    TEXT NOT NULL REFERENCES rollouts (id),
  generation BIGINT NOT NULL,
  from_state TEXT NOT NULL,
  to_state   TEXT NOT NULL,
  event      TEXT NOT NULL,
  reason     TEXT NOT NULL,
  at         BIGINT NOT NULL,
  PRIMARY KEY (rollout, generation)
);

-- seq comes from an identity sequence; the store takes a transaction-level
-- advisory lock before every audit insert, so seqs commit in the order they are
-- drawn and a reader paging with "seq > last seen" never skips one that commits
-- late (see docs/store.md).
CREATE TABLE audit (
  seq    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at     BIGINT NOT NULL,
  actor  TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  reason TEXT NOT NULL
);
