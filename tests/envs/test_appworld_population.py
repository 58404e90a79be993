"""The seeded AppWorld-style population: byte stability, uniqueness, the supervisor's circle, households,
relationship invariants, ages, JSON round trips and lookup errors."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import date, datetime
from itertools import combinations
from pathlib import Path

import pytest

from agentdistill_appworld import population
from agentdistill_appworld.population import (
    EMAIL_DOMAINS,
    FEMALE_FIRST_NAMES,
    KINDS,
    LAST_NAMES,
    MALE_FIRST_NAMES,
    MIN_PEOPLE,
    UNISEX_FIRST_NAMES,
    Population,
    Relationship,
    make_population,
)

APPWORLD_DIR = Path(__file__).resolve().parents[2] / "envs" / "appworld"
SEEDS = (0, 1, 7, 42, 2024)
HOUSEHOLD_KINDS = {"partner", "family", "roommate"}


def _sha(pop: Population) -> str:
    return hashlib.sha256(pop.to_json().encode()).hexdigest()


def _age(birthday: str, now: str) -> int:
    b, today = date.fromisoformat(birthday), datetime.fromisoformat(now).date()
    return today.year - b.year - ((today.month, today.day) < (b.month, b.day))


@pytest.fixture(scope="module")
def pop() -> Population:
    return make_population(0)


@pytest.fixture(scope="module")
def pops() -> list[Population]:
    """Several seeds and sizes, including the smallest allowed and a leap-day "now"."""
    return ([make_population(s) for s in SEEDS] + [make_population(s, n=MIN_PEOPLE) for s in SEEDS]
            + [make_population(3, n=250), make_population(5, now="2024-02-29T08:30:00")])


# ---------------------------------------------------------------------------------------------- determinism


def test_same_arguments_give_byte_identical_json():
    assert make_population(11).to_json() == make_population(11).to_json()
    args = {"seed": 11, "n": 40, "now": "2023-01-02"}
    assert make_population(**args).to_json() == make_population(**args).to_json()


def test_json_is_byte_identical_in_a_fresh_process_with_another_hash_seed():
    code = ("import hashlib, sys; sys.path.insert(0, sys.argv[1]); "
            "from agentdistill_appworld.population import make_population; "
            "print(hashlib.sha256(make_population(123).to_json().encode()).hexdigest())")
    env = {**os.environ, "PYTHONHASHSEED": "987"}  # str hashing differs from this process's
    out = subprocess.run([sys.executable, "-c", code, str(APPWORLD_DIR)], capture_output=True, text=True,
                         env=env, check=True, timeout=60)
    assert out.stdout.strip() == _sha(make_population(123))


def test_different_seeds_give_different_populations():
    hashes = {_sha(make_population(s)) for s in (0, 1, 2, 3)}
    assert len(hashes) == 4
    a, b = make_population(5), make_population(-5)  # an int seed's sign would be dropped by random.seed
    assert a.people != b.people
    assert make_population(0).people != make_population(1).people


def test_now_is_normalised_and_stored():
    p = make_population(0, now="2023-07-01")
    assert p.now == "2023-07-01T00:00:00"
    assert make_population(0).now == "2024-05-15T10:00:00"


# ---------------------------------------------------------------------------------------------- people


def test_ids_emails_and_phones_are_unique_and_well_formed(pops):
    for p in pops:
        assert [x.person_id for x in p.people] == list(range(len(p.people)))
        assert len({x.email for x in p.people}) == len(p.people)
        assert len({x.phone for x in p.people}) == len(p.people)
        for x in p.people:
            assert re.fullmatch(r"[a-z0-9]+\.[a-z0-9]+[0-9]*@[a-z]+\.example", x.email), x.email
            assert x.email.split("@")[1] in EMAIL_DOMAINS
            assert re.fullmatch(r"555\d{7}", x.phone), x.phone
            assert x.gender in {"female", "male", "nonbinary"}
            assert x.first_name and x.last_name and x.occupation
            assert re.fullmatch(r"\d{5}", x.address.zip_code) and re.fullmatch(r"[A-Z]{2}", x.address.state)
            assert x.address.country == "USA"


def test_email_collisions_get_a_number():
    # Full names are kept unique where the name lists allow, so drive the e-mail step with three namesakes.
    builder = population._Builder(0, MIN_PEOPLE, datetime(2024, 5, 15))
    for pid in range(3):
        builder.people.append(population._Draft(pid, 0, "female", "Maya", "Da Silva", date(1990, 1, 1)))
    emails, phones = builder._contacts()
    assert [e.split("@")[0] for e in emails] == ["maya.dasilva", "maya.dasilva2", "maya.dasilva3"]
    assert len(set(phones)) == 3


def test_name_lists_are_varied():
    assert 110 <= len(FEMALE_FIRST_NAMES) + len(MALE_FIRST_NAMES) + len(UNISEX_FIRST_NAMES) <= 130
    assert 110 <= len(LAST_NAMES) <= 130
    for names in (FEMALE_FIRST_NAMES, MALE_FIRST_NAMES, UNISEX_FIRST_NAMES, LAST_NAMES):
        assert len(set(names)) == len(names)
    assert 4 <= len(EMAIL_DOMAINS) <= 6 and all(d.endswith(".example") for d in EMAIL_DOMAINS)


def test_birthdays_make_everyone_18_to_80_at_now(pops):
    for p in pops:
        ages = [_age(x.birthday, p.now) for x in p.people]
        assert min(ages) >= 18 and max(ages) <= 80, (p.seed, min(ages), max(ages))
    assert max(_age(x.birthday, "2024-05-15") for x in make_population(3, n=250).people) >= 60


# ---------------------------------------------------------------------------------------------- relationships


def test_relationships_refer_to_people_and_keep_their_direction(pops):
    for p in pops:
        pairs = set()
        for r in p.relationships:
            assert r.kind in KINDS
            assert 0 <= r.a < len(p.people) and 0 <= r.b < len(p.people) and r.a != r.b
            if r.kind != "manager":  # a manager tie is (manager, report), so either order occurs
                assert r.a < r.b, r
            assert date.fromisoformat(r.since) < datetime.fromisoformat(p.now).date(), r
            pair = (min(r.a, r.b), max(r.a, r.b))
            assert pair not in pairs, f"two kinds for one pair {pair}"
            pairs.add(pair)
        assert Counter(r.kind for r in p.relationships).keys() == set(KINDS)


def test_the_supervisor_circle(pops):
    for p in pops:
        assert p.supervisor_id == 0 and p.supervisor.person_id == 0
        ties = p.relations_of(0)
        kinds = Counter(k for _, k in ties)
        assert len(ties) >= 20, (p.seed, kinds)
        assert kinds.keys() == set(KINDS)
        assert kinds["roommate"] >= 2 and kinds["family"] >= 3 and kinds["partner"] >= 1, kinds
        assert kinds["friend"] >= 5 and kinds["coworker"] >= 4 and kinds["manager"] >= 1, kinds
        boss = p.manager_of(0)
        assert boss is not None and any(r.kind == "manager" and (r.a, r.b) == (boss.person_id, 0)
                                        for r in p.relationships)
        assert p.supervisor in p.reports_of(boss.person_id)


def test_relations_of_is_sorted_and_filters_by_kind(pop):
    ties = pop.relations_of(0)
    assert [o.person_id for o, _ in ties] == sorted(o.person_id for o, _ in ties)
    friends = pop.relations_of(0, "friend")
    assert friends == [(o, k) for o, k in ties if k == "friend"] and friends
    with pytest.raises(ValueError, match="unknown relationship kind 'enemy'"):
        pop.relations_of(0, "enemy")


def test_everyone_has_someone(pops):
    for p in pops:
        assert all(p.relations_of(x.person_id) for x in p.people)


# ---------------------------------------------------------------------------------------------- households


def test_households_share_addresses(pops):
    for p in pops:
        kind_of = {(min(r.a, r.b), max(r.a, r.b)): r.kind for r in p.relationships}
        for r in p.relationships:
            if r.kind in {"partner", "roommate"}:  # partners and roommates always live together
                assert p.person(r.a).address == p.person(r.b).address, r
        homes = p.households()
        assert sum(len(h) for h in homes) == len(p.people)
        assert any(len(h) >= 3 for h in homes)
        for home in homes:  # people under one roof are always tied by a household kind
            for x, y in combinations(home, 2):
                assert kind_of.get((x.person_id, y.person_id)) in HOUSEHOLD_KINDS, (x, y)
        sup_home = next(h for h in homes if p.supervisor in h)
        assert len(sup_home) >= 4  # partner and two roommates


def test_families_span_homes_and_do_not_always_share_a_name(pops):
    p = pops[0]
    family = [r for r in p.relationships if r.kind == "family"]
    assert any(p.person(r.a).address != p.person(r.b).address for r in family)  # grown children moved out
    assert sum(p.person(r.a).last_name == p.person(r.b).last_name for r in family) > len(family) // 2
    partners = [r for r in p.relationships if r.kind == "partner"]
    assert any(p.person(r.a).last_name != p.person(r.b).last_name for r in partners)
    assert any(p.person(r.a).last_name == p.person(r.b).last_name for r in partners)


def test_only_kin_share_the_supervisor_family_name(pops):
    for p in pops:
        kin = {o.person_id for o, k in p.relations_of(0) if k in {"family", "partner"}}
        namesakes = {x.person_id for x in p.people[1:] if x.last_name == p.supervisor.last_name}
        in_laws = {o.person_id for k in kin for o, kind in p.relations_of(k, "partner")}
        assert namesakes <= kin | in_laws, p.seed


def test_coworkers_work_in_teams(pop):
    boss = pop.manager_of(0)
    team = [x.person_id for x in pop.reports_of(boss.person_id)]
    assert 0 in team and len(team) >= 5
    coworkers = {o.person_id for o, _ in pop.relations_of(0, "coworker")}
    assert set(team) - {0} <= coworkers
    assert all(x.occupation not in {"retired", "student"} for x in pop.reports_of(boss.person_id))


# ---------------------------------------------------------------------------------------------- JSON, lookups


def test_json_round_trip(pops):
    for p in pops[:3]:
        text = p.to_json()
        back = Population.from_json(text)
        assert back == p and back.to_json() == text
        assert json.dumps(json.loads(text), sort_keys=True, separators=(",", ":")) == text  # canonical
        assert back.relations_of(0) == p.relations_of(0)


def test_from_json_rejects_broken_documents(pop):
    data = json.loads(pop.to_json())
    data["people"][1]["email"] = data["people"][0]["email"]
    with pytest.raises(ValueError, match="e-mails must be unique"):
        Population.from_json(json.dumps(data))
    data = json.loads(pop.to_json())
    rel = next(r for r in data["relationships"] if r["kind"] == "friend")
    rel["a"], rel["b"] = rel["b"], rel["a"]
    with pytest.raises(ValueError, match="must have a < b"):
        Population.from_json(json.dumps(data))
    with pytest.raises(ValueError, match="not a population"):
        Population.from_json('{"people": []}')


def test_lookups(pop):
    x = pop.person(5)
    assert pop.by_email(x.email) is x and pop.by_email(" " + x.email.upper()) is x
    assert pop.by_phone(x.phone) is x
    assert pop.by_phone(f"{x.phone[:3]}-{x.phone[3:6]}-{x.phone[6:]}") is x


def test_lookup_errors_are_clear(pop):
    with pytest.raises(KeyError, match=r"no person with id 100 in this population \(ids are 0\.\.99"):
        pop.person(100)
    with pytest.raises(KeyError, match="no person with id -1"):
        pop.person(-1)
    with pytest.raises(KeyError, match="no person with email 'nobody@inbox.example'"):
        pop.by_email("nobody@inbox.example")
    with pytest.raises(KeyError, match="no person with phone number '5550000000'"):
        pop.by_phone("5550000000" if all(x.phone != "5550000000" for x in pop.people) else "123")
    with pytest.raises(KeyError, match="no person with id 100"):
        pop.relations_of(100)


def test_bad_arguments():
    with pytest.raises(ValueError, match=f"at least {MIN_PEOPLE}"):
        make_population(0, n=MIN_PEOPLE - 1)
    with pytest.raises(TypeError, match="seed must be an int"):
        make_population("0")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        make_population(0, now="yesterday")


def test_relationship_and_repr_are_small(pop):
    assert isinstance(pop.relationships[0], Relationship)
    assert repr(pop).startswith("Population(seed=0, now='2024-05-15T10:00:00', people=100, relationships=")
