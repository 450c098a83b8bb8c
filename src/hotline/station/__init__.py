"""The station: run by each party; keys, outbox, inbox, verification, receipts."""
