"""gunicorn.conf.py keeps the garbage collector off the long-lived objects of a worker:
frozen after start, and again after its 1st, 10th, 100th and 1,000th request (what
Django builds lazily on the first requests), never after the others."""

from __future__ import annotations

import gc
import importlib.util
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _gunicorn_conf() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "gunicorn.conf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()  # leave this test process's collector as it found it


@pytest.mark.parametrize("count", [1, 10, 100, 1000])
def test_a_worker_freezes_what_it_made_after_these_requests(unfrozen, count) -> None:
    conf = _gunicorn_conf()
    kept = [object() for _ in range(10)]  # long-lived objects made since the start

    conf.post_request(SimpleNamespace(nr=count), None, None, None)

    assert gc.get_freeze_count() >= len(kept)


@pytest.mark.parametrize("count", [2, 11, 99, 1001, 5000])
def test_other_requests_leave_the_collector_alone(unfrozen, count) -> None:
    conf = _gunicorn_conf()

    conf.post_request(SimpleNamespace(nr=count), None, None, None)

    assert gc.get_freeze_count() == 0
