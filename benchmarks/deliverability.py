"""Deliverability and accessibility of the example emails, as `citesmail render` writes them.

For each example: SpamAssassin's score and the rules hit (local tests, Debian's rules),
axe-core's WCAG A/AA violations, the smallest tap target at 375 px and the lowest text
contrast in light and dark mode (Debian's Chromium through Playwright).

Run from the repository root:
    .venv/bin/python benchmarks/deliverability.py [--write-docs]

axe-core is installed with npm into benchmarks/.cache on the first run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, sync_playwright

from report import markdown_table, text_table, write_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.render.measure import (  # noqa: E402  (the tests' measurements, not a copy)
    CONTRAST_JS,
    TARGETS_JS,
    SpamScore,
    spamassassin_scores,
)

EXAMPLES = {"replay": "2023-06-12-replay-cites-de-l-emploi",
            "event": "2027-01-19-invitation-emploi-des-jeunes",
            "newsletter": "2026-12-15-lettre-decembre"}
CACHE = ROOT / "benchmarks" / ".cache"
AXE = CACHE / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = Path("/usr/bin/chromium")
DOCS = ROOT / "docs" / "deliverability.md"
HEADING = "The examples, measured"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
HEADER = ("email", "SpamAssassin", "rules hit", "axe WCAG A/AA violations",
          "smallest tap target at 375 px", "lowest contrast, light", "lowest contrast, dark")


@dataclass(frozen=True)
class Measured:
    name: str
    spam: SpamScore
    violations: list[str]  # axe rule id (and how many nodes)
    smallest_target: float
    contrast: dict[str, float]  # scheme -> lowest ratio at 600 and 375 px


def ensure_axe() -> Path:
    """axe-core 4 from npm, once, into benchmarks/.cache."""
    if not AXE.exists():
        if shutil.which("npm") is None:
            sys.exit("npm is missing: apt-get install npm (axe-core comes from npm)")
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent",
                        "--prefix", str(CACHE), "axe-core@4"], check=True)
    return AXE


def render_examples(folder: Path) -> dict[str, Path]:
    """The examples' .eml and .html from a workspace made of the repository's examples."""
    (folder / "campaigns").mkdir(parents=True)
    shutil.copy(ROOT / "config.example.toml", folder / "config.toml")
    for slug in EXAMPLES.values():
        shutil.copy(ROOT / "campaigns" / f"{slug}.md", folder / "campaigns" / f"{slug}.md")
    citesmail = Path(sys.executable).parent / "citesmail"
    environ = {key: value for key, value in os.environ.items() if key != "CITESMAIL_SECRET"}
    for slug in EXAMPLES.values():
        subprocess.run([str(citesmail), "render", slug, "-o", "out"], cwd=folder, check=True,
                       capture_output=True, env=environ)
    return {slug: folder / "out" / slug for slug in EXAMPLES.values()}


def open_page(browser: Browser, html: Path, width: int, scheme: str) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900},
                                  color_scheme=scheme, bypass_csp=True)
    page = context.new_page()
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
        "file:") else route.abort())  # images on example.org stay unfetched
    page.goto(html.as_uri())
    return page


def axe_violations(browser: Browser, html: Path, axe: Path) -> list[str]:
    page = open_page(browser, html, 600, "light")
    page.add_script_tag(path=str(axe))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})",
                           WCAG_TAGS)
    page.context.close()
    return [f"{rule['id']} ({len(rule['nodes'])})" for rule in result["violations"]]


def page_figures(browser: Browser, html: Path) -> tuple[float, dict[str, float]]:
    """The smallest tap target at 375 px, and the lowest contrast per colour scheme."""
    contrast: dict[str, float] = {}
    smallest = float("inf")
    for scheme in ("light", "dark"):
        for width in (600, 375):
            page = open_page(browser, html, width, scheme)
            ratios = [text["ratio"] for text in page.evaluate(CONTRAST_JS)]
            contrast[scheme] = min(contrast.get(scheme, float("inf")), *ratios)
            if width == 375 and scheme == "light":
                smallest = min(target["height"] for target in page.evaluate(TARGETS_JS))
            page.context.close()
    return smallest, contrast


def measure(folder: Path) -> list[Measured]:
    axe = ensure_axe()
    files = render_examples(folder / "ws")
    spam = spamassassin_scores([path.with_suffix(".eml") for path in files.values()],
                               folder / "home")
    measured = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        for name, slug in EXAMPLES.items():
            html = files[slug].with_suffix(".html")
            [score] = [found for key, found in spam.items() if key.startswith(f"{slug}.")]
            smallest, contrast = page_figures(browser, html)
            measured.append(Measured(name, score, axe_violations(browser, html, axe),
                                     smallest, contrast))
        browser.close()
    return measured


def summary_rows(measured: list[Measured]) -> list[tuple[str, ...]]:
    return [(m.name, f"{m.spam.score:.1f}", ", ".join(m.spam.rules) or "none",
             str(len(m.violations)) + (f": {', '.join(m.violations)}" if m.violations else ""),
             f"{m.smallest_target:.0f} px", f"{m.contrast['light']:.1f}:1",
             f"{m.contrast['dark']:.1f}:1") for m in measured]


def rule_rows(measured: list[Measured]) -> list[tuple[str, ...]]:
    rules = sorted({rule for m in measured for rule in m.spam.rules})
    rows = [(rule, *(f"{m.spam.rules[rule]:g}" if rule in m.spam.rules else "" for m in measured))
            for rule in rules]
    return [*rows, ("total (as SpamAssassin rounds it)",
                    *(f"{m.spam.score:.1f}" for m in measured))]


def versions() -> str:
    spamassassin = subprocess.run(["spamassassin", "--version"], capture_output=True,
                                  text=True).stdout.splitlines()[0]
    chromium = subprocess.run([str(CHROMIUM), "--version"], capture_output=True,
                              text=True).stdout.strip()
    axe = (CACHE / "node_modules" / "axe-core" / "package.json").read_text()
    axe_version = axe.split('"version": "')[1].split('"')[0]
    return f"{spamassassin}; {chromium}; axe-core {axe_version}; {platform.platform()}"


def docs_section(measured: list[Measured], machine: str) -> str:
    how = ("Rerun with `.venv/bin/python benchmarks/deliverability.py --write-docs` (it "
           "rewrites this section). The emails are the three examples as `citesmail render` "
           "writes them (DKIM off); contrast is the lowest WCAG ratio of any text at 600 and "
           "375 px; a tap target is any link outside a heading or an image.")
    return "\n\n".join([
        f"## {HEADING}",
        textwrap.fill(how, 88),
        markdown_table(HEADER, summary_rows(measured)),
        "SpamAssassin's points per rule (`spamassassin -t -L`: local tests only):",
        markdown_table(("rule", *EXAMPLES), rule_rows(measured)),
        textwrap.fill(f"Measured with {machine}.", 88),
    ]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-docs", action="store_true",
                        help=f"rewrite ## {HEADING} in {DOCS.relative_to(ROOT)}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="citesmail-deliverability-") as folder:
        measured = measure(Path(folder))
    machine = versions()
    print(f"{machine}\n")
    print(text_table(HEADER, summary_rows(measured)))
    print()
    print(text_table(("rule", *EXAMPLES), rule_rows(measured)))
    if args.write_docs:
        write_section(HEADING, docs_section(measured, machine), DOCS)
        print(f"\nwrote {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
