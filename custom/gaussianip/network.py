"""Network calls that never wait for ever: ``with network_timeouts(what):``.

``gaussianip download`` fetches through three clients: huggingface_hub (requests; some of
its calls pass no timeout), insightface's downloader (requests, no timeout) and
torch.hub (urllib, no timeout). Inside the block every requests call without a timeout
gets ``NETWORK_TIMEOUT`` seconds to connect and between bytes, and so does every new
socket (urllib); a server that accepts and never answers then ends in an ``AssetError``
naming what was being fetched, from where, and how long it waited.
``GAUSSIANIP_NETWORK_TIMEOUT`` (seconds) changes the limit for slow links.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from gaussianip.errors import AssetError

DEFAULT_TIMEOUT = 60.0  # seconds without a byte before a download gives up
TIMEOUT_ENV = "GAUSSIANIP_NETWORK_TIMEOUT"


def network_timeout() -> float:
    """Seconds to wait for a connection or the next bytes (``GAUSSIANIP_NETWORK_TIMEOUT``)."""
    value = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        seconds = float(value) if value else DEFAULT_TIMEOUT
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise AssetError(f"{TIMEOUT_ENV}={value!r}: give a number of seconds > 0.")
    return seconds


def is_timeout(err: BaseException) -> bool:
    """Whether ``err`` (or what it wraps) is a network timeout."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, TimeoutError | socket.timeout):
            return True
        if type(err).__name__ in ("Timeout", "ReadTimeout", "ConnectTimeout", "ReadTimeoutError",
                                  "ConnectTimeoutError"):  # fmt: skip
            return True
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return False


def timeout_error(what: str, where: str, seconds: float) -> AssetError:
    return AssetError(
        f"No answer from {where} within {seconds:g} s while fetching {what}. Check the "
        f"network connection (and any proxy), then run the command again; on a slow link "
        f"set {TIMEOUT_ENV} to more seconds."
    )


@contextmanager
def network_timeouts(seconds: float | None = None) -> Iterator[float]:
    """Give every network call inside the block a timeout of ``seconds`` (default
    ``network_timeout()``); yields it."""
    import requests.adapters

    seconds = network_timeout() if seconds is None else seconds
    original_send = requests.adapters.HTTPAdapter.send

    def send(self, request, stream=False, timeout=None, **kwargs):  # type: ignore[no-untyped-def]
        return original_send(self, request, stream=stream,
                             timeout=seconds if timeout is None else timeout, **kwargs)  # fmt: skip

    previous = socket.getdefaulttimeout()
    requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]
    socket.setdefaulttimeout(seconds)
    try:
        yield seconds
    finally:
        requests.adapters.HTTPAdapter.send = original_send  # type: ignore[method-assign]
        socket.setdefaulttimeout(previous)


__all__ = ["is_timeout", "network_timeout", "network_timeouts", "timeout_error"]
