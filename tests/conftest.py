import pytest


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    """The whole pyramid through Dagster on a small generated sample (tests/pyramid_run.py), once per session."""
    from tests.pyramid_run import make_run

    return make_run(tmp_path_factory)
