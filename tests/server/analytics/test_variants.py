"""Variants of a scene: the ids translations name are kept (or the variant is refused, precisely), stale
translations are dropped, and a written scene becomes a variant with the authored ids and choices."""

from __future__ import annotations

from importlib import resources

from reelfork.narrative.formats import load_story
from reelfork.narrative.story import Line, Scene, Story
from reelfork.server.analytics.experiments import variant_story
from reelfork.server.analytics.variants import (
    as_variant,
    lead_in,
    translation_problems,
    variant_request,
    without_stale_translations,
)


def seed() -> Story:
    text = (resources.files("reelfork.narrative") / "stories" / "last-ferry.yaml").read_bytes()
    story, _ = load_story(text, source="last-ferry.yaml")
    return story


def test_a_variant_that_drops_a_translated_line_or_choice_is_named_precisely() -> None:
    story = seed()
    heiress = story.scene("heiress")
    shorter = heiress.model_copy(update={"lines": heiress.lines[:3]})
    (problem,) = translation_problems(story, "heiress", shorter)
    assert problem.field == "lines" and problem.key == "heiress/line:l4" and problem.locales == ["es", "zh"]
    assert "line 'l4' of scene 'heiress' is gone" in problem.message and "keep the line id" in problem.message
    renamed = heiress.model_copy(update={"choices": [heiress.choices[0].model_copy(update={"id": "onward"})]})
    (choice,) = translation_problems(story, "heiress", renamed)
    assert choice.field == "choices" and choice.key == "heiress/choice:next"
    retitled = heiress.model_copy(update={"title": "Another Title"})
    assert translation_problems(story, "heiress", retitled) == []  # a title is always there: never refused


def test_a_variant_keeps_translations_of_unchanged_texts_and_drops_the_stale_ones() -> None:
    story = seed()
    heiress = story.scene("heiress")
    hook = Line(id="l4", speaker="narrator", text="A hooded stranger watches, dripping seawater.")
    changed = heiress.model_copy(update={"title": "The Stranger", "lines": [*heiress.lines[:3], hook]})
    trimmed, stale = without_stale_translations(story, "heiress", changed)
    assert stale == ["heiress/line:l4", "heiress/title"]
    for locale in ("es", "zh"):
        assert "heiress/line:l4" not in trimmed.translations[locale]
        assert "heiress/line:l1" in trimmed.translations[locale]
        assert "heiress/choice:next" in trimmed.translations[locale]
    variant, dropped = variant_story(story, "heiress", changed)
    assert dropped == stale and variant.scene("heiress").title == "The Stranger"
    assert variant.translations["es"]["boarding/title"] == story.translations["es"]["boarding/title"]
    same, none = without_stale_translations(story, "heiress", heiress)
    assert none == [] and same is story


def test_a_written_scene_takes_the_authored_line_ids_and_keeps_the_authored_choices() -> None:
    story = seed()
    authored = story.scene("heiress")
    written = Scene.model_validate({
        "id": "g-0123456789abcdef", "title": "Cold Eyes", "place": "Somewhere else", "mood": "tense",
        "lines": [{"id": f"l{n}", "speaker": "mara", "text": f"Line number {n} here."} for n in range(1, 7)],
        "choices": [{"id": "c1", "label": "Run", "open": {"hint": "Run"}},
                    {"id": "c2", "label": "Stay", "open": {"hint": "Stay"}}],
    })
    variant = as_variant(written, authored)
    assert variant.id == "heiress" and variant.title == "Cold Eyes"
    assert [line.id for line in variant.lines] == ["l1", "l2", "l3", "l4", "w5", "w6"]
    assert [line.text for line in variant.lines] == [line.text for line in written.lines]
    assert variant.choices == authored.choices and variant.place == authored.place and variant.tags == authored.tags
    assert translation_problems(story, "heiress", variant) == []
    fewer = as_variant(written.model_copy(update={"lines": written.lines[:2]}), authored)
    assert [line.id for line in fewer.lines] == ["l1", "l2"]


def test_the_write_request_continues_from_the_scene_before_with_the_brief() -> None:
    story = seed()
    assert lead_in(story, "heiress") is not None
    request = variant_request(story, "heiress", "a sharper cliffhanger.", "x-1", 0)
    assert request is not None
    assert [scene.id for scene in request.path] == ["boarding"] and request.scene_id == "heiress"
    assert request.choice.open is not None and request.choice.open.hint == "a sharper cliffhanger."
    assert request.instruction is not None and "a sharper cliffhanger:" not in request.instruction
    assert "a sharper cliffhanger. Give it a new title" in request.instruction
    assert "2 or 3 choices" in request.instruction
    assert request.story.scene("heiress").title not in request.instruction
    other = variant_request(story, "heiress", "a sharper cliffhanger.", "x-1", 1)
    assert other is not None and abs(other.seed - request.seed) >= 16  # variants never share a seed
    assert variant_request(story, story.start, "x", "x-1", 0) is None  # nothing leads to the start
