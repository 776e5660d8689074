"""The rendered email: structure of the HTML, the text part, recipient values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from citesmail.campaigns import load_campaign
from citesmail.config import Settings, load_settings
from citesmail.errors import TemplateError
from citesmail.message import SAMPLE_RECIPIENT, Recipient, links_for, recipient_values
from citesmail.render import RenderedCampaign, render_campaign
from tests.conftest import EVENT, MINIMAL_REPLAY, NEWSLETTER, REPLAY, write


def rendered(workspace: Path, slug: str) -> tuple[Settings, RenderedCampaign]:
    settings = load_settings(workspace / "config.toml", environ={})
    campaign = load_campaign(workspace / "campaigns" / f"{slug}.md",
                             default_lang="fr", tz=settings.tz)
    return settings, render_campaign(campaign, settings)


def filled(settings: Settings, result: RenderedCampaign,
           recipient: Recipient = SAMPLE_RECIPIENT) -> tuple[str, str]:
    links = links_for(settings, recipient.contact_id, result.campaign.slug)
    return result.fill(recipient_values(recipient, links))


def test_replay_html_structure(workspace: Path) -> None:
    settings, result = rendered(workspace, REPLAY)
    html, _ = filled(settings, result)
    assert html.lower().startswith("<!doctype html>")
    soup = BeautifulSoup(html, "html.parser")
    assert soup.html["lang"] == "fr"
    assert "@media" in html and "!important" in html
    assert "{{" not in html and "{%" not in html and "@@cm" not in html
    assert soup.title.string.replace("\xa0", " ") == result.campaign.subject
    text = soup.get_text(" ")
    for speaker in result.campaign.speakers:
        assert speaker.name in text
        assert speaker.role in text
    for group in ("Cité de l'emploi de Grenoble", "Cité de l'emploi de Vaulx-en-Velin", "ANCT"):
        assert soup.find("h3", string=group) is not None
    for heading in ("Objectifs", "Public", "Déroulé", "Intervenants"):
        assert soup.find("h2", string=heading) is not None
    assert "lundi 12 juin 2023 à 14\u00a0h\u00a000" in text
    assert "Bonjour Camille," in text
    hrefs = {a["href"] for a in soup.find_all("a")}
    assert "https://example.org/replays/cites-de-l-emploi-2023" in hrefs
    assert "https://example.org/documents/cites-de-l-emploi-2023-support.pdf" in hrefs
    links = links_for(settings, 0, REPLAY)
    assert {links.unsubscribe, links.webview} <= hrefs
    assert "Se désabonner" in text and "4 rue de l'Exemple, 69001 Lyon" in text
    assert "Labo Cités" in text
    assert all(img.get("alt") for img in soup.find_all("img"))


def test_grouped_speakers_stay_together_in_file_order(workspace: Path) -> None:
    write(workspace / "campaigns" / "g.md", MINIMAL_REPLAY.replace("+++\nBonjour", """
[[speakers]]
name = "A1"
group = "Alpha"
[[speakers]]
name = "B1"
group = "Beta"
[[speakers]]
name = "A2"
group = "Alpha"
[[speakers]]
name = "Solo"
+++
Bonjour"""))
    settings, result = rendered(workspace, "g")
    _, text = filled(settings, result)
    block = text[text.index("Intervenants"):]
    order = [block.index(x) for x in ("Alpha", "- A1", "- A2", "Beta", "- B1", "- Solo")]
    assert order == sorted(order)


def test_recipient_values_are_escaped_and_defaults_apply(workspace: Path) -> None:
    settings, result = rendered(workspace, REPLAY)
    evil = Recipient(email="x@example.org", first_name='<script>"Zoé" & co</script>')
    html, text = filled(settings, result, evil)
    assert "<script>" not in html
    assert "&lt;script&gt;&quot;Zoé&quot; &amp; co&lt;/script&gt;" in html
    assert 'Bonjour <script>"Zoé" & co</script>,' in text
    nobody = Recipient(email="x@example.org")
    html, text = filled(settings, result, nobody)
    assert "Bonjour à toutes et à tous," in text
    assert "Bonjour à toutes et à tous," in BeautifulSoup(html, "html.parser").get_text()


def test_render_runs_once_and_fill_is_per_recipient(workspace: Path) -> None:
    settings, result = rendered(workspace, REPLAY)
    a, _ = filled(settings, result, Recipient(email="a@example.org", first_name="Anne",
                                              contact_id=1))
    b, _ = filled(settings, result, Recipient(email="b@example.org", first_name="Bilal",
                                              contact_id=2))
    assert "Bonjour Anne," in a and "Bonjour Bilal," in b
    assert links_for(settings, 1, REPLAY).unsubscribe in a
    assert links_for(settings, 1, REPLAY).unsubscribe not in b


def test_text_part(workspace: Path) -> None:
    settings, result = rendered(workspace, REPLAY)
    _, text = filled(settings, result)
    lines = text.splitlines()
    assert all(len(line) <= 78 or re.search(r"https?://\S{40,}", line) for line in lines)
    for url in ("https://example.org/replays/cites-de-l-emploi-2023",
                "https://example.org/documents/cites-de-l-emploi-2023-support.pdf",
                links_for(settings, 0, REPLAY).unsubscribe):
        assert url in text
    assert "- Délégués du préfet" in lines
    assert "Visio-conférence du lundi 12 juin 2023 à 14\u00a0h\u00a000" in lines
    assert "<a " not in text and "<p>" not in text and "</" not in text
    assert "**" not in text


def test_markdown_links_become_text_with_url(workspace: Path) -> None:
    write(workspace / "campaigns" / "l.md",
          MINIMAL_REPLAY + "\nVoir [le programme](https://example.org/programme) et "
          "<https://example.org/direct>.\n\n- un\n- deux\n")
    settings, result = rendered(workspace, "l")
    html, text = filled(settings, result)
    assert "le programme (https://example.org/programme)" in text
    assert "https://example.org/direct." in text
    assert "- un\n- deux" in text
    soup = BeautifulSoup(html, "html.parser")
    assert soup.find("a", href="https://example.org/programme").get_text() == "le programme"


def test_event_and_newsletter(workspace: Path) -> None:
    settings, event = rendered(workspace, EVENT)
    html, text = filled(settings, event)
    assert "mardi 19 janvier 2027 de 10\u00a0h\u00a000 à 12\u00a0h\u00a000" in text
    soup = BeautifulSoup(html, "html.parser")
    buttons = {a.get_text(strip=True): a["href"] for a in soup.find_all("a")}
    assert buttons["S'inscrire"].endswith("/inscription")
    assert buttons["Rejoindre la visio"] == "https://example.org/visio/emploi-des-jeunes"
    settings, news = rendered(workspace, NEWSLETTER)
    html, text = filled(settings, news)
    soup = BeautifulSoup(html, "html.parser")
    for item in news.campaign.items:
        assert soup.find("a", href=item.url) is not None
        assert item.url in text
    [image] = soup.find_all("img")
    assert image["alt"].replace("\xa0", " ") == news.campaign.items[0].image_alt


def test_english_campaign(workspace: Path) -> None:
    write(workspace / "campaigns" / "en.md", MINIMAL_REPLAY.replace(
        'title = "Un titre"', 'title = "A title"\nlang = "en"'))
    settings, result = rendered(workspace, "en")
    html, text = filled(settings, result)
    assert 'lang="en"' in html
    assert "Monday 12 June 2023 at 2:00\u00a0PM" in text
    assert "Watch the replay: https://example.org/video" in text


def test_workspace_template_overrides_builtin(workspace: Path) -> None:
    write(workspace / "templates" / "text.txt.j2", "CUSTOM {{ campaign.title }}\n")
    _, result = rendered(workspace, REPLAY)
    assert result.text.startswith("CUSTOM Les cités de l'emploi")


def test_compiled_templates_are_kept_and_a_changed_template_is_recompiled(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from citesmail.render.environment import environment

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    write(workspace / "templates" / "text.txt.j2", "FIRST {{ campaign.title }}\n")
    environment.cache_clear()  # as a new process would start
    assert rendered(workspace, REPLAY)[1].text.startswith("FIRST ")
    kept = list((tmp_path / "cache" / "citesmail" / "jinja").iterdir())
    assert kept  # compiled templates, for the next run
    write(workspace / "templates" / "text.txt.j2", "SECOND {{ campaign.title }}\n")
    environment.cache_clear()
    assert rendered(workspace, REPLAY)[1].text.startswith("SECOND ")
    environment.cache_clear()


def test_broken_mjml_in_workspace_template_names_template_and_line(workspace: Path) -> None:
    write(workspace / "templates" / "replay.mjml.j2", """{% extends "base.mjml.j2" %}
{% block content %}
    <mj-section>
      <mj-column>
        <mj-text>Oops
      </mj-column>
    </mj-section>
{% endblock %}
""")
    with pytest.raises(TemplateError) as caught:
        rendered(workspace, REPLAY)
    [problem] = caught.value.problems
    assert str(problem.path).endswith("templates/replay.mjml.j2")
    assert problem.line == 5  # the <mj-text> that is never closed
    assert "MJML error" in problem.message


def test_undefined_variable_in_workspace_template(workspace: Path) -> None:
    write(workspace / "templates" / "replay.mjml.j2",
          '{% extends "base.mjml.j2" %}\n{% block content %}\n{{ campaign.nope }}\n'
          "{% endblock %}\n")
    with pytest.raises(TemplateError) as caught:
        rendered(workspace, REPLAY)
    [problem] = caught.value.problems
    assert str(problem.path).endswith("replay.mjml.j2")
    assert problem.line == 3
    assert "nope" in problem.message


def test_jinja_syntax_error_in_workspace_template(workspace: Path) -> None:
    write(workspace / "templates" / "replay.mjml.j2",
          '{% extends "base.mjml.j2" %}\n{% block content %}\n{% if %}\n{% endblock %}\n')
    with pytest.raises(TemplateError) as caught:
        rendered(workspace, REPLAY)
    assert caught.value.problems[0].line == 3


def test_logo_replaces_the_name_in_the_header_with_alt_text(workspace: Path) -> None:
    config = workspace / "config.toml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        'logo_url = ""', 'logo_url = "https://example.org/logo.png"'), encoding="utf-8")
    settings, result = rendered(workspace, REPLAY)
    html, _ = filled(settings, result)
    [logo] = BeautifulSoup(html, "html.parser").find_all("img")
    assert logo["src"] == "https://example.org/logo.png"
    assert logo["alt"] == "Labo Cités"


def test_no_line_of_the_french_text_part_starts_with_punctuation(workspace: Path) -> None:
    for slug in (REPLAY, EVENT, NEWSLETTER):
        _, result = rendered(workspace, slug)
        assert not [line for line in result.text.splitlines()
                    if line.lstrip().startswith((":", ";", "?", "!", "»"))], slug


FILLER = "\u2007\ufeff\u034f "


@pytest.mark.parametrize("slug", [REPLAY, EVENT, NEWSLETTER])
def test_preheader_is_hidden_without_low_contrast_text_and_padded(workspace: Path,
                                                                  slug: str) -> None:
    settings, result = rendered(workspace, slug)
    html, _ = filled(settings, result)
    soup = BeautifulSoup(html, "html.parser")
    first_text = soup.body.find(string=True)  # what the inbox snippet shows
    assert first_text is not None and result.campaign.preheader is not None
    preheader = first_text.parent
    style = preheader["style"].replace(" ", "")
    for rule in ("display:none", "mso-hide:all", "max-height:0", "overflow:hidden",
                 "opacity:0"):
        assert rule in style
    assert "color" not in style  # SpamAssassin's HTML_FONT_LOW_CONTRAST: no white on white
    text = preheader.get_text()
    assert text.startswith(result.campaign.preheader.replace(" :", "\u00a0:"))
    assert text.count(FILLER) >= 100  # the footer never reaches the inbox snippet
    assert text.endswith(FILLER)


def test_no_preheader_no_hidden_block(workspace: Path) -> None:
    write(workspace / "campaigns" / "r.md", MINIMAL_REPLAY.replace('preheader = "Le replay"\n',
                                                                   ""))
    _, result = rendered(workspace, "r")
    assert "\ufeff" not in result.html and "display:none" not in result.html


def test_dark_mode_styles_stay_in_the_head(workspace: Path) -> None:
    _, result = rendered(workspace, REPLAY)
    head = BeautifulSoup(result.html, "html.parser").head
    metas = {meta.get("name"): meta.get("content") for meta in head.find_all("meta")}
    assert metas["color-scheme"] == metas["supported-color-schemes"] == "light dark"
    styles = " ".join(style.get_text() for style in head.find_all("style"))
    assert ":root { color-scheme: light dark;" in styles
    assert "@media (prefers-color-scheme: dark)" in styles
    assert ".cm-card .cm-text p," in styles and "color: #e5e7eb !important;" in styles


def test_images_have_the_column_width_and_styled_alt_text(workspace: Path) -> None:
    _, result = rendered(workspace, NEWSLETTER)
    images = BeautifulSoup(result.html, "html.parser").find_all("img")
    assert images
    for image in images:
        cell = image.find_parent("td")
        assert image["width"] == "552" and "width: 552px" in cell["style"]  # 600 - 2 x 24
        style = image["style"]
        assert "font-family: Arial" in style and "color: #4b5563" in style
        assert "font-size: 14px" in style


def test_the_dark_logo_is_there_only_with_a_light_one(workspace: Path) -> None:
    config = workspace / "config.toml"
    text = config.read_text(encoding="utf-8")
    dark = 'logo_dark_url = "https://example.org/dark.png"'
    config.write_text(text.replace('logo_dark_url = ""', dark), encoding="utf-8")
    _, result = rendered(workspace, REPLAY)
    assert "dark.png" not in result.html and "LABO CITÉS" in result.html
    config.write_text(text.replace('logo_dark_url = ""', dark).replace(
        'logo_url = ""', 'logo_url = "https://example.org/light.png"'), encoding="utf-8")
    _, result = rendered(workspace, REPLAY)
    soup = BeautifulSoup(result.html, "html.parser")
    light, dark_logo = soup.find("img", src="https://example.org/light.png"), soup.find(
        "img", src="https://example.org/dark.png")
    assert light.find_parent("td", class_="cm-logo-light") is not None
    cell = dark_logo.find_parent("td", class_="cm-logo-dark")
    assert "display: none" in cell["style"] and "mso-hide: all" in cell["style"]
    assert light["alt"] == dark_logo["alt"] == "Labo Cités"


@pytest.mark.parametrize("slug", [REPLAY, EVENT, NEWSLETTER])
def test_only_a_url_alone_on_its_line_passes_78_columns(workspace: Path, slug: str) -> None:
    settings, result = rendered(workspace, slug)
    _, text = filled(settings, result, Recipient("a@example.org", "Anne-Sophie",
                                                 "de La Tour du Pin", "Mairie", 123456))
    long_lines = [line for line in text.splitlines() if len(line) > 78]
    assert all(re.fullmatch(r" *https?://\S+", line) for line in long_lines), long_lines
    # and none of them is one of the "add to calendar" pages' own long addresses
    assert all(len(line) < 140 for line in long_lines), long_lines
