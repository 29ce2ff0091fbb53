"""Zero-shot pre-labels: a randomly initialised YOLOE-seg built from its config, its classes set
from the label config through YOLOE's own set_classes, text features from an injected embedder."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from labelstack_backend.errors import ModelLoadError
from labelstack_backend.images import ImageLoader
from labelstack_backend.labelconfig import POLYGON, parse_label_config
from labelstack_backend.predictors.base import PredictCall
from labelstack_backend.predictors.segmentation import SegmentationPredictor
from labelstack_backend.registry import ModelRegistry
from labelstack_backend.settings import Settings
from labelstack_backend.yolo.openvocab import (
    DemoText,
    ZeroShot,
    clip_tokenizer,
    tokenize,
    vocabulary,
    zero_shot_weights,
)


def config(*labels: str) -> str:
    """A polygon config; a label "Name=alias" carries that predicted_values alias."""
    tags = "".join(
        f'<Label value="{name}" predicted_values="{alias}"/>' if alias else f'<Label value="{name}"/>'
        for name, _, alias in (label.partition("=") for label in labels)
    )
    return (
        '<View><Image name="image" value="$image"/>'
        f'<PolygonLabels name="outline" toName="image">{tags}</PolygonLabels></View>'
    )


GARMENTS = config("Dress=gown", "Handbag")


class RecordingText:
    """Deterministic random text features of YOLOE's dimension, recording what it embeds."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.demo = DemoText(512)

    def __call__(self, names: Sequence[str]) -> torch.Tensor:
        self.calls.append(tuple(names))
        return self.demo(names)


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env(
        {
            "LABELSTACK_SEG_MODEL": "yoloe",
            "LABELSTACK_DEMO_MODEL": "1",
            "MODEL_DIR": str(tmp_path / "models"),
            "LABELSTACK_SCORE_THRESHOLD": "0",
            "LABELSTACK_MAX_DETECTIONS": "5",
            "LABELSTACK_IMGSZ": "320",
            "LABELSTACK_LOCAL_ROOTS": str(tmp_path),
            **env,
        }
    )


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SegmentationPredictor, RecordingText, Path]]:
    tmp = tmp_path_factory.mktemp("zero-shot")
    text = RecordingText()
    loader = ImageLoader(max_pixels=10_000_000, max_bytes=10 << 20, timeout=5.0, local_roots=(tmp,))
    predictor = SegmentationPredictor(settings(tmp), ModelRegistry(tmp / "models"), loader, text=text)
    predictor.load()
    image = tmp / "photo.jpg"
    Image.effect_noise((320, 240), 60).convert("RGB").save(image)
    yield predictor, text, image


def predict(predictor: SegmentationPredictor, image: Path, xml: str) -> dict[str, Any]:
    call = PredictCall(
        tasks=[{"id": 1, "data": {"image": str(image)}}],
        project="7",
        config=parse_label_config(xml),
        context=None,
        ls=None,
    )
    (result,) = predictor.predict(call)
    return result


def test_label_names_and_aliases_become_yoloes_classes_at_setup(served: Any) -> None:
    predictor, text, _ = served
    predictor.check_config(parse_label_config(GARMENTS), "7")
    model = predictor.zero_shot.model_for(("Dress", "gown", "Handbag"))
    assert model.names == {0: "Dress", 1: "gown", 2: "Handbag"}
    assert model.yolo.model.names == model.names  # set through YOLOE's own set_classes
    assert tuple(model.yolo.model.pe.shape) == (1, 3, 512)
    assert text.calls.count(("Dress", "gown", "Handbag")) == 1
    assert predictor.model_version("7") == model.version != predictor.zero_shot.weights.name
    assert predictor.versions("7") == [model.version]  # what Label Studio lists for the project


def test_regions_carry_the_configs_own_labels(served: Any) -> None:
    predictor, _, image = served
    result = predict(predictor, image, GARMENTS)
    labels = {label for region in result["result"] for label in region["value"]["polygonlabels"]}
    assert result["result"], "a random model at threshold 0 finds objects"
    assert labels <= {"Dress", "Handbag"}  # the alias "gown" is predicted as Dress
    assert result["model_version"].startswith("yoloe-11s-seg-random-labels-")


def test_a_changed_label_config_changes_the_classes_at_the_next_setup(served: Any) -> None:
    predictor, text, image = served
    before = predictor.model_version("7")
    changed = config("Coat", "Handbag=purse")
    predictor.check_config(parse_label_config(changed), "7")
    assert predictor.model_version("7") != before
    assert predictor.zero_shot.model_for(("Coat", "Handbag", "purse")).names == {
        0: "Coat",
        1: "Handbag",
        2: "purse",
    }
    assert text.calls[-1] == ("Coat", "Handbag", "purse")
    labels = {
        label
        for region in predict(predictor, image, changed)["result"]
        for label in region["value"]["polygonlabels"]
    }
    assert labels and labels <= {"Coat", "Handbag"}


def test_text_embeddings_are_computed_once_per_label_set_and_kept_on_disk(
    served: Any, tmp_path: Path
) -> None:
    predictor, text, _ = served
    names = ("Skirt", "Scarf")
    first = predictor.zero_shot.embeddings(names)
    assert text.calls.count(names) == 1
    again = ZeroShot(predictor.settings, text=text, cache_dir=predictor.zero_shot.cache_dir)
    again.base = predictor.zero_shot.base  # another worker: the same model, a fresh memory
    assert torch.equal(again.embeddings(names), first)
    assert text.calls.count(names) == 1  # read from MODEL_DIR, not embedded again


def test_vocabulary_is_each_label_then_its_aliases_once() -> None:
    xml = config("Dress=gown,frock", "Handbag=bag", "Bag")
    assert vocabulary(parse_label_config(xml), (POLYGON,)) == ("Dress", "gown", "frock", "Handbag", "bag")


def test_clip_tokens_are_start_text_end_padded_to_77() -> None:
    tokens = tokenize(clip_tokenizer(), ["a red dress", "x " * 200])
    assert tuple(tokens.shape) == (2, 77)
    assert tokens[0, 0] == 49406 and tokens[0, 4] == 49407 and not tokens[0, 5:].any()
    assert tokens[1, -1] == 49407  # truncated, still ended


def test_offline_without_the_text_encoder_the_start_names_the_exact_file(tmp_path: Path) -> None:
    weights = tmp_path / "weights" / "yoloe-11s-seg.pt"
    weights.parent.mkdir()
    weights.write_bytes(b"weights")
    with pytest.raises(ModelLoadError, match=rf"{tmp_path}/weights/mobileclip_blt.ts .*does not exist"):
        zero_shot_weights(settings(tmp_path, LABELSTACK_DEMO_MODEL="0", LABELSTACK_SEG_WEIGHTS=str(weights)))
    elsewhere = tmp_path / "text" / "mobileclip_blt.ts"
    with pytest.raises(ModelLoadError, match=rf"{elsewhere} "):
        zero_shot_weights(
            settings(
                tmp_path,
                LABELSTACK_DEMO_MODEL="0",
                LABELSTACK_SEG_WEIGHTS=str(weights),
                LABELSTACK_TEXT_ENCODER=str(elsewhere),
            )
        )
    with pytest.raises(ModelLoadError, match="no YOLOE weights"):
        zero_shot_weights(settings(tmp_path, LABELSTACK_DEMO_MODEL="0"))


def test_sam3_stops_the_start_saying_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"sam3 cannot start: its weights \(sam3.pt\)"):
        zero_shot_weights(settings(tmp_path, LABELSTACK_SEG_MODEL="sam3"))


def test_setup_through_http_sets_the_classes_and_predict_answers_with_them(tmp_path: Path) -> None:
    from labelstack_backend.server.app import create_app
    from labelstack_backend.server.wsgi import build_service

    service = build_service(settings(tmp_path))
    service.start_loading().join(180)
    client = create_app(service).test_client()
    image = tmp_path / "photo.jpg"
    Image.effect_noise((320, 240), 60).convert("RGB").save(image)
    versions = []
    for xml, labels in ((GARMENTS, {"Dress", "Handbag"}), (config("Coat", "Scarf"), {"Coat", "Scarf"})):
        setup = client.post("/setup", json={"project": "3.1700000000", "schema": xml})
        assert setup.status_code == 200, setup.json
        versions.append(setup.json["model_version"])
        body = {
            "tasks": [{"id": 1, "data": {"image": str(image)}}],
            "project": "3.1700000000",
            "label_config": xml,
        }
        (result,) = client.post("/predict", json=body).json["results"]
        assert result["model_version"] == versions[-1]
        found = {label for region in result["result"] for label in region["value"]["polygonlabels"]}
        assert found and found <= labels
    assert versions[0] != versions[1]
