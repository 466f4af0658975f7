"""Hypothesis state machines over the pure domain: the saga and the ledgers."""
