"""Measurements of a rendered email shared by the tests and benchmarks/deliverability.py:
WCAG contrast of every text and the tap targets in a browser page (JavaScript for
Playwright's page.evaluate), and SpamAssassin's score."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# For every visible text node, and the alt text of every image (shown when images are
# blocked): its colour, the first opaque background up its ancestors (the colour blended
# over it when translucent), and their WCAG contrast ratio.
CONTRAST_JS = """
() => {
  const rgba = (s) => { const v = s.match(/[\\d.]+/g).map(Number);
                        return v.length === 3 ? [...v, 1] : v; };
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92
                                    : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const colour = rgba(getComputedStyle(node).backgroundColor);
      if (colour[3] > 0) return colour;
    }
    return null;
  };
  const shown = [];  // [element whose colour the text has, its box, the text]
  for (const img of document.querySelectorAll('img[alt]')) {
    if (img.alt.trim()) shown.push([img, img.getBoundingClientRect(), img.alt]);
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.textContent.trim()) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    shown.push([node.parentElement, range.getBoundingClientRect(), node.textContent]);
  }
  return shown.filter(([el, rect]) => rect.width > 0 && rect.height > 0)  // not the preheader
    .map(([el, rect, text]) => {
      const bg = background(el), fg = rgba(getComputedStyle(el).color);
      if (bg === null) return {text: text.trim().slice(0, 40), ratio: 0};
      const [a, b] = [lum([0, 1, 2].map(i => fg[i] * fg[3] + bg[i] * (1 - fg[3]))), lum(bg)];
      return {text: text.trim().slice(0, 40),
              ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)};
    });
}
"""

# Every link a finger aims at: all but those of headings and images (which are bigger
# targets of their own) — buttons, calendar, "read more", footer and web-view links.
TARGETS_JS = """
() => [...document.querySelectorAll('a')]
  .filter(a => !a.closest('h1, h2, h3') && !a.querySelector('img'))
  .map(a => { const r = a.getBoundingClientRect();  // text with its spaces as read
              return {text: a.textContent.replace(/\\s+/g, ' ').trim(),
                      x: r.x, y: r.y, width: r.width, height: r.height}; })
  .filter(r => r.width > 0)
"""

# One machine-readable line per message, in the report that -t appends (a header's value
# ends the line: it keeps its newline).
REPORT = "SPAMASSASSIN-RESULT score=_SCORE_ tests=_TESTSSCORES(,)_ id=_HEADER(Message-ID)_"
RESULT = re.compile(r"^SPAMASSASSIN-RESULT score=(?P<score>-?[\d.]+) tests=(?P<tests>\S*) "
                    r"id=<(?P<id>[^>]+)>$", re.MULTILINE)


@dataclass(frozen=True)
class SpamScore:
    score: float
    rules: dict[str, float]  # rule name -> its points

    def described(self) -> str:
        return ", ".join(f"{rule} {points:g}" for rule, points in self.rules.items())


def spamassassin_scores(messages: list[Path], home: Path) -> dict[str, SpamScore]:
    """Message-ID -> SpamAssassin's score, all messages in one process: local tests only
    (Debian's shipped rules; no DNS, no network, no Bayes), `home` for its files.
    FileNotFoundError when spamassassin is not installed."""
    command = shutil.which("spamassassin")
    if command is None:
        raise FileNotFoundError("spamassassin is missing: apt-get install spamassassin")
    home.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [command, "-t", "-L", "-x", "--cf", "dns_available no", "--cf", "use_bayes 0",
         "--cf", "clear_report_template", "--cf", f"report {REPORT}",
         *map(str, messages)],
        capture_output=True, text=True, env={**os.environ, "HOME": str(home)}, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"spamassassin failed: {done.stderr.strip()[-500:]}")
    return {match["id"]: SpamScore(float(match["score"]), _rules(match["tests"]))
            for match in RESULT.finditer(done.stdout)}


def _rules(tests: str) -> dict[str, float]:
    pairs = (test.split("=") for test in tests.split(",") if test)
    return {name: float(points) for name, points in pairs}
