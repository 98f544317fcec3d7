"""Locales and authored translation tables: keys, validation, and the CSV round trip."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from reelfork.narrative.graph import validate
from reelfork.narrative.locales import export_csv, import_csv, localized, text_keys
from reelfork.narrative.problems import StoryError
from reelfork.narrative.story import Story
from reelfork.server.cli import app
from typer.testing import CliRunner

from tests.helpers.stories import choice, scene, story

SEED = Path(__file__).parents[2] / "narrative" / "stories" / "last-ferry.yaml"


def seed() -> Story:
    return Story.model_validate(yaml.safe_load(SEED.read_text(encoding="utf-8")))


def small(**extra: Any) -> dict[str, Any]:
    first = scene("a", choice("go", "b"))
    first["lines"] = [{"id": "l1", "speaker": "ann", "text": "Hello, \"friend\", come in."}]
    return {**story(first, scene("b")), "locales": ["en", "es"], **extra}


def test_text_keys_name_titles_lines_and_choices() -> None:
    keys = text_keys(Story.model_validate(small()))
    assert list(keys)[:3] == ["a/title", "a/line:l1", "a/choice:go"]


def test_seed_tables_cover_every_authored_text() -> None:
    story_ = seed()
    assert story_.offered_locales() == ["en", "es", "zh"]
    keys = set(text_keys(story_))
    for locale in ("es", "zh"):
        assert set(story_.translations[locale]) == keys
        for scene_ in story_.scenes:
            assert localized(story_, scene_, locale)[1] == ()
    chinese = localized(story_, story_.scene("heiress"), "zh")[0]
    assert chinese.lines[0].text.startswith("{name}") and "我" in chinese.lines[0].text
    assert chinese.lines[0].id == "l1"


def test_unknown_key_and_undeclared_locale_are_located_errors() -> None:
    data = small(translations={"es": {"a/line:l9": "Hola."}, "fr": {"a/title": "Salut"}})
    found = {(p.where, p.severity) for p in validate(Story.model_validate(data))}
    assert ("translations[es][a/line:l9]", "error") in found
    assert ("translations[fr]", "error") in found


def test_bad_placeholder_in_a_translation_is_an_error() -> None:
    data = small(translations={"es": {"a/line:l1": "Hola, {nombre}."}})
    assert [p.where for p in validate(Story.model_validate(data))] == ["translations[es][a/line:l1]"]


def test_own_language_must_be_offered() -> None:
    assert [p.where for p in validate(Story.model_validate(small(locales=["es"])))] == ["locales"]


def test_csv_round_trip_keeps_every_text() -> None:
    original = seed()
    for locale in ("es", "zh"):
        text = export_csv(original, locale)
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [row["id"] for row in rows] == list(text_keys(original))
        assert all(row["source"] == text_keys(original)[row["id"]] for row in rows)
        emptied = original.model_copy(update={"translations": {}})
        assert import_csv(emptied, locale, text).translations[locale] == original.translations[locale]


def test_csv_with_quotes_commas_and_newlines_round_trips() -> None:
    source = Story.model_validate(small(translations={"es": {"a/line:l1": "Hola, \"amigo\",\nentra."}}))
    back = import_csv(source.model_copy(update={"translations": {}}), "es", export_csv(source, "es"))
    assert back.translations == source.translations


def test_empty_cells_are_untranslated() -> None:
    source = Story.model_validate(small())
    back = import_csv(source, "es", "id,text,source\na/title,Título,A\na/line:l1,,Hello\n")
    assert back.translations == {"es": {"a/title": "Título"}}
    assert localized(back, back.scene("a"), "es")[1] == ("a/line:l1", "a/choice:go")


def test_csv_import_errors_are_located_and_change_nothing() -> None:
    source = Story.model_validate(small())
    with pytest.raises(StoryError) as caught:
        import_csv(source, "es", "id,text\na/title,Uno\nzz/title,Dos\na/title,Tres\n")
    assert [p.where for p in caught.value.problems] == ["csv:3", "csv:4"]
    with pytest.raises(StoryError, match="missing column"):
        import_csv(source, "es", "key,value\n")
    with pytest.raises(StoryError, match="not in the story's locales"):
        import_csv(source, "de", "id,text\n")


def test_cli_strings_export_then_import(tmp_path: Path) -> None:
    runner = CliRunner()
    table = tmp_path / "zh.csv"
    exported = runner.invoke(app, ["story", "strings", "export", str(SEED), "--locale", "zh", "-o", str(table)])
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(io.StringIO(table.read_text(encoding="utf-8"))))
    assert rows[0] == {"id": "boarding/title", "text": "末班渡轮", "source": "The Last Ferry"}
    table.write_text(table.read_text(encoding="utf-8").replace("末班渡轮", "最后一班渡轮"), encoding="utf-8")
    out = tmp_path / "story.yaml"
    command = ["story", "strings", "import", str(SEED), str(table), "--locale", "zh", "-o", str(out)]
    imported = runner.invoke(app, command)
    assert imported.exit_code == 0, imported.output
    again = Story.model_validate(yaml.safe_load(out.read_text(encoding="utf-8")))
    assert again.translations["zh"]["boarding/title"] == "最后一班渡轮"
    assert again.translations["es"] == seed().translations["es"]


def test_cli_strings_import_lists_located_problems(tmp_path: Path) -> None:
    table = tmp_path / "es.csv"
    table.write_text("id,text,source\nboarding/line:l9,Hola,\n", encoding="utf-8")
    out = tmp_path / "story.yaml"
    result = CliRunner().invoke(
        app, ["story", "strings", "import", str(SEED), str(table), "--locale", "es", "-o", str(out)]
    )
    assert result.exit_code == 1
    assert "es.csv:2: 'boarding/line:l9' names no scene title, line or choice" in result.output
    assert not out.exists()
    unknown = CliRunner().invoke(app, ["story", "strings", "export", str(SEED), "--locale", "fr"])
    assert unknown.exit_code == 2 and "does not offer locale 'fr'" in unknown.output
