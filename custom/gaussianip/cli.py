"""Command line: ``python -m gaussianip <command>`` (also the ``gaussianip`` script).

Errors a user can fix print one message and exit with status 2; ``--verbose`` adds the
traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path

from gaussianip.errors import GaussianIPError


def _add_preview(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preview", help="initial grey Gaussian human, views and pose images")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--body", default="default", help="body model: default (free) or smplx")
    p.add_argument("--body-model-path", default=None, help="SMPL-X model folder or file")
    p.add_argument("--num-points", type=int, default=100_000, help="Gaussians to sample")
    p.add_argument("--resolution", type=int, default=512, help="image size in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    _add_verbose(p)


def _add_verbose(parser: argparse.ArgumentParser, default: object = argparse.SUPPRESS) -> None:
    # Accepted before and after the command name; SUPPRESS keeps the other one's value.
    parser.add_argument("--verbose", action="store_true", default=default, help="show tracebacks")


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the method from a YAML config (stage 1 for now)")
    p.add_argument("--config", required=True, help="YAML config, e.g. gaussianip-tiny.yaml")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--out", default=None, help="output root (default: the config's exp_root_dir)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    _add_verbose(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gaussianip", description=__doc__.splitlines()[0])
    _add_verbose(parser, default=False)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_preview(sub)
    _add_run(sub)
    return parser


def _preview(args: argparse.Namespace) -> None:
    from gaussianip.preview import PreviewOptions, run_preview

    paths = run_preview(
        PreviewOptions(
            out=args.out,
            body=args.body,
            body_model_path=args.body_model_path,
            num_points=args.num_points,
            resolution=args.resolution,
            seed=args.seed,
            device=args.device,
        )
    )
    print("wrote " + ", ".join(str(p) for p in paths.values()))


def _run(args: argparse.Namespace) -> None:
    from gaussianip.engine.run import load_run_config, run

    run(load_run_config(args.config, args.overrides), device=args.device, out_root=args.out)


COMMANDS = {"preview": _preview, "run": _run}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        COMMANDS[args.command](args)
    except GaussianIPError as err:
        if args.verbose:
            traceback.print_exc()
        print(f"gaussianip: error: {err}", file=sys.stderr)
        return 2
    return 0
