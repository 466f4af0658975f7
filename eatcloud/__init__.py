"""EatCloud: a food-delivery order platform built as Faust stream processors over Kafka."""

__version__ = "0.1.0"
