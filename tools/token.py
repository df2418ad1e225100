"""``twin token``: a new bearer token for the write API and the hash the service is given."""

from __future__ import annotations

import sys

import click

from server.auth import hash_token, new_token
from twin.errors import InputError


@click.command("token")
@click.option(
    "--hash-stdin",
    is_flag=True,
    help="Print only the hash of a token read from standard input (one line).",
)
def token(hash_stdin: bool) -> None:
    """Make a random bearer token for a planner and print it with its sha256:<hex> hash.

    Give the token to the planner (it is stored nowhere); put the hash into
    TWIN_WRITE_TOKENS (comma-separated) or as a line into the file TWIN_WRITE_TOKENS_FILE.
    """
    if hash_stdin:
        line = sys.stdin.readline().strip()
        if not line:
            raise InputError("standard input: no token; pipe one in (echo TOKEN | twin token "
                             "--hash-stdin) or run `twin token` for a new one")
        click.echo(hash_token(line))
        return
    fresh = new_token()
    click.echo(f"token {fresh}")
    click.echo(f"hash  {hash_token(fresh)}")
    if sys.stdout.isatty():
        click.echo(
            "Give the token to the planner; put the hash into TWIN_WRITE_TOKENS or a line of "
            "TWIN_WRITE_TOKENS_FILE.",
            err=True,
        )
