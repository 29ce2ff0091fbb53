"""Read a Label Studio label config: which image, which tags we can fill, which labels.

Pure functions: XML in, typed description out. Nothing here is hard-coded to
one project's tag or label names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from labelstack_backend.errors import ImageError, UnprocessableConfig

# Control tags by their lower-cased XML name.
POLYGON = "polygonlabels"
BRUSH = "brushlabels"
RECTANGLE = "rectanglelabels"
KEYPOINT = "keypointlabels"
REGION_CONTROLS = (POLYGON, BRUSH, RECTANGLE, KEYPOINT)
# Our own attributes, all optional.
ALIAS_ATTR = "predicted_values"  # on <Label>: model class names that map to this label
THRESHOLD_ATTR = "model_score_threshold"  # on a control: overrides the backend's threshold
PREDICT_ATTR = "predict"  # on a control: "false" keeps the model from filling it
SAM_POLYGON_ATTR = "sam_polygon"  # on <PolygonLabels>: SAM also returns its mask as a polygon


@dataclass(frozen=True)
class Label:
    value: str
    aliases: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        return (self.value, *self.aliases)


@dataclass(frozen=True)
class Control:
    name: str
    type: str  # one of REGION_CONTROLS
    to_name: str
    labels: tuple[Label, ...]
    attrs: Mapping[str, str] = field(default_factory=dict)

    @property
    def predicts(self) -> bool:
        return self.attrs.get(PREDICT_ATTR, "true").lower() not in {"false", "0", "no"}

    @property
    def score_threshold(self) -> float | None:
        raw = self.attrs.get(THRESHOLD_ATTR)
        if raw is None:
            return None
        try:
            return float(raw)
        except ValueError:
            raise UnprocessableConfig(
                f"<{self.type} name={self.name!r}> has {THRESHOLD_ATTR}={raw!r}, which is not a number"
            ) from None

    def flag(self, attr: str) -> bool:
        return self.attrs.get(attr, "false").lower() in {"true", "1", "yes"}


@dataclass(frozen=True)
class ImageObject:
    name: str
    value_key: str  # the task.data key, "$image" -> "image"


@dataclass(frozen=True)
class LabelConfig:
    images: tuple[ImageObject, ...]
    controls: tuple[Control, ...]
    digest: str

    def image(self, name: str) -> ImageObject | None:
        return next((i for i in self.images if i.name == name), None)

    def controls_of(self, types: Iterable[str]) -> tuple[Control, ...]:
        wanted = set(types)
        return tuple(c for c in self.controls if c.type in wanted and self.image(c.to_name) is not None)

    def label_names(self, types: Iterable[str]) -> tuple[str, ...]:
        """Label values of the given control types, in config order, without repeats."""
        seen: dict[str, None] = {}
        for control in self.controls_of(types):
            for label in control.labels:
                seen.setdefault(label.value, None)
        return tuple(seen)


def _attrs(el: Element) -> dict[str, str]:
    return {k.lower(): v for k, v in el.attrib.items()}


def _split_aliases(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ()
    return tuple(a.strip() for a in raw.split(",") if a.strip())


def parse_label_config(xml: str) -> LabelConfig:
    """Parse a label config. Raise :class:`UnprocessableConfig` if it is not valid XML."""
    if not xml or not xml.strip():
        raise UnprocessableConfig("the label config is empty")
    if has_lone_surrogate(xml):
        raise UnprocessableConfig("the label config holds an invalid character (a lone UTF-16 surrogate)")
    try:
        root = ElementTree.fromstring(xml)
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise UnprocessableConfig(f"the label config is not valid XML: {exc}") from None

    images: list[ImageObject] = []
    controls: list[Control] = []
    for el in root.iter():
        tag = el.tag.lower() if isinstance(el.tag, str) else ""
        attrs = _attrs(el)
        if tag == "image" and "name" in attrs and attrs.get("value", "").startswith("$"):
            images.append(ImageObject(name=attrs["name"], value_key=attrs["value"][1:]))
        elif tag in REGION_CONTROLS and "name" in attrs and "toname" in attrs:
            labels = tuple(
                Label(value=lab.attrib["value"], aliases=_split_aliases(_attrs(lab).get(ALIAS_ATTR)))
                for lab in el
                if isinstance(lab.tag, str) and lab.tag.lower() == "label" and "value" in lab.attrib
            )
            controls.append(
                Control(
                    name=attrs["name"],
                    type=tag,
                    to_name=attrs["toname"].split(",")[0].strip(),
                    labels=labels,
                    attrs=attrs,
                )
            )
    digest = hashlib.sha256(xml.encode()).hexdigest()[:16]
    return LabelConfig(images=tuple(images), controls=tuple(controls), digest=digest)


def require_controls(config: LabelConfig, types: Iterable[str], predictor: str) -> tuple[Control, ...]:
    """The fillable controls, or :class:`UnprocessableConfig` saying why there are none."""
    types = tuple(types)
    found = tuple(c for c in config.controls_of(types) if c.predicts)
    if found:
        return found
    wanted = ", ".join(f"<{t}>" for t in _pretty(types))
    if not config.images:
        raise UnprocessableConfig(
            f'the {predictor} backend needs an <Image> object with value="$key"; this config has none'
        )
    raise UnprocessableConfig(
        f"the {predictor} backend can fill {wanted} pointing at an <Image>; this config has none"
    )


_PRETTY = {
    POLYGON: "PolygonLabels",
    BRUSH: "BrushLabels",
    RECTANGLE: "RectangleLabels",
    KEYPOINT: "KeyPointLabels",
}


def _pretty(types: Iterable[str]) -> list[str]:
    return [_PRETTY.get(t, t) for t in types]


@dataclass(frozen=True)
class Target:
    """Where one model class goes: a label of a control."""

    control: Control
    label: str


def build_label_map(controls: Iterable[Control], class_names: Mapping[int, str]) -> dict[int, Target]:
    """Map model class ids to config labels.

    A class matches a label by exact name, then case-insensitively, then through
    a label's ``predicted_values`` aliases (case-insensitive). The first control in config order
    that holds the label wins, so one object yields one region. Classes that
    match nothing are left out (their detections are skipped).
    """
    exact: dict[str, Target] = {}
    folded: dict[str, Target] = {}
    aliases: dict[str, Target] = {}
    for control in controls:
        for label in control.labels:
            target = Target(control, label.value)
            exact.setdefault(label.value, target)
            folded.setdefault(label.value.casefold(), target)
            for alias in label.aliases:
                aliases.setdefault(alias.casefold(), target)
    mapping: dict[int, Target] = {}
    for idx, name in class_names.items():
        found = exact.get(name) or folded.get(name.casefold()) or aliases.get(name.casefold())
        if found is not None:
            mapping[idx] = found
    return mapping


def task_image_value(task: Mapping[str, Any], config: LabelConfig, control: Control) -> str:
    """The image URL of ``task`` for ``control``'s image object."""
    image = config.image(control.to_name)
    if image is None:
        raise ImageError(f"control {control.name!r} points at {control.to_name!r}, which is not an <Image>")
    data = task.get("data") or {}
    value = data.get(image.value_key)
    if not isinstance(value, str) or not value:
        raise ImageError(f"task {task.get('id', '?')} has no '{image.value_key}' image in its data")
    if has_lone_surrogate(value):
        raise ImageError(
            f"task {task.get('id', '?')}: its image URL holds an invalid character (a lone UTF-16 surrogate)"
        )
    return value


def has_lone_surrogate(text: str) -> bool:
    """JSON may carry ``\\ud800`` alone; such a string cannot be encoded, so it never reaches I/O."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
