-- Transfers and hold payouts move money between wallets in one unit of
-- work. Each leg is a row of its own wallet's log; the legs of one unit of
-- work share a transfer id, and a leg names the user on the other side.

ALTER TABLE wallet_transactions
    ADD COLUMN transfer_id          uuid,
    ADD COLUMN counterparty_user_id uuid;

ALTER TABLE wallet_transactions
    DROP CONSTRAINT wallet_transactions_type_valid,
    ADD CONSTRAINT wallet_transactions_type_valid CHECK (transaction_type IN
        ('Deposit', 'Withdraw', 'ExchangeIn', 'ExchangeOut', 'Hold', 'HoldExecute', 'HoldRelease',
         'TransferIn', 'TransferOut')),
    -- A leg between wallets always says which transfer it belongs to and
    -- who is on the other side; a payout's HoldExecute carries the transfer
    -- id only (it may pay many payees).
    ADD CONSTRAINT wallet_transactions_transfer_leg_named CHECK
        (transaction_type NOT IN ('TransferIn', 'TransferOut')
         OR (transfer_id IS NOT NULL AND counterparty_user_id IS NOT NULL));
