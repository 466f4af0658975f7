"""Apache Kafka, single node in KRaft mode, run from its Maven Central jars."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from importlib import resources
from pathlib import Path

from eatcloud.errors import StackError
from eatcloud.stack.process import Daemon, run
from eatcloud.stack.service import LocalService

LOG4J = """\
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={logfile}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.state.change.logger=WARN
"""


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


class KafkaService(LocalService):
    name = "kafka"

    @property
    def libs(self) -> Path:
        # Per version, so changing EATCLOUD_STACK__KAFKA_VERSION never mixes two classpaths.
        return self.home / f"libs-{self.settings.stack.kafka_version}"

    @property
    def daemon(self) -> Daemon:
        return Daemon("kafka", self.home / "kafka.pid", self.home / "stdout.log")

    def host_port(self) -> tuple[str, int]:
        first = self.settings.kafka.bootstrap_servers.split(",")[0]
        host, _, port = first.rpartition(":")
        return host or "127.0.0.1", int(port)

    def install(self) -> None:
        marker = self.libs / ".complete"
        if marker.exists():
            return
        if shutil.which("mvn") is None or shutil.which("java") is None:
            raise StackError("Kafka needs Java 17+ and Maven (mvn) on PATH")
        version = self.settings.stack.kafka_version
        self.say(f"kafka: fetching Apache Kafka {version} jars from Maven Central (~50 MB)")
        self.home.mkdir(parents=True, exist_ok=True)
        pom = self.home / "kafka-runtime.xml"
        template = resources.files("eatcloud.stack").joinpath("kafka-runtime.xml").read_text()
        pom.write_text(template.replace("KAFKA_VERSION", version))
        staging = self.libs.with_name(self.libs.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        self._mvn(pom, staging)
        shutil.rmtree(self.libs, ignore_errors=True)
        staging.rename(self.libs)
        marker.write_text(version + "\n")
        jars = len(list(self.libs.glob("*.jar")))
        self.say(f"kafka: {jars} jars in {self.libs}")

    def _mvn(self, pom: Path, output: Path) -> None:
        command = [
            "mvn", "-B", "-f", str(pom), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={output}",
        ]  # fmt: skip
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        lines, fetched = [], 0
        for line in proc.stdout:
            lines.append(line.rstrip())
            if "Downloaded from" in line:
                fetched += 1
                if fetched % 10 == 0:
                    self.say(f"  kafka: {fetched} artifacts downloaded")
        if proc.wait() != 0:
            raise StackError("mvn could not fetch the Kafka jars:\n" + "\n".join(lines[-20:]))

    def started_pid(self) -> int | None:
        return self.daemon.pid()

    def _configure(self) -> Path:
        host, port = self.host_port()
        controller = self.settings.stack.kafka_controller_port
        data = self.home / "data"
        config = self.home / "server.properties"
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{controller}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": str(self.settings.kafka.topic_partitions),
            "offsets.topic.replication.factor": "1",
            # Fewer internal partitions: a single dev broker creates them in a blink.
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            # Keep every topic's data: a topic a client auto-creates before the worker declares
            # it (a test's consumer of order-events, say) must keep history too, or the worker
            # refuses to run (``streams.retention``). The platform's event topics also carry
            # retention.ms=-1 themselves, for brokers whose default is otherwise.
            "log.retention.ms": "-1",
        }
        config.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
        log4j = self.home / "log4j.properties"
        log4j.write_text(LOG4J.format(logfile=self.logfile))
        if not (data / "meta.properties").exists():
            self.say("kafka: formatting KRaft storage (first start)")
            run(
                ["java", "-cp", f"{self.libs}/*", f"-Dlog4j.configuration=file:{log4j}",
                 "kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c", str(config)],
                what="kafka storage format",
            )  # fmt: skip
        return config

    def start(self) -> None:
        config = self._configure()
        heap = self.settings.stack.kafka_heap_mb
        argv = [
            "java", f"-Xms{min(256, heap)}m", f"-Xmx{heap}m", "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
            "-cp", f"{self.libs}/*", "kafka.Kafka", str(config),
        ]  # fmt: skip
        self.daemon.spawn(argv, env={**os.environ, "KAFKA_HEAP_OPTS": ""}, cwd=self.home)

    def stop(self) -> bool:
        # A controlled shutdown closes the logs cleanly, which keeps the next start fast.
        return self.daemon.stop(timeout=30.0)
