"""Benchmark of factored media: many viewers with their own names, looks and locales, one picture per look.

Run from the repository root:

    . .venv/bin/activate
    python bench/personas.py                          # 1,000 viewers x 3 looks x 3 locales, scene "heiress"
    python bench/personas.py --viewers 200 --scene boarding

Simulated viewers get a random name (Latin, accented, Chinese, hyphenated), one of the seed story's
looks and one of its locales. On one pinned core it measures, in CPU seconds of the process and its
espeak-ng children (the cost on one core, even on a busy shared machine):

- picture render seconds for the looks the viewers picked, against one look alone: the pictures a
  scene needs grow with the number of looks, never with the number of viewers (target: <= 3x);
- the median cost of assembling one viewer's clip (voice per line, AAC, the picture's video copied,
  WebVTT, AIGC label, C2PA signature) with its per-line audio not yet cached (every line synthesised:
  the first viewer of a locale), with only the lines naming the viewer new (a new name), and cached;
- assemblies per second over all viewers in turn, sharing one per-line audio cache, as a server would.

The figures go to ``bench/results/personas.json``.
"""

from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[variable] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from reelfork.generation.render.animatic import AnimaticRenderer  # noqa: E402
from reelfork.generation.render.c2pa import ClipSigner  # noqa: E402
from reelfork.generation.render.dub import LineVoices, assemble, line_slots, picture_request  # noqa: E402
from reelfork.generation.render.profiles import PROFILES  # noqa: E402
from reelfork.generation.render.voice import EspeakSynthesizer  # noqa: E402
from reelfork.narrative.persona import check_name  # noqa: E402
from reelfork.narrative.story import Scene, Story  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "personas.json"
SEED = ROOT / "narrative" / "stories" / "last-ferry.yaml"
SYLLABLES = ["ma", "ra", "zo", "ë", "li", "an", "jo", "sé", "ki", "na", "el", "ú", "to", "be", "ñ", "ar"]
CHINESE = "李王张刘陈杨赵黄周吴小明华丽文静"
ROUNDS = 3
"""Picture renders are timed this many times each; the median is reported."""


@dataclass(frozen=True)
class Viewer:
    name: str
    look: str
    locale: str


def random_name(rng: random.Random, longest: int) -> str:
    kind = rng.random()
    if kind < 0.15:
        name = "".join(rng.choice(CHINESE) for _ in range(rng.randint(2, 3)))
    else:
        words = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3))).capitalize()
                 for _ in range(1 if kind < 0.8 else 2)]
        name = ("-" if kind > 0.95 else " ").join(words)
    return check_name(name[:longest], longest)


def viewers(story: Story, count: int, seed: int) -> list[Viewer]:
    assert story.persona is not None
    rng = random.Random(seed)
    looks = [look.id for look in story.persona.looks]
    locales = story.offered_locales()
    return [Viewer(random_name(rng, story.persona.max_name), rng.choice(looks), rng.choice(locales))
            for _ in range(count)]


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (espeak-ng): the cost on one core, whatever else
    the machine is running (a shared machine's wall clock counts other people's work too)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned (no sched_setaffinity)"


def render_pictures(
    story: Story, scene: Scene, looks: list[str], slots: dict[str, float], folder: Path, profile: str
) -> tuple[float, dict[str, Path]]:
    """CPU seconds to render one picture per look, and the pictures."""
    renderer = AnimaticRenderer()
    pictures: dict[str, Path] = {}
    start = cpu_seconds()
    for look in looks:
        pictures[look] = folder / f"picture-{look}.mp4"
        renderer.render(picture_request(story, scene, look, PROFILES[profile], slots, pictures[look]))
    return cpu_seconds() - start, pictures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--scene", default="heiress", help="a scene of the seed story (default: heiress)")
    parser.add_argument("--profile", default="preview", choices=sorted(PROFILES))
    parser.add_argument("--samples", type=int, default=20, help="assemblies timed per cold/new-name/cached figure")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    pinned = pin_to_one_core()
    story = Story.model_validate(yaml.safe_load(SEED.read_text(encoding="utf-8")))
    scene = story.scene(args.scene)
    crowd = viewers(story, args.viewers, args.seed)
    synthesizer = EspeakSynthesizer()
    with tempfile.TemporaryDirectory(prefix="bench-personas-") as scratch:
        folder = Path(scratch)
        signer = ClipSigner.development(folder / "c2pa")
        started = time.perf_counter()
        slots = line_slots(story, scene, LineVoices(synthesizer))
        slot_seconds = time.perf_counter() - started

        picked = sorted({viewer.look for viewer in crowd})
        render_pictures(story, scene, picked[:1], slots, folder / "warm-up", args.profile)  # fonts, caches
        # Medians of a few rounds: one render is well under a second, and CPU time is counted in clock ticks.
        one_look = statistics.median(
            [render_pictures(story, scene, picked[:1], slots, folder / f"one-{n}", args.profile)[0]
             for n in range(ROUNDS)]
        )
        rounds = [render_pictures(story, scene, picked, slots, folder / f"all-{n}", args.profile)
                  for n in range(ROUNDS)]
        all_looks = statistics.median(seconds for seconds, _ in rounds)
        pictures = rounds[0][1]

        def run(viewer: Viewer, voices: LineVoices, index: int) -> float:
            begin = cpu_seconds()
            assemble(pictures[viewer.look], story, scene, viewer.locale, viewer.name, slots, voices,
                     folder / "clips" / f"{index}.mp4", signer)
            return cpu_seconds() - begin

        sample = crowd[: args.samples]
        cold = [run(viewer, LineVoices(synthesizer), i) for i, viewer in enumerate(sample)]
        warm = LineVoices(synthesizer)
        for viewer in sample:  # every locale's lines without the name, and these names, cached
            run(viewer, warm, 0)
        cached = [run(viewer, warm, i) for i, viewer in enumerate(sample)]
        fresh = [Viewer(f"{viewer.name} Nueva"[: 24].strip(), viewer.look, viewer.locale) for viewer in sample]
        new_name = [run(viewer, warm, i) for i, viewer in enumerate(fresh)]

        shared = LineVoices(synthesizer)
        begin, wall = cpu_seconds(), time.perf_counter()
        for index, viewer in enumerate(crowd):
            run(viewer, shared, index % 50)
        total, wall = cpu_seconds() - begin, time.perf_counter() - wall

    result: dict[str, Any] = {
        "story": story.id,
        "scene": scene.id,
        "lines": len(scene.lines),
        "profile": args.profile,
        "viewers": len(crowd),
        "looks": picked,
        "locales": story.offered_locales(),
        "clip_seconds": round(sum(slots.values()) + 0.5 + 0.25 * len(slots) + 0.25, 2),
        "slot_planning_s": round(slot_seconds, 3),
        "picture_render_s": {"one_look": round(one_look, 3), "all_looks": round(all_looks, 3),
                             "ratio": round(all_looks / one_look, 2), "pictures": len(pictures)},
        "assembly_median_s": {"not_cached": round(statistics.median(cold), 4),
                              "new_name": round(statistics.median(new_name), 4),
                              "cached": round(statistics.median(cached), 4)},
        "assemblies_per_s": round(len(crowd) / total, 2),
        "all_viewers_cpu_s": round(total, 2),
        "all_viewers_wall_s": round(wall, 2),
        "lines_synthesised_for_all_viewers": shared.synthesized,
        "lines_reused_for_all_viewers": shared.reused,
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                    "pinning": pinned},
    }
    print(f"{len(crowd)} viewers x {len(picked)} looks x {len(story.offered_locales())} locales, "
          f"scene {scene.id!r} ({len(scene.lines)} lines, {result['clip_seconds']} s), {pinned}")
    print(f"picture render: one look {one_look:.2f} s, {len(picked)} looks {all_looks:.2f} s "
          f"({all_looks / one_look:.2f}x; the same for any number of viewers)")
    medians = result["assembly_median_s"]
    print(f"assemble one viewer's clip (median of {len(sample)}): not cached {medians['not_cached']:.3f} s, "
          f"new name {medians['new_name']:.3f} s, cached {medians['cached']:.3f} s")
    print(f"all viewers in turn, one shared audio cache: {total:.1f} CPU s ({wall:.1f} s wall), "
          f"{len(crowd) / total:.1f} assemblies/s, "
          f"{shared.synthesized} lines synthesised, {shared.reused} reused")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
