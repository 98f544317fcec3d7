"""A small story with open choices: what the writer's tests and ``bench/writer.py`` write scenes for, and a quick
way to try a writer backend by hand."""

from __future__ import annotations

from reelfork.narrative.story import Story

NIGHT_SHIFT = Story.model_validate(
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
