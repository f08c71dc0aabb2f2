"""The one import of the config loader, wherever the config kernel lives (cachegate or proxy)."""
from __future__ import annotations

try:
    from cachegate.config import load_config
except ModuleNotFoundError as exc:
    if (exc.name or "").split(".")[0] != "cachegate":
        raise  # the kernel is there but broken: say so, do not hide it behind the older path
    from proxy.config import load_config

__all__ = ["load_config"]
