"""
Every command the docs show is a tested command.

Each fenced shell block (``sh``, ``bash``, ``console``, ``shell``) of README.md
and docs/*.md is read, and each command line in it is run, in the order of
its page, in a temporary folder with this interpreter's ``zerfoo-cloud`` on
PATH and ``ZERFOO_CLOUD_DB`` set to a temporary store. ``zerfoo-cloud serve``
runs in the background until it answers ``/healthz``, then stops. A command
that cannot run here is listed in `NOT_RUN` with the reason; a command that is
neither run nor listed fails the test, and so does a listed one no page shows.
Every ``zerfoo-cloud`` command of the docs (in prose and comments too) is also
checked against the command's own options, so a page cannot show an option or
subcommand that does not exist. Python blocks must compile.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import click
import pytest

from tests._background import serving
from zerfoo_cloud.cli import cli as cli_group
from zerfoo_cloud.tenants import DEFAULT_CACHE_TTL

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = frozenset({"sh", "bash", "console", "shell"})
FENCE = re.compile(r"^\s*```\s*(\S*)\s*$")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")

#: Commands that cannot run in a test, each with the reason.
NOT_RUN: dict[str, str] = {
    "make test": "runs this whole suite (and lint and mypy) again; CI runs it",
    "make demo": "runs examples/demo.py, which tests/test_examples.py runs",
    "pip install -e '.[server]'": (
        "installs into the environment the tests run in; "
        "test_install_extras_exist checks the extra"
    ),
    "curl -s -X POST https://api.example.com/admin/tenants "
    "-H \"Authorization: Bearer $ADMIN_KEY\" -H 'Content-Type: application/json' "
    '-d \'{"id": "acme", "rate_limit": 600, "token_budget": 200000, '
    '"max_concurrent_requests": 8, "model_allow_list": ["llama-3-8b"]}\'': (
        "calls a deployed service (api.example.com); tests/admin covers the route"
    ),
    'curl -s "https://api.example.com/admin/tenants/acme/usage?since=2025-05-01&by=model" '
    '-H "Authorization: Bearer $ADMIN_KEY"': (
        "calls a deployed service (api.example.com); tests/admin covers the route"
    ),
    "vllm serve meta-llama/Llama-3.1-8B-Instruct --port 8000": (
        "needs vLLM and a GPU; tests/http_pool runs replicas of a toy server"
    ),
    "vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000": (
        "needs vLLM and a GPU; tests/http_pool runs replicas of a toy server"
    ),
    "zerfoo-cloud serve --upstream http://gpu-a:8000/v1 "
    "--upstream http://gpu-b:8000/v1 --upstream http://gpu-c:8000/v1 "
    "--upstream-eject-after 2 --upstream-discovery-interval 60 --host 0.0.0.0": (
        "fronts the vLLM hosts of the example above; its options are checked, "
        "and tests/http_pool/test_pool_serve.py serves a pool of toy servers"
    ),
    "zerfoo-cloud db upgrade --db postgresql://zerfoo@db.internal:5432/zerfoo": (
        "needs the PostgreSQL server of the example (db.internal); "
        "tests/stores/test_postgres.py runs the command against a local one"
    ),
    "zerfoo-cloud serve --upstream http://127.0.0.1:8000/v1 --oidc "
    "/etc/zerfoo-cloud/oidc.toml --public-url https://api.example.com": (
        "needs the operator's --oidc file and client secrets; its options are "
        "checked, and tests/test_serve.py serves an --oidc file against a "
        "test provider"
    ),
    "zerfoo-cloud serve --workers 4 ...": (
        "'...' stands for the app and options of the serve command in "
        "deployment.md; its options are checked"
    ),
}

#: The programs the test runs, and why each is safe to run here.
RUNS: dict[str, str] = {
    "zerfoo-cloud": "the command under test, on a temporary store",
    "export": "sets a variable for the page's later commands",
    "python": "this interpreter, for the one-liners the pages show",
    "rm": "removes folders the rewrites put inside the test's folder",
    "mkdir": "makes folders inside the test's folder",
    "printf": "prints the text a webhook signature covers",
    "openssl": "computes a webhook signature by hand (docs/alerts.md)",
    "base64": "decodes a webhook secret",
    "xxd": "turns a webhook secret's bytes into hex for openssl",
}

#: Commands a page assumes were run before it, as the reader would have.
SETUP: dict[str, list[str]] = {
    "docs/deployment.md": [
        "zerfoo-cloud tenant create acme --rate-limit 600 --token-budget 200000"
    ],
}

#: Rewrites that make a documented command safe to run here, with the reason.
REWRITES: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"/var/lib/zerfoo-cloud"), "$ZC_STORE", "the test's own store"),
    (re.compile(r"/run/zerfoo-cloud"), "$ZC_RUN", "a folder of the test"),
    (re.compile(r"--host 0\.0\.0\.0"), "--host 127.0.0.1", "no outside interface"),
    (re.compile(r"--port \d+"), "--port 0", "a free port, never a fixed one"),
    (
        re.compile(r"(?<![\w/])examples/"),
        f"{ROOT}/examples/",
        "the repository's example files, wherever the test runs",
    ),
    (
        re.compile(r"--workers \d+"),
        "--workers 2",
        "two cores: fast and still multi-process",
    ),
]

#: The apps the pages serve by name, made from the toy app in the folder.
APP_MODULES = {
    "my_server.py": "from toy_openai_app import app\n",
    "my_app.py": "from toy_openai_app import app\n",
    "my_package/__init__.py": "",
    "my_package/main.py": "from toy_openai_app import app as api\n",
}


@attrs.frozen
class Command:
    """One command line of a page: where it is, and its text."""

    page: str
    line: int
    text: str

    @property
    def words(self) -> list[str]:
        """The words of the command, without leading ``NAME=value`` assignments."""
        words = shlex.split(self.text)
        while words and ASSIGNMENT.match(words[0]):
            words.pop(0)
        return words


def _page_name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def split_comment(line: str) -> tuple[str, str]:
    """
    Split a shell line into its command and its ``#`` comment (quotes respected).
    """
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def _quotes_closed(text: str) -> bool:
    try:
        shlex.split(text)
    except ValueError:
        return False
    return True


def fenced_blocks(text: str) -> Iterator[tuple[str, int, list[str]]]:
    """
    Yield (language, line number of the first body line, body lines) per fenced block.
    """
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if not opened:
            i += 1
            continue
        start, body = i + 2, []
        i += 1
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i])
            i += 1
        yield opened.group(1), start, body
        i += 1


def shell_commands(page: str, text: str) -> tuple[list[Command], list[Command]]:
    """
    The commands of the page's shell blocks, and the ``zerfoo-cloud`` commands
    that its comments offer as alternatives (``# or: zerfoo-cloud ...``).
    """
    commands: list[Command] = []
    alternatives: list[Command] = []
    for lang, start, body in fenced_blocks(text):
        if lang not in SHELLS:
            continue
        pending: list[str] = []
        first = start
        for offset, raw in enumerate(body):
            line = raw
            if lang == "console" and not pending:
                if not line.startswith("$ "):
                    continue  # output
                line = line[2:]
            command, comment = split_comment(line)
            alternatives.extend(
                Command(page, start + offset, alt.strip())
                for alt in re.findall(r"(zerfoo-cloud [^;#]+)", comment)
            )
            if not pending:
                first = start + offset
            if command.endswith("\\"):
                pending.append(command[:-1].strip())
                continue
            pending.append(command.strip())
            joined = " ".join(p for p in pending if p)
            if not _quotes_closed(joined):
                continue  # a quoted string goes on in the next line
            pending = []
            if joined:
                commands.append(Command(page, first, joined))
    return commands, alternatives


def prose_commands(page: str, text: str) -> list[Command]:
    """The ``zerfoo-cloud ...`` commands in the page's inline code spans."""
    found = []
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    for span in re.finditer(r"`(zerfoo-cloud [^`]+)`", prose):
        line = prose[: span.start()].count("\n") + 1
        found.append(Command(page, line, " ".join(span.group(1).split())))
    return found


def cli_problems(words: list[str]) -> list[str]:
    """
    What in ``zerfoo-cloud`` command *words* the command does not have:
    unknown subcommands and options.
    """
    assert words[0] == "zerfoo-cloud"
    command: click.Command = cli_group
    path = ["zerfoo-cloud"]
    problems = []
    rest = iter(words[1:])
    for word in rest:
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            if name in {"-h", "--help"}:
                continue
            option = next(
                (
                    p
                    for p in command.params
                    if isinstance(p, click.Option)
                    and name in (*p.opts, *p.secondary_opts)
                ),
                None,
            )
            if option is None:
                problems.append(f"{' '.join(path)} has no option {name}")
            elif not option.is_flag and "=" not in word:
                next(rest, None)
        elif isinstance(command, click.Group):
            sub = command.commands.get(word)
            if sub is None:
                problems.append(f"{' '.join(path)} has no command {word!r}")
                break
            command = sub
            path.append(word)
    return problems


def _all_commands() -> tuple[list[Command], list[Command]]:
    run: list[Command] = []
    checked: list[Command] = []
    for page in PAGES:
        text = page.read_text()
        commands, alternatives = shell_commands(_page_name(page), text)
        run += commands
        checked += commands + alternatives + prose_commands(_page_name(page), text)
    return run, checked


SHELL_COMMANDS, CLI_COMMANDS = _all_commands()


def rewrite(text: str) -> str:
    """The command with every rewrite of `REWRITES` applied."""
    for pattern, replacement, _reason in REWRITES:
        text = pattern.sub(replacement, text)
    return text


def programs(text: str) -> list[str]:
    """The program of each simple command in a shell line (``a && b; c | d``)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    found, first = [], True
    for word in lexer:
        if word in {"&&", "||", ";", "|", "&"}:
            first = True
        elif first and not ASSIGNMENT.match(word):
            found.append(word)
            first = False
    return found


def _is_serve(command: Command) -> bool:
    return command.words[:2] == ["zerfoo-cloud", "serve"]


def _environment(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZERFOO_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        ZERFOO_CLOUD_DB=str(tmp / "store"),
        ZC_STORE=str(tmp / "store"),
        ZC_RUN=str(tmp / "run"),
        PYTHONPATH=os.pathsep.join([str(tmp), str(ROOT / "examples")]),
    )
    return env


def _run_page(page: str, commands: list[Command], tmp: Path) -> None:
    for name, source in APP_MODULES.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(source)
    state = tmp / ".state.sh"
    state.write_text("")
    base_env = _environment(tmp)
    setup = [Command(page, 0, text) for text in SETUP.get(page, [])]
    for command in setup + commands:
        if command.text in NOT_RUN:
            continue
        text = rewrite(command.text)
        where = f"{command.page}:{command.line}: {command.text}"
        unknown = [p for p in programs(text) if p not in RUNS]
        assert not unknown, f"{where}: runs {unknown}: add it to RUNS or NOT_RUN"
        if _is_serve(command):
            script = f". {shlex.quote(str(state))}; {text}"
            with serving(["bash", "-c", script], cwd=tmp, env=base_env):
                pass
            continue
        script = (
            f". {shlex.quote(str(state))}; set -e; {text}\n"
            f"export -p > {shlex.quote(str(state))}"
        )
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp,
            env=base_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{where}\n{done.stdout}{done.stderr}"


PAGES_WITH_COMMANDS = sorted({c.page for c in SHELL_COMMANDS})


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES_WITH_COMMANDS)
def test_page_commands_run(page: str, tmp_path: Path) -> None:
    """Every shell command of the page runs, in order, and succeeds (or is listed)."""
    _run_page(page, [c for c in SHELL_COMMANDS if c.page == page], tmp_path)


def test_every_listed_command_is_shown() -> None:
    """`NOT_RUN` and `SETUP` name only pages and commands the docs still show."""
    shown = {c.text for c in SHELL_COMMANDS}
    assert set(NOT_RUN) <= shown, set(NOT_RUN) - shown
    assert set(SETUP) <= set(PAGES_WITH_COMMANDS)


def test_cli_commands_have_their_options() -> None:
    """Every ``zerfoo-cloud`` command in the docs names commands and options that exist."""
    problems = [
        f"{c.page}:{c.line}: {c.text}: {problem}"
        for c in CLI_COMMANDS
        if c.words and c.words[0] == "zerfoo-cloud"
        for problem in cli_problems(c.words)
    ]
    assert problems == []


def test_the_checks_catch_an_option_that_does_not_exist(tmp_path: Path) -> None:
    """A page showing a missing option or command fails both the check and the run."""
    page = (
        "```sh\nzerfoo-cloud tenant create acme --rate-limit 6 --no-such-option\n```\n"
    )
    commands, _ = shell_commands("docs/fake.md", page)
    assert [c.text for c in commands] == [
        "zerfoo-cloud tenant create acme --rate-limit 6 --no-such-option"
    ]
    assert cli_problems(commands[0].words) == [
        "zerfoo-cloud tenant create has no option --no-such-option"
    ]
    assert cli_problems(["zerfoo-cloud", "tenants", "list"]) == [
        "zerfoo-cloud has no command 'tenants'"
    ]
    with pytest.raises(AssertionError, match=r"No such option.*--no-such-option"):
        _run_page("docs/fake.md", commands, tmp_path)


def test_a_command_neither_run_nor_listed_fails(tmp_path: Path) -> None:
    """A page command whose program the test does not know is not run: the test fails."""
    commands, _ = shell_commands("docs/fake.md", "```sh\ndocker run zerfoo\n```\n")
    with pytest.raises(AssertionError, match=r"runs \['docker'\]"):
        _run_page("docs/fake.md", commands, tmp_path)
    assert programs('rm -rf "$D" && mkdir -p "$D"; A=1 python -c x | wc') == [
        "rm",
        "mkdir",
        "python",
        "wc",
    ]


def test_commands_are_read_as_a_shell_reads_them() -> None:
    """Continuations join, comments drop, console output is skipped, alternatives are kept."""
    page = (
        "```console\n$ zerfoo-cloud audit verify\naudit log intact\n```\n"
        "```sh\nexport A='x # y'   # a comment\n"
        "zerfoo-cloud serve my:app \\\n    --port 9000   # or: zerfoo-cloud serve --upstream http://u/v1\n```\n"
        "Run `zerfoo-cloud usage\nreport` daily.\n"
    )
    commands, alternatives = shell_commands("p.md", page)
    assert [c.text for c in commands] == [
        "zerfoo-cloud audit verify",
        "export A='x # y'",
        "zerfoo-cloud serve my:app --port 9000",
    ]
    assert [c.text for c in alternatives] == [
        "zerfoo-cloud serve --upstream http://u/v1"
    ]
    assert [c.text for c in prose_commands("p.md", page)] == [
        "zerfoo-cloud usage report"
    ]


def test_install_extras_exist() -> None:
    """Every ``pip install -e '.[extra]'`` the docs show names an extra of the package."""
    extras = importlib.metadata.metadata("zerfoo-cloud").get_all("Provides-Extra")
    assert extras
    shown = [c for c in SHELL_COMMANDS if c.words[:2] == ["pip", "install"]]
    assert shown
    for command in shown:
        for word in command.words[2:]:
            named = re.fullmatch(r"[^\[]*\[([\w,-]+)\]", word)
            if word.startswith("-"):
                assert word == "-e", command
            elif named:
                assert word.startswith("."), f"{command}: not from a checkout"
                assert set(named.group(1).split(",")) <= set(extras), command
            else:
                pytest.fail(f"{command.page}:{command.line}: installs {word!r}")


def test_python_blocks_compile() -> None:
    """Every Python block of the docs is valid Python (``await`` allowed at the top)."""
    for page in PAGES:
        for lang, start, body in fenced_blocks(page.read_text()):
            if lang == "python":
                source = textwrap.dedent("\n".join(body))
                name = f"{_page_name(page)}:{start}"
                compile(source, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def _paragraphs(text: str) -> Iterator[str]:
    """The page's paragraphs; each table row and list item is one of its own."""
    for block in re.split(r"\n\s*\n", text):
        yield from re.split(r"\n(?=\s*(?:\||- |\* |\d+\. ))", block)


def _page_params(known: dict[str, str]) -> list[Any]:
    return [
        pytest.param(
            page,
            marks=pytest.mark.xfail(strict=True, reason=known[_page_name(page)])
            if _page_name(page) in known
            else (),
            id=_page_name(page),
        )
        for page in PAGES
    ]


#: Pages that still state the revocation delay otherwise, and how.
OTHER_DELAY: dict[str, str] = {}


@pytest.mark.parametrize("page", _page_params(OTHER_DELAY))
def test_revocation_delay_is_stated_one_way(page: Path) -> None:
    """Where a page says when a key stops working, it gives the lookup cache's TTL."""
    delay = f"{DEFAULT_CACHE_TTL:g} s"
    for paragraph in _paragraphs(page.read_text()):
        flat = " ".join(paragraph.split())
        if re.search(r"stops? working|retires? a key", flat):
            assert delay in flat, flat
            assert "second" not in flat, flat


#: Pages that name a variable the code does not read.
UNKNOWN_VARIABLES: dict[str, str] = {}

#: Variables the tests read (the docs tell how to run them), each with the
#: file that reads it.
TEST_VARIABLES = {
    "ZERFOO_CLOUD_CHROMIUM": "tests/browser/conftest.py",
    "ZERFOO_CLOUD_SCREENSHOTS": "tests/browser/conftest.py",
}


@pytest.mark.parametrize("page", _page_params(UNKNOWN_VARIABLES))
def test_environment_variables_exist(page: Path) -> None:
    """
    Every ``ZERFOO_...`` variable a page names is read by the package or an
    example (or, for running the tests, by the test that `TEST_VARIABLES` names).
    """
    code = "".join(
        path.read_text()
        for folder in ("zerfoo_cloud", "examples")
        for path in (ROOT / folder).rglob("*.py")
    )
    read = set(re.findall(r"ZERFOO_[A-Z0-9_]*[A-Z0-9]", code))
    read |= {
        name
        for name, reader in TEST_VARIABLES.items()
        if f'"{name}"' in (ROOT / reader).read_text()
    }
    named = set(re.findall(r"ZERFOO_[A-Z0-9_]*[A-Z0-9]", page.read_text()))
    assert named <= read, named - read
