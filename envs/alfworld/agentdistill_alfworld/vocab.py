"""The household vocabulary of ALFWorld-style rooms: classes, where things go, what can be done to them.

Class names are AI2-THOR's (``CounterTop``, ``DeskLamp``, ``SinkBasin``). The facts these tables encode —
which receptacle types hold which object types, which classes open, heat, cool, clean or toggle, and which
task types happen in which room kinds — are those of ALFRED/ALFWorld (the tables are ours, written out by
hand). Anything about *how many* of a thing a room has is our own choice, made to resemble ALFRED scenes.

In a PDDL problem every name is lowercase: the THOR id ``Apple|-00.47|+01.15|+00.48`` becomes
``apple_bar__minus_00_dot_47_bar__plus_01_dot_15_bar__plus_00_dot_48`` (:func:`mangle`) and the class
``Apple`` has the type object ``appletype`` (:func:`type_name`).
"""

from __future__ import annotations


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


ROOM_KINDS: tuple[str, ...] = ("kitchen", "livingroom", "bedroom", "bathroom")

# ------------------------------------------------------------------------------------------- type objects

#: Every receptacle class of the alfred domain (declared as ``<class>type - rtype`` in each problem).
RECEPTACLE_TYPE_CLASSES: tuple[str, ...] = _names(
    "ArmChair BathtubBasin Bed Cabinet Cart CoffeeMachine CoffeeTable CounterTop Desk DiningTable Drawer"
    " Dresser Fridge GarbageCan HandTowelHolder LaundryHamper Microwave Ottoman PaintingHanger Safe Shelf"
    " SideTable SinkBasin Sofa StoveBurner TVStand Toaster Toilet ToiletPaperHanger TowelHolder"
)

#: Every object class of the alfred domain (declared as ``<class>type - otype`` in each problem). The domain
#: refers to some of them by name (``SinkBasinType``, ``KnifeType`` ...), so all of them are declared.
OBJECT_TYPE_CLASSES: tuple[str, ...] = _names(
    "AlarmClock Apple BaseballBat BasketBall Bathtub Blinds Book Boots Bowl Box Bread ButterKnife CD Candle"
    " CellPhone Chair Cloth CreditCard Cup Curtains DeskLamp DishSponge Egg FloorLamp Footstool Fork"
    " Glassbottle HandTowel HousePlant Kettle KeyChain Knife Ladle Laptop LaundryHamperLid Lettuce"
    " LightSwitch Mirror Mug Newspaper Painting Pan PaperTowel PaperTowelRoll Pen Pencil PepperShaker Pillow"
    " Plate Plunger Poster Pot Potato RemoteControl SaltShaker ScrubBrush ShowerDoor ShowerGlass Sink"
    " SoapBar SoapBottle Spatula Spoon SprayBottle Statue StoveKnob TeddyBear Television TennisRacket"
    " TissueBox ToiletPaper ToiletPaperRoll Tomato Towel Vase Watch WateringCan Window WineBottle"
)

# ------------------------------------------------------------------------------------------- properties

OPENABLE: frozenset[str] = frozenset(_names("Cabinet Drawer Fridge Microwave Safe"))
HEATABLE: frozenset[str] = frozenset(_names("Apple Bread Cup Egg Mug Plate Potato Tomato"))
COOLABLE: frozenset[str] = frozenset(
    _names("Apple Bowl Bread Cup Egg Lettuce Mug Pan Plate Pot Potato Tomato WineBottle")
)
CLEANABLE: frozenset[str] = frozenset(
    _names(
        "Apple Bowl ButterKnife Cloth Cup DishSponge Egg Fork Kettle Knife Ladle Lettuce Mug Pan Plate Pot"
        " Potato SoapBar Spatula Spoon Tomato"
    )
)
TOGGLEABLE: frozenset[str] = frozenset(_names("DeskLamp FloorLamp"))
#: Lamps are scene fixtures: objects that sit on a receptacle and cannot be picked up.
LAMPS: tuple[str, ...] = ("DeskLamp", "FloorLamp")
LAMP_HOLDERS: tuple[str, ...] = ("Desk", "Dresser", "SideTable")

#: The appliance each state-changing task needs (the domain's heat/cool/clean actions name these types).
APPLIANCE: dict[str, str] = {"heat": "Microwave", "cool": "Fridge", "clean": "SinkBasin"}

# ------------------------------------------------------------------------------------------- compatibility

_TABLE_TOP = (
    "AlarmClock Apple BaseballBat BasketBall Book Bowl Box Bread ButterKnife CD Candle CellPhone Cloth"
    " CreditCard Cup DishSponge Egg Fork Glassbottle HandTowel Kettle KeyChain Knife Ladle Laptop Lettuce"
    " Mug Newspaper Pan PaperTowel Pen Pencil PepperShaker Plate Pot Potato RemoteControl SaltShaker SoapBar"
    " SoapBottle Spatula Spoon SprayBottle Statue TennisRacket TissueBox ToiletPaper ToiletPaperRoll Tomato"
    " Vase Watch WateringCan WineBottle"
)
_DESK_TOP = (
    "AlarmClock BasketBall Book Bowl Box CD Candle CellPhone Cloth CreditCard Cup Glassbottle KeyChain"
    " Laptop Mug Newspaper Pen Pencil Plate RemoteControl SprayBottle Statue TennisRacket TissueBox"
    " ToiletPaper ToiletPaperRoll Vase Watch WateringCan WineBottle"
)
_SEAT = "BasketBall Book Box CellPhone Cloth CreditCard KeyChain Laptop Newspaper Pillow RemoteControl"

#: Receptacle class -> the object classes it can hold (the ``canContain`` facts). Movable receptacles
#: (bowls, mugs, pans ...) appear only as objects here: nothing is ever put inside them.
CAN_CONTAIN: dict[str, frozenset[str]] = {
    recep: frozenset(_names(contents))
    for recep, contents in {
        "ArmChair": _SEAT,
        "BathtubBasin": "Cloth DishSponge HandTowel SoapBar",
        "Bed": "BaseballBat BasketBall Book CellPhone Laptop Newspaper Pillow TennisRacket",
        "Cabinet": (
            "Book Bowl Box CD Candle Cloth Cup DishSponge Glassbottle HandTowel Kettle Ladle Mug Newspaper"
            " Pan PepperShaker Plate Plunger Pot SaltShaker SoapBar SoapBottle SprayBottle TissueBox"
            " ToiletPaper ToiletPaperRoll Vase WateringCan WineBottle"
        ),
        "Cart": (
            "Candle Cloth DishSponge HandTowel Mug PaperTowel Plunger SoapBar SoapBottle SprayBottle Statue"
            " TissueBox ToiletPaper ToiletPaperRoll Vase"
        ),
        "CoffeeMachine": "Mug",
        "CoffeeTable": _TABLE_TOP,
        "CounterTop": _TABLE_TOP,
        "Desk": _DESK_TOP + " SoapBottle",
        "DiningTable": _TABLE_TOP,
        "Drawer": (
            "Book ButterKnife CD Candle CellPhone Cloth CreditCard DishSponge Fork HandTowel KeyChain Knife"
            " Ladle Newspaper Pen Pencil PepperShaker RemoteControl SaltShaker SoapBar SoapBottle Spatula"
            " Spoon SprayBottle TissueBox ToiletPaper ToiletPaperRoll Watch WateringCan"
        ),
        "Dresser": _DESK_TOP,
        "Fridge": "Apple Bowl Bread Cup Egg Glassbottle Lettuce Mug Pan Plate Pot Potato Tomato WineBottle",
        "GarbageCan": (
            "Apple Bread CD Cloth DishSponge Egg HandTowel Lettuce Newspaper PaperTowel Pen Pencil Potato"
            " SoapBar SoapBottle SprayBottle TissueBox ToiletPaper ToiletPaperRoll Tomato WineBottle"
        ),
        "HandTowelHolder": "HandTowel",
        "LaundryHamper": "Cloth",
        "Microwave": "Apple Bowl Bread Cup Egg Glassbottle Mug Plate Potato Tomato",
        "Ottoman": _SEAT,
        "Safe": "CD CellPhone CreditCard KeyChain Statue Vase Watch",
        "Shelf": (
            "AlarmClock Book Bowl Box CD Candle CellPhone Cloth CreditCard Cup DishSponge Glassbottle"
            " HandTowel Kettle KeyChain Mug Newspaper PaperTowel Pen Pencil PepperShaker Plate Pot"
            " RemoteControl SaltShaker SoapBar SoapBottle SprayBottle Statue TissueBox ToiletPaper"
            " ToiletPaperRoll Vase Watch WateringCan WineBottle"
        ),
        "SideTable": _TABLE_TOP,
        "SinkBasin": (
            "Apple Bowl ButterKnife Cloth Cup DishSponge Egg Fork Glassbottle HandTowel Kettle Knife Ladle"
            " Lettuce Mug Pan Plate Pot Potato SoapBar Spatula Spoon Tomato"
        ),
        "Sofa": _SEAT,
        "StoveBurner": "Kettle Pan Pot",
        "TVStand": "TissueBox",
        "Toaster": "",  # holds only bread slices, and we make no sliced objects
        "Toilet": (
            "Candle Cloth DishSponge HandTowel Newspaper PaperTowel SoapBar SoapBottle SprayBottle TissueBox"
            " ToiletPaper ToiletPaperRoll"
        ),
        "ToiletPaperHanger": "ToiletPaper ToiletPaperRoll",
        "TowelHolder": "Towel",
    }.items()
}

# ------------------------------------------------------------------------------------------- rooms

# fmt: off
#: Receptacle classes of each room kind at full size: ``(class, least, most)`` instances. A room draws a
#: count in ``[least, most]`` for each class, then is trimmed or padded to 10–30 receptacles.
ROOM_RECEPTACLES: dict[str, tuple[tuple[str, int, int], ...]] = {
    "kitchen": (
        ("Cabinet", 4, 10), ("CoffeeMachine", 1, 1), ("CounterTop", 1, 3), ("DiningTable", 0, 1),
        ("Drawer", 1, 5), ("Fridge", 1, 1), ("GarbageCan", 1, 1), ("Microwave", 1, 1), ("Shelf", 0, 2),
        ("SideTable", 0, 1), ("SinkBasin", 1, 1), ("StoveBurner", 2, 4), ("Toaster", 0, 1),
    ),
    "livingroom": (
        ("ArmChair", 0, 2), ("Cabinet", 0, 4), ("CoffeeTable", 1, 2), ("DiningTable", 0, 1), ("Drawer", 0, 6),
        ("Dresser", 0, 1), ("GarbageCan", 1, 1), ("Ottoman", 0, 1), ("Safe", 0, 1), ("Shelf", 0, 6),
        ("SideTable", 1, 3), ("Sofa", 1, 1), ("TVStand", 0, 1),
    ),
    "bedroom": (
        ("ArmChair", 0, 1), ("Bed", 1, 1), ("Cabinet", 0, 2), ("Desk", 0, 1), ("Drawer", 2, 8),
        ("Dresser", 0, 1), ("GarbageCan", 1, 1), ("LaundryHamper", 0, 1), ("Safe", 0, 1), ("Shelf", 0, 6),
        ("SideTable", 1, 2),
    ),
    "bathroom": (
        ("BathtubBasin", 0, 1), ("Cabinet", 1, 4), ("Cart", 0, 1), ("CounterTop", 1, 1), ("Drawer", 0, 4),
        ("Dresser", 0, 1), ("GarbageCan", 1, 1), ("HandTowelHolder", 0, 2), ("Shelf", 0, 2),
        ("SinkBasin", 1, 2), ("Toilet", 1, 1), ("ToiletPaperHanger", 1, 1), ("TowelHolder", 1, 1),
    ),
}
# fmt: on

#: Classes a room of each kind always keeps, even when shrunk for the small/medium difficulties: the
#: appliances its task types need and the receptacles that make its tasks varied.
ROOM_CORE: dict[str, tuple[str, ...]] = {
    "kitchen": ("CounterTop", "Fridge", "Microwave", "SinkBasin"),
    "livingroom": ("CoffeeTable", "Sofa"),
    "bedroom": ("Bed",),
    "bathroom": ("CounterTop", "SinkBasin", "Toilet"),
}

#: Classes used to pad a room that drew fewer than 10 receptacles.
ROOM_PADDING: dict[str, tuple[str, ...]] = {
    "kitchen": ("Cabinet", "Drawer"),
    "livingroom": ("Drawer", "Shelf", "Cabinet"),
    "bedroom": ("Drawer", "Shelf"),
    "bathroom": ("Cabinet", "Drawer", "Shelf"),
}

#: Pickupable object classes found in each room kind.
ROOM_OBJECTS: dict[str, tuple[str, ...]] = {
    "kitchen": _names(
        "Apple Book Bowl Bread ButterKnife CellPhone CreditCard Cup DishSponge Egg Fork Glassbottle Kettle"
        " Knife Ladle Lettuce Mug Pan PaperTowel PepperShaker Plate Pot Potato SaltShaker SoapBottle Spatula"
        " Spoon Statue Tomato Vase WineBottle"
    ),
    "livingroom": _names(
        "Book Bowl Box CD Candle CellPhone Cloth CreditCard KeyChain Laptop Newspaper Pen Pencil Pillow"
        " Plate RemoteControl Statue TissueBox Vase Watch WateringCan"
    ),
    "bedroom": _names(
        "AlarmClock BaseballBat BasketBall Book Bowl Box CD Cloth CellPhone CreditCard KeyChain Laptop Mug"
        " Newspaper Pen Pencil Pillow RemoteControl Statue TennisRacket TissueBox Vase Watch"
    ),
    "bathroom": _names(
        "Candle Cloth DishSponge HandTowel Plunger SoapBar SoapBottle SprayBottle TissueBox ToiletPaper Towel"
    ),
}

#: Room kinds in which each task type is set (ALFRED's rule).
TASK_ROOMS: dict[str, frozenset[str]] = {
    "pick_and_place_simple": frozenset(ROOM_KINDS),
    "look_at_obj_in_light": frozenset({"livingroom", "bedroom"}),
    "pick_clean_then_place_in_recep": frozenset({"kitchen", "bathroom"}),
    "pick_heat_then_place_in_recep": frozenset({"kitchen"}),
    "pick_cool_then_place_in_recep": frozenset({"kitchen"}),
    "pick_two_obj_and_place": frozenset(ROOM_KINDS),
}

# fmt: off
#: Typical height (metres) of each receptacle class, for plausible THOR-style ids.
RECEPTACLE_HEIGHT: dict[str, float] = {
    "ArmChair": 0.0, "BathtubBasin": 0.4, "Bed": 0.0, "Cabinet": 0.39, "Cart": 0.0, "CoffeeMachine": 0.93,
    "CoffeeTable": 0.0, "CounterTop": 0.97, "Desk": 0.0, "DiningTable": 0.0, "Drawer": 0.77, "Dresser": 0.0,
    "Fridge": 0.0, "GarbageCan": 0.0, "HandTowelHolder": 1.6, "LaundryHamper": 0.0, "Microwave": 0.93,
    "Ottoman": 0.0, "Safe": 0.0, "Shelf": 0.6, "SideTable": 0.0, "SinkBasin": 0.9, "Sofa": 0.0,
    "StoveBurner": 0.93, "TVStand": 0.0, "Toaster": 0.93, "Toilet": 0.0, "ToiletPaperHanger": 0.8,
    "TowelHolder": 1.2,
}
# fmt: on

# ------------------------------------------------------------------------------------------- names


def type_name(thor_class: str) -> str:
    """The PDDL type object of a THOR class: ``CounterTop`` -> ``countertoptype``."""
    return thor_class.lower() + "type"


def word(thor_class: str) -> str:
    """The word a class goes by in goal text and in demangled names: ``DeskLamp`` -> ``desklamp``."""
    return thor_class.lower()


def mangle(thor_id: str) -> str:
    """A THOR id as a lowercase PDDL name, the way ALFWorld writes it.

    ``Apple|-00.47|+01.15|+00.48`` -> ``apple_bar__minus_00_dot_47_bar__plus_01_dot_15_bar__plus_00_dot_48``
    """
    out = thor_id.replace("|", "_bar_").replace("-", "_minus_").replace("+", "_plus_").replace(".", "_dot_")
    return out.replace(",", "_comma_").lower()


def thor_coordinate(centimetres: int) -> str:
    """A THOR id coordinate from centimetres: ``-47`` -> ``-00.47``, ``115`` -> ``+01.15``, 0 -> ``00.00``."""
    if centimetres == 0:
        return "00.00"
    sign = "+" if centimetres > 0 else "-"
    whole, frac = divmod(abs(centimetres), 100)
    return f"{sign}{whole:02d}.{frac:02d}"


def thor_object_id(thor_class: str, x_cm: int, y_cm: int, z_cm: int) -> str:
    """``Apple|-00.47|+01.15|+00.48``; a sink (bathtub) basin is ``Sink|x|y|z|SinkBasin`` as in THOR."""
    coords = "|".join(thor_coordinate(v) for v in (x_cm, y_cm, z_cm))
    if thor_class == "SinkBasin":
        return f"Sink|{coords}|SinkBasin"
    if thor_class == "BathtubBasin":
        return f"Bathtub|{coords}|BathtubBasin"
    return f"{thor_class}|{coords}"


def location_id(x: int, z: int, rotation: int, horizon: int) -> str:
    """An ALFRED navigation point ``loc|X|Z|R|H`` (grid steps, quarter turns, camera degrees), mangled."""
    return mangle(f"loc|{x}|{z}|{rotation}|{horizon}")
