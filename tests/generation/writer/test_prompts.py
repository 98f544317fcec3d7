"""The writer's brief carries the story's audience signal: which characters' scenes hold viewers longest."""

from __future__ import annotations

from reelfork.generation.writer import prompts

from tests.helpers.writer import request


def test_the_audience_signal_follows_the_bible_and_siblings_still_share_the_prefix() -> None:
    plain = prompts.build_messages(request("c1"))
    held = request("c1").model_copy(update={"holding": ["adrian", "mia"]})
    messages = prompts.build_messages(held)
    system = messages[0]["content"]
    assert system.startswith(plain[0]["content"])  # the rules and the bible first, unchanged
    assert system.endswith("Viewers watch scenes with adrian, mia longest: give them a part when the story allows.")
    assert messages[1] == plain[1]
    sibling = prompts.build_messages(request("c2").model_copy(update={"holding": ["adrian", "mia"]}))
    assert sibling[0] == messages[0]  # the signal is the story's, not the choice's: the KV cache prefix holds


def test_no_signal_leaves_the_prompt_as_it_was() -> None:
    assert "Viewers watch" not in prompts.build_messages(request("c1"))[0]["content"]
    assert prompts.audience([]) == ""
