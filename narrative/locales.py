"""Locales a story offers and its authored translation tables, with CSV import and export.

A table maps text keys to translations. A key names one text a viewer reads or hears:

- ``<scene-id>/title``: the scene's title;
- ``<scene-id>/line:<line-id>``: a line (the same ``scene/line`` pair that names the line's subtitle cue);
- ``<scene-id>/choice:<choice-id>``: a choice's label.

A table's CSV has the columns ``id``, ``text`` (the translation; empty: not translated yet) and
``source`` (the story's own text, for the translator; ignored on import), like Yarn Spinner's
string tables. Everything here is pure: text in, text or a story out.
"""

from __future__ import annotations

import csv
import io

from reelfork.narrative.persona import placeholder_problems
from reelfork.narrative.problems import Problem, StoryError
from reelfork.narrative.story import Scene, Story

__all__ = ["COLUMNS", "export_csv", "import_csv", "locale_problems", "localized", "scene_keys", "text_keys"]

COLUMNS = ("id", "text", "source")


def scene_keys(scene: Scene) -> dict[str, str]:
    """The scene's texts by key, in reading order: title, lines, choice labels."""
    texts = {f"{scene.id}/title": scene.title}
    texts.update({f"{scene.id}/line:{line.id}": line.text for line in scene.lines})
    texts.update({f"{scene.id}/choice:{choice.id}": choice.label for choice in scene.choices})
    return texts


def text_keys(story: Story) -> dict[str, str]:
    """Every authored text of the story by key."""
    texts: dict[str, str] = {}
    for scene in story.scenes:
        texts.update(scene_keys(scene))
    return texts


def localized(story: Story, scene: Scene, locale: str) -> tuple[Scene, tuple[str, ...]]:
    """``scene`` with the authored ``locale`` table applied, and the keys the table lacks (source text kept).

    The story's own language needs no table: nothing is missing."""
    if locale == story.language:
        return scene, ()
    table = story.translations.get(locale, {})
    keys = scene_keys(scene)
    missing = tuple(key for key in keys if key not in table)
    prefix = f"{scene.id}/"
    lines = [line.model_copy(update={"text": table.get(f"{prefix}line:{line.id}", line.text)}) for line in scene.lines]
    choices = [
        choice.model_copy(update={"label": table.get(f"{prefix}choice:{choice.id}", choice.label)})
        for choice in scene.choices
    ]
    title = table.get(f"{prefix}title", scene.title)
    return scene.model_copy(update={"title": title, "lines": lines, "choices": choices}), missing


def locale_problems(story: Story) -> list[Problem]:
    """Located problems of ``locales`` and ``translations``: unknown locales and keys, bad placeholders."""
    problems: list[Problem] = []
    offered = set(story.locales)
    if story.locales and story.language not in offered:
        problems.append(Problem("error", "locales", f"the story's own language {story.language!r} must be offered"))
    if len(offered) != len(story.locales):
        problems.append(Problem("error", "locales", "a locale is listed twice"))
    keys = text_keys(story) if story.translations else {}
    for locale, table in story.translations.items():
        if locale not in offered:
            problems.append(
                Problem("error", f"translations[{locale}]",
                        f"locale {locale!r} is not in 'locales' ({', '.join(story.locales) or 'none declared'})")
            )
        if locale == story.language:
            problems.append(Problem("error", f"translations[{locale}]", "the story's own language needs no table"))
        for key, text in table.items():
            where = f"translations[{locale}][{key}]"
            if key not in keys:
                problems.append(Problem("error", where, "names no scene title, line or choice of this story"))
            problems.extend(Problem("error", where, message)
                            for message in placeholder_problems(text, story.persona is not None))
    return problems


def export_csv(story: Story, locale: str) -> str:
    """The locale's table as CSV: every key of the story, its translation (or empty) and its source text."""
    table = story.translations.get(locale, {})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for key, source in text_keys(story).items():
        writer.writerow((key, table.get(key, ""), source))
    return out.getvalue()


def import_csv(story: Story, locale: str, text: str) -> Story:
    """The story with the locale's table replaced by the CSV's non-empty ``text`` cells.

    Raises :class:`StoryError` with a ``file:line``-style location for a missing column, a duplicate or
    unknown key, or a locale the story does not offer; nothing is changed then."""
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    missing = [column for column in ("id", "text") if column not in fields]
    if missing:
        raise StoryError([Problem("error", "csv:1", f"missing column(s) {', '.join(missing)}; need id, text")])
    keys = text_keys(story)
    table: dict[str, str] = {}
    seen: set[str] = set()
    problems: list[Problem] = []
    if locale not in story.locales:
        offered = ", ".join(story.locales) or "none declared"
        problems.append(Problem("error", "locale", f"locale {locale!r} is not in the story's locales ({offered})"))
    for row in reader:
        where = f"csv:{reader.line_num}"
        key, value = (row.get("id") or "").strip(), (row.get("text") or "").strip()
        if key not in keys:
            problems.append(Problem("error", where, f"{key!r} names no scene title, line or choice of this story"))
        elif key in seen:
            problems.append(Problem("error", where, f"{key!r} appears twice"))
        elif value:
            table[key] = value
            problems.extend(Problem("error", where, message)
                            for message in placeholder_problems(value, story.persona is not None))
        seen.add(key)
    if problems:
        raise StoryError(problems)
    tables = {**story.translations, locale: table}
    return story.model_copy(update={"translations": {k: v for k, v in tables.items() if v}})
