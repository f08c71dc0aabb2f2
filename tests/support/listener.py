"""`python -m tests.support.listener PORT [--exit-after S] [--code N]`: a bare TCP listener for stack tests.

It squats a port that the stack needs (busy-port tests), or plays a process that crashes after a while
(supervision tests). It accepts connections and closes them at once.
"""
from __future__ import annotations

import argparse
import socket
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--exit-after", type=float, default=None)
    parser.add_argument("--code", type=int, default=3)
    args = parser.parse_args(argv)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        sock.listen(64)
        sock.settimeout(0.1)
        until = None if args.exit_after is None else time.monotonic() + args.exit_after
        while until is None or time.monotonic() < until:
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            conn.close()
    return args.code


if __name__ == "__main__":
    sys.exit(main())
