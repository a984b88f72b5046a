-- The wallet and loyalty ledger.
--
-- Money is NUMERIC (exact decimals, each value keeping the scale of its
-- currency); points are BIGINT. Every constraint and index has a name: the
-- store turns a violated constraint into a precise domain error by its name
-- (wallet-pg/src/error.rs), so the database is the last line of defence.

CREATE TABLE wallets (
    id                uuid        NOT NULL,
    user_id           uuid        NOT NULL,
    status            text        NOT NULL,
    default_currency  text        NOT NULL,
    frozen_reason     text,
    version           bigint      NOT NULL,
    transaction_count bigint      NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    CONSTRAINT wallets_pkey PRIMARY KEY (id),
    -- One wallet per user, whatever its status: a closed wallet stays the user's.
    CONSTRAINT wallets_user_id_key UNIQUE (user_id),
    CONSTRAINT wallets_status_valid CHECK (status IN ('Active', 'Frozen', 'Closed')),
    CONSTRAINT wallets_version_non_negative CHECK (version >= 0),
    CONSTRAINT wallets_transaction_count_non_negative CHECK (transaction_count >= 0)
);

-- The admin listing, newest first, with or without a status filter.
CREATE INDEX wallets_created_at_id_idx ON wallets (created_at, id);
CREATE INDEX wallets_status_created_at_id_idx ON wallets (status, created_at, id);

CREATE TABLE wallet_items (
    wallet_id uuid    NOT NULL,
    currency  text    NOT NULL,
    balance   numeric NOT NULL,
    held      numeric NOT NULL,
    CONSTRAINT wallet_items_pkey PRIMARY KEY (wallet_id, currency),
    CONSTRAINT wallet_items_wallet_fkey FOREIGN KEY (wallet_id) REFERENCES wallets (id),
    CONSTRAINT wallet_items_balance_non_negative CHECK (balance >= 0),
    CONSTRAINT wallet_items_held_non_negative CHECK (held >= 0),
    CONSTRAINT wallet_items_held_within_balance CHECK (held <= balance),
    CONSTRAINT wallet_items_balance_within_limit CHECK (balance <= 1000000000000000)
);

CREATE TABLE wallet_transactions (
    wallet_id        uuid        NOT NULL,
    -- Position in the wallet's log, from 1 without gaps: the paging key.
    sequence         bigint      NOT NULL,
    id               uuid        NOT NULL,
    transaction_type text        NOT NULL,
    currency         text        NOT NULL,
    amount           numeric     NOT NULL,
    held_change      numeric     NOT NULL,
    balance_after    numeric     NOT NULL,
    held_after       numeric     NOT NULL,
    description      text,
    reference        text,
    hold_id          uuid,
    idempotency_key  text,
    created_at       timestamptz NOT NULL,
    CONSTRAINT wallet_transactions_pkey PRIMARY KEY (wallet_id, sequence),
    CONSTRAINT wallet_transactions_id_key UNIQUE (id),
    CONSTRAINT wallet_transactions_wallet_fkey FOREIGN KEY (wallet_id) REFERENCES wallets (id),
    CONSTRAINT wallet_transactions_sequence_positive CHECK (sequence >= 1),
    CONSTRAINT wallet_transactions_type_valid CHECK (transaction_type IN
        ('Deposit', 'Withdraw', 'ExchangeIn', 'ExchangeOut', 'Hold', 'HoldExecute', 'HoldRelease')),
    CONSTRAINT wallet_transactions_balance_after_non_negative CHECK (balance_after >= 0),
    CONSTRAINT wallet_transactions_held_after_non_negative CHECK (held_after >= 0),
    CONSTRAINT wallet_transactions_held_after_within_balance CHECK (held_after <= balance_after)
);

-- History filtered by currency; the statistics window.
CREATE INDEX wallet_transactions_wallet_currency_sequence_idx
    ON wallet_transactions (wallet_id, currency, sequence);
CREATE INDEX wallet_transactions_created_at_idx ON wallet_transactions (created_at);

CREATE TABLE holds (
    id               uuid        NOT NULL,
    wallet_id        uuid        NOT NULL,
    currency         text        NOT NULL,
    original_amount  numeric     NOT NULL,
    remaining_amount numeric     NOT NULL,
    executed_amount  numeric     NOT NULL,
    released_amount  numeric     NOT NULL,
    status           text        NOT NULL,
    reference_type   text        NOT NULL,
    reference_id     uuid        NOT NULL,
    description      text,
    expires_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CONSTRAINT holds_pkey PRIMARY KEY (id),
    CONSTRAINT holds_wallet_fkey FOREIGN KEY (wallet_id) REFERENCES wallets (id),
    CONSTRAINT holds_status_valid CHECK (status IN
        ('Active', 'Executed', 'Released', 'Cancelled', 'Expired')),
    CONSTRAINT holds_original_positive CHECK (original_amount > 0),
    CONSTRAINT holds_amounts_non_negative CHECK
        (remaining_amount >= 0 AND executed_amount >= 0 AND released_amount >= 0),
    CONSTRAINT holds_amounts_add_up CHECK
        (original_amount = remaining_amount + executed_amount + released_amount),
    CONSTRAINT holds_ended_hold_empty CHECK (status = 'Active' OR remaining_amount = 0)
);

-- A command loads the wallet's active holds; the history lists holds newest
-- first, with or without a status filter; the sweep finds overdue holds.
CREATE INDEX holds_wallet_status_created_at_id_idx ON holds (wallet_id, status, created_at, id);
CREATE INDEX holds_wallet_created_at_id_idx ON holds (wallet_id, created_at, id);
CREATE INDEX holds_active_expires_at_idx ON holds (expires_at) WHERE status = 'Active';

CREATE TABLE point_accounts (
    id                uuid        NOT NULL,
    user_id           uuid        NOT NULL,
    available_points  bigint      NOT NULL,
    pending_points    bigint      NOT NULL,
    lifetime_earned   bigint      NOT NULL,
    version           bigint      NOT NULL,
    transaction_count bigint      NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    CONSTRAINT point_accounts_pkey PRIMARY KEY (id),
    CONSTRAINT point_accounts_user_id_key UNIQUE (user_id),
    CONSTRAINT point_accounts_available_non_negative CHECK (available_points >= 0),
    CONSTRAINT point_accounts_pending_non_negative CHECK (pending_points >= 0),
    CONSTRAINT point_accounts_lifetime_earned_non_negative CHECK (lifetime_earned >= 0),
    CONSTRAINT point_accounts_version_non_negative CHECK (version >= 0)
);

CREATE TABLE point_lots (
    id         uuid        NOT NULL,
    account_id uuid        NOT NULL,
    points     bigint      NOT NULL,
    -- Points left; a lot is live (pending, or available with points left)
    -- exactly while remaining > 0.
    remaining  bigint      NOT NULL,
    state      text        NOT NULL,
    source     text        NOT NULL,
    earned_at  timestamptz NOT NULL,
    expires_at timestamptz,
    CONSTRAINT point_lots_pkey PRIMARY KEY (id),
    CONSTRAINT point_lots_account_fkey FOREIGN KEY (account_id) REFERENCES point_accounts (id),
    CONSTRAINT point_lots_state_valid CHECK (state IN ('Pending', 'Available')),
    CONSTRAINT point_lots_points_positive CHECK (points > 0),
    CONSTRAINT point_lots_remaining_non_negative CHECK (remaining >= 0),
    CONSTRAINT point_lots_remaining_within_points CHECK (remaining <= points)
);

CREATE INDEX point_lots_live_account_idx ON point_lots (account_id) WHERE remaining > 0;
CREATE INDEX point_lots_live_expires_at_idx ON point_lots (expires_at)
    WHERE remaining > 0 AND expires_at IS NOT NULL;

CREATE TABLE point_transactions (
    account_id       uuid        NOT NULL,
    sequence         bigint      NOT NULL,
    id               uuid        NOT NULL,
    transaction_type text        NOT NULL,
    points           bigint      NOT NULL,
    balance_after    bigint      NOT NULL,
    source           text        NOT NULL,
    description      text,
    lot_id           uuid,
    expires_at       timestamptz,
    idempotency_key  text,
    created_at       timestamptz NOT NULL,
    CONSTRAINT point_transactions_pkey PRIMARY KEY (account_id, sequence),
    CONSTRAINT point_transactions_id_key UNIQUE (id),
    CONSTRAINT point_transactions_account_fkey FOREIGN KEY (account_id) REFERENCES point_accounts (id),
    CONSTRAINT point_transactions_sequence_positive CHECK (sequence >= 1),
    CONSTRAINT point_transactions_type_valid CHECK (transaction_type IN
        ('Earn', 'EarnPending', 'PendingConfirmed', 'PendingCancelled', 'Spend', 'Adjust', 'Expire')),
    CONSTRAINT point_transactions_balance_after_non_negative CHECK (balance_after >= 0)
);

CREATE INDEX point_transactions_created_at_idx ON point_transactions (created_at);

-- The first successful result of each (user, key), replayed on a repeat.
CREATE TABLE idempotency_records (
    user_id     uuid        NOT NULL,
    key         text        NOT NULL,
    fingerprint text        NOT NULL,
    output      jsonb       NOT NULL,
    created_at  timestamptz NOT NULL,
    CONSTRAINT idempotency_records_pkey PRIMARY KEY (user_id, key),
    CONSTRAINT idempotency_records_key_length CHECK (length(key) BETWEEN 1 AND 255)
);

CREATE INDEX idempotency_records_created_at_idx ON idempotency_records (created_at);

-- The transactional outbox. Writers insert events with a NULL sequence, in
-- the same transaction as the state change; `insert_order` keeps their
-- order. Readers first number the committed, unnumbered events under an
-- advisory lock (see wallet-pg/src/outbox.rs), so a number is never handed
-- out below one a reader may already have seen.
CREATE TABLE outbox_events (
    id                uuid        NOT NULL,
    insert_order      bigint      GENERATED ALWAYS AS IDENTITY,
    sequence          bigint,
    event_type        text        NOT NULL,
    aggregate_id      uuid        NOT NULL,
    aggregate_version bigint      NOT NULL,
    user_id           uuid        NOT NULL,
    occurred_at       timestamptz NOT NULL,
    data              jsonb       NOT NULL,
    CONSTRAINT outbox_events_pkey PRIMARY KEY (id),
    CONSTRAINT outbox_events_sequence_key UNIQUE (sequence),
    CONSTRAINT outbox_events_sequence_positive CHECK (sequence >= 1)
);

CREATE INDEX outbox_events_unsequenced_idx ON outbox_events (insert_order) WHERE sequence IS NULL;
