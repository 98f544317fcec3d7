"""Story graph validation and viewer-state updates: how fast the pure narrative core is.

    .venv/bin/python -m bench.narrative                # 10,000 scenes, 7 validation runs
    .venv/bin/python -m bench.narrative --scenes 100000 --runs 3

Builds a generated story (every scene has forward choices, a ``once`` choice back, conditions and
effects on a variable, an ending every 50 scenes), then times :func:`reelfork.narrative.graph.validate`
(targets: under 1 s for 10,000 scenes) and :func:`reelfork.narrative.state.choose` on a viewer state
(target: under 50 µs). Prints medians and writes ``bench/results/narrative.json``. Parsing JSON
text (:func:`reelfork.narrative.formats.parse_story`) is timed separately: it happens once per publish.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Any

from reelfork.narrative.formats import parse_story
from reelfork.narrative.graph import validate
from reelfork.narrative.state import begin, choose
from reelfork.narrative.story import Story

RESULTS = Path(__file__).resolve().parent / "results"
VALIDATE_TARGET_S = 1.0
CHOOSE_TARGET_US = 50.0


def generated_story(scenes: int, seed: int = 7, lean: bool = False) -> dict[str, Any]:
    """A valid story of ``scenes`` scenes, as the dict a YAML or JSON file would hold.

    ``lean`` leaves out the conditional and ``once`` choices (quicker to parse, same graph shape).
    """
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    for index in range(scenes):
        scene: dict[str, Any] = {
            "id": f"s{index}", "title": f"Scene {index}", "place": "A corridor",
            "lines": [{"speaker": "ann", "text": f"Line {index}."}],
        }
        last = index == scenes - 1
        if last or (index % 50 == 49):
            scene["ending"] = True
        else:
            forward = [index + 1, min(index + rng.randint(2, 20), scenes - 1)]
            scene["choices"] = [
                {"id": "on", "label": "Go on", "target": f"s{forward[0]}", "effects": [{"add": "trust", "by": 1}]},
                {"id": "skip", "label": "Skip ahead", "target": f"s{forward[1]}",
                 "condition": {"op": ">=", "args": [{"var": "trust"}, rng.randint(0, 3)]}},
                {"id": "back", "label": "Go back", "target": f"s{index // 2}", "once": True},
            ]
            if lean:
                scene["choices"] = [{"id": c["id"], "label": c["label"], "target": c["target"]}
                                    for c in scene["choices"][:2]]
        items.append(scene)
    bible = {"logline": "A generated story.", "setting": "Corridors.", "tone": "Flat.",
             "characters": [{"id": "ann", "name": "Ann", "look": "Ann."}]}
    return {"id": "generated", "title": "Generated", "bible": bible, "start": "s0",
            "variables": {"trust": {"type": "int", "default": 0}}, "scenes": items}


def _median_s(action: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--choices", type=int, default=20_000, help="choose() calls timed")
    args = parser.parse_args()

    data = generated_story(args.scenes)
    payload = json.dumps(data)
    parse_s = _median_s(lambda: parse_story(payload), max(1, args.runs // 2))
    story = Story.model_validate(data)
    problems = validate(story)
    if any(p.severity == "error" for p in problems):
        raise SystemExit(f"the generated story is invalid: {problems[:3]}")
    validate_s = _median_s(lambda: validate(story), args.runs)

    state = begin(story, 1)
    scene = story.scene(state.current)
    choice = scene.choice("on")
    assert choice.target is not None
    target = choice.target
    samples = []
    for _ in range(max(1, args.choices // 1000)):
        began = time.perf_counter()
        for _ in range(1000):
            choose(state, scene, "on", target)
        samples.append((time.perf_counter() - began) / 1000)
    choose_us = statistics.median(samples) * 1e6
    session_bytes = len(choose(state, scene, "on", target).model_dump_json())

    result = {
        "scenes": args.scenes,
        "parse_s": round(parse_s, 4),
        "validate_s": round(validate_s, 4),
        "validate_target_s": VALIDATE_TARGET_S,
        "choose_us": round(choose_us, 2),
        "choose_target_us": CHOOSE_TARGET_US,
        "session_bytes_after_one_choice": session_bytes,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(f"parse {args.scenes} scenes (pydantic):   median {parse_s:.3f} s")
    print(f"validate {args.scenes} scenes:          median {validate_s:.3f} s (target < {VALIDATE_TARGET_S} s)")
    print(f"choose on a viewer state:          median {choose_us:.1f} µs (target < {CHOOSE_TARGET_US} µs)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "narrative.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
