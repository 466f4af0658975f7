"""The local development stack: Kafka, PostgreSQL + PostGIS, Redis and a Kinesis emulator.

Everything listens on 127.0.0.1 and keeps its state under one data folder. This package is
for developers and CI only; production runs the same services from docker-compose or Helm.
"""
