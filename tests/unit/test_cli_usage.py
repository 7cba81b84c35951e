"""Every usage error of the `continuum` command is one line on stderr and exit 2, and names the program
`continuum` (never `python -m continuum.cli`); none of them starts a server or prints a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from continuum.cli import keys


def _continuum(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"TEMPORAL_ADDRESS", "DATABASE_URL"}}
    env["CONTINUUM_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "continuum.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["census", "--bogus"], "continuum census: no such option: --bogus (see 'continuum census --help')"),
        (["bogus"], "continuum: no such command 'bogus' (see 'continuum --help')"),
        (["episodes", "show"], "continuum episodes show: missing argument 'episode_id'"),
        (["audit", "export", "EP-1", "--format", "xml"], "invalid value for '--format': 'xml' is not one of"),
        (["keys", "create", "dir-2", "--role", "director"], "continuum keys create: missing option '--name'"),
        (["keys", "create", "--role", "janitor", "--name", "x-1"], "continuum: --role: 'janitor' is not one of"),
        (["episodes", "list", "--page", "0"], "invalid value for '--page': Input should be greater than or equal"),
        (["episodes", "list", "--page-size", "201"], "invalid value for '--page-size'"),
    ],
    ids=[
        "unknown-option",
        "unknown-command",
        "missing-argument",
        "bad-choice",
        "positional-name",
        "bad-role",
        "page-zero",
        "page-too-large",
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(args: list[str], says: str, tmp_path: Path) -> None:
    result = _continuum(*args, data_dir=tmp_path)

    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert "Traceback" not in result.stderr and "python -m" not in result.stderr
    assert not (tmp_path / "pgdata").exists()  # refused before anything started


def test_help_names_the_program_continuum(tmp_path: Path) -> None:
    result = _continuum("episodes", "list", "--help", data_dir=tmp_path)

    assert result.returncode == 0
    assert "Usage: continuum episodes list" in " ".join(result.stdout.split())
    assert "python -m" not in result.stdout


def test_the_dashboards_sign_in_hint_is_a_command_that_parses() -> None:
    """The sign-in page tells a director how to make a key: that line is the CLI's own syntax."""
    page = (Path(__file__).resolve().parents[2] / "api" / "templates" / "sign_in.html").read_text()
    hint = re.search(r"<code>continuum keys create ([^<]*)</code>", page)

    assert hint is not None
    create = typer.main.get_group(keys.keys).commands["create"]
    context = create.make_context("continuum keys create", hint.group(1).replace("NAME", "dir-2").split())
    assert context.params["role"] == "director" and context.params["name"] == "dir-2"  # parsed, nothing created


@pytest.mark.parametrize("args", [["census"], ["up"], ["keys", "create", "--role", "director", "--name", "d-1"]])
def test_a_malformed_facilities_file_is_one_line_naming_the_facility_and_key_and_exit_2(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    facilities = tmp_path / "facilities.toml"
    facilities.write_text(
        '[facility.nv-reno]\nname = "Reno"\nlevels = ["residential"]\ncapacity = { residential = 0 }\n'
    )
    monkeypatch.setenv("CONTINUUM_FACILITIES_FILE", str(facilities))
    result = _continuum(*args, data_dir=tmp_path)

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == "continuum: facility nv-reno: capacity.residential must be a positive whole number"
    assert not (tmp_path / "pgdata").exists()  # refused before anything started


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["census", "--facility", "fl-tampa"], "continuum: --facility: 'fl-tampa' is not a facility (known: main)"),
        (
            ["keys", "create", "--role", "director", "--name", "d-1", "--facility", "fl-tampa"],
            "continuum: --facility: 'fl-tampa' is not a facility (known: main)",
        ),
    ],
)
def test_an_unknown_facility_is_a_usage_error(args: list[str], says: str, tmp_path: Path) -> None:
    result = _continuum(*args, data_dir=tmp_path)

    assert result.returncode == 2 and result.stderr.strip() == says
    assert not (tmp_path / "pgdata").exists()
