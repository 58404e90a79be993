"""Music and notes scenarios (with phone where a task needs it); they form the ``test_challenge`` split.

- ``playlist_duration_minutes`` (question, music): how long one of my playlists runs, in whole minutes.
- ``library_songs_top_n`` (question, music): the n songs of my library that are most/least played, long, old...
- ``followed_artist_superlative`` (question, music): which artist I follow has the most plays, songs, ...
- ``notes_with_either_tag_count`` (question, notes): how many of my notes carry one tag or another.
- ``shared_note_owner_name`` (question, notes + phone): who shared a note with me, by their contact name.
- ``texted_song_length`` (question, phone + music): the length of the song a contact and I texted about.
- ``liked_genre_private_playlist`` (action, music): a new private playlist of my liked songs of one genre.
- ``rate_library_album_tracks`` (action, music): rate every track of an album from my library.
- ``append_item_to_list_note`` (action, notes): add an item at the end of one of my list notes.
- ``tag_notes_mentioning_word`` (action, notes): tag every note of mine that mentions a word.
- ``contacts_roster_note`` (action, phone + notes): a new note listing my contacts of one relationship.
- ``playlist_from_texted_songs`` (action, phone + music): a new playlist of the songs recommended to me by text.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from itertools import combinations
from typing import Any

from agentdistill_appworld.framework import Context
from agentdistill_appworld.scenarios.common import contacts as _contacts
from agentdistill_appworld.scenarios.common import login, rows
from agentdistill_appworld.scenarios.common import supervisor as _supervisor
from agentdistill_appworld.tasks import Checker, Scenario

COMPLETE = "apis.supervisor.complete_task()\n"


# ------------------------------------------------------------------------------------------------ helpers


def _collect(var: str, call: str) -> str:
    """Reference-solution code that reads every page of a paginated list into ``var``; ``call`` is the API call
    up to (and including) the separator before ``page_index``, e.g. ``"apis.music.show_song_library("``."""
    return f'''{var}, page = [], 0
while True:
    batch = {call}page_index=page, page_limit=20)
    if not batch:
        break
    {var} += batch
    page += 1
'''


def _table_diff(c: Checker, table: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(added, removed) rows of ``table`` as dicts; empty lists when it did not change."""
    change = c.changes.get(table)
    if change is None:
        return [], []
    return c.as_dicts(table, change.added), c.as_dicts(table, change.removed)


def _clean_line(line: str) -> str:
    """A list line without its bullet or numbering, lower-cased: '- Milk' and '2. milk' both give 'milk'."""
    return re.sub(r"^\s*(?:[-*\u2022]+|\d+[.)])\s*", "", line).strip().lower()


def _song_id(ctx: Context, title: str, artist: str) -> int | None:
    found = rows(ctx, "SELECT s.song_id FROM music_songs s JOIN music_artists a ON a.artist_id = s.artist_id "
                      "WHERE s.title = ? AND a.name = ?", (title, artist))
    return found[0]["song_id"] if found else None


def _check_new_playlist(c: Checker, p: Mapping[str, Any]) -> None:
    """Exactly one new playlist of mine titled ``p['title']`` with privacy ``p['public']`` holding exactly the
    songs ``p['song_ids']``; nothing else in music changed."""
    added, removed = _table_diff(c, "music_playlists")
    c.require(len(added) == 1 and not removed, f"exactly one new playlist (got {len(added)} new, {len(removed)} "
                                               f"changed or deleted)")
    if len(added) == 1:
        playlist = added[0]
        c.require(playlist["owner"] == p["me"], "the playlist is mine")
        c.require(playlist["title"].strip().lower() == p["title"].lower(), f"it is titled '{p['title']}'")
        c.require(bool(playlist["is_public"]) == p["public"], f"it is {'public' if p['public'] else 'private'}")
        songs_added, songs_removed = _table_diff(c, "music_playlist_songs")
        c.require(not songs_removed and all(s["playlist_id"] == playlist["playlist_id"] for s in songs_added),
                  "no other playlist's songs changed")
        got = sorted(s["song_id"] for s in songs_added)
        c.require(got == sorted(p["song_ids"]), f"it holds exactly the songs {sorted(p['song_ids'])} (got {got})")
    c.only_changed("music_playlists", "music_playlist_songs")


# ----------------------------------------------------------------------- playlist duration in minutes (question)

DURATION_WORDING = {
    1: "How long is my '{title}' playlist? Give the total in minutes, rounded to the nearest whole minute.",
    2: "I want to know the running time of my playlist '{title}' in whole minutes (round to the nearest minute).",
    3: "Roughly how many minutes of music are on my '{title}' playlist? Round the total to the nearest minute.",
}


def _duration_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"playlist_duration_minutes/{k}")
    playlists = rows(ctx, "SELECT p.title, COALESCE(SUM(s.duration_s), 0) AS seconds FROM music_playlists p "
                          "LEFT JOIN music_playlist_songs ps ON ps.playlist_id = p.playlist_id "
                          "LEFT JOIN music_songs s ON s.song_id = ps.song_id WHERE p.owner = ? "
                          "GROUP BY p.playlist_id ORDER BY p.playlist_id", (_supervisor(ctx)["email"],))
    clear = [x for x in playlists if x["seconds"] % 60 != 30] or playlists  # no half minute to round
    chosen = rng.choice(clear)
    return {"title": chosen["title"], "seconds": chosen["seconds"], "expected": round(chosen["seconds"] / 60),
            "wording": DURATION_WORDING[k]}


def _duration_solution(p: Mapping[str, Any]) -> str:
    return login("music") + _collect("playlists", "apis.music.show_playlist_library(access_token=music_token, ") + \
        f'''playlist = [x for x in playlists if x["title"].lower() == {p["title"].lower()!r}][0]
detail = apis.music.show_playlist(access_token=music_token, playlist_id=playlist["playlist_id"])
seconds = sum(song["duration_s"] for song in detail["songs"])
apis.supervisor.complete_task(answer=round(seconds / 60))
'''


def _duration_check(c: Checker, p: Mapping[str, Any]) -> None:
    c.answer_is(p["expected"])
    c.only_changed()


PLAYLIST_DURATION = Scenario(
    name="playlist_duration_minutes", kind="question", apps=("music",), pick=_duration_pick,
    instruction=lambda p: p["wording"].format(title=p["title"]),
    solution=_duration_solution, check=_duration_check)


# --------------------------------------------------------------------------- top songs of my library (question)

# (wording, song field, largest first)
SONG_CRITERIA = (
    ("been played the most times overall", "play_count", True),
    ("the shortest running times", "duration_s", False),
    ("the longest running times", "duration_s", True),
    ("the most recent release dates", "release_date", True),
    ("the oldest release dates", "release_date", False),
)
TOP_N_START = {1: (0, 3), 2: (1, 2), 3: (4, 4)}  # variant -> (first criterion tried, how many songs)


def _top_pick(ctx: Context, k: int) -> dict[str, Any]:
    songs = rows(ctx, "SELECT s.title, s.play_count, s.duration_s, s.release_date FROM music_library_songs l "
                      "JOIN music_songs s ON s.song_id = l.song_id WHERE l.owner = ? ORDER BY s.song_id",
                 (_supervisor(ctx)["email"],))
    start, n = TOP_N_START[k]
    for step in range(len(SONG_CRITERIA)):
        wording, field, largest = SONG_CRITERIA[(start + step) % len(SONG_CRITERIA)]
        ranked = sorted(songs, key=lambda s: s[field], reverse=largest)
        if len(ranked) > n and ranked[n - 1][field] != ranked[n][field]:  # no tie across the cut
            break
    return {"n": n, "wording": wording, "field": field, "largest": largest,
            "expected": [s["title"] for s in ranked[:n]]}


def _top_solution(p: Mapping[str, Any]) -> str:
    return login("music") + _collect("songs", "apis.music.show_song_library(access_token=music_token, ") + \
        f'''ranked = sorted(songs, key=lambda s: s[{p["field"]!r}], reverse={p["largest"]})
apis.supervisor.complete_task(answer=[s["title"] for s in ranked[:{p["n"]}]])
'''


def _top_check(c: Checker, p: Mapping[str, Any]) -> None:
    c.answer_is(p["expected"])
    c.only_changed()


LIBRARY_TOP_N = Scenario(
    name="library_songs_top_n", kind="question", apps=("music",), pick=_top_pick,
    instruction=lambda p: (f"Which {p['n']} songs in my music library have {p['wording']}? Answer with a list "
                           f"of their titles."),
    solution=_top_solution, check=_top_check)


# ------------------------------------------------------------------ a superlative among followed artists (question)

# (wording, artist field, largest first)
ARTIST_CRITERIA = (
    ("has the most followers", "follower_count", True),
    ("has the most songs in the catalogue", "song_count", True),
    ("has released the most albums", "album_count", True),
    ("has the fewest songs in the catalogue", "song_count", False),
    ("has the most plays in total across all their songs", "play_count", True),
    ("has the fewest plays in total across all their songs", "play_count", False),
)
ARTIST_START = {1: 0, 2: 4, 3: 5}


def _artist_pick(ctx: Context, k: int) -> dict[str, Any]:
    artists = rows(ctx, """
        SELECT ar.name,
               (SELECT COUNT(*) FROM music_following f WHERE f.artist_id = ar.artist_id) AS follower_count,
               (SELECT COUNT(*) FROM music_albums a WHERE a.artist_id = ar.artist_id) AS album_count,
               (SELECT COUNT(*) FROM music_songs s WHERE s.artist_id = ar.artist_id) AS song_count,
               (SELECT COALESCE(SUM(s.play_count), 0) FROM music_songs s WHERE s.artist_id = ar.artist_id)
                   AS play_count
        FROM music_following mf JOIN music_artists ar ON ar.artist_id = mf.artist_id WHERE mf.owner = ?
        ORDER BY ar.artist_id""", (_supervisor(ctx)["email"],))
    start = ARTIST_START[k]
    for step in range(len(ARTIST_CRITERIA)):
        wording, field, largest = ARTIST_CRITERIA[(start + step) % len(ARTIST_CRITERIA)]
        ranked = sorted(artists, key=lambda a: a[field], reverse=largest)
        if len(ranked) == 1 or ranked[0][field] != ranked[1][field]:  # a single winner
            break
    return {"wording": wording, "field": field, "largest": largest, "expected": ranked[0]["name"]}


def _artist_solution(p: Mapping[str, Any]) -> str:
    pick = "max" if p["largest"] else "min"
    return login("music") + _collect("artists", "apis.music.show_following_artists(access_token=music_token, ") + \
        f'''best = {pick}(artists, key=lambda a: a[{p["field"]!r}])
apis.supervisor.complete_task(answer=best["name"])
'''


def _artist_check(c: Checker, p: Mapping[str, Any]) -> None:
    c.answer_is(p["expected"])
    c.only_changed()


FOLLOWED_ARTIST = Scenario(
    name="followed_artist_superlative", kind="question", apps=("music",), pick=_artist_pick,
    instruction=lambda p: f"Of the artists I follow on the music app, which one {p['wording']}? Give their name.",
    solution=_artist_solution, check=_artist_check)


# ------------------------------------------------------------------ notes carrying one tag or another (question)


def _either_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"notes_with_either_tag_count/{k}")
    tagged = rows(ctx, "SELECT t.tag, t.note_id FROM notes_tags t JOIN notes_notes n ON n.note_id = t.note_id "
                       "WHERE n.owner = ? ORDER BY t.tag, t.note_id", (_supervisor(ctx)["email"],))
    notes_of: dict[str, set[int]] = {}
    for row in tagged:
        notes_of.setdefault(row["tag"], set()).add(row["note_id"])
    pairs = list(combinations(sorted(notes_of), 2))
    # variant 1 asks about two tags that share a note (the trap: count it once), the others about any pair
    overlapping = [pair for pair in pairs if notes_of[pair[0]] & notes_of[pair[1]]]
    first, second = rng.choice(overlapping if k == 1 and overlapping else pairs)
    return {"tags": [first, second], "expected": len(notes_of[first] | notes_of[second])}


def _either_solution(p: Mapping[str, Any]) -> str:
    return login("notes") + f'''ids = set()
for tag in {p["tags"]!r}:
''' + "\n".join("    " + line for line in _collect(
        "found", "apis.notes.search_notes(access_token=notes_token, tag=tag, ").splitlines()) + '''
    ids |= {note["note_id"] for note in found}
apis.supervisor.complete_task(answer=len(ids))
'''


def _either_check(c: Checker, p: Mapping[str, Any]) -> None:
    c.answer_is(p["expected"])
    c.only_changed()


EITHER_TAG = Scenario(
    name="notes_with_either_tag_count", kind="question", apps=("notes",), pick=_either_pick,
    instruction=lambda p: (f"How many of my notes are tagged '{p['tags'][0]}' or '{p['tags'][1]}'? A note with "
                           f"both tags counts once."),
    solution=_either_solution, check=_either_check)


# ---------------------------------------------------------------- who shared a note with me (question, 2 apps)

SHARED_TITLES = ("Meal plan this week", "House chores rotation", "Concerts this summer", "Team offsite agenda")
OWNER_WORDING = {
    1: "Somebody shared the note '{title}' with me on the notes app. Who was it? Give their full name as it is "
       "saved in my phone contacts.",
    2: "Who shared '{title}' with me in the notes app? Answer with the person's first and last name from my phone "
       "contacts.",
    3: "I can see a note called '{title}' that someone shared with me. Tell me the full name (as in my contacts) "
       "of the person who shared it.",
}


def _owner_pick(ctx: Context, k: int) -> dict[str, Any]:
    me = _supervisor(ctx)
    shared = rows(ctx, "SELECT n.title, n.owner FROM notes_shares s JOIN notes_notes n ON n.note_id = s.note_id "
                       "WHERE s.shared_with = ? AND n.owner != ? ORDER BY n.note_id", (me["email"], me["email"]))
    named = {}
    for note in shared:
        found = rows(ctx, "SELECT first_name, last_name FROM phone_contacts WHERE owner = ? AND email = ? "
                          "ORDER BY contact_id", (me["phone"], note["owner"]))
        if found and [n["title"] for n in shared].count(note["title"]) == 1:
            named[note["title"]] = f"{found[0]['first_name']} {found[0]['last_name']}"
    # each variant prefers a different known title, then any other one (in note order)
    order = [*SHARED_TITLES[k - 1:], *SHARED_TITLES[:k - 1], *[n["title"] for n in shared]]
    title = next(t for t in order if t in named)
    return {"title": title, "expected": named[title], "wording": OWNER_WORDING[k]}


def _owner_solution(p: Mapping[str, Any]) -> str:
    return login("notes") + _collect("shared", "apis.notes.show_shared_notes(access_token=notes_token, ") + \
        f'''note = [n for n in shared if n["title"].lower() == {p["title"].lower()!r}][0]
''' + login("phone") + '''match = apis.phone.search_contacts(access_token=phone_token, query=note["owner_email"],
                                   page_limit=20)
person = [c for c in match if c["email"] == note["owner_email"]][0]
apis.supervisor.complete_task(answer=person["first_name"] + " " + person["last_name"])
'''


def _owner_check(c: Checker, p: Mapping[str, Any]) -> None:
    c.answer_is(p["expected"])
    c.only_changed()


SHARED_NOTE_OWNER = Scenario(
    name="shared_note_owner_name", kind="question", apps=("notes", "phone"), pick=_owner_pick,
    instruction=lambda p: p["wording"].format(title=p["title"]),
    solution=_owner_solution, check=_owner_check)


# ------------------------------------------------------------- length of a song texted about (question, 2 apps)

TIP = "You have to listen to "  # a contact recommends a song: "You have to listen to <song> by <artist>."
ASKED = "Have you heard "  # I ask a contact: "Have you heard <song> by <artist>? It's been on repeat all week."
KIND_WORDS = {"family": "relative", "partner": "partner", "roommate": "roommate", "friend": "friend"}


def _parse_song(message: str) -> tuple[str, str] | None:
    """(title, artist) from a song tip or question, or None for other messages."""
    if message.startswith(TIP):
        title, _, artist = message[len(TIP):].rstrip(".").rpartition(" by ")
    elif message.startswith(ASKED):
        title, _, artist = message[len(ASKED):].partition("?")[0].rpartition(" by ")
    else:
        return None
    return (title, artist) if title and artist else None


def _song_texts(ctx: Context, mine: bool) -> list[dict[str, Any]]:
    """Song tips sent to me (``mine`` False) or song questions I sent (``mine`` True), oldest first, with the
    contact (phone, full name, relationship) and the song's id."""
    me = _supervisor(ctx)["phone"]
    prefix, column, other = (ASKED, "sender", "receiver") if mine else (TIP, "receiver", "sender")
    texts = rows(ctx, f"SELECT message_id, {other} AS phone, message FROM phone_messages WHERE {column} = ? "
                      f"AND message LIKE ? ORDER BY sent_at, message_id", (me, prefix + "%"))
    out = []
    for text in texts:
        parsed = _parse_song(text["message"])
        people = rows(ctx, "SELECT first_name, last_name, relationships FROM phone_contacts WHERE owner = ? AND "
                           "phone_number = ?", (me, text["phone"]))
        song_id = parsed and _song_id(ctx, *parsed)
        if song_id and people:
            person = people[0]
            out.append({**text, "song_id": song_id, "title": parsed[0], "artist": parsed[1],
                        "name": f"{person['first_name']} {person['last_name']}",
                        "kind": (person["relationships"].split(",") or [""])[0]})
    return out


def _length_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"texted_song_length/{k}")
    names = [f"{r['first_name']} {r['last_name']}" for r in rows(
        ctx, "SELECT first_name, last_name FROM phone_contacts WHERE owner = ?", (_supervisor(ctx)["phone"],))]
    for mine in (False, True):
        texts = [t for t in _song_texts(ctx, mine) if names.count(t["name"]) == 1 and t["kind"] in KIND_WORDS]
        if texts:
            name = rng.choice(sorted({t["name"] for t in texts}))
            latest = [t for t in texts if t["name"] == name][-1]
            seconds = rows(ctx, "SELECT duration_s FROM music_songs WHERE song_id = ?", (latest["song_id"],))
            return {"source": "asked" if mine else "tip", "name": name, "kind": KIND_WORDS[latest["kind"]],
                    "song": latest["title"], "expected": seconds[0]["duration_s"]}
    # no song talk in this world's texts: the song I played last
    last = rows(ctx, "SELECT s.title, s.duration_s FROM music_plays p JOIN music_songs s ON s.song_id = p.song_id "
                     "WHERE p.owner = ? ORDER BY p.played_at DESC, p.play_id DESC LIMIT 1",
                (_supervisor(ctx)["email"],))
    return {"source": "played", "name": "", "kind": "", "song": last[0]["title"], "expected": last[0]["duration_s"]}


def _length_instruction(p: Mapping[str, Any]) -> str:
    if p["source"] == "tip":
        return (f"My {p['kind']} {p['name']} texted me to listen to a song (if there were several, the most recent "
                f"one). How long is that song, in seconds?")
    if p["source"] == "asked":
        return (f"I texted my {p['kind']} {p['name']} to ask whether they had heard a song (the latest one if I "
                f"asked about more than one). How many seconds long is it?")
    return "How many seconds long is the last song I played on the music app?"


def _length_solution(p: Mapping[str, Any]) -> str:
    if p["source"] == "played":
        return login("music") + '''last = apis.music.show_recently_played(access_token=music_token, page_limit=1)[0]
apis.supervisor.complete_task(answer=last["duration_s"])
'''
    if p["source"] == "tip":
        prefix, sender, parse = TIP, 'person["phone_number"]', 'text[len(prefix):].rstrip(".")'
    else:
        prefix, sender, parse = ASKED, 'me["phone"]', 'text[len(prefix):].split("?")[0]'
    return login("phone") + f'''matches = apis.phone.search_contacts(access_token=phone_token, query={p["name"]!r},
                                     page_limit=20)
person = [c for c in matches if c["first_name"] + " " + c["last_name"] == {p["name"]!r}][0]
prefix = {prefix!r}
texts = apis.phone.search_text_messages(access_token=phone_token, query=prefix, phone_number=person["phone_number"],
                                        page_limit=20)
text = [t["message"] for t in texts if t["sender"] == {sender} and t["message"].startswith(prefix)][0]
title, artist = {parse}.rsplit(" by ", 1)
songs = apis.music.search_songs(query=title, page_limit=20)
song = [s for s in songs if s["title"] == title and s["artist_name"] == artist][0]
apis.supervisor.complete_task(answer=song["duration_s"])
'''


def _length_check(c: Checker, p: Mapping[str, Any]) -> None:
    c.answer_is(p["expected"])
    c.only_changed()


TEXTED_SONG_LENGTH = Scenario(
    name="texted_song_length", kind="question", apps=("phone", "music"), pick=_length_pick,
    instruction=_length_instruction, solution=_length_solution, check=_length_check)


# ------------------------------------------------------------ liked songs of a genre into a new playlist (action)

GENRE_TITLES = {1: "Liked {genre}", 2: "{genre} Favourites", 3: "Best of My {genre}"}


def _genre_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"liked_genre_private_playlist/{k}")
    me = _supervisor(ctx)["email"]
    liked = rows(ctx, "SELECT s.song_id, s.genre FROM music_liked_songs l JOIN music_songs s "
                      "ON s.song_id = l.song_id WHERE l.owner = ? ORDER BY s.song_id", (me,))
    by_genre: dict[str, list[int]] = {}
    for song in liked:
        by_genre.setdefault(song["genre"], []).append(song["song_id"])
    genres = sorted(g for g, ids in by_genre.items() if 2 <= len(ids) <= 8) or sorted(by_genre)
    genre = rng.choice(genres)
    taken = {r["title"].lower() for r in rows(ctx, "SELECT title FROM music_playlists WHERE owner = ?", (me,))}
    title = GENRE_TITLES[k].format(genre=genre.title())
    while title.lower() in taken:
        title += " Mix"
    return {"genre": genre, "title": title, "public": False, "song_ids": by_genre[genre], "me": me}


def _genre_solution(p: Mapping[str, Any]) -> str:
    return login("music") + _collect("liked", "apis.music.show_liked_songs(access_token=music_token, ") + \
        f'''wanted = [s["song_id"] for s in liked if s["genre"].lower() == {p["genre"]!r}]
playlist = apis.music.create_playlist(access_token=music_token, title={p["title"]!r}, is_public=False)
for song_id in wanted:
    apis.music.add_song_to_playlist(access_token=music_token, playlist_id=playlist["playlist_id"], song_id=song_id)
''' + COMPLETE


LIKED_GENRE_PLAYLIST = Scenario(
    name="liked_genre_private_playlist", kind="action", apps=("music",), pick=_genre_pick,
    instruction=lambda p: (f"Gather every song I've liked whose genre is {p['genre']} into a new private playlist "
                           f"called '{p['title']}'."),
    solution=_genre_solution, check=_check_new_playlist)


# -------------------------------------------------------------------- rate every track of an album (action)

STARS = {1: "one star", 2: "two stars", 3: "three stars", 4: "four stars", 5: "five stars"}


def _rate_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"rate_library_album_tracks/{k}")
    me = _supervisor(ctx)["email"]
    albums = rows(ctx, "SELECT a.album_id, a.title, ar.name AS artist FROM music_library_albums l "
                       "JOIN music_albums a ON a.album_id = l.album_id JOIN music_artists ar ON ar.artist_id = "
                       "a.artist_id WHERE l.owner = ? ORDER BY a.album_id", (me,))
    album = rng.choice(albums)
    songs = [r["song_id"] for r in rows(ctx, "SELECT song_id FROM music_songs WHERE album_id = ? ORDER BY song_id",
                                        (album["album_id"],))]
    return {"album": album["title"], "artist": album["artist"], "rating": rng.randint(1, 5), "song_ids": songs,
            "me": me, "now": ctx.now}


def _rate_solution(p: Mapping[str, Any]) -> str:
    return login("music") + _collect("albums", "apis.music.show_album_library(access_token=music_token, ") + \
        f'''album = [a for a in albums if a["title"].lower() == {p["album"].lower()!r}][0]
for song_id in apis.music.show_album(album_id=album["album_id"])["song_ids"]:
    apis.music.rate_song(access_token=music_token, song_id=song_id, rating={p["rating"]})
''' + COMPLETE


def _rate_check(c: Checker, p: Mapping[str, Any]) -> None:
    added, removed = _table_diff(c, "music_ratings")
    got = sorted((r["owner"], r["song_id"], r["rating"]) for r in added)
    want = sorted((p["me"], song_id, p["rating"]) for song_id in p["song_ids"])
    c.require(got == want, f"my ratings of the album's songs {p['song_ids']} are all {p['rating']} (new or "
                           f"changed ratings: {got})")
    c.require(all(r["owner"] == p["me"] and r["song_id"] in p["song_ids"] for r in removed),
              "no other rating was changed or removed")
    c.only_changed("music_ratings")


RATE_ALBUM = Scenario(
    name="rate_library_album_tracks", kind="action", apps=("music",), pick=_rate_pick,
    instruction=lambda p: (f"Give every track on '{p['album']}' by {p['artist']} (an album in my music library) "
                           f"a rating of {STARS[p['rating']]}."),
    solution=_rate_solution, check=_rate_check)


# ------------------------------------------------------------------- append an item to a list note (action)

# note title -> items to add (none appears in the world's own lists)
LIST_ADDITIONS = {
    "Grocery list": ("almond butter", "cherry tomatoes", "sparkling water", "fresh basil", "feta cheese"),
    "Packing list": ("travel pillow", "earplugs", "reusable water bottle", "spare socks"),
    "Movies to watch": ("The Glass Orchard", "Northbound Ferry", "Letters from Juniper Hill"),
    "Restaurants to try": ("Pho Corner", "The Olive Branch", "Smokestack BBQ"),
    "Home maintenance": ("clean the dryer vent", "touch up the hallway paint", "flush the water heater"),
    "Weekend ideas": ("the sculpture garden", "the night market", "the botanical greenhouse"),
    "Books to read": ("The Tin Cartographer by Ilse Marr", "Winter Light Falling by Oren Haskett"),
}
APPEND_WORDING = {
    1: "Add '{item}' to my '{title}' note, as a new line at the end.",
    2: "Please put '{item}' at the bottom of my note '{title}', on its own line.",
    3: "Could you append '{item}' to the end of my '{title}' note (a new line)?",
}


def _append_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"append_item_to_list_note/{k}")
    notes = rows(ctx, "SELECT note_id, title, content FROM notes_notes WHERE owner = ? ORDER BY note_id",
                 (_supervisor(ctx)["email"],))
    lists = [n for n in notes if n["title"] in LIST_ADDITIONS] or notes
    note = rng.choice(lists)
    fresh = [i for i in LIST_ADDITIONS.get(note["title"], ()) if i.lower() not in note["content"].lower()]
    fresh = fresh or ["revisit this next month"]
    return {"note_id": note["note_id"], "title": note["title"], "item": rng.choice(fresh),
            "content": note["content"], "wording": APPEND_WORDING[k]}


def _append_solution(p: Mapping[str, Any]) -> str:
    return login("notes") + _collect("notes", "apis.notes.search_notes(access_token=notes_token, ") + \
        f'''note = [n for n in notes if n["title"] == {p["title"]!r}][0]
apis.notes.append_to_note(access_token=notes_token, note_id=note["note_id"], text="- " + {p["item"]!r})
''' + COMPLETE


def _append_check(c: Checker, p: Mapping[str, Any]) -> None:
    added, removed = _table_diff(c, "notes_notes")
    c.require(len(added) == 1 and len(removed) == 1 and added[0]["note_id"] == removed[0]["note_id"] == p["note_id"],
              f"only the note '{p['title']}' changed")
    if len(added) == 1 and len(removed) == 1:
        new, old = added[0], removed[0]
        c.require(all(new[f] == old[f] for f in ("owner", "title", "pinned", "created_at")),
                  "its title, owner and pinning are unchanged")
        lines = new["content"].split("\n")
        c.require(lines[:-1] == p["content"].split("\n") and _clean_line(lines[-1]) == p["item"].lower(),
                  f"its old content is kept and '{p['item']}' is a new last line")
    c.only_changed("notes_notes")


APPEND_ITEM = Scenario(
    name="append_item_to_list_note", kind="action", apps=("notes",), pick=_append_pick,
    instruction=lambda p: p["wording"].format(item=p["item"], title=p["title"]),
    solution=_append_solution, check=_append_check)


# --------------------------------------------------------------- tag every note that mentions a word (action)

MENTION_WORDS = ("budget", "onion", "olive oil", "pasta", "market", "parmesan", "chicken", "rice", "trail",
                 "beans", "garlic", "lemon", "meeting", "tickets", "coffee", "weekend", "dinner")
MENTION_TAGS = {1: "follow-up", 2: "revisit", 3: "starred"}


def _mention_pick(ctx: Context, k: int) -> dict[str, Any]:
    rng = random.Random(f"tag_notes_mentioning_word/{k}")
    me = _supervisor(ctx)["email"]
    notes = rows(ctx, "SELECT note_id, title, content FROM notes_notes WHERE owner = ? ORDER BY note_id", (me,))
    tag = MENTION_TAGS[k]
    tagged = {r["note_id"] for r in rows(ctx, "SELECT note_id FROM notes_tags WHERE tag = ?", (tag,))}
    partner = _contacts(ctx, "partner")
    by_count: dict[int, list[tuple[str, list[int]]]] = {}
    for word in (*MENTION_WORDS, *[p[0] for p in partner]):
        hits = [n["note_id"] for n in notes if word.lower() in f"{n['title']}\n{n['content']}".lower()]
        # the substring search of the notes app and a whole-word reading must agree, and no note has the tag yet
        whole = [n["note_id"] for n in notes
                 if re.search(rf"\b{re.escape(word.lower())}\b", f"{n['title']}\n{n['content']}".lower())]
        if hits and hits == whole and not tagged & set(hits):
            by_count.setdefault(min(len(hits), 2), []).append((word, hits))
    for note in notes:  # no listed word fits: a note's own title (found by searching for it)
        hits = [n["note_id"] for n in notes if note["title"].lower() in f"{n['title']}\n{n['content']}".lower()]
        if not by_count and not tagged & set(hits):
            by_count[1] = [(note["title"], hits)]
    word, hits = rng.choice(by_count.get(2) or by_count[1])
    return {"word": word, "tag": tag, "note_ids": hits}


def _mention_solution(p: Mapping[str, Any]) -> str:
    return login("notes") + _collect("notes", f"apis.notes.search_notes(access_token=notes_token, "
                                              f"query={p['word']!r}, ") + f'''for note in notes:
    if {p["tag"]!r} not in note["tags"]:
        apis.notes.add_tag(access_token=notes_token, note_id=note["note_id"], tag={p["tag"]!r})
''' + COMPLETE


def _mention_check(c: Checker, p: Mapping[str, Any]) -> None:
    added, removed = _table_diff(c, "notes_tags")
    got = sorted((r["note_id"], r["tag"]) for r in added)
    c.require(got == sorted((n, p["tag"]) for n in p["note_ids"]) and not removed,
              f"exactly the notes {p['note_ids']} got the tag '{p['tag']}' and no tag was removed (added: {got})")
    touched, before = _table_diff(c, "notes_notes")
    old = {r["note_id"]: r for r in before}
    c.require(len(touched) == len(before) and all(
        r["note_id"] in p["note_ids"] and r["note_id"] in old
        and all(r[f] == old[r["note_id"]][f] for f in r if f != "updated_at") for r in touched),
        "the notes themselves are unchanged but for their update time")
    c.only_changed("notes_tags", "notes_notes")


TAG_MENTIONS = Scenario(
    name="tag_notes_mentioning_word", kind="action", apps=("notes",), pick=_mention_pick,
    instruction=lambda p: f"Every note of mine that mentions '{p['word']}' should get the tag '{p['tag']}'.",
    solution=_mention_solution, check=_mention_check)


# --------------------------------------------------------- a note listing my contacts of a kind (action, 2 apps)

ROSTER_KINDS = {1: ("roommate", "family", "friend"), 2: ("family", "friend", "roommate"),
                3: ("coworker", "friend", "family")}
ROSTER_TITLES = {"roommate": "My roommates", "family": "Family", "coworker": "Coworkers", "friend": "Friends"}
PLURALS = {"roommate": "roommates", "family": "family members", "coworker": "coworkers", "friend": "friends"}


def _roster_pick(ctx: Context, k: int) -> dict[str, Any]:
    kind = next(kind for kind in ROSTER_KINDS[k] if _contacts(ctx, kind))
    names = [f"{first} {last}" for first, last, *_ in _contacts(ctx, kind)]
    return {"kind": kind, "title": ROSTER_TITLES[kind], "names": names, "me": _supervisor(ctx)["email"]}


def _roster_solution(p: Mapping[str, Any]) -> str:
    return login("phone") + _collect("people", f"apis.phone.search_contacts(access_token=phone_token, "
                                               f"relationship={p['kind']!r}, ") + \
        'names = [c["first_name"] + " " + c["last_name"] for c in people]\n' + login("notes") + \
        f'''apis.notes.create_note(access_token=notes_token, title={p["title"]!r}, content="\\n".join(names))
''' + COMPLETE


def _roster_check(c: Checker, p: Mapping[str, Any]) -> None:
    added, removed = _table_diff(c, "notes_notes")
    c.require(len(added) == 1 and not removed, f"exactly one new note and no other note changed (got {len(added)} "
                                               f"new, {len(removed)} changed or deleted)")
    if len(added) == 1:
        note = added[0]
        c.require(note["owner"] == p["me"], "the note is mine")
        c.require(note["title"].strip().lower() == p["title"].lower(), f"it is titled '{p['title']}'")
        lines = sorted(_clean_line(line) for line in note["content"].split("\n") if line.strip())
        want = sorted(name.lower() for name in p["names"])
        c.require(lines == want, f"it lists exactly {p['names']}, one per line (got {lines})")
    c.only_changed("notes_notes")


CONTACTS_ROSTER = Scenario(
    name="contacts_roster_note", kind="action", apps=("phone", "notes"), pick=_roster_pick,
    instruction=lambda p: (f"Create a note titled '{p['title']}' listing the full names of all my "
                           f"{PLURALS[p['kind']]} from my phone contacts, one name per line and nothing else."),
    solution=_roster_solution, check=_roster_check)


# ------------------------------------------------- a playlist of the songs texted to me (action, 2 apps)

TEXTED_TITLES = {1: "Texted Tips", 2: "Friends Recommend", 3: "Heard It From You"}
TEXTED_PUBLIC = {1: False, 2: True, 3: False}


def _texted_pick(ctx: Context, k: int) -> dict[str, Any]:
    me = _supervisor(ctx)["email"]
    params = {"title": TEXTED_TITLES[k], "public": TEXTED_PUBLIC[k], "me": me}
    for source, mine in (("tip", False), ("asked", True)):
        songs = list(dict.fromkeys(t["song_id"] for t in _song_texts(ctx, mine)))
        if songs:
            return {**params, "source": source, "song_ids": songs}
    # no song talk in this world's texts: the songs of my last ten plays
    plays = rows(ctx, "SELECT song_id FROM music_plays WHERE owner = ? ORDER BY played_at DESC, play_id DESC "
                      "LIMIT 10", (me,))
    return {**params, "source": "played", "song_ids": list(dict.fromkeys(r["song_id"] for r in plays))}


def _texted_instruction(p: Mapping[str, Any]) -> str:
    privacy = "public" if p["public"] else "private"
    if p["source"] == "tip":
        what = "every song that someone told me to listen to in a text message"
    elif p["source"] == "asked":
        what = "every song I asked someone about in my text messages (whether they had heard it)"
    else:
        what = "the songs of my last ten plays on the music app"
    return f"Make a new {privacy} playlist called '{p['title']}' with {what}."


def _texted_solution(p: Mapping[str, Any]) -> str:
    make = login("music") + f'''ids = list(dict.fromkeys(ids))
playlist = apis.music.create_playlist(access_token=music_token, title={p["title"]!r}, is_public={p["public"]})
for song_id in ids:
    apis.music.add_song_to_playlist(access_token=music_token, playlist_id=playlist["playlist_id"], song_id=song_id)
''' + COMPLETE
    if p["source"] == "played":
        return login("music") + '''plays = apis.music.show_recently_played(access_token=music_token, page_limit=10)
ids = [s["song_id"] for s in plays]
''' + make
    if p["source"] == "tip":
        prefix, keep, parse = TIP, 't["receiver"] == me["phone"]', 'text[len(prefix):].rstrip(".")'
    else:
        prefix, keep, parse = ASKED, 't["sender"] == me["phone"]', 'text[len(prefix):].split("?")[0]'
    return login("phone") + f"prefix = {prefix!r}\n" + _collect(
        "texts", "apis.phone.search_text_messages(access_token=phone_token, query=prefix, ") + f'''wanted = []
for t in texts:
    text = t["message"]
    if {keep} and text.startswith(prefix):
        wanted.append(tuple({parse}.rsplit(" by ", 1)))
ids = []
for title, artist in wanted:
    songs = apis.music.search_songs(query=title, page_limit=20)
    ids += [s["song_id"] for s in songs if s["title"] == title and s["artist_name"] == artist]
''' + make


TEXTED_PLAYLIST = Scenario(
    name="playlist_from_texted_songs", kind="action", apps=("phone", "music"), pick=_texted_pick,
    instruction=_texted_instruction, solution=_texted_solution, check=_check_new_playlist)


SCENARIOS: tuple[Scenario, ...] = (
    PLAYLIST_DURATION, LIBRARY_TOP_N, FOLLOWED_ARTIST, EITHER_TAG, SHARED_NOTE_OWNER, TEXTED_SONG_LENGTH,
    LIKED_GENRE_PLAYLIST, RATE_ALBUM, APPEND_ITEM, TAG_MENTIONS, CONTACTS_ROSTER, TEXTED_PLAYLIST,
)
