"""Look-ups under load: the pipeline's loaded graph holds every identity the store holds, so
an identifier it lacks is NotFound without asking the store (a client polling for a person
not processed yet cost a query over `identities` each time)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tessera.errors import NotFound
from tessera.identity.identifiers import Identifier
from tessera.profiles import reader
from tessera.runtime import Runtime
from tessera.settings import Settings
from tests.integration.helpers import send


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    opened = Runtime.open(Settings(data_dir=tmp_path / "data"))
    yield opened
    opened.close()


def test_a_miss_in_the_loaded_graph_is_not_found_and_a_hit_is_the_live_profile(
    runtime: Runtime,
) -> None:
    send(runtime, [{"type": "identify", "userId": "u1", "messageId": "m1",
                    "traits": {"email": "jane@example.com"}}])  # fmt: skip
    runtime.pipeline.process()
    found = runtime.pipeline.find_in_memory(Identifier("email", "jane@example.com"))
    assert found is not None and found.startswith("prf_")
    with pytest.raises(NotFound, match=r"no profile has email:nobody@example\.com"):
        runtime.pipeline.find_in_memory(Identifier("email", "nobody@example.com"))
    # The 360° view answers the same from memory and from the store.
    with pytest.raises(NotFound):
        reader.from_memory(runtime, "email:nobody@example.com")
    # Any type is allowed, but one close to a standard type is likely a typo: said so.
    typo = r"'mail' is not a standard type: did you mean 'email'\?"
    with pytest.raises(NotFound, match=typo):
        reader.from_memory(runtime, "mail:jane@example.com")
    for custom in ("crm_id:7", "work_email:jane@example.com", "service_id:7"):
        with pytest.raises(NotFound) as missed:
            reader.from_memory(runtime, custom)
        assert "did you mean" not in str(missed.value), custom
    runtime.pipeline.forget_memory()
    assert runtime.pipeline.find_in_memory(Identifier("email", "jane@example.com")) is None
    with pytest.raises(NotFound, match=r"no profile has email:nobody@example\.com"):
        reader.show(runtime, "email:nobody@example.com", 0)
    with pytest.raises(NotFound, match=typo):
        reader.show(runtime, "mail:jane@example.com", 0)
