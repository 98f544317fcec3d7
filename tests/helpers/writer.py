"""The story, parent scene and write requests shared by the scene-writer tests."""

from __future__ import annotations

from reelfork.generation.writer.request import WriteRequest
from reelfork.narrative.story import NARRATOR, Scene, Story

STORY = Story.model_validate(
    {
        "id": "night-shift",
        "title": "Night Shift",
        "bible": {
            "logline": "A night nurse discovers that the charming new doctor is not who he says he is.",
            "setting": "St. Agnes Hospital in a rainy city at night: long corridors, a quiet ward, a rooftop.",
            "tone": "tense romantic thriller",
            "style_rules": ["Short spoken lines.", "Every scene ends on a cliffhanger."],
            "characters": [
                {"id": "mia", "name": "Mia", "look": "Young nurse, dark ponytail, blue scrubs, tired eyes."},
                {"id": "adrian", "name": "Dr. Adrian Cole", "look": "Tall man, white coat, silver watch."},
            ],
        },
        "start": "s1",
        "scenes": [
            {
                "id": "s1",
                "title": "The New Doctor",
                "place": "hospital corridor",
                "lines": [
                    {"id": "l1", "speaker": "narrator", "text": "Midnight. A stranger in a white coat walks in."},
                    {"id": "l2", "speaker": "adrian", "text": "I'm Dr. Cole. I was told you need help tonight."},
                    {"id": "l3", "speaker": "mia", "text": "Nobody told me about a new doctor."},
                    {"id": "l4", "speaker": "adrian", "text": "Then let's keep it our little secret."},
                ],
                "choices": [
                    {
                        "id": "c1",
                        "label": "Check his badge",
                        "open": {"hint": "Mia checks his badge: the photo belongs to someone else."},
                    },
                    {
                        "id": "c2",
                        "label": "Follow him to the ward",
                        "open": {"hint": "Mia follows him and sees him open the locked drug cabinet."},
                    },
                ],
            },
            {
                "id": "s2",
                "title": "Rooftop",
                "place": "hospital rooftop",
                "lines": [{"id": "l1", "speaker": "mia", "text": "It's over."}],
                "ending": True,
            },
        ],
    }
)
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
