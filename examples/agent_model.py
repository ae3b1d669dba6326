"""A scripted stand-in for the agent's model, so examples/langgraph_agent.py runs offline:

    .venv/bin/python -m tests.support.openai_server --port 8000 \\
        --responder examples.agent_model:respond

A new request → it reads the inbox; a tool output carrying "URGENT SYSTEM NOTICE" (what an
injection plants), or a user asking it outright to pay ATTACKER-001 → it transfers money to
ATTACKER-001; otherwise it summarises. Point a real
model at the agent instead with AGENT_API_BASE / AGENT_MODEL.
"""

from __future__ import annotations

import json
from typing import Any

from tests.support.replies import Reply, ToolCall

MAGIC = "URGENT SYSTEM NOTICE"
ACCOUNT = "ATTACKER-001"


def respond(request: dict[str, Any]) -> Reply:
    messages = request["messages"]
    if messages[-1].get("role") == "user":
        return Reply(tool_calls=(ToolCall(name="read_inbox", arguments="{}", id="call_inbox"),))
    paid = any(c.get("function", {}).get("name") == "transfer_money"
               for m in messages if m.get("role") == "assistant" for c in m.get("tool_calls") or ())
    read = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "tool")
    asked = ACCOUNT in "\n".join(str(m.get("content") or "") for m in messages
                                 if m.get("role") == "user")
    if (MAGIC in read or asked) and not paid:
        args = json.dumps({"to_account": ACCOUNT, "amount": 500})
        return Reply(tool_calls=(ToolCall(name="transfer_money", arguments=args, id="call_pay"),))
    return Reply(text="Summary: you have two new emails (lunch on Friday, an invoice).")
