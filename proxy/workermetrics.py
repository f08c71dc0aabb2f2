"""The metrics of a gateway with workers, for the whole gateway: each worker's figures in a file, summed.

With `proxy.workers` N, the workers share the public port, so whichever worker a scrape of `/-/metrics`
reaches answers it. Each worker writes its own exposition into `<folder>/<pid>.prom` every FLUSH seconds
(the master names the folder in CACHEGATE_METRICS_DIR and removes the file of a worker that died), and the
worker that is scraped answers with its own figures of the moment merged with the other workers' files:
counters and histograms summed, so `cachegate_requests_total` counts the requests of every worker (each
other worker's part at most FLUSH seconds old); gauges summed where a sum means something (connections,
memory, descriptors), else the lowest (ready, dependencies up) or the highest (breaker state, epoch,
generation). Nothing of this runs on a request but a scrape; prometheus_client's multiprocess mode is not
used because most figures are plain numbers exported by a collector (proxy/metrics.py), which it cannot
see.
"""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from proxy.metrics import Metrics

METRICS_DIR_ENV = "CACHEGATE_METRICS_DIR"
FLUSH = 0.5  # seconds between two writes of a worker's file
SUMMED_GAUGES = frozenset({"cachegate_connections", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_open_fds"})
LOWEST_GAUGES = frozenset({"cachegate_ready", "cachegate_dependency_up", "cachegate_cache_enabled"})


class WorkerMetrics:
    """One worker's side: its file, and the merged answer to a scrape."""

    def __init__(self, folder: Path, metrics: Metrics) -> None:
        self.folder = folder
        self.path = folder / f"{os.getpid()}.prom"
        self._metrics = metrics

    def write(self) -> None:
        """The file is replaced whole (written beside it, then renamed), so a reader never sees half."""
        partial = self.path.with_suffix(".tmp")
        partial.write_bytes(self._metrics.render())
        os.replace(partial, self.path)

    async def run(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            while True:
                self.write()
                await asyncio.sleep(FLUSH)  # a period, not a synchronisation
        finally:
            self.path.unlink(missing_ok=True)

    def render(self) -> bytes:
        texts = [self._metrics.render().decode()]
        for other in sorted(self.folder.glob("*.prom")):
            if other != self.path:
                try:
                    texts.append(other.read_text())
                except OSError:
                    continue  # its worker has just gone
        return merge(texts)


def merge(texts: list[str]) -> bytes:
    """Expositions of several processes as one (see the module docstring for how each kind is merged)."""
    families: dict[str, tuple[str, str, dict[tuple, float]]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            _, _, samples = families.setdefault(family.name, (family.type, family.documentation, {}))
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in samples:
                    samples[key] = sample.value
                elif sample.name.endswith("_created"):
                    samples[key] = min(samples[key], sample.value)
                elif family.type != "gauge" or family.name in SUMMED_GAUGES:
                    samples[key] += sample.value
                elif family.name in LOWEST_GAUGES:
                    samples[key] = min(samples[key], sample.value)
                else:
                    samples[key] = max(samples[key], sample.value)
    out = []
    for name, (kind, documentation, samples) in families.items():
        help_text = documentation.replace("\\", "\\\\").replace("\n", "\\n")
        named = f"{name}_total" if kind == "counter" else name  # as prometheus_client writes them
        out.append(f"# HELP {named} {help_text}\n# TYPE {named} {kind}\n")
        for (sample, labels), value in samples.items():
            rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            series = f"{sample}{{{rendered}}}" if rendered else sample
            out.append(f"{series} {_number(value)}\n")
    return "".join(out).encode()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value != value:
        return "NaN"
    if value == float("inf"):
        return "+Inf"
    if value == float("-inf"):
        return "-Inf"
    return repr(float(value)) if value != int(value) or abs(value) >= 1e15 else str(int(value)) + ".0"
