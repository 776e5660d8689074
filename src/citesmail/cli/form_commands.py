"""`citesmail forms`: the sign-up form to paste into the organisation's website."""

from __future__ import annotations

import click

from . import State, main, pass_state


@main.group()
def forms() -> None:
    """Sign-up forms served by citesmail serve at [unsubscribe] base_url/s/LIST."""


@forms.command("snippet")
@click.argument("lists", nargs=-1, required=True)
@pass_state
def snippet(state: State, lists: tuple[str, ...]) -> None:
    """Print an HTML sign-up form for the public LISTS (the first one ticked), posting
    to citesmail serve; add the site to [subscribe] allowed_origins."""
    from ..audience.lists import get_list
    from ..errors import CitesmailError
    from ..web.signup import form_snippet

    with state.db.session(write=False) as session:
        found = [get_list(session, name) for name in dict.fromkeys(lists)]
    private = [chosen.name for chosen in found if not chosen.public]
    if private:
        raise CitesmailError(f"list {', '.join(private)} is private: forms offer public "
                             "lists only", f"citesmail lists edit {private[0]} --public")
    click.echo(form_snippet(state.settings, found), nl=False)
