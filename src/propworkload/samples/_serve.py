"""Serving a sample service with uvicorn: in the foreground (``propworkload demo``) or as
a child process on a socket its parent already listens on (the embedded default target).

As a child (``python -m propworkload.samples._serve NAME --fd N [--bug B ...]``) it exits
when its standard input closes, so it never outlives the run that started it.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
from typing import Any

from . import load_sample, validate_bugs

__all__ = ["serve_socket"]


def _server(app: Any, **config: Any) -> Any:
    import uvicorn

    return uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", **config)
    )


def serve_socket(app: Any, sock: socket.socket) -> None:
    """Serve ``app`` on the listening socket ``sock`` until interrupted."""
    _server(app).run(sockets=[sock])


def _main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="propworkload.samples._serve")
    parser.add_argument("name")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--bug", action="append", default=[])
    args = parser.parse_args(argv)
    module = load_sample(args.name)
    app = module.create_app(validate_bugs(module, args.bug))
    sock = socket.socket(fileno=args.fd)
    server = _server(app)

    def watch_parent() -> None:
        sys.stdin.buffer.read()
        server.should_exit = True

    threading.Thread(target=watch_parent, daemon=True).start()
    server.run(sockets=[sock])


if __name__ == "__main__":
    _main(sys.argv[1:])
