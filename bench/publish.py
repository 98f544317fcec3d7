"""Publishing a large story while the server answers ``/healthz``: is the event loop free meanwhile?

Run against a running server (``scripts/dev serve`` or ``reelfork serve``):

    .venv/bin/python -m bench.publish --url http://127.0.0.1:8000 --token CREATOR_TOKEN --scenes 100000

Publishes a generated story of ``--scenes`` scenes (100,000 compact scenes is about 9.7 MB, inside the
10 MB limit; one scene in ten is reachable, so validation warns about the other nine) while polling
``/healthz`` back to back, and prints the publish time, the response size and the ``/healthz`` latency
max/p99/median during the publish (target: every poll under 100 ms), then the same while it GETs the story,
its graph and the story list. A first phase polls with nothing in flight: on a machine busy with other work,
that is the latency the server gets anyway. Writes ``bench/results/publish.json``.
A story already published answers 200 at once: use a fresh data dir or ``--title`` to time a real publish.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).resolve().parent / "results"
HEALTHZ_TARGET_S = 0.1
IDLE_S = 5.0


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
class Polled:
    """A request timed while ``/healthz`` was polled back to back on another connection."""

    status: int
    body: bytes
    seconds: float
    healthz: list[tuple[float, float]] = field(default_factory=list)
    """``(seconds since the request began, latency)`` of each ``/healthz`` answered while it was in flight."""

    def latencies(self) -> list[float]:
        return [latency for _, latency in self.healthz] or [0.0]

    def figures(self, name: str) -> dict[str, Any]:
        polls = sorted(self.latencies())
        slowest = sorted(self.healthz, key=lambda poll: -poll[1])[:3]
        return {
            f"{name}_status": self.status,
            f"{name}_s": round(self.seconds, 3),
            f"{name}_answer_bytes": len(self.body),
            f"{name}_healthz_polls": len(self.healthz),
            f"{name}_healthz_max_ms": round(polls[-1] * 1000, 1),
            f"{name}_healthz_p99_ms": round(polls[min(len(polls) - 1, int(len(polls) * 0.99))] * 1000, 1),
            f"{name}_healthz_median_ms": round(statistics.median(polls) * 1000, 1),
            f"{name}_healthz_slowest_at_s": [round(at, 2) for at, _ in slowest],
        }


def while_polling(url: str, request: Callable[[httpx.Client], httpx.Response]) -> Polled:
    """Send ``request`` from a thread and poll ``/healthz`` back to back until it answers.

    Separate connections and threads: the request never delays a poll on the client's side."""
    with httpx.Client(base_url=url, timeout=300) as client, httpx.Client(base_url=url, timeout=60) as poller:
        poller.get("/healthz").raise_for_status()  # connected before the request starts
        with ThreadPoolExecutor(max_workers=1) as thread:
            began = time.perf_counter()
            answer = thread.submit(request, client)
            polls: list[tuple[float, float]] = []
            while not answer.done():
                asked = time.perf_counter()
                health = poller.get("/healthz")
                if not answer.done():
                    health.raise_for_status()
                    polls.append((asked - began, time.perf_counter() - asked))
                time.sleep(0.01)
            response = answer.result()
            seconds = time.perf_counter() - began
    return Polled(response.status_code, response.content, seconds, polls)


def publish(url: str, token: str, body: bytes) -> Polled:
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    return while_polling(url, lambda client: client.post("/v1/stories", content=body, headers=headers))


def idle(url: str, seconds: float) -> Polled:
    """Nothing in flight for ``seconds``: the ``/healthz`` latency the machine gives anyway (its other load)."""

    def wait(client: httpx.Client) -> httpx.Response:
        time.sleep(seconds)
        return client.get("/healthz")

    return while_polling(url, wait)


def read(url: str, path: str) -> Polled:
    """GET ``path`` (a story, its graph, the list) on a fresh connection while polling."""
    return while_polling(url, lambda client: client.get(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True, help="the creator token (DATA_DIR/creator-token)")
    parser.add_argument("--scenes", type=int, default=100_000)
    parser.add_argument("--title", default=f"Large {int(time.time())}", help="a new title publishes a new version")
    args = parser.parse_args()
    body = large_story(args.scenes, args.title)
    baseline = idle(args.url, IDLE_S)
    print(healthz_line(f"{IDLE_S:g} s with nothing in flight", baseline.figures("idle"), "idle"))
    published = publish(args.url, args.token, body)
    answer = json.loads(published.body)
    report: dict[str, Any] = {"scenes": args.scenes, "story_bytes": len(body)}
    report |= baseline.figures("idle")
    report |= {"warnings_total": answer.get("warnings_total")} | published.figures("publish")
    print(f"published {args.scenes:,} scenes ({len(body) / 1e6:.1f} MB): {published.status} "
          f"in {published.seconds:.2f} s, answer {len(published.body):,} bytes, {report['warnings_total']} warnings")
    print(healthz_line("the publish", report, "publish"))
    version = answer.get("version")
    reads = {
        "get": f"/v1/stories/large?version={version}",
        "graph": f"/v1/stories/large/graph?version={version}",
        "list": "/v1/stories",
    }
    for name, path in reads.items():
        polled = read(args.url, path)
        report |= polled.figures(name)
        print(f"GET {path}: {polled.status} in {polled.seconds:.2f} s, {len(polled.body):,} bytes")
        print(healthz_line(f"GET {name}", report, name))
    report |= {"healthz_target_ms": HEALTHZ_TARGET_S * 1000, "python": platform.python_version(),
               "machine": platform.machine()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "publish.json").write_text(json.dumps(report, indent=2) + "\n")


def healthz_line(during: str, report: dict[str, Any], name: str) -> str:
    figure = {key.removeprefix(f"{name}_healthz_"): value for key, value in report.items()}
    return (f"  /healthz during {during}: {figure['polls']} polls, max {figure['max_ms']} ms, "
            f"p99 {figure['p99_ms']} ms, median {figure['median_ms']} ms (slowest at {figure['slowest_at_s']} s; "
            f"target: every poll under {HEALTHZ_TARGET_S * 1000:g} ms)")


if __name__ == "__main__":
    main()
