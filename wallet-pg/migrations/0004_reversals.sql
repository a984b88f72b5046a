-- Reversals undo a transaction in full or in part. Each wallet a reversal
-- changes gets a `Reversal` row naming its own leg of the original. The
-- rows stay immutable: the running total of each reversed leg is kept
-- beside them, in a table of its own, read and written under the wallet's
-- row lock in the unit of work that writes the reversal.

ALTER TABLE wallet_transactions
    ADD COLUMN reverses_transaction_id uuid;

ALTER TABLE wallet_transactions
    DROP CONSTRAINT wallet_transactions_type_valid,
    ADD CONSTRAINT wallet_transactions_type_valid CHECK (transaction_type IN
        ('Deposit', 'Withdraw', 'ExchangeIn', 'ExchangeOut', 'Hold', 'HoldExecute', 'HoldRelease',
         'TransferIn', 'TransferOut', 'Reversal')),
    -- A reversal, and only a reversal, names the row it reverses.
    ADD CONSTRAINT wallet_transactions_reversal_named CHECK
        ((transaction_type = 'Reversal') = (reverses_transaction_id IS NOT NULL));

-- The running total of the reversals of each reversed leg. The two legs of
-- a transfer each have one, always written together with the same total.
CREATE TABLE wallet_transaction_reversals (
    transaction_id  uuid    NOT NULL,
    wallet_id       uuid    NOT NULL,
    -- The leg's amount without its sign: the most its reversals may add up to.
    original_amount numeric NOT NULL,
    reversed_amount numeric NOT NULL,
    CONSTRAINT wallet_transaction_reversals_pkey PRIMARY KEY (transaction_id),
    CONSTRAINT wallet_transaction_reversals_transaction_fkey
        FOREIGN KEY (transaction_id) REFERENCES wallet_transactions (id),
    CONSTRAINT wallet_transaction_reversals_wallet_fkey
        FOREIGN KEY (wallet_id) REFERENCES wallets (id),
    CONSTRAINT wallet_transaction_reversals_reversed_positive CHECK (reversed_amount > 0),
    CONSTRAINT wallet_transaction_reversals_within_original CHECK
        (reversed_amount <= original_amount)
);

-- The other legs of a transfer or payout, found by its transfer id.
CREATE INDEX wallet_transactions_transfer_id_idx ON wallet_transactions (transfer_id)
    WHERE transfer_id IS NOT NULL;

-- Balances at a point in time: per wallet and currency, the latest row at
-- or before a time is the first entry of this index from that time down.
CREATE INDEX wallet_transactions_wallet_currency_created_at_idx
    ON wallet_transactions (wallet_id, currency, created_at DESC, sequence DESC);
