"""Pure domain logic: the saga, the stock and points ledgers, payment states. No I/O."""
