"""Taxonomies in the IAB Tech Lab format: the Audience Taxonomy (whose ids third-party
segments use) and the Content Taxonomy (page categories).

The files are tab-separated with a header row naming `Unique ID`, `Parent ID` (or `Parent`),
a name column and `Tier 1` ... `Tier N`; some have a title row above the header, a blank
first column, or Windows line ends. A node's path is its tiers joined with " > ", e.g.
"Interest > Travel > Adventure Travel". Bad rows go to a reject file with the reason.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tessera.errors import InvalidImportFile
from tessera.events import rejects as reject_files
from tessera.results import Result
from tessera.store import Store


@dataclass(frozen=True)
class TaxonomyNode:
    id: str
    parent_id: str | None
    name: str
    path: str
    tier: int
    extension: str | None


@dataclass
class ParsedTaxonomy:
    nodes: list[TaxonomyNode]
    rejects: list[tuple[int, str, str]]  # (line, reason, raw row)


class TaxonomySummary(Result):
    """A loaded taxonomy: its name, how many nodes, how many tiers."""

    taxonomy: str
    nodes: int
    tiers: int | None


class TaxonomyEntry(Result):
    """One node of a taxonomy, with how many children and third-party members it has."""

    id: str
    parent_id: str | None
    name: str
    path: str
    tier: int | None
    extension: Any
    children: int
    members: int


class TaxonomyLoaded(Result):
    """A taxonomy loaded: its name, how many nodes, and the rows refused (with the file
    that lists them)."""

    taxonomy: str
    nodes: int
    rejected: int
    reject_file: str | None


def default_name(path: Path) -> str:
    stem = path.stem.lower()
    if "audience" in stem:
        return "iab-audience"
    if "content" in stem:
        return "iab-content"
    return re.sub(r"[^a-z0-9-]+", "-", stem).strip("-") or "taxonomy"


def parse(lines: Iterable[str]) -> ParsedTaxonomy:
    """Rows of a taxonomy file → nodes and rejected rows (pure)."""
    reader = csv.reader((line.rstrip("\r\n") for line in lines), delimiter="\t")
    header: dict[str, int] | None = None
    nodes: list[TaxonomyNode] = []
    rejects: list[tuple[int, str, str]] = []
    seen: set[str] = set()
    for number, row in enumerate(reader, start=1):
        cells = [cell.strip() for cell in row]
        if header is None:
            if "Unique ID" in cells:
                header = {name: index for index, name in enumerate(cells) if name}
            continue
        if not any(cells):
            continue
        raw = "\t".join(row)
        node, problem = _node(cells, header)
        if problem is None and node is not None and node.id in seen:
            problem = f"Unique ID {node.id} appears twice"
        if problem or node is None:
            rejects.append((number, problem or "unreadable row", raw))
            continue
        seen.add(node.id)
        nodes.append(node)
    if header is None:
        raise InvalidImportFile(
            "no header row with 'Unique ID' found: is this an IAB taxonomy TSV file?"
        )
    known = {node.id for node in nodes}
    kept = []
    for node in nodes:
        if node.parent_id and node.parent_id not in known:
            rejects.append(
                (0, f"parent {node.parent_id} of {node.id} is not in the file", node.path)
            )
        else:
            kept.append(node)
    return ParsedTaxonomy(kept, rejects)


def _node(cells: list[str], header: dict[str, int]) -> tuple[TaxonomyNode | None, str | None]:
    def cell(*names: str) -> str:
        for name in names:
            index = header.get(name)
            if index is not None and index < len(cells):
                return cells[index]
        return ""

    unique_id = cell("Unique ID")
    if not unique_id:
        return None, "no Unique ID"
    tiers = [cell(f"Tier {n}") for n in range(1, 8)]
    tiers = [tier for tier in tiers if tier]
    if not tiers:
        return None, f"node {unique_id} has no tier names"
    name = tiers[-1]
    extension = cell("*Extension Notes", "Extension Notes", "Extension") or None
    parent = cell("Parent ID", "Parent") or None
    return TaxonomyNode(unique_id, parent, name, " > ".join(tiers), len(tiers), extension), None


def load(store: Store, path: Path, name: str, rejects_dir: Path) -> TaxonomyLoaded:
    """Replace taxonomy `name` with the file's nodes; returns counts and the reject file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidImportFile(f"cannot read {path}: {e}") from e
    parsed = parse(text.splitlines())
    rows = [(name, n.id, n.parent_id, n.name, n.path, n.tier, n.extension) for n in parsed.nodes]
    parents = {n.id: n.parent_id for n in parsed.nodes}
    closure = [(name, ancestor, node) for node in parents for ancestor in _ancestors(node, parents)]
    with store.transaction():
        store.execute("DELETE FROM taxonomy_nodes WHERE taxonomy = ?", [name])
        store.execute("DELETE FROM taxonomy_closure WHERE taxonomy = ?", [name])
        if rows:
            store.execute(
                "INSERT INTO taxonomy_nodes SELECT * FROM (SELECT unnest(?) AS t, unnest(?), "
                "unnest(?), unnest(?), unnest(?), unnest(?), unnest(?))",
                [list(column) for column in zip(*rows, strict=True)],
            )
            store.execute(
                "INSERT INTO taxonomy_closure SELECT unnest(?), unnest(?), unnest(?)",
                [list(column) for column in zip(*closure, strict=True)],
            )
    reject_file = reject_files.write(rejects_dir, f"taxonomy-{name}.rejects.csv", parsed.rejects)
    return TaxonomyLoaded(
        taxonomy=name,
        nodes=len(parsed.nodes),
        rejected=len(parsed.rejects),
        reject_file=reject_file,
    )


def _ancestors(node: str, parents: dict[str, str | None]) -> list[str]:
    """The node itself and every ancestor (a cycle stops the walk)."""
    found: list[str] = []
    current: str | None = node
    while current is not None and current not in found:
        found.append(current)
        current = parents.get(current)
    return found


def taxonomies(store: Store) -> list[TaxonomySummary]:
    rows = store.fetch_dicts(
        "SELECT taxonomy, count(*) AS nodes, max(tier) AS tiers FROM taxonomy_nodes "
        "GROUP BY taxonomy ORDER BY taxonomy"
    )
    return [TaxonomySummary(**row) for row in rows]


def browse(
    store: Store,
    taxonomy: str,
    *,
    parent: str | None = None,
    search: str | None = None,
    limit: int = 200,
) -> list[TaxonomyEntry]:
    """Children of `parent` (top tier without), or nodes whose path contains `search`;
    each with its number of third-party members (unexpired, any provider)."""
    if search:
        where, params = "n.taxonomy = ? AND n.path ILIKE '%' || ? || '%'", [taxonomy, search]
    elif parent:
        where, params = "n.taxonomy = ? AND n.parent_id = ?", [taxonomy, parent]
    else:
        where, params = "n.taxonomy = ? AND n.parent_id IS NULL", [taxonomy]
    rows = store.fetch_dicts(
        "SELECT n.id, n.parent_id, n.name, n.path, n.tier, n.extension, "
        "(SELECT count(*) FROM taxonomy_nodes k WHERE k.taxonomy = n.taxonomy "
        " AND k.parent_id = n.id) AS children, "
        "(SELECT count(DISTINCT t.identifier_type || ':' || t.identifier_value) "
        " FROM third_party_memberships t JOIN taxonomy_closure c ON c.taxonomy = t.taxonomy "
        " AND c.descendant = t.segment_id WHERE c.taxonomy = n.taxonomy AND c.ancestor = n.id "
        " AND t.expires_at > CAST(now() AS TIMESTAMP)) AS members "
        f"FROM taxonomy_nodes n WHERE {where} ORDER BY n.path LIMIT ?",
        [*params, limit],
    )
    return [TaxonomyEntry(**row) for row in rows]


def known_references(store: Store) -> set[str]:
    """Every id and (lower-case) path a segment may name with `has third_party`."""
    rows = store.fetch_all("SELECT id, lower(path) FROM taxonomy_nodes")
    return {value for row in rows for value in row}
