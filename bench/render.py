"""Benchmark of the renderers on one core: the CPU animatic, and a tiny diffusion model per profile.

Run from the repository root:

    . .venv/bin/activate
    python bench/render.py                      # animatic 3 runs; tiny diffusion at "tiny" and "fast", 1 run each
    python bench/render.py --runs 5 --diffusion tiny,fast,full
    python bench/render.py --diffusion ""       # animatic only (no torch needed)

It renders the same realistic 6-line, two-character scene each run, pinned to
one CPU with every thread pool at one thread (torch too), and prints per backend
and profile the render time, the clip's duration, the real-time factor (render
time / clip duration; below 1 is faster than real time) as the median over the
runs, and the share of time per stage: voice (espeak-ng), load (the diffusion
pipeline, first run only), generate (diffusion), draw (frames, subtitles),
encode (H.264/AAC/MP4), labels (AI mark and AIGC metadata) and sign (C2PA).
The label overhead is labels + sign over the whole render (target: at most 5%).
The animatic draws its people with lip-sync on (stage ``lipsync``: visemes and the
mouth pass). The ``lipsync`` section measures what adding one locale to a rendered
scene costs: the scene's shared picture (no sound, lines in fixed slots) rendered
with English lips, then with Spanish lips in the same process, whose shot bodies
are drawn already: the mouth pass and the encoding, against the first picture's
render time and the tiny diffusion pipeline's at ``fast``.

The diffusion model is the tests' random-weight LTX pipeline (LTX-Video's 32x/8x
compression in ~150k parameters): it measures everything around a real model, the
loading code, segment chaining, overlays, encode and labels, not a GPU model's speed.
``diffusion["fast+references"]`` is the same render conditioned on the cast's portraits
and the place's plate, made once by the tests' tiny text-to-image pipeline (PixArt-Sigma).

``locale`` is what adding one locale to a rendered scene costs (the seed story's
``heiress`` in ``zh``): the shared picture is rendered once, without sound, by the
animatic and by the tiny diffusion pipeline at ``fast`` (conditioned on references);
one more locale is its voice (espeak-ng, cold), the viewer clip's assembly (mux, WebVTT,
AIGC, C2PA) and a decode and re-encode of the picture, the floor of any per-locale mouth
pass, as a share of each render (target: at most 10% of the diffusion render).
The figures go to ``bench/results/render.json``.
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
from typing import Any, Protocol  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402
from reelfork.generation.render.animatic import AnimaticRenderer, shared_backdrop, shot_body  # noqa: E402
from reelfork.generation.render.c2pa import ClipSigner  # noqa: E402
from reelfork.generation.render.dub import fitted  # noqa: E402
from reelfork.generation.render.encoding import SAMPLE_RATE  # noqa: E402
from reelfork.generation.render.figure import figure  # noqa: E402
from reelfork.generation.render.lipsync import line_track  # noqa: E402
from reelfork.generation.render.profiles import PROFILES, RenderProfile  # noqa: E402
from reelfork.generation.render.request import RenderedClip, RenderRequest  # noqa: E402
from reelfork.generation.render.visemes import VisemeTrack  # noqa: E402
from reelfork.generation.render.voice import EspeakSynthesizer, neutral_voice, voice_name  # noqa: E402
from reelfork.narrative.story import NARRATOR, Bible, Character, Choice, Line, Scene, Voice  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "render.json"
STAGES = ("voice", "load", "generate", "draw", "lipsync", "encode", "labels", "sign")
LABEL_STAGES = ("labels", "sign")

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


SPANISH = {
    "l1": "La lluvia golpea el jardín de la azotea. Mei espera, con el paquete frío en las manos.",
    "l2": "Dijiste que sería sencillo. Entrégalo, cobra y olvídalo.",
    "l3": "Nada en ti fue nunca sencillo, Mei. Ábrelo.",
    "l4": "Si lo abro, no podré olvidar lo que hay dentro.",
    "l5": "Justamente de eso se trata. Alguien decidió que olvidaras. Te devuelvo la elección.",
    "l6": "Muy abajo, empieza a aullar una sirena.",
}
"""The scene's lines in the added locale: another voice, other phonemes, other mouth timing."""


@dataclass(frozen=True)
class Run:
    render_seconds: float
    clip_seconds: float
    stages: dict[str, float]


class MeasuredRenderer(Protocol):
    def render_measured(self, request: RenderRequest) -> tuple[RenderedClip, dict[str, float]]: ...


def pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"cpu {core}"
    return "not pinned (no sched_setaffinity)"


def espeak_version() -> str:
    result = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip()


def measure(renderer: MeasuredRenderer, profile: RenderProfile, runs: int, folder: Path) -> dict[str, Any]:
    """Render the scene ``runs`` times; the median real-time factor and where the time went."""
    measured: list[Run] = []
    for run in range(runs):
        request = RenderRequest(scene=SCENE, bible=BIBLE, profile=profile, output=folder / f"{profile.name}{run}.mp4")
        start = time.perf_counter()
        clip, stages = renderer.render_measured(request)
        seconds = time.perf_counter() - start
        measured.append(Run(render_seconds=seconds, clip_seconds=clip.duration, stages=stages))
        print(
            f"  run {run + 1}: {seconds:.2f} s for {clip.duration:.2f} s of video (RTF {seconds / clip.duration:.3f})"
        )
    render_seconds = statistics.median(run.render_seconds for run in measured)
    clip_seconds = statistics.median(run.clip_seconds for run in measured)
    totals = {stage: sum(run.stages.get(stage, 0.0) for run in measured) for stage in STAGES}
    overall = sum(run.render_seconds for run in measured)
    shares = {stage: totals[stage] / overall for stage in STAGES}
    shares["other"] = max(0.0, 1.0 - sum(shares.values()))
    # The one-off pipeline load is not part of a clip's steady-state cost: leave it out of the overhead's base.
    steady = overall - totals["load"]
    return {
        "profile": profile.model_dump(),
        "runs": [asdict(run) for run in measured],
        "median_render_seconds": render_seconds,
        "clip_seconds": clip_seconds,
        "real_time_factor": render_seconds / clip_seconds,
        "shares": shares,
        "label_overhead": sum(totals[stage] for stage in LABEL_STAGES) / steady,
        "c2pa_ms_per_clip": 1000 * totals["sign"] / len(measured),
    }


def report(name: str, result: dict[str, Any], threads: int) -> None:
    profile = result["profile"]
    print(
        f"{name}: median {result['median_render_seconds']:.2f} s to render {result['clip_seconds']:.2f} s of "
        f"{profile['width']}x{profile['height']} at {profile['fps']} fps, real-time factor "
        f"{result['real_time_factor']:.3f} ({threads} thread{'s' if threads > 1 else ''})"
    )
    print("  time share: " + ", ".join(f"{stage} {share:.1%}" for stage, share in result["shares"].items() if share))
    print(
        f"  label overhead (AIGC + badge + C2PA): {result['label_overhead']:.2%} of render time "
        f"(target <= 5%); C2PA signing {result['c2pa_ms_per_clip']:.1f} ms per clip"
    )


def spoken(line: Line, locale: str) -> tuple[str, Voice]:
    text = line.text if locale == "en" else SPANISH[line.id]
    voice = neutral_voice(locale) if line.speaker == NARRATOR else BIBLE.character(line.speaker).voice
    return text, voice if locale == "en" else voice.model_copy(update={"voice": voice_name(locale)})


def mouths(locale: str, slots: dict[str, float], synthesizer: EspeakSynthesizer) -> dict[str, VisemeTrack]:
    """Each character line's visemes in ``locale``, fitted to its slot (as the worker does for a shared picture)."""
    tracks = {}
    for line in SCENE.lines:
        if line.speaker == NARRATOR:
            continue
        text, voice = spoken(line, locale)
        speech = synthesizer.synthesize(text, voice, locale).resampled(SAMPLE_RATE).samples
        heard = fitted(speech, round(slots[line.id] * SAMPLE_RATE))
        tracks[line.id] = line_track(text, voice, locale, heard, len(speech) / SAMPLE_RATE)
    return tracks


def added_locale(runs: int, folder: Path, signer: ClipSigner, profile: RenderProfile) -> dict[str, Any]:
    """The scene's shared picture with English lips (its bodies drawn from nothing), then the same picture with
    Spanish lips: what one more locale costs once the scene is rendered."""
    synthesizer = EspeakSynthesizer()
    slots = {
        line.id: max(len(synthesizer.synthesize(*spoken(line, locale), locale).resampled(SAMPLE_RATE).samples)
                     for locale in ("en", "es")) / SAMPLE_RATE
        for line in SCENE.lines
    }
    renderer = AnimaticRenderer(threads=1, signer=signer)
    pictures: list[float] = []
    locales: list[float] = []
    tracks: list[float] = []
    for run in range(runs):
        for cache in (shot_body, shared_backdrop, figure):
            cache.cache_clear()
        renderer.lipsync = type(renderer.lipsync)()
        english = mouths("en", slots, synthesizer)
        start = time.perf_counter()
        spanish = mouths("es", slots, synthesizer)
        tracks.append(time.perf_counter() - start)
        for locale, lips, seconds in (("en", english, pictures), ("es", spanish, locales)):
            request = RenderRequest(scene=SCENE, bible=BIBLE, profile=profile, line_seconds=slots, mouths=lips,
                                    voice=False, output=folder / f"picture-{locale}{run}.mp4")
            start = time.perf_counter()
            clip, _ = renderer.render_measured(request)
            seconds.append(time.perf_counter() - start)
        print(f"  run {run + 1}: picture {pictures[-1]:.2f} s, one more locale {locales[-1] + tracks[-1]:.2f} s "
              f"({tracks[-1]:.2f} s of it its visemes) for {clip.duration:.2f} s of video")
    picture, added, track = statistics.median(pictures), statistics.median(locales), statistics.median(tracks)
    return {
        "clip_seconds": clip.duration,
        "picture_seconds": picture,
        "added_locale_seconds": added + track,
        "added_locale_visemes_seconds": track,
        "added_locale_share_of_picture": (added + track) / picture,
    }


def diffusion_results(names: list[str], runs: int, folder: Path, signer: ClipSigner) -> dict[str, Any]:
    """The tests' tiny random-weight LTX pipeline, saved and loaded like a real model folder, per profile."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from reelfork.generation.render.diffusion import DiffusionRenderer

    from tests.helpers.tiny_ltx import TINY, build_tiny_ltx

    build_tiny_ltx(folder / "model")
    renderer = DiffusionRenderer(folder / "model", threads=1, signer=signer)
    results: dict[str, Any] = {}
    for name in names:
        profile = TINY if name == TINY.name else PROFILES[name]
        print(f"tiny diffusion, profile {name}:")
        result = measure(renderer, profile.model_copy(update={"device": "cpu", "dtype": "float32"}), runs, folder)
        result["torch_threads"] = torch.get_num_threads()
        report(f"tiny diffusion {name}", result, torch.get_num_threads())
        results[name] = result
    return results


def tiny_models(folder: Path) -> tuple[Path, Path]:
    """The tests' tiny video and text-to-image pipelines, saved once in ``folder``."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from tests.helpers.tiny_ltx import build_tiny_ltx
    from tests.helpers.tiny_pixart import build_tiny_pixart

    video, stills = folder / "model", folder / "stills"
    if not video.exists():
        build_tiny_ltx(video)
    if not stills.exists():
        build_tiny_pixart(stills)
    return video, stills


def fast_cpu() -> RenderProfile:
    return PROFILES["fast"].model_copy(update={"device": "cpu", "dtype": "float32"})


def referenced_result(runs: int, folder: Path, signer: ClipSigner) -> dict[str, Any]:
    """The tiny diffusion pipeline at ``fast``, each clip conditioned on portraits and a plate (made once, before)."""
    import torch
    from reelfork.generation.render.diffusion import DiffusionRenderer
    from reelfork.generation.render.stills import DiffusersPortraitist, ReferenceShelf

    video, stills = tiny_models(folder)
    shelf = ReferenceShelf(folder / "references", DiffusersPortraitist(stills, device="cpu"), signer=signer)
    started = time.perf_counter()
    references = shelf.references(SCENE, BIBLE)
    made = time.perf_counter() - started
    renderer = DiffusionRenderer(video, threads=1, signer=signer)
    renderer.pipeline(fast_cpu())  # loaded before timing: the plain fast figure already counts a load
    print("tiny diffusion, profile fast, conditioned on references:")
    measured: list[Run] = []
    for run in range(runs):
        output = folder / f"fast-references{run}.mp4"
        request = RenderRequest(scene=SCENE, bible=BIBLE, profile=fast_cpu(), output=output, references=references)
        start = time.perf_counter()
        clip, stages = renderer.render_measured(request)
        measured.append(Run(time.perf_counter() - start, clip.duration, stages))
    seconds = statistics.median(run.render_seconds for run in measured)
    clip_seconds = statistics.median(run.clip_seconds for run in measured)
    print(
        f"tiny diffusion fast+references: median {seconds:.2f} s to render {clip_seconds:.2f} s, real-time factor "
        f"{seconds / clip_seconds:.3f}; {len(references.portraits)} portraits and a plate made once in {made:.2f} s "
        f"(576x1024, {torch.get_num_threads()} thread)"
    )
    return {
        "profile": fast_cpu().model_dump(),
        "runs": [asdict(run) for run in measured],
        "median_render_seconds": seconds,
        "clip_seconds": clip_seconds,
        "real_time_factor": seconds / clip_seconds,
        "references_seconds": made,
    }


def reencode(picture: Path, output: Path) -> None:
    """Decode every frame of ``picture`` and encode it again as the renderers do: a mouth pass's floor."""
    from reelfork.generation.render.encoding import Encoder

    with av.open(str(picture)) as source:
        stream = source.streams.video[0]
        fps = round(float(stream.average_rate or 24))
        with Encoder(output, stream.width, stream.height, fps, audio=False) as encoder:
            for frame in source.decode(stream):
                encoder.write_frame(np.asarray(frame.to_ndarray(format="yuv420p"), dtype=np.uint8))


def locale_results(locale: str, folder: Path, signer: ClipSigner) -> dict[str, Any]:
    """What one more locale costs once a scene's shared picture is rendered, against the picture's render."""
    import yaml
    from reelfork.generation.render.diffusion import DiffusionRenderer
    from reelfork.generation.render.dub import LineVoices, assemble, line_slots, picture_request
    from reelfork.generation.render.stills import DiffusersPortraitist, ReferenceShelf
    from reelfork.generation.render.voice import EspeakSynthesizer
    from reelfork.narrative.story import Story

    story = Story.model_validate(yaml.safe_load((ROOT / "narrative" / "stories" / "last-ferry.yaml").read_text()))
    scene = story.scene("heiress")
    slots = line_slots(story, scene, LineVoices(EspeakSynthesizer()))
    video, stills = tiny_models(folder)
    shelf = ReferenceShelf(folder / "references", DiffusersPortraitist(stills, device="cpu"), signer=signer)
    diffusion = DiffusionRenderer(video, threads=1, signer=signer)
    diffusion.pipeline(fast_cpu())  # loaded before timing: a worker loads it once
    renderers: dict[str, tuple[MeasuredRenderer, RenderProfile]] = {
        "animatic": (AnimaticRenderer(threads=1, signer=signer), PROFILES["animatic"]),
        "diffusion_fast": (diffusion, fast_cpu()),
    }
    results: dict[str, Any] = {"scene": scene.id, "locale": locale}
    for name, (renderer, profile) in renderers.items():
        picture = folder / f"locale-picture-{name}.mp4"
        request = picture_request(story, scene, None, profile, slots, picture)
        if name != "animatic":
            request = request.model_copy(update={"references": shelf.references(request.scene, request.bible)})
        started = time.perf_counter()
        renderer.render_measured(request)
        render_seconds = time.perf_counter() - started
        voices = LineVoices(EspeakSynthesizer())  # cold: this locale's speech is synthesised here
        started = time.perf_counter()
        assemble(picture, story, scene, locale, "Mara", slots, voices, folder / f"locale-{name}.mp4", signer)
        assembly = time.perf_counter() - started
        started = time.perf_counter()
        reencode(picture, folder / f"locale-{name}-reencoded.mp4")
        reencoding = time.perf_counter() - started
        cost = assembly + reencoding
        results[name] = {
            "profile": profile.name,
            "picture_render_seconds": render_seconds,
            "voice_and_assembly_seconds": assembly,
            "reencode_seconds": reencoding,
            "locale_seconds": cost,
            "share_of_render": cost / render_seconds,
        }
        print(
            f"one more locale ({locale}) on the {name} picture of {scene.id}: {cost:.2f} s (voice + assembly "
            f"{assembly:.2f} s, re-encode {reencoding:.2f} s) = {cost / render_seconds:.1%} of its "
            f"{render_seconds:.2f} s render" + (" (target <= 10%)" if name != "animatic" else "")
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", default="animatic", choices=sorted(PROFILES))
    parser.add_argument("--diffusion", default="tiny,fast", help="profiles for the tiny diffusion model, or ''")
    parser.add_argument("--diffusion-runs", type=int, default=1)
    parser.add_argument("--locale", default="zh", help="the locale added to a rendered scene, or '' to skip")
    arguments = parser.parse_args()

    pinned = pin_to_one_core()
    with tempfile.TemporaryDirectory(prefix="reelfork-bench-") as name:
        folder = Path(name)
        signer = ClipSigner.development(folder / "c2pa")
        print(f"animatic, profile {arguments.profile} ({pinned}, 1 thread):")
        result = measure(
            AnimaticRenderer(threads=1, signer=signer), PROFILES[arguments.profile], arguments.runs, folder
        )
        report("animatic", result, 1)
        print(f"adding a locale to the rendered scene (profile {arguments.profile}):")
        lips = added_locale(arguments.runs, folder, signer, PROFILES[arguments.profile])
        names = [name for name in arguments.diffusion.split(",") if name]
        diffusion = diffusion_results(names, arguments.diffusion_runs, folder, signer) if names else {}
        if "fast" in names:
            diffusion["fast+references"] = referenced_result(arguments.diffusion_runs, folder, signer)
        locale = locale_results(arguments.locale, folder, signer) if arguments.locale else {}

    lipsync: dict[str, Any] = {"real_time_factor": result["real_time_factor"], "target": 0.25, "locale": lips}
    print(
        f"lip-sync on: animatic real-time factor {result['real_time_factor']:.3f} (target <= 0.25); one more locale "
        f"{lips['added_locale_seconds']:.2f} s = {lips['added_locale_share_of_picture']:.0%} of the picture's "
        f"{lips['picture_seconds']:.2f} s render"
    )
    if "fast" in diffusion:
        share = lips["added_locale_seconds"] / diffusion["fast"]["median_render_seconds"]
        lipsync["added_locale_share_of_diffusion_fast"] = share
        print(f"  and {share:.1%} of the tiny diffusion pipeline's render at fast (target <= 10%)")

    result |= {
        "lines": len(SCENE.lines),
        "threads": 1,
        "diffusion": diffusion,
        "locale": locale,
        "lipsync": lipsync,
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
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
