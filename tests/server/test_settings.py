"""Configuration: ``REELFORK_*`` variables are checked strictly, and ``reelfork`` says what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from reelfork.server.cli import app
from reelfork.server.settings import Settings
from typer.testing import CliRunner


def test_a_misspelt_variable_is_an_error_that_names_the_setting_meant(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REELFORK_REDIS_ULR", "redis://fleet:6379/0")
    monkeypatch.setenv("reelfork_zzz", "1")
    with pytest.raises(ValidationError) as raised:
        Settings(data_dir=tmp_path)
    assert (  # every unknown variable in one error, as pydantic-settings reads them: in any case
        "REELFORK_REDIS_ULR is not a setting (did you mean REELFORK_REDIS_URL?); reelfork_zzz is not a setting"
        in str(raised.value)
    )
    monkeypatch.delenv("REELFORK_REDIS_ULR")
    monkeypatch.delenv("reelfork_zzz")
    monkeypatch.setenv("REELFORK_REDIS_URL", "redis://fleet:6379/0")
    assert Settings(data_dir=tmp_path).redis_url == "redis://fleet:6379/0"


@pytest.mark.parametrize("command", [["serve"], ["worker"]])
def test_reelfork_prints_each_configuration_error_and_starts_nothing(command: list[str], tmp_path: Path) -> None:
    env = {"REELFORK_DATA_DIR": str(tmp_path), "REELFORK_PORT": "eighty"}
    result = CliRunner().invoke(app, command, env=env)
    assert result.exit_code == 2
    assert "configuration error: REELFORK_PORT: Input should be a valid integer" in result.output
    result = CliRunner().invoke(app, command, env={**env, "REELFORK_PORT": "8000", "REELFORK_WRITER": "openai"})
    assert result.exit_code == 2
    assert "configuration error: REELFORK_WRITER=openai needs REELFORK_WRITER_URL" in result.output
    result = CliRunner().invoke(app, command, env={**env, "REELFORK_PORT": "8000", "REELFORK_WORKER_KINDS": "write"})
    assert result.exit_code == 2
    assert "configuration error: REELFORK_WORKER_KINDS is not a setting" in result.output
    assert not list(tmp_path.iterdir()), "nothing may be started or written before the settings are valid"


def test_gpu_billing_names_how_the_fleet_is_paid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).gpu_billing == "reserved"
    monkeypatch.setenv("REELFORK_GPU_BILLING", "metered")
    assert Settings(data_dir=tmp_path).gpu_billing == "metered"
    monkeypatch.setenv("REELFORK_GPU_BILLING", "hourly")
    with pytest.raises(ValidationError) as raised:
        Settings(data_dir=tmp_path)
    assert "gpu_billing" in str(raised.value) and "'reserved' or 'metered'" in str(raised.value)
