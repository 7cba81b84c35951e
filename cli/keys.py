"""`keys create`, `keys list` and `keys revoke`: API keys, stored hashed; a secret is shown once."""

from __future__ import annotations

from typing import Annotated

import typer

from continuum.cli.context import store
from continuum.cli.errors import NotFound, Usage
from continuum.cli.render import Json, emit, table
from continuum.runtime.settings import load_settings

keys = typer.Typer(no_args_is_help=True, help="API keys (stored hashed; a secret is shown once).")


@keys.command("create")
def keys_create(
    role: Annotated[
        str, typer.Option(help="director, clinician, lab, partner, auditor, admin or utilization_reviewer.")
    ],
    name: Annotated[str, typer.Option(help="A name for the key's holder (an id, not a person's name).")],
    subject: Annotated[str | None, typer.Option(help="The lab or partner id a lab or partner key speaks for.")] = None,
    facility: Annotated[
        list[str] | None,
        typer.Option("--facility", help="A facility the key is scoped to (repeat for several; none: the operator)."),
    ] = None,
    secret_only: Annotated[
        bool, typer.Option("--secret-only", help="Print only the secret (for a shell variable).")
    ] = False,
    as_json: Json = False,
) -> None:
    """Create a key and print its secret (shown this once)."""
    from continuum.access import ApiKeyStore, Role
    from continuum.domain.ids import staff_id

    try:
        chosen = Role(role)
    except ValueError:
        raise Usage(f"--role: {role!r} is not one of {', '.join(r.value for r in Role)}") from None
    staff_id(name)
    if chosen in (Role.LAB, Role.PARTNER) and not subject:
        raise Usage(f"--subject: a {role} key names the {role} it speaks for")
    known = load_settings().facilities()
    unknown = [f for f in facility or [] if known.get(f) is None]
    if unknown:
        raise Usage(f"--facility: {unknown[0]!r} is not a facility (known: {', '.join(known.ids)})")
    with store() as opened:
        key, secret = ApiKeyStore(opened.engine).create(name, chosen, subject, facility or None)
    if secret_only:
        typer.echo(secret)
        return
    scope = sorted(key.facilities) if key.facilities is not None else None
    emit(
        {"key_id": key.key_id, "role": key.role.value, "name": key.name, "facilities": scope, "secret": secret},
        as_json,
        f"key {key.key_id} ({key.role.value}, {key.name}, {', '.join(scope or ['every facility'])})\nsecret {secret}\n"
        "Store it now; it is not shown again.",
    )


@keys.command("list")
def keys_list(as_json: Json = False) -> None:
    """Every key, with its role and whether it is revoked (never the secrets)."""
    from continuum.access import ApiKeyStore

    with store() as opened:
        rows = [
            {**vars(k), "role": k.role.value, "facilities": sorted(k.facilities) if k.facilities is not None else None}
            for k in ApiKeyStore(opened.engine).list()
        ]
    columns = ["key_id", "name", "role", "subject", "facilities", "created_at", "revoked_at"]
    emit(rows, as_json, table(rows, columns))


@keys.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key at once."""
    from continuum.access import ApiKeyStore

    with store() as opened:
        if not ApiKeyStore(opened.engine).revoke(key_id):
            raise NotFound(f"no active key {key_id}")
    typer.echo(f"revoked {key_id}")
