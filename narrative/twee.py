"""Import Twine's Twee 3 (twine-specs ``twee-3-specification.md``) into the project's format.

Each passage becomes a scene: its prose becomes narrator lines, its links become choices, its tags
survive as scene tags, and a passage without links is an ending. ``StoryTitle`` names the story and
``StoryData``'s ``start`` picks the first scene (else a passage named ``Start``, else the first one).

Links: ``[[Target]]``, ``[[text->Target]]`` (rightmost arrow), ``[[Target<-text]]`` (leftmost arrow),
``[[text|Target]]``. A link inside a sentence leaves its text in the line; a line of links only is
dropped from the prose. Headers may escape ``[ ] { } \\`` with a backslash.

Story-format code has no equivalent and is dropped with a warning each time: SugarCube ``<<macros>>``,
Harlowe ``(macros:)`` (a hook's text is kept, unconditionally), setter links, HTML markup, script
and stylesheet passages. Variables printed in text stay as written, with a warning.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from reelfork.narrative.ids import Namer
from reelfork.narrative.importing import MAX_CHOICES, MAX_LABEL, MAX_LINES, Draft, located
from reelfork.narrative.problems import Problem
from reelfork.narrative.story import NARRATOR, Story

CODE_TAGS = {"script", "stylesheet", "widget", "Twine.private"}
SPECIAL = {
    "StoryInit", "StoryMenu", "StoryCaption", "StoryBanner", "StorySubtitle", "StoryAuthor", "StoryShare",
    "PassageReady", "PassageDone", "PassageHeader", "PassageFooter", "StoryInterface",
}
"""SugarCube's special passages: code and chrome, not scenes."""

LINK = re.compile(r"\[\[((?:\\.|[^\]\\]|\](?!\]))*)\]\]")
ESCAPE = re.compile(r"\\(.)")
SUGARCUBE = re.compile(r"<<(/?[A-Za-z=-][\w-]*)[^>]*?>>")
HARLOWE = re.compile(r"\(([A-Za-z][\w-]*):")
HTML = re.compile(r"</?[A-Za-z][^<>]*>")
VARIABLE = re.compile(r"(?<![\w$])[$_][A-Za-z]\w*")


@dataclass
class Passage:
    name: str
    tags: list[str]
    line: int
    body: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Link:
    text: str
    target: str
    line: int = field(default=0, compare=False)


def import_twee(text: str, *, source: str = "story.twee") -> tuple[Story, list[Problem]]:
    """A story and the warnings of everything dropped; a malformed file raises a located :class:`StoryError`."""
    draft = Draft(source=source, kind="Twee")
    passages = _passages(text.splitlines(), draft)
    story_data: dict[str, Any] = {}
    scenes: list[Passage] = []
    for passage in passages:
        if passage.name == "StoryTitle":
            draft.title = "\n".join(passage.body).strip()
        elif passage.name == "StoryData":
            story_data = _story_data(passage, source)
        elif passage.name in SPECIAL or CODE_TAGS.intersection(passage.tags):
            draft.warn(passage.line, f"passage {passage.name!r} is story-format code or chrome; dropped")
        else:
            scenes.append(passage)
    for passage in scenes:
        draft.scene_ids(passage.name)
    names = {passage.name for passage in scenes}
    for passage in scenes:
        draft.scenes.append(_scene(passage, names, draft))
    draft.start = _start(story_data, scenes, draft)
    return draft.story(), draft.warnings


def _passages(lines: list[str], draft: Draft) -> list[Passage]:
    passages: list[Passage] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if line.startswith("::"):
            passage = _header(line[2:], number, draft)
            if passage.name in seen:
                raise located(draft.source, number,
                              f"passage {passage.name!r} is defined twice (first at line {seen[passage.name]})")
            seen[passage.name] = number
            passages.append(passage)
        elif passages:
            passages[-1].body.append(line)
        elif line.strip():
            draft.warn(number, "text before the first ':: passage' header is ignored")
    if not passages:
        raise located(draft.source, 1, "no passages: a Twee file needs ':: Name' passage headers")
    return passages


def _header(text: str, number: int, draft: Draft) -> Passage:
    """``Name [tag1 tag2] {"position":"600,400"}`` with backslash escapes in the name and tags."""
    name, rest = _unescape_until(text, "[{", number, draft.source)
    name = name.strip()
    if not name:
        raise located(draft.source, number, "a passage header needs a name after '::'")
    tags: list[str] = []
    rest = rest.lstrip()
    if rest.startswith("["):
        tag_text, rest = _unescape_until(rest[1:], "]", number, draft.source)
        if not rest.startswith("]"):
            raise located(draft.source, number, "the tag block '[' of this passage header is not closed with ']'")
        tags = tag_text.split()
        rest = rest[1:].lstrip()
    if rest.startswith("{"):
        try:
            json.loads(rest)
        except json.JSONDecodeError as exc:
            draft.warn(number, f"passage metadata is not valid JSON ({exc.msg}); ignored")
    elif rest:
        raise located(draft.source, number, f"unexpected {rest[:20]!r} after the passage name and tags")
    return Passage(name=name, tags=tags, line=number)


def _unescape_until(text: str, stops: str, number: int, source: str) -> tuple[str, str]:
    """Text up to the first unescaped character of ``stops``, unescaped; and the rest from that character."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            if index + 1 >= len(text):
                raise located(source, number, "a backslash at the end of a passage header escapes nothing")
            out.append(text[index + 1])
            index += 2
            continue
        if char in stops:
            return "".join(out), text[index:]
        out.append(char)
        index += 1
    return "".join(out), ""


def _story_data(passage: Passage, source: str) -> dict[str, Any]:
    text = "\n".join(passage.body) if any(line.strip() for line in passage.body) else "{}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise located(source, passage.line + exc.lineno, f"StoryData is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise located(source, passage.line + 1, "StoryData must be a JSON object like {\"start\": \"Start\"}")
    return data


def _start(story_data: dict[str, Any], scenes: list[Passage], draft: Draft) -> str:
    names = {passage.name for passage in scenes}
    start = story_data.get("start")
    if start is not None:
        if not isinstance(start, str) or start not in names:
            raise located(draft.source, 1, f"StoryData's start passage {start!r} does not exist")
        return draft.scene_ids(start)
    if not scenes:
        raise located(draft.source, 1, "no story passages: only StoryTitle, StoryData or code passages")
    chosen = "Start" if "Start" in names else scenes[0].name
    draft.warn(scenes[0].line, f"StoryData names no start passage; starting at {chosen!r}")
    return draft.scene_ids(chosen)


def _scene(passage: Passage, names: set[str], draft: Draft) -> dict[str, Any]:
    lines: list[dict[str, Any]] = []
    links: list[Link] = []
    for offset, raw in enumerate(passage.body, start=1):
        number = passage.line + offset
        prose, found = _line(raw, number, draft)
        links.extend(found)
        if prose:
            lines.append(draft.line(NARRATOR, prose, number))
    if len(lines) > MAX_LINES:
        draft.warn(passage.line, f"passage {passage.name!r} has {len(lines)} lines; only {MAX_LINES} were kept")
        lines = lines[:MAX_LINES]
    if not lines:
        lines = [draft.line(NARRATOR, passage.name, passage.line)]
    title = draft.fit(passage.name, MAX_LABEL, passage.line, "a passage name")
    scene: dict[str, Any] = {
        "id": draft.scene_ids(passage.name), "title": title, "place": title, "lines": lines,
        "choices": _choices(passage, links, names, draft), "tags": passage.tags,
    }
    scene["ending"] = not scene["choices"]
    return scene


def _choices(passage: Passage, links: list[Link], names: set[str], draft: Draft) -> list[dict[str, Any]]:
    unique = list(dict.fromkeys(links))
    if len(unique) > MAX_CHOICES:
        dropped = ", ".join(repr(link.target) for link in unique[MAX_CHOICES:])
        draft.warn(passage.line, f"passage {passage.name!r} has {len(unique)} links; a scene offers at most "
                                 f"{MAX_CHOICES} choices, so the links to {dropped} were dropped")
        unique = unique[:MAX_CHOICES]
    for link in unique:
        if link.target not in names:
            draft.fail(link.line, f"link [[{link.text}]] in passage {passage.name!r} goes to passage {link.target!r}, "
                                  "which does not exist")
    choice_ids = Namer("choice")
    return [
        {"id": choice_ids.fresh(link.text), "label": draft.fit(link.text, MAX_LABEL, passage.line, "a link's text"),
         "target": draft.scene_ids(link.target)}
        for link in unique
    ]


def _line(raw: str, number: int, draft: Draft) -> tuple[str, list[Link]]:
    """One line of passage text without story-format code, and the links in it."""
    if raw.count("[[") > len(LINK.findall(raw)):
        raise located(draft.source, number, "a link '[[' is not closed with ']]' on the same line")
    text = _strip_code(raw, number, draft)
    links: list[Link] = []
    for match in LINK.finditer(text):
        link = _link(match.group(1), number, draft)
        if link is not None:
            links.append(link)
    only_links = not LINK.sub("", text).strip(" \t.,;:-|")
    prose = "" if only_links else LINK.sub(lambda m: _display(m.group(1)), text)
    prose = " ".join(prose.split())
    if prose and VARIABLE.search(prose):
        draft.warn(number, "variables printed in text are kept as written; the format has no interpolation")
    return prose, links


def _strip_code(text: str, number: int, draft: Draft) -> str:
    for match in SUGARCUBE.finditer(text):
        draft.warn(number, f"SugarCube macro <<{match.group(1)}>> dropped: story-format code is not imported")
    text = SUGARCUBE.sub("", text)
    while (macro := HARLOWE.search(text)) is not None:
        end = _closing(text, macro.start())
        draft.warn(number, f"Harlowe macro ({macro.group(1)}:) dropped; any hook's text is kept unconditionally")
        after = text[end:]
        if after.startswith("[") and not after.startswith("[["):
            close = after.find("]")
            after = after[1:close] + after[close + 1:] if close >= 0 else after
        text = text[: macro.start()] + after
    if HTML.search(text):
        draft.warn(number, "HTML markup removed")
        text = HTML.sub("", text)
    return text


def _closing(text: str, start: int) -> int:
    """The index after the parenthesis that closes the one at ``start`` (or the end of the text)."""
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index + 1
    return len(text)


def _link(inner: str, number: int, draft: Draft) -> Link | None:
    if "][" in inner:
        inner, setter = inner.split("][", 1)
        draft.warn(number, f"the setter [{setter}] of link [[{inner}]] was dropped")
    text, target = (ESCAPE.sub(r"\1", part).strip() for part in _parts(inner))
    if not target:
        draft.warn(number, f"link [[{inner}]] has no target; dropped")
        return None
    return Link(text or target, target, number)


def _parts(inner: str) -> tuple[str, str]:
    """(display text, target) of a link's inside: ``text->Target``, ``Target<-text``, ``text|Target``."""
    if "->" in inner:
        text, target = inner.rsplit("->", 1)
        return text, target
    if "<-" in inner:
        target, text = inner.split("<-", 1)
        return text, target
    if "|" in inner:
        text, target = inner.split("|", 1)
        return text, target
    return inner, inner


def _display(inner: str) -> str:
    return ESCAPE.sub(r"\1", _parts(inner.split("][", 1)[0])[0]).strip()
