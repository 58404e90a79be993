"""Seeded synthetic population for the AppWorld-style env: fictional people, their homes, jobs and ties.

``make_population(seed, n=100, now=...)`` makes ``n`` people living around a frozen "now"; other modules
turn them into app rows (phone contacts, payment friends, shared notes, ...). What is generated:

* **People** — first and last names from the word lists below (mixed genders and cultures, ASCII only),
  a unique e-mail ``first.last@<domain>.example`` (a number is appended on a collision), a unique
  10-digit phone number ``555xxxxxxx`` (the 555 prefix keeps numbers fictional), a birthday that makes
  them 18–80 years old at ``now``, a gender (``female`` / ``male`` / ``nonbinary``), a home address and
  an occupation.
* **Households** — people sharing one address: the supervisor's shared house (supervisor, partner, two
  roommates), singles, couples, families with grown children at home, single parents, groups of
  roommates, and "clans": a parents' home plus grown children living elsewhere (single, with a partner
  or with roommates), often in the same city. Children carry a parent's last name; partners share a
  last name only about half the time, so families do not always share one name.
* **Relationships** — one kind per unordered pair of people, with a ``since`` date before ``now``:

  ============  =============================================================================
  ``partner``   couples; always the same household
  ``family``    parents and children, siblings (also across households); ``since`` = the
                younger one's birthday
  ``roommate``  unrelated people sharing a household
  ``coworker``  members of a team at one of the fictional employers; managers of one employer;
                a few ties across teams of one employer
  ``manager``   a team's manager and each member. **Direction matters**: ``a`` is the manager
                and ``b`` the report, so ``a < b`` need not hold for this kind only
  ``friend``    friend clusters of people of similar age, plus ties for anyone left alone
  ============  =============================================================================

  For every kind except ``manager``, ``a < b``. Where two reasons apply to one pair (roommates who also
  work together) the first one made wins: household ties, then work, then friendship.
* **The supervisor** (the person the agent works for) is always person 0 and has at least 20 relations:
  a partner, 2 roommates, 3+ family members (parents and siblings), a manager who manages them, 5+
  coworkers and 8+ friends. ``make_population`` checks this and fails loudly if it ever did not hold.

Determinism: every random choice comes, in a fixed order, from one ``random.Random`` seeded with the
string ``"agentdistill-appworld-population/<seed>"``. CPython hashes a str seed with SHA-512 (not with
``hash()``, so ``PYTHONHASHSEED`` plays no part), and unlike an int seed (whose sign is dropped) ``-5``
and ``5`` differ. The code never uses the global ``random``, the clock, ``hash()`` or the iteration
order of a set (sets are only asked for membership); lists are sorted by person id before sampling.
So the same ``(seed, n, now)`` gives a byte-identical ``Population.to_json()`` in any process.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from itertools import combinations

__all__ = [
    "CITIES", "EMAIL_DOMAINS", "EMPLOYERS", "FEMALE_FIRST_NAMES", "KINDS", "LAST_NAMES", "MALE_FIRST_NAMES",
    "MIN_PEOPLE", "SUPERVISOR_MINIMUMS", "SUPERVISOR_MIN_RELATIONS", "UNISEX_FIRST_NAMES", "Address",
    "Person", "Population", "Relationship", "make_population",
]

#: Relationship kinds; a pair of people has at most one (the first it gets: home, then work, then friends).
KINDS: tuple[str, ...] = ("family", "partner", "roommate", "friend", "coworker", "manager")

#: Fewest people for which the supervisor's circle (up to ~26 distinct people) always fits.
MIN_PEOPLE = 30

DEFAULT_NOW = "2024-05-15T10:00:00"

# ---------------------------------------------------------------------------------------------- word lists

FEMALE_FIRST_NAMES: tuple[str, ...] = (
    "Maya", "Amara", "Priya", "Sofia", "Hana", "Leila", "Ingrid", "Chiara", "Naledi", "Mei",
    "Yasmin", "Aisha", "Marisol", "Freya", "Zainab", "Olga", "Keiko", "Lucia", "Nadia", "Esther",
    "Rosalind", "Imani", "Signe", "Farah", "Beatriz", "Anjali", "Dalia", "Tove", "Wanjiru", "Ximena",
    "Adaeze", "Colette", "Ines", "Lena", "Noor", "Paloma", "Ruth", "Thandiwe", "Valentina", "Ayesha",
    "Eleni", "Fatima", "Gwen", "Ilse", "Juniper", "Mirela", "Odette", "Pilar", "Rania", "Sunniva",
)

MALE_FIRST_NAMES: tuple[str, ...] = (
    "Tomas", "Arjun", "Kwame", "Mateo", "Hiroshi", "Emeka", "Lars", "Diego", "Rafael", "Omar",
    "Ivan", "Jonah", "Kofi", "Luca", "Bongani", "Caspian", "Dmitri", "Elias", "Felix", "Gustavo",
    "Hamza", "Idris", "Jasper", "Kenji", "Leon", "Malik", "Nikolai", "Oskar", "Pablo", "Rashid",
    "Santiago", "Tariq", "Vikram", "Wendell", "Yusuf", "Zoran", "Anselm", "Bastian", "Cormac", "Dario",
    "Ewan", "Farid", "Gideon", "Hugo", "Ignacio", "Lorenzo", "Nnamdi", "Rohan", "Silas", "Teodor",
)

#: Drawn for nonbinary people, and now and then for anyone.
UNISEX_FIRST_NAMES: tuple[str, ...] = (
    "Alex", "Jordan", "Riley", "Sam", "Robin", "Avery", "Quinn", "Rowan", "Sasha", "Morgan",
    "Kai", "Noa", "Ari", "Emerson", "Jules", "Remy", "Sage", "Tenzin", "Wren", "Marlow",
)

# Surnames of famous namesakes are left out on purpose, so that random pairs rarely name a real celebrity.
LAST_NAMES: tuple[str, ...] = (
    "Okafor", "Lindqvist", "Nakamura", "Castellanos", "Haddad", "Kowalski", "Brennan", "Achterberg",
    "Oyelaran", "Moreau", "Varga", "Tanaka", "Abernathy", "Ferreira", "Park", "Nguyen", "Tran", "Osei",
    "Mensah", "Adeyemi", "Balogun", "Novak", "Horvath", "Petrov", "Rasmussen", "Halvorsen", "Virtanen",
    "Korhonen", "Bianchi", "Esposito", "Greco", "Marchetti", "Fontaine", "Girard", "Lefebvre", "Dubois",
    "Schneider", "Hoffmann", "Keller", "Vogel", "Reyes", "Morales", "Herrera", "Medina", "Aguilar",
    "Salazar", "Quintero", "Navarro", "Vargas", "Ochoa", "Patel", "Sharma", "Iyer", "Reddy", "Menon",
    "Bhatt", "Chaudhry", "Qureshi", "Siddiqui", "Rahman", "Hossain", "Khoury", "Nassar", "Saleh", "Demir",
    "Yilmaz", "Aydin", "Kaya", "Papadopoulos", "Alexiou", "O'Connell", "Gallagher", "Donnelly", "MacLeod",
    "Whitaker", "Holloway", "Pemberton", "Ashworth", "Hargrove", "Caldwell", "Whitfield", "Merriweather",
    "Langley", "Chukwu", "Eze", "Nwosu", "Abiodun", "Mwangi", "Otieno", "Kamau", "Njoroge", "Dlamini",
    "Nkosi", "Mokoena", "Zhang", "Liu", "Huang", "Zhou", "Lin", "Wu", "Sato", "Watanabe", "Kobayashi",
    "Yamamoto", "Choi", "Kang", "Yoon", "Oliveira", "Pereira", "Almeida", "Carvalho", "Da Silva", "Van Dijk",
    "De Vries", "Bakker", "Visser", "Goldberg", "Feldman", "Kaplan", "Quigley", "Popescu", "Ionescu",
    "Zielinski", "Kazlauskas",
)

#: Fictional mail providers; ``.example`` is reserved by RFC 2606, so no address can reach anyone.
EMAIL_DOMAINS: tuple[str, ...] = (
    "inbox.example", "postbox.example", "mailcrate.example", "letterbox.example", "quickpost.example",
)

#: (city, real state code, first three digits of its zip codes). Generic names, no real city intended.
CITIES: tuple[tuple[str, str, str], ...] = (
    ("Ashford Springs", "CO", "806"), ("Millbrook Falls", "NY", "128"), ("Harborview", "WA", "983"),
    ("Cedar Hollow", "OR", "974"), ("Pinecrest Valley", "CA", "956"), ("Riverbend", "TX", "787"),
    ("Lakemont", "MN", "553"), ("Brightwater", "FL", "334"), ("Granite Ridge", "NH", "032"),
    ("Westbrook Park", "IL", "604"), ("Silverlake Junction", "NV", "894"), ("Oak Meadow", "GA", "303"),
    ("Sunfield", "AZ", "852"), ("Northhaven", "MA", "019"), ("Copper Creek", "MT", "597"),
    ("Fairhollow", "VA", "229"), ("Stonebridge", "OH", "431"), ("Willowmere", "NC", "275"),
    ("Bayport Landing", "MD", "216"), ("Red Mesa", "NM", "875"),
)

_STREET_WORDS = (
    "Maple", "Cedar", "Willow", "Birch", "Aspen", "Hawthorn", "Linden", "Sycamore", "Chestnut", "Magnolia",
    "Laurel", "Alder", "Hickory", "Poplar", "Spruce", "Orchard", "Meadow", "Brook", "Ridge", "Harbor",
    "Lantern", "Foxglove", "Heron", "Kingfisher", "Quarry", "Mill", "Copper", "Granite", "Sparrow", "Clover",
    "Thistle", "Briar", "Fern", "Elm", "Oak", "Pine", "Walnut", "Juniper", "Larkspur", "Bramble",
)
_STREET_SECOND_WORDS = ("Hollow", "Creek", "Hill", "Park", "Glen", "View", "Crest", "Field", "Grove", "Bend")
_STREET_SUFFIXES = (
    "Street", "Avenue", "Road", "Lane", "Drive", "Court", "Way", "Place", "Terrace", "Boulevard",
)

#: Fictional employers: (name, teams); a team is (the manager's title, the members' titles).
EMPLOYERS: tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...] = (
    ("Lumen Data Systems", (
        ("engineering manager",
         ("software engineer", "data engineer", "QA analyst", "site reliability engineer")),
        ("product director", ("product manager", "UX designer", "UX researcher")),
    )),
    ("Harborview Medical Center", (
        ("nurse manager", ("registered nurse", "nurse practitioner", "medical assistant")),
        ("clinic administrator", ("medical receptionist", "billing specialist", "medical records clerk")),
    )),
    ("Copperleaf Credit Union", (
        ("branch manager", ("loan officer", "bank teller", "financial advisor")),
    )),
    ("Northgate School District", (
        ("school principal",
         ("math teacher", "history teacher", "special education teacher", "school counselor")),
    )),
    ("Greenway Grocers", (
        ("store manager", ("cashier", "produce clerk", "inventory specialist", "baker")),
    )),
    ("Tallpine Architecture Studio", (
        ("design principal", ("architect", "drafter", "interior designer")),
    )),
    ("Bluefin Logistics", (
        ("operations manager",
         ("dispatcher", "warehouse associate", "truck driver", "logistics coordinator")),
    )),
    ("Riverbend City Services", (
        ("department director", ("civil engineer", "city planner", "permit clerk", "parks technician")),
    )),
    ("Sparrow & Finch Media", (
        ("creative director", ("copywriter", "graphic designer", "video editor", "social media manager")),
    )),
    ("Kestrel Legal Partners", (
        ("managing partner", ("attorney", "paralegal", "legal secretary")),
    )),
    ("Oakridge Manufacturing", (
        ("plant supervisor", ("machinist", "quality inspector", "maintenance technician")),
    )),
)

# Work done alone: no coworkers, no manager.
_SOLO_OCCUPATIONS = (
    "freelance photographer", "electrician", "plumber", "personal trainer", "yoga instructor", "novelist",
    "tattoo artist", "real estate agent", "hair stylist", "piano teacher", "rideshare driver", "dog walker",
    "carpenter", "translator", "illustrator", "bakery owner",
)

# ---------------------------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class Address:
    street: str
    city: str
    state: str
    zip_code: str
    country: str = "USA"

    @property
    def one_line(self) -> str:
        """``"412 Maple Lane, Riverbend, TX 78712"`` (country left out: everyone lives in the USA)."""
        return f"{self.street}, {self.city}, {self.state} {self.zip_code}"


@dataclass(frozen=True)
class Person:
    person_id: int
    first_name: str
    last_name: str
    email: str
    phone: str
    birthday: str
    gender: str
    address: Address
    occupation: str

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass(frozen=True)
class Relationship:
    """One tie between two people. ``a < b`` for every kind except ``manager``, where ``a`` manages ``b``."""

    a: int
    b: int
    kind: str
    since: str


@dataclass(frozen=True)
class _Index:
    """Lookups built once per population (never part of equality, hashing or JSON)."""

    by_email: dict[str, int]
    by_phone: dict[str, int]
    relations: dict[int, list[tuple[int, str]]]  # person id -> [(other id, kind)], sorted by other id


@dataclass(frozen=True, repr=False)
class Population:
    seed: int
    now: str
    people: tuple[Person, ...]
    relationships: tuple[Relationship, ...]
    supervisor_id: int = 0

    def __post_init__(self) -> None:
        _validate(self)

    def __repr__(self) -> str:  # the default would print every person
        return (f"Population(seed={self.seed}, now={self.now!r}, people={len(self.people)}, "
                f"relationships={len(self.relationships)}, supervisor_id={self.supervisor_id})")

    # -- lookups

    @cached_property
    def _index(self) -> _Index:
        relations: dict[int, list[tuple[int, str]]] = {p.person_id: [] for p in self.people}
        for rel in self.relationships:
            relations[rel.a].append((rel.b, rel.kind))
            relations[rel.b].append((rel.a, rel.kind))
        for ties in relations.values():
            ties.sort()
        return _Index(by_email={p.email: p.person_id for p in self.people},
                      by_phone={p.phone: p.person_id for p in self.people}, relations=relations)

    @property
    def supervisor(self) -> Person:
        return self.person(self.supervisor_id)

    def person(self, person_id: int) -> Person:
        valid = isinstance(person_id, int) and not isinstance(person_id, bool)
        if not valid or not 0 <= person_id < len(self.people):
            raise KeyError(f"no person with id {person_id!r} in this population "
                           f"(ids are 0..{len(self.people) - 1}; seed {self.seed})")
        return self.people[person_id]

    def relations_of(self, person_id: int, kind: str | None = None) -> list[tuple[Person, str]]:
        """``(other person, kind)`` for each tie of ``person_id`` (optionally of one kind), sorted by id.

        ``"manager"`` is reported from both ends; use :meth:`manager_of` / :meth:`reports_of` for direction.
        """
        self.person(person_id)
        if kind is not None and kind not in KINDS:
            raise ValueError(f"unknown relationship kind {kind!r}; expected one of {', '.join(KINDS)}")
        return [(self.people[other], k) for other, k in self._index.relations[person_id]
                if kind is None or k == kind]

    def manager_of(self, person_id: int) -> Person | None:
        """The person who manages ``person_id`` (None for managers, the self-employed, students, retirees)."""
        self.person(person_id)
        for rel in self.relationships:
            if rel.kind == "manager" and rel.b == person_id:
                return self.people[rel.a]
        return None

    def reports_of(self, person_id: int) -> list[Person]:
        """The people ``person_id`` manages, sorted by person id."""
        self.person(person_id)
        reports = [r.b for r in self.relationships if r.kind == "manager" and r.a == person_id]
        return [self.people[pid] for pid in sorted(reports)]

    def by_email(self, email: str) -> Person:
        """The person with this e-mail (matched case-insensitively, surrounding spaces ignored)."""
        key = email.strip().lower() if isinstance(email, str) else email
        if key not in self._index.by_email:
            raise KeyError(f"no person with email {email!r} in this population (seed {self.seed}, "
                           f"{len(self.people)} people)")
        return self.people[self._index.by_email[key]]

    def by_phone(self, phone: str) -> Person:
        """The person with this phone number; separators such as ``"555-014-8822"`` are ignored."""
        key = "".join(ch for ch in phone if ch.isdigit()) if isinstance(phone, str) else phone
        if key not in self._index.by_phone:
            raise KeyError(f"no person with phone number {phone!r} in this population (seed {self.seed}, "
                           f"{len(self.people)} people)")
        return self.people[self._index.by_phone[key]]

    def households(self) -> list[tuple[Person, ...]]:
        """People grouped by shared address, each group sorted by id, groups in order of their first id."""
        groups: dict[Address, list[Person]] = {}
        for p in self.people:  # people are in id order, so groups come out in order of their first member
            groups.setdefault(p.address, []).append(p)
        return [tuple(members) for members in groups.values()]

    # -- JSON

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces, ASCII; equal populations give equal bytes."""
        data = {
            "seed": self.seed,
            "now": self.now,
            "supervisor_id": self.supervisor_id,
            "people": [asdict(p) for p in self.people],
            "relationships": [asdict(r) for r in self.relationships],
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def from_json(cls, text: str) -> Population:
        data = json.loads(text)
        try:
            people = tuple(Person(**{**p, "address": Address(**p["address"])}) for p in data["people"])
            relationships = tuple(Relationship(**r) for r in data["relationships"])
            return cls(seed=data["seed"], now=data["now"], people=people, relationships=relationships,
                       supervisor_id=data["supervisor_id"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a population JSON document: {exc!r}") from exc


def _validate(pop: Population) -> None:
    """Structural checks, so that a hand-edited or corrupt JSON file fails on load rather than later."""
    for i, p in enumerate(pop.people):
        if p.person_id != i:
            raise ValueError(f"people must be listed by person_id 0..n-1; position {i} holds {p.person_id}")
    if not 0 <= pop.supervisor_id < len(pop.people):
        raise ValueError(f"supervisor_id {pop.supervisor_id} is not a person of this population")
    if len({p.email for p in pop.people}) != len(pop.people):
        raise ValueError("e-mails must be unique")
    if len({p.phone for p in pop.people}) != len(pop.people):
        raise ValueError("phone numbers must be unique")
    pairs: set[tuple[int, int]] = set()
    for rel in pop.relationships:
        if rel.kind not in KINDS:
            raise ValueError(f"unknown relationship kind {rel.kind!r} in {rel}")
        if not (0 <= rel.a < len(pop.people) and 0 <= rel.b < len(pop.people)) or rel.a == rel.b:
            raise ValueError(f"relationship between unknown or identical people: {rel}")
        if rel.kind != "manager" and rel.a > rel.b:
            raise ValueError(f"relationship {rel} must have a < b "
                             "(only 'manager' keeps (manager, report) order)")
        pair = (min(rel.a, rel.b), max(rel.a, rel.b))
        if pair in pairs:
            raise ValueError(f"more than one relationship between people {pair}")
        pairs.add(pair)


# ---------------------------------------------------------------------------------------------- dates


def _add_years(d: date, years: int) -> date:
    """``d`` moved by whole years; 29 February becomes 28 February in a common year."""
    try:
        return d.replace(year=d.year + years)
    except ValueError:
        return d.replace(year=d.year + years, day=28)


def _age_on(birthday: date, day: date) -> int:
    return day.year - birthday.year - ((day.month, day.day) < (birthday.month, birthday.day))


def _date_between(rng: random.Random, start: date, end: date) -> date:
    """A uniform day in ``[start, end]``; ``end`` when the range is empty (callers clamp, never fail)."""
    if start >= end:
        return end
    return start + timedelta(days=rng.randrange((end - start).days + 1))


# ---------------------------------------------------------------------------------------------- the builder


@dataclass
class _Draft:
    """A person under construction (mutable; frozen into a :class:`Person` at the end)."""

    pid: int
    home: int
    gender: str
    first_name: str
    last_name: str
    birthday: date
    status: str = ""  # "employed" | "solo" | "student" | "retired": decides the occupation
    occupation: str = ""


@dataclass
class _Team:
    employer: int  # index into EMPLOYERS
    manager: int
    members: list[int]  # the manager's reports


class _Builder:
    """Makes one population. Each step draws from ``self.rng`` in a fixed order (see the module docstring)."""

    def __init__(self, seed: int, n: int, now: datetime) -> None:
        self.rng = random.Random(f"agentdistill-appworld-population/{seed}")
        self.n = n
        self.today = now.date()
        self.people: list[_Draft] = []
        self.homes: list[Address] = []
        self.home_cities: list[int] = []  # index into CITIES, per home
        self.links: dict[tuple[int, int], Relationship] = {}  # keyed by (smaller id, larger id)
        self.adj: list[set[int]] = []  # membership tests only; never iterated (set order is not stable)
        self._full_names: set[tuple[str, str]] = set()
        self._streets: set[tuple[str, str]] = set()

    # -- small helpers

    @property
    def room(self) -> int:
        """How many more people fit."""
        return self.n - len(self.people)

    def age(self, pid: int) -> int:
        return _age_on(self.people[pid].birthday, self.today)

    def _near(self, age: int, spread: int, lo: int = 18, hi: int = 80) -> int:
        return max(lo, min(hi, age + self.rng.randint(-spread, spread)))

    # -- homes and people

    def new_home(self, city: int | None = None, apartment_p: float = 0.3) -> int:
        """A new household with a fresh address, in ``city`` (an index into CITIES) or a random one."""
        rng = self.rng
        if city is None:  # many live in the supervisor's city (home 0), so "who lives near me" has answers
            near = self.home_cities and rng.random() < 0.25
            city = self.home_cities[0] if near else rng.randrange(len(CITIES))
        name, state, zip_prefix = CITIES[city]
        while True:
            words = rng.choice(_STREET_WORDS)
            if rng.random() < 0.4:
                words += " " + rng.choice(_STREET_SECOND_WORDS)
            street = f"{rng.randint(12, 4980)} {words} {rng.choice(_STREET_SUFFIXES)}"
            if rng.random() < apartment_p:
                street += f", Apt {rng.randint(1, 9)}{rng.choice('ABCDEF')}"
            if (street, name) not in self._streets:  # one address, one household
                break
        self._streets.add((street, name))
        self.homes.append(Address(street, name, state, f"{zip_prefix}{rng.randint(0, 99):02d}"))
        self.home_cities.append(city)
        return len(self.homes) - 1

    def _birthday(self, age: int) -> date:
        """A birthday that makes the person exactly ``age`` years old today."""
        latest = _add_years(self.today, -age)
        earliest = _add_years(self.today, -(age + 1)) + timedelta(days=1)
        return _date_between(self.rng, earliest, latest)

    def _gender(self) -> str:
        r = self.rng.random()
        return "nonbinary" if r < 0.03 else "female" if r < 0.515 else "male"

    def _first_name(self, gender: str, last_name: str) -> str:
        pool = {"female": FEMALE_FIRST_NAMES, "male": MALE_FIRST_NAMES}.get(gender, UNISEX_FIRST_NAMES)
        for _ in range(30):  # avoid two people with one full name: the agent must be able to tell them apart
            names = UNISEX_FIRST_NAMES if self.rng.random() < 0.1 else pool
            first = self.rng.choice(names)
            if (first, last_name) not in self._full_names:
                break
        return first

    def new_person(self, home: int, age: int, gender: str | None = None, last_name: str | None = None) -> int:
        gender = gender or self._gender()
        if last_name is None:
            last_name = self.rng.choice(LAST_NAMES)
            while self.people and last_name == self.people[0].last_name:
                # No stranger bears the supervisor's family name: their namesakes are kin or in-laws.
                last_name = self.rng.choice(LAST_NAMES)
        first = self._first_name(gender, last_name)
        self._full_names.add((first, last_name))
        pid = len(self.people)
        self.people.append(_Draft(pid, home, gender, first, last_name, self._birthday(max(18, min(80, age)))))
        self.adj.append(set())
        return pid

    # -- ties

    def _since(self, kind: str, a: int, b: int) -> date:
        """When a tie began: family from the younger one's birth, other kinds once both were old enough."""
        rng, today = self.rng, self.today
        younger = max(self.people[a].birthday, self.people[b].birthday)
        if kind == "family":
            return younger
        if kind == "friend":  # could go back to school days
            start, end = max(_add_years(younger, 12), _add_years(today, -35)), today - timedelta(days=7)
        elif kind == "partner":
            start, end = max(_add_years(younger, 18), _add_years(today, -45)), today - timedelta(days=60)
        elif kind == "roommate":
            start, end = max(_add_years(younger, 18), _add_years(today, -8)), today - timedelta(days=14)
        else:  # coworker, manager
            start, end = max(_add_years(younger, 18), _add_years(today, -15)), today - timedelta(days=14)
        return _date_between(rng, start, end)

    def link(self, a: int, b: int, kind: str) -> bool:
        """Ties ``a`` and ``b`` unless they already are (a pair keeps its first kind). For ``manager``,
        ``a`` manages ``b``; other kinds are stored with the smaller id first."""
        key = (min(a, b), max(a, b))
        if a == b or key in self.links:
            return False
        first, second = (a, b) if kind == "manager" else key
        self.links[key] = Relationship(first, second, kind, self._since(kind, a, b).isoformat())
        self.adj[a].add(b)
        self.adj[b].add(a)
        return True

    def related(self, a: int, b: int) -> bool:
        return b in self.adj[a]

    # -- household shapes

    def add_partner(self, home: int, pid: int, lo: int = 18) -> int:
        """A partner for ``pid`` in ``home``: mostly of another gender, with their last name half the time."""
        gender = self.people[pid].gender
        if gender == "nonbinary":
            partner_gender = self._gender()
        elif self.rng.random() < 0.1:
            partner_gender = gender
        else:
            partner_gender = "male" if gender == "female" else "female"
        last_name = self.people[pid].last_name if self.rng.random() < 0.5 else None
        partner = self.new_person(home, max(lo, self._near(self.age(pid), 5)), partner_gender, last_name)
        self.link(pid, partner, "partner")
        return partner

    def couple(self, home: int, age: int, last_name: str | None = None, lo: int = 18) -> tuple[int, int]:
        first = self.new_person(home, max(lo, age), last_name=last_name)
        return first, self.add_partner(home, first, lo)

    def child(self, home: int, age: int, parents: tuple[int, ...], siblings: list[int]) -> int:
        """A grown child of ``parents`` (named after the first), tied as family to parents and siblings."""
        kid = self.new_person(home, age, last_name=self.people[parents[0]].last_name)
        for relative in (*parents, *siblings):
            self.link(relative, kid, "family")
        siblings.append(kid)
        return kid

    def roommates(self, people: list[int]) -> None:
        for a, b in combinations(people, 2):
            self.link(a, b, "roommate")  # pairs already tied (a couple) keep their kind

    def single_home(self) -> None:
        self.new_person(self.new_home(apartment_p=0.5), self.rng.randint(22, 79))

    def couple_home(self) -> None:
        self.couple(self.new_home(), self.rng.randint(23, 78))

    def family_home(self) -> None:
        """Two parents and one to three grown children still living at home."""
        rng = self.rng
        kids = rng.randint(1, min(3, self.room - 2))
        eldest = rng.randint(18, 29)
        home = self.new_home(apartment_p=0.1)
        parents = self.couple(home, eldest + rng.randint(22, 38), lo=eldest + 20)
        siblings: list[int] = []
        for i in range(kids):
            self.child(home, eldest if i == 0 else max(18, eldest - rng.randint(1, 6)), parents, siblings)

    def single_parent_home(self) -> None:
        rng = self.rng
        kids = rng.randint(1, min(2, self.room - 1))
        eldest = rng.randint(18, 30)
        home = self.new_home(apartment_p=0.2)
        parent = self.new_person(home, eldest + rng.randint(21, 40))
        siblings: list[int] = []
        for i in range(kids):
            self.child(home, eldest if i == 0 else max(18, eldest - rng.randint(1, 5)), (parent,), siblings)

    def roommate_home(self, first: int | None = None, size: int | None = None) -> None:
        """Two to four unrelated young adults sharing a flat (``first``, if given, already lives there)."""
        rng = self.rng
        home = self.new_home(apartment_p=0.7) if first is None else self.people[first].home
        size = size or rng.randint(2, min(4, self.room))
        people = [] if first is None else [first]
        while len(people) < size:
            people.append(self.new_person(home, rng.randint(20, 36)))
        self.roommates(people)

    def clan(self) -> None:
        """A parents' home and one or two grown children living elsewhere, often in the same city."""
        rng = self.rng
        parent_age = rng.randint(52, 78)
        parents_home = self.new_home(apartment_p=0.05)
        parents = self.couple(parents_home, parent_age, lo=parent_age - 8)
        kids = rng.randint(1, min(2, self.room))
        siblings: list[int] = []
        city = self.home_cities[parents_home]
        for i in range(kids):
            spare = self.room - (kids - i)  # people beyond one per remaining child
            kid_city = city if rng.random() < 0.6 else None
            youngest_parent = min(self.age(p) for p in parents)
            age = max(18, min(youngest_parent - 20, parent_age - rng.randint(22, 36)))
            shape = rng.choice(["single", "partner", "roommates"]) if spare >= 1 else "single"
            home = self.new_home(kid_city, apartment_p=0.7 if shape == "roommates" else 0.4)
            kid = self.child(home, age, parents, siblings)
            if shape == "partner":
                self.add_partner(home, kid)
            elif shape == "roommates":
                self.roommate_home(first=kid, size=1 + rng.randint(1, min(2, spare)))

    # -- the supervisor's own circle (ids from 0)

    def supervisor_world(self) -> None:
        """Person 0 in a shared house with a partner and two roommates; parents and 1–2 siblings nearby."""
        rng = self.rng
        age = rng.randint(27, 41)
        home = self.new_home(apartment_p=0.0)
        sup = self.new_person(home, age)
        partner = self.add_partner(home, sup, lo=22)
        housemates = [self.new_person(home, self._near(age, 6, lo=22)) for _ in range(2)]
        self.roommates([sup, partner, *housemates])

        city = self.home_cities[home] if rng.random() < 0.5 else None
        parents_home = self.new_home(city, apartment_p=0.0)
        family_name = self.people[sup].last_name
        parents = self.couple(parents_home, age + rng.randint(24, 34), family_name, lo=age + 20)
        siblings = [sup]
        for relative in parents:
            self.link(relative, sup, "family")
        for _ in range(rng.randint(1, 2)):
            youngest_parent = min(self.age(p) for p in parents)
            sib_age = max(18, min(youngest_parent - 20, age + rng.randint(-8, 8)))
            if sib_age <= 30 and rng.random() < 0.35:  # still living with the parents
                self.child(parents_home, sib_age, parents, siblings)
            else:
                sib_home = self.new_home(city if rng.random() < 0.5 else None, apartment_p=0.5)
                sib = self.child(sib_home, sib_age, parents, siblings)
                if rng.random() < 0.5:
                    self.add_partner(sib_home, sib)

    def fill_households(self) -> None:
        shapes = [  # (shape, weight, fewest people it needs)
            (self.single_home, 3, 1), (self.couple_home, 3, 2), (self.family_home, 3, 3),
            (self.single_parent_home, 1, 2), (self.roommate_home, 2, 2), (self.clan, 3, 3),
        ]
        while self.room > 0:
            fitting = [(make, weight) for make, weight, need in shapes if need <= self.room]
            make = self.rng.choices([m for m, _ in fitting], weights=[w for _, w in fitting])[0]
            make()

    # -- work

    def _statuses(self) -> None:
        rng = self.rng
        for p in self.people:
            age, r = self.age(p.pid), rng.random()
            if p.pid == 0:
                p.status = "employed"
            elif age >= 67:
                p.status = "retired" if r < 0.85 else "employed"
            elif age <= 22:
                p.status = "student" if r < 0.7 else "employed"
            else:
                p.status = "solo" if r < 0.12 else "employed"

    def _team(self, employer: int, members: list[int], manager: int, teams: list[_Team]) -> None:
        """Titles for a team, ``manager`` ties to each member, ``coworker`` ties among members."""
        title, member_titles = self.rng.choice(EMPLOYERS[employer][1])
        self.people[manager].occupation = title
        reports = [m for m in members if m != manager]
        for m in reports:
            self.people[m].occupation = self.rng.choice(member_titles)
            self.link(manager, m, "manager")
        for a, b in combinations(reports, 2):
            self.link(a, b, "coworker")
        teams.append(_Team(employer, manager, reports))

    def _supervisor_team(self, teams: list[_Team]) -> None:
        """Person 0's team: 5-7 coworkers and a manager, all strangers to them so far (no pair collisions)."""
        rng = self.rng
        size = 1 + rng.randint(5, 7)
        strangers = [p.pid for p in self.people[1:] if not self.related(0, p.pid)]
        picked = [pid for pid in strangers if self.people[pid].status == "employed"]
        if len(picked) < size:  # a small population: bring people back to work rather than fail
            others = [pid for pid in strangers if pid not in picked]
            picked += rng.sample(others, size - len(picked))
        members = rng.sample(picked, size)
        for pid in members:
            self.people[pid].status = "employed"
        seniors = sorted(m for m in members if self.age(m) >= self.age(0))
        manager = rng.choice(seniors) if seniors else max(members, key=lambda m: (self.age(m), m))
        self._team(rng.randrange(len(EMPLOYERS)), [0, *members], manager, teams)

    def assign_work(self) -> None:
        rng = self.rng
        self._statuses()
        teams: list[_Team] = []
        self._supervisor_team(teams)
        placed = {0, *teams[0].members, teams[0].manager}
        pool = [p.pid for p in self.people if p.status == "employed" and p.pid not in placed]
        rng.shuffle(pool)
        while pool:
            size = min(len(pool), rng.randint(3, 7))
            if 0 < len(pool) - size < 3:  # no stranded one- or two-person team at the end
                size = len(pool)
            members, pool = pool[:size], pool[size:]
            manager = max(rng.sample(members, min(3, len(members))), key=lambda m: (self.age(m), m))
            self._team(rng.randrange(len(EMPLOYERS)), members, manager, teams)
        self._ties_within_employers(teams)
        for p in self.people:
            if p.status == "retired":
                p.occupation = "retired"
            elif p.status == "student":
                grad = self.age(p.pid) > 21 and rng.random() < 0.5
                p.occupation = "graduate student" if grad else "student"
            elif p.status == "solo":
                p.occupation = rng.choice(_SOLO_OCCUPATIONS)

    def _ties_within_employers(self, teams: list[_Team]) -> None:
        """Managers of one employer know each other; now and then two teams share a coworker tie."""
        for employer in range(len(EMPLOYERS)):
            here = [t for t in teams if t.employer == employer]
            for t, u in combinations(here, 2):
                self.link(t.manager, u.manager, "coworker")
                if t.members and u.members and self.rng.random() < 0.35:
                    self.link(self.rng.choice(t.members), self.rng.choice(u.members), "coworker")

    # -- friends

    def _similar_age(self, a: int, b: int, years: int) -> bool:
        return abs(self.age(a) - self.age(b)) <= years

    def _cluster(self, members: list[int], p: float) -> None:
        for a, b in combinations(members, 2):
            if self.rng.random() < p:
                self.link(a, b, "friend")

    def make_friends(self) -> None:
        rng = self.rng
        # The supervisor's circle: 8-10 people they are not yet tied to, most of a similar age.
        strangers = [p.pid for p in self.people[1:] if not self.related(0, p.pid)]
        peers = [pid for pid in strangers if self._similar_age(pid, 0, 12)]
        circle = rng.sample(peers if len(peers) >= 10 else strangers, rng.randint(8, 10))
        for pid in circle:
            self.link(0, pid, "friend")
        self._cluster(sorted(circle), 0.45)
        # Other friend groups: around an anchor, people within about ten years of age.
        for _ in range(max(1, self.n // 10)):
            anchor = rng.randrange(1, self.n)
            cohort = [pid for pid in range(self.n) if pid != anchor and self._similar_age(pid, anchor, 10)]
            group = [anchor, *rng.sample(cohort, min(len(cohort), rng.randint(3, 6)))]
            self._cluster(sorted(group), 0.65)
        for _ in range(self.n // 5):  # a few loose ties across groups
            a, b = rng.sample(range(self.n), 2)
            self.link(a, b, "friend")
        for p in self.people:  # nobody is left without a single tie
            if not self.adj[p.pid]:
                near = [q for q in range(self.n) if q != p.pid and self._similar_age(q, p.pid, 12)]
                self.link(p.pid, rng.choice(near or [q for q in range(self.n) if q != p.pid]), "friend")

    # -- contact details and the result

    def _contacts(self) -> tuple[list[str], list[str]]:
        """E-mails (``first.last@domain``, ``first.last2@...`` once taken) and 555 phones, in id order."""
        rng = self.rng
        emails: list[str] = []
        phones: list[str] = []
        taken_locals: set[str] = set()  # unique across domains, so a name search finds one address
        taken_phones: set[str] = set()
        for p in self.people:
            stem = ".".join("".join(ch for ch in part.lower() if ch.isalnum())
                            for part in (p.first_name, p.last_name))
            local, number = stem, 1
            while local in taken_locals:
                number += 1
                local = f"{stem}{number}"
            phone = f"555{rng.randrange(10 ** 7):07d}"
            while phone in taken_phones:
                phone = f"555{rng.randrange(10 ** 7):07d}"
            taken_locals.add(local)
            taken_phones.add(phone)
            emails.append(f"{local}@{rng.choice(EMAIL_DOMAINS)}")
            phones.append(phone)
        return emails, phones

    def build(self, seed: int, now: str) -> Population:
        self.supervisor_world()
        self.fill_households()
        self.assign_work()
        self.make_friends()
        emails, phones = self._contacts()
        people = tuple(
            Person(person_id=p.pid, first_name=p.first_name, last_name=p.last_name, email=emails[p.pid],
                   phone=phones[p.pid], birthday=p.birthday.isoformat(), gender=p.gender,
                   address=self.homes[p.home], occupation=p.occupation)
            for p in self.people
        )
        relationships = tuple(self.links[key] for key in sorted(self.links))
        return Population(seed=seed, now=now, people=people, relationships=relationships, supervisor_id=0)


# ---------------------------------------------------------------------------------------------- public entry


#: What the supervisor's circle must hold, checked on every population made.
SUPERVISOR_MINIMUMS: dict[str, int] = {"roommate": 2, "family": 3, "partner": 1, "friend": 5, "coworker": 4,
                                       "manager": 1}
SUPERVISOR_MIN_RELATIONS = 20


def _check_supervisor(pop: Population) -> None:
    ties = pop.relations_of(pop.supervisor_id)
    counts = {kind: sum(1 for _, k in ties if k == kind) for kind in KINDS}
    short = {kind: counts[kind] for kind, least in SUPERVISOR_MINIMUMS.items() if counts[kind] < least}
    boss = pop.manager_of(pop.supervisor_id)
    if len(ties) < SUPERVISOR_MIN_RELATIONS or short or boss is None:
        raise RuntimeError(f"bug: the supervisor's circle is incomplete for seed {pop.seed}: {counts}")


def make_population(seed: int, n: int = 100, now: str = DEFAULT_NOW) -> Population:
    """``n`` fictional people and their ties, a pure function of ``(seed, n, now)``; person 0 is the
    supervisor.

    ``now`` is an ISO date or datetime (stored normalised, e.g. ``"2024-05-15T10:00:00"``); ages and
    ``since`` dates are measured from its date.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, not {type(seed).__name__}")
    if isinstance(n, bool) or not isinstance(n, int) or n < MIN_PEOPLE:
        raise ValueError(f"n must be an int of at least {MIN_PEOPLE} (the supervisor's circle needs them), "
                         f"got {n!r}")
    moment = datetime.fromisoformat(now)
    population = _Builder(seed, n, moment).build(seed, moment.isoformat())
    _check_supervisor(population)
    return population
