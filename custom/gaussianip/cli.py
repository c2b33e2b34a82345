"""Command line: ``python -m gaussianip <command>`` (also the ``gaussianip`` script).

Errors a user can fix print one message and exit with status 2; ``--verbose`` adds the
traceback. Ctrl-C prints one line and exits with status 130 (``run`` first saves a
checkpoint and names the command that continues it).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import traceback
from pathlib import Path

from gaussianip.errors import ConfigError, GaussianIPError
from gaussianip.paths import use_compile_cache

DESCRIPTION = (
    "GaussianIP: identity-preserving 3D Gaussian humans from a text prompt and one portrait. "
    "Run 'python -m gaussianip COMMAND --help' for a command's options."
)


def _add_preview(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preview", help="initial grey Gaussian human, views and pose images")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--body", default="default", help="body model: default (free) or smplx")
    p.add_argument("--body-model-path", default=None, help="SMPL-X model folder or file")
    p.add_argument("--num-points", type=int, default=100_000, help="Gaussians to sample")
    p.add_argument("--resolution", type=int, default=512, help="image size in pixels")
    p.add_argument("--seed", type=int, default=0, help="seed of the point sampling")
    p.add_argument("--device", default="cpu", help="cpu (the default), cuda or cuda:N")
    _add_verbose(p)


def _add_verbose(parser: argparse.ArgumentParser, default: object = argparse.SUPPRESS) -> None:
    # Accepted before and after the command name; SUPPRESS keeps the other one's value.
    parser.add_argument("--verbose", action="store_true", default=default, help="show tracebacks")


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the whole method from a YAML config")
    p.add_argument("--config", default=None, help="YAML config, e.g. gaussianip-tiny.yaml")
    p.add_argument("--resume", default=None,
                   help="continue an earlier run's folder (outputs/<name>@<time>)")  # fmt: skip
    p.add_argument("--device", default="cpu",
                   help="cpu (the default), cuda or cuda:N")  # fmt: skip
    p.add_argument("--out", default=None, help="output root (default: the config's exp_root_dir)")
    p.add_argument("--memory-cap-gib", type=float, default=None, metavar="GIB",
                   help="hard cap on GPU memory, as on a card of that size (an allocation "
                        "beyond it fails): proves a run fits a smaller GPU")  # fmt: skip
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    _add_verbose(p)


def _add_download(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "download", help="fetch every model weight a config needs (run once, online)"
    )
    p.add_argument(
        "--config", default="gaussianip.yaml", help="YAML config whose system.prior to fetch"
    )
    p.add_argument(
        "--dir", type=Path, default=None, help="folder for copies (default: the HF cache)"
    )
    p.add_argument("--no-faces", action="store_true", help="skip the insightface face pack")
    _add_verbose(p)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from gaussianip.engine.bench import add_arguments

    p = sub.add_parser("bench", help="time the whole method on full-size random-weight priors")
    add_arguments(p)
    _add_verbose(p)


def _add_warmup(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("warmup", help="compile the GPU kernels once, so that the first run "
                                      "starts at once (install.sh runs it)")  # fmt: skip
    p.add_argument("--config", action="append", default=None,
                   help="config whose kernels to compile (repeatable; default: "
                        "gaussianip.yaml and gaussianip-fast.yaml)")  # fmt: skip
    p.add_argument("--device", default="cuda",
                   help="the GPU the runs will use (default cuda; cuda:N)")  # fmt: skip
    p.add_argument("overrides", nargs="*", help="key=value config overrides, as for run")
    _add_verbose(p)


def _add_animate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("animate", help="pose a finished avatar with a motion: animation.mp4")
    p.add_argument("run_dir", type=Path, help="a finished run (outputs/<name>@<time>)")
    p.add_argument("--motion", required=True, type=Path,
                   help="AMASS-layout .npz, e.g. load/motions/walk.npz")  # fmt: skip
    p.add_argument("--camera", default="front", choices=("front", "orbit", "follow"),
                   help="front: fixed, framing the whole motion; orbit: one turn around it; "
                        "follow: tracking the body")  # fmt: skip
    p.add_argument("--resolution", type=int, default=512, help="video size in pixels")
    p.add_argument("--fps", type=float, default=None,
                   help="video frame rate (default 30, or the motion's own where lower; "
                        "never above the motion's)")  # fmt: skip
    p.add_argument("--ply-every", type=int, default=0, metavar="N",
                   help="also write every N-th posed frame as a 3DGS PLY")  # fmt: skip
    p.add_argument("--max-frames", type=int, default=None, help="only the first N frames")
    p.add_argument("--out", type=Path, default=None, help="the mp4 (default: save/animation.mp4)")
    p.add_argument("--device", default="cpu", help="cpu (the default) or cuda")
    _add_verbose(p)


def _add_export(sub: argparse._SubParsersAction) -> None:
    from gaussianip.export import FORMATS, MESH_FORMATS

    p = sub.add_parser(
        "export",
        help="write the avatar for web viewers (splats) or as a rigged mesh (glb, obj)",
        description="Splats: splat, ply, compressed-ply. Meshes: glb (rigged, textured, "
        "with an optional animation clip: Blender, Unity, three.js) and obj (static, "
        "textured: .obj + .mtl + .png).",
    )
    p.add_argument("run_dir", type=Path, help="a run folder, its save/ folder, or a .ply")
    p.add_argument("--format", required=True, choices=[*FORMATS, *MESH_FORMATS],
                   help="file format")  # fmt: skip
    p.add_argument("--out", type=Path, default=None,
                   help="output file (default: <save>/avatar.<format suffix>)")  # fmt: skip
    p.add_argument("--stage", default="final", choices=["final", "stage1"],
                   help="which avatar: the final one or stage 1's")  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    mesh = p.add_argument_group("mesh formats (glb, obj)")
    mesh.add_argument("--faces", type=int, default=50_000, metavar="N",
                      help="triangles of the mesh (default 50000)")  # fmt: skip
    mesh.add_argument("--texture-size", type=int, default=2048, metavar="PX",
                      help="texture width and height in pixels (default 2048)")  # fmt: skip
    mesh.add_argument("--motion", type=Path, default=None, metavar="FILE",
                      help="glb: bake this AMASS-layout .npz motion as a clip")  # fmt: skip
    mesh.add_argument("--device", default="cpu",
                      help="cpu or cuda: where the Gaussians are rendered")  # fmt: skip
    _add_verbose(p)


def _add_view(sub: argparse._SubParsersAction) -> None:
    from gaussianip.viewer import add_arguments

    p = sub.add_parser("view", help="look at the avatar in the browser (no GPU needed)")
    add_arguments(p)
    _add_verbose(p)


def _add_batch(sub: argparse._SubParsersAction) -> None:
    from gaussianip.batch.command import add_arguments

    p = sub.add_parser("batch", help="many avatars: a manifest's rows on every GPU (Ray), with "
                                     "results.csv and gallery.html")  # fmt: skip
    add_arguments(p)
    _add_verbose(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gaussianip", description=DESCRIPTION)
    _add_verbose(parser, default=False)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_preview(sub)
    _add_run(sub)
    _add_download(sub)
    _add_bench(sub)
    _add_warmup(sub)
    _add_animate(sub)
    _add_export(sub)
    _add_view(sub)
    _add_batch(sub)
    return parser


def _preview(args: argparse.Namespace) -> None:
    from gaussianip.devices import check_device
    from gaussianip.preview import PreviewOptions, run_preview

    check_device(args.device)
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
    from gaussianip.devices import apply_memory_cap, check_device
    from gaussianip.engine.run import load_run_config, run_avatar

    check_device(args.device)  # before any folder is made
    if args.memory_cap_gib is not None:
        import torch

        apply_memory_cap(args.memory_cap_gib, torch.device(args.device))
    if args.resume is not None:
        if args.config is not None or args.overrides:
            raise ConfigError("--resume continues a run with its own config: drop --config "
                              "and the overrides.")  # fmt: skip
        if args.out is not None:
            raise ConfigError(f"--resume writes into the run folder it continues "
                              f"('{args.resume}'), so --out '{args.out}' cannot be honoured: "
                              "drop --out.")  # fmt: skip
        run_avatar(None, device=args.device, resume=args.resume)
        return
    if args.config is None:
        raise ConfigError("Give --config YAML (e.g. gaussianip-tiny.yaml), or --resume RUN_DIR.")
    run_avatar(load_run_config(args.config, args.overrides), device=args.device,
               out_root=args.out)  # fmt: skip


def _download_lpips_backbone(system, target_dir: Path | None) -> Path | None:
    """torchvision's VGG16 (the LPIPS backbone of the reconstruction) into torch's hub cache,
    or into ``target_dir/torch_hub`` (nothing then goes to the cache). Returns that folder
    when it was given."""
    from torchvision.models import VGG16_Weights

    from gaussianip.config import parse_config
    from gaussianip.engine.reconstruction import (
        VGG16_FILE,
        ReconstructionConfig,
        lpips_backbone_path,
    )
    from gaussianip.errors import AssetError

    cfg = parse_config(ReconstructionConfig, system.get("reconstruction"), "system.reconstruction")
    if not cfg.lpips_pretrained or cfg.lambda_lpips <= 0:
        return None
    folder = target_dir.expanduser().resolve() / "torch_hub" if target_dir is not None else None
    path = lpips_backbone_path(folder)
    if not path.exists():
        import torch.hub

        path.parent.mkdir(parents=True, exist_ok=True)
        hash_prefix = VGG16_FILE.rsplit("-", 1)[-1].split(".")[0]  # torchvision's naming
        url = VGG16_Weights.IMAGENET1K_V1.url
        try:
            torch.hub.download_url_to_file(url, str(path), hash_prefix=hash_prefix)
        except Exception as err:  # network errors come in many types
            from gaussianip.network import is_timeout, network_timeout, timeout_error

            if is_timeout(err):
                where = url.split("/")[2]
                raise timeout_error("the LPIPS VGG16 backbone", where, network_timeout()) from None
            raise AssetError(f"Could not download the LPIPS VGG16 backbone: {err}") from err
    print(f"LPIPS VGG16 backbone: {path}")
    return folder


def _download(args: argparse.Namespace) -> None:
    from gaussianip.network import network_timeouts

    with network_timeouts():  # a stalled server ends in a message, never a hang
        _download_all(args)


def _download_all(args: argparse.Namespace) -> None:
    from gaussianip.config import parse_config
    from gaussianip.engine.config import load_run_config
    from gaussianip.prior.human_prior import PriorConfig
    from gaussianip.prior.weights import (
        download_weights,
        local_overrides,
        required_weights,
        yaml_str,
    )

    system = load_run_config(args.config, []).get("system") or {}
    prior = parse_config(PriorConfig, system.get("prior"), "system.prior")
    face_analyser = None if args.no_faces else system.get("face_analyser", "buffalo_l")
    lpips_dir = _download_lpips_backbone(system, args.dir)
    sources = required_weights(prior, face_analyser)
    if not sources and lpips_dir is None:
        print(f"nothing to download for '{args.config}' (prior preset '{prior.preset}')")
        return
    paths = download_weights(prior, args.dir, face_analyser, system.get("face_analyser_root"))
    for source, path in zip(sources, paths, strict=True):
        print(f"{source.label}: {path}")
    if args.dir is not None:
        print("Point the config at these copies (YAML, or the same keys as key=value):")
        yaml = local_overrides(sources, paths) if sources else "system:"
        if lpips_dir is not None:
            yaml += f"\n  reconstruction:\n    lpips_weights_dir: {yaml_str(str(lpips_dir))}"
        print(yaml)


def _bench(args: argparse.Namespace) -> None:
    from gaussianip.devices import available_devices, check_device
    from gaussianip.engine.bench import main

    if args.device.startswith("cuda") and "cuda" not in available_devices():
        raise ConfigError(
            "gaussianip bench times the method on a GPU, and PyTorch sees no CUDA GPU here "
            "(a CPU build of torch, or CUDA_VISIBLE_DEVICES). Run it on the GPU machine. "
            "`--device cpu` does run here, but the full-size networks take minutes a step on "
            "a CPU: a CPU timing says nothing about a GPU's."
        )
    check_device(args.device)
    main(args)


def _warmup(args: argparse.Namespace) -> None:
    from gaussianip.devices import available_devices, check_device

    if args.device == "cpu" or "cuda" not in available_devices():
        raise ConfigError(
            "gaussianip warmup compiles GPU kernels for later runs on this machine's GPU; "
            + ("PyTorch sees no CUDA GPU here, so " if "cuda" not in available_devices()
               else "with --device cpu ")
            + "there is nothing to prepare: CPU runs need no warm-up. Run it on the GPU "
            "machine (install.sh does where it finds a GPU)."
        )  # fmt: skip
    check_device(args.device)
    from gaussianip.warmup import SHIPPED_CONFIGS, warm_up

    warm_up(args.config or SHIPPED_CONFIGS, args.device, args.overrides)


def _animate(args: argparse.Namespace) -> None:
    from gaussianip.animate import AnimateOptions, animate, summary

    opts = AnimateOptions(
        run_dir=args.run_dir,
        motion=args.motion,
        camera=args.camera,
        resolution=args.resolution,
        fps=args.fps,
        ply_every=args.ply_every,
        max_frames=args.max_frames,
        device=args.device,
        out=args.out,
    )
    print(summary(opts, animate(opts)))


def _export(args: argparse.Namespace) -> None:
    from gaussianip.export import export_run

    out = export_run(args.run_dir, args.format, args.out, args.stage, args.force,
                     faces=args.faces, texture_size=args.texture_size, motion=args.motion,
                     device=args.device)  # fmt: skip
    print(f"wrote {out} ({out.stat().st_size / 2**20:.2f} MB)")


def _view(args: argparse.Namespace) -> None:
    from gaussianip.viewer import main

    main(args)


def _batch(args: argparse.Namespace) -> int:
    from gaussianip.batch.command import main

    return main(args)


COMMANDS = {
    "preview": _preview,
    "run": _run,
    "download": _download,
    "bench": _bench,
    "warmup": _warmup,
    "animate": _animate,
    "export": _export,
    "view": _view,
    "batch": _batch,
}


# errnos that describe the machine, not a bug: told as one line naming the file.
ENVIRONMENT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.ENAMETOOLONG,
                      errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR)  # fmt: skip


def environment_error(err: OSError) -> bool:
    return err.errno in ENVIRONMENT_ERRNOS


def describe_os_error(err: OSError) -> str:
    """One line for an ``OSError`` of the environment: the file, the reason, the fix."""
    from gaussianip.disk_space import FULL_DISK_ERRNOS, disk_full_error

    where = f"'{err.filename}'" if err.filename else "a file"
    if err.errno in FULL_DISK_ERRNOS and err.filename:
        return str(disk_full_error(Path(err.filename)))
    if err.errno == errno.ENAMETOOLONG:
        return (f"the name {where} is too long for the file system (at most 255 bytes a "
                "name); choose a shorter one.")  # fmt: skip
    return f"cannot write or read {where}: {err.strerror}. Check the path and its permissions."


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "batch":  # overrides after the options: every row's
        args.items += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # Growable CUDA memory segments: less memory held back by the caching allocator when
    # tensor sizes change between phases (a user's own setting wins).
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    # torch.compile's kernels in a cache that survives reboots: a second run on the same
    # machine (or a first run after `gaussianip warmup`) skips the compilation.
    use_compile_cache()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        status = COMMANDS[args.command](args)
    except GaussianIPError as err:
        if args.verbose:
            traceback.print_exc()
        print(f"gaussianip: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the environment: a full disk, a name too long, no permission
        if not environment_error(err):
            raise
        if args.verbose:
            traceback.print_exc()
        print(f"gaussianip: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C: one line, no traceback
        if args.verbose:
            traceback.print_exc()
        print(str(err) or f"gaussianip: {args.command} interrupted (Ctrl-C).", file=sys.stderr)
        return getattr(err, "exit_status", 130)
    return status or 0  # a command returns a status where it has one (batch: 1 = rows failed)
