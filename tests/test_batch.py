"""``gaussianip batch``: rows checked before anything starts, a local Ray cluster with two
CPU workers running tiny rows to the end (one of them killed mid-row), Ctrl-C and a rerun,
one prior load for a worker's rows, results.csv and a gallery that opens in Chromium."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.headless_chromium import HeadlessChromium, chromium_binary

from gaussianip.batch.gallery import grid_of, write_gallery
from gaussianip.batch.manifest import ManifestError, check_rows, grid_rows, read_manifest
from gaussianip.batch.state import BatchState

ray = pytest.importorskip("ray")

TINY = "gaussianip-tiny.yaml"
PORTRAIT = Path("load/portraits/eileen_collins_nasa.png").resolve()
# The tiny config made smaller still: seconds a row on a CPU.
SHORT = [
    "system.stage1.steps=2",
    "system.guidance.timestep_schedule_cfg.total_steps=2",
    "system.geometry.densify.refine_every=2",
    "system.geometry.densify.refine_start_iter=1",
    "system.geometry.gaussians.init_num_points=1000",
    "system.reconstruction.steps=1",
    "system.outputs.turntable_frames=2",
    "data.ring_size=8",
    "data.ring_height=32",
    "data.ring_width=32",
    "data.n_val_views=2",
    "data.eval_height=64",
    "data.eval_width=64",
    "system.vcr.chunk_size=8",
    "checkpoint.every_n_train_steps=1",
]
LONG = "system.stage1.steps=10 system.guidance.timestep_schedule_cfg.total_steps=10"


# Ray's memory monitor kills workers when the whole machine's memory passes 95 %, whoever
# uses it; on a shared test machine that is other processes: off for these tests.
os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")


def batch(manifest: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gaussianip", "batch", str(manifest), "--out", str(out),
            *extra, *SHORT]  # fmt: skip


def write_csv(path: Path, rows: list[dict]) -> Path:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def wait_for(condition, process: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"the batch ended first ({process.returncode}): {err[-3000:]}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "batch.jsonl").read_text().splitlines()]


def mtimes(out: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in (out / "runs").rglob("*") if p.is_file()
            and p.name != "run.lock"}  # fmt: skip


# ---------------------------------------------------------------------- checks, no Ray
def test_bad_manifest_lists_every_bad_row_and_starts_nothing(tmp_path):
    manifest = write_csv(tmp_path / "people.csv", [
        {"name": "ada", "prompt": "a woman", "portrait": str(PORTRAIT), "config": TINY,
         "overrides": ""},
        {"name": "bob", "prompt": "a man", "portrait": "missing.png", "config": TINY,
         "overrides": ""},
        {"name": "cy", "prompt": "a man", "portrait": "", "config": TINY,
         "overrides": "system.stage1.stepz=3"},
        {"name": "ada", "prompt": "a girl", "portrait": "", "config": TINY, "overrides": ""},
    ])  # fmt: skip
    t0 = time.monotonic()
    done = subprocess.run(batch(manifest, tmp_path / "out"), capture_output=True, text=True)
    seconds = time.monotonic() - t0
    assert done.returncode == 2, done.stderr[-2000:]
    message = done.stderr
    assert "3 of 4 rows" in message and "nothing was started" in message
    assert "row 2 'bob' (line 3 of people.csv), portrait: 'missing.png' not found" in message
    assert "row 3 'cy' (line 4 of people.csv), overrides: Unknown config key " \
           "'system.stage1.stepz'. Did you mean 'steps'?" in message  # fmt: skip
    assert "row 4 'ada' (line 5 of people.csv), name: 'ada' is also the name of row 1" in message
    assert "  row 1 " not in message and "Traceback" not in message
    assert not (tmp_path / "out").exists()  # nothing started, not even the folder
    assert seconds < 60  # the checks only: no Ray, no model


def test_jsonl_manifest_and_grid_shorthand(tmp_path):
    (tmp_path / "people.jsonl").write_text(
        "# a comment\n"
        + json.dumps({"name": "ada", "prompt": "a woman: smiling, 'happy'", "seed": 7,
                      "config": TINY, "overrides": ["system.stage1.steps=3"],
                      "system.reconstruction.steps": 2}) + "\n"
    )  # fmt: skip
    (job,) = check_rows(read_manifest(tmp_path / "people.jsonl"), "people.jsonl", tmp_path)
    config = job.config["system"]
    assert config["prompt_processor"]["prompt"] == "a woman: smiling, 'happy'"  # quoted intact
    assert (config["stage1"]["steps"], config["reconstruction"]["steps"]) == (3, 2)
    assert job.config["seed"] == config["stage1"]["seed"] == config["vcr"]["seed"] == 7
    assert job.config["trainer"]["max_steps"] == 5  # interpolations see the overrides
    # the grid: 2 prompts x 1 portrait x 2 configs, named p<prompt>-<portrait>-<config>
    (tmp_path / "prompts.txt").write_text("a woman\n# skipped\n\na man\n")
    (tmp_path / "faces").mkdir()
    (tmp_path / "faces" / "ada.png").write_bytes(PORTRAIT.read_bytes())
    rows = grid_rows(tmp_path / "prompts.txt", tmp_path / "faces",
                     [TINY, "configs/test/tiny.yaml"])  # fmt: skip
    jobs = check_rows(rows, "the grid", None, ["system.stage1.steps=2"])
    assert [j.name for j in jobs] == ["p01-ada-gaussianip-tiny", "p01-ada-tiny",
                                      "p02-ada-gaussianip-tiny", "p02-ada-tiny"]  # fmt: skip
    assert grid_of(jobs) == ([("a woman", str(tmp_path / "faces" / "ada.png")),
                              ("a man", str(tmp_path / "faces" / "ada.png"))],
                             ["gaussianip-tiny", "tiny"])  # fmt: skip
    (tmp_path / "out").mkdir()
    page = write_gallery(tmp_path / "out", jobs, {}).read_text()
    assert "<th>gaussianip-tiny</th><th>tiny</th>" in page  # one column a config
    assert page.count("no result yet") == 4 and page.count("class='card'") == 4
    portrait = (tmp_path / "faces" / "ada.png").as_uri()  # outside DIR: a file:// link
    assert page.count(f"<img class='portrait' src='{portrait}'") == 2
    with pytest.raises(ManifestError, match="no prompt"):
        (tmp_path / "empty.txt").write_text("# nothing\n")
        grid_rows(tmp_path / "empty.txt", None, [TINY])


# ---------------------------------------------------------------------- Ray, tiny rows
@pytest.fixture(scope="module")
def killed_batch(tmp_path_factory):
    """Three tiny rows on a local Ray cluster of two CPU workers; the worker running the
    long row is SIGKILLed after that row's first checkpoint."""
    root = tmp_path_factory.mktemp("batch")
    manifest = write_csv(root / "people.csv", [
        {"name": "ada", "prompt": "a woman in an orange space suit", "portrait": str(PORTRAIT),
         "seed": 1, "config": TINY, "overrides": ""},
        {"name": "bo", "prompt": "a man in a red jacket", "portrait": "", "seed": 2,
         "config": TINY, "overrides": ""},
        {"name": "long", "prompt": "a woman in a green dress", "portrait": str(PORTRAIT),
         "seed": 3, "config": TINY, "overrides": LONG},
    ])  # fmt: skip
    out = root / "out"
    command = batch(manifest, out, "--workers", "2")
    t0 = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)  # fmt: skip
    checkpoint, lock = out / "runs/long/ckpts/last.pt", out / "runs/long/run.lock"
    wait_for(lambda: checkpoint.is_file() and lock.is_file(), process)
    victim = json.loads(lock.read_text())["pid"]  # the worker writing the row
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=900)
    return {
        "out": out,
        "command": command,
        "done": (process.returncode, stdout, stderr),
        "victim": victim,
        "seconds": time.monotonic() - t0,
    }


def test_killed_worker_loses_only_its_row_since_the_checkpoint(killed_batch):
    out = killed_batch["out"]
    returncode, stdout, stderr = killed_batch["done"]
    assert returncode == 0, stderr[-3000:]
    assert "3 of 3 rows done" in stdout
    records = history(out)
    long_records = [r for r in records if r["name"] == "long"]
    died = [r for r in long_records if r["status"] == "interrupted"]
    assert len(died) == 1 and "its worker died" in died[0]["error"]
    final = BatchState(out).rows
    assert {name: r["status"] for name, r in final.items()} == dict.fromkeys(
        ("ada", "bo", "long"), "done")  # fmt: skip
    assert final["long"]["attempts"] == 2 and final["long"]["pid"] != killed_batch["victim"]
    # continued from its checkpoint (step 1 or later of 11), not from the start
    resumed = json.loads((out / "runs/long/save/metrics.json").read_text())["resumed"]
    assert len(resumed) == 1 and resumed[0]["at_step"] >= 1
    for name in ("ada", "bo"):
        metrics = json.loads((out / f"runs/{name}/save/metrics.json").read_text())
        assert metrics["resumed"] == [] and final[name]["attempts"] == 1
    # each worker process loaded the prior once, for its first row only
    loads = [r for r in records if r.get("prior") == "loaded"]
    assert len({r["pid"] for r in loads}) == len(loads)
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["name"], r["status"]) for r in rows] == [("ada", "done"), ("bo", "done"),
                                                        ("long", "done")]  # fmt: skip
    assert rows[2]["resumed_at_step"] == str(resumed[0]["at_step"])
    for row in rows:
        for column in ("summary", "turntable", "gaussians"):
            assert (out / row[column]).is_file(), (row["name"], column)
        assert float(row["run_seconds"]) > 0 and row["seed"] == str(rows.index(row) + 1)


def test_rerun_redoes_nothing_finished(killed_batch):
    out = killed_batch["out"]
    before = mtimes(out)
    t0 = time.monotonic()
    done = subprocess.run(killed_batch["command"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "all 3 rows are done already" in done.stdout
    assert mtimes(out) == before
    assert time.monotonic() - t0 < 60  # no Ray, no model


@pytest.mark.skipif(chromium_binary() is None, reason="needs Debian's chromium (apt-get "
                    "install chromium) to open the gallery")  # fmt: skip
def test_gallery_opens_in_chromium(killed_batch, tmp_path):
    out = killed_batch["out"]
    page = out / "gallery.html"
    with HeadlessChromium(1200, 1400) as browser:
        browser.open(page.as_uri())
        deadline = time.monotonic() + 60
        script = "[...document.images].every(i => i.complete && i.naturalWidth > 0)"
        while not (browser.evaluate("document.readyState") == "complete"
                   and browser.evaluate(script)):  # fmt: skip
            assert time.monotonic() < deadline, "the gallery's pictures did not load"
            time.sleep(0.2)
        cards = browser.evaluate("[...document.querySelectorAll('.card h2')]"
                                 ".map(h => h.textContent)")  # fmt: skip
        summaries = browser.evaluate("[...document.querySelectorAll('img.summary')]"
                                     ".map(i => i.naturalWidth)")  # fmt: skip
        videos = browser.evaluate("[...document.querySelectorAll('video')]"
                                  ".map(v => v.getAttribute('src'))")  # fmt: skip
        shot = browser.screenshot()
    assert cards == ["1. ada done", "2. bo done", "3. long done"]
    assert len(summaries) == 3 and min(summaries) > 0
    assert videos == [f"runs/{n}/save/turntable.mp4" for n in ("ada", "bo", "long")]
    from PIL import Image

    Image.fromarray(shot).save(tmp_path / "gallery.png")
    keep = os.environ.get("GAUSSIANIP_SCREENSHOTS")  # to look at it
    if keep:
        Image.fromarray(shot).save(Path(keep) / "batch_gallery.png")
    assert shot.shape == (1400, 1200, 3) and np.asarray(shot).std() > 20  # not a blank page


@pytest.fixture
def ray_cluster():
    """A one-CPU Ray cluster started here; the batch joins it with --address/RAY_ADDRESS."""
    ray.init(num_cpus=1, include_dashboard=False, object_store_memory=100 * 2**20,
             log_to_driver=False)  # fmt: skip
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_ctrl_c_stops_at_a_step_and_a_rerun_continues(ray_cluster, tmp_path):
    manifest = write_csv(tmp_path / "people.csv", [
        {"name": "first", "prompt": "a woman", "config": TINY, "overrides": ""},
        {"name": "second", "prompt": "a man", "config": TINY, "overrides": LONG},
    ])  # fmt: skip
    out = tmp_path / "out"
    process = subprocess.Popen(batch(manifest, out, "--address", ray_cluster),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # fmt: skip
    checkpoint = out / "runs/second/ckpts/last.pt"
    wait_for(checkpoint.is_file, process)
    os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C in a terminal
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 130, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("gaussianip batch: stopped with 1 of 2 rows done (the others keep "
                           "their checkpoints); `")  # fmt: skip
    assert f"--out {out}" in last and last.endswith("` continues.") and "Traceback" not in stderr
    state = BatchState(out).rows
    assert state["first"]["status"] == "done"
    assert state["second"]["status"] == "interrupted"
    assert "checkpoint saved" in state["second"]["error"]
    # one worker ran both rows: the prior was loaded once
    assert (state["first"]["prior"], state["second"]["prior"]) == ("loaded", "reused")
    assert state["first"]["pid"] == state["second"]["pid"]
    stopped_at = torch_step(checkpoint)
    before = mtimes(out)
    env = dict(os.environ, RAY_ADDRESS=ray_cluster)
    done = subprocess.run(batch(manifest, out), capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 of 2 rows to run" in done.stdout and "2 of 2 rows done" in done.stdout
    resumed = json.loads((out / "runs/second/save/metrics.json").read_text())["resumed"]
    assert [r["at_step"] for r in resumed] == [stopped_at + 1]
    after = mtimes(out)
    assert {k: v for k, v in after.items() if "/runs/first/" in k} == {
        k: v for k, v in before.items() if "/runs/first/" in k}  # fmt: skip


def torch_step(checkpoint: Path) -> int:
    import torch

    return int(torch.load(checkpoint, weights_only=True)["step"])
