"""The relay: run by the host; logs envelopes per channel, signs checkpoints, serves proofs."""
