"""A realistic multichannel retailer, generated from a seed: the demo and test data.

Pure: `generate(people, seed, now)` returns every message and file row, and the ground
truth (which real person each record belongs to). Nothing here touches the network or
the store; `demo/loader.py` sends the result through the real collect API and imports.

The company sells sport, fashion, electronics, home, beauty and travel goods in France
(mostly), Germany, Spain and the UK, on these channels:

- web: anonymous cookie visits (page views, product views, carts); 70% of people have
  an account and log in at some point, which identifies the cookie;
- mobile app: device and advertising ids (some with ad tracking limited, which
  iOS reports as the all-zero IDFA), screens and orders, login identifies;
- e-mail tool: deliveries, opens and clicks keyed by user id and e-mail address;
- call centre (CSV): calls known only by phone number, written in national, spaced or
  international forms, and some from the shop's own switchboard number;
- shop tills (CSV): receipts with a loyalty card number and sometimes an e-mail, and the
  card holder as the loyalty scheme enrolled them at the till (name in capitals without
  accents, street address, postcode, date of birth), with the slips of a busy shop
  assistant;
- CRM export (CSV): names (some as nicknames), e-mails, phones, postal addresses and dates
  of birth with typos, case and spacing noise.

The civil details (date of birth, street, postcode) and the noise on them are drawn from
streams of their own, keyed by the person and the record, so the rest of the demo is the
same for a seed as before they were added.

Each person also has hidden interests (e.g. running, travel) that drive what they view
and buy. They are in the ground truth, never in the events, so a lookalike model can be
scored on them.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

INTERESTS = ("running", "fashion", "electronics", "home", "beauty", "travel")
#: Rarer hidden groups, for judging lookalikes: the share of people in each, and the pages
#: members keep coming back to (others land there now and then too).
GROUPS = {"marathoners": 0.04, "new-parents": 0.05, "luxury-travellers": 0.03}
GROUP_PAGES = {
    "marathoners": (
        "/running/marathon-training",
        "/running/race-nutrition",
        "/running/carbon-plates",
    ),
    "new-parents": ("/home/nursery", "/beauty/baby-care", "/home/strollers"),
    "luxury-travellers": ("/travel/first-class", "/fashion/designer-luggage", "/travel/villas"),
}
PRODUCTS: dict[str, list[tuple[str, float]]] = {
    "running": [("Trail shoes", 129.0), ("Running jacket", 89.0), ("GPS watch", 249.0),
                ("Energy gels", 12.5), ("Compression socks", 19.0)],
    "fashion": [("Linen shirt", 59.0), ("Denim jacket", 99.0), ("Leather belt", 39.0),
                ("Summer dress", 79.0), ("Sneakers", 110.0)],
    "electronics": [("Headphones", 199.0), ("Phone case", 25.0), ("Smart speaker", 99.0),
                    ("USB-C charger", 35.0), ("E-reader", 139.0)],
    "home": [("Coffee maker", 89.0), ("Bed linen", 69.0), ("Table lamp", 45.0),
             ("Chef knife", 75.0), ("Plant pot", 19.0)],
    "beauty": [("Face serum", 42.0), ("Perfume", 85.0), ("Hair dryer", 65.0),
               ("Lipstick", 24.0), ("Sun cream", 18.0)],
    "travel": [("Cabin suitcase", 149.0), ("Travel pillow", 29.0), ("Passport cover", 22.0),
               ("Backpack", 95.0), ("Packing cubes", 34.0)],
}  # fmt: skip
COUNTRIES = (("FR", 0.70), ("DE", 0.12), ("ES", 0.10), ("GB", 0.08))
FIRST = {
    "FR": ["Camille", "Léa", "Manon", "Chloé", "Louis", "Hugo", "Lucas", "Jules", "Emma",
           "Inès", "Thomas", "Nicolas", "Julie", "Sophie", "Élodie", "Mathieu", "Céline"],
    "DE": ["Lukas", "Jonas", "Leon", "Anna", "Lena", "Marie", "Jürgen", "Sabine", "Felix"],
    "ES": ["Lucía", "Sofía", "Martina", "Hugo", "Pablo", "Álvaro", "Carmen", "Javier"],
    "GB": ["Oliver", "George", "Amelia", "Olivia", "Harry", "Isla", "Jack", "Emily"],
}  # fmt: skip
LAST = {
    "FR": ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
           "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "Roux"],
    "DE": ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker"],
    "ES": ["García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez"],
    "GB": ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies"],
}  # fmt: skip
DOMAINS = {
    "FR": ["gmail.com", "orange.fr", "free.fr", "yahoo.fr", "hotmail.fr", "sfr.fr"],
    "DE": ["gmx.de", "web.de", "gmail.com", "t-online.de"],
    "ES": ["gmail.com", "hotmail.es", "yahoo.es", "telefonica.net"],
    "GB": ["gmail.com", "outlook.com", "btinternet.com", "yahoo.co.uk"],
}
CITIES = {
    "FR": ["Paris", "Lyon", "Marseille", "Toulouse", "Lille", "Nantes", "Bordeaux"],
    "DE": ["Berlin", "München", "Hamburg", "Köln"],
    "ES": ["Madrid", "Barcelona", "Valencia", "Sevilla"],
    "GB": ["London", "Manchester", "Bristol", "Leeds"],
}
#: Postcode prefixes of each city (districts for the big ones) and common street names.
POSTCODES = {
    "Paris": [f"750{n:02d}" for n in range(1, 21)], "Lyon": [f"6900{n}" for n in range(1, 10)],
    "Marseille": [f"130{n:02d}" for n in range(1, 17)], "Toulouse": ["31000", "31100", "31200",
    "31300", "31400", "31500"], "Lille": ["59000", "59160", "59260", "59777", "59800"],
    "Nantes": ["44000", "44100", "44200", "44300"], "Bordeaux": ["33000", "33100", "33200",
    "33300", "33800"], "Berlin": ["10115", "10245", "10437", "10961", "12043", "13347"],
    "München": ["80331", "80469", "80634", "81369", "81675"], "Hamburg": ["20095", "20357",
    "22041", "22765"], "Köln": ["50667", "50733", "50937", "51063"], "Madrid": ["28001",
    "28004", "28012", "28015", "28045"], "Barcelona": ["08001", "08012", "08015", "08025"],
    "Valencia": ["46001", "46004", "46010", "46022"], "Sevilla": ["41001", "41003", "41011"],
    "London": ["SW1A 1AA", "E1 6AN", "N1 9GU", "SE1 7PB", "W2 1HB", "NW1 8NH"],
    "Manchester": ["M1 1AE", "M4 5JD", "M14 5RB", "M20 2RN"], "Bristol": ["BS1 4DJ",
    "BS6 5BZ", "BS8 1TH"], "Leeds": ["LS1 4DY", "LS6 3AA", "LS11 5QN"],
}  # fmt: skip
STREETS = {
    "FR": ["rue de la Paix", "avenue Jean Jaurès", "rue Victor Hugo", "boulevard Voltaire",
           "rue de la République", "place de la Mairie", "rue des Écoles", "rue du Moulin"],
    "DE": ["Hauptstraße", "Schulstraße", "Gartenstraße", "Bahnhofstraße", "Dorfstraße"],
    "ES": ["Calle Mayor", "Calle Real", "Avenida de la Constitución", "Calle de Alcalá"],
    "GB": ["High Street", "Station Road", "Church Lane", "Victoria Road", "Green Lane"],
}  # fmt: skip
#: How people shorten their first names on forms (the matcher knows these too).
NICKNAMES = {
    "Nicolas": "Nico", "Thomas": "Tom", "Mathieu": "Matt", "Javier": "Javi", "Oliver": "Olly",
    "Emily": "Emmy", "Lucas": "Luc", "Sophie": "Sophy", "Álvaro": "Alvarito",
    "Jürgen": "Jurgen", "Lukas": "Luke", "Camille": "Cami",
}  # fmt: skip
#: The call centre's own switchboard: logged when the caller's number is withheld.
SWITCHBOARD = "+33 1 70 00 00 00"
ZERO_IDFA = "00000000-0000-0000-0000-000000000000"
SOURCES = (
    ("web-shop", "web"),
    ("mobile-app", "mobile"),
    ("email-tool", "email"),
    ("call-centre", "phone"),
    ("shops", "pos"),
    ("crm", "crm"),
)
REFERRERS = (
    "https://www.google.com/",
    "https://www.facebook.com/",
    "https://www.instagram.com/",
    "",
    "",
    "",
    "https://www.bing.com/",
    "https://news.example.org/",
)
CAMPAIGNS = ("summer_sale", "newsletter_w12", "retargeting", "black_friday")


@dataclass
class Person:
    person_id: str
    country: str
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    user_id: str | None
    loyalty_id: str | None
    city: str
    interests: tuple[str, ...]
    cookies: list[str]
    device: dict[str, Any] | None
    activity: float  # how busy this person is, relative
    groups: tuple[str, ...] = ()  # hidden, rarer than interests (GROUPS)
    birth_date: str = ""  # ISO date; the civil details come from their own stream
    street: str = ""
    postcode: str = ""


@dataclass
class Company:
    people: list[Person]
    #: source name -> Segment messages, in time order
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    crm_rows: list[dict[str, Any]] = field(default_factory=list)
    pos_rows: list[dict[str, Any]] = field(default_factory=list)
    call_rows: list[dict[str, Any]] = field(default_factory=list)
    #: (source name, messageId, person_id) for every record
    truth: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def event_count(self) -> int:
        return (
            sum(len(m) for m in self.messages.values())
            + len(self.crm_rows)
            + len(self.pos_rows)
            + len(self.call_rows)
        )


def generate(
    people: int = 10_000, seed: int = 42, now: datetime | None = None, days: int = 180
) -> Company:
    """The whole company: about 50 events per person over `days` days up to `now`."""
    rng = random.Random(seed)
    end = now or datetime(2026, 11, 1, 12, 0)
    start = end - timedelta(days=days)
    company = Company([_person(rng, n) for n in range(people)])
    for person in company.people:
        # From their own stream, so adding groups left the rest of the demo as it was.
        side = random.Random(f"{seed}:{person.person_id}:groups")
        person.groups = tuple(g for g, share in GROUPS.items() if side.random() < share)
        _civil_details(random.Random(f"{seed}:{person.person_id}:civil"), person)
    web: list[dict[str, Any]] = []
    mobile: list[dict[str, Any]] = []
    email: list[dict[str, Any]] = []
    for person in company.people:
        _web_life(rng, person, start, end, web, company)
        if person.device is not None:
            _app_life(rng, person, start, end, mobile, company)
        if person.email and person.user_id:
            _email_life(rng, person, start, end, email, company)
        _shop_life(rng, person, start, end, company)
        _calls(rng, person, start, end, company)
        if person.email and rng.random() < 0.6:
            company.crm_rows.append(_crm_row(rng, person, start, end))
            company.truth.append(("crm", company.crm_rows[-1]["crm_id"], person.person_id))
    for name, messages in (("web-shop", web), ("mobile-app", mobile), ("email-tool", email)):
        messages.sort(key=lambda m: m.get("timestamp") or m["originalTimestamp"])
        company.messages[name] = messages
    return company


# -- people -----------------------------------------------------------------------


def _person(rng: random.Random, n: int) -> Person:
    country = rng.choices([c for c, _ in COUNTRIES], [w for _, w in COUNTRIES])[0]
    first, last = rng.choice(FIRST[country]), rng.choice(LAST[country])
    has_account = rng.random() < 0.7
    email = None
    if has_account or rng.random() < 0.3:
        local = f"{_ascii(first)}.{_ascii(last)}{rng.randint(1, 9999)}".lower()
        email = f"{local}@{rng.choice(DOMAINS[country])}"
    phone = _phone(rng, country) if rng.random() < 0.8 else None
    device = None
    if rng.random() < 0.4:
        ios = rng.random() < 0.5
        ad_id = ZERO_IDFA if ios and rng.random() < 0.25 else str(_uuid(rng))
        device = {
            "id": str(_uuid(rng)),
            "advertisingId": ad_id.upper() if ios else ad_id,
            "adTrackingEnabled": ad_id != ZERO_IDFA,
            "type": "ios" if ios else "android",
            "manufacturer": "Apple" if ios else rng.choice(["Samsung", "Google", "Xiaomi"]),
            "model": rng.choice(["iPhone15,2", "iPhone14,5"]) if ios else "SM-S911B",
        }
    interests = tuple(rng.sample(INTERESTS, rng.choice((1, 1, 2))))
    return Person(
        person_id=f"p{n:06d}",
        country=country,
        first_name=first,
        last_name=last,
        email=email,
        phone=phone,
        user_id=f"u{100000 + n}" if has_account else None,
        loyalty_id=f"LC{rng.randint(10**7, 10**8 - 1)}" if rng.random() < 0.5 else None,
        city=rng.choice(CITIES[country]),
        interests=interests,
        cookies=[str(_uuid(rng)) for _ in range(rng.choice((1, 1, 2, 3)))],
        device=device,
        activity=rng.lognormvariate(0, 0.7),
    )


def _phone(rng: random.Random, country: str) -> str:
    """An international number that phonenumbers accepts as a valid mobile."""
    if country == "FR":
        return f"+33 6{rng.randint(10_000_000, 99_999_999)}"
    if country == "DE":
        return f"+49 151{rng.randint(10_000_000, 99_999_999)}"
    if country == "ES":
        return f"+34 6{rng.randint(10_000_000, 99_999_999)}"
    return f"+44 7911{rng.randint(100_000, 999_999)}"


def _national(phone: str) -> str:
    """The same number as a person in that country would write it."""
    code, digits = phone.split(" ", 1)
    if code == "+33":
        number = "0" + digits
        return " ".join(number[i : i + 2] for i in range(0, 10, 2))
    if code == "+44":
        return "0" + digits[:4] + " " + digits[4:]
    return "0" + digits if code == "+49" else digits


def _noisy_phone(rng: random.Random, phone: str) -> str:
    style = rng.random()
    if style < 0.35:
        return _national(phone)
    if style < 0.55:
        return phone.replace(" ", "").replace("+", "00")
    if style < 0.75:
        return phone.replace(" ", "")
    return phone


# -- channels ---------------------------------------------------------------------


def _moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _pick_category(rng: random.Random, person: Person) -> str:
    return rng.choice(person.interests) if rng.random() < 0.75 else rng.choice(INTERESTS)


def _product(rng: random.Random, category: str) -> dict[str, Any]:
    index = rng.randrange(len(PRODUCTS[category]))
    name, price = PRODUCTS[category][index]
    return {
        "product_id": f"{category[:3]}-{index}",
        "name": name,
        "category": category,
        "price": price,
        "currency": "EUR",
    }


def _group_pages(
    person: Person,
    session: int,
    moment: datetime,
    base: dict[str, Any],
    out: list[dict[str, Any]],
    company: Company,
) -> None:
    """A session's visit to a hidden group's pages: likely for members, rare for others.
    Drawn from a stream of its own (see `generate`)."""
    side = random.Random(f"{person.person_id}:{session}:group-pages")
    for group, pages in GROUP_PAGES.items():
        if side.random() >= (0.55 if group in person.groups else 0.015):
            continue
        path = side.choice(pages)
        at = moment + timedelta(seconds=side.randint(5, 90))
        message_id = str(uuid.UUID(int=side.getrandbits(128), version=4))
        _emit(out, company, "web-shop", person, {
            **base, "type": "page", "name": path.rsplit("/", 1)[1].replace("-", " ").title(),
            "properties": {"path": path, "url": f"https://shop.example{path}"},
            "messageId": message_id, "timestamp": _iso(at),
        })  # fmt: skip


def _consent(person: Person) -> dict[str, Any]:
    """What the shop's consent banner recorded (Segment's consent object, on every web event).
    Seven people in ten accept advertising. Derived from the person id, not drawn from the
    generator's random stream, so the rest of the demo stays the same for a seed."""
    advertising = hashlib.blake2b(person.person_id.encode(), digest_size=2).digest()[0] % 10 < 7
    return {"categoryPreferences": {"Advertising": advertising, "Analytics": True}}


def _emit(
    messages: list[dict[str, Any]],
    company: Company,
    source: str,
    person: Person,
    message: dict[str, Any],
) -> None:
    messages.append(message)
    company.truth.append((source, message["messageId"], person.person_id))


def _web_life(
    rng: random.Random,
    person: Person,
    start: datetime,
    end: datetime,
    out: list[dict[str, Any]],
    company: Company,
) -> None:
    sessions = max(1, round(rng.uniform(1.5, 6.5) * person.activity))
    login_session = rng.randrange(sessions) if person.user_id else None
    for number in range(sessions):
        cookie = rng.choice(person.cookies)
        moment = _moment(rng, start, end)
        logged_in = login_session is not None and number >= login_session
        referrer = rng.choice(REFERRERS)
        campaign = rng.choice(CAMPAIGNS) if rng.random() < 0.2 else None
        base: dict[str, Any] = {
            "anonymousId": cookie,
            "context": {
                "library": {"name": "analytics.js", "version": "next-1.70.0"},
                "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36",
                "locale": {"FR": "fr-FR", "DE": "de-DE", "ES": "es-ES", "GB": "en-GB"}[
                    person.country
                ],
                # The banner's answer rides on every event of the browser, as Segment's
                # consent wrapper stamps it: anonymous visitors have consent too.
                "consent": _consent(person),
            },
        }
        if logged_in:
            base["userId"] = person.user_id
        if campaign:
            base["context"]["campaign"] = {
                "source": "newsletter" if "news" in campaign else "google",
                "medium": "cpc",
                "name": campaign,
            }
        if number == login_session:
            traits = {
                "email": person.email,
                "firstName": person.first_name,
                "lastName": person.last_name,
                "city": person.city,
                "country": person.country,
            }
            _emit(
                out,
                company,
                "web-shop",
                person,
                {
                    **base,
                    "context": {**base["context"], "consent": _consent(person)},
                    "type": "identify",
                    "userId": person.user_id,
                    "traits": traits,
                    "messageId": str(_uuid(rng)),
                    "timestamp": _iso(moment),
                },
            )
        for _ in range(rng.randint(2, 6)):
            category = _pick_category(rng, person)
            path = f"/{category}/{rng.randint(1, 40)}"
            moment += timedelta(seconds=rng.randint(5, 120))
            _emit(
                out,
                company,
                "web-shop",
                person,
                {
                    **base,
                    "type": "page",
                    "name": category.title(),
                    "properties": {
                        "path": path,
                        "url": f"https://shop.example{path}",
                        "referrer": referrer,
                        "title": category.title(),
                    },
                    "messageId": str(_uuid(rng)),
                    "timestamp": _iso(moment),
                },
            )
            if rng.random() < 0.6:
                _emit(
                    out,
                    company,
                    "web-shop",
                    person,
                    {
                        **base,
                        "type": "track",
                        "event": "Product Viewed",
                        "properties": _product(rng, category),
                        "messageId": str(_uuid(rng)),
                        "timestamp": _iso(moment),
                    },
                )
        _group_pages(person, number, moment, base, out, company)
        if rng.random() < 0.35:
            product = _product(rng, _pick_category(rng, person))
            moment += timedelta(seconds=rng.randint(10, 300))
            _emit(
                out,
                company,
                "web-shop",
                person,
                {
                    **base,
                    "type": "track",
                    "event": "Product Added",
                    "properties": product,
                    "messageId": str(_uuid(rng)),
                    "timestamp": _iso(moment),
                },
            )
            if logged_in and rng.random() < 0.55:
                moment += timedelta(seconds=rng.randint(30, 600))
                _emit(
                    out,
                    company,
                    "web-shop",
                    person,
                    {
                        **base,
                        "type": "track",
                        "event": "Order Completed",
                        "properties": {
                            "order_id": f"W{uuid.UUID(int=rng.getrandbits(64)).hex[:10]}",
                            "revenue": product["price"],
                            "currency": "EUR",
                            "products": [product],
                        },
                        "messageId": str(_uuid(rng)),
                        "timestamp": _iso(moment),
                    },
                )


def _app_life(
    rng: random.Random,
    person: Person,
    start: datetime,
    end: datetime,
    out: list[dict[str, Any]],
    company: Company,
) -> None:
    assert person.device is not None
    install = str(_uuid(rng))
    context = {
        "device": person.device,
        "app": {"name": "Shop", "version": "5.2.1"},
        "os": {"name": "iOS" if person.device["type"] == "ios" else "Android"},
        "library": {
            "name": "analytics-ios" if person.device["type"] == "ios" else "analytics-android",
            "version": "4.1.8",
        },
    }
    logged_in = False
    for _ in range(max(1, round(rng.uniform(1, 5) * person.activity))):
        moment = _moment(rng, start, end)
        base: dict[str, Any] = {"anonymousId": install, "context": context}
        if person.user_id and not logged_in and rng.random() < 0.5:
            logged_in = True
            _emit(
                out,
                company,
                "mobile-app",
                person,
                {
                    **base,
                    "type": "identify",
                    "userId": person.user_id,
                    "traits": {"email": person.email, "phone": person.phone},
                    "messageId": str(_uuid(rng)),
                    "originalTimestamp": _iso(moment),
                },
            )
        if logged_in:
            base["userId"] = person.user_id
        _emit(
            out,
            company,
            "mobile-app",
            person,
            {
                **base,
                "type": "track",
                "event": "Application Opened",
                "messageId": str(_uuid(rng)),
                "originalTimestamp": _iso(moment),
            },
        )
        for _ in range(rng.randint(1, 4)):
            category = _pick_category(rng, person)
            moment += timedelta(seconds=rng.randint(5, 90))
            _emit(
                out,
                company,
                "mobile-app",
                person,
                {
                    **base,
                    "type": "screen",
                    "name": f"{category.title()} list",
                    "properties": {"category": category},
                    "messageId": str(_uuid(rng)),
                    "originalTimestamp": _iso(moment),
                },
            )
        if logged_in and rng.random() < 0.2:
            product = _product(rng, _pick_category(rng, person))
            _emit(
                out,
                company,
                "mobile-app",
                person,
                {
                    **base,
                    "type": "track",
                    "event": "Order Completed",
                    "properties": {
                        "order_id": f"M{rng.getrandbits(40):x}",
                        "revenue": product["price"],
                        "currency": "EUR",
                        "products": [product],
                    },
                    "messageId": str(_uuid(rng)),
                    "originalTimestamp": _iso(moment),
                },
            )


def _email_life(
    rng: random.Random,
    person: Person,
    start: datetime,
    end: datetime,
    out: list[dict[str, Any]],
    company: Company,
) -> None:
    for week in range(0, (end - start).days, 14):
        if rng.random() < 0.3:
            continue
        moment = start + timedelta(days=week, hours=rng.randint(7, 10))
        campaign = f"newsletter_w{week // 7}"
        base = {
            "userId": person.user_id,
            "context": {"traits": {"email": person.email}},
            "properties": {"campaign_name": campaign, "email_subject": "This week's picks"},
        }
        _emit(
            out,
            company,
            "email-tool",
            person,
            {
                **base,
                "type": "track",
                "event": "Email Delivered",
                "messageId": str(_uuid(rng)),
                "timestamp": _iso(moment),
            },
        )
        if rng.random() < 0.35 * min(person.activity, 2):
            moment += timedelta(minutes=rng.randint(5, 600))
            _emit(
                out,
                company,
                "email-tool",
                person,
                {
                    **base,
                    "type": "track",
                    "event": "Email Opened",
                    "messageId": str(_uuid(rng)),
                    "timestamp": _iso(moment),
                },
            )
            if rng.random() < 0.3:
                _emit(
                    out,
                    company,
                    "email-tool",
                    person,
                    {
                        **base,
                        "type": "track",
                        "event": "Email Link Clicked",
                        "messageId": str(_uuid(rng)),
                        "timestamp": _iso(moment + timedelta(seconds=30)),
                    },
                )


def _shop_life(
    rng: random.Random, person: Person, start: datetime, end: datetime, company: Company
) -> None:
    visits = rng.choice((0, 0, 1, 1, 2, 3)) if person.loyalty_id else rng.choice((0, 0, 0, 1))
    for _ in range(visits):
        product = _product(rng, _pick_category(rng, person))
        quantity = rng.randint(1, 3)
        receipt = f"R{rng.getrandbits(48):012x}"
        row = {
            "receipt_id": receipt,
            "store": f"{person.city} centre",
            "loyalty_card": person.loyalty_id or "",
            "email": person.email if person.email and rng.random() < 0.3 else "",
            "product": product["name"],
            "category": product["category"],
            "quantity": quantity,
            "total": f"{product['price'] * quantity:.2f}",
            "purchased_at": _moment(rng, start, end).strftime("%d/%m/%Y %H:%M"),
        }
        if not row["loyalty_card"] and not row["email"]:
            continue  # an anonymous cash sale leaves no record we could use
        row.update(_card_holder(random.Random(f"{receipt}:holder"), person, row["loyalty_card"]))
        company.pos_rows.append(row)
        company.truth.append(("shops", receipt, person.person_id))


def _calls(
    rng: random.Random, person: Person, start: datetime, end: datetime, company: Company
) -> None:
    if not person.phone or rng.random() > 0.2:
        return
    for _ in range(rng.choice((1, 1, 2))):
        withheld = rng.random() < 0.05
        call = f"C{rng.getrandbits(40):010x}"
        company.call_rows.append(
            {
                "call_id": call,
                "caller": SWITCHBOARD if withheld else _noisy_phone(rng, person.phone),
                "reason": rng.choice(("delivery", "returns", "payment", "product question")),
                "duration_s": rng.randint(40, 1500),
                "agent": f"agent{rng.randint(1, 25)}",
                # The country of the line the call came in on: the region for national numbers.
                "line_country": person.country,
                "called_at": _moment(rng, start, end).isoformat(timespec="seconds"),
            }
        )
        company.truth.append(("call-centre", call, person.person_id))


def _crm_row(rng: random.Random, person: Person, start: datetime, end: datetime) -> dict[str, Any]:
    """A CRM record: the same person, typed by a human into another system."""
    assert person.email is not None
    email = person.email
    roll = rng.random()
    if roll < 0.15:
        email = email.upper()
    elif roll < 0.3:
        email = f"  {email[0].upper()}{email[1:]} "
    elif roll < 0.34:  # a real typo: no rule can match it to the person
        email = email.replace("@gmail.com", "@gmial.com").replace("@orange.fr", "@orange.fe")
    first = person.first_name if rng.random() > 0.1 else _typo(rng, person.first_name)
    last = person.last_name.upper() if rng.random() < 0.3 else person.last_name
    row_id = f"CRM-{rng.getrandbits(32):08x}"
    # The civil details and their noise come from a stream of their own (see the docstring
    # of the module), so adding them left every other value of the demo as it was.
    side = random.Random(f"{row_id}:civil")
    if person.first_name in NICKNAMES and side.random() < 0.3:
        first = NICKNAMES[person.first_name]
    return {
        "crm_id": row_id,
        "first_name": first,
        "last_name": last,
        "email": email,
        "phone": _noisy_phone(rng, person.phone) if person.phone else "",
        "city": person.city,
        "country": person.country,
        "customer_since": _moment(rng, start - timedelta(days=900), start).date().isoformat(),
        "newsletter": rng.choice(("yes", "no", "Y", "N", "true")),
        "address": _noisy_street(side, person.street) if side.random() < 0.9 else "",
        "postcode": _noisy_postcode(side, person.postcode) if side.random() < 0.9 else "",
        "birth_date": _noisy_birth_date(side, person.birth_date) if side.random() < 0.85 else "",
    }


def _civil_details(rng: random.Random, person: Person) -> None:
    """Date of birth, street address and postcode (the loyalty scheme and the CRM ask)."""
    born = datetime(1945, 1, 1) + timedelta(days=rng.randrange(60 * 365))
    person.birth_date = born.date().isoformat()
    number = rng.randint(1, 140)
    street = rng.choice(STREETS[person.country])
    person.street = f"{number} {street}" if person.country in ("FR", "GB") else f"{street} {number}"
    person.postcode = rng.choice(POSTCODES[person.city])


def _card_holder(rng: random.Random, person: Person, card: str) -> dict[str, str]:
    """The loyalty card's holder as the till prints it: capitals without accents, the
    postcode and the date of birth given at enrolment, day first; slips now and then."""
    if not card:
        return {"holder_name": "", "holder_address": "", "holder_postcode": "",
                "holder_birth_date": ""}  # fmt: skip
    first = _ascii(person.first_name).upper()
    last = _ascii(person.last_name).upper()
    if rng.random() < 0.1:
        last = _typo(rng, last)
    elif rng.random() < 0.05:
        first = first[0] + "."  # an initial only
    name = f"{first} {last}" if rng.random() < 0.7 else f"{last} {first}"
    born = person.birth_date if rng.random() > 0.05 else _noisy_birth_date(rng, person.birth_date)
    year, month, day = born.split("-")
    address = _ascii(_noisy_street(rng, person.street)).upper() if rng.random() < 0.8 else ""
    return {
        "holder_name": name,
        "holder_address": address,
        "holder_postcode": _noisy_postcode(rng, person.postcode) if rng.random() < 0.95 else "",
        "holder_birth_date": f"{day}/{month}/{year}" if rng.random() < 0.9 else "",
    }


def _noisy_street(rng: random.Random, street: str) -> str:
    roll = rng.random()
    if roll < 0.2:
        return street.lower()
    if roll < 0.3:
        return street.replace("rue ", "r. ").replace("avenue ", "av. ").replace("Road", "Rd")
    if roll < 0.35:
        return _typo(rng, street)
    return street


def _noisy_postcode(rng: random.Random, postcode: str) -> str:
    roll = rng.random()
    if roll < 0.03:  # two digits swapped
        return _typo(rng, postcode)
    if roll < 0.1:
        return postcode.replace(" ", "").lower()
    return postcode


def _noisy_birth_date(rng: random.Random, born: str) -> str:
    """Mostly right; sometimes day and month swapped (typed the American way) or the
    year a digit off."""
    year, month, day = born.split("-")
    roll = rng.random()
    if roll < 0.04 and int(day) <= 12:
        return f"{year}-{day}-{month}"
    if roll < 0.07:
        return f"{int(year) + rng.choice((-1, 1))}-{month}-{day}"
    return born


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 3:
        return word
    at = rng.randrange(1, len(word) - 1)
    return word[:at] + word[at + 1] + word[at] + word[at + 2 :]


def _ascii(text: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)
