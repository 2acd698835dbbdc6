"""A files destination written by several senders at once (a worker's `concurrency`): every
acknowledged message lands in exactly one finished file listed in the manifest. Two senders
used to roll the same spool at once: the spool was written twice, and a batch appended
between one roll's read and its unlink was acknowledged and lost."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson

from tessera.activation.files import MANIFEST, FilesConnector
from tessera.activation.options import DestinationOptions


def test_concurrent_senders_lose_nothing_and_write_nothing_twice(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    options = DestinationOptions.model_validate(
        {"directory": str(lake), "roll_bytes": 2_000, "roll_seconds": 3600}
    )
    connector = FilesConnector(options, tmp_path / "spool")
    acknowledged: list[str] = []
    guard = threading.Lock()

    def sender(worker: int) -> None:
        for n in range(150):
            message_id = f"w{worker}-{n}"
            outcome = connector.send([{"messageId": message_id, "type": "track", "event": "E"}])
            assert outcome.status == 200, outcome
            with guard:
                acknowledged.append(message_id)

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    connector.roll()
    listed = [entry["name"] for entry in orjson.loads((lake / MANIFEST).read_bytes())["files"]]
    on_disk = sorted(path.name for path in lake.glob("events-*"))
    assert sorted(listed) == on_disk, "a finished file the manifest does not list"
    written = [
        orjson.loads(line)["messageId"]
        for name in listed
        for line in (lake / name).read_bytes().splitlines()
    ]
    assert sorted(written) == sorted(acknowledged)
