"""Identity roles of the LFW evaluation: disjoint people, seeded, users among the FR classes, and
the roles file written and read back (issue #26)."""

from __future__ import annotations

import pytest

from dfdetect.puface.data.roles import ROLES, check_disjoint, draw_roles, read_roles, write_roles
from dfdetect.utils.errors import UserError

PEOPLE = [f"person_{i:03d}" for i in range(128)]


def test_roles_are_disjoint_and_cover_everyone():
    roles = draw_roles(PEOPLE, n_fr=64, n_pool=32, n_users=24, seed=3)
    sets = [set(roles[r]) for r in ROLES]
    assert [len(s) for s in sets] == [64, 32, 32]
    assert set().union(*sets) == set(PEOPLE)
    assert all(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1 :])
    assert len(roles["users"]) == 24 and set(roles["users"]) <= sets[0]


def test_roles_follow_the_seed():
    a, b = draw_roles(PEOPLE, 64, 32, 24, seed=0), draw_roles(PEOPLE, 64, 32, 24, seed=0)
    c = draw_roles(PEOPLE, 64, 32, 24, seed=1)
    assert a == b and a["fr_classes"] != c["fr_classes"]


def test_users_need_test_images():
    min_test = {p: (1 if p.endswith(("0", "1", "2")) else 0) for p in PEOPLE}
    roles = draw_roles(PEOPLE, 64, 32, 5, seed=0, min_test=min_test)
    assert all(min_test[u] == 1 for u in roles["users"])


def test_a_person_in_two_roles_is_refused(tmp_path):
    roles = draw_roles(PEOPLE, 10, 5, 2, seed=0)
    write_roles(tmp_path / "roles.json", roles)
    assert read_roles(tmp_path / "roles.json") == roles
    bad = {**roles, "target_pool": roles["target_pool"] + [roles["fr_classes"][0]]}
    with pytest.raises(UserError, match="two roles"):
        check_disjoint(bad)
    with pytest.raises(UserError, match="must be FR classes"):
        check_disjoint({**roles, "users": [roles["purifier"][0]]})
    with pytest.raises(UserError, match="cannot give"):
        draw_roles(PEOPLE[:10], 8, 2, 1)
