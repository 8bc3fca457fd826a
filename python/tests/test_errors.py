"""Errors are exceptions of the package with the command's messages, and bad arrays are
refused saying what was expected: never a crash of the interpreter."""

import numpy as np
import pytest

import cambox
from conftest import FIXTURES, MODEL, NATURAL, PHOTOS, ROOT


def test_the_exceptions_are_also_the_builtin_kinds():
    assert issubclass(cambox.UsageError, ValueError)
    assert issubclass(cambox.InputError, ValueError)
    assert issubclass(cambox.OutputError, OSError)
    for e in (cambox.UsageError, cambox.ModelError, cambox.InputError, cambox.OutputError):
        assert issubclass(e, cambox.CamboxError)


@pytest.mark.parametrize(
    "array, says",
    [
        (np.zeros((64, 64, 3), np.float64), "array of dtype float64; cambox takes uint8, uint16 or float32: convert"),
        (np.zeros((64, 64, 3), np.int32), "array of dtype int32; cambox takes uint8, uint16 or float32"),
        (np.zeros((64, 64), bool), "array of dtype bool"),
        (np.zeros((64, 64, 4), np.uint8), "has 4 channels; cambox takes H x W (grey) or H x W x 3 (RGB): drop the alpha"),
        (np.zeros((64, 64, 2), np.uint8), "has 2 channels"),
        (np.zeros(64, np.uint8), "array of 1 dimensions"),
        (np.zeros((2, 64, 64, 3), np.uint8), "array of 4 dimensions"),
        (np.zeros((0, 64, 3), np.uint8), "empty array (shape [0, 64, 3])"),
        (np.zeros((4, 64, 3), np.uint8), "refused: image is 64x4 pixels, below the minimum side of 8"),
        (np.full((16, 16), 255.0, np.float32), "refused: sample 255 at row 0, column 0, channel 0: float samples must be in [0, 1]"),
        (np.full((16, 16, 3), np.nan, np.float32), "refused: sample NaN"),
        (np.zeros((16, 16, 3), ">u2"), "array of dtype >u2"),
    ],
)
def test_bad_arrays_are_refused_with_what_was_expected(demo_model, array, says):
    with pytest.raises(cambox.InputError) as e:
        demo_model.explain(array)
    assert str(e.value).startswith("array: "), str(e.value)
    assert says in str(e.value), str(e.value)
    # In a list the array is named by its place, and nothing runs.
    with pytest.raises(cambox.InputError, match=r"^images\[1\]: "):
        demo_model.explain([np.zeros((16, 16), np.uint8), array], errors="none")


def test_what_is_neither_an_array_nor_a_path_is_a_usage_error(demo_model):
    for bad in (3, [[1, 2], [3, 4]], {"a": 1}):
        with pytest.raises(cambox.UsageError, match="numpy array .* or the path of an image file"):
            demo_model.explain(bad)


def test_good_arrays_of_every_dtype_and_layout_are_taken(demo_model):
    rgb = demo_model.read_image(NATURAL / "coffee.png")
    base = demo_model.explain(rgb)
    as_float = demo_model.explain(rgb.astype(np.float32) / np.float32(255))
    assert np.array_equal(as_float.probabilities, base.probabilities)
    as_16 = demo_model.explain(rgb.astype(np.uint16) * 257)
    assert np.abs(as_16.probabilities - base.probabilities).max() < 1e-5
    assert as_16.boxes[0]["x1"] == base.boxes[0]["x1"]
    # Strided views are read in their logical order.
    flipped = np.ascontiguousarray(rgb[:, ::-1])
    assert np.array_equal(demo_model.explain(rgb[:, ::-1]).probabilities, demo_model.explain(flipped).probabilities)
    grey = demo_model.read_image(NATURAL / "camera.png")
    assert grey.ndim == 2
    assert np.array_equal(demo_model.explain(grey).probabilities, demo_model.explain(grey[:, :, None]).probabilities)


def test_a_file_that_fails_raises_naming_it_or_leaves_none(demo_model, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    with pytest.raises(cambox.InputError) as e:
        demo_model.explain(fake)
    assert str(e.value) == f"{fake}: cannot decode: not an image: unrecognised file format"
    missing = tmp_path / "missing.jpg"
    with pytest.raises(cambox.InputError, match=f"^{missing}: cannot read: "):
        demo_model.explain(missing)
    out = demo_model.explain([PHOTOS[0], fake, PHOTOS[1]], errors="none")
    assert out[1] is None and out[0].width > 0 and out[2].width > 0
    with pytest.raises(cambox.InputError, match="fake.png: cannot decode"):
        demo_model.explain([PHOTOS[0], fake])


def test_models_cambox_cannot_use_are_model_errors():
    with pytest.raises(cambox.ModelError) as e:
        cambox.Model(FIXTURES / "models" / "no_pooling.onnx")
    assert str(e.value).startswith(f"model {FIXTURES / 'models' / 'no_pooling.onnx'}: ")
    with pytest.raises(cambox.ModelError, match="cam"):
        cambox.Model(FIXTURES / "models" / "mlp_head.onnx", method="cam")
    with pytest.raises(cambox.CamboxError):
        cambox.Model(ROOT / "README.md")
    with pytest.raises(cambox.UsageError, match="needs the path of an ONNX model"):
        cambox.Model()


def test_bad_settings_are_usage_errors_naming_them():
    with pytest.raises(cambox.UsageError, match="^unknown setting 'inputsize'"):
        cambox.Model(MODEL, inputsize=(480, 320))
    with pytest.raises(cambox.UsageError, match="^method = \"gradkam\": unknown map method 'gradkam': cam, gradcam, .*auto$"):
        cambox.Model(MODEL, method="gradkam")
    with pytest.raises(cambox.UsageError, match="^input_size = "):
        cambox.Model(MODEL, input_size=(480, 320, 3))
    with pytest.raises(cambox.UsageError, match="^unknown setting 'cam.mean'"):
        cambox.Model(MODEL, cam={"mean": [0.5]})
    with pytest.raises(cambox.UsageError, match="a setting cannot be"):
        cambox.Model(MODEL, mean=object())
    # What only the plan can check is the command's configuration error.
    with pytest.raises(cambox.InputError, match=r"^config \(keyword arguments\): \[localise\] preset = \"cam-paper\" fixes"):
        cambox.Model(MODEL, preset="cam-paper", thresholds=["fraction:0.3"])


def test_bad_classes_are_usage_errors(demo_model):
    photo = PHOTOS[0]
    with pytest.raises(cambox.UsageError, match="no class named 'dogg'"):
        demo_model.explain(photo, classes="dogg")
    with pytest.raises(cambox.UsageError, match="K must be at least 1"):
        demo_model.explain(photo, classes="topk:0")
    with pytest.raises(cambox.UsageError, match="out of range"):
        demo_model.explain(photo, classes=[1000])
    with pytest.raises(cambox.UsageError):
        demo_model.explain(photo, errors="skip")


def test_a_configuration_file_that_cannot_be_used_says_so_as_the_command_does(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\npath = "m.onnx"\n[cam]\nmethd = "cam"\n')
    with pytest.raises(cambox.InputError) as e:
        cambox.Model(config=bad)
    assert str(e.value).startswith(f"config {bad}: ") and "unknown field `methd`" in str(e.value)


def test_run_and_evaluate_errors(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'[input]\npaths = ["{tmp_path / "nowhere"}"]\n[model]\npath = "{MODEL}"\n')
    with pytest.raises(cambox.InputError, match="does not exist"):
        cambox.run(config, out=tmp_path / "o")
    with pytest.raises(cambox.UsageError, match=r"^--shard 3/2: the index must be below the count"):
        cambox.run(config, inputs=NATURAL, out=tmp_path / "o", shard="3/2")
    with pytest.raises(cambox.UsageError, match="shard="):
        cambox.run(config, inputs=NATURAL, out=tmp_path / "o", shard="half")
    with pytest.raises(cambox.UsageError, match=r"^--min-score 2 must be in \[0, 1\]"):
        cambox.evaluate(tmp_path, tmp_path, min_score=2)
    with pytest.raises(cambox.UsageError, match="convention="):
        cambox.evaluate(tmp_path, tmp_path, convention="closed")
    with pytest.raises(cambox.UsageError, match="unexpected keyword"):
        cambox.evaluate(tmp_path, tmp_path, treshold=2)
    with pytest.raises(cambox.InputError, match="no run.json"):
        cambox.read_run(tmp_path)


def test_a_failing_progress_callback_stops_the_list_and_raises(demo_model):
    calls = []

    def progress(n):
        calls.append(n)
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        demo_model.explain(PHOTOS * 3, progress=progress)
    assert calls and calls[0] >= 1
