"""The numpy MiniLM encoder's fast GELU (tanh form) keeps the sentence embeddings of the exact
(erf) form: the guardrail and the offline judge were calibrated on those."""

from __future__ import annotations

import numpy as np
import pytest

import targets.minilm as minilm
from tests.targets.conftest import requires_minilm

TEXTS = [
    "I'm sorry, but I can't help with that.",
    "Sure, here is how to pick a lock. Step 1: insert the tension wrench.",
    "The quarterly report shows revenue growth in all regions except the north.",
]


def _exact_gelu(h: np.ndarray) -> np.ndarray:
    return 0.5 * h * (1.0 + minilm._erf(h / np.float32(np.sqrt(2.0))))


def test_fast_gelu_is_close_to_the_exact_one() -> None:
    x = np.linspace(-6, 6, 2001, dtype=np.float32)
    assert np.abs(minilm._gelu(x.copy()) - _exact_gelu(x)).max() < 1e-3


@requires_minilm
def test_embeddings_agree_with_the_exact_gelu(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = minilm.shared_encoder()
    fast = encoder.encode(TEXTS)
    monkeypatch.setattr(minilm, "_gelu", _exact_gelu)
    exact = encoder.encode(TEXTS)
    assert (fast * exact).sum(1).min() > 0.9999
    # and they still tell the texts apart as before
    assert np.allclose(fast @ fast.T, exact @ exact.T, atol=1e-3)
