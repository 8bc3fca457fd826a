"""`Model.explain` gives what `cambox run` writes under the same configuration: the same
probabilities (to the 6 decimals of the tables, so within 1e-6), top-k, boxes, maps
(`maps/*.npy` bit for bit, and their geometry) and masks (`masks/*.png`), for each
recipe of conftest.CONFIGS; arrays decoded by cambox give what their files give."""

import json

import numpy as np
import pytest
from PIL import Image

import cambox
from conftest import PHOTOS


@pytest.fixture(scope="module")
def explained(cli_run):
    model = cambox.Model(config=cli_run.config)
    return model, dict(zip(PHOTOS, model.explain(PHOTOS)))


def test_probabilities_and_top_k_match_the_run(cli_run, explained):
    model, results = explained
    for photo, r in results.items():
        row = cli_run.probabilities[photo.name]
        csv_probs = np.array([float(row[k]) for k in list(row)[1:]])
        assert csv_probs.shape == r.probabilities.shape == (model.num_classes,)
        assert np.abs(csv_probs - r.probabilities).max() <= 1e-6, photo.name
        image = cli_run.images[photo.name]
        assert image["status"] == "ok"
        assert int(image["class_index"]) == r.class_index
        assert image["top_k"] == ";".join(f"{k}:{p:.6f}" for k, _, p in r.top_k)
        assert (int(image["width"]), int(image["height"])) == (r.width, r.height)
        if r.logit_check is not None:
            assert image["logit_check"] == f"{r.logit_check:.3e}".replace("e-0", "e-").replace("e+0", "e")


def test_boxes_match_the_run(cli_run, explained):
    _, results = explained
    for photo, r in results.items():
        want = [b for b in cli_run.boxes if b["path"] == photo.name]
        assert len(want) == len(r.boxes) > 0, photo.name
        for w, got in zip(want, r.boxes):
            for k in ("class_index", "x1", "y1", "x2", "y2", "component_area"):
                assert int(w[k]) == got[k], (photo.name, k)
            for k in ("class_name", "threshold_rule", "preset", "method"):
                assert w[k] == got[k], (photo.name, k)
            assert w["score"] == f"{got['score']:.6f}"
            assert w["box_score"] == f"{got['box_score']:.6f}"
            assert np.float32(float(w["threshold"])) == np.float32(got["threshold"])
            assert got["path"] == str(photo)


def test_maps_and_masks_equal_the_files_of_the_run(cli_run, explained):
    _, results = explained
    for photo, r in results.items():
        saved = np.load(cli_run.out / "maps" / f"{photo.name}.npy")
        sidecar = json.loads((cli_run.out / "maps" / f"{photo.name}.json").read_text())
        assert saved.dtype == r.raw_maps.dtype == np.float32
        assert np.array_equal(saved, r.raw_maps), photo.name
        assert sidecar["classes"] == r.raw_classes == r.classes
        assert sidecar["geometry"] == r.geometry
        assert sidecar.get("averaged_passes", 1) == r.passes
        for k in r.classes:
            png = np.asarray(Image.open(cli_run.out / "masks" / f"{photo.name}.{k}.png"))
            assert png.shape == r.masks[k].shape == r.maps[k].shape == (r.height, r.width)
            assert np.array_equal(png > 0, r.masks[k]), (photo.name, k)
            assert r.maps[k].dtype == np.float32 and 0 <= r.maps[k].min() and r.maps[k].max() <= 1
            # The mask is the component kept from what the map holds above the cut.
            assert (r.maps[k][r.masks[k]] > 0).all()


def test_an_array_decoded_by_cambox_gives_what_its_file_gives(explained):
    model, results = explained
    for photo in PHOTOS[:3]:
        pixels = model.read_image(photo)
        assert pixels.dtype == np.uint8 and pixels.ndim in (2, 3)
        r = model.explain(pixels)
        assert r.path is None
        assert np.array_equal(r.probabilities, results[photo].probabilities)
        assert [dict(b, path=None) for b in r.boxes] == [dict(b, path=None) for b in results[photo].boxes]
        assert np.array_equal(r.raw_maps, results[photo].raw_maps)


def test_a_list_gives_what_each_image_gives_alone(explained):
    model, results = explained
    photo = PHOTOS[1]
    alone = model.explain(str(photo))
    assert np.array_equal(alone.probabilities, results[photo].probabilities)
    assert alone.boxes == results[photo].boxes
