"""Every recording on disk was replayed (runs after the replay modules: pytest orders files
by name). A recording added to ``../shared/conformance`` without a working case fails here."""

from __future__ import annotations

import pytest

from ._recordings import REPLAYED, on_disk, require_root


def test_every_recording_replayed(request: pytest.FixtureRequest) -> None:
    require_root()
    option = request.config.option
    if option.keyword or option.markexpr or request.session.testscollected < len(on_disk()) + 1:
        pytest.skip("a subset of the conformance cases was selected")
    assert len(on_disk()) == 132  # the README's count: 71 OpenAI + 61 Bedrock
    assert on_disk() - REPLAYED == set(), "recordings on disk that no case replayed"
    assert REPLAYED == on_disk()
