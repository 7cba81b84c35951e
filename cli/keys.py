"""`keys create`, `keys list` and `keys revoke`: API keys, stored hashed; a secret is shown once."""

from __future__ import annotations

from typing import Annotated

import typer

from continuum.cli.context import store
from continuum.cli.errors import NotFound, Usage
from continuum.cli.render import Json, emit, table

keys = typer.Typer(no_args_is_help=True, help="API keys (stored hashed; a secret is shown once).")


@keys.command("create")
def keys_create(
    role: Annotated[
        str, typer.Option(help="director, clinician, lab, partner, auditor, admin or utilization_reviewer.")
    ],
    name: Annotated[str, typer.Option(help="A name for the key's holder (an id, not a person's name).")],
    subject: Annotated[str | None, typer.Option(help="The lab or partner id a lab or partner key speaks for.")] = None,
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
    with store() as opened:
        key, secret = ApiKeyStore(opened.engine).create(name, chosen, subject)
    if secret_only:
        typer.echo(secret)
        return
    emit(
        {"key_id": key.key_id, "role": key.role.value, "name": key.name, "secret": secret},
        as_json,
        f"key {key.key_id} ({key.role.value}, {key.name})\nsecret {secret}\nStore it now; it is not shown again.",
    )


@keys.command("list")
def keys_list(as_json: Json = False) -> None:
    """Every key, with its role and whether it is revoked (never the secrets)."""
    from continuum.access import ApiKeyStore

    with store() as opened:
        rows = [{**vars(k), "role": k.role.value} for k in ApiKeyStore(opened.engine).list()]
    emit(rows, as_json, table(rows, ["key_id", "name", "role", "subject", "created_at", "revoked_at"]))


@keys.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key at once."""
    from continuum.access import ApiKeyStore

    with store() as opened:
        if not ApiKeyStore(opened.engine).revoke(key_id):
            raise NotFound(f"no active key {key_id}")
    typer.echo(f"revoked {key_id}")
