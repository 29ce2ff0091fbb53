"""The labelstack-operator command line and the docs generated from the model."""

from __future__ import annotations

from pathlib import Path

from labelstack_operator.__main__ import namespaces, parse_args
from labelstack_operator.config import OperatorConfig
from labelstack_operator.crd import spec_reference

REPO = Path(__file__).resolve().parents[3]


def test_namespaces_from_flags_then_environment(monkeypatch):
    monkeypatch.setenv("WATCH_NAMESPACE", "a, b")
    assert namespaces(parse_args([])) == ["a", "b"]
    assert namespaces(parse_args(["-n", "x", "-n", "y"])) == ["x", "y"]
    assert namespaces(parse_args(["-A"])) == []
    monkeypatch.delenv("WATCH_NAMESPACE")
    assert namespaces(parse_args([])) == []


def test_operator_config_reads_its_variables_once():
    config = OperatorConfig.from_env(
        {"LABELSTACK_RESYNC_SECONDS": "5", "LABELSTACK_WORKERS": "3", "HOME": "/x"}
    )
    assert config.resync_seconds == 5 and config.workers == 3
    assert config.label_studio_url.format(service="s", namespace="n", name="x") == "http://s.n.svc:8080"


def test_the_spec_reference_in_the_docs_is_up_to_date():
    doc = (REPO / "docs" / "operator.md").read_text()
    start = doc.index("<!-- spec-reference:start")
    body = doc[doc.index("\n", start) + 1 : doc.index("<!-- spec-reference:end -->")]
    assert body == spec_reference(), "regenerate the spec reference in docs/operator.md"
