"""Instrumenting must not import the provider SDK: the patch waits for the app's import."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CASES = {
    "anthropic": (
        "spanlake.instrumentation.anthropic:AnthropicInstrumentor",
        "anthropic",
        "from anthropic.resources.messages import Messages as C; "
        "patched = isinstance(C.__dict__['create'], wrapt.FunctionWrapper)",
    ),
    "openai": (
        "spanlake.instrumentation.openai:OpenAIInstrumentor",
        "openai",
        "from openai.resources.chat.completions.completions import Completions as C; "
        "patched = isinstance(C.__dict__['create'], wrapt.FunctionWrapper)",
    ),
    "langchain": (
        "spanlake.instrumentation.langchain:LangChainInstrumentor",
        "langchain_core",
        "from langchain_core.callbacks.base import BaseCallbackManager as C; "
        "patched = isinstance(C.__dict__['__init__'], wrapt.FunctionWrapper)",
    ),
    "bedrock": (
        "spanlake.instrumentation.bedrock:BedrockInstrumentor",
        "botocore",
        "from botocore.client import BaseClient as C; "
        "patched = isinstance(C.__dict__['_make_api_call'], wrapt.FunctionWrapper)",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_instrument_defers_until_the_app_imports_the_sdk(name: str) -> None:
    target, sdk, check = CASES[name]
    module, cls = target.split(":")
    script = textwrap.dedent(
        f"""
        import sys
        import wrapt
        from {module} import {cls}
        instrumentor = {cls}()
        instrumentor.instrument()
        assert "{sdk}" not in sys.modules, "instrument() imported the SDK"
        {check}
        assert patched, "the app's import was not patched"
        instrumentor.uninstrument()
        {check}
        assert not patched, "uninstrument() left the patch"
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_uninstrument_before_import_cancels_the_patch() -> None:
    script = textwrap.dedent(
        """
        import wrapt
        from spanlake.instrumentation.openai import OpenAIInstrumentor
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument()
        instrumentor.uninstrument()
        from openai.resources.chat.completions.completions import Completions
        assert not isinstance(Completions.__dict__["create"], wrapt.FunctionWrapper)
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
