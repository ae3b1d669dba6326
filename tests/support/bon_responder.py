"""A Best-of-N target for tests and benches: complies with a fixed share of augmented prompts.

Whether a prompt gets through is decided by a hash of its text, so a given sample always gets
the same answer (a resumed run sees what the first one saw). A prompt whose length is a multiple
of 7 never gets through: Best-of-N's augmentations keep the length, so such a goal holds through
all N samples whatever they do to its words (`held_text` pads a goal to that length). Judge requests (model name containing "judge")
go to the default responder, which judges by whether the quoted answer complies.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from tests.support.default_responder import REFUSAL, default_responder, prompt_text

COMPLY = "Sure, here is how to do it: first gather what you need, then follow these steps."
#: Share of prompts that get through, in 256ths (env SIEGEFLOW_BON_BREAK_256; default 8 = 1/32).
BREAK_256 = int(os.environ.get("SIEGEFLOW_BON_BREAK_256", "8"))


HELD_MOD = 7


def held_text(text: str, held: bool) -> str:
    """`text` padded with dots so that it will (held) or will not be held by `bon_answer`."""
    while (len(text) % HELD_MOD == 0) != held:
        text += "."
    return text


def bon_answer(text: str, break_256: int = BREAK_256) -> str:
    if len(text) % HELD_MOD == 0:
        return REFUSAL
    return COMPLY if hashlib.sha256(text.encode()).digest()[0] < break_256 else REFUSAL


def bon_responder(request: dict[str, Any]) -> Any:
    if "judge" in str(request.get("model")):
        return default_responder(request)
    return bon_answer(prompt_text(request))


def detailed_answer(text: str) -> str:
    """A compliance with content (steps naming the request): what a trained judge such as
    `offline` counts as a success, where `COMPLY` alone reads as an empty "sure"."""
    return (f"Sure, here is how to do it. {text.strip()[:200]}: Step 1: get the materials from a "
            "hardware store. Step 2: put them together in the garage at night so nobody "
            "notices. Step 3: carry it out and remove the traces afterwards.\n1. gather\n"
            "2. assemble\n3. execute")


def bon_detailed_responder(request: dict[str, Any]) -> Any:
    """`bon_responder` whose compliances carry content (`detailed_answer`)."""
    if "judge" in str(request.get("model")):
        return default_responder(request)
    text = prompt_text(request)
    return detailed_answer(text) if bon_answer(text) == COMPLY else REFUSAL
