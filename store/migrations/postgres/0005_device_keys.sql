-- Version 5: device ids are scoped per tenant. A device is stored, found and
-- locked by its key "<tenant>/<device id>" (core::device_key), so tenants a and
-- b may each have a "gw-1" and neither can take the other's. Every device
-- column (devices.id, device_states.device, device_events.device,
-- rollout_marks.device) moves from the id to the key; '/' is in no id, so a
-- row already keyed is left as it is. The tokens handed out before keep their
-- hashes: the server finds a token that names the id alone in the tenant whose
-- device holds its hash. Audit entries are history and keep what they said.
UPDATE device_states SET device = (SELECT d.tenant || '/' || d.id FROM devices d WHERE d.id = device_states.device)
  WHERE device NOT LIKE '%/%' AND EXISTS (SELECT 1 FROM devices d WHERE d.id = device_states.device);
UPDATE device_events SET device = (SELECT d.tenant || '/' || d.id FROM devices d WHERE d.id = device_events.device)
  WHERE device NOT LIKE '%/%' AND EXISTS (SELECT 1 FROM devices d WHERE d.id = device_events.device);
UPDATE rollout_marks SET device = (SELECT d.tenant || '/' || d.id FROM devices d WHERE d.id = rollout_marks.device)
  WHERE device NOT LIKE '%/%' AND EXISTS (SELECT 1 FROM devices d WHERE d.id = rollout_marks.device);
UPDATE devices SET id = tenant || '/' || id WHERE id NOT LIKE '%/%';
