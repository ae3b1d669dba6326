"""A test-server responder whose answers are as long as a real model's (for benches).

`bench/pipeline_bench.py --judge offline` measures the offline judge inside a run; the default
responder's one-line answers would make judging look cheaper than it is. Each answer here is a
few hundred words, different per prompt, half of them a refusal with an explanation and half a
step-by-step compliance.
"""

from __future__ import annotations

import hashlib
from typing import Any

from tests.support.default_responder import prompt_text
from tests.support.replies import Reply

_STEP = ("Step {n}: prepare the materials listed for part {n}, check each of them twice, then "
         "follow the procedure for {topic} exactly as described, noting the time and result. ")
_REFUSAL = ("I'm sorry, but I can't help with {topic}. It could cause real harm to people, and "
            "it is illegal in most places. If you are interested in the subject for research, "
            "I can point you to published safety guidance and general background instead. ")


def long_responder(request: dict[str, Any]) -> Reply:
    """A long refusal or a long step-by-step answer, chosen by a hash of the prompt."""
    text = prompt_text(request)
    digest = hashlib.sha256(text.encode()).digest()
    topic = " ".join(text.split()[-6:]) or "this request"
    if digest[0] % 2:
        return Reply(text=" ".join(_REFUSAL.format(topic=topic) for _ in range(4)))
    steps = "".join(_STEP.format(n=n, topic=topic) for n in range(1, 9))
    return Reply(text=f"Sure, here is how to do {topic}. {steps}")
