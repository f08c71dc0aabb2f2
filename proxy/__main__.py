"""`python -m proxy [--config FILE] [--workers N]`: serve the proxy in the foreground (as its workers do)."""
from __future__ import annotations

import argparse
import sys

from cachegate.config import load_config
from cachegate.errors import ConfigError
from proxy.server import serve
from strategies.registry import REGISTRY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proxy", description="Serve the cachegate proxy.")
    parser.add_argument("--config", default=None,
                        help="config file (default: $CACHEGATE_CONFIG or ./config.yaml)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: proxy.workers)")
    args = parser.parse_args(argv)
    try:
        serve(load_config(args.config, strategies=REGISTRY), workers=args.workers)
    except ConfigError as exc:  # a bad config or a missing secret: the message only, as `cachegate` says it
        print(f"cachegate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
