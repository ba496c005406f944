"""``delta+s3://bucket/prefix``: the Delta store on an object store, with the usual AWS env vars.

A loopback S3 (moto's server, real S3 wire protocol) stands in for AWS; deltalake talks to it
through ``AWS_ENDPOINT_URL``. What a user on S3 checks: what was written comes back, a
replayed batch is not stored twice, a second process (a fresh store object) reads it all,
tags and assessments work, and compaction keeps every span.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from spanlake.exporter.records import Assessment, AssessmentKind
from spanlake.exporter.store import open_store
from spanlake.exporter.store.maintenance import compact
from store._s3 import moto_endpoint, s3_environment
from store.factories import make_traces

pytest.importorskip("deltalake")
pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_endpoint() as endpoint:
        yield endpoint


@pytest.fixture
def s3_uri(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> str:
    env = s3_environment(s3_endpoint)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    bucket = f"lake-{abs(hash(request.node.name)) % 10**8}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    return f"delta+s3://{bucket}/spanlake"


def _objects(endpoint: str, uri: str) -> list[str]:
    bucket, _, prefix = uri.removeprefix("delta+s3://").partition("/")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_write_replay_and_read_back_from_another_store(
    s3_endpoint: str, s3_uri: str, tmp_path: Path
) -> None:
    spans = make_traces(0, 12, experiment="s3-exp")
    with open_store(s3_uri) as writer:
        assert writer.write_spans(spans) == len(spans)
        assert writer.write_spans(spans) == 0  # a retried batch is not stored twice
    keys = _objects(s3_endpoint, s3_uri)
    assert any(k.endswith(".parquet") for k in keys)
    assert any("/_delta_log/" in k for k in keys)
    assert not any(k.startswith("/") or "//" in k for k in keys)

    with open_store(s3_uri) as reader:  # a fresh process's view: nothing cached
        page = reader.search_traces(experiment_names=["s3-exp"], max_results=100)
        expected = {s.trace_id for s in spans}
        assert {t.trace_id for t in page.traces} == expected
        one = sorted(expected)[0]
        trace = reader.get_trace(one)
        assert {s.span_id for s in trace.spans} == {s.span_id for s in spans if s.trace_id == one}
        on_s3 = {t.trace_id: t for t in page.traces}
    # The same spans in the default store roll up to the same trace records.
    with open_store(f"sqlite:///{tmp_path / 'same.db'}") as local:
        local.write_spans(spans)
        for info in local.search_traces(max_results=100).traces:
            remote = on_s3[info.trace_id]
            assert (remote.token_usage, remote.span_count, remote.state, remote.cost_usd) == (
                info.token_usage,
                info.span_count,
                info.state,
                info.cost_usd,
            )


def test_tags_assessments_and_compaction_on_s3(s3_uri: str) -> None:
    spans = make_traces(100, 6, experiment="s3-exp")
    trace_id = spans[0].trace_id
    with open_store(s3_uri) as store:
        store.write_spans(spans[: len(spans) // 2])
        store.write_spans(spans[len(spans) // 2 :])
        store.set_trace_tag(trace_id, "reviewed", "yes")
        store.log_assessment(
            Assessment(trace_id=trace_id, name="helpful", value=True, kind=AssessmentKind.FEEDBACK)
        )
    with open_store(s3_uri) as store:
        (info,) = store.search_traces(filter_string="tags.reviewed = 'yes'").traces
        assert info.trace_id == trace_id
        assert [a.name for a in store.get_trace(trace_id).assessments] == ["helpful"]
        before = {(t.trace_id, t.span_count) for t in store.search_traces(max_results=100).traces}
        compact(store)
    with open_store(s3_uri) as store:
        after = {(t.trace_id, t.span_count) for t in store.search_traces(max_results=100).traces}
    assert after == before
    assert len(after) == 6


def test_credentials_come_from_the_environment(
    s3_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrong")
    # moto accepts any key; the point is that the store reads the env at open time and a
    # missing endpoint fails with a clear store error rather than hanging.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    from spanlake.exporter.errors import StoreError

    with pytest.raises(StoreError):
        with open_store(s3_uri) as store:
            store.write_spans(make_traces(200, 1))
    assert os.environ["AWS_ENDPOINT_URL"].endswith(":9")
