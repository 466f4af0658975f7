"""Request context, trace context and logging: what ties one order's log lines together."""
