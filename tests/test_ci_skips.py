"""In CI a skipped integration test is a failure; locally it stays a skip with its reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crampqa.config import PROJECT_ROOT

PROBE = '''
import pytest

@pytest.mark.ray
def test_needs_a_ray_head():
    pytest.skip("no Ray head here")

@pytest.fixture(scope="module")
def server():
    pytest.skip("no Milvus server here")

@pytest.mark.milvus
def test_needs_a_server(server):
    pass

@pytest.mark.shared_data
@pytest.mark.skipif(True, reason="no data set here")
def test_needs_the_shared_data():
    pass

def test_an_ordinary_skip():
    pytest.skip("not needed here")
'''


# a skip in set-up (a fixture, skipif) fails the set-up: pytest counts it as an error
@pytest.mark.parametrize(("ci", "shared", "summary"), [
    ("true", "", "1 failed, 1 skipped, 2 errors"),
    ("", "1", "3 skipped, 1 error"),  # the data sets alone are required
    ("", "", "4 skipped"),
])
def test_a_skipped_integration_test_fails_in_ci(tmp_path: Path, ci: str, shared: str,
                                                summary: str) -> None:
    (tmp_path / "test_probe.py").write_text(PROBE, encoding="utf-8")
    env = {**os.environ, "CI": ci, "CRAMPQA_REQUIRE_SHARED_DATA": shared}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-q", "-p", "no:warnings", str(tmp_path / "test_probe.py")],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert summary in done.stdout, done.stdout + done.stderr
    if ci:
        assert "a test marked ray must run in CI, but it was skipped: no Ray head here" \
            in done.stdout
        assert "a test marked milvus must run in CI, but it was skipped: no Milvus server" \
            in done.stdout
    if ci or shared:
        assert "a test marked shared_data must run in CI, but it was skipped: no data set" \
            in done.stdout
