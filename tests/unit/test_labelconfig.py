from __future__ import annotations

import pytest

from labelstack_backend.errors import UnprocessableConfig
from labelstack_backend.labelconfig import (
    BRUSH,
    POLYGON,
    RECTANGLE,
    build_label_map,
    parse_label_config,
    require_controls,
)

FASHION = """
<View>
  <Header value="$designer"/>
  <Image name="photo" value="$image_url" zoom="true"/>
  <PolygonLabels name="garment" toName="photo" model_score_threshold="0.4">
    <Label value="Dress" predicted_values="gown, frock"/>
    <Label value="skirt"/>
    <Label value="Handbag" predicted_values="handbag"/>
  </PolygonLabels>
  <BrushLabels name="paint" toName="photo">
    <Label value="skirt"/>
    <Label value="Hat"/>
  </BrushLabels>
  <Choices name="season" toName="photo"><Choice value="SS"/></Choices>
</View>
"""


def test_finds_image_and_fillable_controls():
    cfg = parse_label_config(FASHION)
    assert [(i.name, i.value_key) for i in cfg.images] == [("photo", "image_url")]
    controls = cfg.controls_of((POLYGON, BRUSH, RECTANGLE))
    assert [(c.name, c.type, c.to_name) for c in controls] == [
        ("garment", POLYGON, "photo"),
        ("paint", BRUSH, "photo"),
    ]
    assert controls[0].score_threshold == pytest.approx(0.4)
    assert controls[1].score_threshold is None
    assert cfg.label_names((POLYGON, BRUSH)) == ("Dress", "skirt", "Handbag", "Hat")


def test_label_map_exact_case_insensitive_alias_and_first_control_wins():
    cfg = parse_label_config(FASHION)
    controls = cfg.controls_of((POLYGON, BRUSH))
    names = {0: "skirt", 1: "dress", 2: "frock", 3: "HAT", 4: "person", 5: "handbag"}
    mapping = build_label_map(controls, names)
    got = {k: (t.control.name, t.label) for k, t in mapping.items()}
    assert got == {
        0: ("garment", "skirt"),  # first control holding the label
        1: ("garment", "Dress"),  # case-insensitive
        2: ("garment", "Dress"),  # alias
        3: ("paint", "Hat"),
        5: ("garment", "Handbag"),  # label value wins over being somebody's alias
    }
    assert 4 not in mapping  # unmapped classes are skipped


def test_predict_false_keeps_a_control_out():
    cfg = parse_label_config(
        '<View><Image name="i" value="$img"/><PolygonLabels name="p" toName="i" predict="false">'
        '<Label value="a"/></PolygonLabels><BrushLabels name="b" toName="i"><Label value="a"/></BrushLabels></View>'
    )
    assert [c.name for c in require_controls(cfg, (POLYGON, BRUSH), "segmentation")] == ["b"]


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        ("", "empty"),
        ("<View><Image", "not valid XML"),
        ('<View><Text name="t" value="$text"/></View>', "needs an <Image>"),
        (
            '<View><Image name="i" value="$img"/><Choices name="c" toName="i"><Choice value="x"/></Choices></View>',
            "PolygonLabels",
        ),
    ],
)
def test_configs_without_fillable_tags_are_refused_with_a_reason(xml, reason):
    with pytest.raises(UnprocessableConfig, match=reason):
        require_controls(parse_label_config(xml), (POLYGON, BRUSH, RECTANGLE), "segmentation")


def test_bad_threshold_attribute_is_a_config_error():
    cfg = parse_label_config(
        '<View><Image name="i" value="$img"/><PolygonLabels name="p" toName="i" model_score_threshold="high">'
        '<Label value="a"/></PolygonLabels></View>'
    )
    with pytest.raises(UnprocessableConfig, match="not a number"):
        _ = cfg.controls[0].score_threshold


def test_entity_expansion_is_refused():
    bomb = '<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "aaaa">]><View>&a;</View>'
    with pytest.raises(UnprocessableConfig):
        parse_label_config(bomb)
