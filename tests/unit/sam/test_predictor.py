"""The SAM predictor: clicks to masks, exact geometry, the cache, concurrency, bad input."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labelstack_backend import rle
from labelstack_backend.errors import BadRequest, ImageError, UnprocessableConfig
from labelstack_backend.labelconfig import parse_label_config
from labelstack_backend.predictors.base import PredictCall
from labelstack_backend.predictors.sam import SamPredictor
from labelstack_backend.sam.cache import Source
from labelstack_backend.sam.decode import decode
from labelstack_backend.sam.prompts import parse_context
from tests.support.sam import CONFIG, CONFIG_WITH_POLYGON, keypoint, pixel_percent, rectangle, write_image
from tests.support.sam_models import CountingModel, ProbeSam, call

MakePredictor = Callable[..., tuple[SamPredictor, CountingModel]]


def click(predictor: SamPredictor, image: Path, *regions: dict[str, Any], config: str = CONFIG) -> dict:
    (answer,) = predictor.predict(call(image, {"result": list(regions)}, config))
    return answer


def brush_mask(region: dict[str, Any]) -> np.ndarray:
    assert region["type"] == "brushlabels"
    return rle.decode(region["value"]["rle"], region["original_height"], region["original_width"]) > 0


def centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean() + 0.5), float(ys.mean() + 0.5)


# -- exact geometry, with a stand-in model whose mask is a disk around the prompt ----------
@pytest.mark.parametrize("orientation", [6, 8])
def test_a_click_on_a_rotated_exif_image_lands_on_the_right_pixel(
    make_predictor: MakePredictor, tmp_path: Path, orientation: int
) -> None:
    # Stored 60x40 with an EXIF rotation: the editor (and the backend) show it 40x60.
    image = write_image(tmp_path / "rotated.jpg", (60, 40), orientation=orientation)
    predictor, _ = make_predictor(ProbeSam())
    w, h, col, row = 40, 60, 10, 45
    answer = click(predictor, image, keypoint(pixel_percent(col, w), pixel_percent(row, h), w, h))
    (region,) = answer["result"]
    assert (region["original_width"], region["original_height"]) == (w, h)
    mask = brush_mask(region)
    assert mask[row, col]
    cx, cy = centroid(mask)
    assert abs(cx - (col + 0.5)) < 0.35
    assert abs(cy - (row + 0.5)) < 0.35


def test_prompts_placed_on_the_unrotated_image_are_refused(
    make_predictor: MakePredictor, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "rotated.jpg", (60, 40), orientation=6)
    predictor, _ = make_predictor(ProbeSam())
    with pytest.raises(ImageError, match="EXIF orientation"):
        click(predictor, image, keypoint(10, 10, 60, 40))


def test_a_click_on_a_scaled_frame_answers_at_the_editors_size(
    make_predictor: MakePredictor, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "a.jpg", (96, 64))
    predictor, _ = make_predictor(ProbeSam())
    answer = click(predictor, image, keypoint(pixel_percent(60, 192), pixel_percent(30, 128), 192, 128))
    mask = brush_mask(answer["result"][0])
    assert mask.shape == (128, 192)
    cx, cy = centroid(mask)
    assert abs(cx - 60.5) < 0.35 and abs(cy - 30.5) < 0.35


def test_a_box_is_segmented_where_it_was_drawn(make_predictor: MakePredictor, tmp_path: Path) -> None:
    image = write_image(tmp_path / "a.jpg", (96, 64))
    predictor, _ = make_predictor(ProbeSam())
    answer = click(predictor, image, rectangle(25, 25, 50, 25, 96, 64, label="Trousers"))
    (region,) = answer["result"]
    assert region["value"]["brushlabels"] == ["Trousers"]
    cx, cy = centroid(brush_mask(region))
    assert abs(cx - 48.0) < 0.35 and abs(cy - 24.0) < 0.35


def test_several_boxes_give_one_mask_each(make_predictor: MakePredictor, tmp_path: Path) -> None:
    image = write_image(tmp_path / "a.jpg", (96, 64))
    predictor, _ = make_predictor(ProbeSam())
    answer = click(
        predictor,
        image,
        rectangle(5, 5, 20, 20, 96, 64, label="Shirt"),
        rectangle(60, 60, 30, 30, 96, 64, label="Trousers"),
    )
    assert [r["value"]["brushlabels"] for r in answer["result"]] == [["Shirt"], ["Trousers"]]


def test_an_empty_mask_is_an_empty_but_valid_prediction(
    make_predictor: MakePredictor, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "a.jpg")
    predictor, _ = make_predictor(ProbeSam(radius=-1.0))  # every logit negative: nothing there
    answer = click(predictor, image, keypoint(50, 50, 96, 64))
    assert answer["result"] == []
    assert answer["model_version"] == predictor.model_version(None)
    assert "no object" in answer["info"]


# -- the real (tiny) SAM --------------------------------------------------------------------
def test_brush_rle_round_trips_to_the_predicted_mask(make_predictor: MakePredictor, tmp_path: Path) -> None:
    image = write_image(tmp_path / "a.jpg", (96, 64))
    predictor, model = make_predictor()
    prompt = keypoint(40, 45, 96, 64, label="shirt")  # labels match case-insensitively
    answer = click(predictor, image, prompt)
    (region,) = answer["result"]
    assert region["from_name"] == "mask" and region["to_name"] == "image"
    assert region["value"]["brushlabels"] == ["Shirt"]
    assert answer["score"] == region["score"]
    assert predictor.embeddings is not None
    embedding, source = predictor.embeddings.get(str(image))
    assert source is Source.MEMORY
    expected = decode(model, embedding, parse_context({"result": [prompt]}).objects(96, 64)[0]).mask
    assert 0 < expected.sum() < expected.size  # a real mask, neither empty nor everything
    np.testing.assert_array_equal(brush_mask(region), expected)


def test_polygon_lies_on_the_mask_boundary(make_predictor: MakePredictor, tmp_path: Path) -> None:
    image = write_image(tmp_path / "a.jpg", (96, 64))
    predictor, _ = make_predictor()
    answer = click(predictor, image, keypoint(40, 45, 96, 64), config=CONFIG_WITH_POLYGON)
    brush, polygon = answer["result"]
    assert polygon["type"] == "polygonlabels" and polygon["from_name"] == "outline"
    assert polygon["value"]["polygonlabels"] == ["Shirt"] and polygon["value"]["closed"] is True
    assert brush["id"] != polygon["id"]
    mask = brush_mask(brush)
    h, w = mask.shape
    padded = np.pad(mask, 1)
    points = np.asarray(polygon["value"]["points"]) / 100.0 * (w, h)
    assert len(points) >= 3
    for x, y in points:
        col, row = int(np.floor(x)), int(np.floor(y))
        assert mask[row, col], (x, y)
        neighbours = padded[row : row + 3, col : col + 3]
        assert not neighbours.all(), f"({x:.1f}, {y:.1f}) is inside the mask, not on its boundary"


def test_polygons_for_every_polygon_tag_when_the_setting_asks(
    make_predictor: MakePredictor, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "a.jpg")
    config = CONFIG_WITH_POLYGON.replace(' sam_polygon="true"', "")
    predictor, _ = make_predictor()
    assert [
        r["type"] for r in click(predictor, image, keypoint(40, 45, 96, 64), config=config)["result"]
    ] == ["brushlabels"]
    predictor, _ = make_predictor(LABELSTACK_SAM_POLYGON="1")
    assert [
        r["type"] for r in click(predictor, image, keypoint(40, 45, 96, 64), config=config)["result"]
    ] == [
        "brushlabels",
        "polygonlabels",
    ]


# -- the cache ------------------------------------------------------------------------------
def test_the_second_click_does_not_run_the_encoder(make_predictor: MakePredictor, tmp_path: Path) -> None:
    a, b = write_image(tmp_path / "a.jpg", seed=1), write_image(tmp_path / "b.jpg", seed=2)
    predictor, model = make_predictor()
    click(predictor, a, keypoint(40, 45, 96, 64))
    assert model.calls == 1
    click(predictor, a, keypoint(70, 20, 96, 64), keypoint(30, 30, 96, 64, positive=False))
    click(predictor, a, rectangle(10, 10, 50, 50, 96, 64))
    assert model.calls == 1
    click(predictor, b, keypoint(40, 45, 96, 64))
    assert model.calls == 2


def test_a_changed_file_is_encoded_again(make_predictor: MakePredictor, tmp_path: Path) -> None:
    image = write_image(tmp_path / "a.jpg", seed=1)
    predictor, model = make_predictor()
    click(predictor, image, keypoint(40, 45, 96, 64))
    write_image(image, seed=5)  # same path, new content
    click(predictor, image, keypoint(40, 45, 96, 64))
    assert model.calls == 2


def test_opening_a_task_warms_the_cache_for_its_first_click(
    make_predictor: MakePredictor, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "a.jpg")
    predictor, model = make_predictor()
    (warm,) = predictor.predict(call(image, None))
    assert warm["result"] == [] and warm["model_version"] == predictor.model_version(None)
    assert model.calls == 1
    assert click(predictor, image, keypoint(40, 45, 96, 64))["result"]
    assert model.calls == 1


def test_a_bad_image_on_an_opened_task_is_reported_on_it(
    make_predictor: MakePredictor, tmp_path: Path
) -> None:
    predictor, model = make_predictor()
    (failed,) = predictor.predict(call(tmp_path / "none.jpg", None, task_id=5))
    assert failed["task"] == 5 and "no such file" in failed["error"] and "result" not in failed
    assert model.calls == 0


def test_warming_many_tasks_at_once_is_queued_in_the_background(
    make_predictor: MakePredictor, tmp_path: Path
) -> None:
    images = [write_image(tmp_path / f"{i}.jpg", seed=i) for i in range(3)]
    predictor, model = make_predictor()
    tasks: list[dict[str, Any]] = [{"id": i, "data": {"image": str(p)}} for i, p in enumerate(images)]
    tasks += [{"id": 8, "data": {"image": str(tmp_path / "none.jpg")}}, {"id": 9, "data": {}}]
    answers = predictor.predict(
        PredictCall(tasks=tasks, project=None, config=parse_label_config(CONFIG), context=None, ls=None)
    )
    assert [a.get("result") for a in answers[:4]] == [[], [], [], []]
    assert answers[4]["task"] == 9 and "has no 'image'" in answers[4]["error"]
    assert predictor.warmer is not None
    predictor.warmer.join()
    assert model.calls == 3  # the missing file is logged by the warmer, not encoded
    for image in images:
        click(predictor, image, keypoint(40, 45, 96, 64))
    assert model.calls == 3


def test_eviction_respects_the_byte_bound(make_predictor: MakePredictor, tmp_path: Path) -> None:
    one = 32 * 16 * 16 * 4  # a tiny-SAM embedding in fp32
    predictor, model = make_predictor(cache_bytes=int(one * 2.5))
    images = [write_image(tmp_path / f"{i}.jpg", seed=i) for i in range(5)]
    for image in images:
        click(predictor, image, keypoint(40, 45, 96, 64))
    assert predictor.embeddings is not None
    stats = predictor.embeddings.cache.stats()
    assert stats.bytes <= stats.max_bytes == int(one * 2.5)
    assert (stats.entries, stats.evictions) == (2, 3)
    click(predictor, images[4], keypoint(10, 10, 96, 64))  # still cached
    assert model.calls == 5
    click(predictor, images[0], keypoint(10, 10, 96, 64))  # evicted long ago
    assert model.calls == 6


def test_concurrent_clicks_equal_single_threaded_ones_and_encode_each_image_once(
    make_predictor: MakePredictor, tmp_path: Path
) -> None:
    images = [write_image(tmp_path / f"{i}.jpg", size=(96 + 8 * i, 64), seed=i) for i in range(4)]
    prompts = [keypoint(40, 45, 0, 0), keypoint(70, 25, 0, 0)]

    def work(predictor: SamPredictor, i: int, p: int) -> list[dict[str, Any]]:
        w = 96 + 8 * i
        region = {**prompts[p], "original_width": w, "original_height": 64}
        regions = click(predictor, images[i], region)["result"]
        return [{k: v for k, v in r.items() if k != "id"} for r in regions]

    single, _ = make_predictor()
    expected = {(i, p): work(single, i, p) for i in range(4) for p in range(2)}

    predictor, model = make_predictor(linger=0.1)  # a slow encoder: the clicks really race
    start = threading.Barrier(8)
    answers: dict[tuple[int, int, int], list[dict[str, Any]]] = {}
    errors: list[BaseException] = []

    def thread(t: int) -> None:
        start.wait()
        try:
            for k in range(4):
                i = (t + k) % 4
                answers[(t, i, t % 2)] = work(predictor, i, t % 2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors
    assert len(answers) == 32
    for (_, i, p), regions in answers.items():
        assert regions == expected[(i, p)]
    assert model.calls == 4
    assert sorted(model.encoded) == sorted((96 + 8 * i, 64) for i in range(4))


# -- bad input -------------------------------------------------------------------------------
def test_unknown_label_is_a_clear_config_error(make_predictor: MakePredictor, tmp_path: Path) -> None:
    image = write_image(tmp_path / "a.jpg")
    predictor, model = make_predictor()
    with pytest.raises(UnprocessableConfig, match="'Hat' is not a label of the mask tags"):
        click(predictor, image, keypoint(40, 45, 96, 64, label="Hat"))
    assert model.calls == 0  # refused before any image work


def test_an_unlabelled_click_needs_a_single_label(make_predictor: MakePredictor, tmp_path: Path) -> None:
    image = write_image(tmp_path / "a.jpg")
    predictor, _ = make_predictor()
    with pytest.raises(BadRequest, match="no label"):
        click(predictor, image, keypoint(40, 45, 96, 64, label=None))
    single = CONFIG.replace('<Label value="Trousers"/>', "")
    answer = click(predictor, image, keypoint(40, 45, 96, 64, label=None), config=single)
    assert answer["result"][0]["value"]["brushlabels"] == ["Shirt"]


def test_a_click_on_an_image_no_mask_tag_targets_is_refused(
    make_predictor: MakePredictor, tmp_path: Path
) -> None:
    predictor, _ = make_predictor()
    with pytest.raises(UnprocessableConfig, match="no <BrushLabels>"):
        click(predictor, write_image(tmp_path / "a.jpg"), keypoint(5, 5, 96, 64, to_name="other"))


def test_an_interactive_call_has_one_task(make_predictor: MakePredictor, tmp_path: Path) -> None:
    image = str(write_image(tmp_path / "a.jpg"))
    predictor, _ = make_predictor()
    tasks = [{"id": 1, "data": {"image": image}}, {"id": 2, "data": {"image": image}}]
    context = {"result": [keypoint(5, 5, 96, 64)]}
    with pytest.raises(BadRequest, match="one task"):
        predictor.predict(
            PredictCall(
                tasks=tasks, project=None, config=parse_label_config(CONFIG), context=context, ls=None
            )
        )


def test_a_missing_image_fails_the_click_clearly(make_predictor: MakePredictor, tmp_path: Path) -> None:
    predictor, _ = make_predictor()
    with pytest.raises(ImageError, match="no such file"):
        click(predictor, tmp_path / "missing.jpg", keypoint(5, 5, 96, 64))


@pytest.mark.parametrize(
    ("config", "words"),
    [
        (CONFIG.replace("BrushLabels", "PolygonLabels"), 'sam_polygon="true"'),
        (
            CONFIG.replace("KeyPointLabels", "Choices").replace("RectangleLabels", "Choices"),
            "segments from clicks and boxes",
        ),
        ("<View><Text name='t' value='$text'/></View>", "needs an <Image>"),
    ],
)
def test_configs_sam_cannot_serve_are_refused_at_setup(
    make_predictor: MakePredictor, config: str, words: str
) -> None:
    predictor, _ = make_predictor()
    with pytest.raises(UnprocessableConfig, match=words):
        predictor.check_config(parse_label_config(config))


def test_polygon_only_config_is_served(make_predictor: MakePredictor, tmp_path: Path) -> None:
    config = CONFIG_WITH_POLYGON.replace(
        '<BrushLabels name="mask" toName="image">', '<BrushLabels name="mask" toName="image" predict="false">'
    )
    predictor, _ = make_predictor(ProbeSam())
    answer = click(predictor, write_image(tmp_path / "a.jpg"), keypoint(50, 50, 96, 64), config=config)
    assert [r["type"] for r in answer["result"]] == ["polygonlabels"]


def test_a_replaced_image_behind_a_cached_url_is_fetched_again_for_a_click(
    make_predictor: MakePredictor, tmp_path: Path, file_server: Any
) -> None:
    from labelstack_backend.imagecache import DiskCache

    predictor, _ = make_predictor(ProbeSam())
    predictor.loader.cache = DiskCache(tmp_path / "cache", 10**8)
    url = f"{file_server.url}/look.jpg"
    write_image(file_server.root / "look.jpg", (60, 40))
    first = click(predictor, url, keypoint(50, 50, 60, 40))  # type: ignore[arg-type]
    assert first["result"][0]["original_width"] == 60
    # The same URL now serves a portrait image; the disk cache still holds the landscape one.
    write_image(file_server.root / "look.jpg", (40, 60))
    (region,) = click(predictor, url, keypoint(25, 75, 40, 60))["result"]  # type: ignore[arg-type]
    assert (region["original_width"], region["original_height"]) == (40, 60)
    assert brush_mask(region)[45, 10], "the mask lands on the new image's pixel"
