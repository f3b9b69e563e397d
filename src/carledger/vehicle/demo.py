"""A seeded, reproducible Seoul used-car market: a genesis and a stream of signed records.

Two calls::

    network = build_network("seed-1", start=datetime.date(2026, 3, 2))
    for item in transactions(network, random.Random(1), vehicles=1000):
        ...  # item.tx is a signed Transaction, item.at its earliest block time

:func:`build_network` returns the genesis document of a market complex run by a
dealers' association (장안평, gated, plus a smaller ungated market), the city
(registry), ``dealers`` dealers, inspection centres, repair shops, insurers, a
lender, the police, two manufacturers, a rental firm and a scrapyard. Every key is
``SigningKey(sha256(f"{seed}|{name}"))``: anyone with the seed can sign as any demo
member, so the seed is a test fixture, never a secret.

:func:`transactions` yields records in an order every handler accepts. Vehicles
arrive at ``per_day`` a day; on arrival the car's past (birth, registration,
owners, services, accidents, liens, a theft...) is written at once, dated in the
past; then it goes through a trade cycle in simulated real time (purchase, gate
entry, inspection, listing, test drives, sale signed by the buyer's own key, gate
exit) and sometimes a later service or scrapping. A handful of vehicles carry the
cases a report must catch, all *accepted and flagged*, never refused:

=====  ================================================================
index  case
=====  ================================================================
0      odometer rolled back at the dealer (the inspection repeats it)
1      fake listing: the car leaves the market for three days while listed
2      an insurer's wrong accident record, disputed and upheld (void)
3      frame damage recorded by an insurer, "no accident" on the inspection
4      an active lien; scrapped later with the lender co-signing
5      a flooded total loss, scrapped
6      an odometer typo (implausible), corrected by the repair shop
7      instrument cluster replaced (odometer exception, new baseline)
8      stolen and recovered
9      an electric car: battery reports, battery pack swap, recall done
=====  ================================================================

Later cars get, at random, accidents and claims, liens (released before the sale),
leases, rental cars turned private (plate change), owner changes, a dealer rollback
(1.5 %), a theft (0.3 %), services after the sale, and scrapping of cars twelve years
old or more.

Memory is bounded by the cars in the market at once (about ``per_day`` times the
length of a trade cycle), not by ``vehicles``, so the stream scales to millions of
records. Block times: ``at`` is the simulated time the record is submitted
(also its ``created``); records are yielded with non-decreasing ``at``. Commit each
record in a block whose time is at least its ``at`` (and, to keep the market timing
realistic, within the hour): :func:`plan_blocks` does exactly that.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import heapq
import random
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from carledger.crypto.keys import SigningKey
from carledger.ledger.tx import Transaction, build_body, sign
from carledger.vehicle.inspection_form import ELECTRIFIED, FRAME_A, FRAME_B, OUTER_1, OUTER_2
from carledger.vehicle.vin import check_digit

__all__ = [
    "DemoNetwork",
    "DemoTx",
    "Member",
    "build_network",
    "plan_blocks",
    "transactions",
]

DAY = 86_400
HOUR = 3_600
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_KST = _dt.timedelta(hours=9)

GATED_MARKET = "janganpyeong"
OPEN_MARKET = "gangseo"
OPERATOR = "janganpyeong-assoc"
CITY = "seoul-city"


# --- the network ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    org: str
    roles: tuple[str, ...]
    key: SigningKey


@dataclass(frozen=True)
class DemoNetwork:
    """The genesis of the demo market and the keys of its members (derived from ``seed``)."""

    seed: str
    start: _dt.date
    genesis: dict[str, Any]
    members: dict[str, Member]
    admins: dict[str, SigningKey]
    validators: dict[str, SigningKey]

    @property
    def chain(self) -> str:
        return str(self.genesis["chain_id"])

    def key(self, member: str) -> SigningKey:
        return self.members[member].key

    def with_role(self, role: str) -> list[Member]:
        return [m for m in self.members.values() if role in m.roles]

    def derived_key(self, *name: object) -> SigningKey:
        """A key that is no member (a citizen's own key), derived from the seed."""
        return _key(self.seed, "|".join(map(str, name)))


def _key(seed: str, name: str) -> SigningKey:
    return SigningKey(hashlib.sha256(f"{seed}|{name}".encode()).digest())


_INSURERS = ("samsung-fire", "hyundai-marine", "db-insurance")


def build_network(
    seed: str, start: _dt.date, *, dealers: int = 60, chain: str = "seoul-market"
) -> DemoNetwork:
    """The genesis document and keys of the demo market (see the module docstring)."""
    if not 1 <= dealers <= 999:
        raise ValueError("dealers is 1 to 999")
    orgs: list[tuple[str, str, list[str], list[tuple[str, list[str]]]]] = [
        (
            CITY,
            "Seoul Metropolitan Government, vehicle registration",
            ["registry"],
            [("registry-01", ["registry"]), ("registry-02", ["registry"])],
        ),
        (
            OPERATOR,
            "Janganpyeong used-car dealers' association",
            ["market_operator", "gate_device"],
            [("operator-01", ["market_operator"])]
            + [(f"gate-{i}", ["gate_device"]) for i in range(1, 5)],
        ),
        ("seoul-citizens", "Seoul citizens' portal", ["citizen"], [("citizen-01", ["citizen"])]),
        (
            "hyundai-motor",
            "Hyundai Motor Company",
            ["manufacturer"],
            [("hmc-01", ["manufacturer"])],
        ),
        ("kia", "Kia Corporation", ["manufacturer"], [("kia-01", ["manufacturer"])]),
        ("hana-capital", "Hana Capital", ["lender"], [("hana-01", ["lender"])]),
        (
            "seoul-police",
            "Seoul Metropolitan Police Agency",
            ["police"],
            [("police-01", ["police"])],
        ),
        ("lotte-rental", "Lotte Rental", ["rental"], [("lotte-01", ["rental"])]),
        ("seoul-scrap", "Seoul auto recycling", ["scrapyard"], [("scrap-01", ["scrapyard"])]),
    ]
    orgs += [
        (
            f"inspect-{i}",
            f"Seoul performance inspection centre {i}",
            ["inspector"],
            [(f"inspector-{i}", ["inspector"])],
        )
        for i in (1, 2)
    ]
    orgs += [
        (f"repair-{i}", f"Repair shop {i}", ["repair_shop"], [(f"repair-{i}", ["repair_shop"])])
        for i in range(1, 6)
    ]
    orgs += [
        (name, name.replace("-", " ").title(), ["insurer"], [(f"{name}-01", ["insurer"])])
        for name in _INSURERS
    ]
    orgs += [
        (f"dealer-{i:02d}", f"Dealer {i:02d}", ["dealer"], [(f"dealer-{i:02d}", ["dealer"])])
        for i in range(1, dealers + 1)
    ]
    members: dict[str, Member] = {}
    admins: dict[str, SigningKey] = {}
    doc_orgs: list[dict[str, Any]] = []
    doc_members: list[dict[str, Any]] = []
    for org_id, name, roles, org_members in orgs:
        admin = _key(seed, f"admin|{org_id}")
        admins[org_id] = admin
        doc_orgs.append({"id": org_id, "name": name, "roles": roles, "admins": [admin.public_hex]})
        for member, member_roles in org_members:
            key = _key(seed, f"member|{member}")
            members[member] = Member(member, org_id, tuple(member_roles), key)
            doc_members.append(
                {"key": key.public_hex, "org": org_id, "member": member, "roles": member_roles}
            )
    validators = {f"node-{i}": _key(seed, f"validator|node-{i}") for i in range(1, 5)}
    genesis = {
        "format": "carledger.genesis.v1",
        "chain_id": chain,
        "created": f"{start.isoformat()}T00:00:00Z",
        "orgs": doc_orgs,
        "members": doc_members,
        "validators": [
            {"id": vid, "org": CITY, "key": key.public_hex} for vid, key in validators.items()
        ],
        "markets": [
            {
                "id": GATED_MARKET,
                "name": "장안평 중고차매매시장",
                "operator": OPERATOR,
                "gated": True,
            },
            {
                "id": OPEN_MARKET,
                "name": "강서 중고차매매단지",
                "operator": OPERATOR,
                "gated": False,
            },
        ],
        "policy": {"org_admission": {"num": 2, "den": 3}},
    }
    return DemoNetwork(seed, start, genesis, members, admins, validators)


# --- vehicles ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Model:
    make: str
    model: str
    wmi: str
    vds: str
    fuel: str
    maker: str | None  # the manufacturer org that writes birth records, else the registry
    price: int
    engine: str
    country: str
    plant: str


# make | model | WMI | VDS | fuel | maker org (-: the registry writes the birth record) |
# new price in million KRW | engine | plant
_MODEL_TABLE = """
Hyundai         | Avante      | KMH | LM41D | gasoline | hyundai-motor | 21 | G4FL   | Ulsan
Hyundai         | Sonata      | KMH | L541B | gasoline | hyundai-motor | 29 | G4KN   | Asan
Hyundai         | Grandeur    | KMH | F241H | hybrid   | hyundai-motor | 42 | G4KM   | Asan
Hyundai         | Tucson      | KMH | J381D | diesel   | hyundai-motor | 29 | D4HE   | Ulsan
Hyundai         | Santa Fe    | KMH | S881D | diesel   | hyundai-motor | 36 | D4HB   | Ulsan
Hyundai         | Palisade    | KMH | R881D | diesel   | hyundai-motor | 46 | D4HD   | Ulsan
Hyundai         | Casper      | KMH | A141C | gasoline | hyundai-motor | 15 | G3LF   | Gwangju
Hyundai         | Ioniq 5     | KMH | K481E | ev       | hyundai-motor | 52 | EM16   | Ulsan
Hyundai         | Porter II   | KMF | ZB7KD | diesel   | hyundai-motor | 20 | D4CB   | Ulsan
Genesis         | G80         | KMT | G41DB | gasoline | hyundai-motor | 62 | G6DP   | Ulsan
Genesis         | GV70        | KMT | J41DB | gasoline | hyundai-motor | 56 | G4KP   | Ulsan
Genesis         | GV80        | KMT | R81DB | diesel   | hyundai-motor | 72 | D6HA   | Ulsan
Kia             | Morning     | KNA | B351A | gasoline | kia           | 12 | G3LA   | Seosan
Kia             | Ray         | KNA | J351A | gasoline | kia           | 14 | G3LA   | Seosan
Kia             | K5          | KNA | G541L | lpg      | kia           | 27 | L6DB   | Hwaseong
Kia             | K8          | KNA | L841H | hybrid   | kia           | 41 | G4KM   | Hwaseong
Kia             | Sportage    | KND | P3A2D | diesel   | kia           | 29 | D4HE   | Gwangju
Kia             | Sorento     | KND | R3A4H | hybrid   | kia           | 40 | G4FT   | Hwaseong
Kia             | Carnival    | KNM | Y4A5D | diesel   | kia           | 38 | D4HE   | Sohari
Kia             | EV6         | KNA | C81EE | ev       | kia           | 55 | EM17   | Hwaseong
Kia             | Bongo III   | KNC | SD711 | diesel   | kia           | 19 | D4CB   | Gwangju
KG Mobility     | Tivoli      | KPT | A0A1S | gasoline | -             | 19 | G15T   | Pyeongtaek
KG Mobility     | Torres      | KPT | G0A1S | gasoline | -             | 30 | G15T   | Pyeongtaek
KG Mobility     | Rexton      | KPT | L0A2S | diesel   | -             | 38 | D22DTR | Pyeongtaek
Renault Korea   | QM6         | KNM | HZ2L1 | lpg      | -             | 27 | M5R    | Busan
Renault Korea   | SM6         | KNM | LF2L1 | lpg      | -             | 25 | M5P    | Busan
Chevrolet Korea | Spark       | KLA | MA48C | gasoline | -             | 10 | B12D2  | Changwon
Chevrolet Korea | Trailblazer | KLA | UE76S | gasoline | -             | 24 | E3T    | Bupyeong
Chevrolet       | Bolt EV     | 1G1 | FZ6S0 | ev       | -             | 40 | EV01   | Orion
Chevrolet       | Traverse    | 1GN | EVJKW | gasoline | -             | 52 | LFY    | Lansing
Ford            | Explorer    | 1FM | 5K8GC | gasoline | -             | 60 | ECO23  | Chicago
Tesla           | Model 3     | 5YJ | 3E1EA | ev       | -             | 55 | 3D1    | Fremont
"""


def _parse_models(table: str) -> tuple[_Model, ...]:
    models = []
    for line in table.strip().splitlines():
        make, model, wmi, vds, fuel, maker, price, engine, plant = (
            c.strip() for c in line.split("|")
        )
        country = "US" if wmi[0] in "12345" else "KR"
        models.append(
            _Model(
                make,
                model,
                wmi,
                vds,
                fuel,
                None if maker == "-" else maker,
                int(price) * 1_000_000,
                engine,
                country,
                plant,
            )
        )
    return tuple(models)


_MODELS = _parse_models(_MODEL_TABLE)
_YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"  # 2010 = A, ... (ISO 3779 cycle)
_VIN_CHARS = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
_HANGUL = "가나다라마거너더러머버서어저고노도로모보소오조구누두루무부수우주"
_HANGUL_RENTAL = "하허호"
_COLORS = ("white", "black", "silver", "gray", "blue", "red", "pearl white", "matte gray")
_TRIMS = ("Smart", "Modern", "Premium", "Inspiration", "Prestige", "Signature", "Noblesse")


def _vin(model: _Model, year: int, index: int) -> str:
    plant = _VIN_CHARS[(index // 1_000_000) % len(_VIN_CHARS)]
    body = f"{model.wmi}{model.vds}0{_YEAR_CODES[(year - 2010) % 30]}{plant}{index % 1_000_000:06d}"
    return body[:8] + check_digit(body) + body[9:]


_PLATE_SPACE = 9_000 * len(_HANGUL) * 990


def _plate(index: int, rental: bool) -> str:
    """A plate no other demo car carries: an affine permutation of the index (random-looking,
    unique), in the private letters or, for rental cars, in the rental letters 하/허/호."""
    n = (index * 7_919_993 + 12_345) % _PLATE_SPACE
    digits, n = 1_000 + n % 9_000, n // 9_000
    letters = _HANGUL_RENTAL if rental else _HANGUL
    letter, prefix = letters[n % len(letters)], 10 + (n // len(letters)) % 990
    return f"{prefix}{letter}{digits}"


# --- the simulation ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoTx:
    """A signed record and the earliest block time it may be committed at."""

    tx: Transaction
    at: str
    vins: tuple[str, ...]


def _iso(t: int) -> str:
    return (_EPOCH + _dt.timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _gate_time(t: int) -> str:
    return (_EPOCH + _dt.timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _local(t: int) -> str:
    return (_EPOCH + _dt.timedelta(seconds=t) + _KST).date().isoformat()


def _hash(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


@dataclass
class _Car:
    index: int
    vin: str
    model: _Model
    year: int
    plate: str
    rental: bool
    head: str | None = None
    owner: str | None = None
    distance: int = 0  # km actually driven
    offset: int = 0  # what the odometer shows is distance - offset
    daily_km: int = 40
    frame_accident: bool = False
    outer_repair: bool = False
    liens: list[str] = field(default_factory=list)
    recalls: list[str] = field(default_factory=list)
    scrapped: bool = False
    wrong_accident: str | None = None

    @property
    def km(self) -> int:
        return self.distance - self.offset


Story = Generator[int, None, None]


class _Sim:
    def __init__(self, network: DemoNetwork, rng: random.Random, per_day: int) -> None:
        self.net = network
        self.rng = rng
        self.per_day = per_day
        self.now = int(
            (_dt.datetime.combine(network.start, _dt.time(), _dt.UTC) - _EPOCH).total_seconds()
        )
        self.out: list[DemoTx] = []
        self.count = 0
        self.listing_no = 0
        self.heap: list[tuple[int, int, Story]] = []
        self.seq = 0
        self.active: dict[str, _Car] = {}
        self.arrivals_done = False
        self.dealers = network.with_role("dealer")
        self.inspectors = network.with_role("inspector")
        self.repairers = network.with_role("repair_shop")
        self.insurers = network.with_role("insurer")
        self.gates = network.with_role("gate_device")
        self.registry = network.key("registry-01")
        self.operator = network.key("operator-01")
        self.police = network.key("police-01")
        self.lender = network.members["hana-01"]
        self.rental = network.members["lotte-01"]
        self.scrap = network.key("scrap-01")
        self.makers = {m.org: m.key for m in network.with_role("manufacturer")}

    # -- plumbing --

    def schedule(self, at: int, story: Story) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, story))

    def emit(
        self, type_: str, payload: dict[str, Any], keys: Iterable[SigningKey], vins: tuple[str, ...]
    ) -> str:
        keys = list(keys)
        self.count += 1
        body = build_body(
            chain=self.net.chain,
            type=type_,
            payload=payload,
            signers=[k.public_hex for k in keys],
            created=_iso(self.now),
            nonce=f"demo-{self.count}",
        )
        tx = sign(body, keys)
        self.out.append(DemoTx(tx, _iso(self.now), vins))
        return tx.id

    def car_record(self, car: _Car, type_: str, payload: dict[str, Any], *keys: SigningKey) -> str:
        car.head = self.emit(type_, {"vin": car.vin, "prev": car.head, **payload}, keys, (car.vin,))
        return car.head

    def pick(self, items: list[Member]) -> Member:
        return items[self.rng.randrange(len(items))]

    # -- the run --

    def run(self, vehicles: int) -> Iterator[DemoTx]:
        self.schedule(self.now, self.arrivals(vehicles))
        self.schedule(self.now + 2 * DAY, self.recalls())
        while self.heap:
            at, _seq, story = heapq.heappop(self.heap)
            self.now = at
            try:
                wake = next(story)
            except StopIteration:
                pass
            else:
                self.schedule(max(wake, at), story)
            yield from self.out
            self.out.clear()

    def arrivals(self, vehicles: int) -> Story:
        gap = max(1, DAY // self.per_day)
        for index in range(vehicles):
            self.schedule(self.now, self.vehicle(index))
            yield self.now + self.rng.randint(gap // 2, gap + gap // 2)
        self.arrivals_done = True

    def recalls(self) -> Story:
        number = 0
        while not self.arrivals_done or len(self.active) > 0:
            targets = [
                c
                for c in self.active.values()
                if c.model.maker == "hyundai-motor" and not c.scrapped and not c.recalls
            ][:20]
            if targets:
                number += 1
                campaign = f"HMC-{self.net.start.year}-{number:03d}"
                payload = {
                    "campaign": campaign,
                    "title": "Integrated charging control unit software update",
                    "date": _local(self.now),
                    "remedy": "Update the ICCU software and inspect the fuse.",
                    "vehicles": [{"vin": c.vin, "prev": c.head} for c in targets],
                }
                tx_id = self.emit(
                    "recall.issue",
                    payload,
                    [self.makers["hyundai-motor"]],
                    tuple(c.vin for c in targets),
                )
                for c in targets:
                    c.head = tx_id
                    c.recalls.append(campaign)
            yield self.now + 45 * DAY

    # -- one vehicle --

    def vehicle(self, index: int) -> Story:
        rng = self.rng
        model = _MODELS[7] if index == 9 else _MODELS[rng.randrange(len(_MODELS))]
        age_years = rng.randint(1, 14) if index not in (4, 5) else rng.randint(10, 16)
        year = max(2010, self.net.start.year - age_years)
        rental = index >= 10 and rng.random() < 0.08
        car = _Car(index, _vin(model, year, index), model, year, _plate(index, rental), rental)
        car.daily_km = rng.randint(15, 70)
        self.active[car.vin] = car
        yield from self.past(car)
        if index == 5:
            self.active.pop(car.vin)
            return
        yield from self.trade(car)
        yield from self.after(car)
        self.active.pop(car.vin, None)

    def past(self, car: _Car) -> Story:
        """The car's life before it reaches the market, written at once, dated in the past."""
        rng, model, idx = self.rng, car.model, car.index
        today = self.now - DAY
        born = int(
            (
                _dt.datetime(car.year - 1, rng.randint(7, 12), rng.randint(1, 28), tzinfo=_dt.UTC)
                - _EPOCH
            ).total_seconds()
        )
        born = min(born, today - 200 * DAY)
        maker = self.makers.get(model.maker or "", self.registry)
        self.car_record(
            car,
            "vehicle.register",
            {
                "make": model.make,
                "model": model.model,
                "model_year": car.year,
                "trim": rng.choice(_TRIMS),
                "color": rng.choice(_COLORS),
                "fuel": model.fuel,
                "transmission": "single_speed" if model.fuel == "ev" else "automatic",
                "engine_code": model.engine,
                "plant": model.plant,
                "manufactured_on": _local(born),
                "country": model.country,
            },
            maker,
        )
        t = born + rng.randint(20, 60) * DAY
        first_owner = "org:lotte-rental" if car.rental else self.owner_ref(car, 0)
        self.car_record(
            car,
            "registration.record",
            {
                "date": _local(t),
                "first_registered_on": _local(t),
                "plate": car.plate,
                "use": "rental" if car.rental else "private",
            },
            self.registry,
        )
        self.transfer(car, t, first_owner, 0)
        owners = 1
        if idx >= 10 and not car.rental and rng.random() < 0.05:
            self.car_record(
                car,
                "usage.start",
                {"kind": "lease", "firm": "lotte-rental", "date": _local(t + DAY)},
                self.rental.key,
            )
            if t + 3 * 365 * DAY < today:
                end = {"firm": "lotte-rental", "date": _local(t + 3 * 365 * DAY)}
                self.car_record(car, "usage.end", end, self.rental.key)
        events: list[tuple[int, str]] = []
        step = rng.randint(300, 420) * DAY
        s = t + step
        while s < today - 30 * DAY:
            events.append((s, "service"))
            s += (
                rng.randint(250, 500) * DAY if rng.random() < 0.85 else rng.randint(800, 1100) * DAY
            )
        if idx in (2, 3) or (idx >= 10 and rng.random() < 0.15):
            events.append((rng.randint(t + 30 * DAY, today - 20 * DAY), "accident"))
        if idx == 4 or (idx >= 10 and rng.random() < 0.08):
            events.append((rng.randint(t, today - 10 * DAY), "lien"))
        if idx == 8 or (idx >= 10 and rng.random() < 0.003):
            events.append((rng.randint(t + 10 * DAY, today - 60 * DAY), "theft"))
        if idx == 5:
            events.append((today - 40 * DAY, "flood"))
        if idx == 7:
            events.append((rng.randint(t + 100 * DAY, today - 20 * DAY), "cluster"))
        if idx == 6:
            events.append((today - 15 * DAY, "typo"))
        if car.rental:
            events.append((rng.randint(t + 365 * DAY, today - 10 * DAY), "derental"))
        elif idx >= 10 and rng.random() < 0.4:
            events.append((rng.randint(t + 200 * DAY, today - 10 * DAY), "owner"))
        events.sort()
        last = t
        for when, what in events:
            car.distance += car.daily_km * max(0, (when - last) // DAY)
            last = when
            if what == "service":
                self.service(car, when)
            elif what == "accident":
                self.accident(car, when)
            elif what == "lien":
                lien_id = f"HC-{car.index:07d}"
                self.car_record(
                    car,
                    "lien.register",
                    {
                        "lien_id": lien_id,
                        "kind": "mortgage",
                        "amount": rng.randrange(5, 40) * 1_000_000,
                        "creditor": self.lender.org,
                        "date": _local(when),
                    },
                    self.lender.key,
                )
                if idx == 4:
                    car.liens.append(lien_id)
                else:
                    release = min(today, when + rng.randint(200, 900) * DAY)
                    self.car_record(
                        car,
                        "lien.release",
                        {"lien_id": lien_id, "date": _local(release)},
                        self.lender.key,
                    )
            elif what == "theft":
                self.car_record(
                    car,
                    "theft.report",
                    {"date": _local(when), "case_hash": _hash("case", car.vin)},
                    self.police,
                )
                self.car_record(
                    car, "theft.recover", {"date": _local(when + 12 * DAY)}, self.police
                )
            elif what == "flood":
                self.car_record(
                    car,
                    "accident.record",
                    {
                        "date": _local(when),
                        "own_damage": {"parts": 14_000_000, "labour": 3_500_000, "paint": 0},
                        "total_loss": True,
                        "flood": True,
                        "fire": False,
                        "odometer_km": car.km,
                    },
                    self.pick(self.insurers).key,
                )
                self.car_record(
                    car,
                    "vehicle.scrap",
                    {
                        "date": _local(when + 20 * DAY),
                        "odometer_km": car.km,
                        "certificate_hash": _hash("scrap", car.vin),
                    },
                    self.scrap,
                )
                car.scrapped = True
                break
            elif what == "cluster":
                self.service(car, when)
                old = car.km
                car.offset = car.distance  # the new cluster starts at zero
                self.car_record(
                    car,
                    "odometer.exception",
                    {
                        "date": _local(when),
                        "old_km": old,
                        "new_km": 0,
                        "reason": "cluster_replaced",
                        "evidence_hash": _hash("cluster", car.vin),
                    },
                    self.pick(self.repairers).key,
                    self.registry,
                )
            elif what == "typo":
                shop = self.pick(self.repairers)
                wrong = car.km * 10 + 7
                typo = self.car_record(
                    car,
                    "service.record",
                    {
                        "date": _local(when),
                        "odometer_km": wrong,
                        "items": [{"code": "OIL", "description": "Engine oil and filter"}],
                        "parts": [{"part_no": "26300-35505", "quantity": 1}],
                    },
                    shop.key,
                )
                self.car_record(
                    car,
                    "record.correct",
                    {
                        "target": typo,
                        "fields": {"odometer_km": car.km},
                        "reason": "Typo: one digit too many.",
                    },
                    shop.key,
                )
            elif what == "derental":
                self.transfer(car, when, self.owner_ref(car, owners), owners)
                owners += 1
                car.plate = _plate(car.index, rental=False)
                self.car_record(
                    car,
                    "registration.record",
                    {"date": _local(when), "plate": car.plate, "use": "private"},
                    self.registry,
                )
            elif what == "owner":
                self.transfer(car, when, self.owner_ref(car, owners), owners)
                owners += 1
        car.distance += car.daily_km * max(0, (today - last) // DAY)
        if car.model.fuel in ELECTRIFIED and idx >= 10 and not car.scrapped and rng.random() < 0.3:
            self.battery(car, today, self.pick(self.repairers).key)
        yield self.now

    def owner_ref(self, car: _Car, n: int) -> str:
        return f"ref:{_hash('owner', self.net.seed, car.vin, n)[:32]}"

    def transfer(self, car: _Car, when: int, to: str, n: int) -> None:
        self.car_record(
            car,
            "ownership.transfer",
            {
                "from": car.owner,
                "to": to,
                "date": _local(when),
                "price": car.model.price if n == 0 else car.model.price // (n + 1),
                "odometer_km": car.km,
                "contract_hash": _hash("contract", car.vin, n),
            },
            self.registry,
        )
        car.owner = to

    def service(self, car: _Car, when: int) -> None:
        shop = self.pick(self.repairers)
        payload: dict[str, Any] = {
            "date": _local(when),
            "odometer_km": car.km,
            "items": [
                {"code": "OIL", "description": "Engine oil and filter"},
                {"code": "INSP", "description": "General inspection"},
            ],
            "parts": [{"part_no": "26300-35505", "maker": "Hyundai Mobis", "quantity": 1}],
            "total_cost": self.rng.randrange(8, 60) * 10_000,
        }
        if car.model.fuel == "ev":
            payload["items"] = [{"code": "EVCHK", "description": "High-voltage system check"}]
            payload["parts"] = []
        self.car_record(car, "service.record", payload, shop.key)
        if car.model.fuel in ELECTRIFIED and car.index == 9:
            self.battery(car, when, shop.key)

    def battery(self, car: _Car, when: int, key: SigningKey) -> None:
        years = max(0, int(_local(when)[:4]) - car.year)
        self.car_record(
            car,
            "battery.report",
            {
                "date": _local(when),
                "soh_permille": max(700, 1000 - 18 * years - self.rng.randint(0, 20)),
                "capacity_wh": 77_400,
                "cycles": 60 * max(1, years),
                "odometer_km": car.km,
            },
            key,
        )

    def accident(self, car: _Car, when: int) -> None:
        rng = self.rng
        frame = car.index in (2, 3) or rng.random() < 0.3
        insurer = self.pick(self.insurers).key
        parts = rng.randrange(10, 300) * 10_000 * (4 if frame else 1)
        accident = self.car_record(
            car,
            "accident.record",
            {
                "date": _local(when),
                "own_damage": {"parts": parts, "labour": parts // 3, "paint": parts // 5},
                "other_party_damage": rng.randrange(0, 200) * 10_000,
                "total_loss": False,
                "flood": False,
                "fire": False,
                "frame_damage": frame,
                "odometer_km": car.km,
                "report_hash": _hash("report", car.vin, when),
            },
            insurer,
        )
        if car.index == 2:
            car.wrong_accident = accident  # wrong: disputed at the dealer, then upheld
            return
        self.car_record(
            car,
            "insurance.claim",
            {
                "date": _local(when),
                "own_damage": {"parts": parts, "labour": parts // 3, "paint": parts // 5},
                "other_party_damage": 0,
                "total_loss": False,
                "flood": False,
                "fire": False,
                "frame_damage": frame,
                "claim_hash": _hash("claim", car.vin, when),
                "accident": accident,
            },
            insurer,
        )
        if car.index != 3:
            car.frame_accident = car.frame_accident or frame
            car.outer_repair = True

    # -- the trade cycle --

    def trade(self, car: _Car) -> Story:
        rng = self.rng
        dealer = self.pick(self.dealers)
        gated = car.index < 10 or rng.random() < 0.85
        market = GATED_MARKET if gated else OPEN_MARKET
        if car.index == 0 or (car.index >= 10 and rng.random() < 0.015):
            car.offset += car.km * 45 // 100  # the dealer turns the odometer back
        price = self.value(car)
        self.car_record(
            car,
            "trade.purchase",
            {
                "dealer": dealer.org,
                "seller_ref": car.owner,
                "date": _local(self.now),
                "price": price * 85 // 100,
                "odometer_km": car.km,
                "market": market,
                "contract_hash": _hash("purchase", car.vin, self.now),
            },
            dealer.key,
        )
        car.owner = f"org:{dealer.org}"
        if gated:
            yield self.now + rng.randint(1, 6) * HOUR
            self.gate(car, "gate.entry")
        if car.index == 2:
            yield self.now + HOUR
            dispute = self.car_record(
                car,
                "record.dispute",
                {
                    "target": car.wrong_accident,
                    "reason": "The accident happened to another car; the insurer mistyped the VIN.",
                    "evidence_hash": _hash("evidence", car.vin),
                },
                dealer.key,
            )
            yield self.now + 3 * DAY
            self.car_record(
                car,
                "dispute.resolve",
                {
                    "dispute": dispute,
                    "outcome": "upheld",
                    "reason": "The insurer confirmed the mistake.",
                },
                self.registry,
            )
        yield self.now + rng.randint(2, 30) * HOUR
        self.inspection(car)
        yield self.now + rng.randint(1, 20) * HOUR
        self.listing_no += 1
        listing_no = f"{'JP' if gated else 'GS'}-{self.listing_no:07d}"
        self.car_record(
            car,
            "listing.open",
            {"market": market, "listing_no": listing_no, "price": price},
            dealer.key,
        )
        if car.index == 1:
            yield self.now + 2 * DAY
            self.gate(car, "gate.exit")
            yield self.now + 3 * DAY
            self.car_record(car, "listing.close", {"reason": "withdrawn"}, self.operator)
            return
        for _ in range(rng.randint(0, 2) if gated else 0):
            yield self.now + rng.randint(1, 5) * DAY
            self.gate(car, "gate.exit")
            car.distance += rng.randint(5, 30)
            yield self.now + rng.randint(1, 3) * HOUR
            self.gate(car, "gate.entry")
        yield self.now + rng.randint(2, 40) * DAY
        if car.index >= 10 and rng.random() < 0.07:
            self.car_record(car, "listing.close", {"reason": "withdrawn"}, dealer.key)
            return
        buyer = self.net.derived_key("buyer", car.vin)
        buyer_ref = f"key:{buyer.public_hex}"
        self.car_record(
            car,
            "trade.sale",
            {
                "buyer_ref": buyer_ref,
                "date": _local(self.now),
                "price": price,
                "odometer_km": car.km,
                "contract_hash": _hash("sale", car.vin, self.now),
            },
            dealer.key,
            buyer,
        )
        car.owner = buyer_ref
        if gated:
            yield self.now + rng.randint(1, 4) * HOUR
            self.gate(car, "gate.exit")

    def value(self, car: _Car) -> int:
        age = max(0, self.net.start.year - car.year)
        value = car.model.price * max(15, 100 - 9 * age) // 100
        if car.frame_accident:
            value = value * 80 // 100
        return max(1_000_000, value // 10_000 * 10_000)

    def gate(self, car: _Car, kind: str) -> None:
        gate = self.pick(self.gates)
        who: dict[str, Any] = {"vin": car.vin}
        if self.rng.random() < 0.3:
            who = {"plate": car.plate}
        payload = {
            **who,
            "prev": car.head,
            "market": GATED_MARKET,
            "gate": gate.name,
            "time": _gate_time(self.now),
        }
        car.head = self.emit(kind, payload, [gate.key], (car.vin,))

    def inspection(self, car: _Car) -> None:
        rng = self.rng
        inspector = self.pick(self.inspectors)
        today = _local(self.now)
        panels: dict[str, list[str]] = {}
        if car.frame_accident:
            panels[rng.choice(FRAME_A + FRAME_B)] = ["W"]
            panels[rng.choice(OUTER_2)] = rng.choice([["W"], ["X"]])
        if car.outer_repair or rng.random() < 0.2:
            panels[rng.choice(OUTER_1)] = ["X"]
        for _ in range(rng.randint(0, 3)):
            panels.setdefault(rng.choice(OUTER_1 + OUTER_2), [rng.choice("AUC")])
        fuel = car.model.fuel
        condition: dict[str, Any] = {
            "self_diagnosis": {"engine": "good", "transmission": "good"},
            "engine": {}
            if fuel == "ev"
            else {
                "idle": "good",
                "oil_leak_rocker_cover": rng.choice(["none", "none", "seep"]),
                "oil_level": "ok",
                "coolant_level": "ok",
            },
            "transmission": {"oil_leak": "none", "idle": "good", "gear_shift": "good"},
            "drivetrain": {"cv_joint": "good", "differential": "good"},
            "steering": {"pump": "good", "gear": "good", "tie_rod_ball_joint": "good"},
            "brakes": {"master_cylinder_leak": "none", "fluid_leak": "none", "booster": "good"},
            "electrical": {"generator": "good", "starter_motor": "good", "wiper_motor": "good"},
            "fuel": {"leak": "none"},
        }
        if fuel in ELECTRIFIED:
            condition["high_voltage"] = {
                "charging_port_insulation": "good",
                "battery_isolation": "good",
                "wiring": "good",
            }
        km = car.km
        self.car_record(
            car,
            "inspection.record",
            {
                "date": today,
                "header": {
                    "issue_no": f"SI-{car.index:08d}-{self.count % 1000:03d}",
                    "plate": car.plate,
                    "model_year": car.year,
                    "valid_from": today,
                    "valid_until": _local(self.now + 120 * DAY),
                    "transmission": "single_speed" if fuel == "ev" else "automatic",
                    "fuel": fuel,
                    "engine_type": car.model.engine,
                    "warranty_type": rng.choice(["self", "insurer"]),
                    "base_price": self.value(car),
                },
                "overall": {
                    "odometer_km": km,
                    "gauge_ok": True,
                    "mileage_grade": "high" if km > 150_000 else "low" if km < 30_000 else "normal",
                    "vin_marking": "good",
                    "emissions": {} if fuel == "ev" else {"co_permille": rng.randint(0, 5)},
                    "tuning": {"status": "none", "structural": False, "equipment": False},
                    "special_history": [],
                    "use_change": ["rental"] if car.rental else [],
                    "repaint": [],
                    "recall": "applies_open" if car.recalls else "none",
                },
                "panels": panels,
                "condition": condition,
                "repair_needed": rng.sample(
                    ["exterior", "interior", "polish", "tire"], rng.randint(0, 2)
                ),
                "kit": ["owner_manual", "warning_triangle", "jack"],
                "opinion": "No leaks; normal wear for its age.",
                "inspector_id": f"lic-{inspector.name}",
                "photos": [_hash("photo", car.vin, i) for i in range(4)],
            },
            inspector.key,
        )

    def after(self, car: _Car) -> Story:
        """Some life after the sale: a service (with any open recall done), scrapping."""
        rng = self.rng
        worn_out = car.index >= 10 and self.net.start.year - car.year >= 12 and rng.random() < 0.3
        if not (car.recalls or car.index in (4, 9) or worn_out or rng.random() < 0.25):
            return
        yield self.now + rng.randint(20, 80) * DAY
        car.distance += car.daily_km * 50
        shop = self.pick(self.repairers)
        self.service(car, self.now)
        for campaign in car.recalls:
            self.car_record(
                car,
                "recall.complete",
                {"campaign": campaign, "date": _local(self.now), "odometer_km": car.km},
                shop.key,
            )
        car.recalls.clear()
        if car.index == 9:
            old, new = f"BP{car.index:010d}A", f"BP{car.index:010d}B"
            for kind, serial in (
                ("part.install", old),
                ("part.remove", old),
                ("part.install", new),
            ):
                self.car_record(
                    car,
                    kind,
                    {
                        "serial": serial,
                        "part_no": "37500-GI000",
                        "maker": "SK On",
                        "position": "traction battery",
                        "date": _local(self.now),
                        "odometer_km": car.km,
                    },
                    shop.key,
                )
            self.battery(car, self.now, shop.key)
        if car.index == 4 or worn_out:
            yield self.now + rng.randint(5, 20) * DAY
            signers = [self.scrap, self.lender.key] if car.liens else [self.scrap]
            self.car_record(
                car,
                "vehicle.scrap",
                {
                    "date": _local(self.now),
                    "odometer_km": car.km,
                    "certificate_hash": _hash("scrap", car.vin),
                },
                *signers,
            )
            car.scrapped = True


def transactions(
    network: DemoNetwork,
    rng: random.Random,
    *,
    vehicles: int,
    per_day: int = 30,
) -> Iterator[DemoTx]:
    """Signed records of ``vehicles`` cars, starting at ``network.start`` (see the module).

    Reproducible: the same network seed, the same ``rng`` state and the same arguments
    give the same transactions, byte for byte.
    """
    if vehicles < 0 or per_day < 1:
        raise ValueError("vehicles >= 0 and per_day >= 1")
    sim = _Sim(network, rng, per_day)
    return sim.run(vehicles)


def plan_blocks(
    items: Iterable[DemoTx], *, max_txs: int = 500, max_seconds: int = HOUR
) -> Iterator[tuple[str, list[Transaction]]]:
    """Group demo records into blocks: ``(block time, transactions)``.

    A block holds at most ``max_txs`` records whose ``at`` lie within ``max_seconds``
    of its first; its time is the ``at`` of its last record, so every record is
    committed at or after its ``at`` and block times never decrease.
    """
    block: list[Transaction] = []
    first = last = ""
    limit = 0
    for item in items:
        t = _seconds(item.at)
        if block and (len(block) >= max_txs or t > limit):
            yield last, block
            block = []
        if not block:
            first, limit = item.at, t + max_seconds
        block.append(item.tx)
        last = item.at
    del first
    if block:
        yield last, block


def _seconds(at: str) -> int:
    moment = _dt.datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.000Z").replace(tzinfo=_dt.UTC)
    return int((moment - _EPOCH).total_seconds())
