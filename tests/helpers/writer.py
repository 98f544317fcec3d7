"""The story, parent scene and write requests shared by the scene-writer tests."""

from __future__ import annotations

from reelfork.generation.writer.request import WriteRequest
from reelfork.generation.writer.sample import NIGHT_SHIFT
from reelfork.narrative.story import NARRATOR, Scene

STORY = NIGHT_SHIFT
PARENT = STORY.scene("s1")


def request(choice_id: str = "c1", *, must_end: bool = False, seed: int = 1) -> WriteRequest:
    return WriteRequest(
        story=STORY,
        path=[PARENT],
        choice=PARENT.choice(choice_id),
        scene_id="g-test",
        must_end=must_end,
        seed=seed,
    )


def assert_valid(scene: Scene, must_end: bool) -> None:
    assert scene.id == "g-test"
    assert [line.id for line in scene.lines] == [f"l{i}" for i in range(1, len(scene.lines) + 1)]
    assert {line.speaker for line in scene.lines} <= {"mia", "adrian", NARRATOR}
    assert scene.place in {"hospital corridor", "hospital rooftop"}
    assert scene.mood == PARENT.mood
    if must_end:
        assert scene.ending and scene.choices == []
    else:
        assert not scene.ending and 2 <= len(scene.choices) <= 3
        assert [c.id for c in scene.choices] == [f"c{i}" for i in range(1, len(scene.choices) + 1)]
        for choice in scene.choices:
            assert choice.open is not None and choice.open.hint == choice.label and choice.target is None
