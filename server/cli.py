"""The ``reelfork`` command."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import uvicorn
import yaml
from pydantic import ValidationError
from reelfork.narrative.export import to_dot, to_mermaid
from reelfork.narrative.formats import StoryError, kind_of, load_story, read_story
from reelfork.narrative.graph import validate
from reelfork.narrative.problems import Problem, errors
from reelfork.narrative.schema import schema_text
from reelfork.narrative.story import Story
from reelfork.server.settings import Settings

StoryFile = Annotated[
    Path,
    typer.Argument(exists=True, dir_okay=False, readable=True, help="A .yaml/.yml/.json story, .twee/.tw or .yarn"),
]

app = typer.Typer(help="reelfork: interactive, AI-generated microdramas.", no_args_is_help=True)
story_app = typer.Typer(help="Check and convert story files.", no_args_is_help=True)
app.add_typer(story_app, name="story")
strings_app = typer.Typer(
    help="A locale's translation table as CSV (id, text, source), for translators' tools.", no_args_is_help=True
)
story_app.add_typer(strings_app, name="strings")
Locale = Annotated[str, typer.Option("--locale", "-l", help="A locale the story offers, e.g. es")]


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for problem in exc.errors():
            field = ".".join(str(part) for part in problem["loc"])
            if field:
                typer.echo(f"configuration error: REELFORK_{field.upper()}: {problem['msg']}", err=True)
            else:  # a model validator's: the message names the variables itself
                typer.echo(f"configuration error: {problem.get('ctx', {}).get('error', problem['msg'])}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Overrides REELFORK_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides REELFORK_PORT.")] = None,
) -> None:
    """Run the server: API, play websocket, web player, and (by default) an in-process worker."""
    from reelfork.server.runtime import creator_token
    from reelfork.server.web.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = _settings().model_copy(update=overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token, created = creator_token(settings)
    shown_host = "127.0.0.1" if settings.host in {"0.0.0.0", "::"} else settings.host
    typer.echo(f"reelfork web player: http://{shown_host}:{settings.port}/", err=False)
    if created:
        typer.echo(f"creator token (saved in {settings.data_dir / 'creator-token'}): {token}")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ws_max_size=settings.max_message_bytes,
        log_level="info",
        # On SIGTERM, open connections (a viewer waiting for a clip, a media download) get this long to
        # finish; then the workers stop and a render cut short comes back to the queue from its lease.
        timeout_graceful_shutdown=5,
    )


KINDS_HELP = (
    "Job kinds to take, comma-separated: render (animatic clips), diffuse (diffusion clips: a GPU and "
    "REELFORK_RENDER_MODEL_DIR), write, produce."
)


@app.command()
def worker(
    kinds: Annotated[str, typer.Option(help=KINDS_HELP)] = (
        "render,write,produce"
    ),
    processes: Annotated[int, typer.Option(min=1, max=64, help="Processes per kind.")] = 1,
) -> None:
    """Run a worker host: takes write, render, diffuse and produce jobs from the shared Redis (REELFORK_REDIS_URL)."""
    import asyncio

    from reelfork.server.queue.jobs import JOB_KINDS
    from reelfork.server.runtime import run_workers

    chosen = tuple(k for k in JOB_KINDS if k in {part.strip() for part in kinds.split(",")})
    unknown = {part.strip() for part in kinds.split(",")} - set(JOB_KINDS)
    if unknown or not chosen:
        typer.echo(f"unknown job kinds {sorted(unknown)}; use {', '.join(JOB_KINDS)}", err=True)
        raise typer.Exit(2)
    settings = _settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run_workers(settings, chosen, processes))
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass


@app.command()
def produce(
    source: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True,
            help="A premise (YAML/JSON: title, bible, places, episodes) or a linear story (any story format)",
        ),
    ],
    locales: Annotated[str, typer.Option(help="Comma-separated locales to dub and subtitle, e.g. en,es,zh")] = "en",
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Output folder; default data_dir/productions/<title>")
    ] = None,
    profile: Annotated[str, typer.Option(help="Render profile: animatic, preview, full or fast")] = "animatic",
) -> None:
    """Produce a linear series: draft it (from a premise), translate, render, dub, subtitle, label, package.

    Run the same command again after an interruption: finished work is reused, not redone.
    Exit status: 0 produced, 1 the input or the run failed (the message says why), 2 usage error.
    """
    from reelfork.generation.production.pipeline import Production, ProductionError, check_locales
    from reelfork.generation.render.profiles import PROFILES
    from reelfork.narrative.ids import slug
    from reelfork.server.productions import PRODUCTIONS, components, options, parse_source

    settings = _settings()
    if "writer_threads" not in settings.model_fields_set:
        # The stages run one after another here, so the writer may use every core (serve shares them).
        settings = settings.model_copy(update={"writer_threads": min(4, os.cpu_count() or 1)})
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        parsed = parse_source(source.read_text(encoding="utf-8", errors="replace"), source.name)
        chosen_locales = check_locales([part for part in locales.split(",")])
        chosen = options(settings, profile)
        folder = out or settings.data_dir / PRODUCTIONS / slug(parsed.title)
        with _RichProgress() as progress:
            production = Production(
                folder, chosen.cache, components(chosen, profile), PROFILES[profile], chosen_locales, progress
            )
            story, premise = (parsed, None) if isinstance(parsed, Story) else (None, parsed)
            manifest = production.run(story=story, premise=premise)
    except ProductionError as error:
        typer.echo(f"production failed: {error}", err=True)
        raise typer.Exit(1) from None
    counters = manifest["counters"]
    typer.echo(
        f"{folder / 'manifest.json'}: {len(manifest['episodes'])} episodes, {manifest['duration_s']:.0f} s, "
        f"locales {','.join(manifest['locales'])}; scenes rendered {counters['rendered']}, "
        f"reused {counters['renders_reused']}; drafted {counters['drafted']}, reused {counters['drafts_reused']}"
    )
    for locale, missing in manifest["untranslated"].items():
        typer.echo(
            f"warning: {missing['count']} texts in {locale} kept their source text: the writer's model could not "
            f"translate them (see manifest.json 'untranslated'; a stronger model: REELFORK_WRITER=openai)",
            err=True,
        )


class _RichProgress:
    """A bar per stage, drawn by rich on the terminal (plain lines when output is not a terminal)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bars = Progress(
            TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _RichProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def stage(self, name: str, total: int) -> None:
        if name in self.tasks:
            self.bars.update(self.tasks[name], total=total, completed=0)
        else:
            self.tasks[name] = self.bars.add_task(name, total=total, note="")

    def advance(self, name: str, done: int = 1, note: str = "") -> None:
        if name not in self.tasks:
            self.stage(name, 0)
        self.bars.update(self.tasks[name], advance=done, note=note[:60])


@story_app.command("validate")
def validate_story(file: StoryFile) -> None:
    """Check a story file (the project's YAML/JSON, Twee 3 or Yarn). Exit status: 0 valid, 1 invalid, 2 usage error."""
    story, warnings = _read(file, check=True)
    for warning in warnings:
        typer.echo(str(warning), err=True)
    typer.echo(f"{file.name}: story {story.id!r} is valid ({len(story.scenes)} scenes, {len(warnings)} warnings)")


@story_app.command("import")
def import_story(
    file: StoryFile,
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write: .yaml/.yml or .json", dir_okay=False)],
) -> None:
    """Convert Twee 3 or Yarn into the project's format, listing every dropped feature.

    The file is written even when the imported graph has errors (a link to a missing passage), so
    it can be fixed by hand; the exit status is then 1.
    """
    if out.suffix.lower() not in {".yaml", ".yml", ".json"}:
        _usage(f"cannot write {out.suffix or 'a file without extension'!r}: use .yaml, .yml or .json")
    story, warnings = _read(file)
    data = story.model_dump(mode="json")
    text = (json.dumps(data, indent=2, ensure_ascii=False) + "\n" if out.suffix.lower() == ".json"
            else yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110))
    out.write_text(text, encoding="utf-8")
    problems = [*warnings, *validate(story)]
    for problem in problems:
        typer.echo(str(problem), err=True)
    typer.echo(f"{out}: {len(story.scenes)} scenes from {file.name} ({len(problems)} findings)")
    if errors(problems):
        raise typer.Exit(1)


@story_app.command("graph")
def graph_story(
    file: StoryFile,
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write: .svg, .dot or .mmd", dir_okay=False)],
) -> None:
    """Draw the story graph as Graphviz DOT, Mermaid, or SVG (SVG needs Graphviz's `dot`)."""
    suffix = out.suffix.lower()
    if suffix not in {".svg", ".dot", ".gv", ".mmd"}:
        _usage(f"cannot draw {suffix or 'a file without extension'!r}: use .svg, .dot or .mmd")
    dot_binary = shutil.which("dot")
    if suffix == ".svg" and dot_binary is None:
        _usage("SVG needs Graphviz's 'dot', which is not installed: 'apt-get install graphviz' (Debian/Ubuntu) "
               "or 'brew install graphviz'; or write .dot or .mmd instead")
    story, warnings = _read(file)
    if suffix == ".mmd":
        out.write_text(to_mermaid(story), encoding="utf-8")
    elif suffix == ".svg" and dot_binary is not None:
        done = subprocess.run([dot_binary, "-Tsvg", "-o", str(out)], input=to_dot(story), text=True,
                              capture_output=True, check=False, timeout=120)
        if done.returncode != 0:
            typer.echo(f"dot failed: {done.stderr.strip()}", err=True)
            raise typer.Exit(1)
    else:
        out.write_text(to_dot(story), encoding="utf-8")
    for problem in [*warnings, *validate(story)]:
        typer.echo(str(problem), err=True)
    typer.echo(f"{out}: {len(story.scenes)} scenes")


@story_app.command("schema")
def story_schema(
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Write here instead of printing")] = None,
) -> None:
    """Print (or write) the JSON Schema of story files, for editors' autocompletion."""
    if out is None:
        typer.echo(schema_text(), nl=False)
    else:
        out.write_text(schema_text(), encoding="utf-8")


@strings_app.command("export")
def export_strings(
    file: StoryFile,
    locale: Locale,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="CSV file; standard output if absent")] = None,
) -> None:
    """Write the locale's table: every text key, its translation (empty when missing) and the source text."""
    from reelfork.narrative.locales import export_csv

    story, _ = _read(file)
    if locale not in story.offered_locales():
        _usage(f"story {story.id!r} does not offer locale {locale!r}; it offers {', '.join(story.offered_locales())}")
    text = export_csv(story, locale)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"{out}: {text.count(chr(10)) - 1} texts of {story.id!r} in {locale}", err=True)


@strings_app.command("import")
def import_strings(
    file: StoryFile,
    table: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The CSV to import")],
    locale: Locale,
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write the story: .yaml/.yml or .json")],
) -> None:
    """Replace the locale's table with the CSV's translations and write the story; exit 1 listing each problem."""
    from reelfork.narrative.locales import import_csv

    if out.suffix.lower() not in {".yaml", ".yml", ".json"}:
        _usage(f"cannot write {out.suffix or 'a file without extension'!r}: use .yaml, .yml or .json")
    story, _ = _read(file)
    try:
        updated = import_csv(story, locale, table.read_text(encoding="utf-8-sig"))
    except StoryError as exc:
        for problem in exc.problems:
            typer.echo(str(problem).replace("csv:", f"{table.name}:", 1), err=True)
        raise typer.Exit(1) from None
    data = updated.model_dump(mode="json")
    text = (json.dumps(data, indent=2, ensure_ascii=False) + "\n" if out.suffix.lower() == ".json"
            else yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110))
    out.write_text(text, encoding="utf-8")
    typer.echo(f"{out}: {len(updated.translations.get(locale, {}))} texts in {locale}")


def _read(file: Path, *, check: bool = False) -> tuple[Story, list[Problem]]:
    """Parse or import a story file (and with ``check``, validate it); on errors exit 1 listing each one."""
    try:
        kind = kind_of(file.name)
    except StoryError as exc:
        _usage(exc.problems[0].message)
    try:
        return (load_story if check else read_story)(file.read_bytes(), source=file.name, kind=kind)
    except StoryError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None


def _usage(message: str) -> NoReturn:
    typer.echo(f"usage error: {message}", err=True)
    raise typer.Exit(2)


def main() -> None:
    app()
