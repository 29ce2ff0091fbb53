"""What `labelstack up` decides to run, from its options alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelstack_tools.localstack.plan import (
    Layout,
    PlanError,
    Ports,
    StackOptions,
    backend_spec,
    check_weights,
    port_claims,
    redis_spec,
    sam_model_type,
    sam_model_type_for,
)

ROOT = Path("/data/stack")


def spec(kind: str, **opts):
    options = StackOptions(data_dir=ROOT, **opts)
    return backend_spec(
        kind, options, Layout(ROOT), label_studio_url="http://127.0.0.1:8080", token="t" * 40,
        redis_url="redis://127.0.0.1:6380/0",
    )  # fmt: skip


def test_without_weights_both_backends_run_the_demo_and_say_where_label_studio_is():
    seg, sam = spec("segmentation"), spec("sam")
    env = seg.environment({})
    assert env["LABELSTACK_DEMO_MODEL"] == "1" and env["LABELSTACK_PREDICTOR"] == "segmentation"
    assert env["LABEL_STUDIO_URL"] == "http://127.0.0.1:8080" and env["LABEL_STUDIO_API_KEY"] == "t" * 40
    assert env["REDIS_URL"] == "redis://127.0.0.1:6380/0"
    assert env["MODEL_DIR"] == str(ROOT / "models" / "segmentation")
    assert (env["PORT"], env["HOST"]) == ("9090", "127.0.0.1")
    assert float(env["LABELSTACK_SCORE_THRESHOLD"]) < 0.001 and env["LABELSTACK_MAX_DETECTIONS"] == "5"
    sam_env = sam.environment({})
    assert sam_env["LABELSTACK_DEMO_MODEL"] == "1" and sam_env["LABELSTACK_SAM_MODEL_TYPE"] == "tiny"
    assert sam_env["PORT"] == "9091" and sam_env["MODEL_DIR"] == str(ROOT / "models" / "sam")
    assert seg.log == ROOT / "logs" / "segmentation.log" and seg.url == "http://127.0.0.1:9090"


def test_the_users_environment_tunes_the_demo_but_never_rewires_it():
    base = {"LABELSTACK_SCORE_THRESHOLD": "0.5", "PORT": "1", "LABEL_STUDIO_URL": "http://elsewhere"}
    env = spec("segmentation").environment(base)
    assert env["LABELSTACK_SCORE_THRESHOLD"] == "0.5"
    assert env["PORT"] == "9090" and env["LABEL_STUDIO_URL"] == "http://127.0.0.1:8080"


def test_weights_turn_the_demo_off(tmp_path):
    seg = spec("segmentation", seg_weights=tmp_path / "best.pt").environment({})
    assert seg["LABELSTACK_DEMO_MODEL"] == "0" and seg["LABELSTACK_SEG_WEIGHTS"] == str(tmp_path / "best.pt")
    assert "LABELSTACK_MAX_DETECTIONS" not in seg
    sam = spec("sam", sam_checkpoint=tmp_path / "sam_vit_h_4b8939.pth").environment({})
    assert sam["LABELSTACK_DEMO_MODEL"] == "0" and sam["LABELSTACK_SAM_MODEL_TYPE"] == "vit_h"


def test_cpu_pins_inference_and_training_to_the_cpu():
    env = spec("segmentation", cpu=True).environment({"CUDA_VISIBLE_DEVICES": "0"})
    assert env["LABELSTACK_DEVICE"] == env["LABELSTACK_TRAIN_DEVICE"] == "cpu"
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert "LABELSTACK_DEVICE" not in spec("segmentation").env


@pytest.mark.parametrize(
    ("name", "kind"),
    [("sam_vit_h_4b8939.pth", "vit_h"), ("SAM_VIT_B_01EC64.PTH", "vit_b"), ("mobile_sam.pt", "mobile_sam"),
     ("sam2.1_hiera_tiny.pt", "sam2.1_t"), ("sam2.1_hiera_base_plus.pt", "sam2.1_b"),
     ("sam2_hiera_large.pt", "sam2_l"), ("sam2_s.pt", "sam2_s"), ("sam2.1_l.pt", "sam2.1_l"),
     ("weights.pth", None)],
)  # fmt: skip
def test_the_sam_type_is_read_from_the_usual_file_names(name, kind):
    assert sam_model_type_for(Path(name)) == kind


def test_an_unrecognisable_checkpoint_needs_the_type_named():
    opts = StackOptions(data_dir=ROOT, sam_checkpoint=Path("weights.pth"))
    with pytest.raises(PlanError, match="--sam-model-type"):
        sam_model_type(opts)
    assert (
        sam_model_type(StackOptions(data_dir=ROOT, sam_checkpoint=Path("w.pth"), sam_model_type="vit_l"))
        == "vit_l"
    )


def test_ports_must_differ_and_be_ports():
    with pytest.raises(PlanError, match="both given port 9090"):
        port_claims(StackOptions(data_dir=ROOT, ports=Ports(label_studio=9090)), redis=True)
    with pytest.raises(PlanError, match="not a TCP port"):
        port_claims(StackOptions(data_dir=ROOT, ports=Ports(redis=70000)), redis=True)
    claims = port_claims(StackOptions(data_dir=ROOT, sam=False), redis=False)
    assert [flag for _, _, flag in claims] == ["--port", "--seg-port"]


def test_a_missing_weight_file_is_named_with_the_fix(tmp_path):
    with pytest.raises(PlanError, match=r"--seg-weights .*nope\.pt: no such file.*LABELSTACK_SEG_WEIGHTS"):
        check_weights(StackOptions(data_dir=ROOT, seg_weights=tmp_path / "nope.pt"))
    with pytest.raises(PlanError, match="--sam-checkpoint"):
        check_weights(StackOptions(data_dir=ROOT, sam_checkpoint=tmp_path / "sam.pth"))
    check_weights(StackOptions(data_dir=ROOT, sam=False, sam_checkpoint=tmp_path / "sam.pth"))  # not used


def test_redis_stays_in_the_foreground_and_persists_nothing():
    s = redis_spec(StackOptions(data_dir=ROOT), Layout(ROOT), "/usr/bin/redis-server")
    assert s.argv[:3] == ("/usr/bin/redis-server", "--port", "6380")
    assert "--daemonize" not in s.argv and s.argv[s.argv.index("--save") + 1] == ""
    assert s.url == "redis://127.0.0.1:6380/0"
