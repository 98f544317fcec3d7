"""Benchmark of the CPU animatic renderer on one core.

Run from the repository root:

    . .venv/bin/activate
    python bench/render.py            # 3 runs, profile "animatic" (540x960, 24 fps)
    python bench/render.py --runs 5

It renders the same realistic 6-line, two-character scene each run, pinned to
one CPU with every thread pool at one thread, and prints the render time, the
clip's duration, the real-time factor (render time / clip duration; below 1 is
faster than real time) as the median over the runs, and the share of time spent
in voice (espeak-ng), draw (frames), encode (H.264/AAC/MP4) and labels (AI mark
and metadata). The figures go to ``bench/results/render.json``.
"""

from __future__ import annotations

import os

# Before numpy is imported: one thread everywhere, as on a busy shared core.
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[variable] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402

from generation.animatic import AnimaticRenderer  # noqa: E402
from generation.rendering import PROFILES, RenderRequest  # noqa: E402
from narrative.story import Bible, Character, Choice, Line, Scene, Voice  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "render.json"
STAGES = ("voice", "draw", "encode", "labels")

BIBLE = Bible(
    logline="A courier learns that the package she carries is her own stolen memory.",
    setting="A rain-soaked port city in 2041, neon over old stone.",
    tone="neo-noir, intimate, clipped dialogue",
    characters=[
        Character(
            id="mei",
            name="Mei Lin",
            look="short black hair, red bomber jacket, a thin scar over the left eyebrow",
            voice=Voice(voice="en-us+f3", pitch=60, rate=170),
            color="#e0457b",
        ),
        Character(
            id="jun",
            name="Jun",
            look="tall, grey trench coat, silver-rimmed glasses, tired eyes",
            voice=Voice(voice="en-gb", pitch=35, rate=150),
        ),
    ],
)

SCENE = Scene(
    id="rooftop",
    title="The Package",
    place="rooftop garden at night",
    mood="tense",
    lines=[
        Line(
            id="l1",
            speaker="narrator",
            text="Rain hammers the rooftop garden. Mei waits, the package cold in her hands.",
        ),
        Line(id="l2", speaker="mei", text="You said it would be simple. Deliver it, get paid, forget it."),
        Line(id="l3", speaker="jun", text="Nothing about you was ever simple, Mei. Open it."),
        Line(id="l4", speaker="mei", text="If I open it, I can't un-know what's inside."),
        Line(
            id="l5",
            speaker="jun",
            text="That is exactly the point. Someone decided you should forget. I'm giving you the choice back.",
        ),
        Line(id="l6", speaker="narrator", text="Far below, a siren starts to wail."),
    ],
    choices=[Choice(id="open", label="Open it", target="memory"), Choice(id="run", label="Run", target="stairs")],
)


@dataclass(frozen=True)
class Run:
    render_seconds: float
    clip_seconds: float
    stages: dict[str, float]


def pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"cpu {core}"
    return "not pinned (no sched_setaffinity)"


def espeak_version() -> str:
    result = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", default="animatic", choices=sorted(PROFILES))
    arguments = parser.parse_args()

    pinned = pin_to_one_core()
    profile = PROFILES[arguments.profile]
    renderer = AnimaticRenderer(threads=1)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="reelfork-bench-") as folder:
        for run in range(arguments.runs):
            request = RenderRequest(scene=SCENE, bible=BIBLE, profile=profile, output=Path(folder) / f"run{run}.mp4")
            start = time.perf_counter()
            clip, stages = renderer.render_measured(request)
            seconds = time.perf_counter() - start
            runs.append(Run(render_seconds=seconds, clip_seconds=clip.duration, stages=stages))
            print(
                f"run {run + 1}: {seconds:.2f} s for {clip.duration:.2f} s of video (RTF {seconds / clip.duration:.3f})"
            )

    render_seconds = statistics.median(run.render_seconds for run in runs)
    clip_seconds = statistics.median(run.clip_seconds for run in runs)
    totals = {stage: sum(run.stages.get(stage, 0.0) for run in runs) for stage in STAGES}
    overall = sum(run.render_seconds for run in runs)
    shares = {stage: totals[stage] / overall for stage in STAGES}
    shares["other"] = max(0.0, 1.0 - sum(shares.values()))
    result = {
        "profile": profile.model_dump(),
        "lines": len(SCENE.lines),
        "runs": [asdict(run) for run in runs],
        "median_render_seconds": render_seconds,
        "clip_seconds": clip_seconds,
        "real_time_factor": render_seconds / clip_seconds,
        "shares": shares,
        "machine": {
            "pinned": pinned,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pyav": av.__version__,
            "espeak": espeak_version(),
            "platform": platform.platform(),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"median: {render_seconds:.2f} s to render {clip_seconds:.2f} s of {profile.width}x{profile.height} "
        f"at {profile.fps} fps, real-time factor {render_seconds / clip_seconds:.3f} ({pinned}, 1 thread)"
    )
    print("time share: " + ", ".join(f"{stage} {share:.0%}" for stage, share in shares.items()))
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
