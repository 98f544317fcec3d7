"""Episodes, free episodes and prices, choice windows and the default: the format, validation and helpers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from reelfork.narrative.formats import StoryError, load_story
from reelfork.narrative.series import series_of
from reelfork.narrative.state import begin, current_episode, default_choice, generated_scene_id
from reelfork.narrative.story import Story, Window, choice_window, episode_of, is_free
from reelfork.server.runtime import seed_story_files

from tests.helpers.stories import choice, scene, story


def episodic(**extra: Any) -> dict[str, Any]:
    """a → b (episode 1), c → d → end / back to c (episode 2), e → last (episode 3, reached from d)."""
    data = story(
        scene("a", choice("go", "b")),
        scene("b", choice("on", "c"), tags=["cliffhanger"]),
        scene("c", choice("on", "d")),
        scene("d", choice("back", "c"), choice("on", "e"), choice("stop", "end"), tags=["cliffhanger"]),
        scene("e", choice("fin", "last")),
        scene("end"),
        scene("last"),
    )
    data["episodes"] = [
        {"number": 1, "title": "One", "opens": "a"},
        {"number": 2, "title": "Two", "opens": "c", "price": {"coins": 60}},
        {"number": 3, "title": "Three", "opens": "e", "price": {"coins": 80}},
    ]
    data["free_episodes"] = 1
    return {**data, **extra}


def problems(data: dict[str, Any]) -> list[str]:
    try:
        _, found = load_story(json.dumps(data))
    except StoryError as exc:
        found = exc.problems
    return [str(p) for p in found]


def test_scenes_belong_to_the_episode_whose_opening_reaches_them() -> None:
    parsed, warnings = load_story(json.dumps(episodic()))
    assert warnings == []
    assert {s.id: episode_of(parsed, s.id).number for s in parsed.scenes} == {
        "a": 1, "b": 1, "c": 2, "d": 2, "end": 2, "e": 3, "last": 3,
    }
    assert [is_free(parsed, n) for n in (1, 2, 3)] == [True, False, False]
    with pytest.raises(KeyError):
        episode_of(parsed, "nowhere")


def test_a_story_without_episodes_is_one_free_episode() -> None:
    parsed = Story.model_validate(story(scene("a", choice("go", "b")), scene("b")))
    only = episode_of(parsed, "b")
    assert (only.number, only.title, only.opens, only.price) == (1, "Test", "a", None)
    assert is_free(parsed, 1) and is_free(parsed, 7)
    assert "episodes" not in parsed.model_dump(mode="json") and "choice_window" not in parsed.model_dump(mode="json")


def test_written_scenes_belong_to_their_parents_episode() -> None:
    parsed = Story.model_validate(episodic())
    state = begin(parsed, 1)
    written = generated_scene_id(parsed.digest(), "c", "x")
    deeper = state.model_copy(update={"path": ["a", "b", "c", written]})
    assert current_episode(parsed, deeper).number == 2
    assert current_episode(parsed, state).number == 1


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"episodes": [{"number": 1, "title": "One", "opens": "a"}, {"number": 3, "title": "Two", "opens": "c"}],
          "free_episodes": None},
         "error: episodes[1].number: episode numbers go 1, 2, 3... in list order: expected 2, got 3"),
        ({"episodes": [{"number": 1, "title": "One", "opens": "a"}, {"number": 2, "title": "Two", "opens": "zz"}],
          "free_episodes": None},
         "error: episodes[1].opens: opening scene 'zz' does not exist"),
        ({"episodes": [{"number": 1, "title": "One", "opens": "b"}], "free_episodes": None},
         "error: episodes[0].opens: the first episode opens at the start scene 'a', not 'b'"),
        ({"free_episodes": 2},
         "error: episodes[1].price: episode 2 is free (free_episodes: 2); remove its price"),
        ({"free_episodes": 0},
         "error: episodes[0].price: episode 1 is beyond free_episodes: 0; give it a price like {coins: 60}"),
    ],
)
def test_declaration_problems_are_located(change: dict[str, Any], expected: str) -> None:
    data = {key: value for key, value in {**episodic(), **change}.items() if value is not None}
    assert expected in problems(data)


def test_scenes_in_no_episode_or_two_and_unreachable_openings_are_errors() -> None:
    data = episodic()
    data["scenes"].append(scene("orphan", choice("fin", "end")))
    data["episodes"].append({"number": 4, "title": "Four", "opens": "orphan", "price": {"coins": 1}})
    data["scenes"].append(scene("lost"))
    found = problems(data)
    assert "error: episodes[3].opens: episode 4 opens at 'orphan', which cannot be reached from the start scene 'a'" \
        in found
    assert "error: scenes[lost]: in no episode: no episode's opening scene reaches it; reach it from one, or declare " \
           "an episode that opens here" in found
    assert "error: scenes[end]: in episodes 2, 4: a scene belongs to one episode; reach it from one episode's " \
           "scenes only, or declare an episode that opens here" in found


def test_a_scene_leading_into_a_locked_episode_should_be_a_cliffhanger() -> None:
    data = episodic()
    data["scenes"][1]["tags"] = []
    assert problems(data) == [
        "warning: scenes[b].tags: choice 'on' leads into locked episode 2: tag this scene 'cliffhanger' so the "
        "episode ends on one"
    ]
    data["free_episodes"] = 3
    for episode in data["episodes"]:
        episode.pop("price", None)
    assert problems(data) == []


@pytest.mark.parametrize(
    ("window", "duration", "expected"),
    [
        (None, 30.0, Window(20.0, 30.0)),
        (None, 4.0, Window(0.0, 4.0)),
        ({"seconds": 6, "after_end": 4}, 30.0, Window(24.0, 34.0)),
        ({"seconds": 0, "after_end": 8}, 30.0, Window(30.0, 38.0)),
        ({"seconds": 5}, 0.0, Window(0.0, 0.1)),
    ],
)
def test_choice_window_on_the_clip_timeline(window: dict[str, float] | None, duration: float, expected: Window) -> None:
    parsed = Story.model_validate(story(scene("a", choice("go", "b"), **({"choice_window": window} if window else {})),
                                        scene("b")))
    found = choice_window(parsed, parsed.scene("a"), duration)
    assert found == expected and 0 <= found.opens_at < found.closes_at


def test_the_story_window_applies_unless_the_scene_sets_its_own() -> None:
    data = story(scene("a", choice("go", "b"), choice_window={"seconds": 3}), scene("b", choice("go", "c")), scene("c"))
    data["choice_window"] = {"seconds": 0, "after_end": 5}
    parsed = Story.model_validate(data)
    assert choice_window(parsed, parsed.scene("a"), 10) == Window(7.0, 10.0)
    assert choice_window(parsed, parsed.scene("b"), 10) == Window(10.0, 15.0)


def test_a_window_with_no_time_and_the_old_timeout_are_refused() -> None:
    found = problems(story(scene("a", choice("go", "b"), choice_window={"seconds": 0}), scene("b")))
    assert found == ["error: scenes[0].choice_window: Value error, a choice window needs time: 'seconds' or "
                     "'after_end' (or both) above 0"]
    assert "less than or equal to 60" in problems(story(scene("a", choice("go", "b"), choice_window={"seconds": 61}),
                                                        scene("b")))[0]


def test_the_default_is_authored_or_the_first_offered() -> None:
    parsed = Story.model_validate(story(scene("a", choice("x", "b"), choice("y", "b"), default="y"),
                                        scene("b", choice("p", "c"), choice("q", "c")), scene("c")))
    state = begin(parsed, 1)
    authored = default_choice(parsed, state)
    assert authored is not None and authored.id == "y"
    first = default_choice(parsed.scene("b"), state.model_copy(update={"path": ["a", "b"]}))
    assert first is not None and first.id == "p"


def test_a_linear_series_follows_declared_episodes() -> None:
    data = story(scene("a", choice("n", "b")), scene("b", choice("n", "c")), scene("c", choice("n", "d")), scene("d"))
    data["episodes"] = [{"number": 1, "title": "One", "opens": "a"}, {"number": 2, "title": "Two", "opens": "c"}]
    parsed, _ = load_story(json.dumps(data))
    series = series_of(parsed)
    assert [[s.id for s in e.scenes] for e in series.episodes] == [["a", "b"], ["c", "d"]]
    tagged = story(scene("a", choice("n", "b"), tags=["cliffhanger"]), scene("b", choice("n", "c")), scene("c"))
    assert [[s.id for s in e.scenes] for e in series_of(Story.model_validate(tagged)).episodes] == [["a"], ["b", "c"]]


def test_the_seed_story_has_three_episodes_one_free_with_prices_and_windows() -> None:
    parsed, warnings = load_story(seed_story_files()[0].read_bytes())
    assert warnings == []
    assert len(parsed.episodes) >= 3 and parsed.free_episodes == 1
    assert all(e.price is not None for e in parsed.episodes[1:])
    assert any(s.choice_window is not None for s in parsed.scenes)
