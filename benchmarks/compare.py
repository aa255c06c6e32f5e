"""
Every ``make bench`` figure of this tree (HEAD) side by side with another
commit (BASE), measured in one run.

``python -m benchmarks.compare BASE [--quick] [--rounds N] [module ...]``
(or ``make bench-compare BASE=rev``) unpacks BASE with ``git archive`` into
a cached folder (``$ZC_BENCH_CACHE`` or ``~/.cache/zerfoo-cloud/bench-base``),
installs it there in a venv of its own with its own Makefile
(``make .venv/.installed``), then runs each benchmark module that both trees
have, BASE and HEAD in turn, for `ROUNDS` rounds whose order alternates, so
that load from elsewhere on the machine falls on both. Each tree runs its own
benchmark code against its own package: a figure is what ``make bench``
prints at that commit.

Both trees' printed output is read by one parser (`parse`), so a figure has
the same name on both sides whatever the commit; the older tree has no
machine-readable mode. The figure of each side is its best round (the
highest rate, the lowest time), the least disturbed by other load. A figure
more than `TOLERANCE` worse at HEAD is flagged; ratios the benchmarks derive
from other figures in the same row (``x1.23``, ``ratio``) are shown but not
flagged, since their parts are.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import attrs

ROOT = Path(__file__).resolve().parents[1]
#: Rounds per module; the order of the two trees alternates between rounds.
ROUNDS = 2
#: How much worse than BASE a figure may be before it is flagged.
TOLERANCE = 0.10
#: Module constants ``--quick`` sets in both trees (where the module has
#: them): shorter runs, and fewer rows in the two longest benchmarks.
QUICK: dict[str, dict[str, object]] = {
    "bench_http": {"ROUNDS": 3, "MODEL_MILLISECONDS": [1]},
    "bench_durable": {"ROUNDS": 1, "CONNECTIONS": [16, 256]},
    "bench_metering": {
        "GROUP_RECORDS": 100_000,
        "SINGLE_SECONDS": 1.0,
        "AUDIT_ENTRIES": 30_000,
    },
    "bench_resources": {"TOUCHES": 300_000, "CYCLES": 60_000},
    "bench_saml": {"DURATION": 1.5},
}
# Runs one module's main() in a tree, after setting the constants given.
_RUNNER = """\
import importlib, json, sys
module = importlib.import_module("benchmarks." + sys.argv[1])
for name, value in json.loads(sys.argv[2]).items():
    if hasattr(module, name):
        setattr(module, name, tuple(value) if isinstance(value, list) else value)
module.main()
"""

Direction = Literal["higher", "lower", "derived"]

# A cell that is a figure: a number, with a ratio mark or a unit, or alone.
_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
_VALUE = re.compile(
    rf"(?P<x1>x)?(?P<num>{_NUMBER})(?P<x2>x)?"
    r"(?:\s*(?P<unit>req/s|validations/s|/s|µs|us|ms|s)\b|(?P<slash>/s))?"
    r"(?P<note>.*)"
)
# A cell that names its figure: ``ratio 1.23``, ``ratio: 1.23x (...)``.
_NAMED = re.compile(rf"(?P<name>[A-Za-z][A-Za-z -]*?):?\s+(?P<value>{_NUMBER}x?.*)")
_CELL = re.compile(r"\S+(?: \S+)*")
_WORD = re.compile(r"\S+")
_NUMBER_ONLY = re.compile(_NUMBER)
_HIGHER = ("/s",)
_LOWER = ("µs", "us", "ms", "s")


@attrs.frozen
class Figure:
    """One printed figure: its value, unit and which way is better."""

    value: float
    unit: str
    direction: Direction


@attrs.frozen
class _Cell:
    text: str
    start: int
    end: int


def _cells(line: str) -> list[_Cell]:
    # Cells are separated by two or more spaces, or by one between numbers
    # (a figure wider than its column).
    cells = []
    for match in _CELL.finditer(line):
        words = list(_WORD.finditer(match.group()))
        if len(words) > 1 and all(_NUMBER_ONLY.fullmatch(w.group()) for w in words):
            start = match.start()
            cells += [
                _Cell(w.group(), start + w.start(), start + w.end()) for w in words
            ]
        else:
            cells.append(_Cell(match.group(), match.start(), match.end()))
    return cells


def _value(text: str) -> Figure | None:
    """The figure *text* is, or None when it is words."""
    match = _VALUE.fullmatch(text)
    if match is None:
        return None
    unit = match["unit"] or match["slash"] or ""
    value = float(match["num"].replace(",", ""))
    if match["x1"] or match["x2"]:
        return Figure(value, "x", "derived")
    if match["note"].strip():
        return None  # a number opening a sentence: "1000 models loaded"
    return Figure(value, unit, _direction(unit))


def _named_value(text: str) -> tuple[str, Figure] | None:
    """The name and figure of a cell such as ``ratio 1.23``, or None."""
    match = _NAMED.fullmatch(text)
    if match is None:
        return None
    figure = _value(match["value"])
    if figure is None:
        return None
    if match["name"] == "ratio":
        figure = Figure(figure.value, "x", "derived")
    return match["name"], figure


def _direction(name: str) -> Direction:
    words = name.split()
    if not words or "ratio" in words or "ceiling" in words:
        return "derived"
    if words[-1].endswith(_HIGHER):
        return "higher"
    if words[-1] in _LOWER:
        return "lower"
    return "derived"


def _pure(text: str) -> bool:
    figure = _value(text)
    return figure is not None and not figure.unit


def parse(output: str) -> dict[str, Figure]:
    """
    The figures of one benchmark module's printed *output*, by name.

    Cells of a line are separated by two or more spaces. A name is
    ``section / row / column``: the section is the last line of one cell
    without a figure above the row. A table row (a label, then only plain
    numbers) takes each column's name from the table's header (the last
    line of several cells without a figure), the header text above each
    number; a column named without a unit has the unit of the nearest
    column on its left that has one, unless it is a ratio. Any other row is
    a label followed by figures that carry a unit (``12,345 /s``,
    ``1.2 µs``), a ratio mark (``x1.23``) or a name (``baseline  123/s``,
    ``ratio 1.23``).
    """
    figures: dict[str, Figure] = {}
    section, header = "", ""
    for line in output.splitlines():
        cells = _cells(line)
        if not cells:
            continue
        if len(cells) > 1 and all(_pure(c.text) for c in cells[1:]):
            _table_row(figures, section, header, cells)
        elif any(_value(c.text) or _named_value(c.text) for c in cells):
            _unit_row(figures, section, cells)
        elif len(cells) > 1:
            header = line
        else:
            section = cells[0].text.rstrip(":")
    return figures


def _add(figures: dict[str, Figure], name: str, figure: Figure) -> None:
    key, n = name, 1
    while key in figures:
        n += 1
        key = f"{name} #{n}"
    figures[key] = figure


def _table_row(
    figures: dict[str, Figure], section: str, header: str, cells: list[_Cell]
) -> None:
    label = cells[0].text
    if _pure(label) and header[: cells[0].end].strip():
        label = f"{header[: cells[0].end].strip()} {label}"
    previous, unit = cells[0].end, ""
    direction: Direction = "derived"
    for index, cell in enumerate(cells[1:], 1):
        column = header[previous : cell.end].strip() or f"column {index}"
        previous = cell.end
        own = _direction(column)
        if own != "derived":
            unit, direction = column.split()[-1], own
        figure = _value(cell.text)
        assert figure is not None
        if "ratio" in column.split() or "ceiling" in column.split():
            figure = Figure(figure.value, "x", "derived")
        else:
            figure = Figure(figure.value, unit, direction)
        _add(figures, f"{section} / {label} / {column}", figure)


def _unit_row(figures: dict[str, Figure], section: str, cells: list[_Cell]) -> None:
    label: list[str] = []
    name = ""
    for cell in cells:
        figure = _value(cell.text)
        if figure is None and (named := _named_value(cell.text)) is not None:
            name, figure = named
        if figure is None:
            if _after_value(cells, cell):
                name = cell.text
            else:
                label.append(cell.text.rstrip(":"))
            continue
        if figure.direction == "derived" and not name:
            name = "ratio"
        key = f"{section} / {' '.join(label)}" + (f" / {name}" if name else "")
        _add(figures, key, figure)
        name = ""


def _after_value(cells: list[_Cell], cell: _Cell) -> bool:
    # Whether a figure comes before *cell* in its row.
    for other in cells:
        if other is cell:
            return False
        if _value(other.text) or _named_value(other.text):
            return True
    return False


# -- running ----------------------------------------------------------------------


def _git(*args: str, cwd: Path = ROOT) -> bytes:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True
    ).stdout


def prepare_tree(revision: str, cache: Path) -> Path:
    """
    The tree of *revision*, unpacked under *cache* and installed in a venv of
    its own by its own Makefile (kept between runs; a failed install is
    started over).
    """
    sha = _git("rev-parse", "--verify", f"{revision}^{{commit}}").decode().strip()
    tree = cache / sha / "tree"
    if (tree / ".venv" / ".installed").exists():
        return tree
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    subprocess.run(
        ["tar", "-x", "-C", str(tree)], input=_git("archive", sha), check=True
    )
    print(f"installing {revision} ({sha[:10]}) in {tree}", flush=True)
    subprocess.run(
        ["make", ".venv/.installed", f"PYTHON={sys.executable}"], cwd=tree, check=True
    )
    return tree


def modules(*trees: Path) -> list[str]:
    """The benchmark modules every one of *trees* has, sorted."""
    names = [
        {p.stem for p in (tree / "benchmarks").glob("bench_*.py")} for tree in trees
    ]
    return sorted(set.intersection(*names))


@attrs.define
class _Run:
    outputs: list[str] = attrs.field(factory=list)
    figures: list[dict[str, Figure]] = attrs.field(factory=list)
    seconds: list[float] = attrs.field(factory=list)
    errors: list[str] = attrs.field(factory=list)


def run_module(tree: Path, module: str, overrides: dict[str, object]) -> str:
    """The printed output of *module*'s ``main()`` run in *tree*'s venv."""
    python = tree / ".venv" / "bin" / "python"
    # A session of its own, so that the servers and writer processes a
    # benchmark starts are ended with it when the comparison is stopped.
    with subprocess.Popen(
        [str(python), "-c", _RUNNER, module, json.dumps(overrides)],
        cwd=tree,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as child:
        try:
            stdout, stderr = child.communicate()
        except BaseException:
            os.killpg(child.pid, signal.SIGKILL)
            raise
    if child.returncode:
        raise RuntimeError(f"{module} in {tree} failed:\n{stderr[-2000:]}")
    return stdout


@attrs.frozen
class Row:
    """One figure at both commits."""

    name: str
    base: Figure | None
    head: Figure | None

    @property
    def ratio(self) -> float | None:
        """HEAD / BASE, or None when either is missing or BASE is zero."""
        if self.base is None or self.head is None or not self.base.value:
            return None
        return self.head.value / self.base.value

    @property
    def worse(self) -> bool:
        """Whether HEAD is more than `TOLERANCE` worse than BASE."""
        ratio = self.ratio
        if ratio is None or self.base is None:
            return False
        if self.base.direction == "higher":
            return ratio < 1 - TOLERANCE
        if self.base.direction == "lower":
            return ratio > 1 + TOLERANCE
        return False


def best(rounds: Sequence[dict[str, Figure]]) -> dict[str, Figure]:
    """
    Each figure's best value over *rounds*: the highest rate, the lowest
    time, the median of a derived ratio.
    """
    names = {name: None for r in rounds for name in r}
    out: dict[str, Figure] = {}
    for name in names:
        seen = [r[name] for r in rounds if name in r]
        values = [f.value for f in seen]
        if seen[0].direction == "higher":
            value = max(values)
        elif seen[0].direction == "lower":
            value = min(values)
        else:
            value = statistics.median(values)
        out[name] = attrs.evolve(seen[0], value=value)
    return out


def compare(base: dict[str, Figure], head: dict[str, Figure]) -> list[Row]:
    """The figures of both sides, in HEAD's order, then those only BASE has."""
    names = list(head) + [n for n in base if n not in head]
    return [Row(n, base.get(n), head.get(n)) for n in names]


def _shown(figure: Figure | None) -> str:
    if figure is None:
        return "-"
    return f"{figure.value:,.2f} {figure.unit}".strip()


def report(rows: Iterable[Row], width: int = 78) -> list[str]:
    """Lines of the comparison table; a flagged figure is marked ``<< worse``."""
    lines = [f"{'figure':<{width}}{'BASE':>22}{'HEAD':>22}{'HEAD/BASE':>11}"]
    for row in rows:
        ratio = row.ratio
        shown = "" if ratio is None else f"{ratio:.3f}"
        name = row.name if len(row.name) <= width - 2 else "…" + row.name[-width + 3 :]
        note = ""
        if row.worse:
            note = "  << worse"
        elif row.base is not None and row.base.direction == "derived":
            note = "  (derived)"
        lines.append(
            f"{name:<{width}}{_shown(row.base):>22}{_shown(row.head):>22}"
            f"{shown:>11}{note}"
        )
    return lines


def main(argv: list[str]) -> int:
    """Compare every figure; exit 1 when one is more than `TOLERANCE` worse."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare")
    parser.add_argument("base", help="the commit to compare with (BASE)")
    parser.add_argument(
        "--head", help="a commit to measure as HEAD (default: this working tree)"
    )
    parser.add_argument("modules", nargs="*", help="bench_* modules (default: all)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--quick", action="store_true", help="shorter runs (QUICK)")
    default_cache = Path(
        os.environ.get("ZC_BENCH_CACHE")
        or Path.home() / ".cache" / "zerfoo-cloud" / "bench-base"
    )
    parser.add_argument("--cache", type=Path, default=default_cache)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_intermixed_args(argv)

    trees = {
        "BASE": prepare_tree(args.base, args.cache),
        "HEAD": prepare_tree(args.head, args.cache) if args.head else ROOT,
    }
    names = args.modules or modules(*trees.values())
    worse: list[str] = []
    dump: dict[str, object] = {}
    for module in names:
        overrides = QUICK.get(module, {}) if args.quick else {}
        runs = {side: _Run() for side in trees}
        for index in range(args.rounds):
            order = ("BASE", "HEAD") if index % 2 == 0 else ("HEAD", "BASE")
            for side in order:
                started = time.perf_counter()
                try:
                    output = run_module(trees[side], module, overrides)
                except RuntimeError as error:
                    runs[side].errors.append(str(error))
                    continue
                runs[side].seconds.append(time.perf_counter() - started)
                runs[side].outputs.append(output)
                runs[side].figures.append(parse(output))
        took = " ".join(
            f"{side} {sum(run.seconds):.0f} s" for side, run in runs.items()
        )
        print(f"== {module}: best of {args.rounds} alternating rounds ({took})")
        for side, run in runs.items():
            for failure in run.errors:
                print(f"   {side} error: {failure}")
        rows = compare(best(runs["BASE"].figures), best(runs["HEAD"].figures))
        print("\n".join(report(rows)), flush=True)
        worse += [f"{module}: {row.name}" for row in rows if row.worse]
        dump[module] = {
            side: {"outputs": run.outputs, "errors": run.errors}
            for side, run in runs.items()
        }
    if args.json:
        args.json.write_text(json.dumps(dump, indent=1))
    print(f"\n{len(worse)} figure(s) more than {TOLERANCE:.0%} worse than BASE")
    for name in worse:
        print(f"   {name}")
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
