"""The storage contract suite against S3 (moto over real HTTP, multipart included): every
test of ``tests/unit/storage/test_contract.py`` that takes ``case`` runs here with an S3
backend, and no multipart upload may be left behind."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator

import pytest

from common.storage.s3 import S3Backend
from tests.fixtures.s3 import S3Server
from tests.unit.storage import test_contract as contract
from tests.unit.storage.test_contract import PART, Case

pytestmark = pytest.mark.integration



def _for_any_backend(name: str, test: object) -> bool:
    """A contract test: takes ``case`` and does not pick its own backends (``indirect``)."""
    if not name.startswith("test_") or not callable(test):
        return False
    picks = any(m.name == "parametrize" and "case" in str(m.args[0])
                for m in getattr(test, "pytestmark", []))
    return "case" in inspect.signature(test).parameters and not picks


globals().update((n, t) for n, t in vars(contract).items() if _for_any_backend(n, t))


def _s3_leftovers(backend: S3Backend) -> Callable[[], list[str]]:
    def leftovers() -> list[str]:
        uploads = backend.client.list_multipart_uploads(Bucket=backend.bucket).get("Uploads", [])
        return [u["Key"] for u in uploads]

    return leftovers


@pytest.fixture
def case(s3_server: S3Server, s3_bucket: str) -> Iterator[Case]:
    s3 = S3Backend(
        **s3_server.backend_kwargs(s3_bucket), prefix="pre/fix", part_size=PART, concurrency=2
    )
    yield Case(s3, _s3_leftovers(s3))
    s3.close()
