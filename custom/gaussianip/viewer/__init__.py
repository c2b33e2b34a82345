"""``gaussianip view RUN_DIR``: orbit the avatar in the browser (viser; the browser
renders the splats, so no GPU is needed)."""

from __future__ import annotations

import argparse
import errno
import signal
import threading
from pathlib import Path

from gaussianip.errors import AssetError, ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a run folder, its save/ folder, or a .ply")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: this machine only)"
    )
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--motion", type=Path, default=None,
                   help="a motion file to offer in the motion panel (runs with a rig)")  # fmt: skip


def check_arguments(args: argparse.Namespace) -> None:
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be in 1..65535, got {args.port}.")
    if args.motion is not None and not args.motion.is_file():
        raise AssetError(f"--motion '{args.motion}' does not exist; give a motion file.")


def port_in_use_error(host: str, port: int) -> ConfigError:
    return ConfigError(
        f"--port {port}: the port is in use on {host} (another server listens there), so "
        "the viewer cannot serve on it. Stop that server, or give another port, e.g. "
        f"--port {port + 1 if port < 65535 else 8080} (and forward that one)."
    )


def check_port_free(host: str, port: int) -> None:
    """``ConfigError`` naming ``port`` when a server already listens on it: viser would
    silently take the next free port, and a tunnel to ``port`` would reach the other one."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        try:
            probe.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise port_in_use_error(host, port) from None
            raise ConfigError(f"--host {host} --port {port}: cannot listen there "
                              f"({err.strerror}).") from None  # fmt: skip


def forwarding_hint(port: int) -> str:
    return (
        f"On a remote GPU machine? Forward the port from your computer: "
        f"ssh -N -L {port}:localhost:{port} USER@GPU-MACHINE, then open "
        f"http://localhost:{port}"
    )


def main(args: argparse.Namespace) -> None:
    """Start the viewer, print its URL, serve until Ctrl-C (or SIGTERM)."""
    from gaussianip.viewer.app import AvatarViewer

    check_arguments(args)
    check_port_free(args.host, args.port)
    viewer = AvatarViewer(args.run_dir, host=args.host, port=args.port, motion=args.motion)
    port = viewer.server.get_port()
    if port != args.port:  # taken between the check and the start: viser moved on
        viewer.stop()
        raise port_in_use_error(args.host, args.port)
    print(f"gaussianip view: {viewer.url}  (stages: {', '.join(viewer.plys)})", flush=True)
    print(forwarding_hint(port), flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()
        print("gaussianip view: stopped.", flush=True)


__all__ = ["add_arguments", "check_arguments", "check_port_free", "forwarding_hint", "main"]
