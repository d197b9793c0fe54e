"""cloud/startup.py: the argument types refuse at parse time what cannot work, `explain`
turns a failure to start into one line and leaves a bug alone, a usage error is one line.
(tests/test_cli.py runs the real commands against each failure.)"""

from __future__ import annotations

import argparse
import errno
import socket
from pathlib import Path

import pytest

from cloud import startup


@pytest.mark.parametrize("text", ["0", "65536", "99999", "-1", "http", ""])
def test_port_refuses_what_cannot_be_listened_on(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"want a port number 1\.\.65535"):
        startup.port(text)


def test_port_host_and_folder_accept_what_works(tmp_path: Path) -> None:
    assert (startup.port("1"), startup.port("65535")) == (1, 65535)
    assert startup.host("localhost") == "localhost" and startup.host("::1") == "::1"
    assert startup.data_dir(str(tmp_path)) == tmp_path
    assert startup.data_dir(str(tmp_path / "new" / "deeper")) == tmp_path / "new" / "deeper"


def test_data_dir_refuses_a_file_or_a_path_through_one(tmp_path: Path) -> None:
    a_file = tmp_path / "f"
    a_file.write_text("")
    with pytest.raises(argparse.ArgumentTypeError, match="is a file, want a folder"):
        startup.data_dir(str(a_file))
    with pytest.raises(argparse.ArgumentTypeError, match=f"cannot create .*: {a_file} is a file"):
        startup.data_dir(str(a_file / "sub" / "dir"))


def test_explain_names_the_reason_and_leaves_bugs_alone() -> None:
    in_use = OSError(errno.EADDRINUSE, "error while attempting to bind: address already in use")
    assert startup.explain(in_use) == (
        "error while attempting to bind: address already in use "
        "(another process listens there: stop it or choose another port)"
    )
    exists = FileExistsError(errno.EEXIST, "File exists", "/etc/passwd")
    assert startup.explain(exists) == "/etc/passwd: File exists (it exists and is not a folder)"
    gai = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert startup.explain(gai) == "cannot resolve a host name: Name or service not known"
    assert startup.explain(startup.StartupError("why")) == "why"
    assert startup.explain(ValueError("a bug")) is None
    assert startup.explain(KeyError("a bug")) is None


def test_redact_hides_a_database_password() -> None:
    assert startup.redact("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert startup.redact("postgresql://u@h/db") == "postgresql://u@h/db"


def test_a_usage_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    parser = startup.Parser(prog="pharmasync x")
    parser.add_argument("--port", type=startup.port)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--port", "70000"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "pharmasync x: error: argument --port: got 70000, want a port number 1..65535 "
        "(see pharmasync x --help)\n"
    )


def test_help_keeps_examples_as_written_and_wraps_prose() -> None:
    from device.cliutil import examples, examples_of

    parser = startup.Parser(
        prog="pharmasync x",
        description="word " * 40,
        epilog=examples("pharmasync x --a 1", "pharmasync x --b 'two words'"),
    )
    text = parser.format_help()
    assert "\n  pharmasync x --a 1\n  pharmasync x --b 'two words'\n" in text
    assert max(len(line) for line in text.splitlines()) < 100
    assert examples_of(parser) == ["pharmasync x --a 1", "pharmasync x --b 'two words'"]
