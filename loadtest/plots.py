"""PNG plots of a run (matplotlib, Agg): throughput and latency percentiles against connections."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtest.summary import group

SERIES = (("cache-off", "cache off", "tab:red", "-"), ("cache-on", "cache on", "tab:green", "-"),
          ("backend", "users backend, direct", "tab:blue", "--"),
          ("bare", "bare aiohttp handler", "tab:gray", ":"))
PERCENTILES = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p99.9"))


def _connections_axis(ax, points: list[dict[str, Any]]) -> None:
    """Log scale, labelled with the connection counts actually measured."""
    ticks = sorted({p["connections"] for p in points if p["group"] in {name for name, *_ in SERIES}})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def throughput(points: list[dict[str, Any]], path: Path, title: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for name, label, color, style in SERIES:
        series = group(points, name)
        if series:
            ax.plot([p["connections"] for p in series], [p["rps"] for p in series], style, color=color,
                    marker="o", label=label)
    _connections_axis(ax, points)
    ax.set_xlabel("connections (wrk, one thread)")
    ax.set_ylabel("requests/s")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def latency(points: list[dict[str, Any]], path: Path, title: str) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=100, sharey=True)
    for ax, (name, label) in zip(axes, (("cache-off", "cache off"), ("cache-on", "cache on"))):
        series = group(points, name)
        for key, text in PERCENTILES:
            ax.plot([p["connections"] for p in series], [p["latency_ms"].get(key, 0.0) for p in series],
                    marker="o", label=text)
        _connections_axis(ax, points)
        ax.set_yscale("log")
        ax.set_xlabel("connections")
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("latency (ms, log scale)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
