"""The GIL is released while cambox works, a Model serves several Python threads, and
Ctrl-C (SIGINT) stops a list or a run the way it stops the command: the images in flight
finish, the run records it and resumes."""

import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import cambox
from conftest import PHOTOS, ROOT


def test_the_gil_is_released_while_cambox_works(demo_model):
    done = threading.Event()
    worker = threading.Thread(target=lambda: (demo_model.explain(PHOTOS * 8, progress=False), done.set()))
    t0 = last = time.perf_counter()
    gaps = []
    worker.start()
    while not done.is_set():
        time.sleep(0.002)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    worker.join()
    took = time.perf_counter() - t0
    # Holding the GIL for the call would stall this loop for most of it.
    assert max(gaps) < 0.3 * took, (max(gaps), took)


def test_one_model_serves_several_threads(demo_model):
    alone = [r.probabilities for r in demo_model.explain(PHOTOS, progress=False)]
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(demo_model.explain, PHOTOS[i:] + PHOTOS[:i], progress=False) for i in range(3)]
        for i, f in enumerate(futures):
            got = [r.probabilities for r in f.result()]
            want = alone[i:] + alone[:i]
            assert all(np.array_equal(a, b) for a, b in zip(got, want))


def test_ctrl_c_stops_a_list(demo_model):
    calls = []

    def progress(n):
        calls.append(n)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        demo_model.explain(PHOTOS * 10, progress=progress)
    assert calls[-1] < 60


def test_ctrl_c_interrupts_a_run_which_then_resumes(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(150):
        src = PHOTOS[i % len(PHOTOS)]
        os.link(src, images / f"{i:03d}-{src.name}")
    out = tmp_path / "out"
    config = ROOT / "configs" / "bench.toml"
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            cambox.run(config, inputs=images, out=out, quiet=True)
    finally:
        timer.cancel()
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["state"] == "interrupted" and manifest["interrupted"] is True
    done_before = manifest["counts"]["ok"]
    assert 0 < done_before < 150
    again = cambox.run(config, inputs=images, out=out, quiet=True)
    assert (again.ok, again.errors, again.status) == (150, 0, 0)
    assert json.loads((out / "run.json").read_text())["resumed_rows"] == done_before
