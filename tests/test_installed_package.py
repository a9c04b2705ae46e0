"""An installed package works as the editable checkout does: the files a wheel carries (setuptools' build_py,
the step that fills a wheel) hold the sample map and the suites, and the commands run from them alone."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package's files as a wheel would install them, built from this checkout."""
    build = tmp_path_factory.mktemp("build")
    subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "egg_info", "--egg-base", str(build),
         "build_py", "--build-lib", str(build / "lib")],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    return build / "lib"


def pyramid(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed), "DAGSTER_HOME": str(cwd / ".dagster")}
    env.pop("PYRAMID_DATA_ROOT", None)
    env.pop("PYRAMID_MAP", None)
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_installed_files_carry_the_sample_map_and_the_suites(installed):
    assert (installed / "pipelines" / "sample" / "pyramid.yaml").read_bytes() == (ROOT / "pyramid.yaml").read_bytes()
    for suite in (ROOT / "expectations").glob("*.json"):
        assert (installed / "assets" / "quality" / "expectations" / suite.name).read_bytes() == suite.read_bytes()


def test_the_installed_files_carry_the_cdnow_example_map(installed):
    example = Path("pipelines") / "examples" / "cdnow" / "pyramid.yaml"
    assert (installed / example).read_bytes() == (ROOT / example).read_bytes()


def test_an_installed_package_inits_checks_generates_and_runs_a_day_outside_the_checkout(installed, tmp_path):
    probe = subprocess.run(
        [sys.executable, "-c", "import assets, pipelines; print(assets.__file__); print(pipelines.__file__)"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(installed)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert all(line.startswith(str(installed)) for line in probe.stdout.split())  # not the checkout's modules
    assert pyramid(installed, tmp_path, "init", "program").returncode == 0
    program = tmp_path / "program"
    checked = pyramid(installed, program, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    generated = pyramid(installed, program, "generate", "--users", "400", "--days", "1")
    assert generated.returncode == 0, generated.stdout + generated.stderr
    ran = pyramid(installed, program, "run")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (program / "data" / "lake" / "goals" / "north_star").is_dir()
