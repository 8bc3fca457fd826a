"""The rest of the API: settings by keyword, classes per call, overlays, progress, DICOM,
`run` (resume included), `evaluate` (what summary.json holds) and `read_run`."""

import json

import numpy as np
import pytest

import cambox
from conftest import CLASS_MAP, FIXTURES, LABELS, MODEL, NATURAL, PHOTOS, ROOT, VOC


def test_the_model_says_what_it_runs(demo_model):
    m = demo_model
    assert m.num_classes == len(m.labels) == 1000 and m.labels[281] == "tabby"
    assert (m.method, m.activation, m.passes, m.localise["preset"]) == ("cam", "softmax", [(224, 224, False)], "cam-paper")
    assert m.method_reason and m.model["cut"]["head"] == "linear" and len(m.model["sha256"]) == 64
    assert m.config["preprocess"]["resize_to"] == 256 and "cambox.Model(" in repr(m)


def test_keyword_settings_and_sections_are_the_configuration(tmp_path):
    m = cambox.Model(MODEL, input_size=(480, 320), recipe="sharp", preprocess={"resize": "stretch"}, threads=1)
    assert (624, 416, True) in m.passes and len(m.passes) == 6 and m.localise["preset"] == "sharp"
    assert m.threads == 1 and m.config["preprocess"]["resize"] == "stretch"
    # Settings replace the file's keys; the file's relative paths stay relative to it.
    config = tmp_path / "c.toml"
    config.write_text('[model]\npath = "m.onnx"\n[cam]\nmethod = "cam"\n')
    (tmp_path / "m.onnx").write_bytes(MODEL.read_bytes())
    m = cambox.Model(config=config, method="gradcam", labels=LABELS)
    assert m.method == "gradcam" and m.model["path"] == str(tmp_path / "m.onnx") and m.labels[0] == "tench"


def test_classes_per_call(demo_model):
    r = demo_model.explain(NATURAL / "chelsea.png", classes="topk:3")
    assert r.classes == [k for k, _, _ in r.top_k[:3]]
    assert set(r.maps) == set(r.masks) == set(r.classes) and r.raw_maps.shape[0] == 3
    r = demo_model.explain(NATURAL / "chelsea.png", classes=["tabby", 285])
    assert r.classes == [281, 285] and {b["class_index"] for b in r.boxes} <= {281, 285}
    assert r.boxes_of("tabby") == [b for b in r.boxes if b["class_index"] == 281]
    assert r.raw_map(285).shape == r.raw_maps.shape[1:]
    assert demo_model.explain(NATURAL / "chelsea.png", classes=281).classes == [281]
    with pytest.raises(cambox.UsageError, match="was not localised"):
        r.raw_map(1)


def test_overlays_when_the_configuration_makes_them():
    m = cambox.Model(config=ROOT / "configs" / "demo.toml")
    r = m.explain(NATURAL / "astronaut.png")
    o = r.overlays[r.class_index]
    assert o.shape == (r.height, r.width, 3) and o.dtype == np.uint8
    assert cambox.Model(config=ROOT / "configs" / "demo.toml", overlays=False).explain(PHOTOS[0]).overlays == {}


def test_progress_is_reported_up_to_the_length(demo_model):
    seen = []
    out = demo_model.explain(PHOTOS * 2, progress=seen.append)
    assert len(out) == 12 and seen and seen[-1] == 12 and seen == sorted(seen)


def test_dicom_files_are_read_as_run_reads_them(demo_model):
    path = FIXTURES / "dicom" / "mono2_8bit_explicit.dcm"
    r = demo_model.explain(path)
    assert (r.width, r.height, r.row["frames"]) == (536, 356, 1)
    pixels = demo_model.read_image(path)
    assert pixels.shape == (356, 536)
    assert np.array_equal(demo_model.explain(pixels).probabilities, r.probabilities)


@pytest.fixture(scope="module")
def natural_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "natural"
    s = cambox.run(ROOT / "configs" / "demo.toml", out=out, quiet=True, maps=True, probabilities=True, threads=2)
    return s


def test_run_is_the_command(natural_run):
    s = natural_run
    assert (s.ok, s.errors, s.interrupted, s.nothing_found, s.status) == (6, 0, False, None, 0)
    manifest = json.loads((s.out / "run.json").read_text())
    assert manifest["state"] == "completed" and manifest["fingerprint"] == s.fingerprint
    assert manifest["config"]["output"]["maps"] is True and manifest["config"]["run"]["threads"] == 2
    # The same command again resumes: nothing to do, the same counts.
    again = cambox.run(ROOT / "configs" / "demo.toml", out=s.out, quiet=True, maps=True, probabilities=True, threads=2)
    assert (again.ok, again.errors, again.status) == (6, 0, 0)
    assert json.loads((s.out / "run.json").read_text())["resumed_rows"] == 6
    # Another configuration in the same folder is refused, as by the command.
    with pytest.raises(cambox.OutputError, match="holds a run with a different configuration .* use --force"):
        cambox.run(ROOT / "configs" / "demo.toml", out=s.out, quiet=True)


def test_a_sharded_run_takes_its_share(tmp_path):
    a = cambox.run(ROOT / "configs" / "demo.toml", out=tmp_path / "a", quiet=True, shard=(0, 2))
    b = cambox.run(ROOT / "configs" / "demo.toml", out=tmp_path / "b", quiet=True, shard="1/2")
    assert a.ok + b.ok == 6 and a.ok > 0 and b.ok > 0


def test_evaluate_returns_what_summary_json_holds(natural_run, tmp_path):
    summary = cambox.evaluate(natural_run, VOC, class_map=CLASS_MAP, out=tmp_path / "eval", bootstrap=50)
    assert summary == json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert {"cat", "cup", "rocket"} <= set(summary["per_class"]) and 0 < summary["gt_known_loc"] < 1


def test_read_run_gives_the_tables(natural_run):
    t = cambox.read_run(natural_run.out)
    assert t.manifest["state"] == "completed"
    assert len(t.images) == 6 and list(t.images.columns)[:3] == ["path", "status", "error"]
    assert t.images["width"].dtype == "Int64" and t.boxes["score"].dtype == "float64"
    assert t.probabilities.shape == (6, 1001)
    maps, sidecar = t.map("chelsea.png")
    assert maps.shape[0] == len(sidecar["classes"]) and maps.dtype == np.float32
    plain = cambox.read_run(natural_run.out, pandas=False)
    assert isinstance(plain.images, dict) and len(plain.images["path"]) == 6
    assert sorted(plain.boxes["path"]) == sorted(t.boxes["path"])
    assert all(isinstance(v, int) for v in plain.boxes["x1"])
