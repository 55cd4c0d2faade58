"""Run the scripted model server: `python -m orchestrator.scripted_model SCRIPT --port 8765`.

A standalone process, so a demo's worker and CLI can point at it like at any endpoint.
It prints one line with the base URL once it is serving (scripts wait for that line), and
stops cleanly on Ctrl+C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from orchestrator.exceptions import ConfigError
from orchestrator.scripted_model.server import ScriptedModelServer

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.scripted_model",
        description=(
            "Serve scripted model answers over OpenAI chat completions and Anthropic"
            " Messages, streamed or whole."
        ),
    )
    parser.add_argument("script", metavar="SCRIPT", type=Path, help="model script (YAML)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8765, help="port to bind; 0 picks one")
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="environment variable holding an API key that requests must carry",
    )
    return parser


async def _serve(server: ScriptedModelServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        print(f"scripted model server serving on {server.base_url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, serve until stopped, and return the exit status."""
    args = _parser().parse_args(argv)
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            print(f"error: environment variable {args.api_key_env} is not set", file=sys.stderr)
            return 2
    try:
        server = ScriptedModelServer(args.script, api_key=api_key, host=args.host, port=args.port)
        asyncio.run(_serve(server))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
