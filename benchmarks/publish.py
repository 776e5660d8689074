"""Publish benchmark: `citesmail publish` of 500 campaigns, cold and incremental (one
campaign changed), against Pelican on the same 500 Markdown texts.

Run from the repository root:
    .venv/bin/python benchmarks/publish.py [--runs N] [--count N]

Pelican is installed by this script into benchmarks/.cache/pelican-venv (not a project
dependency). Both tools run as commands, each in the same run, medians of --runs: wall
seconds, the command's CPU seconds (user + system), and the system part alone.

The runs' folders are deleted once all runs are done, not after each run: on an ext4
file system without a journal (this project's VM), creating a file costs a scan of the
inodes deleted in the last minute or more of its block group, so deleting a run's
folders made the next run's files the more expensive the more of them it creates (a
site has a folder per campaign). Give TMPDIR another file system to compare on it.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITESMAIL = Path(sys.executable).parent / "citesmail"
PELICAN_VENV = ROOT / "benchmarks" / ".cache" / "pelican-venv"
PELICAN = PELICAN_VENV / "bin" / "pelican"
EXAMPLES = sorted((ROOT / "campaigns").glob("*.md"))


def pelican() -> Path:
    if not PELICAN.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PELICAN_VENV)], check=True)
        subprocess.run([str(PELICAN_VENV / "bin" / "pip"), "install", "-q",
                        "pelican[markdown]>=4.9"], check=True)
    return PELICAN


def campaigns(folder: Path, count: int) -> list[Path]:
    """`count` campaigns made from the examples, each with its own slug, date, title and
    body (its last line: a campaign whose body were another's would render the same
    text, which real campaigns do not)."""
    folder.mkdir(parents=True)
    texts = [path.resolve().read_text(encoding="utf-8") for path in EXAMPLES]
    start = datetime(2027, 2, 1, 10, 0)
    made = []
    for number in range(count):
        when = start + timedelta(days=number)
        text = texts[number % len(texts)]
        text = re.sub(r"starts = \S+", f"starts = {when:%Y-%m-%dT%H:%M:%S}", text)
        text = re.sub(r"ends = \S+", f"ends = {when + timedelta(hours=2):%Y-%m-%dT%H:%M:%S}",
                      text)
        text = text.replace('title = "', f'title = "N° {number} : ', 1)
        text = text.rstrip("\n") + f"\n\nAnnonce n° {number}.\n"
        path = folder / f"{when:%Y-%m-%d}-annonce-{number}.md"
        path.write_text(text, encoding="utf-8")
        made.append(path)
    return made


def pelican_article(path: Path, target: Path) -> None:
    """The same text as a Pelican Markdown article (metadata lines, then the body)."""
    text = path.read_text(encoding="utf-8")
    front, body = text.split("+++", 2)[1:]
    title = re.search(r'^title = "(.*)"$', front, re.M)
    assert title is not None
    body = re.sub(r"\{\{.*?\}\}", "à toutes et à tous", body)
    target.write_text(f"Title: {title.group(1)}\nDate: {path.stem[:10]} 10:00\n"
                      f"Slug: {path.stem}\nLang: fr\n\n{body}", encoding="utf-8")


def mtimes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def _children_cpu() -> tuple[float, float]:
    """(user + system, system) CPU seconds of the finished child processes."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime, used.ru_stime


Timing = tuple[float, float, float, int]


def timed(command: list[str], cwd: Path, output: Path) -> Timing:
    """(seconds, CPU seconds of the command, of which system, files written or rewritten
    in `output`). CPU time is what to compare on a shared machine: wall time counts the
    waits for a core that other work holds."""
    before = mtimes(output) if output.exists() else {}
    (cpu, system), started = _children_cpu(), time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    cpu_after, system_after = _children_cpu()
    after = mtimes(output)
    return (seconds, cpu_after - cpu, system_after - system,
            sum(1 for p, m in after.items() if before.get(p) != m))


def touch_one(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8").replace("Bonjour", "Bonjour encore", 1),
                    encoding="utf-8")
    later = path.stat().st_mtime + 60
    os.utime(path, (later, later))


def run_once(count: int, work: Path) -> dict[str, Timing]:
    ws = work / "ws"
    made = campaigns(ws / "campaigns", count)
    shutil.copy(ROOT / "config.example.toml", ws / "config.toml")
    content = work / "pelican" / "content"
    content.mkdir(parents=True)
    for path in made:
        pelican_article(path, content / path.name)
    (work / "pelican" / "pelicanconf.py").write_text(
        'SITENAME = "Labo Cités"\nSITEURL = ""\nTIMEZONE = "Europe/Paris"\n'
        'DEFAULT_LANG = "fr"\nFEED_ALL_ATOM = "feed.xml"\nDEFAULT_PAGINATION = False\n',
        encoding="utf-8")
    citesmail = [str(CITESMAIL), "publish", "--drafts", "-o", "site"]
    pelican_cmd = [str(pelican()), "content", "-o", "output", "-s", "pelicanconf.py"]
    results = {"citesmail cold": timed(citesmail, ws, ws / "site")}
    touch_one(made[count // 2])
    results["citesmail one changed"] = timed(citesmail, ws, ws / "site")
    results["citesmail nothing changed"] = timed(citesmail, ws, ws / "site")
    out = work / "pelican" / "output"
    results["pelican cold"] = timed(pelican_cmd, work / "pelican", out)
    touch_one(content / made[count // 2].name)
    results["pelican one changed"] = timed(pelican_cmd, work / "pelican", out)
    results["pelican nothing changed"] = timed(pelican_cmd, work / "pelican", out)
    return results


def compiled() -> None:
    """citesmail's modules compiled to bytecode, as `pip install` compiled Pelican's. An
    editable install under PYTHONDONTWRITEBYTECODE compiles them again at every run
    (about 0.04 CPU seconds), which an installed citesmail never does."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src" / "citesmail")],
                   check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    pelican()
    compiled()
    runs = []
    with tempfile.TemporaryDirectory() as work:  # deleted after the last run (above)
        for number in range(args.runs):
            runs.append(run_once(args.count, Path(work) / str(number)))
    print(f"{args.count} campaigns, median of {args.runs} runs")
    print(f"{'case':28} {'seconds':>8} {'CPU s':>8} {'sys s':>8} {'files written':>14}")
    for case in runs[0]:
        seconds, cpu, system, files = (statistics.median(run[case][n] for run in runs)
                                       for n in range(4))
        print(f"{case:28} {seconds:8.2f} {cpu:8.2f} {system:8.2f} {files:14.0f}")


if __name__ == "__main__":
    main()
