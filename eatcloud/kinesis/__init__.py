"""Kinesis: the analytics stream that order and stock events are forwarded to."""
