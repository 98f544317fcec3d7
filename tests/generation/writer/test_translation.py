"""Translating scenes with the writer's model (line IDs kept), and cutting linear stories into episodes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from reelfork.generation.writer.attempts import Completion
from reelfork.generation.writer.llama import LlamaCppWriter
from reelfork.generation.writer.openai import OpenAIWriter
from reelfork.generation.writer.translation import TranslateRequest, judge_translation, slot_problems, slots, translate
from reelfork.narrative.formats import load_story
from reelfork.narrative.series import SeriesError, series_of
from reelfork.narrative.story import Scene, Story

ROOT = Path(__file__).resolve().parents[3]
SERIES = ROOT / "docs" / "examples" / "night-courier.yaml"


def series_story() -> Story:
    return load_story(SERIES.read_bytes(), source=SERIES.name)[0]


def scene_and_request(target: str) -> tuple[Scene, TranslateRequest]:
    story = series_story()
    scene = story.scenes[0]
    return scene, TranslateRequest(scene=scene, bible=story.bible, source="en", target=target, attempts=2)


def answer(texts: dict[str, str], finish: str = "stop") -> Completion:
    """A model answer as text: ``judge_translation`` is a pure function of it."""
    return Completion(json.dumps(texts, ensure_ascii=False), finish, 0, 0, -1, -1.0)


SPANISH = [
    "Este paquete tiene mi nombre, y nunca pedí nada.",
    "Entonces no lo abras aquí. Alguien nos vigila desde el puente.",
    "¿Quién eres, y por qué sabes mi nombre?",
    "Te lo entregué una vez, hace diez años. Lo olvidaste.",
]


def test_a_faithful_translation_is_accepted_with_every_id_kept() -> None:
    scene, request = scene_and_request("es")
    sources = slots(scene)
    texts = {"title": "El paquete equivocado", "choice:next": "Siguiente"}
    texts.update({f"line:{line.id}": text for line, text in zip(scene.lines, SPANISH, strict=True)})
    accepted, problems = judge_translation(answer(texts), sources, request, None)
    assert problems == [] and set(accepted) == set(sources)


@pytest.mark.parametrize(
    ("target", "text", "problem"),
    [
        ("es", "This parcel has my name on it, and I never ordered anything.", "not translated"),
        ("zh", "Zhe ge bao guo you wo de ming zi, wo cong lai mei you ding guo.", "no Chinese (Simplified) script"),
        ("es", "Este paquete tiene mi nombre y", "cut off"),
        ("es", "Este paquete " * 20 + ".", "characters for a"),
        ("zh", "这个包裹上有我的名字\uff0c我从来没有订过任何东西。", ""),
    ],
)
def test_slot_checks(target: str, text: str, problem: str) -> None:
    scene, request = scene_and_request(target)
    found = slot_problems("line:x", scene.lines[0].text, text, request)
    assert (problem in " ".join(found)) if problem else found == []


def test_broken_answers_translate_nothing() -> None:
    scene, request = scene_and_request("es")
    sources = slots(scene)
    assert judge_translation(answer({}, finish="length"), sources, request, None)[0] == {}
    assert judge_translation(Completion("{not json", "stop", 0, 0, -1, -1.0), sources, request, None)[0] == {}
    accepted, problems = judge_translation(answer({"title": "El paquete"}), sources, request, None)
    assert set(accepted) == {"title"} and any("missing" in p for p in problems)


def assert_translated_shape(original: Scene, request: TranslateRequest, result: Any) -> None:
    scene = result.scene
    assert [line.id for line in scene.lines] == [line.id for line in original.lines]
    assert [line.speaker for line in scene.lines] == [line.speaker for line in original.lines]
    assert [choice.id for choice in scene.choices] == [choice.id for choice in original.choices]
    assert scene.id == original.id and 1 <= result.attempts <= request.attempts
    translated = slots(scene)
    for key, source in slots(original).items():
        if key in result.untranslated:
            assert translated[key] == source, "an untranslated text keeps its source"
        else:
            assert slot_problems(key, source, translated[key], request) == []


@pytest.mark.slow
def test_in_process_model_translation_keeps_ids_and_reports_what_it_could_not() -> None:
    original, request = scene_and_request("zh")
    result = translate(LlamaCppWriter(n_threads=2), request)
    assert_translated_shape(original, request, result)
    print(f"in-process zh: {len(result.untranslated)} of {len(slots(original))} untranslated; {result.problems[:3]}")


@pytest.mark.slow
def test_only_the_slots_asked_for_are_translated() -> None:
    """What an authored table lacks goes to the model; everything else is left as it was, untouched."""
    original, request = scene_and_request("es")
    asked = frozenset({"title", f"line:{original.lines[0].id}"})
    result = translate(LlamaCppWriter(n_threads=2), request.model_copy(update={"only": asked}))
    assert set(result.untranslated) <= asked
    translated, sources = slots(result.scene), slots(original)
    assert {key for key in sources if translated[key] != sources[key]} <= asked
    assert [line.id for line in result.scene.lines] == [line.id for line in original.lines]


@pytest.mark.slow
def test_http_model_translation_keeps_ids(llama_server: str) -> None:
    original, request = scene_and_request("es")
    writer = OpenAIWriter(llama_server, "smollm2", dialect="llama-cpp", timeout_s=30)
    result = translate(writer, request)
    writer.close()
    assert_translated_shape(original, request, result)


# --- series --------------------------------------------------------------------------------------


def test_the_example_series_has_five_episodes_cut_at_cliffhangers() -> None:
    series = series_of(series_story())
    assert [len(episode.scenes) for episode in series.episodes] == [4, 4, 4, 4, 4]
    assert all("cliffhanger" in episode.scenes[-1].tags for episode in series.episodes[:-1])
    assert series.episodes[-1].scenes[-1].ending


def edited(change: Any) -> Story:
    data = yaml.safe_load(SERIES.read_text())
    change(data["scenes"])
    return Story.model_validate(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s[3]["choices"].append({"id": "alt", "label": "Alt", "target": "e3-1"}), "offers 2 choices"),
        (lambda s: s[3]["choices"].__setitem__(0, {"id": "next", "label": "Next", "open": {"hint": "x"}}),
         "continues through open choice"),
        (lambda s: s[3]["choices"].__setitem__(0, {"id": "next", "label": "Next", "target": "e1-1"}), "loops back"),
        (lambda s: s[3]["choices"][0].__setitem__("condition", {"op": "not", "args": [False]}), "has a condition"),
    ],
)
def test_stories_that_are_not_a_series_are_refused_with_the_scene_to_fix(change: Any, message: str) -> None:
    with pytest.raises(SeriesError, match=message):
        series_of(edited(change))
