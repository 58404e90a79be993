"""The world builder: one seeded SQLite database holding every app of the AppWorld-style env, filled with a
plausible everyday life for the supervisor (person 0 of the population) and light activity for everyone else.

``build_world(WorldSpec(seed, now, n_people))`` makes the population (``population.make_population``), creates
every app's tables in a fresh in-memory database and seeds them. What is seeded, per app:

* **supervisor** — the profile (person 0), two addresses (``home``: their household's address; ``work``: an
  office in their city), 2–3 payment cards (fictional 16-digit numbers, see ``_card_number``; expiry after
  ``now``), a random 12-character password for each app with accounts, and a placeholder ``supervisor_task``
  row (``task_id`` ``""``) that the task layer overwrites.
* **accounts** — the supervisor everywhere; every other person in phone and wallet; a seeded ~70% of the
  others in music, ~60% in splitbill and ~40% in notes and todo (always including whoever the seeded rows
  below need: housemates in the splitbill groups, owners of shared notes, ...). Every password is random.
* **phone** — the supervisor's contacts: everyone they have a relationship with (tag = the relationship kind,
  so their manager shows as ``manager``) plus 3–5 acquaintances without a tag, in a shuffled order; 40–80 text
  messages with contacts over the 60 days before ``now`` (short conversations from the templates below, both
  directions; song tips name real catalogue songs); 3–5 alarms.
* **wallet** — balances (supervisor 500–2000, others 0–1500 dollars); the supervisor's friends (their friend,
  family, roommate and partner ties, listed in both directions); 30–60 past payments involving the supervisor
  and 20 among others (some private); payment requests: 3–6 pending ones to or from the supervisor plus an
  approved and a denied one; likes and comments; a few card deposits and a bank withdrawal. Balances are the
  current state and are not derived from the history.
* **splitbill** — a "Home" group for the supervisor's household (partner and roommates) and 1–2 groups of
  friends (a trip, a dinner club), expenses over the last 90 days split equally or by exact shares, a few
  settle-up payments (so that balances stay non-trivial) and comments.
* **music** — a catalogue of 25 artists, 50 albums and about 300 songs (titles from the word lists below,
  genres from ``GENRES``, durations 120–420 s, release dates over the 20 years before ``now``, play counts); the
  supervisor's library (songs and albums), 20–40 liked songs, 3–5 playlists (public and private, 5–20 songs
  each), 5–10 followed artists, 30 recent plays and some ratings; playlists, likes, follows and ratings for a
  few other users.
* **notes** — 8–15 notes for the supervisor (grocery lists, books, recipes, trip plans, meeting notes,
  birthdays, ...; tags; one or two pinned; one shared with their partner), 2–3 notes shared with them by
  people close to them, and a few private notes of other users.
* **todo** — 2–4 projects and 15–30 tasks for the supervisor (due dates from three weeks ago to a month ahead
  or none, priorities, labels, some completed), a few comments; a few tasks of other users.

Every timestamp is strictly before ``now`` and every date-only field (expense dates, release dates) is before
``now``'s day, except due dates and card expiries, which may lie ahead.

Determinism: every random choice comes, in a fixed order, from one ``random.Random`` seeded with the string
``"agentdistill-appworld-world/<seed>"`` (the population has its own generator). The code never uses the
global ``random``, the clock, ``hash()`` or the iteration order of a set (sets are only asked for membership;
lists are sorted by person id or kept in insertion order); stored values come from integer draws only
(``random()`` is only compared with constants, so no platform-dependent float maths is involved); and rows are
inserted in a fixed order (mostly oldest first), so row ids are stable. The same spec therefore gives the same
``world_digest`` in any process, whatever ``PYTHONHASHSEED`` is.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import random
import sqlite3
import string
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from agentdistill_appworld.apps.api_docs import APIDocs
from agentdistill_appworld.apps.music import Music
from agentdistill_appworld.apps.notes import Notes
from agentdistill_appworld.apps.phone import Phone
from agentdistill_appworld.apps.splitbill import SplitBill, equal_split
from agentdistill_appworld.apps.supervisor import Supervisor
from agentdistill_appworld.apps.todo import Todo
from agentdistill_appworld.apps.wallet import Wallet
from agentdistill_appworld.framework import App, Context, snapshot
from agentdistill_appworld.population import CITIES, Person, Population, make_population

__all__ = ["ACCOUNT_APPS", "APP_CLASSES", "WorldSpec", "build_world", "supervisor_passwords", "world_digest"]

APP_CLASSES: tuple[type[App], ...] = (Supervisor, APIDocs, Phone, Wallet, SplitBill, Music, Notes, Todo)

#: Apps with accounts (each has a supervisor password), in the order the supervisor's passwords are drawn.
ACCOUNT_APPS: tuple[str, ...] = ("phone", "wallet", "splitbill", "music", "notes", "todo")

#: Percent of the people other than the supervisor who have an account in each app.
ACCOUNT_PERCENT: dict[str, int] = {"phone": 100, "wallet": 100, "splitbill": 60, "music": 70, "notes": 40,
                                   "todo": 40}

#: Relationship kinds that make someone a wallet friend of the supervisor.
WALLET_FRIEND_KINDS: tuple[str, ...] = ("friend", "family", "roommate", "partner")

PASSWORD_CHARS = string.ascii_letters + string.digits


@dataclass(frozen=True)
class WorldSpec:
    seed: int = 0
    now: str = "2024-05-15T10:00:00"
    n_people: int = 100


# ================================================================================================ word lists

# ---- supervisor

CARD_KINDS: tuple[tuple[str, str], ...] = (  # (card name, first digit of the number)
    ("Visa Gold", "4"), ("Visa Platinum", "4"), ("Visa Everyday", "4"), ("Mastercard World", "5"),
    ("Mastercard Rewards", "5"), ("Mastercard Travel", "5"),
)
OFFICE_STREETS: tuple[str, ...] = (
    "Commerce Plaza", "Market Square", "Enterprise Way", "Innovation Drive", "Gateway Center", "Civic Plaza",
    "Exchange Street", "Founders Court",
)

# ---- phone

WEEKDAYS: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MEET_TIMES: tuple[str, ...] = ("6pm", "6:30", "7pm", "7:30", "8pm", "noon", "1pm", "10am")
RESTAURANTS: tuple[str, ...] = (
    "Luigi's Trattoria", "The Copper Pot", "Saffron House", "Blue Door Diner", "Nori Sushi Bar", "Casa Verde",
    "The Rusty Spoon", "Golden Dumpling", "Olive & Thyme", "Harbor Fish Shack", "Taqueria del Sol",
    "Maple Street Bistro",
)
PLACES: tuple[str, ...] = (
    "the farmers market", "the climbing gym", "the park by the river", "the new bakery", "the bookstore cafe",
    "the dog park", "the lake trail", "the community pool",
)
BILLS: tuple[str, ...] = ("internet", "electricity", "water", "gas", "streaming")
DISHES: tuple[str, ...] = ("lasagna", "curry", "tacos", "dumplings", "ramen", "paella", "chili", "risotto")
MOVIES: tuple[str, ...] = (
    "The Last Lighthouse", "Paper Kingdoms", "Midnight at Copper Creek", "The Quiet Engine", "Salt and Thunder",
    "A Kite for Winter", "The Harbor Job", "Neon Orchard",
)
ERRAND_ITEMS: tuple[str, ...] = ("milk", "eggs", "coffee beans", "dish soap", "bread", "paper towels", "bananas",
                                 "olive oil")

#: Conversations: (relationship kinds that fit, messages as (who, text)); who is "me" (the supervisor) or
#: "them" (the contact). "" stands for a contact without a relationship tag.
CONVERSATIONS: tuple[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], ...] = (
    (("friend", "family", "partner", "roommate"), (
        ("them", "Are you free {day} evening? Thinking of trying {restaurant}."),
        ("me", "Yes! {time} works for me."), ("them", "Great, I'll book a table."))),
    (("friend", "roommate", "partner"), (
        ("me", "Want to go to {place} on {day}?"), ("them", "Sounds fun, count me in."))),
    (("friend", "family"), (
        ("them", "Happy belated birthday wishes from all of us, {me}!"), ("me", "Thank you so much, {first}!"))),
    (("partner", "roommate"), (
        ("them", "Can you pick up {item} on the way home?"), ("me", "Sure, anything else?"),
        ("them", "That's it, thanks!"))),
    (("partner", "roommate", "family"), (
        ("me", "Reminder: the plumber comes {day} morning."), ("them", "Got it, I'll be home."))),
    (("roommate", "partner"), (
        ("them", "The {bill} bill came in, it's {amount} each this month."),
        ("me", "Thanks, I'll send it tonight."))),
    (("roommate", "partner", "friend"), (
        ("me", "Just sent you {amount} for the {bill} bill."), ("them", "Got it, thanks!"))),
    (("friend",), (
        ("them", "I paid for the tickets, you owe me {amount} whenever."),
        ("me", "Sending it now, thanks for sorting it out."))),
    (("friend", "partner", "roommate", "family"), (
        ("them", "You have to listen to {song} by {artist}."), ("me", "Adding it to my playlist right now."))),
    (("friend", "partner"), (
        ("me", "Have you heard {song} by {artist}? It's been on repeat all week."),
        ("them", "Not yet, will check it out!"))),
    (("friend", "roommate"), (
        ("them", "Movie night {day}? I was thinking {movie}."), ("me", "I'm in. I'll bring snacks."))),
    (("family",), (
        ("them", "Sunday dinner at our place? I'm making {dish}."), ("me", "Wouldn't miss it. What should I bring?"),
        ("them", "Just yourself!"))),
    (("family",), (
        ("me", "Did you get the photos I sent?"), ("them", "Yes, they're lovely. Call me this weekend?"),
        ("me", "Will do."))),
    (("family", "partner"), (
        ("them", "Don't forget it's grandma's birthday on {day}."), ("me", "Thanks for the reminder, I'll call her."))),
    (("friend", "family", "partner", "roommate", ""), (
        ("me", "Thanks again for the help on {day}, {first}!"), ("them", "Anytime!"))),
    (("friend", "family"), (
        ("them", "Running 10 minutes late, sorry!"), ("me", "No worries, I'll grab us a table."))),
    (("partner",), (
        ("me", "I'll be home around {time}. Want me to cook {dish}?"), ("them", "Yes please!"))),
    (("partner",), (
        ("them", "Can you book the dentist for both of us?"), ("me", "Done, it's on {day} at {time}."))),
    (("roommate",), (
        ("me", "Whose turn is it to take out the recycling?"), ("them", "Mine, I'll do it tonight."))),
    (("coworker", "manager"), (
        ("them", "Can you send me the slides before the {workday} meeting?"),
        ("me", "Sure, I'll send them this afternoon."))),
    (("coworker",), (
        ("me", "Running a few minutes late to standup."), ("them", "No problem, we'll start without you."))),
    (("coworker", "manager"), (
        ("them", "Great job on the presentation today!"), ("me", "Thanks, {first}, that means a lot."))),
    (("manager",), (
        ("me", "I'm feeling under the weather, I'll work from home today."), ("them", "Take care, feel better."))),
    (("coworker",), (
        ("them", "Lunch at {restaurant} on {workday}?"), ("me", "Sure, {time}?"), ("them", "Perfect."))),
    (("",), (
        ("them", "Hi {me}, it's {first} from {place}. Is the bike still for sale?"),
        ("me", "Sorry, it was sold last week."))),
    (("",), (
        ("them", "Thanks for the jump start yesterday, {me}!"), ("me", "Glad I could help."))),
)
#: How often each relationship kind gets a conversation (relative weights).
CONVERSATION_WEIGHTS: dict[str, int] = {"partner": 12, "roommate": 8, "family": 6, "friend": 6, "coworker": 4,
                                        "manager": 4, "": 1}
ALARMS: tuple[tuple[str, str, str], ...] = (  # (time, label, repeat days)
    ("06:30", "Wake up", "monday,tuesday,wednesday,thursday,friday"),
    ("08:00", "Weekend run", "saturday,sunday"),
    ("18:15", "Gym", "monday,wednesday,friday"),
    ("20:00", "Take out the recycling", "tuesday"),
    ("21:30", "Vitamins", "monday,tuesday,wednesday,thursday,friday,saturday,sunday"),
    ("07:45", "Leave for work", "monday,tuesday,wednesday,thursday,friday"),
    ("14:00", "Call the bank", ""),
)

# ---- wallet

#: (note template, lowest, highest amount in cents).
PAYMENT_NOTES: tuple[tuple[str, int, int], ...] = (
    ("Dinner at {restaurant}", 1800, 9000), ("Pizza night", 1200, 4000), ("Concert tickets", 4000, 15000),
    ("Groceries", 2000, 12000), ("Utilities for {month}", 3000, 12000), ("Internet bill - {month}", 2000, 4500),
    ("Coffee", 400, 1200), ("Brunch", 2500, 6000), ("Movie night", 1200, 3500), ("Gas money", 1500, 5000),
    ("Taxi from the airport", 2500, 7000), ("Birthday gift for {name}", 2000, 8000),
    ("Book club snacks", 800, 2500), ("Yoga class pass", 3000, 9000), ("Parking", 500, 2500),
    ("Board game night", 1000, 3000), ("Drinks", 1500, 5000), ("Half the takeout", 1200, 3500),
    ("Plants for the balcony", 1500, 6000), ("Rent share for {month}", 40000, 90000),
)
PAYMENT_COMMENTS: tuple[str, ...] = (
    "Thanks!", "What a night!", "Next one's on me.", "You're the best.", "Worth every penny.", "So good!",
    "Let's do it again soon.", "Thanks for covering me.",
)
REQUEST_NOTES: tuple[str, ...] = (
    "Concert tickets", "Your half of the groceries", "Dinner on {day}", "Cabin deposit", "Birthday gift for {name}",
    "Taxi to the airport", "Utilities for {month}", "Brunch on {day}", "Gas for the road trip",
    "Your share of the cabin",
)

# ---- splitbill

#: Expense kinds: (title, lowest cents, highest cents, whether it recurs); one that does not recur is added at
#: most once per group.
HOUSE_EXPENSES: tuple[tuple[str, int, int, bool], ...] = (
    ("Groceries", 4000, 18000, True), ("Internet", 5000, 8000, True), ("Electricity", 6000, 16000, True),
    ("Water bill", 3000, 7000, True), ("Cleaning supplies", 1500, 4500, True),
    ("Toilet paper and basics", 1200, 3500, True), ("Takeout night", 4000, 9000, True),
    ("New vacuum cleaner", 9000, 20000, False), ("House plants", 2000, 6000, False),
    ("Shower curtain and bath mat", 2500, 5000, False),
)
TRIP_EXPENSES: tuple[tuple[str, int, int, bool], ...] = (
    ("Cabin rental", 40000, 90000, False), ("Gas", 4000, 9000, True), ("Groceries for the trip", 6000, 15000, False),
    ("Dinner on the first night", 8000, 20000, False), ("Museum tickets", 3000, 8000, False),
    ("Boat tour", 6000, 16000, False), ("Breakfast", 3000, 7000, True), ("Parking", 1500, 4000, True),
    ("Souvenirs", 2000, 6000, False),
)
CLUB_EXPENSES: tuple[tuple[str, int, int, bool], ...] = (
    ("Dinner at {restaurant}", 8000, 22000, True), ("Wine", 3000, 8000, True), ("Dessert", 2000, 5000, True),
    ("Board game", 3000, 6000, False), ("Snacks", 1500, 4000, True),
)
CLUB_NAMES: tuple[str, ...] = ("Dinner club", "Book club", "Game night", "Ski weekend", "Pottery class")
SETTLE_NOTES: tuple[str, ...] = ("cash", "bank transfer", "wallet app", "paid back", "")
EXPENSE_COMMENTS: tuple[str, ...] = (
    "I'll pay you back on Friday.", "Receipt is on the fridge.", "Thanks for picking this up!",
    "Was this before or after the discount?", "Worth it.",
)

# ---- music

GENRES: tuple[str, ...] = ("pop", "rock", "indie", "jazz", "hip hop", "electronic", "folk", "r&b", "country",
                           "classical", "soul", "metal")
ADJECTIVES: tuple[str, ...] = (
    "Velvet", "Golden", "Silver", "Hollow", "Electric", "Quiet", "Wild", "Neon", "Paper", "Midnight", "Crimson",
    "Amber", "Broken", "Gentle", "Restless", "Faded", "Lucky", "Lonely", "Burning", "Frozen", "Secret",
    "Distant", "Sleepy", "Bright", "Hidden", "Crooked", "Tender", "Salty", "Dusty", "Sunlit", "Violet",
    "Copper", "Glass", "Silent", "Little", "Endless", "Cosmic", "Lazy", "Shiny", "Wandering",
)
NOUNS: tuple[str, ...] = (
    "Lantern", "River", "Harbor", "Comet", "Garden", "Highway", "Mirror", "Window", "Ocean", "Meadow", "Echo",
    "Signal", "Engine", "Orchard", "Island", "Canyon", "Satellite", "Postcard", "Thunder", "Feather", "Compass",
    "Letter", "Balloon", "Shadow", "Horizon", "Ember", "Tide", "Fountain", "Kite", "Lighthouse", "Avenue",
    "Railway", "Valley", "Forest", "Mountain", "Planet", "Sparrow", "Heartbeat", "Summer", "Winter",
    "Morning", "Evening", "Skyline", "Carousel", "Daydream", "Moon", "Star", "Rain", "Fire", "Paradise",
)
BAND_NOUNS: tuple[str, ...] = (
    "Lanterns", "Comets", "Sparrows", "Wolves", "Satellites", "Engines", "Foxes", "Echoes", "Tides", "Kites",
    "Ravens", "Pilots", "Strangers", "Daydreamers", "Mirrors", "Rivers",
)
ARTIST_FIRST_NAMES: tuple[str, ...] = (
    "Juno", "Ezra", "Lyra", "Otis", "Marlo", "Wren", "Cleo", "Dex", "Nova", "Rafe", "Ione", "Tobin", "Sable",
    "Quill", "Ember", "Soren",
)
ARTIST_LAST_NAMES: tuple[str, ...] = (
    "Vale", "Marrow", "Finch", "Calloway", "Rook", "Sterling", "Ashby", "Dunmore", "Hale", "Lark", "Wilder",
    "Crane", "Fairweather", "Merrow", "Strand", "Quist",
)
VERB_PHRASES: tuple[str, ...] = (
    "Chasing", "Dancing with", "Waiting for", "Falling into", "Running from", "Dreaming of", "Counting",
    "Holding", "Painting", "Calling", "Following", "Leaving",
)
PLAYLIST_TITLES: tuple[str, ...] = (
    "Morning Commute", "Sunday Chill", "Workout Mix", "Road Trip", "Dinner Party", "Focus Flow", "Rainy Day",
    "Throwbacks", "Late Night Drive", "Kitchen Dance Party", "Study Session", "Summer Vibes", "Cozy Evenings",
    "Running Tempo", "Good Mood",
)
N_ARTISTS, N_ALBUMS, TARGET_SONGS = 25, 50, 300

# ---- notes

GROCERIES: tuple[str, ...] = (
    "milk", "eggs", "sourdough bread", "butter", "spinach", "tomatoes", "avocados", "bananas", "apples",
    "chicken thighs", "salmon", "rice", "pasta", "parmesan", "greek yogurt", "oat milk", "coffee beans",
    "olive oil", "garlic", "onions", "lemons", "dark chocolate", "cereal", "peanut butter", "frozen peas",
)
BOOKS: tuple[tuple[str, str], ...] = (
    ("Thirteen Quiet Rivers", "Mara Ellingsen"), ("The Copper Compass", "D. L. Okonjo"),
    ("Nights at the Harbor Hotel", "Selma Baranyi"), ("The Sparrow Protocol", "Iven Tallis"),
    ("A Garden of Loud Echoes", "Priya Ramcharan"), ("Still Water, Moving Sky", "Tomasz Wierzbic"),
    ("The Lantern Keeper's Almanac", "Helle Stromberg"), ("Salt Roads", "Abeni Okorafo"),
    ("The Unfinished Orchard", "Colm Ferriday"), ("Small Hours in Red Mesa", "Lucia Varnell"),
)
RECIPES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Weeknight chili", ("1 lb ground beef or lentils", "1 onion", "2 cans kidney beans", "1 can tomatoes",
                         "2 tbsp chili powder"),
     ("Brown the onion and meat.", "Add beans, tomatoes and spices.", "Simmer 30 minutes.")),
    ("Lemon garlic pasta", ("12 oz spaghetti", "3 cloves garlic", "1 lemon", "parmesan", "olive oil"),
     ("Cook the pasta.", "Fry garlic in olive oil.", "Toss with lemon zest, juice and parmesan.")),
    ("Banana bread", ("3 ripe bananas", "1/3 cup melted butter", "3/4 cup sugar", "1 egg", "1.5 cups flour",
                      "1 tsp baking soda"),
     ("Mash the bananas and mix in butter.", "Stir in sugar, egg, then flour and soda.", "Bake 60 min at 350F.")),
    ("Chicken curry", ("2 lb chicken thighs", "1 onion", "curry paste", "1 can coconut milk", "rice"),
     ("Brown the chicken.", "Fry onion with curry paste.", "Add coconut milk and simmer 25 minutes.")),
    ("Veggie tacos", ("tortillas", "black beans", "corn", "avocado", "lime", "salsa"),
     ("Warm the beans with cumin.", "Char the corn.", "Fill tortillas and top with avocado and lime.")),
)
PACKING: tuple[str, ...] = (
    "passport or ID", "phone charger", "toothbrush", "rain jacket", "hiking boots", "sunscreen", "swimsuit",
    "headphones", "book", "medications", "snacks for the road", "camera",
)
HOME_CHORES: tuple[str, ...] = (
    "replace the furnace filter", "clean the gutters", "test smoke detectors", "descale the kettle",
    "reseal the bathtub", "oil the squeaky door", "defrost the freezer", "check the fire extinguisher",
)
WORKOUTS: tuple[str, ...] = (
    "Monday: 5k easy run", "Tuesday: upper body strength", "Wednesday: yoga", "Thursday: intervals 6x400m",
    "Friday: rest", "Saturday: long run 10k", "Sunday: swim 30 min",
)
MEETINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Quarterly planning", ("Agree on Q3 goals", "Hiring plan for two roles", "Budget review next week")),
    ("Project kickoff", ("Scope and milestones", "Weekly check-ins on Thursdays", "Risks: vendor delays")),
    ("1:1 with manager", ("Feedback on the last launch", "Training budget", "Career goals for this year")),
)

# ---- todo

PROJECT_TASKS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "Home": (("Fix the leaky kitchen faucet", ("home", "repair")), ("Replace smoke detector batteries", ("home",)),
             ("Deep clean the fridge", ("home", "chores")), ("Call the landlord about the heater", ("home", "calls")),
             ("Buy a new shower curtain", ("errand", "home")), ("Organize the garage shelves", ("home",))),
    "Work": (("Prepare slides for the quarterly review", ("work",)),
             ("Send the budget draft to {manager}", ("work", "email")),
             ("Book a room for the team offsite", ("work",)), ("Review {coworker}'s design doc", ("work",)),
             ("Update the project timeline", ("work",)), ("Write the performance self-review", ("work",))),
    "Trip to {city}": (("Book flights", ("travel",)), ("Reserve a hotel near downtown", ("travel",)),
                       ("Compare car rental options", ("travel",)), ("Make a packing list", ("travel",)),
                       ("Ask {friend} for restaurant tips", ("travel",))),
    "Fitness": (("Sign up for the 10k run", ("health",)), ("Buy new running shoes", ("errand", "health")),
                ("Schedule a physio appointment", ("health", "calls")), ("Plan weekly meal prep", ("health", "food"))),
    "Garden": (("Plant tomato seedlings", ("garden",)), ("Buy compost and mulch", ("errand", "garden")),
               ("Fix the drip irrigation", ("garden", "repair")), ("Trim the hedges", ("garden",))),
    "Learn Spanish": (("Finish unit 4 of the course", ("learning",)), ("Book a conversation class", ("learning",)),
                      ("Watch a movie in Spanish", ("learning",)), ("Review vocabulary flashcards", ("learning",))),
}
INBOX_TASKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Pay the electricity bill", ("bills",)), ("Call {relative}", ("family", "calls")),
    ("Pick up dry cleaning", ("errand",)), ("Book a dentist appointment", ("health", "calls")),
    ("Renew car registration", ("errand", "car")), ("Buy a birthday present for {friend}", ("gifts",)),
    ("Return library books", ("errand",)), ("Cancel the unused gym membership", ("bills",)),
    ("Schedule a car service", ("car",)), ("Back up phone photos", ("tech",)), ("Water the plants", ("home",)),
    ("Plan date night with {partner}", ("family",)), ("Order new contact lenses", ("health", "errand")),
    ("Donate old clothes", ("errand", "home")), ("File the expense report", ("work",)),
)
TASK_DESCRIPTIONS: tuple[str, ...] = (
    "", "", "", "Check the receipts first.", "Ask for a quote.", "Before the weekend if possible.",
    "See the email thread.", "Low effort, just do it.",
)
TASK_COMMENTS: tuple[str, ...] = (
    "Called them, waiting to hear back.", "Got a quote for $120.", "Moved this to next week.", "Half done.",
    "Need to find the receipt.", "Asked {partner} to help.",
)


# ================================================================================================ public API


def build_world(spec: WorldSpec = WorldSpec(), *, population: Population | None = None) -> Context:
    """A fresh in-memory world for ``spec``: every app's tables, seeded rows, one instance of each app in
    ``ctx.apps``. ``population`` (made with ``spec.now``) skips making the population again."""
    now = datetime.fromisoformat(spec.now).replace(microsecond=0)
    pop = population if population is not None else make_population(spec.seed, spec.n_people, spec.now)
    if datetime.fromisoformat(pop.now) != datetime.fromisoformat(spec.now):
        raise ValueError(f"the population was made for now={pop.now!r}, the spec says now={spec.now!r}")
    ctx = Context(db=sqlite3.connect(":memory:", isolation_level=None), now=now.isoformat())
    for cls in APP_CLASSES:
        app = cls(ctx)
        app.create_tables()
        ctx.apps[app.name] = app
    rng = random.Random(f"agentdistill-appworld-world/{spec.seed}")
    ctx.db.execute("BEGIN")
    try:
        for seed_app in (_seed_supervisor, _seed_music, _seed_phone, _seed_wallet, _seed_splitbill, _seed_notes,
                         _seed_todo):
            seed_app(ctx, pop, rng)
    except BaseException:
        ctx.db.execute("ROLLBACK")
        raise
    ctx.db.execute("COMMIT")
    return ctx


def supervisor_passwords(ctx: Context) -> dict[str, str]:
    """App name -> the supervisor's password, as stored in the supervisor app."""
    rows = ctx.db.execute("SELECT account_name, password FROM supervisor_passwords ORDER BY account_name")
    return {name: password for name, password in rows}


def world_digest(ctx: Context) -> str:
    """sha256 of a canonical JSON dump of ``snapshot(ctx.db)`` (every table but the login tokens)."""
    text = json.dumps(snapshot(ctx.db), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# ================================================================================================ helpers


def _now(ctx: Context) -> datetime:
    return datetime.fromisoformat(ctx.now)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _ago(rng: random.Random, now: datetime, min_days: int, max_days: int) -> datetime:
    """A moment between ``max_days`` and ``min_days`` days before ``now``, at least a minute before it."""
    low = max(60, min_days * 86400)
    return now - timedelta(seconds=rng.randint(low, max(low, max_days * 86400)))


def _daytime(rng: random.Random, now: datetime, min_days: int, max_days: int) -> datetime:
    """A waking-hours moment (07:00-22:59) on a day ``min_days``..``max_days`` before ``now``'s, before ``now``."""
    day = now.date() - timedelta(days=rng.randint(min_days, max_days))
    moment = datetime.combine(day, time(rng.randint(7, 22), rng.randint(0, 59), rng.randint(0, 59)))
    while moment >= now:
        moment -= timedelta(days=1)
    return moment


def _daytime_since(rng: random.Random, now: datetime, start: datetime, max_days: int) -> datetime:
    """A waking-hours moment of the last ``max_days`` days that is after ``start`` (any moment after a very
    recent ``start``)."""
    moment = _daytime(rng, now, 0, max(0, min(max_days, (now.date() - start.date()).days)))
    return moment if moment > start else _between(rng, start, now)


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A moment in ``[start, end)`` (``start`` when the range is empty)."""
    span = int((end - start).total_seconds())
    return start if span <= 1 else start + timedelta(seconds=rng.randrange(span))


def _past_day(rng: random.Random, now: datetime, min_days: int, max_days: int) -> date:
    """A day ``min_days``..``max_days`` (at least 1) before ``now``'s day."""
    return now.date() - timedelta(days=rng.randint(max(1, min_days), max(1, min_days, max_days)))


def _password(rng: random.Random) -> str:
    return "".join(rng.choice(PASSWORD_CHARS) for _ in range(12))


def _dollars(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"


def _cents(rng: random.Random, low: int, high: int) -> int:
    """An amount in ``[low, high]`` cents; mostly whole or half dollars, like real bills."""
    cents = rng.randint(low, high)
    return cents if rng.random() < 0.4 else max(50, cents - cents % 50)


def _since(pop: Population, a: int, b: int) -> datetime:
    for rel in pop.relationships:
        if {rel.a, rel.b} == {a, b}:
            return datetime.fromisoformat(rel.since)
    raise KeyError(f"people {a} and {b} have no relationship")


def _relations(pop: Population, *kinds: str) -> list[Person]:
    """The supervisor's relations of these kinds (all kinds when none are given), sorted by id."""
    return [p for p, kind in pop.relations_of(pop.supervisor_id) if not kinds or kind in kinds]


def _created_at(ctx: Context, app: str, person: Person) -> datetime:
    username = getattr(person, ctx.apps[app].username_field)
    row = ctx.db.execute(f"SELECT created_at FROM {app}_accounts WHERE username = ?", (username,)).fetchone()
    return datetime.fromisoformat(row[0])


def _members(pop: Population, rng: random.Random, app: str, required: list[int]) -> list[int]:
    """Person ids with an account in ``app``: the supervisor, ``required`` and a seeded share of the rest."""
    sup = pop.supervisor_id
    wanted = (len(pop.people) - 1) * ACCOUNT_PERCENT[app] // 100
    needed = sorted({pid for pid in required if pid != sup})
    rest = [p.person_id for p in pop.people if p.person_id != sup and p.person_id not in needed]
    extra = rng.sample(rest, max(0, min(len(rest), wanted - len(needed))))
    return sorted([sup, *needed, *extra])


def _open_accounts(ctx: Context, pop: Population, rng: random.Random, app: str, ids: list[int],
                   balances: dict[int, int] | None = None) -> None:
    """Accounts for ``ids`` (in id order), created 1.5-6 years ago; the supervisor's password is theirs."""
    sup_password = supervisor_passwords(ctx)[app]
    now = _now(ctx)
    for pid in ids:
        person = pop.people[pid]
        password = sup_password if pid == pop.supervisor_id else _password(rng)
        created = _iso(_ago(rng, now, 550, 2200))
        if balances is None:
            ctx.apps[app].add_account(person, password, created)
        else:
            ctx.apps[app].add_account(person, password, created, balance=balances[pid] / 100)


def _fill(template: str, rng: random.Random, values: dict[str, Any]) -> str:
    """``template`` with its fields filled from ``values`` (callables are called with ``rng``)."""
    fields = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    return template.format(**{name: values[name](rng) if callable(values[name]) else values[name]
                              for name in fields})


# ================================================================================================ supervisor


def _card_number(rng: random.Random, first: str) -> str:
    """16 digits starting with ``first`` and the made-up issuer 0000, with a check digit that fails the
    Luhn test: no real card has such a number."""
    body = first + "0000" + "".join(str(rng.randrange(10)) for _ in range(10))
    total = 0
    for i, ch in enumerate(reversed(body)):  # Luhn sum of the 15 digits, as if a check digit followed
        digit = int(ch) * (2 if i % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    valid = (10 - total % 10) % 10
    return body + str((valid + 1 + rng.randrange(9)) % 10)  # any digit but the valid one


def _seed_supervisor(ctx: Context, pop: Population, rng: random.Random) -> None:
    app, sup, now = ctx.apps["supervisor"], pop.supervisor, _now(ctx)
    app.insert("supervisor_profile", {"first_name": sup.first_name, "last_name": sup.last_name,
                                      "email": sup.email, "phone": sup.phone, "birthday": sup.birthday})
    home = sup.address
    app.insert("supervisor_addresses", {"address_name": "home", "street": home.street, "city": home.city,
                                        "state": home.state, "zip_code": home.zip_code, "country": home.country})
    suite = rng.randint(1, 9) * 100 + rng.randint(0, 20)
    office = f"{rng.randint(100, 2400)} {rng.choice(OFFICE_STREETS)}, Suite {suite}"
    office_zip = f"{home.zip_code[:3]}{rng.randint(0, 99):02d}"  # another zip code of the same city
    app.insert("supervisor_addresses", {"address_name": "work", "street": office, "city": home.city,
                                        "state": home.state, "zip_code": office_zip, "country": home.country})
    for card_name, first in rng.sample(CARD_KINDS, rng.randint(2, 3)):
        months = now.year * 12 + now.month - 1 + rng.randint(3, 60)
        app.insert("supervisor_payment_cards", {
            "card_name": card_name, "owner_name": sup.full_name, "card_number": _card_number(rng, first),
            "expiry": f"{months % 12 + 1:02d}/{months // 12 % 100:02d}", "cvv": f"{rng.randint(0, 999):03d}"})
    for name in ACCOUNT_APPS:
        app.insert("supervisor_passwords", {"account_name": name, "password": _password(rng)})
    app.insert("supervisor_task", {"task_id": "", "instruction": "", "completed": 0, "answer": None,
                                   "status": None})


# ================================================================================================ music


def _unique(rng: random.Random, used: set[str], make) -> str:
    """A fresh value of ``make(rng)`` (membership tests only on ``used``)."""
    while True:
        value = make(rng)
        if value not in used:
            used.add(value)
            return value


def _artist_name(rng: random.Random) -> str:
    shape = rng.randrange(4)
    if shape == 0:
        return f"The {rng.choice(ADJECTIVES)} {rng.choice(BAND_NOUNS)}"
    if shape == 1:
        return f"{rng.choice(ARTIST_FIRST_NAMES)} {rng.choice(ARTIST_LAST_NAMES)}"
    if shape == 2:
        return f"{rng.choice(ARTIST_FIRST_NAMES)} & the {rng.choice(BAND_NOUNS)}"
    return f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"


def _song_title(rng: random.Random) -> str:
    shape = rng.randrange(5)
    if shape <= 1:
        return f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
    if shape == 2:
        return f"{rng.choice(NOUNS)} in the {rng.choice(NOUNS)}"
    if shape == 3:
        return f"{rng.choice(VERB_PHRASES)} the {rng.choice(NOUNS)}"
    return f"Song for {rng.choice(ARTIST_FIRST_NAMES)}"


def _album_title(rng: random.Random) -> str:
    shape = rng.randrange(4)
    if shape == 0:
        return f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
    if shape == 1:
        return f"The {rng.choice(NOUNS)} Sessions"
    if shape == 2:
        return f"{rng.choice(NOUNS)} & {rng.choice(NOUNS)}"
    return f"Songs from the {rng.choice(NOUNS)}"


def _play_count(rng: random.Random) -> int:
    """Integer-only, heavy-tailed: a few hundred to a few million."""
    return rng.randint(1, 9) * 10 ** rng.randint(2, 6) + rng.randint(0, 999)


def _catalogue(rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    """25 artists with 1-3 albums each (50 in all) of 3-7 songs, plus singles up to about 300 songs."""
    names, titles, album_titles = set(), set(), set()
    per_artist = [1] * N_ARTISTS
    for i in rng.sample([i for i in range(N_ARTISTS) for _ in range(2)], N_ALBUMS - N_ARTISTS):
        per_artist[i] += 1
    earliest = now.date() - timedelta(days=20 * 365 + 4)
    span = (now.date() - earliest).days - 30  # the newest release is a month old
    artists = []
    for count in per_artist:
        albums = []
        for released in sorted(earliest + timedelta(days=rng.randrange(span)) for _ in range(count)):
            songs = [{"title": _unique(rng, titles, _song_title), "duration_s": rng.randint(120, 420),
                      "play_count": _play_count(rng)} for _ in range(rng.randint(3, 7))]
            albums.append({"title": _unique(rng, album_titles, _album_title), "release_date": released.isoformat(),
                           "songs": songs})
        artists.append({"name": _unique(rng, names, _artist_name), "genre": rng.choice(GENRES), "albums": albums,
                        "singles": []})
    album_songs = sum(len(a["songs"]) for artist in artists for a in artist["albums"])
    for _ in range(max(20, TARGET_SONGS - album_songs)):
        artist = rng.choice(artists)
        released = earliest + timedelta(days=rng.randrange(span))
        artist["singles"].append({"title": _unique(rng, titles, _song_title), "duration_s": rng.randint(120, 420),
                                  "release_date": released.isoformat(), "play_count": _play_count(rng)})
    return artists


@dataclass(frozen=True)
class _Catalogue:
    """Ids of the seeded catalogue, and when each song and album came out (nobody touches one before)."""

    songs: list[int]
    albums: list[int]
    artists: list[int]
    song_release: dict[int, datetime]
    album_release: dict[int, datetime]


def _playlist(app: Music, rng: random.Random, owner: str, title: str, songs: list[int], now: datetime,
              is_public: bool, cat: _Catalogue) -> None:
    created = _ago(rng, now, 20, 500)
    added = [_between(rng, max(created, cat.song_release[s]), now - timedelta(days=1)) for s in songs]
    playlist_id = app.insert("music_playlists", {"owner": owner, "title": title, "is_public": int(is_public),
                                                 "created_at": _iso(created), "updated_at": _iso(max(added))})
    for position, (song_id, at) in enumerate(zip(songs, added, strict=True), start=1):
        app.insert("music_playlist_songs", {"playlist_id": playlist_id, "song_id": song_id, "position": position,
                                            "added_at": _iso(at)})


def _dated_rows(app: Music, rng: random.Random, table: str, column: str, stamp: str, owner: str, ids: list[int],
                start: datetime, now: datetime, released: dict[int, datetime] | None = None) -> None:
    """One row per id in ``table`` (``owner``, ``column`` = the id, ``stamp`` = a time after ``start`` and after
    the item's release), oldest first."""
    rows = sorted((_between(rng, max(start, released[item]) if released else start, now - timedelta(minutes=5)),
                   item) for item in ids)
    for at, item in rows:
        app.insert(table, {"owner": owner, column: item, stamp: _iso(at)})


def _seed_music_user(app: Music, rng: random.Random, owner: str, since: datetime, now: datetime, cat: _Catalogue,
                     *, full: bool) -> None:
    """Library, likes, playlists, follows, plays and ratings of one user (``full``: the supervisor's share)."""
    songs = cat.songs
    if full:
        _dated_rows(app, rng, "music_library_songs", "song_id", "added_at", owner,
                    rng.sample(songs, rng.randint(20, 40)), since, now, cat.song_release)
        _dated_rows(app, rng, "music_library_albums", "album_id", "added_at", owner,
                    rng.sample(cat.albums, rng.randint(3, 6)), since, now, cat.album_release)
    liked = rng.sample(songs, rng.randint(20, 40) if full else rng.randint(3, 12))
    _dated_rows(app, rng, "music_liked_songs", "song_id", "liked_at", owner, liked, since, now, cat.song_release)
    n_playlists = rng.randint(3, 5) if full else rng.randint(1, 2)
    for i, title in enumerate(rng.sample(PLAYLIST_TITLES, n_playlists)):
        size = rng.randint(5, 20) if full else rng.randint(5, 12)
        public = (i == 0) if full and i < 2 else rng.random() < (0.5 if full else 0.8)  # the supervisor has both
        _playlist(app, rng, owner, title, rng.sample(songs, size), now, public, cat)
    follows = rng.sample(cat.artists, rng.randint(5, 10) if full else rng.randint(0, 4))
    _dated_rows(app, rng, "music_following", "artist_id", "followed_at", owner, follows, since, now)
    if full:
        favourites = liked[:10] + rng.sample(songs, 10)  # plays lean towards liked songs
        played = [rng.choice(favourites) for _ in range(30)]
        for song, at in zip(played, sorted(_ago(rng, now, 0, 14) for _ in played), strict=True):
            app.insert("music_plays", {"owner": owner, "song_id": song, "played_at": _iso(at)})
    rated = rng.sample(liked, min(len(liked), rng.randint(8, 14) if full else rng.randint(0, 3)))
    rated += [s for s in rng.sample(songs, 4 if full else 1) if s not in rated]
    for song in rated:
        rating = rng.randint(4, 5) if song in liked else rng.randint(1, 4)
        rated_at = _between(rng, max(since, cat.song_release[song]), now - timedelta(minutes=5))
        app.insert("music_ratings", {"owner": owner, "song_id": song, "rating": rating, "rated_at": _iso(rated_at)})


def _seed_music(ctx: Context, pop: Population, rng: random.Random) -> None:
    app, now = ctx.apps["music"], _now(ctx)
    app.add_catalogue(_catalogue(rng, now))
    songs = app.rows("SELECT song_id, release_date FROM music_songs ORDER BY song_id")
    albums = app.rows("SELECT album_id, release_date FROM music_albums ORDER BY album_id")
    cat = _Catalogue(
        songs=[r["song_id"] for r in songs], albums=[r["album_id"] for r in albums],
        artists=[r["artist_id"] for r in app.rows("SELECT artist_id FROM music_artists ORDER BY artist_id")],
        song_release={r["song_id"]: datetime.fromisoformat(r["release_date"]) for r in songs},
        album_release={r["album_id"]: datetime.fromisoformat(r["release_date"]) for r in albums})
    close = [p.person_id for p in _relations(pop, "partner", "friend", "roommate")]
    listeners = rng.sample(close, min(len(close), 4))
    ids = _members(pop, rng, "music", listeners)
    _open_accounts(ctx, pop, rng, "music", ids)
    others = [pid for pid in ids if pid != pop.supervisor_id and pid not in listeners]
    users = [pop.supervisor_id, *listeners, *rng.sample(others, min(len(others), 4))]
    for pid in users:
        person = pop.people[pid]
        since = max(_created_at(ctx, "music", person), now - timedelta(days=730))
        _seed_music_user(app, rng, person.email, since, now, cat, full=pid == pop.supervisor_id)


# ================================================================================================ phone


def _conversation_values(pop: Population, contact: Person, songs: list[tuple[str, str]]) -> dict[str, Any]:
    """Values for a conversation's template fields; ``{artist}`` names the artist of the ``{song}`` drawn."""
    pick: dict[str, tuple[str, str]] = {}

    def song(rng: random.Random) -> str:
        pick["song"] = rng.choice(songs)
        return pick["song"][0]

    return {
        "first": contact.first_name, "me": pop.supervisor.first_name,
        "day": lambda rng: rng.choice(WEEKDAYS), "workday": lambda rng: rng.choice(WEEKDAYS[:5]),
        "time": lambda rng: rng.choice(MEET_TIMES),
        "restaurant": lambda rng: rng.choice(RESTAURANTS), "place": lambda rng: rng.choice(PLACES),
        "bill": lambda rng: rng.choice(BILLS), "dish": lambda rng: rng.choice(DISHES),
        "movie": lambda rng: rng.choice(MOVIES), "item": lambda rng: rng.choice(ERRAND_ITEMS),
        "amount": lambda rng: _dollars(_cents(rng, 1500, 9000)), "song": song,
        "artist": lambda rng: pick["song"][1],
    }


def _contacts(pop: Population, rng: random.Random) -> list[tuple[Person, str]]:
    """The supervisor's contacts with their tag ("" for acquaintances), in a shuffled order."""
    sup = pop.supervisor_id
    tied = pop.relations_of(sup)
    known = {p.person_id for p, _ in tied}
    strangers = [p for p in pop.people if p.person_id != sup and p.person_id not in known]
    contacts = tied + [(p, "") for p in rng.sample(strangers, min(len(strangers), rng.randint(3, 5)))]
    rng.shuffle(contacts)
    return contacts


def _seed_phone(ctx: Context, pop: Population, rng: random.Random) -> None:
    app, sup, now = ctx.apps["phone"], pop.supervisor, _now(ctx)
    _open_accounts(ctx, pop, rng, "phone", [p.person_id for p in pop.people])
    own_since = _created_at(ctx, "phone", sup)
    contacts = _contacts(pop, rng)
    added = {}  # person id -> when the contact was saved
    for person, kind in contacts:
        start = max(own_since, _since(pop, sup.person_id, person.person_id) if kind else own_since)
        added[person.person_id] = _between(rng, start, now - timedelta(days=1))
        app.insert("phone_contacts", {
            "owner": sup.phone, "first_name": person.first_name, "last_name": person.last_name,
            "email": person.email, "phone_number": person.phone, "relationships": kind,
            "birthday": person.birthday, "home_address": person.address.one_line,
            "created_at": _iso(added[person.person_id])})
    _seed_messages(ctx, pop, rng, contacts, added)
    for clock, label, days in sorted(rng.sample(ALARMS, rng.randint(3, 5))):
        app.insert("phone_alarms", {"owner": sup.phone, "time": clock, "label": label, "repeat_days": days,
                                    "enabled": int(rng.random() < 0.8)})


def _seed_messages(ctx: Context, pop: Population, rng: random.Random, contacts: list[tuple[Person, str]],
                   added: dict[int, datetime]) -> None:
    """Short conversations over the last 60 days, each after the contact was saved, inserted oldest first."""
    app, sup, now = ctx.apps["phone"], pop.supervisor, _now(ctx)
    songs = [(r["title"], r["name"]) for r in app.rows(
        "SELECT s.title, a.name FROM music_songs s JOIN music_artists a ON a.artist_id = s.artist_id "
        "ORDER BY s.song_id")]
    target = rng.randint(40, 80)
    weights = [CONVERSATION_WEIGHTS[kind] for _, kind in contacts]
    messages: list[tuple[datetime, str, str, str]] = []
    while len(messages) < target:
        contact, kind = rng.choices(contacts, weights=weights)[0]
        fitting = [lines for kinds, lines in CONVERSATIONS if kind in kinds]
        lines = rng.choice(fitting)
        values = _conversation_values(pop, contact, songs)
        at = _daytime_since(rng, now, added[contact.person_id], 59)
        thread = []
        for who, template in lines:
            sender, receiver = (sup.phone, contact.phone) if who == "me" else (contact.phone, sup.phone)
            thread.append((at, sender, receiver, _fill(template, rng, values)))
            at += timedelta(minutes=rng.randint(1, 45))
        while thread[-1][0] >= now:  # a conversation late on the last day moves to the day before
            thread = [(t - timedelta(days=1), *rest) for t, *rest in thread]
        messages.extend(thread[:target - len(messages)])
    for at, sender, receiver, text in sorted(messages):
        app.insert("phone_messages", {"sender": sender, "receiver": receiver, "message": text, "sent_at": _iso(at)})


# ================================================================================================ wallet


def _payment_note(rng: random.Random, at: datetime, names: list[str]) -> tuple[str, int]:
    template, low, high = rng.choice(PAYMENT_NOTES)
    values = {"restaurant": lambda r: r.choice(RESTAURANTS), "month": calendar.month_name[at.month],
              "name": lambda r: r.choice(names)}
    return _fill(template, rng, values), _cents(rng, low, high)


def _seed_wallet(ctx: Context, pop: Population, rng: random.Random) -> None:
    sup, now = pop.supervisor, _now(ctx)
    balances = {p.person_id: rng.randint(50_000, 200_000) if p.person_id == sup.person_id
                else rng.randint(0, 150_000) for p in pop.people}
    _open_accounts(ctx, pop, rng, "wallet", [p.person_id for p in pop.people], balances)
    friends = _relations(pop, *WALLET_FRIEND_KINDS)
    _seed_wallet_friends(ctx, pop, rng, friends)
    approved = _seed_wallet_transactions(ctx, pop, rng, friends)
    _seed_wallet_requests(ctx, pop, rng, friends, approved)
    _seed_wallet_reactions(ctx, pop, rng, friends)
    app = ctx.apps["wallet"]
    cards = app.rows("SELECT card_name, card_number FROM supervisor_payment_cards ORDER BY card_name")
    transfers = [(_ago(rng, now, 5, 90), "deposit", rng.choice(cards)) for _ in range(rng.randint(2, 4))]
    transfers.append((_ago(rng, now, 5, 90), "withdrawal", None))
    bank = "".join(str(rng.randrange(10)) for _ in range(10))
    for at, kind, card in sorted(transfers, key=lambda t: t[0]):
        app.insert("wallet_balance_transfers", {
            "owner": sup.email, "kind": kind, "amount_cents": rng.randint(50, 500) * 100,
            "card_name": card and card["card_name"], "card_number": card and card["card_number"],
            "bank_account_number": None if card else bank, "created_at": _iso(at)})


def _seed_wallet_friends(ctx: Context, pop: Population, rng: random.Random, friends: list[Person]) -> None:
    app, sup, now = ctx.apps["wallet"], pop.supervisor, _now(ctx)
    for friend in friends:
        start = max(_since(pop, sup.person_id, friend.person_id), _created_at(ctx, "wallet", sup),
                    _created_at(ctx, "wallet", friend))
        at = _between(rng, start, now - timedelta(days=1))
        app.insert("wallet_friends", {"owner": sup.email, "friend": friend.email, "created_at": _iso(at)})
        app.insert("wallet_friends", {"owner": friend.email, "friend": sup.email,
                                      "created_at": _iso(_between(rng, at, now - timedelta(hours=1)))})


def _seed_wallet_transactions(ctx: Context, pop: Population, rng: random.Random,
                              friends: list[Person]) -> list[int]:
    """Past payments in time order; returns the ids of the two that will settle approved requests."""
    app, sup, now = ctx.apps["wallet"], pop.supervisor, _now(ctx)
    coworkers = _relations(pop, "coworker", "manager")
    names = [p.first_name for p in friends]
    rows = []
    befriended = {friend: datetime.fromisoformat(at) for friend, at in app.db.execute(
        "SELECT friend, created_at FROM wallet_friends WHERE owner = ?", (sup.email,))}
    for _ in range(rng.randint(30, 60)):
        other = rng.choice(friends) if rng.random() < 0.85 else rng.choice(coworkers)
        known = befriended.get(other.email) or _since(pop, sup.person_id, other.person_id)
        at = _daytime_since(rng, now, known, 89)
        note, cents = _payment_note(rng, at, [n for n in names if n != other.first_name])
        sender, receiver = (sup, other) if rng.random() < 0.5 else (other, sup)
        rows.append((at, sender.email, receiver.email, cents, note, int(rng.random() < 0.25)))
    sup_id = pop.supervisor_id
    pairs = [r for r in pop.relationships if sup_id not in (r.a, r.b) and r.kind in ("friend", "family",
                                                                                        "roommate", "partner")]
    for rel in rng.sample(pairs, min(20, len(pairs))):
        a, b = pop.people[rel.a], pop.people[rel.b]
        at = _daytime_since(rng, now, datetime.fromisoformat(rel.since), 89)
        note, cents = _payment_note(rng, at, [p.first_name for p, _ in pop.relations_of(a.person_id)
                                              if p.person_id not in (b.person_id, sup_id)] or [a.first_name])
        sender, receiver = (a, b) if rng.random() < 0.5 else (b, a)
        rows.append((at, sender.email, receiver.email, cents, note, int(rng.random() < 0.25)))
    ids = []
    for at, sender, receiver, cents, note, private in sorted(rows):
        ids.append(app.insert("wallet_transactions", {
            "sender": sender, "receiver": receiver, "amount_cents": cents, "note": note, "private": private,
            "request_id": None, "created_at": _iso(at)}))
    involving = [tid for tid, row in zip(ids, sorted(rows), strict=True) if sup.email in (row[1], row[2])]
    return rng.sample(involving, 2)


def _seed_wallet_requests(ctx: Context, pop: Population, rng: random.Random, friends: list[Person],
                          approved: list[int]) -> None:
    """One approved request per transaction in ``approved``, one denied, and 3-6 pending ones."""
    app, sup, now = ctx.apps["wallet"], pop.supervisor, _now(ctx)
    names = [p.first_name for p in friends]
    templates = rng.sample(REQUEST_NOTES, len(REQUEST_NOTES))  # no two open requests share a note

    def note_for(other: Person) -> str:
        others = [n for n in names if n != other.first_name]
        values = {"day": lambda r: r.choice(WEEKDAYS), "name": lambda r: r.choice(others),
                  "month": calendar.month_name[now.month]}
        return _fill(templates.pop(), rng, values)

    specs = []  # (created, updated, requester, payer, cents, note, private, status, transaction id)
    for tid in approved:
        t = app.row("SELECT * FROM wallet_transactions WHERE transaction_id = ?", (tid,))
        paid = datetime.fromisoformat(t["created_at"])
        asked = paid - timedelta(minutes=rng.randint(30, 3 * 1440))
        specs.append((asked, paid, t["receiver"], t["sender"], t["amount_cents"], t["note"], t["private"],
                      "approved", tid))
    other = rng.choice(friends)
    asked = _daytime(rng, now, 10, 60)
    specs.append((asked, _between(rng, asked, now - timedelta(days=1)), other.email, sup.email,
                  _cents(rng, 1000, 6000), note_for(other), 0, "denied", None))
    for _ in range(rng.randint(3, 6)):
        other = rng.choice(friends)
        requester, payer = (sup, other) if rng.random() < 0.5 else (other, sup)
        asked = _daytime(rng, now, 0, 13)
        specs.append((asked, asked, requester.email, payer.email, _cents(rng, 1000, 12000), note_for(other),
                      int(rng.random() < 0.2), "pending", None))
    for asked, updated, requester, payer, cents, note, private, status, tid in sorted(specs, key=lambda s: s[0]):
        request_id = app.insert("wallet_requests", {
            "requester": requester, "payer": payer, "amount_cents": cents, "note": note, "private": private,
            "status": status, "transaction_id": tid, "created_at": _iso(asked), "updated_at": _iso(updated)})
        if tid is not None:
            app.db.execute("UPDATE wallet_transactions SET request_id = ? WHERE transaction_id = ?",
                           (request_id, tid))


def _seed_wallet_reactions(ctx: Context, pop: Population, rng: random.Random, friends: list[Person]) -> None:
    """Likes and comments by the supervisor's friends on public payments involving the supervisor or them."""
    app, sup, now = ctx.apps["wallet"], pop.supervisor, _now(ctx)
    emails = [sup.email, *[p.email for p in friends]]
    public = [r for r in app.rows("SELECT transaction_id, sender, receiver, created_at FROM wallet_transactions "
                                  "WHERE private = 0 ORDER BY transaction_id")
              if r["sender"] in emails or r["receiver"] in emails]
    likes = []
    for t in rng.sample(public, min(len(public), rng.randint(10, 20))):
        fans = [e for e in emails if e != t["sender"]]
        made = datetime.fromisoformat(t["created_at"])
        for fan in rng.sample(fans, rng.randint(1, 2)):
            likes.append((_between(rng, made, now - timedelta(minutes=1)), t["transaction_id"], fan))
    for at, tid, fan in sorted(likes):
        app.insert("wallet_likes", {"transaction_id": tid, "username": fan, "created_at": _iso(at)})
    comments = []
    for t in rng.sample(public, min(len(public), rng.randint(5, 10))):
        author = rng.choice([t["sender"], t["receiver"], rng.choice(emails)])
        made = datetime.fromisoformat(t["created_at"])
        comments.append((_between(rng, made, now - timedelta(minutes=1)), t["transaction_id"], author,
                         rng.choice(PAYMENT_COMMENTS)))
    for at, tid, author, text in sorted(comments):
        app.insert("wallet_comments", {"transaction_id": tid, "author": author, "comment": text,
                                       "created_at": _iso(at)})


# ================================================================================================ splitbill


def _exact_shares(rng: random.Random, total: int, people: list[str]) -> dict[str, int]:
    """Shares of ``total`` cents by random integer weights, each at least one cent, summing to ``total``."""
    weights = [rng.randint(1, 4) for _ in people]
    shares = [max(1, total * w // sum(weights)) for w in weights]
    shares[0] += total - sum(shares)
    return dict(zip(people, shares, strict=True))


@dataclass
class _Group:
    name: str
    members: list[Person]
    created: datetime
    expenses: tuple[tuple[str, int, int, bool], ...]
    count: int
    first_day: date
    last_day: date


def _splitbill_groups(pop: Population, rng: random.Random, now: datetime) -> list[_Group]:
    sup = pop.supervisor
    house = _relations(pop, "partner", "roommate")
    latest = max(_since(pop, sup.person_id, p.person_id) for p in house)
    created = max(latest + timedelta(days=1), _ago(rng, now, 100, 130))
    yesterday = now.date() - timedelta(days=1)
    groups = [_Group("Home", [sup, *house], created, HOUSE_EXPENSES, rng.randint(8, 14),
                     max(created.date(), now.date() - timedelta(days=90)), yesterday)]
    friends = _relations(pop, "friend")
    cities = [c for c, _, _ in CITIES if c != sup.address.city]
    trip_start = _past_day(rng, now, 20, 80)
    groups.append(_Group(f"Trip to {rng.choice(cities)}", [sup, *rng.sample(friends, rng.randint(2, 4))],
                         datetime.combine(trip_start - timedelta(days=rng.randint(7, 30)), time(20, 15)),
                         TRIP_EXPENSES, rng.randint(5, 9), trip_start, trip_start + timedelta(days=3)))
    if rng.random() < 0.6:
        club = [sup, *rng.sample(friends, rng.randint(2, 3))]
        made = _ago(rng, now, 91, 200)
        groups.append(_Group(rng.choice(CLUB_NAMES), club, made, CLUB_EXPENSES, rng.randint(3, 5),
                             now.date() - timedelta(days=90), yesterday))
    return groups


def _seed_splitbill(ctx: Context, pop: Population, rng: random.Random) -> None:
    app, now = ctx.apps["splitbill"], _now(ctx)
    groups = _splitbill_groups(pop, rng, now)
    required = sorted({p.person_id for g in groups for p in g.members})
    _open_accounts(ctx, pop, rng, "splitbill", _members(pop, rng, "splitbill", required))
    owed: dict[tuple[int, str, str], int] = {}  # (group id, creditor, debtor) -> cents
    for group in groups:
        emails = sorted(p.email for p in group.members)
        group_id = app.insert("splitbill_groups", {"name": group.name, "created_by": pop.supervisor.email,
                                                   "created_at": _iso(group.created)})
        for email in emails:
            app.insert("splitbill_members", {"group_id": group_id, "username": email,
                                             "added_at": _iso(group.created)})
        _seed_group_expenses(app, rng, group, group_id, emails, now, owed)
    _seed_settle_ups(app, pop, rng, now, owed)
    expenses = [r["expense_id"] for r in app.rows("SELECT expense_id FROM splitbill_expenses ORDER BY expense_id")]
    everyone = {g.name: g for g in groups}
    for expense_id in sorted(rng.sample(expenses, min(len(expenses), rng.randint(2, 4)))):
        expense = app.row("SELECT e.*, g.name FROM splitbill_expenses e JOIN splitbill_groups g "
                          "ON g.group_id = e.group_id WHERE e.expense_id = ?", (expense_id,))
        author = rng.choice(everyone[expense["name"]].members)
        made = datetime.fromisoformat(expense["created_at"])
        app.insert("splitbill_comments", {"expense_id": expense_id, "author": author.email,
                                          "comment": rng.choice(EXPENSE_COMMENTS),
                                          "created_at": _iso(_between(rng, made, now - timedelta(minutes=1)))})


def _seed_group_expenses(app: SplitBill, rng: random.Random, group: _Group, group_id: int, emails: list[str],
                         now: datetime, owed: dict[tuple[int, str, str], int]) -> None:
    span = max(0, (group.last_day - group.first_day).days)
    days = sorted(group.first_day + timedelta(days=rng.randint(0, span)) for _ in range(group.count))
    used: set[str] = set()  # membership tests only
    for day in days:
        title, low, high, _ = rng.choice([e for e in group.expenses if e[3] or e[0] not in used])
        used.add(title)
        title = _fill(title, rng, {"restaurant": lambda r: r.choice(RESTAURANTS)})
        total = _cents(rng, low, high)
        payer = rng.choice(emails)
        sharing = emails if rng.random() < 0.7 else sorted(rng.sample(emails, max(2, len(emails) - 1)))
        if rng.random() < 0.3:
            split_type, split = "exact", _exact_shares(rng, total, sharing)
        else:
            split_type, split = "equal", equal_split(total, sharing)
        logged = datetime.combine(day, time(rng.randint(18, 23), rng.randint(0, 59)))
        logged = min(logged, now - timedelta(minutes=rng.randint(5, 600)))
        expense_id = app.insert("splitbill_expenses", {
            "group_id": group_id, "title": title, "amount_cents": total, "paid_by": payer,
            "split_type": split_type, "date": day.isoformat(), "created_by": payer, "created_at": _iso(logged)})
        for email, cents in sorted(split.items()):
            app.insert("splitbill_shares", {"expense_id": expense_id, "username": email, "share_cents": cents})
            if email != payer:
                owed[(group_id, payer, email)] = owed.get((group_id, payer, email), 0) + cents


def _seed_settle_ups(app: SplitBill, pop: Population, rng: random.Random, now: datetime,
                     owed: dict[tuple[int, str, str], int]) -> None:
    """Two or three settle-ups in the last ten days, each paying back 30-80% (whole dollars) of a pairwise
    debt of at least $20 within a group, so that money is still owed afterwards."""
    debts = []
    for (group_id, creditor, debtor), cents in sorted(owed.items()):
        net = cents - owed.get((group_id, debtor, creditor), 0)
        if net >= 2000:
            debts.append((group_id, debtor, creditor, net))
    payments = []
    for group_id, debtor, creditor, net in sorted(rng.sample(debts, min(len(debts), rng.randint(2, 3)))):
        day = _past_day(rng, now, 1, 10)
        paid = datetime.combine(day, time(rng.randint(8, 22), rng.randint(0, 59)))
        payments.append((paid, group_id, debtor, creditor, max(100, net * rng.randint(30, 80) // 10_000 * 100)))
    for paid, group_id, debtor, creditor, amount in sorted(payments):
        app.insert("splitbill_payments", {
            "group_id": group_id, "payer": debtor, "payee": creditor, "amount_cents": amount,
            "note": rng.choice(SETTLE_NOTES), "date": paid.date().isoformat(), "created_by": debtor,
            "created_at": _iso(paid)})


# ================================================================================================ notes


def _note_names(pop: Population) -> dict[str, Any]:
    first = {kind: [p.first_name for p in _relations(pop, kind)] for kind in ("partner", "family", "friend",
                                                                               "coworker", "manager")}
    return {"partner": first["partner"][0], "family": first["family"], "friends": first["friend"],
            "coworkers": first["coworker"] + first["manager"], "city": pop.supervisor.address.city}


def _bullets(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


#: Notes that are a bullet list drawn from one pool: kind -> (title, pool, (fewest, most) items, tags).
LIST_NOTES: dict[str, tuple[str, tuple[str, ...], tuple[int, int], tuple[str, ...]]] = {
    "grocery": ("Grocery list", GROCERIES, (6, 12), ("shopping", "groceries")),
    "movies": ("Movies to watch", MOVIES, (3, 6), ("movies", "personal")),
    "packing": ("Packing list", PACKING, (6, 10), ("travel", "lists")),
    "home": ("Home maintenance", HOME_CHORES, (4, 6), ("home", "chores")),
    "restaurants": ("Restaurants to try", RESTAURANTS, (3, 6), ("food", "lists")),
    "weekend": ("Weekend ideas", PLACES, (3, 5), ("plans", "personal")),
}


def _note(kind: str, rng: random.Random, pop: Population, names: dict[str, Any]) -> tuple[str, str, list[str]]:
    """(title, content, tags) of one note of the supervisor."""
    if kind in LIST_NOTES:
        title, pool, (fewest, most), tags = LIST_NOTES[kind]
        return title, _bullets(rng.sample(pool, rng.randint(fewest, most))), list(tags)
    if kind == "books":
        books = [f"{title} by {author}" for title, author in rng.sample(BOOKS, rng.randint(4, 7))]
        return "Books to read", _bullets(books), ["books", "personal"]
    if kind.startswith("recipe"):
        dish, ingredients, steps = RECIPES[int(kind[-1])]
        content = f"Ingredients:\n{_bullets(list(ingredients))}\n\nSteps:\n" + "\n".join(
            f"{i}. {s}" for i, s in enumerate(steps, start=1))
        return f"Recipe: {dish}", content, ["recipes", "cooking"]
    if kind == "trip":
        city = rng.choice([c for c, _, _ in CITIES if c != names["city"]])
        content = (f"Dates: long weekend next month\nWho: me, {names['partner']}\nStay: cabin or small hotel\n"
                   f"To do:\n{_bullets(['hike the ridge trail', 'try ' + rng.choice(RESTAURANTS), 'farmers market'])}")
        return f"Trip plan: {city}", content, ["travel", "plans"]
    if kind.startswith("meeting"):
        title, points = MEETINGS[int(kind[-1])]
        who = ", ".join(rng.sample(names["coworkers"], min(3, len(names["coworkers"]))))
        return f"Meeting notes: {title}", f"Attendees: {who}\n{_bullets(list(points))}", ["work", "meetings"]
    if kind == "gifts":
        people = [names["partner"], *rng.sample(names["family"], min(2, len(names["family"])))]
        ideas = ("a cookbook", "concert tickets", "a scarf", "a plant", "a photo album", "a board game")
        return "Gift ideas", _bullets([f"{p}: {rng.choice(ideas)}" for p in people]), ["gifts", "personal"]
    if kind == "workout":
        return "Workout plan", "\n".join(WORKOUTS), ["health", "fitness"]
    if kind == "budget":
        lines = [f"{item}: {_dollars(rng.randint(50, 400) * 100)}"
                 for item in ("Groceries", "Eating out", "Transport", "Fun", "Savings")]
        return "Monthly budget", "\n".join(lines), ["finance"]
    if kind == "birthdays":
        close = _relations(pop, "partner", "family", "friend")
        lines = [f"{p.full_name}: {p.birthday[5:]}" for p in rng.sample(close, min(len(close), 6))]
        return "Birthdays to remember", _bullets(lines), ["family", "friends"]
    raise ValueError(f"unknown note kind {kind!r}")


#: Kinds of note that name nobody, for other users' own notes.
OTHERS_NOTE_KINDS: tuple[str, ...] = ("grocery", "books", "movies", "packing", "workout", "home", "restaurants",
                                      "weekend")
NOTE_KINDS: tuple[str, ...] = (
    "grocery", "books", "recipe0", "recipe1", "recipe3", "trip", "meeting0", "meeting1", "gifts", "movies",
    "packing", "workout", "home", "restaurants", "budget", "weekend", "birthdays",
)
SHARED_NOTES: tuple[tuple[str, str, str, list[str]], ...] = (  # (relationship, title, content, tags)
    ("partner", "Meal plan this week", "Mon: tacos\nTue: leftovers\nWed: curry\nThu: pasta\nFri: pizza night",
     ["food", "home"]),
    ("roommate", "House chores rotation", "Kitchen: weekly rotation\nBathroom: every other week\n"
     "Trash and recycling: whoever is home on Tuesday", ["home", "chores"]),
    ("friend", "Concerts this summer", "- June: open-air festival\n- July: jazz night at the park\n"
     "- August: the Velvet Lanterns tour (tickets go on sale soon)", ["music", "plans"]),
    ("coworker", "Team offsite agenda", "09:00 Welcome\n10:00 Roadmap review\n12:00 Lunch\n"
     "14:00 Workshops\n16:30 Wrap-up", ["work"]),
)


def _seed_notes(ctx: Context, pop: Population, rng: random.Random) -> None:
    app, sup, now = ctx.apps["notes"], pop.supervisor, _now(ctx)
    shared = rng.sample(SHARED_NOTES, rng.randint(2, 3))
    sharers = [rng.choice(_relations(pop, kind)) for kind, _, _, _ in shared]
    partner = _relations(pop, "partner")[0]
    ids = _members(pop, rng, "notes", [p.person_id for p in sharers] + [partner.person_id])
    _open_accounts(ctx, pop, rng, "notes", ids)
    names = _note_names(pop)
    notes = []
    for kind in rng.sample(NOTE_KINDS, rng.randint(8, 15)):
        title, content, tags = _note(kind, rng, pop, names)
        created = _ago(rng, now, 1, 300)
        updated = _between(rng, created, now - timedelta(hours=1)) if rng.random() < 0.5 else created
        notes.append((created, updated, sup.email, title, content, tags))
    pinned = {title for _, _, _, title, _, _ in rng.sample(notes, rng.randint(1, 2))}
    for (_, title, content, tags), owner in zip(shared, sharers, strict=True):
        created = _ago(rng, now, 5, 120)
        notes.append((created, created, owner.email, title, content, tags))
    others = [pid for pid in ids if pid not in (sup.person_id, *[p.person_id for p in sharers])]
    for pid in rng.sample(others, min(len(others), 5)):
        title, content, tags = _note(rng.choice(OTHERS_NOTE_KINDS), rng, pop, names)
        created = _ago(rng, now, 1, 200)
        notes.append((created, created, pop.people[pid].email, title, content, tags))
    note_ids = {}
    for created, updated, owner, title, content, tags in sorted(notes, key=lambda n: n[0]):
        note_id = app.insert("notes_notes", {
            "owner": owner, "title": title, "content": content, "pinned": int(owner == sup.email and title in pinned),
            "created_at": _iso(created), "updated_at": _iso(updated)})
        for tag in sorted(tags):
            app.insert("notes_tags", {"note_id": note_id, "tag": tag})
        note_ids[(owner, title)] = (note_id, created)
    shares = [(owner.email, title, sup.email) for (_, title, _, _), owner in zip(shared, sharers, strict=True)]
    mine = [(o, t) for (o, t) in note_ids if o == sup.email]
    shares.append((*rng.choice(mine), partner.email))
    for owner, title, reader in shares:
        note_id, created = note_ids[(owner, title)]
        app.insert("notes_shares", {"note_id": note_id, "shared_with": reader,
                                    "shared_at": _iso(_between(rng, created, now - timedelta(hours=1)))})


# ================================================================================================ todo


def _task_times(rng: random.Random, now: datetime, due: date | None,
                project_created: datetime) -> tuple[datetime, datetime | None]:
    """(created, completed or None) for a task due on ``due``."""
    start = max(project_created, now - timedelta(days=60))
    end = now - timedelta(hours=1)
    if due is not None:
        end = min(end, datetime.combine(due, time(9)))
    created = _between(rng, start, max(start, end))
    overdue = due is not None and due < now.date()
    done = rng.random() < (0.7 if overdue else 0.3 if due is None else 0.15)
    return created, _between(rng, created, now - timedelta(minutes=10)) if done else None


def _seed_todo(ctx: Context, pop: Population, rng: random.Random) -> None:
    app, sup, now = ctx.apps["todo"], pop.supervisor, _now(ctx)
    ids = _members(pop, rng, "todo", [])
    _open_accounts(ctx, pop, rng, "todo", ids)
    friends = _relations(pop, "friend")
    values = {"manager": pop.manager_of(sup.person_id).first_name,
              "coworker": lambda r: r.choice(_relations(pop, "coworker")).first_name,
              "friend": lambda r: r.choice(friends).first_name,
              "relative": lambda r: r.choice(_relations(pop, "family")).first_name,
              "partner": _relations(pop, "partner")[0].first_name,
              "city": rng.choice([c for c, _, _ in CITIES if c != sup.address.city])}
    tasks = []  # (project id or None, project created, title, labels)
    for name in rng.sample(sorted(PROJECT_TASKS), rng.randint(2, 4)):
        created = _ago(rng, now, 30, 200)
        project_id = app.insert("todo_projects", {"owner": sup.email, "name": _fill(name, rng, values),
                                                  "archived": 0, "created_at": _iso(created)})
        for title, labels in rng.sample(PROJECT_TASKS[name], rng.randint(3, len(PROJECT_TASKS[name]))):
            tasks.append((project_id, created, title, labels))
    inbox = rng.sample(INBOX_TASKS, min(len(INBOX_TASKS), max(0, rng.randint(15, 30) - len(tasks))))
    tasks += [(None, now - timedelta(days=60), title, labels) for title, labels in inbox]
    rows = []
    for project_id, project_created, title, labels in tasks:
        due = None if rng.random() < 0.3 else now.date() + timedelta(days=rng.randint(-20, 30))
        created, completed = _task_times(rng, now, due, project_created)
        rows.append((created, project_id, _fill(title, rng, values), due, completed, labels))
    task_ids = []
    for created, project_id, title, due, completed, labels in sorted(rows, key=lambda r: r[0]):
        task_id = _insert_task(app, rng, sup.email, project_id, title, due, created, completed, labels)
        task_ids.append((task_id, created))
    for task_id, created in sorted(rng.sample(task_ids, rng.randint(3, 6))):
        app.insert("todo_comments", {"task_id": task_id, "author": sup.email,
                                     "text": _fill(rng.choice(TASK_COMMENTS), rng, values),
                                     "created_at": _iso(_between(rng, created, now - timedelta(minutes=5)))})
    others = [pid for pid in ids if pid != sup.person_id]
    for pid in rng.sample(others, min(len(others), 3)):
        for title, labels in rng.sample([t for t in INBOX_TASKS if "{" not in t[0]], rng.randint(2, 4)):
            due = None if rng.random() < 0.5 else now.date() + timedelta(days=rng.randint(-10, 20))
            created, completed = _task_times(rng, now, due, now - timedelta(days=60))
            _insert_task(app, rng, pop.people[pid].email, None, title, due, created, completed, labels)


def _insert_task(app: Todo, rng: random.Random, owner: str, project_id: int | None, title: str, due: date | None,
                 created: datetime, completed: datetime | None, labels: tuple[str, ...]) -> int:
    task_id = app.insert("todo_tasks", {
        "owner": owner, "project_id": project_id, "title": title, "description": rng.choice(TASK_DESCRIPTIONS),
        "due_date": due and due.isoformat(), "priority": rng.choice((1, 2, 2, 3, 3, 3, 4, 4)),
        "completed": int(completed is not None), "completed_at": completed and _iso(completed),
        "created_at": _iso(created), "updated_at": _iso(completed or created)})
    for label in sorted(labels):
        app.insert("todo_task_labels", {"task_id": task_id, "label": label})
    return task_id
