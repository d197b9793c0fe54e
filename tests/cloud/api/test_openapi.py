"""The OpenAPI document is kept true: schemathesis (its real CLI) generates requests from
/v1/openapi.json against a running `pharmasync cloud serve` and checks every answer —
no server errors, only documented status codes and content types, responses that match
their schemas, malformed input rejected.

Excluded: positive_data_acceptance. A schema cannot say "a batch whose signatures
verify"; schema-valid random bytes are rightly refused with 400 and a reason.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cloud import serve_child
from tests.conftest import free_port

BIN = Path(sys.executable).parent


def test_the_running_app_conforms_to_its_openapi_document(tmp_path: Path) -> None:
    if not (BIN / "st").exists() or not (BIN / "pharmasync").exists():
        pytest.skip("schemathesis or the pharmasync command is not installed in this venv")
    port = free_port()
    log = (tmp_path / "cloud.log").open("wb")  # a file: a pipe nobody reads would fill and block
    cloud, url = serve_child.start(tmp_path, port, log=log)
    try:
        run = subprocess.run(
            [
                str(BIN / "st"),
                "run",
                f"{url}/v1/openapi.json",
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
                "--max-examples",
                "25",
                "--generation-deterministic",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
    finally:
        cloud.terminate()
        cloud.wait(timeout=30)
        log.close()
    errors = (tmp_path / "cloud.log").read_text()
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    # (aiohttp itself logs, with a traceback, the probes it refuses before any handler runs)
    assert "ERROR pharmasync" not in errors, errors[-4000:]
    # Every operation schemathesis found was tested (batches, log, readings, registry,
    # evidence, events, config, meta: 22 today; a route added later raises the count).
    selected = re.search(r"Selected: (\d+)/(\d+)", run.stdout)
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert selected and tested, run.stdout[-3000:]
    assert selected[1] == selected[2] == tested[1] and int(tested[1]) >= 22, run.stdout[-3000:]
