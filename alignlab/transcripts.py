"""Chat transcripts in the form of the classic HH preference data (Anthropic's helpful-harmless pairs):
``\\n\\nHuman: ... \\n\\nAssistant: ...``, as chat messages.

A ``chosen``/``rejected`` pair without a prompt column may be stored so (:mod:`alignlab.data_rows`); its shared
opening turns are then the prompt.
"""

from __future__ import annotations

import re

_TURN = re.compile(r"\n\n(Human|Assistant): ")


def parse_transcript(text: str) -> list[dict]:
    """``\\n\\nHuman: hi\\n\\nAssistant: hello`` -> chat messages."""
    parts = _TURN.split("\n\n" + text.lstrip("\n") if not text.startswith("\n\n") else text)
    messages = []
    for role, content in zip(parts[1::2], parts[2::2]):
        messages.append({"role": "user" if role == "Human" else "assistant", "content": content.strip()})
    return messages
