"""The Kinesis client and the analytics stream's lifecycle (create on start-up, describe).

Locally the endpoint is moto's standalone server; in AWS ``endpoint_url`` is unset and the
default credential chain applies.
"""

from __future__ import annotations

import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from eatcloud.errors import InfrastructureError
from eatcloud.resources import Kinesis
from eatcloud.settings import Settings


def kinesis_client(settings: Settings) -> Kinesis:
    ks = settings.kinesis
    credentials: dict[str, str] = {}
    if ks.access_key_id is not None and ks.secret_access_key is not None:
        credentials = {
            "aws_access_key_id": ks.access_key_id.get_secret_value(),
            "aws_secret_access_key": ks.secret_access_key.get_secret_value(),
        }
    timeout = settings.api.probe_timeout_seconds
    client: Kinesis = boto3.client(
        "kinesis",
        region_name=ks.region,
        endpoint_url=ks.endpoint_url,
        config=Config(
            connect_timeout=timeout,
            read_timeout=max(timeout, 5.0),
            retries={"max_attempts": 2, "mode": "standard"},
        ),
        **credentials,
    )
    return client


def describe_stream(settings: Settings, client: Kinesis | None = None) -> str:
    """A one-line summary of the stream; raises InfrastructureError if it is not there."""
    client = client or kinesis_client(settings)
    try:
        summary = client.describe_stream_summary(StreamName=settings.kinesis.stream_name)
    except (BotoCoreError, ClientError) as exc:
        raise InfrastructureError(f"kinesis stream: {exc}") from exc
    desc = summary["StreamDescriptionSummary"]
    return f"{desc['StreamStatus']}, {desc['OpenShardCount']} shard(s)"


def ensure_stream(settings: Settings, timeout: float = 30.0, client: Kinesis | None = None) -> str:
    """Create the analytics stream if it is missing and wait until it is ACTIVE."""
    client = client or kinesis_client(settings)
    name = settings.kinesis.stream_name
    try:
        client.create_stream(StreamName=name, ShardCount=settings.kinesis.shard_count)
    except client.exceptions.ResourceInUseException:
        pass  # it exists already: start-up is idempotent
    except (BotoCoreError, ClientError) as exc:
        raise InfrastructureError(f"cannot create kinesis stream {name}: {exc}") from exc
    deadline = time.monotonic() + timeout
    while True:
        summary = describe_stream(settings, client)
        if summary.startswith("ACTIVE") or time.monotonic() > deadline:
            return summary
        time.sleep(0.2)
