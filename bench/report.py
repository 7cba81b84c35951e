"""`python3 dev.py bench report`: bench/results/REPORT.md from the JSON results of the last runs."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    lines = [
        "# Continuum benchmark results",
        "",
        "Written by `python3 dev.py bench report` from the JSON files beside it. Each section gives the",
        "command that produced it; numbers are from one run on the machine named.",
        "",
    ]
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        lines += [
            f"## {data.get('benchmark', path.stem)}",
            "",
            f"`{data.get('command', '')}`  ",
            f"{data.get('machine', '')}",
            "",
        ]
        lines += ["| measure | value |", "|---|---|"]
        for key, value in data.items():
            if key in ("benchmark", "command", "machine"):
                continue
            if isinstance(value, dict):
                for inner, figure in value.items():
                    lines.append(f"| {key}.{inner} | {_figure(figure)} |")
            else:
                lines.append(f"| {key} | {_figure(value)} |")
        lines.append("")
    (RESULTS / "REPORT.md").write_text("\n".join(lines))
    print(f"written: {RESULTS / 'REPORT.md'}")


def _figure(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_figure(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
