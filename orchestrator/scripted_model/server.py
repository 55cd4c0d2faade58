"""The scripted model server: OpenAI and Anthropic APIs over real HTTP, answered from a script.

It speaks chat completions and Anthropic Messages, streamed or whole, exactly as the real
APIs do (the app is in `_app.py`, each API's wire in its own module). Demos and tests
talk to it through the same provider code, HTTP stack and error handling a real endpoint
would exercise, with no network and no model. It keeps no conversation state: which turn
to answer is read off the request (how many assistant messages it holds), so a retried
call gets the same answer. A turn may declare a fault
(`orchestrator.scripted_model.faults`) that its first requests meet instead of the answer.

`LoopbackServer` runs any ASGI app with uvicorn on the running event loop; tests use it to
stand up small misbehaving endpoints next to the scripted model server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from orchestrator.exceptions import ConfigError
from orchestrator.scripted_model._app import ServedRequest, create_replay_app
from orchestrator.scripted_model.faults import TRANSPORT_STATE
from orchestrator.scripted_model.script import ReplayScript, load_model_script

__all__ = [
    "Listener",
    "LoopbackServer",
    "ScriptedModelServer",
    "ServedRequest",
    "create_replay_app",
]


class _TransportInState(H11Protocol):
    """uvicorn's h11 protocol, putting each connection's transport in `scope["state"]`.

    The scripted model server's `reset` and `cut` faults break a connection on purpose, which an
    ASGI app cannot do without its transport.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app_state = {**self.app_state, TRANSPORT_STATE: transport}


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that shares its host's event loop and signal handlers.

    uvicorn normally owns the process: it installs SIGINT/SIGTERM handlers and re-raises
    them afterwards. Embedded in a test run or a worker, that belongs to the host.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound before uvicorn starts so the real port is known at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from exc
    # asyncio sets TCP_NODELAY only on sockets it creates; accepted connections inherit
    # this one's options. Without it uvicorn's separate header and body writes meet
    # delayed ACKs and every answer takes ~40 ms instead of ~1 ms (bench/README.md).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Listener:
    """A server's listening socket: bound on entry, so its real port is known at once.

    Args:
        host: Interface to bind.
        port: Port to bind; 0 picks a free one, read it back from `port`.
    """

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._requested_port = port
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound port.

        Raises:
            RuntimeError: the server has not been started.
        """
        if self._port is None:
            raise RuntimeError("the server is not running; use it as `async with`")
        return self._port

    @property
    def url(self) -> str:
        """The server's root URL, e.g. `http://127.0.0.1:41234`."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop serving; what happens to requests in flight is the server's to say."""
        raise NotImplementedError

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _listen(self) -> socket.socket:
        """Bind the socket (TCP_NODELAY, inherited by accepted connections)."""
        sock = _bind(self._host, self._requested_port)
        self._port = sock.getsockname()[1]
        return sock


class LoopbackServer(Listener):
    """Serve an ASGI app with uvicorn as a task on the running event loop.

    An async context manager: on entry it binds the socket (port 0 picks a free port),
    starts uvicorn and waits until it accepts requests; on exit it shuts uvicorn down.

    Args:
        app: The ASGI app to serve.
        host: Interface to bind; loopback by default, since this is for local use.
        port: Port to bind; 0 picks a free one, read it back from `port`.
        startup_timeout: Seconds to wait for uvicorn to start serving.
        shutdown_timeout: Seconds in-flight requests get to finish on exit before they
            are cancelled.
        http: uvicorn's HTTP implementation (`h11`, `httptools`); by default h11 with the
            connection's transport in the app's state, which the scripted model server's faults
            need to break connections.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 10.0,
        shutdown_timeout: int = 2,
        http: str | None = None,
    ) -> None:
        super().__init__(host, port)
        self._app = app
        self._http = http
        self._startup_timeout = startup_timeout
        self._shutdown_timeout = shutdown_timeout
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        sock = self._listen()
        config = uvicorn.Config(
            self._app,
            host=self._host,
            port=self.port,
            http=self._http or _TransportInState,
            ws="none",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=self._shutdown_timeout,
        )
        server = _EmbeddedServer(config)
        self._server = server
        self._task = asyncio.create_task(self._serve(server, sock), name=f"uvicorn:{self.url}")
        ready = asyncio.create_task(server.ready.wait())
        try:
            async with asyncio.timeout(self._startup_timeout):
                await asyncio.wait({self._task, ready}, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            await self.stop()
            raise ConfigError(
                f"server on {self.url} did not start within {self._startup_timeout}s"
            ) from None
        finally:
            ready.cancel()
        if not server.ready.is_set():
            task, self._server, self._task = self._task, None, None
            task.result()
            raise ConfigError(f"server on {self.url} stopped while starting")
        return self

    @staticmethod
    async def _serve(server: _EmbeddedServer, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:
            # uvicorn exits the process when startup fails; embedded, that would end the
            # host's event loop, so it becomes an ordinary error instead.
            raise ConfigError(f"uvicorn failed to start (exit status {exc.code})") from None
        finally:
            sock.close()

    async def stop(self) -> None:
        """Shut uvicorn down: in-flight requests get `shutdown_timeout` to finish."""
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        server.should_exit = True
        try:
            async with asyncio.timeout(self._shutdown_timeout + 5):
                await task
        except TimeoutError:
            # The timeout cancelled the task; nothing is left running.
            server.force_exit = True


class ScriptedModelServer(LoopbackServer):
    """The scripted model server on loopback, for tests and demos.

    ```python
    async with ScriptedModelServer(Path("demo.yaml")) as replay:
        provider = OpenAIProvider(base_url=replay.base_url)
    ```

    Args:
        script: The script, or the path of a YAML script to load.
        api_key: When set, requests must carry it as a bearer token.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one.

    Raises:
        ConfigError: the script path does not hold a valid script.
    """

    def __init__(
        self,
        script: ReplayScript | Path | str,
        *,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.script = (
            script if isinstance(script, ReplayScript) else load_model_script(Path(script))
        )
        self._served: list[ServedRequest] = []
        app = create_replay_app(self.script, api_key=api_key, served=self._served)
        super().__init__(app, host=host, port=port)

    @property
    def base_url(self) -> str:
        """The base URL to give a provider of either kind, e.g. `http://127.0.0.1:41234/v1`."""
        return f"{self.url}/v1"

    @property
    def requests(self) -> list[ServedRequest]:
        """A copy of every model request served so far (either API), oldest first."""
        return list(self._served)
