-- Version 2: the audit trail of one thing ("rollout r-12"), newest first, for
-- the rollout and device views, without scanning the whole log.
CREATE INDEX audit_by_target ON audit (target, seq);
