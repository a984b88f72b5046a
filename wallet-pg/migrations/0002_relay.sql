-- The event relay's position and lease, one row per relay (named after the
-- stream it feeds). `position` is the last outbox sequence the broker
-- acknowledged; only the holder of a live lease moves it, and only forward
-- (see wallet-pg/src/relay.rs). The lease's owner and expiry are both set
-- or both empty.
CREATE TABLE relay_positions (
    name             text        NOT NULL,
    position         bigint      NOT NULL DEFAULT 0,
    lease_owner      uuid,
    lease_expires_at timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT relay_positions_pkey PRIMARY KEY (name),
    CONSTRAINT relay_positions_name_length CHECK (char_length(name) BETWEEN 1 AND 64),
    CONSTRAINT relay_positions_position_non_negative CHECK (position >= 0),
    CONSTRAINT relay_positions_lease_whole
        CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL))
);
