"""
The reading and judging of ``benchmarks/compare.py``: printed benchmark
output in, named figures and flags out. Nothing is timed here.
"""

from __future__ import annotations

import pytest

from benchmarks.compare import Figure, Row, best, compare, parse, report

# The shapes the benchmark modules print, copied from their output.
HTTP = """\
In-process overhead per request (full stack on LMDB vs bare app):
                                    bare µs  wrapped µs  ratio  added µs  median added  writers CPU µs
  billing and audit from writer processes:
  asgi json                            12.3        88.4    7.2      76.1          80.0            20.5
  asgi sse 100 chunks                 120.3       388.4    3.2     268.1         270.0            40.5
  billing and audit from writer threads:
  asgi json                            12.4        99.4    8.0      87.0          90.0
  target: under 50 µs added per JSON request; writers CPU: what the writer processes spend per request, on other cores
Of which LMDB tenant and limit operations, each once per request:
  key lookup (cached)                      1.1 µs
  admission (slot, request, tokens)       11.5 µs
The middleware alone (memory stores, a tenant without limits):
                             bare µs  wrapped µs  added µs  ratio
wsgi json                       10.0        60.0      50.0   6.00
asgi json                        0.8       120.2     119.4 153.31
Throughput through uvicorn, one worker, 16 keep-alive connections:
                         bare req/s pass-through  wrapped  ratio  ceiling  added µs
model call 1 ms                9000         8000     6000   0.67     0.89      55.6
"""

DURABLE = """\
Model call of 1 ms through uvicorn, one worker, median of 3 alternating rounds:
 connections  durable req/s  opt-out req/s  ratio  added µs
          16           3631           5891   0.62     105.7
  target: ratio >= 0.90; added µs: server time per request, durable minus opt-out
"""

LIMITS = """\
   limiter decisions, single thread (baseline: limits' fastest of
   moving-window and sliding-window on memory storage)
   limits moving-window (memory)                               157,958 /s   x0.64
   get_by_api_key lookups (1,000 tenants)
   memory store                                              1,214,540 /s
"""

OTHERS = """\
   single process
   request_started + finish                                 3.11 us   x2.93 of baseline
   1000 models loaded; baseline: OrderedDict under a threading.Lock
   touch                             3,281,412/s   baseline    4,251,980/s   ratio 0.77
   billing, TokenMeter group commit                           123,456.7 /s   x5,000 the baseline (target >= 100,000/s)
   fixture: 1,000,000 records in big transactions                    5.1 s
   query one tenant's day (320 records)                              1.3 ms
   zerfoo-cloud SAMLProvider:      2345 validations/s
   ratio: 1.23x (target: > 1)
"""


def test_table_rows_take_their_column_names_from_the_header() -> None:
    figures = parse(HTTP)
    processes = "billing and audit from writer processes / asgi json"
    assert figures[f"{processes} / bare µs"] == Figure(12.3, "µs", "lower")
    assert figures[f"{processes} / added µs"] == Figure(76.1, "µs", "lower")
    assert figures[f"{processes} / writers CPU µs"] == Figure(20.5, "µs", "lower")
    # Without a unit of its own, a column has the one on its left.
    assert figures[f"{processes} / median added"] == Figure(80.0, "µs", "lower")
    assert figures[f"{processes} / ratio"] == Figure(7.2, "x", "derived")
    # The same row label under another section is another figure.
    threads = "billing and audit from writer threads / asgi json / added µs"
    assert figures[threads].value == 87.0
    sse = "billing and audit from writer processes / asgi sse 100 chunks / bare µs"
    assert figures[sse].value == 120.3


def test_a_header_cell_with_one_inner_space_is_cut_at_the_numbers() -> None:
    figures = parse(HTTP)
    row = "Throughput through uvicorn, one worker, 16 keep-alive connections"
    row += " / model call 1 ms"
    assert figures[f"{row} / bare req/s"] == Figure(9000, "req/s", "higher")
    assert figures[f"{row} / pass-through"] == Figure(8000, "req/s", "higher")
    assert figures[f"{row} / wrapped"] == Figure(6000, "req/s", "higher")
    assert figures[f"{row} / ceiling"].direction == "derived"
    assert figures[f"{row} / added µs"] == Figure(55.6, "µs", "lower")
    middleware = "The middleware alone (memory stores, a tenant without limits)"
    assert figures[f"{middleware} / wsgi json / wrapped µs"].value == 60.0
    # A figure wider than its column leaves one space before it.
    assert figures[f"{middleware} / asgi json / added µs"].value == 119.4
    assert figures[f"{middleware} / asgi json / ratio"].value == 153.31


def test_unit_rows() -> None:
    figures = parse(HTTP)
    lmdb = "Of which LMDB tenant and limit operations, each once per request"
    assert figures[f"{lmdb} / admission (slot, request, tokens)"] == Figure(
        11.5, "µs", "lower"
    )
    # Nothing in the prose lines is a figure.
    assert not [name for name in figures if "target" in name]


def test_a_numeric_row_label_is_named_by_its_header() -> None:
    figures = parse(DURABLE)
    section = (
        "Model call of 1 ms through uvicorn, one worker, median of 3 alternating rounds"
    )
    assert figures[f"{section} / connections 16 / durable req/s"] == Figure(
        3631, "req/s", "higher"
    )
    assert figures[f"{section} / connections 16 / ratio"].direction == "derived"
    assert len(figures) == 4


def test_rates_ratios_and_named_figures() -> None:
    figures = parse(LIMITS + OTHERS)
    assert figures[
        "moving-window and sliding-window on memory storage)"
        " / limits moving-window (memory)"
    ] == Figure(157_958, "/s", "higher")
    assert figures[
        "moving-window and sliding-window on memory storage)"
        " / limits moving-window (memory) / ratio"
    ] == Figure(0.64, "x", "derived")
    assert figures["get_by_api_key lookups (1,000 tenants) / memory store"] == Figure(
        1_214_540, "/s", "higher"
    )
    assert figures["single process / request_started + finish"] == Figure(
        3.11, "us", "lower"
    )
    models = "1000 models loaded; baseline: OrderedDict under a threading.Lock"
    assert figures[f"{models} / touch"] == Figure(3_281_412, "/s", "higher")
    assert figures[f"{models} / touch / baseline"] == Figure(4_251_980, "/s", "higher")
    assert figures[f"{models} / touch / ratio"] == Figure(0.77, "x", "derived")
    group = f"{models} / billing, TokenMeter group commit"
    assert figures[group] == Figure(123_456.7, "/s", "higher")
    assert figures[f"{group} / ratio"] == Figure(5000, "x", "derived")
    fixture = f"{models} / fixture: 1,000,000 records in big transactions"
    assert figures[fixture] == Figure(5.1, "s", "lower")
    assert figures[f"{models} / query one tenant's day (320 records)"] == Figure(
        1.3, "ms", "lower"
    )
    assert figures[f"{models} / zerfoo-cloud SAMLProvider"] == Figure(
        2345, "validations/s", "higher"
    )
    assert figures[f"{models} /  / ratio"] == Figure(1.23, "x", "derived")


def test_a_repeated_name_is_numbered() -> None:
    figures = parse("   touch   12 /s\n   touch   13 /s\n")
    assert figures[" / touch"].value == 12
    assert figures[" / touch #2"].value == 13


def test_the_best_round_is_kept() -> None:
    rounds = [
        {"rate": Figure(100, "/s", "higher"), "time": Figure(5, "µs", "lower")},
        {"rate": Figure(120, "/s", "higher"), "time": Figure(6, "µs", "lower")},
        {"rate": Figure(90, "/s", "higher"), "ratio": Figure(2, "x", "derived")},
    ]
    kept = best(rounds)
    assert kept["rate"].value == 120
    assert kept["time"].value == 5
    assert kept["ratio"].value == 2


@pytest.mark.parametrize(
    ("base", "head", "worse"),
    [
        (Figure(100, "/s", "higher"), Figure(90.1, "/s", "higher"), False),
        (Figure(100, "/s", "higher"), Figure(89.9, "/s", "higher"), True),
        (Figure(100, "µs", "lower"), Figure(109.9, "µs", "lower"), False),
        (Figure(100, "µs", "lower"), Figure(110.1, "µs", "lower"), True),
        (Figure(1.0, "x", "derived"), Figure(5.0, "x", "derived"), False),
        (Figure(0, "µs", "lower"), Figure(5.0, "µs", "lower"), False),
    ],
)
def test_a_figure_more_than_ten_percent_worse_is_flagged(
    base: Figure, head: Figure, worse: bool
) -> None:
    assert Row("f", base, head).worse is worse


def test_figures_only_one_side_has_are_listed_not_flagged() -> None:
    rows = compare(
        {"both": Figure(10, "/s", "higher"), "old": Figure(1, "/s", "higher")},
        {"both": Figure(5, "/s", "higher"), "new": Figure(1, "/s", "higher")},
    )
    assert [r.name for r in rows] == ["both", "new", "old"]
    assert [r.worse for r in rows] == [True, False, False]
    assert rows[1].ratio is None
    lines = report(rows)
    assert lines[1].endswith("<< worse")
    assert "0.500" in lines[1]
    assert lines[2].split()[1:3] == ["-", "1.00"]
