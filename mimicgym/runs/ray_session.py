"""Reaching Ray: an embedded local Ray of this process, or a cluster at an address, with clear
errors for what is not there (the extra to install, an address nobody answers at)."""

from __future__ import annotations

import logging
import socket
import threading
from urllib.parse import urlsplit

from mimicgym.errors import ConfigError

INSTALL_HINT = "pip install 'mimicgym[distributed]'"
CONNECT_TIMEOUT_S = 20.0  # for --address: no cluster answering within this is an error


def import_ray():
    """``ray`` and ``ray.tune``, or a ``ConfigError`` that says which extra to install."""
    try:
        import ray
        from ray import tune
    except ImportError as e:
        raise ConfigError(f"sweeps and rollout workers run on Ray (with Tune), which is not installed ({e}); "
                          f"{INSTALL_HINT}") from None
    return ray, tune


def _host_port(address: str) -> tuple[str, int]:
    """Host and port of ``ray://HOST:PORT`` or ``HOST:PORT``."""
    parsed = urlsplit(address if "://" in address else f"//{address}")
    try:
        port = parsed.port
    except ValueError:
        port = None
    if not parsed.hostname or port is None or parsed.scheme not in ("", "ray"):
        raise ConfigError(f"--address {address!r}: expected auto, ray://HOST:PORT (Ray Client) or HOST:PORT "
                          f"(the head's GCS)")
    return parsed.hostname, port


def connect_ray(address: str | None = None, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """Start an embedded local Ray (``address`` None) or connect to a cluster; returns whether
    this call did (and so should shut it down). A Ray already initialised in this process
    (a notebook's, a test's) is used as it is. An unreachable address is a ``ConfigError``
    within about ``timeout`` seconds (Ray itself would retry for minutes)."""
    ray, _ = import_ray()
    if address not in (None, "auto"):
        host, port = _host_port(address)
        try:
            socket.create_connection((host, port), timeout=min(timeout, 5.0)).close()
        except OSError as e:
            raise ConfigError(f"--address {address!r}: nothing answers at {host}:{port} ({e}); start the "
                              f"cluster with `ray start --head`, or leave out --address for a local Ray") from None
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address is None:  # "local": a new Ray of this process, never a cluster that `ray start` left here
        ray.init(address="local", include_dashboard=False, **quiet)
        return True
    outcome: dict[str, BaseException | None] = {}

    def connect() -> None:
        try:
            ray.init(address=address, **quiet)
            outcome["error"] = None
        except BaseException as e:  # Ray's SystemExit on a dead GCS included
            outcome["error"] = e

    # In a thread: a port that answers but is no Ray head would keep ray.init retrying.
    thread = threading.Thread(target=connect, name="ray-connect", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ConfigError(f"--address {address!r}: no Ray cluster answered within {timeout:.0f} s")
    if outcome["error"] is not None:
        e = outcome["error"]
        raise ConfigError(f"--address {address!r}: cannot connect to a Ray cluster "
                          f"({type(e).__name__}: {str(e).strip()[:300]})") from None
    return True
