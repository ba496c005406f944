"""The fake Bedrock speaks the real wire format: botocore's own parsers accept its frames
and errors (no instrumentation involved here)."""

from __future__ import annotations

import binascii
import json
import struct
from typing import Any

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from fakes.bedrock_server import (
    ErrorReply,
    FakeBedrock,
    StreamEvent,
    StreamReply,
    decode_frames,
    encode_frame,
    model_family,
)


def test_frames_are_accepted_by_botocores_parser() -> None:
    frames = encode_frame({":event-type": "chunk", ":message-type": "event"}, b'{"a": 1}')
    frames += StreamEvent("messageStop", {"stopReason": "end_turn"}).frame()
    buffer = EventStreamBuffer()
    buffer.add_data(frames)
    messages = list(buffer)
    assert [m.headers[":event-type"] for m in messages] == ["chunk", "messageStop"]
    assert messages[0].payload == b'{"a": 1}'
    assert json.loads(messages[1].payload) == {"stopReason": "end_turn"}
    assert messages[1].headers[":content-type"] == "application/json"
    assert decode_frames(frames)[1][0][":message-type"] == "event"


def test_a_corrupted_frame_is_rejected_by_botocore() -> None:
    frame = bytearray(encode_frame({":event-type": "chunk"}, b"payload"))
    frame[-6] ^= 0xFF  # flip a payload byte: the message CRC no longer matches
    buffer = EventStreamBuffer()
    buffer.add_data(bytes(frame))
    with pytest.raises(ChecksumMismatch):
        list(buffer)
    total, _headers_len = struct.unpack_from("!II", frame)
    assert total == len(frame)
    assert struct.unpack_from("!I", frame, 8)[0] == binascii.crc32(bytes(frame[:8]))


@pytest.mark.parametrize(
    ("model_id", "family"),
    [
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "anthropic"),
        ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "anthropic"),
        ("arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-8b-instruct-v1:0", "llama"),
        ("cohere.command-r-plus-v1:0", "cohere-r"),
        ("cohere.command-light-text-v14", "cohere"),
        ("amazon.titan-embed-text-v2:0", "titan-embed"),
        ("stability.sd3-large-v1:0", "unknown"),
    ],
)
def test_model_family(model_id: str, family: str) -> None:
    assert model_family(model_id) == family


def test_requests_are_signed_and_recorded(client: Any, fake: FakeBedrock) -> None:
    client.converse(
        modelId="amazon.nova-micro-v1:0", messages=[{"role": "user", "content": [{"text": "hi"}]}]
    )
    (request,) = fake.requests
    assert request.operation == "converse"
    assert request.model_id == "amazon.nova-micro-v1:0"
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256")
    assert "/bedrock/aws4_request" in request.headers["authorization"]
    assert request.body["messages"][0]["content"] == [{"text": "hi"}]


def test_unknown_model_is_a_validation_error(client: Any) -> None:
    with pytest.raises(client.exceptions.ValidationException, match="model identifier"):
        client.converse(
            modelId="nobody.nothing-v1", messages=[{"role": "user", "content": [{"text": "x"}]}]
        )


def test_in_stream_exception_frame_becomes_event_stream_error(
    client: Any, fake: FakeBedrock
) -> None:
    from botocore.exceptions import EventStreamError

    fake.enqueue(
        StreamReply(
            [
                StreamEvent("messageStart", {"role": "assistant"}),
                StreamEvent("throttlingException", {"message": "slow down"}, exception=True),
            ]
        )
    )
    response = client.converse_stream(
        modelId="anthropic.claude-3-haiku-20240307-v1:0",
        messages=[{"role": "user", "content": [{"text": "x"}]}],
    )
    events = []
    with pytest.raises(EventStreamError, match="slow down"):
        for event in response["stream"]:
            events.append(event)
    assert events == [{"messageStart": {"role": "assistant"}}]


def test_error_reply_maps_to_modeled_exception(client: Any, fake: FakeBedrock) -> None:
    fake.enqueue(ErrorReply("InternalServerException", 500, "try later"))
    with pytest.raises(client.exceptions.InternalServerException, match="try later"):
        client.invoke_model(modelId="meta.llama3-8b-instruct-v1:0", body=b"{}")
