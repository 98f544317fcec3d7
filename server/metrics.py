"""Prometheus metrics: what operators watch to know whether viewers wait."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

REGISTRY = CollectorRegistry()

CHOICE_LATENCY = Histogram(
    "reelfork_choice_to_scene_seconds",
    "From a viewer's choose message to the scene message sent back.",
    buckets=(0.005, 0.01, 0.02, 0.042, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 60),
    registry=REGISTRY,
)
SCENES = Counter(
    "reelfork_scenes_total",
    "Scenes presented to viewers, by whether the clip was ready (in the best profile, or degraded).",
    ["clip"],
    registry=REGISTRY,
)
STALLS = Counter("reelfork_stalls_total", "Scenes presented without a ready clip: the viewer waits.", registry=REGISTRY)
DEADLINES_MISSED = Counter(
    "reelfork_deadlines_missed_total", "Jobs finished after the time a viewer needed them.", ["kind"], registry=REGISTRY
)
CONTENT_REJECTIONS = Counter(
    "reelfork_content_rejections_total",
    "Generated texts the content policy rejected before anyone saw them.",
    registry=REGISTRY,
)
JOB_SECONDS = Histogram(
    "reelfork_job_seconds",
    "Time to run a job, by kind and outcome.",
    ["kind", "outcome"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320),
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge("reelfork_queue_jobs", "Jobs waiting, running or retrying.", ["kind", "state"], registry=REGISTRY)
SESSIONS = Gauge("reelfork_connections", "Open play websockets on this server.", registry=REGISTRY)


def render(depth: dict[str, int]) -> bytes:
    """The text exposition, with queue depths read just now (they live in Redis, shared by all replicas)."""
    for name, value in depth.items():
        kind, _, state = name.partition(":")
        QUEUE_DEPTH.labels(kind=kind, state=state).set(value)
    return generate_latest(REGISTRY)


def serve(host: str, port: int) -> None:
    """Serve the metrics over HTTP from a thread: for a worker host, which has no web server of its own."""
    try:
        start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as error:
        raise ValueError(f"cannot serve metrics on {host}:{port} (REELFORK_METRICS_PORT): {error.strerror}") from None
