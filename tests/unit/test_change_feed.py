"""The pipeline's change feed: what a reader gets for its mark."""

from __future__ import annotations

from tessera.pipeline.changes import ChangeFeed


def test_a_reader_gets_the_profiles_changed_after_its_mark() -> None:
    feed = ChangeFeed()
    assert feed.since(0) == (0, frozenset())
    feed.post({"a", "b"})
    mark = feed.mark
    feed.post({"b", "c"})
    feed.post(set())  # nothing changed: no post
    assert feed.since(0) == (2, {"a", "b", "c"})
    assert feed.since(mark) == (2, {"b", "c"})
    assert feed.since(2) == (2, frozenset())


def test_everyone_or_a_reader_too_far_behind_reads_everyone() -> None:
    feed = ChangeFeed(kept=2)  # profile ids over all posts
    feed.post({"a"})
    feed.post({"b"})
    feed.post({"c"})  # three held: the oldest post is dropped
    assert feed.since(0) == (3, None)
    assert feed.since(1) == (3, {"b", "c"})
    feed.post_everyone()
    assert feed.since(3) == (4, None)
    feed.post({"d"})
    assert feed.since(4) == (5, {"d"})
