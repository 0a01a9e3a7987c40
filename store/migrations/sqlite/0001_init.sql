-- tranche-server's schema, version 1 (SQLite). Rows mirror store/store.h.
-- Times are milliseconds since the Unix epoch (INTEGER); *_json columns hold
-- JSON text the server writes and reads whole. Uniqueness lives in primary
-- keys, so a duplicate is a constraint error the store turns into kConflict.

CREATE TABLE tenants (
  id                  TEXT PRIMARY KEY,
  enrollment_key_hash TEXT NOT NULL,
  policy_json         TEXT NOT NULL
);

CREATE TABLE operator_tokens (
  token_hash TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  role       INTEGER NOT NULL CHECK (role BETWEEN 0 AND 2)  -- store::Role
);

-- No foreign key to tenants: a device row is written at enrollment, after the
-- server has checked the tenant in memory; the key would cost a lookup per row.
CREATE TABLE devices (
  id                 TEXT PRIMARY KEY,
  tenant             TEXT NOT NULL,
  token_hash         TEXT NOT NULL,
  tags_json          TEXT NOT NULL,
  utc_offset_minutes INTEGER NOT NULL,
  enrolled_at        INTEGER NOT NULL
);

CREATE TABLE device_states (
  device         TEXT PRIMARY KEY,
  versions_json  TEXT NOT NULL,
  failed_json    TEXT NOT NULL,
  health_json    TEXT NOT NULL,
  last_seen      INTEGER NOT NULL,
  said_goodbye   INTEGER NOT NULL,  -- 0 or 1
  last_event_seq INTEGER NOT NULL
);

CREATE TABLE device_events (
  device      TEXT NOT NULL,
  seq         INTEGER NOT NULL,
  kind        TEXT NOT NULL,
  channel     TEXT NOT NULL,
  version     TEXT NOT NULL,
  detail_json TEXT NOT NULL,
  at          INTEGER NOT NULL,
  PRIMARY KEY (device, seq)  -- a replayed event is refused here too
);

CREATE TABLE releases (
  channel           TEXT NOT NULL,
  version           TEXT NOT NULL,
  targets_json      TEXT NOT NULL,
  contract_bypassed INTEGER NOT NULL,  -- 0 or 1
  registered_at     INTEGER NOT NULL,
  PRIMARY KEY (channel, version)
);

CREATE TABLE rollouts (
  id          TEXT PRIMARY KEY,
  channel     TEXT NOT NULL,
  version     TEXT NOT NULL,
  previous    TEXT NOT NULL,
  plan_yaml   TEXT NOT NULL,
  salt        INTEGER NOT NULL,  -- the uint64 salt's bits as a signed 64-bit integer
  status_json TEXT NOT NULL,
  gate_json   TEXT NOT NULL,
  generation  INTEGER NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);

-- One row per applied transition; (rollout, generation) unique, so the same
-- transition can never be recorded twice.
CREATE TABLE rollout_transitions (
  rollout    TEXT NOT NULL REFERENCES rollouts (id),
  generation INTEGER NOT NULL,
  from_state TEXT NOT NULL,
  to_state   TEXT NOT NULL,
  event      TEXT NOT NULL,
  reason     TEXT NOT NULL,
  at         INTEGER NOT NULL,
  PRIMARY KEY (rollout, generation)
);

-- AUTOINCREMENT: seq only grows and is never reused, so a reader paging with
-- "seq > last seen" misses nothing.
CREATE TABLE audit (
  seq    INTEGER PRIMARY KEY AUTOINCREMENT,
  at     INTEGER NOT NULL,
  actor  TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  reason TEXT NOT NULL
);
