import gc
from collections.abc import Iterator

import pytest
from celery.signals import worker_process_init
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from controlplane.boot import prepare_web_process


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
def test_prepare_web_process__no_secret_key__refuses_to_start() -> None:
    with override_settings(SECRET_KEY=""), pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        prepare_web_process()

    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("unfrozen")
def test_prepare_web_process__views_imported_and_heap_frozen() -> None:
    prepare_web_process()

    assert gc.get_freeze_count() > 10_000
    assert gc.isenabled()


@pytest.mark.usefixtures("unfrozen")
def test_worker_process_init__pool_process__heap_frozen() -> None:
    worker_process_init.send(sender=None)

    assert gc.get_freeze_count() > 10_000
    assert gc.isenabled()
