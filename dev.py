#!/usr/bin/env python3
"""Set up and run Continuum on a fresh machine with nothing but Python 3.11+.

    python3 dev.py run     # the main job: the cohort demo on the embedded Temporal and PostgreSQL
    python3 dev.py test    # the whole test suite (what CI runs)
    python3 dev.py check   # the guard rails CI runs first: ruff, ruff format, import-linter, mypy --strict

Both create `.venv/` from `requirements.lock` the first time, and again only when the lock or
`pyproject.toml` changes (a stamp file records the hash of both). Any further arguments are passed on:
`python3 dev.py run -- --help`, `python3 dev.py test -- -k event_store`, `python3 dev.py continuum ...`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".continuum-installed"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _lock_digest() -> str:
    """The lock, pyproject.toml, and the top-level packages (an editable install maps those it saw)."""
    digest = hashlib.sha256()
    for name in ("requirements.lock", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    packages = sorted(p.parent.name for p in ROOT.glob("*/__init__.py"))
    digest.update(" ".join(packages).encode())
    return digest.hexdigest()


def ensure_venv() -> None:
    """Create or refresh the virtual environment so that it matches the lock exactly."""
    if sys.version_info < (3, 11):  # noqa: UP036  (dev.py runs on whatever python3 the machine has)
        sys.exit(f"Continuum needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    wanted = _lock_digest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    if not (BIN / "python").exists():
        print("continuum: creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    print("continuum: installing the locked dependencies (first run only) …", flush=True)
    subprocess.run([*pip, "install", "-r", str(ROOT / "requirements.lock")], check=True)
    subprocess.run([*pip, "install", "--no-deps", "-e", str(ROOT)], check=True)
    STAMP.write_text(wanted + "\n")


def check(paths: list[str]) -> int:
    """Lint, format check, import layers and strict typing; the first failure's output is shown."""
    import tempfile

    failed = 0
    for step in (["ruff", "check", *(paths or ["."])], ["ruff", "format", "--check", *(paths or ["."])]):
        failed |= subprocess.run([str(BIN / step[0]), *step[1:]], cwd=ROOT).returncode
    failed |= subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=ROOT).returncode
    # The repository root is the package `continuum`; mypy finds a package by its folder's name, so it
    # reads the root through a link named `continuum` (and the benchmarks as `bench`, from the root).
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "continuum").symlink_to(ROOT, target_is_directory=True)
        env = {**os.environ, "MYPYPATH": os.pathsep.join([tmp, str(ROOT)])}
        mypy = [str(BIN / "mypy"), "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(VENV / ".mypy")]
        failed |= subprocess.run([*mypy, "-p", "continuum", "-p", "bench"], cwd=tmp, env=env).returncode
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "check", "continuum", "bench", "setup"}:
        print(__doc__.strip())
        return 2
    command, rest = argv[0], [a for a in argv[1:] if a != "--"]
    try:
        ensure_venv()
    except subprocess.CalledProcessError as error:
        print(f"continuum: setting up .venv failed ({error}); see the pip output above.", file=sys.stderr)
        return 1
    python = str(BIN / "python")
    if command == "setup":
        return 0
    if command == "check":
        return check(rest)
    if command == "run":
        args = [python, "-m", "continuum.cli", "demo", *rest]
    elif command == "test":
        args = [python, "-m", "pytest", *rest]
    elif command == "bench":
        args = [python, "-m", "bench", *rest]
    else:
        args = [python, "-m", "continuum.cli", *rest]
    # Become the command (no wrapper process), so Ctrl-C reaches it alone and it can stop the servers in order.
    sys.stdout.flush()
    os.chdir(ROOT)
    os.execv(args[0], args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
