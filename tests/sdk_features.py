"""What the installed provider SDKs can do, for tests that also run on the oldest declared
versions (``.ci/run``'s floor job): a feature the SDK lacks is skipped, never faked."""

from __future__ import annotations

import functools


@functools.cache
def botocore_knows(shape: str, member: str) -> bool:
    """Whether this botocore's bedrock-runtime model has ``shape.member``: older models
    silently drop fields they do not know (cache tokens, reasoning blocks)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    try:
        return member in model.shape_for(shape).members  # type: ignore[attr-defined]
    except Exception:
        return False


def openai_chat_has(method: str) -> bool:
    """Whether ``client.chat.completions.<method>`` exists (``parse``/``stream`` left
    ``beta`` in later openai 1.x releases)."""
    from openai.resources.chat.completions import Completions

    return hasattr(Completions, method)
