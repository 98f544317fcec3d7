"""docker/: the images and the compose file agree with the code they run.

No Docker daemon here (nor in CI), so the images are not built; what can drift without one is
checked against the real objects: every service's environment validates as ``Settings`` (which
rejects a variable that names no setting), every ``reelfork`` command parses with the CLI, the
ports line up, the files the images copy exist, and the images pin what ``scripts/dev`` pins.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from packaging.specifiers import SpecifierSet
from reelfork.server.cli import app
from reelfork.server.queue.jobs import JOB_KINDS
from reelfork.server.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
DOCKERFILES = sorted(DOCKER.glob("Dockerfile*"))
# Compose interpolation: ${NAME:-default} (or ${NAME-default}), else ${NAME} or ${NAME:?error}, which
# the operator sets.
PIN = re.compile(r'"([\w.-]+)==([\w.*-]+)"')
"""A quoted ``name==version`` requirement, as pip is given it in scripts/dev and the Dockerfiles."""
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*)|:?\?[^}]*)?\}")


def reelfork_services() -> dict[str, dict[str, Any]]:
    """The services built from this repository: they run the ``reelfork`` entry point."""
    return {name: service for name, service in COMPOSE["services"].items() if "build" in service}


def dockerfile_of(service: dict[str, Any]) -> Path:
    return ROOT / str(service["build"]["dockerfile"])


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    steps = [line.partition(" ") for line in lines]
    return [(instruction.upper(), arguments.strip()) for instruction, _, arguments in steps]


def image_env(dockerfile: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, arguments in instructions(dockerfile):
        if instruction == "ENV":
            env.update(pair.partition("=")[::2] for pair in shlex.split(arguments))
    return env


def settings_of(
    service: dict[str, Any], monkeypatch: pytest.MonkeyPatch, operator: dict[str, str] | None = None
) -> Settings:
    """The settings a container of ``service`` starts with: its image's ENV, then its environment, as
    compose fills it in from the ``operator``'s shell."""
    shell = operator or {}

    def fill(match: re.Match[str]) -> str:
        return shell.get(match.group(1)) or match.group(2) or "set-by-the-operator"

    env = {**image_env(dockerfile_of(service)), **service.get("environment", {})}
    for name, value in env.items():
        if name.startswith(PREFIX):  # the others (NVIDIA_*, HF_HUB_OFFLINE) are not reelfork's
            monkeypatch.setenv(name, INTERPOLATION.sub(fill, str(value)))
    return Settings()


def parse_command(arguments: list[str]) -> Any:
    """``arguments`` parsed as ``reelfork``'s would be (nothing runs): the subcommand's context (a Click
    context of the Click that typer bundles)."""
    group: Any = typer.main.get_command(app)
    parent = group.context_class(group, info_name="reelfork")
    name, *rest = arguments
    command = group.get_command(parent, name)
    assert command is not None, f"reelfork has no command {name!r}"
    return command.make_context(name, rest, parent=parent)


@pytest.mark.parametrize("name", sorted(reelfork_services()))
def test_every_service_starts_with_valid_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_of(reelfork_services()[name], monkeypatch)
    assert settings.redis_url == "redis://redis:6379/0", "every process must share the compose file's Redis"


@pytest.mark.parametrize("name", sorted(reelfork_services()))
def test_every_service_command_is_a_reelfork_command(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    service = reelfork_services()[name]
    context = parse_command(service["command"])
    settings = settings_of(service, monkeypatch)
    if context.info_name == "worker":
        kinds = {kind.strip() for kind in context.params["kinds"].split(",")}
        assert kinds <= set(JOB_KINDS), f"unknown job kinds {sorted(kinds - set(JOB_KINDS))}"
        if "diffuse" in kinds:
            assert settings.render_model_dir is not None, "a diffuse worker needs REELFORK_RENDER_MODEL_DIR"
        if settings.metrics_port is not None:
            assert str(settings.metrics_port) in service["expose"]
    else:
        assert context.info_name == "serve"
        assert str(settings.port) in service["expose"]


def test_the_balancer_and_the_healthcheck_reach_the_servers_port(monkeypatch: pytest.MonkeyPatch) -> None:
    server = COMPOSE["services"]["server"]
    port = settings_of(server, monkeypatch).port
    assert f"http://server:{port}" in (DOCKER / "nginx.conf").read_text()
    assert f"127.0.0.1:{port}/healthz" in " ".join(server["healthcheck"]["test"])


def test_writers_run_with_the_default_writer_or_ask_vllm_for_its_model(monkeypatch: pytest.MonkeyPatch) -> None:
    worker = COMPOSE["services"]["worker"]
    assert settings_of(worker, monkeypatch).writer == "llama-cpp", "without the gpu profile there is no vLLM"
    settings = settings_of(worker, monkeypatch, operator={"REELFORK_WRITER": "openai"})  # with --profile gpu
    assert settings.writer == "openai"
    vllm = COMPOSE["services"]["vllm"]["command"]
    assert vllm[vllm.index("--served-model-name") + 1] == settings.writer_model
    assert settings.writer_url == f"http://vllm:{vllm[vllm.index('--port') + 1]}/v1"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_images_copy_files_that_exist_and_run_a_supported_python(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    for instruction, arguments in steps:
        if instruction == "COPY":
            for source in shlex.split(arguments)[:-1]:
                assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source}: no such file in the repository"
    base = next(arguments for instruction, arguments in steps if instruction == "FROM")
    version = re.fullmatch(r"python:(\d+\.\d+)[-\w.]*", base)
    assert version, f"{dockerfile.name}: FROM {base}: use an official python image, whose version is checked here"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    python = version.group(1)
    assert SpecifierSet(requires).contains(python), f"{dockerfile.name}: python {python}; the project: {requires}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_images_pin_what_the_setup_script_pins(dockerfile: Path) -> None:
    pins = dict(PIN.findall((ROOT / "scripts" / "dev").read_text()))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in [*project["dependencies"], *project["optional-dependencies"]["diffusion"]]:
        name, _, version = requirement.partition("==")
        if version:
            pins[name.split("[")[0]] = version
    for instruction, arguments in instructions(dockerfile):
        if instruction == "RUN":
            for name, version in PIN.findall(arguments):
                assert pins.get(name) == version, f"{dockerfile.name}: {name}=={version}; the project: {pins.get(name)}"
