"""
The event loop and HTTP parser of ``zerfoo-cloud serve``: ``--loop`` and
``--http``, chosen by `zerfoo_cloud._serve_runtime`.
"""

from __future__ import annotations

import gc
import importlib.util
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests._serving import BIN, ROOT, free_port
from tests.test_serve import running
from zerfoo_cloud import InvalidConfigError, MissingExtraError
from zerfoo_cloud._serve_runtime import (
    GC_THRESHOLDS,
    resolve_loop,
    resolve_parser,
    tune_gc,
)
from zerfoo_cloud.serve import ServeConfig


@contextmanager
def _serving(tmp_path: Path, port: int, *extra: str) -> Iterator[str]:
    """serve the example app on *port* with *extra* options; yield its log."""
    args = [str(BIN / "zerfoo-cloud"), "--db", str(tmp_path / "db"), "serve"]
    args += ["toy_openai_app:app", "--port", str(port), *extra]
    cwd = ROOT / "examples"
    with running(args, port, cwd=cwd):
        yield (cwd / f".server-{port}.log").read_text()


def test_auto_picks_the_fastest_installed_and_names_are_kept() -> None:
    """auto picks uvloop and httptools when installed; a name is kept."""
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    assert resolve_loop("auto") == ("uvloop" if has_uvloop else "asyncio")
    assert resolve_parser("auto") == "httptools"  # the server extra has it
    assert resolve_loop("asyncio") == "asyncio"
    if has_uvloop:
        assert resolve_loop("uvloop") == "uvloop"
    assert resolve_parser("h11") == "h11"
    assert resolve_parser("httptools") == "httptools"


def test_auto_falls_back_and_a_missing_one_named_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without uvloop or httptools, auto falls back; naming one fails clearly."""
    monkeypatch.setitem(sys.modules, "uvloop", None)
    monkeypatch.setitem(sys.modules, "httptools", None)
    assert resolve_loop("auto") == "asyncio"
    assert resolve_parser("auto") == "h11"
    with pytest.raises(MissingExtraError, match=r"'server' extra \(uvloop"):
        resolve_loop("uvloop")
    with pytest.raises(MissingExtraError, match=r"'server' extra \(httptools"):
        resolve_parser("httptools")


@pytest.mark.parametrize("bad", ["", "Auto", "trio", "h2"])
def test_unknown_choices_are_refused(bad: str) -> None:
    """Only the listed names are accepted, by the resolvers and the config."""
    with pytest.raises(ValueError, match="must be one of"):
        resolve_loop(bad)
    with pytest.raises(ValueError, match="must be one of"):
        resolve_parser(bad)
    with pytest.raises(InvalidConfigError, match="http_parser"):
        ServeConfig(db="x", upstream="http://u", http_parser=bad)


def test_the_parser_round_trips_through_the_environment() -> None:
    """Each worker reads the parser from the configuration serve wrote."""
    config = ServeConfig(db="x", upstream="http://u", http_parser="h11")
    env = {"ZERFOO_CLOUD_SERVE_CONFIG": config.to_env()}
    assert ServeConfig.from_env(env).http_parser == "h11"


@pytest.mark.parametrize(
    ("loop", "parser"), [("asyncio", "h11"), ("asyncio", "httptools")]
)
def test_serve_runs_on_the_loop_and_parser_named(
    tmp_path: Path, loop: str, parser: str
) -> None:
    """
    serve says which loop and parser it runs, serves on them, and the
    request-head limit holds with either.
    """
    port = free_port()
    extra = ["--loop", loop, "--http", parser, "--max-header-bytes", "1024"]
    with _serving(tmp_path, port, *extra) as log:
        assert f"on {loop} and {parser};" in log
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            s.sendall(b"GET /healthz HTTP/1.1\r\nx-pad: " + b"a" * 2048 + b"\r\n\r\n")
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 431"), answer


def test_serve_refuses_an_unknown_loop() -> None:
    """--loop takes only auto, asyncio or uvloop."""
    done = subprocess.run(
        [str(BIN / "zerfoo-cloud"), "--db", "x", "serve", "--loop", "trio"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "'trio' is not one of" in done.stderr


def test_tune_gc_freezes_startup_objects_and_collects_less_often() -> None:
    """The collector's thresholds are raised and startup objects frozen."""
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > before[0]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_serve_picks_uvloop_and_httptools_by_default(tmp_path: Path) -> None:
    """The default loop and parser are auto: uvloop and httptools when installed."""
    loop = resolve_loop("auto")
    with _serving(tmp_path, free_port()) as log:
        assert f"on {loop} and httptools;" in log
