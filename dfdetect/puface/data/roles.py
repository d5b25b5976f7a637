"""Identity roles of a cloaking evaluation, drawn from disjoint people by a seed (issue #26): the FR
model's classes (the protected users are drawn among them), the attacker's public target pool
(Fawkes v0.3's "public set" of candidate targets) and the purifier's training identities (the
rest). No person holds two roles; ``roles.json`` in the run says who holds which."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from dfdetect.utils.errors import UserError
from dfdetect.utils.io import write_json

ROLES = ("fr_classes", "target_pool", "purifier")


def draw_roles(identities: Sequence[str], n_fr: int, n_pool: int, n_users: int, seed: int = 0,
               min_test: Mapping[str, int] | None = None) -> dict:  # fmt: skip
    """``{fr_classes, target_pool, purifier, users, seed}``: a seeded permutation of the sorted
    identities cut into ``n_fr`` FR classes, ``n_pool`` target-pool people and the rest for the
    purifier (at least one); ``n_users`` protected users drawn among the FR classes (those with
    ``min_test[identity] >= 1`` test images when given)."""
    people = sorted(set(map(str, identities)))
    if len(people) != len(identities):
        raise UserError("identity names repeat: roles need distinct people")
    if n_fr < 2 or n_pool < 1 or n_fr + n_pool >= len(people):
        raise UserError(f"{len(people)} people cannot give {n_fr} FR classes, {n_pool} target-pool people "
                        "and at least one purifier identity (FR classes >= 2, pool >= 1)")  # fmt: skip
    order = [people[i] for i in np.random.default_rng(seed).permutation(len(people))]
    fr, pool, purifier = (
        sorted(order[:n_fr]),
        sorted(order[n_fr : n_fr + n_pool]),
        sorted(order[n_fr + n_pool :]),
    )
    eligible = [p for p in fr if min_test is None or min_test.get(p, 0) >= 1]
    if n_users > len(eligible):
        raise UserError(f"{n_users} protected users asked for, {len(eligible)} FR classes can be one")
    users = sorted(np.random.default_rng(seed + 1).choice(eligible, size=n_users, replace=False).tolist())
    roles = {"seed": int(seed), "fr_classes": fr, "target_pool": pool, "purifier": purifier, "users": users}
    check_disjoint(roles)
    return roles


def check_disjoint(roles: Mapping) -> None:
    seen: dict[str, str] = {}
    for role in ROLES:
        for person in roles[role]:
            if person in seen:
                raise UserError(f"{person!r} holds two roles: {seen[person]} and {role}")
            seen[person] = role
    outside = sorted(set(roles.get("users", [])) - set(roles["fr_classes"]))
    if outside:
        raise UserError(f"protected users must be FR classes; not: {outside}")


def write_roles(path: str | Path, roles: Mapping) -> None:
    check_disjoint(roles)
    write_json(Path(path), dict(roles))


def read_roles(path: str | Path) -> dict:
    roles = json.loads(Path(path).read_text())
    check_disjoint(roles)
    return roles
