"""The ``reelfork`` command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from narrative.formats import StoryError, load_story
from server.settings import Settings

app = typer.Typer(help="reelfork: interactive, AI-generated microdramas.", no_args_is_help=True)
story_app = typer.Typer(help="Check and convert story files.", no_args_is_help=True)
app.add_typer(story_app, name="story")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for problem in exc.errors():
            field = ".".join(str(part) for part in problem["loc"])
            typer.echo(f"configuration error: REELFORK_{field.upper()}: {problem['msg']}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Overrides REELFORK_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides REELFORK_PORT.")] = None,
) -> None:
    """Run the server: API, play websocket, web player, and (by default) an in-process worker."""
    from server.app import create_app
    from server.runtime import creator_token

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
    )


@story_app.command("validate")
def validate_story(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]) -> None:
    """Check a story file. Exit status: 0 valid, 1 invalid, 2 usage error."""
    try:
        story, warnings = load_story(file.read_bytes(), source=file.name)
    except StoryError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None
    for warning in warnings:
        typer.echo(str(warning), err=True)
    typer.echo(f"{file.name}: story {story.id!r} is valid ({len(story.scenes)} scenes, {len(warnings)} warnings)")


def main() -> None:
    app()
