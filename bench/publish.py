"""Publishing a large story while the server answers ``/healthz``: is the event loop free meanwhile?

Run against a running server (``scripts/dev serve`` or ``reelfork serve``):

    .venv/bin/python -m bench.publish --url http://127.0.0.1:8000 --token CREATOR_TOKEN --scenes 100000

Publishes a generated story of ``--scenes`` scenes (100,000 compact scenes is about 9.7 MB, inside the
10 MB limit; one scene in ten is reachable, so validation warns about the other nine) while polling
``/healthz`` back to back, and prints the publish time, the response size and the ``/healthz`` latency
max/median during the publish (target: every poll under 100 ms). Writes ``bench/results/publish.json``.
A story already published answers 200 at once: use a fresh data dir or ``--title`` to time a real publish.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).resolve().parent / "results"
HEALTHZ_TARGET_S = 0.1


def large_story(scenes: int, title: str = "Large", every: int = 10) -> bytes:
    """Compact JSON of a valid story: scene ``i`` is reachable when ``i % every == 0`` (a chain), the rest
    are unreachable endings (one warning each)."""
    items: list[dict[str, Any]] = []
    for index in range(scenes):
        line = {"speaker": "ann", "text": "L"}
        scene: dict[str, Any] = {"id": f"s{index}", "title": "T", "place": "P", "lines": [line]}
        if index % every or index + every >= scenes:
            scene["ending"] = True
        else:
            scene["choices"] = [{"id": "c", "label": "Go", "target": f"s{index + every}"}]
        items.append(scene)
    bible = {"logline": "A large story.", "setting": "Corridors.", "tone": "Flat.",
             "characters": [{"id": "ann", "name": "Ann", "look": "Ann."}]}
    story = {"id": "large", "title": title, "bible": bible, "start": "s0", "scenes": items}
    return json.dumps(story, separators=(",", ":")).encode()


@dataclass
class Publish:
    status: int
    answer: dict[str, Any]
    answer_bytes: int
    seconds: float
    healthz_s: list[float] = field(default_factory=list)
    """Each ``/healthz`` answer's latency while the publish was in flight."""


def publish_while_polling(url: str, token: str, body: bytes) -> Publish:
    """POST ``body`` to ``/v1/stories`` from a thread and poll ``/healthz`` back to back until it answers.

    Separate connections and threads: the upload never delays a poll on the client's side."""
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    with httpx.Client(base_url=url, timeout=300) as uploader, httpx.Client(base_url=url, timeout=60) as poller:
        poller.get("/healthz").raise_for_status()  # connected before the publish starts
        with ThreadPoolExecutor(max_workers=1) as thread:
            began = time.perf_counter()
            publish = thread.submit(uploader.post, "/v1/stories", content=body, headers=headers)
            latencies: list[float] = []
            while not publish.done():
                asked = time.perf_counter()
                health = poller.get("/healthz")
                if not publish.done():
                    health.raise_for_status()
                    latencies.append(time.perf_counter() - asked)
                time.sleep(0.01)
            answer = publish.result()
            seconds = time.perf_counter() - began
    return Publish(answer.status_code, answer.json(), len(answer.content), seconds, latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True, help="the creator token (DATA_DIR/creator-token)")
    parser.add_argument("--scenes", type=int, default=100_000)
    parser.add_argument("--title", default=f"Large {int(time.time())}", help="a new title publishes a new version")
    args = parser.parse_args()
    body = large_story(args.scenes, args.title)
    result = publish_while_polling(args.url, args.token, body)
    polls = result.healthz_s or [0.0]
    report = {
        "scenes": args.scenes,
        "story_bytes": len(body),
        "status": result.status,
        "publish_s": round(result.seconds, 3),
        "answer_bytes": result.answer_bytes,
        "warnings_total": result.answer.get("warnings_total"),
        "healthz_polls": len(result.healthz_s),
        "healthz_max_ms": round(max(polls) * 1000, 1),
        "healthz_median_ms": round(statistics.median(polls) * 1000, 1),
        "healthz_target_ms": HEALTHZ_TARGET_S * 1000,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(f"published {args.scenes:,} scenes ({len(body) / 1e6:.1f} MB): {result.status} in {result.seconds:.2f} s, "
          f"answer {result.answer_bytes:,} bytes, {report['warnings_total']} warnings")
    print(f"/healthz during the publish: {len(result.healthz_s)} polls, max {report['healthz_max_ms']} ms, "
          f"median {report['healthz_median_ms']} ms (target: every poll under {report['healthz_target_ms']:g} ms)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "publish.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
