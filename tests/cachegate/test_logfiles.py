"""Log files: buffered lines in one format, JSON lines that parse whatever the target, reopened by path."""
from __future__ import annotations

import io
import json

import pytest

from cachegate.logfiles import AccessLines, LineFile, quoted, reopen_all
from proxy.accesslog import AccessLog


def test_a_file_is_reopened_at_its_path_after_it_was_moved(tmp_path):
    path = tmp_path / "logs" / "x-access.log"
    out = LineFile(path)
    out.write("one\n")
    path.rename(tmp_path / "logs" / "x-access.log.1")
    out.write("two\n")  # still the moved file, as a process sees it before the signal
    reopen_all()
    out.write("three\n")
    out.close()
    assert (tmp_path / "logs" / "x-access.log.1").read_text() == "one\ntwo\n"
    assert path.read_text() == "three\n"
    reopen_all()  # a closed file is forgotten: nothing is opened again
    assert path.read_text() == "three\n"


@pytest.mark.parametrize("target", ['/users/1?q="x"', "/a\\b", "/é", "/\x7f"])
def test_json_lines_parse_whatever_the_target_holds(target):
    log = AccessLog(io.StringIO(), fmt="json")
    log.write("rid-1", "GET", target, 200, "GET /users/{id:int}", "cachegate; hit; ttl=3", None, 0.0012)
    log.write("rid-2", "GET", "/users/1", 502, "GET /users/{id:int}", "cachegate; fwd=miss", 0.0021, 0.003)
    log.flush()
    first, second = (json.loads(line) for line in log.stream.getvalue().splitlines())
    assert first["target"] == target and first["upstream_ms"] is None and first["total_ms"] == 1.2
    assert (second["status"], second["upstream_ms"], second["cache"]) == (502, 2.1, "cachegate; fwd=miss")
    assert quoted("plain") == '"plain"' and json.loads(quoted('a"b\\c\n')) == 'a"b\\c\n'


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="expected one of text, json"):
        AccessLines(LineFile(stream=io.StringIO()), "xml")
