"""Render benchmark: citesmail's pipeline against the Node MJML CLI and premailer.

Run from the repository root:
    .venv/bin/python benchmarks/render.py [--quick] [--write-docs]
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

from mjml import mjml2html
from premailer import Premailer

from citesmail.campaigns import load_campaign
from citesmail.campaigns.models import Campaign
from citesmail.config import Settings, load_settings
from citesmail.render import inline_css, render_campaign, render_mjml
from report import DOCS, compile_bytecode, markdown_table, text_table, write_section

NAME = "2023-06-12-replay-cites-de-l-emploi"
CAMPAIGN = Path("campaigns") / f"{NAME}.md"
CITESMAIL = Path(".venv/bin/citesmail")
NODE_DIR = Path("/tmp/citesmail-bench-node")
WARM_TARGET_MS = 3.0
YES_NO = {True: "yes", False: "no"}

NODE_SCRIPT = """
const mjml = require(%s);
const source = require("fs").readFileSync(%s, "utf8");
const options = {keepComments: false};
(async () => {
  await mjml(source, options);
  const times = [];
  for (let i = 0; i < %d; i++) {
    const start = process.hrtime.bigint();
    await mjml(source, options);  // mjml 5 is async; awaiting a v4 result is harmless
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  times.sort((a, b) => a - b);
  const mid = times.length >> 1;
  console.log(times.length %% 2 ? times[mid] : (times[mid - 1] + times[mid]) / 2);
})();
"""

Row = tuple[str, str, str, str]
HEADER: Row = ("measurement", "citesmail", "reference", "ratio")


def median_ms(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def wall_ms(command: list[str], runs: int) -> float:
    def run() -> None:
        subprocess.run(command, check=True, capture_output=True)

    run()  # untimed: primes the disk cache, not the process
    return median_ms(run, runs)


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else platform.processor() or "unknown CPU"


def node_versions() -> str:
    node = "absent"
    if shutil.which("node"):
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
    package = NODE_DIR / "node_modules" / "mjml" / "package.json"
    found = package.exists() and node != "absent"
    mjml = json.loads(package.read_text())["version"] if found else "absent"
    return f"node {node.strip()}; mjml (npm) {mjml}"


def machine_line() -> str:
    return (f"{platform.platform()}; {cpu_model()}; {os.cpu_count()} cores; "
            f"Python {platform.python_version()}; {node_versions()}; "
            f"mjml-python {version('mjml-python')}; css-inline {version('css-inline')}; "
            f"premailer {version('premailer')}")


def load() -> tuple[Campaign, Settings]:
    settings = load_settings(None)
    campaign = load_campaign(CAMPAIGN, default_lang=settings.campaigns.lang, tz=settings.tz)
    return campaign, settings


def ensure_node_mjml() -> str | None:
    """Install mjml from npm into NODE_DIR once; the reason it is unavailable, or None."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not on PATH"
    if (NODE_DIR / "node_modules" / ".bin" / "mjml").exists():
        return None
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    command = ["npm", "install", "--no-audit", "--no-fund", "--silent", "mjml"]
    result = subprocess.run(command, cwd=NODE_DIR, capture_output=True, text=True)
    if result.returncode != 0:
        return f"npm install mjml failed: {(result.stderr or result.stdout).strip()[-300:]}"
    return None


def node_in_process_ms(source_file: Path, runs: int) -> float:
    module = json.dumps(str(NODE_DIR / "node_modules" / "mjml"))
    script = NODE_SCRIPT % (module, json.dumps(str(source_file)), runs)
    result = subprocess.run(["node", "-e", script], check=True, capture_output=True, text=True)
    return float(result.stdout.strip())


def media_blocks(html: str) -> list[str]:
    """The bodies of the @media rules in html, braces matched."""
    blocks = []
    for match in re.finditer(r"@media[^{]*\{", html):
        depth, end = 1, match.end()
        while depth and end < len(html):
            depth += {"{": 1, "}": -1}.get(html[end], 0)
            end += 1
        blocks.append(html[match.end():end])
    return blocks


def correctness(html: str) -> tuple[bool, bool]:
    """(keeps <!doctype html>, keeps @media rules with !important)."""
    doctype = html.lstrip().lower().startswith("<!doctype html")
    return doctype, any("!important" in block for block in media_blocks(html))


def premailer_inline(html: str) -> str:
    # cache_css_parsing=False: a campaign is inlined once per process, so premailer's
    # cross-call parse cache would only flatter it here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Premailer(html, keep_style_tags=True, disable_validation=True,
                         allow_network=False, cache_css_parsing=False,
                         cssutils_logging_level=logging.CRITICAL).transform()


def fmt(ms: float) -> str:
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.0f} ms"


def ratio(ours: float, reference: float) -> str:
    times = reference / ours
    return f"{times:.0f}x faster" if times >= 10 else f"{times:.1f}x faster"


def warm_render_row(campaign: Campaign, settings: Settings, runs: int) -> Row:
    render_campaign(campaign, settings)
    warm = median_ms(lambda: render_campaign(campaign, settings), runs)
    verdict = "within target" if warm <= WARM_TARGET_MS else "OVER target"
    return ("Warm render, whole campaign", fmt(warm), f"target {WARM_TARGET_MS:g} ms", verdict)


def citesmail_cli_ms(runs: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        return wall_ms([str(CITESMAIL), "render", NAME, "-o", out], runs)


def node_ms(source: str, runs: int, cli_runs: int) -> tuple[float, float]:
    """(in-process compile, CLI wall) medians of the npm mjml on source."""
    with tempfile.TemporaryDirectory() as tmp:
        source_file, out = Path(tmp) / "in.mjml", Path(tmp) / "out.html"
        source_file.write_text(source, encoding="utf-8")
        binary = str(NODE_DIR / "node_modules" / ".bin" / "mjml")
        cli = wall_ms([binary, str(source_file), "-o", str(out)], cli_runs)
        return node_in_process_ms(source_file, runs), cli


def mjml_rows(source: str, skipped: str | None, runs: int, cli_runs: int) -> list[Row]:
    mjml2html(source, disable_comments=True)
    ours = median_ms(lambda: mjml2html(source, disable_comments=True), runs)
    cli = citesmail_cli_ms(cli_runs)
    labels = ("MJML compile (in-process)", "MJML CLI cold, one file")
    cells = (fmt(ours), f"{fmt(cli)} (citesmail render, full pipeline)")
    if skipped:
        print(f"Node MJML reference skipped: {skipped}")
        return [(labels[0], cells[0], "skipped", ""), (labels[1], cells[1], "skipped", "")]
    node, node_cli = node_ms(source, runs, cli_runs)
    return [(labels[0], cells[0], f"{fmt(node)} (mjml node)", ratio(ours, node)),
            (labels[1], cells[1], f"{fmt(node_cli)} (mjml CLI)", ratio(cli, node_cli))]


def inliner_rows(html: str, runs: int, premailer_runs: int) -> list[Row]:
    ours_html, theirs_html = inline_css(html), premailer_inline(html)
    ours = median_ms(lambda: inline_css(html), runs)
    theirs = median_ms(lambda: premailer_inline(html), premailer_runs)
    ours_ok, theirs_ok = correctness(ours_html), correctness(theirs_html)
    return [("CSS inlining", f"{fmt(ours)} (css-inline)", f"{fmt(theirs)} (premailer)",
             ratio(ours, theirs)),
            ("Inlined HTML keeps <!doctype html>", YES_NO[ours_ok[0]], YES_NO[theirs_ok[0]], ""),
            ("Inlined HTML keeps @media !important", YES_NO[ours_ok[1]], YES_NO[theirs_ok[1]], "")]


def render_section(rows: list[Row], machine: str, runs: int, cli_runs: int) -> str:
    today = datetime.date.today().isoformat()
    return (f"## Render\n\nThe replay example `{CAMPAIGN}` rendered by citesmail, against the "
            f"Node MJML reference (npm `mjml`, same MJML source) and premailer (same HTML). "
            f"In-process figures are medians of {runs} calls after one warm-up "
            f"(premailer: fewer); CLI figures are medians of {cli_runs} fresh processes "
            f"after one untimed run. premailer runs with network and its parse cache off and "
            f"its defaults otherwise (`strip_important=True`). Rerun with "
            f"`.venv/bin/python benchmarks/render.py --write-docs`.\n\n"
            f"Machine: {machine}\n\nDate: {today}\n\n{markdown_table(HEADER, rows)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--write-docs", action="store_true", help=f"rewrite ## Render in {DOCS}")
    args = parser.parse_args()
    runs, cli_runs, premailer_runs = (50, 5, 10) if args.quick else (200, 15, 50)
    skipped = ensure_node_mjml()
    machine = machine_line()
    compile_bytecode()
    print(f"Machine: {machine}\n", flush=True)
    campaign, settings = load()
    source = render_mjml(campaign, settings)[0]
    rows = [*mjml_rows(source, skipped, runs, cli_runs),
            *inliner_rows(mjml2html(source, disable_comments=True), runs, premailer_runs),
            warm_render_row(campaign, settings, runs)]
    print(text_table(HEADER, rows))
    if args.write_docs:
        write_section("Render", render_section(rows, machine, runs, cli_runs))
        print(f"\nwrote {DOCS}")


if __name__ == "__main__":
    main()
