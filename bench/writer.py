"""Benchmark of the embedded scene writer (SmolLM2-135M via llama-cpp-python, CPU).

Usage:
    . .venv/bin/activate
    PYTHONPATH=. python bench/writer.py [STORY.yaml|STORY.json] [--requests 50] [--threads 2]

Without a story argument it uses the first ``narrative/stories/*.yaml`` if there is one,
else the small night-shift story (:mod:`reelfork.generation.writer.sample`). It builds ``--requests``
open-node write requests (every choice of every scene, authored choices turned into open ones with their label as hint,
repeated with new seeds; every other round must end), writes each scene, and prints:
share valid at first try, share served valid, p50/p99 latency per scene, generation
tokens/s, mean shared-prefix ratio among sibling prompts, and the prompt-evaluation
speedup from cache reuse (cold vs warm same-prefix prompt, and after another story
evicted the context, restored from the RAM cache). Results go to bench/results/writer.json.
Takes about 4-6 minutes for 50 requests on 2 idle cores; on a busy machine use ``--threads 1`` and bound the
run with ``--budget-s`` (``--attempts 1`` measures first-try validity alone, three times as many requests).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from itertools import combinations
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reelfork.generation.writer import prompts  # noqa: E402
from reelfork.generation.writer.llama import LlamaCppWriter  # noqa: E402
from reelfork.generation.writer.report import WriteFailed, WriteReport  # noqa: E402
from reelfork.generation.writer.request import WriteRequest  # noqa: E402
from reelfork.generation.writer.sample import NIGHT_SHIFT  # noqa: E402
from reelfork.narrative.story import Choice, OpenNode, Scene, Story  # noqa: E402


def load_story(argument: str | None) -> tuple[Story, str]:
    if argument is None:
        found = sorted((ROOT / "narrative" / "stories").glob("*.yaml"))
        if not found:
            return NIGHT_SHIFT, "built-in (night-shift)"
        argument = str(found[0])
    path = Path(argument)
    text = path.read_text()
    if path.suffix in {".yaml", ".yml"}:
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    return Story.model_validate(data), str(path)


def paths(story: Story) -> dict[str, list[Scene]]:
    """The shortest path from the start to every reachable scene, following authored targets."""
    found = {story.start: [story.scene(story.start)]}
    queue = [story.start]
    while queue:
        scene = story.scene(queue.pop(0))
        for choice in scene.choices:
            if choice.target is not None and choice.target not in found and choice.target in story.scene_index():
                found[choice.target] = [*found[scene.id], story.scene(choice.target)]
                queue.append(choice.target)
    return found


def open_version(choice: Choice) -> Choice:
    if choice.open is not None:
        return choice
    return Choice(id=choice.id, label=choice.label, open=OpenNode(hint=choice.label))


def build_requests(story: Story, count: int) -> list[WriteRequest]:
    pairs = [(path, open_version(choice)) for path in paths(story).values() for choice in path[-1].choices]
    if not pairs:
        raise SystemExit("the story has no choices to write scenes for")
    requests: list[WriteRequest] = []
    round_ = 0
    while len(requests) < count:
        for path, choice in pairs:
            if len(requests) == count:
                break
            requests.append(
                WriteRequest(
                    story=story,
                    path=path,
                    choice=choice,
                    scene_id=f"bench-{len(requests):03d}",
                    must_end=round_ % 2 == 1,
                    seed=1000 * round_ + len(requests),
                )
            )
        round_ += 1
    return requests


def reason(problem: str) -> str:
    """A check's message without the place's index and the quoted text: one key per kind of rejection
    (``lines[].text: a template placeholder '…' is left in the text``)."""
    kind = re.sub(r"\[\d+\]", "[]", re.split(r": ['\"]", problem)[0])
    return re.sub(r"'\{[^}]*\}'|'[^' ]*'", "'…'", kind)[:100]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def prefix_ratio(writer: LlamaCppWriter, requests: list[WriteRequest]) -> float:
    """Mean over sibling pairs (same parent scene and ending flag) of shared prompt tokens / longer prompt."""
    groups: dict[tuple[str, bool], list[list[int]]] = {}
    for request in requests:
        key = (request.path[-1].id, request.must_end)
        if len(groups.get(key, [])) < 3:
            tokens = writer.tokenize(prompts.chatml(prompts.build_messages(request)))
            groups.setdefault(key, []).append(tokens)
    ratios: list[float] = []
    for group in groups.values():
        for a, b in combinations(group, 2):
            shared = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            ratios.append(shared / max(len(a), len(b)))
    return statistics.fmean(ratios) if ratios else 0.0


def cache_speedup(writer: LlamaCppWriter, requests: list[WriteRequest]) -> dict[str, float]:
    """Prompt evaluation of one prompt cold, then of a sibling (warm context), then after another story."""
    first, sibling = (
        requests[0],
        next(
            (
                r
                for r in requests[1:]
                if r.path[-1].id == requests[0].path[-1].id and r.choice.id != requests[0].choice.id
            ),
            requests[0],
        ),
    )
    text_a = prompts.chatml(prompts.build_messages(first))
    text_b = prompts.chatml(prompts.build_messages(sibling))
    logline = "A courier in a desert town carries a letter nobody may open."
    bible = NIGHT_SHIFT.bible.model_copy(update={"logline": logline})
    other = NIGHT_SHIFT.model_copy(update={"id": "other", "title": "Another Story", "bible": bible})
    other_request = first.model_copy(update={"story": other})
    text_other = prompts.chatml(prompts.build_messages(other_request))
    _, cold_a = writer.evaluate_prompt(text_a, cold=True)
    _, cold_b = writer.evaluate_prompt(text_b, cold=True)
    writer.evaluate_prompt(text_a, cold=True)
    warm_tokens, warm_b = writer.evaluate_prompt(text_b)
    writer.evaluate_prompt(text_other)  # evicts the context; the RAM cache still holds text_b's state
    restored_tokens, restored_b = writer.evaluate_prompt(text_b)
    return {
        "cold_seconds": round(cold_b, 4),
        "warm_sibling_seconds": round(warm_b, 4),
        "warm_sibling_tokens_evaluated": warm_tokens,
        "warm_speedup": round(cold_b / warm_b, 2),
        "after_other_story_seconds": round(restored_b, 4),
        "after_other_story_tokens_evaluated": restored_tokens,
        "after_other_story_speedup": round(cold_b / restored_b, 2),
        "cold_first_seconds": round(cold_a, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("story", nargs="?", help="story YAML or JSON file")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="1 on a machine whose cores are busy: llama.cpp's "
                        "threads wait for each other, and a descheduled one slows every token tenfold")
    parser.add_argument("--attempts", type=int, default=3, help="attempts per request (the server's default: 3)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="stop starting requests after this many seconds and report the ones done")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "writer.json"))
    args = parser.parse_args()

    story, source = load_story(args.story)
    requests = build_requests(story, args.requests)
    writer = LlamaCppWriter(n_threads=args.threads, max_attempts=args.attempts)
    writer.load()

    reports: list[WriteReport] = []
    served = 0
    started = time.perf_counter()
    for index, request in enumerate(requests):
        if args.budget_s is not None and time.perf_counter() - started > args.budget_s:
            print(f"time budget of {args.budget_s:g} s spent: {index} of {len(requests)} requests done", flush=True)
            requests = requests[:index]
            break
        try:
            written = writer.write_reported(request)
            reports.append(written.report)
            served += 1
        except WriteFailed as failure:
            reports.append(failure.report)
        report = reports[-1]
        print(
            f"{index + 1:3d}/{len(requests)} {request.scene_id} end={request.must_end!s:5} "
            f"attempts={len(report.attempts)} ok={report.accepted!s:5} {report.seconds:5.2f}s",
            flush=True,
        )
    wall = time.perf_counter() - started

    latencies = [r.seconds for r in reports]
    attempts = [a for r in reports for a in r.attempts]
    generation_seconds = sum(a.generation_seconds for a in attempts if a.generation_seconds > 0)
    completion_tokens = sum(a.completion_tokens for a in attempts)
    problems: dict[str, int] = {}
    for attempt in attempts:
        for problem in attempt.problems:
            problems[reason(problem)] = problems.get(reason(problem), 0) + 1
    results: dict[str, Any] = {
        "story": source,
        "model": writer.model_path.name,
        "threads": args.threads,
        "requests": len(requests),
        "max_attempts": args.attempts,
        "valid_first_try": round(sum(r.attempts[0].accepted for r in reports) / len(reports), 3),
        "served_valid": round(served / len(reports), 3),
        "mean_attempts": round(len(attempts) / len(reports), 2),
        "latency_p50_seconds": round(percentile(latencies, 0.5), 3),
        "latency_p99_seconds": round(percentile(latencies, 0.99), 3),
        "generation_tokens_per_second": round(completion_tokens / generation_seconds, 1) if generation_seconds else 0,
        "end_to_end_tokens_per_second": round(completion_tokens / sum(a.seconds for a in attempts), 1),
        "mean_completion_tokens": round(completion_tokens / len(attempts), 1),
        "mean_sibling_prefix_ratio": round(prefix_ratio(writer, requests), 3),
        "prompt_cache": cache_speedup(writer, requests),
        "wall_seconds": round(wall, 1),
        "problem_counts": dict(sorted(problems.items(), key=lambda kv: -kv[1])),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    for key, value in results.items():
        print(f"{key}: {value}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
