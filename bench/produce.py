"""Linear production throughput: minutes of finished video per minute of wall time, per stage.

    .venv/bin/python -m bench.produce                          # the example series, en,es,zh, + a drafted episode
    .venv/bin/python -m bench.produce --locales en --draft-episodes 0

Runs ``reelfork produce`` in this process on the embedded defaults, with an empty cache, twice:
the authored 5-episode example series (``docs/examples/night-courier.yaml``: translate, render,
assemble) and a series drafted from the example premise (draft too). For each it prints, per stage,
the wall seconds and the minutes of finished series (one locale's cut) made per wall minute, and
the same for the whole run; then a third run of the first production to show what a resumed or
repeated run costs. Writes ``bench/results/produce.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from reelfork.generation.production.drafting import Premise
from reelfork.generation.production.pipeline import STAGES, Production, check_locales
from reelfork.generation.render.profiles import PROFILES
from reelfork.narrative.formats import load_story
from reelfork.server.productions import components, options
from reelfork.server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SERIES = ROOT / "docs" / "examples" / "night-courier.yaml"
PREMISE = ROOT / "generation" / "premises" / "midnight-heir.yaml"


def run(
    name: str,
    data: Path,
    locales: list[str],
    *,
    story_file: Path | None = None,
    premise: Premise | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    settings = Settings(data_dir=data, writer_threads=2)
    chosen = options(settings, "animatic")
    production = Production(
        out or data / "out" / name, chosen.cache, components(chosen, "animatic"), PROFILES["animatic"], locales
    )
    story = load_story(story_file.read_bytes(), source=story_file.name)[0] if story_file is not None else None
    started = time.perf_counter()
    manifest = production.run(story=story, premise=premise)
    wall = time.perf_counter() - started
    minutes = manifest["duration_s"] / 60
    seconds = manifest["counters"]["seconds"]
    stages = {
        stage: {
            "seconds": seconds.get(stage, 0.0),
            # A stage that only reused finished work has no meaningful rate.
            "video_minutes_per_minute": (
                round(minutes / (seconds[stage] / 60), 2) if seconds.get(stage, 0.0) >= 0.5 else None
            ),
        }
        for stage in STAGES
    }
    result = {
        "name": name,
        "locales": locales,
        "episodes": len(manifest["episodes"]),
        "video_minutes": round(minutes, 2),
        "delivered_minutes": round(minutes * len(locales), 2),
        "wall_seconds": round(wall, 1),
        "video_minutes_per_minute": round(minutes / (wall / 60), 3),
        "stages": stages,
        "counters": {k: v for k, v in manifest["counters"].items() if k != "seconds"},
    }
    print(f"\n{name}: {result['episodes']} episodes, {minutes:.2f} min of video "
          f"({result['delivered_minutes']:.2f} min delivered in {len(locales)} locales), wall {wall:.0f} s")
    print(f"  {'stage':<10} {'seconds':>9} {'video min / wall min':>22}")
    for stage, figures in stages.items():
        rate = figures["video_minutes_per_minute"]
        print(f"  {stage:<10} {figures['seconds']:>9.1f} {rate if rate is not None else '-':>22}")
    print(f"  {'whole run':<10} {wall:>9.1f} {result['video_minutes_per_minute']:>22}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--locales", default="en,es,zh")
    parser.add_argument("--draft-episodes", type=int, default=1, help="episodes to draft from the premise; 0 skips")
    args = parser.parse_args()
    locales = check_locales(args.locales.split(","))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-produce-") as scratch:
        data = Path(scratch)
        results.append(run("authored series", data, locales, story_file=SERIES, out=data / "out" / "series"))
        again = "same series again (all reused)"
        results.append(run(again, data, locales, story_file=SERIES, out=data / "out" / "series"))
        if args.draft_episodes > 0:
            raw = yaml.safe_load(PREMISE.read_text())
            raw["episodes"] = args.draft_episodes
            results.append(run("drafted from the premise", data, locales, premise=Premise.model_validate(raw)))
    RESULTS.mkdir(exist_ok=True)
    report = {"machine": platform.platform(), "cpu_count": os.cpu_count(), "runs": results}
    (RESULTS / "produce.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'produce.json'}")


if __name__ == "__main__":
    main()
