"""The identity graph, in memory: stitching one event's identifiers into a profile.

Pure and deterministic: the same events in the same order give the same profiles, ids
and ledger, which is what lets `tessera rebuild` reproduce the incremental state.

The rule, per event (after Segment Unify):
1. Take the event's identifiers in priority order (user_id first, cookies last).
2. Keep each one unless keeping it would break a rule: more identifiers of a type
   than its limit in the resulting profile, a pair someone unmerged, or a profile at
   the circuit breaker's size absorbing more. A dropped identifier is a conflict,
   recorded in the ledger; it is not linked by this event (if it is new, it starts a
   profile of its own, without the event).
3. The kept identifiers' profiles merge into the oldest; new identifiers join it; with
   no known identifier a new profile starts.
4. A probabilistic link in force (a match found by `matching.py`, above its threshold or
   accepted in review) whose two identifiers are now both known merges their profiles,
   under the same rules as step 2: a limit (two user ids), an unmerge or the circuit
   breaker refuses it as a conflict. It is applied by the event that made the second of
   the two known, so a rebuild applies it at the same place in the log.
Every link and merge is recorded with the event that caused it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from tessera.identity.identifiers import Identifier
from tessera.identity.rules import MergeRules


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One fact of the merge ledger.

    kind: `new` (a profile starts with `identifier`), `link` (`other` joins because it
    was seen with `identifier`), `merge` (`other_profile` folded into `profile` because
    `identifier` and `other` were seen together), `conflict` (`identifier` dropped from
    the event by `rule`), `breaker` (`profile` reached the size limit), `dropped` (a value
    sent as an identifier could not be one: `identifier` holds its type and masked value,
    `other` its fingerprint as `sha256:...`, `rule` the reason; `profile` is the event's, or
    empty when the event had no usable identifier at all).
    """

    seq: int
    kind: str
    profile: str
    identifier: Identifier | None
    other: Identifier | None = None
    other_profile: str | None = None
    rule: str | None = None


def profile_id_for(seq: int, first: Identifier) -> str:
    """Deterministic: a rebuild gives every profile the id it had."""
    digest = hashlib.blake2b(f"{seq}|{first}".encode(), digest_size=8).hexdigest()
    return f"prf_{digest}"


class IdentityGraph:
    def __init__(self, rules: MergeRules) -> None:
        self.rules = rules
        self.profile_of: dict[Identifier, str] = {}
        self.members: dict[str, list[Identifier]] = {}
        self.counts: dict[str, Counter[str]] = {}
        self.created: dict[str, int] = {}
        #: absorbed profile -> the live profile it now belongs to (always one hop)
        self.redirect: dict[str, str] = {}
        #: live profile -> every profile merged into it
        self.absorbed: dict[str, list[str]] = {}
        self.flagged: dict[str, str] = {}
        # What changed since the last `drain()`: the pipeline persists it.
        self.ledger: list[LedgerEntry] = []
        self.new_links: list[tuple[Identifier, str, int]] = []
        #: when each identifier was first linked (the seq of its event)
        self.first_seq: dict[Identifier, int] = {}
        self.changed_profiles: set[str] = set()

    @classmethod
    def from_rows(
        cls,
        rules: MergeRules,
        profiles: Iterable[tuple[str, int, str | None, str | None]],
        identities: Iterable[tuple[Identifier, str, int]],
    ) -> IdentityGraph:
        """The graph as it was persisted, with nothing pending to drain.

        Args:
            rules: the merge rules the graph stitches with from now on.
            profiles: every profile as (profile_id, created_seq, merged_into, flagged):
                absorbed ones redirect to the live profile they were merged into.
            identities: every link as (identifier, the profile it was linked to, the seq
                of the event that linked it), in the order they were linked.
        """
        graph = cls(rules)
        for profile, created, merged_into, flagged in profiles:
            graph.created[profile] = created
            if merged_into is not None:
                graph.redirect[profile] = merged_into
                graph.absorbed.setdefault(merged_into, []).append(profile)
            else:
                graph.members[profile] = []
                graph.counts[profile] = Counter()
            if flagged:
                graph.flagged[profile] = flagged
        for identifier, profile, seq in identities:
            graph.profile_of[identifier] = profile
            graph.first_seq[identifier] = seq
            live = graph.resolve(profile)
            graph.members[live].append(identifier)
            graph.counts[live][identifier.type] += 1
        return graph

    # -- queries ----------------------------------------------------------------

    def resolve(self, profile: str) -> str:
        return self.redirect.get(profile, profile)

    def profile(self, identifier: Identifier) -> str | None:
        found = self.profile_of.get(identifier)
        return self.resolve(found) if found is not None else None

    # -- stitching --------------------------------------------------------------

    def stitch(self, seq: int, identifiers: list[Identifier]) -> str | None:
        """Attach one event's identifiers; return the profile the event belongs to."""
        if not identifiers:
            return None
        # The common case, inlined (it runs for every event): every identifier already
        # belongs to one live profile, so nothing changes.
        profile_of, redirect = self.profile_of, self.redirect
        first: str | None = None
        for identifier in identifiers:
            found = profile_of.get(identifier)
            if found is None:
                break
            found = redirect.get(found, found)
            if first is None:
                first = found
            elif found != first:
                break
        else:
            return first
        kept: list[Identifier] = []
        profiles: list[str] = []
        fresh: list[Identifier] = []
        for identifier in sorted(identifiers, key=self.rules.priority):
            profile = self.profile(identifier)
            trial_profiles = (
                profiles if profile is None or profile in profiles else [*profiles, profile]
            )
            trial_fresh = [*fresh, identifier] if profile is None else fresh
            broken = self._broken_rule(trial_profiles, trial_fresh)
            if broken is not None:
                anchor = profiles[0] if profiles else (profile or "")
                self.ledger.append(LedgerEntry(seq, "conflict", anchor, identifier, rule=broken))
                continue
            kept.append(identifier)
            profiles, fresh = trial_profiles, trial_fresh
        linked_before = len(self.new_links)
        survivor = self._apply(seq, kept, profiles, fresh)
        for identifier in identifiers:
            if self.profile_of.get(identifier) is None:
                # Dropped by a rule and seen nowhere else: it starts a profile of its own
                # (without this event), so it is not lost and can still be found.
                self._apply(seq, [identifier], [], [identifier])
        if self.rules.matches:
            self._link_matches(seq, [i for i, _, _ in self.new_links[linked_before:]])
            survivor = self.resolve(survivor)
        return survivor

    def _link_matches(self, seq: int, arrived: list[Identifier]) -> None:
        """Step 4: merge along the probabilistic links of identifiers that just arrived,
        when the partner is known and the rules allow it (else a conflict)."""
        for identifier in arrived:
            for partner, label in self.rules.matches.get(identifier, ()):
                mine, theirs = self.profile(identifier), self.profile(partner)
                if mine is None or theirs is None or mine == theirs:
                    continue
                broken = self._broken_rule([mine, theirs], [])
                if broken is not None:
                    self.ledger.append(
                        LedgerEntry(seq, "conflict", mine, partner, rule=f"{label}: {broken}")
                    )
                    continue
                survivor, other = sorted((mine, theirs), key=lambda p: (self.created[p], p))
                anchor, pair = (identifier, partner) if survivor == mine else (partner, identifier)
                self._merge(seq, survivor, other, anchor, pair, rule=label)

    def _apply(
        self, seq: int, kept: list[Identifier], profiles: list[str], fresh: list[Identifier]
    ) -> str:
        if not profiles:
            anchor = kept[0]
            survivor = profile_id_for(seq, anchor)
            self.members[survivor] = []
            self.counts[survivor] = Counter()
            self.created[survivor] = seq
            self.ledger.append(LedgerEntry(seq, "new", survivor, anchor))
            self._attach(seq, survivor, anchor)
            fresh = [i for i in fresh if i != anchor]
        else:
            survivor = min(profiles, key=lambda p: (self.created[p], p))
            # The edges the ledger records start from an identifier the survivor already
            # holds, so `explain` can walk from any identifier to any other.
            anchor = next(i for i in kept if self.profile(i) == survivor)
            for other in profiles:
                if other != survivor:
                    pair = next(i for i in kept if self.profile(i) == other)
                    self._merge(seq, survivor, other, anchor, pair)
        for identifier in fresh:
            self._attach(seq, survivor, identifier)
            self.ledger.append(LedgerEntry(seq, "link", survivor, anchor, identifier))
        if (
            len(self.members[survivor]) >= self.rules.max_identifiers
            and survivor not in self.flagged
        ):
            reason = f"reached {self.rules.max_identifiers} identifiers"
            self.flagged[survivor] = reason
            self.ledger.append(LedgerEntry(seq, "breaker", survivor, None, rule=reason))
        self.changed_profiles.add(survivor)
        return survivor

    def _broken_rule(self, profiles: list[str], fresh: list[Identifier]) -> str | None:
        """Which rule joining these profiles and new identifiers would break, if any."""
        if len(profiles) + len(fresh) <= 1:
            return None  # a single profile, or a single new identifier, changes nothing
        flagged, members = self.flagged, self.members
        if flagged and any(p in flagged for p in profiles):
            return "circuit breaker: profile is at its size limit"
        size = sum(len(members[p]) for p in profiles) + len(fresh)
        if size > self.rules.max_identifiers:
            return f"circuit breaker: more than {self.rules.max_identifiers} identifiers"
        # Identifiers per type once joined (it runs for every event that links: plain
        # dict arithmetic, no Counter built and merged).
        totals: dict[str, int] = {}
        for identifier in fresh:
            totals[identifier.type] = totals.get(identifier.type, 0) + 1
        for profile in profiles:
            for kind, count in self.counts[profile].items():
                totals[kind] = totals.get(kind, 0) + count
        rule = self.rules.rule
        for kind, count in totals.items():
            limit = rule(kind).limit
            if limit is not None and count > limit:
                return f"limit: at most {limit} {kind} per profile"
        if self.rules.blocked and self._joins_blocked(profiles, fresh):
            return "unmerged: these identifiers were separated by hand"
        return None

    def _joins_blocked(self, profiles: list[str], fresh: list[Identifier]) -> bool:
        together = set(fresh)
        for profile in profiles:
            together.update(self.members[profile])
        return any(
            identifier in together and not partners.isdisjoint(together)
            for identifier, partners in self.rules.blocked.items()
        )

    def _attach(self, seq: int, profile: str, identifier: Identifier) -> None:
        self.profile_of[identifier] = profile
        self.first_seq[identifier] = seq
        self.members[profile].append(identifier)
        self.counts[profile][identifier.type] += 1
        self.new_links.append((identifier, profile, seq))

    def _merge(
        self,
        seq: int,
        survivor: str,
        other: str,
        anchor: Identifier,
        pair: Identifier,
        rule: str | None = None,
    ) -> None:
        self.ledger.append(
            LedgerEntry(seq, "merge", survivor, anchor, pair, other_profile=other, rule=rule)
        )
        self.members[survivor].extend(self.members.pop(other))
        self.counts[survivor].update(self.counts.pop(other))
        moved = [other, *self.absorbed.pop(other, [])]
        for absorbed in moved:
            self.redirect[absorbed] = survivor
        self.absorbed.setdefault(survivor, []).extend(moved)
        if other in self.flagged:
            self.flagged.setdefault(survivor, self.flagged.pop(other))
        self.changed_profiles.update((survivor, *moved))

    def drain(self) -> tuple[list[LedgerEntry], list[tuple[Identifier, str, int]], set[str]]:
        """Hand over (and forget) what changed since the last drain."""
        changes = (self.ledger, self.new_links, self.changed_profiles)
        self.ledger, self.new_links, self.changed_profiles = [], [], set()
        return changes
