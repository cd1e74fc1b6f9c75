-- Events to subscribers: every change worth telling is recorded in `outbox` in the transaction
-- of the change (`repository` orders deliveries, empty for registry-wide events; `event_id` is
-- the envelope's id, the same on every retry). `delivered_at` now marks an event handed to the
-- rules it matched (one `event_deliveries` row per matched target); older events were written
-- before rules existed and are marked handed over.
-- An event rule holds an EventBridge event pattern and its targets (webhooks, NATS subjects); the
-- targets' JSON is sealed with the secrets key (URLs, signing secrets and headers can be
-- credentials). A delivery is `pending` (retried from `next_attempt_at`; the first pending
-- delivery of a repository holds back the later ones of that target), `delivered`, or `dead`
-- (failed for longer than the retry window; redrive makes it pending again, its window restarted
-- at `window_start`). Times are Unix milliseconds.
ALTER TABLE outbox ADD COLUMN repository TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN event_id TEXT NOT NULL DEFAULT '';
UPDATE outbox SET delivered_at = created_at WHERE delivered_at IS NULL;

CREATE TABLE event_rules (
    name TEXT NOT NULL PRIMARY KEY,
    description TEXT NOT NULL,
    pattern TEXT NOT NULL,
    targets TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE event_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id BIGINT NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
    rule TEXT NOT NULL REFERENCES event_rules(name) ON DELETE CASCADE,
    target TEXT NOT NULL,
    repository TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    window_start BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    finished_at BIGINT
);
CREATE INDEX event_deliveries_heads ON event_deliveries (rule, target, state, repository, id);
CREATE INDEX event_deliveries_window ON event_deliveries (rule, target, state, id);
CREATE INDEX event_deliveries_event ON event_deliveries (event_id);
CREATE INDEX outbox_created ON outbox (created_at);
