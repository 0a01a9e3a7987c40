-- Version 3: exact evidence whichever server heard what (docs/scale.md).
--  - device_states: the server that owns the device since when, and a revision
--    that only goes up (a stale row never overwrites a newer one);
--  - rollout_marks: one device's standing in one rollout, moved only forward
--    (core::merge_standing; `rank` is core::standing_rank of `standing`);
--  - rollout_exposure: the device-time each server accrued, per rollout (in
--    device-milliseconds: integers, so a sum never depends on row order), and
--    what it counts now of the devices it owns (coverage, devices on the version);
--  - servers: when each server last said it is alive; a device whose owner
--    stopped is an orphan the engine's leader claims (find_orphans).
ALTER TABLE device_states ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE device_states ADD COLUMN owner_since BIGINT NOT NULL DEFAULT 0;
ALTER TABLE device_states ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
CREATE INDEX device_states_by_claim ON device_states (owner_since);
CREATE INDEX device_states_by_owner ON device_states (owner);

CREATE TABLE rollout_marks (
  rollout         TEXT NOT NULL,
  device          TEXT NOT NULL,
  standing        TEXT NOT NULL,
  rank            SMALLINT NOT NULL,
  failure         TEXT NOT NULL,
  offered_at      BIGINT NOT NULL,
  acknowledged_at BIGINT NOT NULL,
  failed_at       BIGINT NOT NULL,
  PRIMARY KEY (rollout, device)
);
CREATE INDEX rollout_marks_by_device ON rollout_marks (device);

CREATE TABLE rollout_exposure (
  rollout    TEXT NOT NULL,
  server     TEXT NOT NULL,
  exposed_ms  BIGINT NOT NULL,
  control_ms  BIGINT NOT NULL,
  coverage_target   BIGINT NOT NULL,
  coverage_running  BIGINT NOT NULL,
  online_on_version BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (rollout, server)
);

CREATE TABLE servers (
  id      TEXT PRIMARY KEY,
  seen_at BIGINT NOT NULL
);
