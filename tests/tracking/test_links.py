"""Which links are counted, and how the run rewrites them."""

from __future__ import annotations

from citesmail.tracking.links import numbered, rewrite

HTML = ('<a href="https://example.org/a?x=1&amp;y=2">A</a> <a href="mailto:x@example.org">m</a>'
        ' <a href="tel:+33100000000">t</a> <a class="b" href="@@cm3@@">désinscription</a>'
        ' <a href="https://example.org/b">B</a> <a href="https://example.org/a?x=1&amp;y=2">'
        'again</a> <a href="#top">top</a> <img src="https://example.org/logo.png">')
TEXT = ("Lire : https://example.org/b.\nAussi (https://example.org/c)\n"
        "Se désabonner : @@cm3@@\nmailto:x@example.org\n")


def test_links_are_numbered_once_in_order_of_first_appearance() -> None:
    assert numbered(HTML, TEXT) == {"https://example.org/a?x=1&y=2": 1,
                                    "https://example.org/b": 2, "https://example.org/c": 3}


def test_only_http_links_are_rewritten_and_slots_stay() -> None:
    html, text = rewrite(HTML, TEXT, lambda n: f"https://l.example/c/{n}")
    assert html == (
        '<a href="https://l.example/c/1">A</a> <a href="mailto:x@example.org">m</a>'
        ' <a href="tel:+33100000000">t</a> <a class="b" href="@@cm3@@">désinscription</a>'
        ' <a href="https://l.example/c/2">B</a> <a href="https://l.example/c/1">'
        'again</a> <a href="#top">top</a> <img src="https://example.org/logo.png">')
    assert text == ("Lire : https://l.example/c/2.\nAussi (https://l.example/c/3)\n"
                    "Se désabonner : @@cm3@@\nmailto:x@example.org\n")


def test_add_to_calendar_pages_are_not_counted() -> None:
    html = ('<a href="https://calendar.google.com/calendar/render?action=TEMPLATE">G</a>'
            '<a href="https://outlook.live.com/calendar/0/action/compose?x=1">O</a>')
    assert numbered(html, "") == {}
