"""The Secrets a stack names: every place the spec can name one, each Secret read once."""

from __future__ import annotations

from labelstack_operator.references import referenced_secrets
from labelstack_operator.spec import parse_spec
from tests.support import stacks


def test_every_secret_the_full_spec_names_is_checked_with_its_key():
    refs = {(r.name, r.keys, r.field) for r in referenced_secrets(parse_spec(stacks.FULL))}
    assert refs == {
        ("gcs-models", ("sa.json",), "backends[seg-cloud].modelStorage.gcs.credentialsSecret"),
        ("gcs-reader", ("credentials.json",), "projects[Runway garments].gcs.source.credentialsSecret"),
        ("gcs-writer", ("credentials.json",), "projects[Runway garments].gcs.target.credentialsSecret"),
        ("label-tls", ("tls.crt", "tls.key"), "ingress.tlsSecretName"),
    }


def test_a_stack_that_names_no_secret_reads_none():
    assert referenced_secrets(parse_spec(stacks.SMALL)) == []
