"""The command line itself: help texts, device checks, --out mistakes, Ctrl-C outside a run."""

import argparse

import pytest
import torch

from gaussianip import cli, devices
from gaussianip.devices import check_device
from gaussianip.errors import ConfigError


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_option_of_every_command_has_help():
    parsers = list(_parsers(cli.build_parser()))
    assert {p.prog for p in parsers} >= {f"gaussianip {c}" for c in cli.COMMANDS}
    missing = [
        f"{p.prog} {a.option_strings or a.dest}"
        for p in parsers
        for a in p._actions
        if not isinstance(a, argparse._SubParsersAction) and not (a.help and a.help.strip())
    ]
    assert missing == []


def test_help_is_plain_text(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert "``" not in text and ":class:" not in text and "python -m gaussianip" in text


def _gpus(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_device_names_are_checked_against_the_machine(monkeypatch):
    _gpus(monkeypatch, 0)
    assert check_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="'gpu' is not a device name.*only device here is 'cpu'"):
        check_device("gpu")
    with pytest.raises(ConfigError, match="--device cuda is not available.*only device here"):
        check_device("cuda")
    _gpus(monkeypatch, 2)
    assert devices.available_devices()[:4] == ["cpu", "cuda", "cuda:0", "cuda:1"]
    assert check_device("cuda:1") == "cuda:1" and check_device("cuda") == "cuda"
    with pytest.raises(ConfigError, match="cuda:2: there is no such GPU.*'cuda:0', 'cuda:1'"):
        check_device("cuda:2")


@pytest.mark.parametrize("command", [["run", "--config", "gaussianip-tiny.yaml"], ["preview"]])
@pytest.mark.parametrize("device", ["gpu", "cuda"])
def test_a_bad_device_fails_before_any_folder(monkeypatch, capsys, tmp_path, command, device):
    _gpus(monkeypatch, 0)
    out = tmp_path / "out"
    assert cli.main([*command, "--out", str(out), "--device", device]) == 2
    err = capsys.readouterr().err
    assert "gaussianip: error: --device" in err and "'cpu'" in err and "Traceback" not in err
    assert not out.exists()


def test_a_memory_cap_needs_a_gpu_and_fails_before_any_folder(capsys, tmp_path):
    out = tmp_path / "out"
    args = ["run", "--config", "gaussianip-tiny.yaml", "--out", str(out), "--device", "cpu"]
    assert cli.main([*args, "--memory-cap-gib", "8"]) == 2
    err = capsys.readouterr().err
    assert "--memory-cap-gib needs a CUDA device (--device cuda)" in err
    assert "Traceback" not in err and not out.exists()


def test_preview_out_that_is_a_file(capsys, tmp_path):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    assert cli.main(["preview", "--out", str(file)]) == 2
    assert cli.main(["preview", "--out", str(file / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.count("is a file, not a folder; nothing was written") == 2
    assert "Traceback" not in err and file.read_text() == "mine"


def test_ctrl_c_in_any_command_prints_one_line(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "download", interrupted)
    assert cli.main(["download"]) == 130
    captured = capsys.readouterr()
    assert captured.err == "gaussianip: download interrupted (Ctrl-C).\n" and captured.out == ""
