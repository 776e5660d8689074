"""plain_body prints a body as its sandboxed Jinja template prints it, the same slots made
in the same order, or leaves it to Jinja."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from citesmail.render.environment import environment
from citesmail.render.plainbody import plain_body
from citesmail.render.slots import LinkSlots, RecipientSlots, SlotTable

PIECES = st.sampled_from([
    "Bonjour ", "{{ recipient.first_name }}", '{{ recipient.first_name | default("à tous") }}',
    "{{recipient.email|d('x')}}", "{{ recipient.lists | default('') }}",
    '{{\n recipient.organization\t|default( "a}}b" ) }}', "{{ recipient.nope }}",
    "{{ recipient.first_name | upper }}", "{{- recipient.email }}", "{{ recipient.email -}}",
    '{{ recipient.first_name | default("a\\nb") }}', "{{ links.webview }}",
    "{{ recipient.first_name | default('x', true) }}", "{{ recipient .email }}",
    "{", "}", "{{", "}}", "{%", "%}", "{#", "#}", "{% if true %}", "{% endif %}", "{# n #}",
    "\n", "\r\n", "\r", " ", "x", "'", '"', "\\", "é",
])


def _context(table: SlotTable) -> dict[str, Any]:
    return {"recipient": RecipientSlots(table), "links": LinkSlots(table)}


@settings(max_examples=600, deadline=None)
@given(st.lists(PIECES, max_size=8).map("".join))
@example('Bonjour {{ recipient.first_name | default("à toutes et à tous") }},\n')
@example("{{{ recipient.email }}")
@example("{{ recipient.email }}}")
@example("{{ recipient.first_name }} et {{ recipient.first_name | default('x') }}")
def test_a_body_prints_as_its_template_prints_it(source: str) -> None:
    plain_table, jinja_table = SlotTable(), SlotTable()
    plain = plain_body(source, _context(plain_table))
    env = environment(Path("/nonexistent-templates"))
    try:
        expected = env.from_string(source).render(_context(jinja_table))
    except Exception:  # whatever Jinja refuses is left to it
        assert plain is None
        return
    if plain is not None:
        assert plain == expected
        assert plain_table.slots == jinja_table.slots


def test_the_example_bodies_need_no_template() -> None:
    table = SlotTable()
    body = 'Bonjour {{ recipient.first_name | default("à toutes et à tous") }},\n'
    assert plain_body(body, {"recipient": RecipientSlots(table)}) == "Bonjour @@cm1@@,\n"
    assert table.slots == [("first_name", ""), ("first_name", "à toutes et à tous")]
