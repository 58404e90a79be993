"""The music, notes and todo apps on real in-memory SQLite: every API, the error paths, privacy, pagination."""

from __future__ import annotations

import json
import sqlite3
from types import SimpleNamespace

import pytest

from agentdistill_appworld.apps.music import Music
from agentdistill_appworld.apps.notes import Notes
from agentdistill_appworld.apps.todo import Todo
from agentdistill_appworld.framework import (
    Conflict,
    Context,
    Forbidden,
    NotFound,
    Unauthorized,
    Unprocessable,
    diff,
    snapshot,
)

NOW = "2024-05-15T10:00:00"
ADA = SimpleNamespace(first_name="Ada", last_name="Moss", email="ada.moss@mail.example", phone="5550100001")
BO = SimpleNamespace(first_name="Bo", last_name="Reyes", email="bo.reyes@mail.example", phone="5550100002")
CY = SimpleNamespace(first_name="Cy", last_name="Lund", email="cy.lund@mail.example", phone="5550100003")
DI = SimpleNamespace(first_name="Di", last_name="Park", email="di.park@mail.example", phone="5550100004")
PEOPLE = (ADA, BO, CY, DI)

CATALOGUE = [
    {"name": "The Lanterns", "genre": "Rock",
     "albums": [{"title": "Night Roads", "release_date": "2019-03-01",
                 "songs": [{"title": "Headlights", "duration_s": 210, "play_count": 500},
                           {"title": "Exit Ramp", "duration_s": 185, "play_count": 120},
                           {"title": "Mile Marker", "duration_s": 240, "play_count": 900}]},
                {"title": "Harbor Lights", "release_date": "2022-06-10",
                 "songs": [{"title": "Tidewater", "duration_s": 200, "play_count": 50},
                           {"title": "Lighthouse Keeper", "duration_s": 260, "play_count": 300}]}],
     "singles": [{"title": "Static", "duration_s": 150, "release_date": "2023-01-20", "play_count": 700}]},
    {"name": "Mira Sol", "genre": "pop",
     "albums": [{"title": "Sunday Colors", "release_date": "2021-09-01",
                 "songs": [{"title": "Golden Hour", "duration_s": 195, "play_count": 1500},
                           {"title": "Paper Planes", "duration_s": 178, "play_count": 20}]}],
     "singles": [{"title": "Neon Rain", "duration_s": 222, "release_date": "2024-02-02", "play_count": 80,
                  "genre": "Electronic"}]},
    {"name": "Quiet Engines", "genre": "jazz",
     "singles": [{"title": "Slow Burn", "duration_s": 300, "release_date": "2018-11-11", "play_count": 60}]},
]
# song ids in catalogue order
HEADLIGHTS, EXIT_RAMP, MILE_MARKER, TIDEWATER, LIGHTHOUSE, STATIC, GOLDEN, PAPER, NEON, SLOW = range(1, 11)


@pytest.fixture()
def world():
    ctx = Context(db=sqlite3.connect(":memory:", isolation_level=None), now=NOW)
    for cls in (Music, Notes, Todo):
        app = cls(ctx)
        app.create_tables()
        ctx.apps[app.name] = app
        for person in PEOPLE[:3]:  # DI has no accounts
            app.add_account(person, f"pw-{app.name}-{person.first_name}", "2020-01-01T00:00:00")
    ctx.ids = ctx.apps["music"].add_catalogue(CATALOGUE)
    return ctx


class Session:
    """One person logged in to one app: ``s("api", **kwargs)``."""

    def __init__(self, ctx: Context, app: str, person: SimpleNamespace):
        self.ctx, self.app = ctx, ctx.apps[app]
        self.token = self.app.call("login", {"username": person.email,
                                             "password": f"pw-{app}-{person.first_name}"})["access_token"]

    def __call__(self, api: str, **kwargs):
        return self.app.call(api, {"access_token": self.token, **kwargs})


def public(ctx, app, api, **kwargs):
    return ctx.apps[app].call(api, kwargs)


def ids(rows, key):
    return [r[key] for r in rows]


# ------------------------------------------------------------------------------------------------- specs


@pytest.mark.parametrize("cls, count", [(Music, 35), (Notes, 19), (Todo, 21)])
def test_every_spec_builds_and_every_parameter_is_described(cls, count):
    ctx = Context(db=sqlite3.connect(":memory:", isolation_level=None), now=NOW)
    app = cls(ctx)  # builds every spec; a parameter without a description raises here
    assert len(app.specs) == count
    assert {"login", "logout", "show_account", "change_password", "show_profile"} <= set(app.specs)
    for spec in app.specs.values():
        doc = spec.as_doc()
        json.dumps(doc)
        assert spec.description and spec.response is not None
        for param in doc["parameters"]:
            assert param["description"].strip(), (spec.name, param["name"])
    app.create_tables()
    tables = [r[0] for r in ctx.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert all(t.startswith(f"{cls.name}_") for t in tables)


def test_the_todo_description_parameter_is_documented():
    app = Todo(Context(db=sqlite3.connect(":memory:"), now=NOW))
    for api_name in ("create_task", "update_task"):
        params = {p.name: p for p in app.specs[api_name].params}
        assert params["description"].type == "string" and params["description"].description
    assert "complete_task" not in app.specs  # the supervisor's API name is not reused


# ------------------------------------------------------------------------------------------------- music


def test_music_seed_helper(world):
    music = world.apps["music"]
    assert world.ids["artists"] == {"The Lanterns": 1, "Mira Sol": 2, "Quiet Engines": 3}
    assert world.ids["albums"][("Mira Sol", "Sunday Colors")] == 3
    assert world.ids["songs"][("Quiet Engines", "Slow Burn")] == SLOW
    with pytest.raises(ValueError, match="not by artist"):
        music.add_song("X", 2, 100, album_id=1)
    with pytest.raises(ValueError, match="needs a release_date"):
        music.add_song("X", 2, 100)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        music.add_album("X", 1, "2024/01/01")
    with pytest.raises(ValueError, match="no artist"):
        music.add_album("X", 99, "2024-01-01")


def test_music_catalogue_search_and_show_need_no_login(world):
    found = public(world, "music", "search_songs", query="LIGHT", page_limit=20)  # titles and album titles
    assert ids(found, "song_id") == [HEADLIGHTS, TIDEWATER, LIGHTHOUSE]
    assert ids(public(world, "music", "search_songs", genre="POP"), "song_id") == [GOLDEN, PAPER]
    assert ids(public(world, "music", "search_songs", genre="electronic"), "song_id") == [NEON]
    by_plays = public(world, "music", "search_songs", artist_id=1, sort_by="play_count", page_limit=20)
    assert ids(by_plays, "song_id") == [MILE_MARKER, STATIC, HEADLIGHTS, LIGHTHOUSE, EXIT_RAMP, TIDEWATER]
    oldest = public(world, "music", "search_songs", sort_by="release_date", descending=False, page_limit=2)
    assert ids(oldest, "song_id") == [SLOW, HEADLIGHTS]
    assert ids(public(world, "music", "search_songs", album_id=2), "song_id") == [TIDEWATER, LIGHTHOUSE]
    with pytest.raises(Unprocessable, match=r"sort_by must be one of \['play_count', 'release_date'\]"):
        public(world, "music", "search_songs", sort_by="title")

    song = public(world, "music", "show_song", song_id=STATIC)
    assert song == {"song_id": STATIC, "title": "Static", "artist_id": 1, "artist_name": "The Lanterns",
                    "album_id": None, "album_title": None, "track_number": None, "genre": "rock",
                    "duration_s": 150, "release_date": "2023-01-20", "play_count": 700, "average_rating": None,
                    "rating_count": 0}
    assert public(world, "music", "show_song", song_id=TIDEWATER)["track_number"] == 1
    with pytest.raises(NotFound, match="no song with song_id 99; find songs with music.search_songs"):
        public(world, "music", "show_song", song_id=99)

    album = public(world, "music", "show_album", album_id=1)
    assert album["song_ids"] == [HEADLIGHTS, EXIT_RAMP, MILE_MARKER]
    assert (album["song_count"], album["total_duration_s"], album["play_count"]) == (3, 635, 1520)
    assert ids(public(world, "music", "search_albums", query="lanterns", sort_by="release_date"),
               "album_id") == [2, 1]
    # albums 1 and 3 both have 1520 plays: the tie goes to the lower album_id
    assert ids(public(world, "music", "search_albums", sort_by="play_count"), "album_id") == [1, 3, 2]
    assert ids(public(world, "music", "search_albums", genre="pop"), "title") == ["Sunday Colors"]
    with pytest.raises(NotFound, match="no album with album_id 9"):
        public(world, "music", "show_album", album_id=9)

    artist = public(world, "music", "show_artist", artist_id=1)
    assert artist["album_ids"] == [1, 2] and artist["song_ids"] == [1, 2, 3, 4, 5, 6]
    assert (artist["song_count"], artist["album_count"], artist["follower_count"]) == (6, 2, 0)
    assert ids(public(world, "music", "search_artists", sort_by="play_count"), "name") == [
        "The Lanterns", "Mira Sol", "Quiet Engines"]
    assert ids(public(world, "music", "search_artists", query="sol"), "artist_id") == [2]
    assert ids(public(world, "music", "search_artists", genre="JAZZ"), "artist_id") == [3]
    with pytest.raises(NotFound, match="no artist with artist_id 7"):
        public(world, "music", "show_artist", artist_id=7)


def test_music_pagination(world):
    pages = [public(world, "music", "search_songs", page_index=i, page_limit=3) for i in range(5)]
    assert [len(p) for p in pages] == [3, 3, 3, 1, 0]
    assert [s["song_id"] for p in pages for s in p] == list(range(1, 11))
    with pytest.raises(Unprocessable, match="page_limit must be between 1 and 20"):
        public(world, "music", "search_songs", page_limit=21)
    with pytest.raises(Unprocessable, match="page_index must be >= 0"):
        public(world, "music", "search_albums", page_index=-1)


def test_music_auth(world):
    with pytest.raises(Unauthorized, match="wrong username or password"):
        public(world, "music", "login", username=ADA.email, password="pw-notes-Ada")
    with pytest.raises(Unauthorized, match="call apis.music.login"):
        public(world, "music", "like_song", access_token="forged", song_id=1)
    with pytest.raises(Unprocessable, match="missing the required parameter 'access_token'"):
        public(world, "music", "show_liked_songs")
    ada = Session(world, "music", ADA)
    assert ada("show_account")["username"] == ADA.email
    assert ada("show_profile", email=BO.email) == {"first_name": "Bo", "last_name": "Reyes", "email": BO.email}
    ada("logout")
    with pytest.raises(Unauthorized):
        ada("show_liked_songs")


def test_music_library(world):
    ada, bo = Session(world, "music", ADA), Session(world, "music", BO)
    for song_id in (HEADLIGHTS, NEON, SLOW):
        assert ada("add_song_to_library", song_id=song_id) == {"message": "Song added to your library."}
    with pytest.raises(Conflict, match="already in your library"):
        ada("add_song_to_library", song_id=NEON)
    with pytest.raises(NotFound, match="no song with song_id 42"):
        ada("add_song_to_library", song_id=42)
    library = ada("show_song_library")
    assert ids(library, "song_id") == [SLOW, NEON, HEADLIGHTS] and library[0]["added_at"] == NOW
    assert ids(ada("show_song_library", page_index=1, page_limit=2), "song_id") == [HEADLIGHTS]
    assert bo("show_song_library") == []
    ada("remove_song_from_library", song_id=NEON)
    with pytest.raises(NotFound, match="not in your library; see music.show_song_library"):
        ada("remove_song_from_library", song_id=NEON)
    assert ids(ada("show_song_library"), "song_id") == [SLOW, HEADLIGHTS]

    ada("add_album_to_library", album_id=3)
    ada("add_album_to_library", album_id=1)
    with pytest.raises(Conflict, match="album 1 is already in your library"):
        ada("add_album_to_library", album_id=1)
    with pytest.raises(NotFound, match="no album"):
        ada("add_album_to_library", album_id=5)
    albums = ada("show_album_library")
    assert ids(albums, "album_id") == [1, 3] and albums[0]["added_at"] == NOW and albums[0]["song_count"] == 3
    ada("remove_album_from_library", album_id=1)
    with pytest.raises(NotFound, match="album 1 is not in your library"):
        ada("remove_album_from_library", album_id=1)
    assert ids(ada("show_album_library"), "album_id") == [3] and bo("show_album_library") == []


def test_music_liked_songs(world):
    ada, bo = Session(world, "music", ADA), Session(world, "music", BO)
    ada("like_song", song_id=GOLDEN)
    ada("like_song", song_id=STATIC)
    bo("like_song", song_id=GOLDEN)
    with pytest.raises(Conflict, match="you already like song 7"):
        ada("like_song", song_id=GOLDEN)
    liked = ada("show_liked_songs")
    assert ids(liked, "song_id") == [STATIC, GOLDEN] and liked[0]["liked_at"] == NOW
    ada("unlike_song", song_id=STATIC)
    with pytest.raises(NotFound, match="you have not liked song 6"):
        ada("unlike_song", song_id=STATIC)
    assert ids(ada("show_liked_songs"), "song_id") == [GOLDEN] == ids(bo("show_liked_songs"), "song_id")


def playlist_order(session, playlist_id):
    songs = session("show_playlist", playlist_id=playlist_id)["songs"]
    assert [s["position"] for s in songs] == list(range(1, len(songs) + 1))  # no gaps
    return ids(songs, "song_id")


def test_music_playlist_ordering(world):
    ada = Session(world, "music", ADA)
    created = ada("create_playlist", title="  Road Trip ")
    pid = created["playlist_id"]
    assert created == {"playlist_id": 1, "message": "Playlist created."}
    for song_id in (HEADLIGHTS, MILE_MARKER, LIGHTHOUSE, GOLDEN):
        ada("add_song_to_playlist", playlist_id=pid, song_id=song_id)
    assert ada("add_song_to_playlist", playlist_id=pid, song_id=SLOW, position=1)["message"].endswith("position 1.")
    assert playlist_order(ada, pid) == [SLOW, HEADLIGHTS, MILE_MARKER, LIGHTHOUSE, GOLDEN]
    ada("move_song_in_playlist", playlist_id=pid, song_id=GOLDEN, position=1)
    assert playlist_order(ada, pid) == [GOLDEN, SLOW, HEADLIGHTS, MILE_MARKER, LIGHTHOUSE]
    ada("move_song_in_playlist", playlist_id=pid, song_id=SLOW, position=5)
    assert playlist_order(ada, pid) == [GOLDEN, HEADLIGHTS, MILE_MARKER, LIGHTHOUSE, SLOW]
    ada("move_song_in_playlist", playlist_id=pid, song_id=HEADLIGHTS, position=3)
    assert playlist_order(ada, pid) == [GOLDEN, MILE_MARKER, HEADLIGHTS, LIGHTHOUSE, SLOW]
    ada("remove_song_from_playlist", playlist_id=pid, song_id=MILE_MARKER)
    assert playlist_order(ada, pid) == [GOLDEN, HEADLIGHTS, LIGHTHOUSE, SLOW]
    ada("add_song_to_playlist", playlist_id=pid, song_id=PAPER, position=3)
    assert playlist_order(ada, pid) == [GOLDEN, HEADLIGHTS, PAPER, LIGHTHOUSE, SLOW]

    with pytest.raises(Conflict, match="already in playlist 1 \\(at position 2\\); use move_song_in_playlist"):
        ada("add_song_to_playlist", playlist_id=pid, song_id=HEADLIGHTS)
    with pytest.raises(Unprocessable, match="position must be between 1 and 6"):
        ada("add_song_to_playlist", playlist_id=pid, song_id=STATIC, position=0)
    with pytest.raises(Unprocessable, match="position must be between 1 and 5"):
        ada("move_song_in_playlist", playlist_id=pid, song_id=PAPER, position=6)
    with pytest.raises(NotFound, match="song 2 is not in playlist 1"):
        ada("move_song_in_playlist", playlist_id=pid, song_id=EXIT_RAMP, position=1)
    with pytest.raises(NotFound, match="song 2 is not in playlist 1"):
        ada("remove_song_from_playlist", playlist_id=pid, song_id=EXIT_RAMP)
    with pytest.raises(NotFound, match="no song with song_id 77"):
        ada("add_song_to_playlist", playlist_id=pid, song_id=77)

    shown = ada("show_playlist", playlist_id=pid)
    assert (shown["title"], shown["is_public"], shown["owner_email"]) == ("Road Trip", False, ADA.email)
    assert shown["song_count"] == 5 and shown["total_duration_s"] == 195 + 210 + 178 + 260 + 300
    assert shown["songs"][0]["title"] == "Golden Hour" and shown["songs"][0]["artist_name"] == "Mira Sol"


def test_music_playlists_are_private_unless_public(world):
    ada, bo = Session(world, "music", ADA), Session(world, "music", BO)
    secret = bo("create_playlist", title="Secret")["playlist_id"]
    shared = bo("create_playlist", title="Party", is_public=True)["playlist_id"]
    bo("add_song_to_playlist", playlist_id=shared, song_id=GOLDEN)
    mine = ada("create_playlist", title="Mine")["playlist_id"]

    for api, extra in (("show_playlist", {}), ("rename_playlist", {"title": "x"}), ("delete_playlist", {}),
                       ("add_song_to_playlist", {"song_id": 1}), ("remove_song_from_playlist", {"song_id": 1}),
                       ("move_song_in_playlist", {"song_id": 1, "position": 1})):
        with pytest.raises(NotFound, match=f"no playlist with playlist_id {secret}"):
            ada(api, playlist_id=secret, **extra)
    assert ada("show_playlist", playlist_id=shared)["songs"][0]["song_id"] == GOLDEN
    for api, extra in (("rename_playlist", {"title": "x"}), ("delete_playlist", {}),
                       ("add_song_to_playlist", {"song_id": 1}), ("remove_song_from_playlist", {"song_id": GOLDEN}),
                       ("move_song_in_playlist", {"song_id": GOLDEN, "position": 1})):
        with pytest.raises(Forbidden, match="belongs to another user; you can only change your own playlists"):
            ada(api, playlist_id=shared, **extra)

    assert ids(ada("show_playlist_library"), "playlist_id") == [mine]
    assert ids(bo("show_playlist_library"), "title") == ["Secret", "Party"]
    assert ids(bo("show_playlist_library", query="par"), "playlist_id") == [shared]
    assert bo("show_playlist_library", page_index=1, page_limit=1)[0]["is_public"] is True

    with pytest.raises(Conflict, match="you already have a playlist titled 'party'"):
        bo("create_playlist", title="party")
    ada("create_playlist", title="Party")  # titles are per user
    with pytest.raises(Unprocessable, match="title must not be empty"):
        ada("create_playlist", title="   ")
    with pytest.raises(Unprocessable, match="at most 100 characters"):
        ada("create_playlist", title="x" * 101)
    with pytest.raises(Conflict, match="titled 'Secret'"):
        bo("rename_playlist", playlist_id=shared, title="Secret")
    bo("rename_playlist", playlist_id=shared, title="PARTY")  # its own title, re-cased
    assert bo("show_playlist", playlist_id=shared)["title"] == "PARTY"
    bo("delete_playlist", playlist_id=shared)
    with pytest.raises(NotFound):
        bo("show_playlist", playlist_id=shared)
    assert world.db.execute("SELECT COUNT(*) FROM music_playlist_songs").fetchone()[0] == 0


def test_music_following(world):
    ada, bo = Session(world, "music", ADA), Session(world, "music", BO)
    ada("follow_artist", artist_id=3)
    ada("follow_artist", artist_id=1)
    bo("follow_artist", artist_id=1)
    with pytest.raises(Conflict, match="you already follow artist 1"):
        ada("follow_artist", artist_id=1)
    with pytest.raises(NotFound, match="no artist with artist_id 8"):
        ada("follow_artist", artist_id=8)
    following = ada("show_following_artists")
    assert ids(following, "artist_id") == [1, 3] and following[0]["followed_at"] == NOW
    assert following[0]["follower_count"] == 2
    assert ids(public(world, "music", "search_artists", sort_by="follower_count"), "artist_id") == [1, 3, 2]
    ada("unfollow_artist", artist_id=1)
    with pytest.raises(NotFound, match="you do not follow artist 1"):
        ada("unfollow_artist", artist_id=1)
    assert ids(ada("show_following_artists"), "artist_id") == [3]
    assert public(world, "music", "show_artist", artist_id=1)["follower_count"] == 1


def test_music_plays_and_history(world):
    ada, bo = Session(world, "music", ADA), Session(world, "music", BO)
    assert ada("play_song", song_id=HEADLIGHTS) == {"play_id": 1, "play_count": 501, "message": "Now playing."}
    world.now = "2024-05-15T10:04:00"
    ada("play_song", song_id=SLOW)
    assert bo("play_song", song_id=HEADLIGHTS)["play_count"] == 502
    ada("play_song", song_id=HEADLIGHTS)
    assert public(world, "music", "show_song", song_id=HEADLIGHTS)["play_count"] == 503
    assert public(world, "music", "show_album", album_id=1)["play_count"] == 1523
    history = ada("show_recently_played")
    assert ids(history, "song_id") == [HEADLIGHTS, SLOW, HEADLIGHTS]
    assert ids(history, "play_id") == [4, 2, 1] and history[-1]["played_at"] == NOW
    assert history[0]["played_at"] == "2024-05-15T10:04:00" and history[0]["title"] == "Headlights"
    assert ids(ada("show_recently_played", page_index=1, page_limit=2), "play_id") == [1]
    assert ids(bo("show_recently_played"), "play_id") == [3]
    with pytest.raises(NotFound):
        ada("play_song", song_id=11)
    assert public(world, "music", "search_songs", sort_by="play_count")[1]["song_id"] == MILE_MARKER


def test_music_ratings(world):
    ada, bo = Session(world, "music", ADA), Session(world, "music", BO)
    assert ada("show_song_rating", song_id=PAPER) == {"song_id": PAPER, "rating": None, "rated_at": None}
    ada("rate_song", song_id=PAPER, rating=5)
    ada("rate_song", song_id=PAPER, rating=3)  # replaces
    bo("rate_song", song_id=PAPER, rating=4)
    assert ada("show_song_rating", song_id=PAPER) == {"song_id": PAPER, "rating": 3, "rated_at": NOW}
    song = public(world, "music", "show_song", song_id=PAPER)
    assert (song["average_rating"], song["rating_count"]) == (3.5, 2)
    for bad in (0, 6):
        with pytest.raises(Unprocessable, match="rating must be an integer from 1 to 5"):
            ada("rate_song", song_id=PAPER, rating=bad)
    with pytest.raises(Unprocessable, match="rating must be of type integer"):
        ada("rate_song", song_id=PAPER, rating=4.5)
    with pytest.raises(NotFound):
        ada("show_song_rating", song_id=0)


# ------------------------------------------------------------------------------------------------- notes


def test_notes_create_show_search(world):
    ada, bo = Session(world, "notes", ADA), Session(world, "notes", BO)
    first = ada("create_note", title="Groceries", content="milk", tags=["Home", " errands ", "home"])
    assert first == {"note_id": 1, "message": "Note created."}
    world.now = "2024-05-15T11:00:00"
    ada("create_note", title="Trip plan", content="Book the train to Lyon", tags=["travel"])
    ada("create_note", title="Gift ideas", pinned=True)
    bo("create_note", title="Bo's groceries", content="milk")
    note = ada("show_note", note_id=1)
    assert note == {"note_id": 1, "title": "Groceries", "content": "milk", "tags": ["errands", "home"],
                    "pinned": False, "owner_email": ADA.email, "read_only": False, "shared_with": [],
                    "created_at": NOW, "updated_at": NOW}
    # pinned first, then most recently updated
    assert ids(ada("search_notes"), "note_id") == [3, 2, 1]
    assert ids(ada("search_notes", query="MILK"), "note_id") == [1]  # Bo's note is not searched
    assert ids(ada("search_notes", query="lyon"), "note_id") == [2]
    assert ids(ada("search_notes", tag="HOME"), "note_id") == [1]
    assert ids(ada("search_notes", pinned=False), "note_id") == [2, 1]
    assert ids(ada("search_notes", page_index=1, page_limit=2), "note_id") == [1]
    assert ada("search_notes", page_limit=1)[0] == {"note_id": 3, "title": "Gift ideas", "tags": [],
                                                    "pinned": True, "owner_email": ADA.email,
                                                    "created_at": "2024-05-15T11:00:00",
                                                    "updated_at": "2024-05-15T11:00:00"}
    with pytest.raises(Unprocessable, match="title must not be empty"):
        ada("create_note", title=" ")
    with pytest.raises(Unprocessable, match="tags must not be empty"):
        ada("create_note", title="x", tags=["ok", ""])
    with pytest.raises(NotFound, match="no note with note_id 4; find your notes with notes.search_notes"):
        ada("show_note", note_id=4)  # Bo's
    with pytest.raises(Unprocessable, match="page_limit must be between 1 and 20"):
        ada("search_notes", page_limit=0)


def test_notes_edit_tags_pin_delete(world):
    ada, bo = Session(world, "notes", ADA), Session(world, "notes", BO)
    ada("create_note", title="Log", tags=["work"])
    ada("create_note", title="Other", tags=["work", "misc"])
    world.now = "2024-05-16T09:00:00"
    ada("append_to_note", note_id=1, text="first line")
    ada("append_to_note", note_id=1, text="second line")
    assert ada("show_note", note_id=1)["content"] == "first line\nsecond line"
    assert ids(ada("search_notes"), "note_id") == [1, 2]  # updated most recently
    with pytest.raises(Unprocessable, match="text must not be empty"):
        ada("append_to_note", note_id=1, text="  ")
    ada("update_note", note_id=1, title="Work log")
    ada("update_note", note_id=1, content="rewritten")
    note = ada("show_note", note_id=1)
    assert (note["title"], note["content"], note["updated_at"]) == ("Work log", "rewritten", "2024-05-16T09:00:00")
    with pytest.raises(Unprocessable, match="give title and/or content"):
        ada("update_note", note_id=1)
    with pytest.raises(Unprocessable, match="title must not be empty"):
        ada("update_note", note_id=1, title="")

    ada("add_tag", note_id=1, tag="Urgent")
    with pytest.raises(Conflict, match="note 1 already has the tag 'urgent'"):
        ada("add_tag", note_id=1, tag="urgent ")
    assert ada("show_tags") == [{"tag": "misc", "note_count": 1}, {"tag": "urgent", "note_count": 1},
                                {"tag": "work", "note_count": 2}]
    ada("remove_tag", note_id=1, tag="work")
    with pytest.raises(NotFound, match="note 1 has no tag 'work'"):
        ada("remove_tag", note_id=1, tag="work")
    assert ada("show_note", note_id=1)["tags"] == ["urgent"]

    ada("pin_note", note_id=2)
    with pytest.raises(Conflict, match="note 2 is already pinned"):
        ada("pin_note", note_id=2)
    assert ids(ada("search_notes", pinned=True), "note_id") == [2]
    ada("unpin_note", note_id=2)
    with pytest.raises(Conflict, match="note 2 is already unpinned"):
        ada("unpin_note", note_id=2)

    for api, extra in (("update_note", {"title": "x"}), ("append_to_note", {"text": "x"}),
                       ("add_tag", {"tag": "x"}), ("remove_tag", {"tag": "misc"}), ("pin_note", {}),
                       ("unpin_note", {}), ("delete_note", {}), ("share_note", {"email": CY.email})):
        with pytest.raises(NotFound, match="no note with note_id 2"):
            bo(api, note_id=2, **extra)
    assert bo("show_tags") == []

    ada("delete_note", note_id=2)
    with pytest.raises(NotFound):
        ada("show_note", note_id=2)
    assert ada("show_tags") == [{"tag": "urgent", "note_count": 1}]


def test_notes_sharing_is_read_only(world):
    ada, bo, cy = (Session(world, "notes", p) for p in (ADA, BO, CY))
    ada("create_note", title="Wifi password", content="hunter22", tags=["home"])
    ada("create_note", title="Plans")
    ada("share_note", note_id=1, email=BO.email)
    ada("share_note", note_id=2, email=BO.email)
    ada("share_note", note_id=1, email=CY.email)
    with pytest.raises(Conflict, match=f"note 1 is already shared with {BO.email}"):
        ada("share_note", note_id=1, email=BO.email)
    with pytest.raises(Unprocessable, match="cannot share a note with yourself"):
        ada("share_note", note_id=1, email=ADA.email)
    with pytest.raises(NotFound, match=f"no notes user with email {DI.email}"):
        ada("share_note", note_id=1, email=DI.email)

    assert ada("show_note", note_id=1)["shared_with"] == [BO.email, CY.email]
    seen = bo("show_note", note_id=1)
    assert (seen["content"], seen["read_only"], seen["shared_with"], seen["owner_email"]) == (
        "hunter22", True, [], ADA.email)
    shared = bo("show_shared_notes")
    assert ids(shared, "note_id") == [2, 1] and shared[1]["tags"] == ["home"] and shared[1]["shared_at"] == NOW
    assert ids(bo("show_shared_notes", page_index=1, page_limit=1), "note_id") == [1]
    assert bo("search_notes") == [] and ada("show_shared_notes") == []
    for api, extra in (("update_note", {"content": "x"}), ("append_to_note", {"text": "x"}),
                       ("add_tag", {"tag": "x"}), ("pin_note", {}), ("delete_note", {}),
                       ("share_note", {"email": CY.email}), ("unshare_note", {"email": BO.email})):
        with pytest.raises(Forbidden, match="shared with you read-only"):
            bo(api, note_id=1, **extra)
    with pytest.raises(NotFound):
        cy("show_note", note_id=2)

    ada("unshare_note", note_id=1, email=BO.email)
    with pytest.raises(NotFound, match=f"note 1 is not shared with {BO.email}"):
        ada("unshare_note", note_id=1, email=BO.email)
    with pytest.raises(NotFound):
        bo("show_note", note_id=1)
    assert ids(bo("show_shared_notes"), "note_id") == [2]
    ada("delete_note", note_id=2)
    assert bo("show_shared_notes") == []


# -------------------------------------------------------------------------------------------------- todo


def test_todo_projects(world):
    ada, bo = Session(world, "todo", ADA), Session(world, "todo", BO)
    assert ada("create_project", name="Home") == {"project_id": 1, "message": "Project created."}
    ada("create_project", name="Work")
    bo("create_project", name="Home")  # names are per user
    with pytest.raises(Conflict, match="you already have a project named 'home' \\(project_id 1\\)"):
        ada("create_project", name="home")
    with pytest.raises(Unprocessable, match="name must not be empty"):
        ada("create_project", name="")
    ada("rename_project", project_id=2, name="Office")
    with pytest.raises(Conflict, match="named 'Home'"):
        ada("rename_project", project_id=2, name="Home")
    ada("create_task", title="Fix sink", project_id=1)
    ada("create_task", title="Done already", project_id=1)
    ada("mark_task_complete", task_id=2)
    projects = ada("show_projects")
    assert projects[0] == {"project_id": 1, "name": "Home", "archived": False, "open_task_count": 1,
                           "completed_task_count": 1, "created_at": NOW}
    assert ids(projects, "name") == ["Home", "Office"]
    assert ids(ada("show_projects", page_index=1, page_limit=1), "project_id") == [2]

    ada("archive_project", project_id=2)
    with pytest.raises(Conflict, match="project 2 is already archived"):
        ada("archive_project", project_id=2)
    assert ids(ada("show_projects"), "project_id") == [1]
    assert ids(ada("show_projects", include_archived=True), "archived") == [False, True]
    with pytest.raises(Unprocessable, match="project 2 \\('Office'\\) is archived.*todo.unarchive_project"):
        ada("create_task", title="x", project_id=2)
    with pytest.raises(Unprocessable, match="is archived"):
        ada("update_task", task_id=1, project_id=2)
    ada("unarchive_project", project_id=2)
    with pytest.raises(Conflict, match="project 2 is already not archived"):
        ada("unarchive_project", project_id=2)

    for api, extra in (("rename_project", {"name": "x"}), ("archive_project", {}), ("unarchive_project", {}),
                       ("delete_project", {})):
        with pytest.raises(NotFound, match="no project with project_id 1"):
            bo(api, project_id=1, **extra)
    with pytest.raises(NotFound, match="no project with project_id 3"):
        ada("create_task", title="x", project_id=3)  # Bo's project

    ada("add_task_comment", task_id=1, text="call the plumber")
    with pytest.raises(Conflict, match="project 1 has 2 tasks: pass delete_tasks=true"):
        ada("delete_project", project_id=1)
    assert ada("delete_project", project_id=1, delete_tasks=True) == {"message": "Project deleted with 2 tasks."}
    assert ada("delete_project", project_id=2)["message"] == "Project deleted with 0 tasks."
    assert ada("show_projects", include_archived=True) == [] and ada("search_tasks") == []
    assert world.db.execute("SELECT COUNT(*) FROM todo_comments").fetchone()[0] == 0


def test_todo_tasks_create_show_update(world):
    ada, bo = Session(world, "todo", ADA), Session(world, "todo", BO)
    ada("create_project", name="Home")
    created = ada("create_task", title=" Pay rent ", description="to the landlord", due_date="2024-06-01",
                  priority=1, labels=["Bills", "home", "bills"], project_id=1)
    assert created == {"task_id": 1, "message": "Task created."}
    task = ada("show_task", task_id=1)
    assert task == {"task_id": 1, "title": "Pay rent", "description": "to the landlord", "project_id": 1,
                    "project_name": "Home", "due_date": "2024-06-01", "priority": 1, "labels": ["bills", "home"],
                    "completed": False, "completed_at": None, "comment_count": 0, "created_at": NOW,
                    "updated_at": NOW}
    plain = ada("show_task", task_id=ada("create_task", title="Call mum")["task_id"])
    assert (plain["priority"], plain["project_id"], plain["due_date"], plain["labels"]) == (4, None, None, [])

    for kwargs, message in (({"due_date": "2024-13-01"}, "due_date must be a date YYYY-MM-DD"),
                            ({"due_date": "20240601"}, "due_date must be a date"),
                            ({"priority": 0}, "priority must be 1 \\(urgent\\), 2, 3 or 4"),
                            ({"priority": 5}, "priority must be"), ({"labels": [" "]}, "labels must not be empty")):
        with pytest.raises(Unprocessable, match=message):
            ada("create_task", title="x", **kwargs)
    with pytest.raises(Unprocessable, match="title must not be empty"):
        ada("create_task", title="")

    world.now = "2024-05-15T12:00:00"
    ada("update_task", task_id=1, title="Pay June rent", priority=2, labels=["money"], description="")
    task = ada("show_task", task_id=1)
    assert (task["title"], task["priority"], task["labels"], task["description"], task["updated_at"]) == (
        "Pay June rent", 2, ["money"], "", "2024-05-15T12:00:00")
    ada("update_task", task_id=1, due_date="", project_id=0)
    task = ada("show_task", task_id=1)
    assert (task["due_date"], task["project_id"], task["project_name"]) == (None, None, None)
    ada("update_task", task_id=1, project_id=1, due_date="2024-06-30")
    assert ada("show_task", task_id=1)["project_name"] == "Home"
    ada("update_task", task_id=1, labels=[])
    assert ada("show_task", task_id=1)["labels"] == []
    with pytest.raises(Unprocessable, match="give at least one of title"):
        ada("update_task", task_id=1)
    with pytest.raises(Unprocessable, match="priority must be"):
        ada("update_task", task_id=1, priority=9)
    with pytest.raises(NotFound, match="no project with project_id 5"):
        ada("update_task", task_id=1, project_id=5)

    for api, extra in (("show_task", {}), ("update_task", {"title": "x"}), ("mark_task_complete", {}),
                       ("mark_task_incomplete", {}), ("delete_task", {}), ("add_task_comment", {"text": "x"}),
                       ("show_task_comments", {})):
        with pytest.raises(NotFound, match="no task with task_id 1; find your tasks with todo.search_tasks"):
            bo(api, task_id=1, **extra)

    ada("mark_task_complete", task_id=2)
    with pytest.raises(Conflict, match="task 2 is already completed"):
        ada("mark_task_complete", task_id=2)
    done = ada("show_task", task_id=2)
    assert (done["completed"], done["completed_at"]) == (True, "2024-05-15T12:00:00")
    ada("mark_task_incomplete", task_id=2)
    with pytest.raises(Conflict, match="task 2 is not completed"):
        ada("mark_task_incomplete", task_id=2)
    assert ada("show_task", task_id=2)["completed_at"] is None
    ada("delete_task", task_id=2)
    with pytest.raises(NotFound):
        ada("show_task", task_id=2)


def test_todo_search_filters_order_and_labels(world):
    ada, bo = Session(world, "todo", ADA), Session(world, "todo", BO)
    ada("create_project", name="Home")
    ada("create_project", name="Work")
    specs = [("Taxes", "2024-06-01", 1, ["bills"], 2), ("Dentist", "2024-05-20", 3, ["health"], None),
             ("Report", "2024-05-20", 2, ["work"], 2), ("Read novel", None, 4, [], None),
             ("Water plants", "2024-05-16", 4, ["home", "chores"], 1), ("Gym", "2024-05-10", 2, ["health"], None)]
    for title, due, priority, labels, project in specs:
        ada("create_task", title=title, due_date=due, priority=priority, labels=labels, project_id=project)
    bo("create_task", title="Bo's taxes", labels=["bills"])
    ada("mark_task_complete", task_id=6)

    assert ids(ada("search_tasks", page_limit=20), "title") == [
        "Water plants", "Report", "Dentist", "Taxes", "Read novel", "Gym"]  # open first, due, priority, id
    assert ids(ada("search_tasks", page_index=1, page_limit=4), "task_id") == [4, 6]
    assert ids(ada("search_tasks", project_id=2), "task_id") == [3, 1]
    assert ids(ada("search_tasks", label="HEALTH"), "task_id") == [2, 6]
    assert ids(ada("search_tasks", completed=True), "task_id") == [6]
    assert ids(ada("search_tasks", completed=False, label="health"), "task_id") == [2]
    assert ids(ada("search_tasks", due_before="2024-05-20", completed=False), "task_id") == [5, 3, 2]
    assert ids(ada("search_tasks", due_after="2024-05-20"), "task_id") == [3, 2, 1]
    assert ids(ada("search_tasks", due_after="2024-05-11", due_before="2024-05-19"), "task_id") == [5]
    assert ids(ada("search_tasks", priority=2), "task_id") == [3, 6]
    assert ids(ada("search_tasks", query="TAX"), "task_id") == [1]  # not Bo's
    with pytest.raises(Unprocessable, match="due_before must be a date YYYY-MM-DD"):
        ada("search_tasks", due_before="May 20")
    with pytest.raises(Unprocessable, match="priority must be"):
        ada("search_tasks", priority=7)
    with pytest.raises(NotFound, match="no project with project_id 9"):
        ada("search_tasks", project_id=9)
    with pytest.raises(Unprocessable, match="page_limit must be between 1 and 20"):
        ada("search_tasks", page_limit=25)

    assert ada("show_labels") == [
        {"label": "bills", "task_count": 1, "open_task_count": 1},
        {"label": "chores", "task_count": 1, "open_task_count": 1},
        {"label": "health", "task_count": 2, "open_task_count": 1},
        {"label": "home", "task_count": 1, "open_task_count": 1},
        {"label": "work", "task_count": 1, "open_task_count": 1}]
    assert bo("show_labels") == [{"label": "bills", "task_count": 1, "open_task_count": 1}]


def test_todo_comments(world):
    ada = Session(world, "todo", ADA)
    ada("create_task", title="Plan party")
    assert ada("add_task_comment", task_id=1, text="book the hall") == {"comment_id": 1,
                                                                        "message": "Comment added."}
    world.now = "2024-05-15T13:00:00"
    ada("add_task_comment", task_id=1, text="order cake")
    ada("add_task_comment", task_id=1, text="send invites")
    comments = ada("show_task_comments", task_id=1)
    assert ids(comments, "text") == ["book the hall", "order cake", "send invites"]
    assert comments[0] == {"comment_id": 1, "task_id": 1, "author": ADA.email, "text": "book the hall",
                           "created_at": NOW}
    assert ids(ada("show_task_comments", task_id=1, page_index=1, page_limit=2), "comment_id") == [3]
    assert ada("show_task", task_id=1)["comment_count"] == 3
    with pytest.raises(Unprocessable, match="text must not be empty"):
        ada("add_task_comment", task_id=1, text=" ")
    with pytest.raises(NotFound):
        ada("add_task_comment", task_id=2, text="x")


# --------------------------------------------------------------------------------------------- atomicity


def test_failing_calls_change_nothing(world):
    music, notes, todo = (Session(world, app, ADA) for app in ("music", "notes", "todo"))
    pid = music("create_playlist", title="Mix")["playlist_id"]
    music("add_song_to_playlist", playlist_id=pid, song_id=1)
    notes("create_note", title="n", tags=["a"])
    todo("create_project", name="P")
    todo("create_task", title="t", project_id=1)
    bo_music = Session(world, "music", BO)
    before = snapshot(world.db)
    failing = [
        (music, "add_song_to_playlist", {"playlist_id": pid, "song_id": 2, "position": 9}),
        (music, "add_song_to_playlist", {"playlist_id": pid, "song_id": 1}),
        (music, "move_song_in_playlist", {"playlist_id": pid, "song_id": 1, "position": 2}),
        (bo_music, "delete_playlist", {"playlist_id": pid}),
        (music, "play_song", {"song_id": 404}),
        (music, "rate_song", {"song_id": 1, "rating": 9}),
        (music, "create_playlist", {"title": "mix"}),
        (notes, "create_note", {"title": "x", "tags": ["ok", " "]}),
        (notes, "update_note", {"note_id": 1, "title": " "}),
        (notes, "add_tag", {"note_id": 1, "tag": "A"}),
        (notes, "share_note", {"note_id": 1, "email": DI.email}),
        (todo, "delete_project", {"project_id": 1}),
        (todo, "update_task", {"task_id": 1, "labels": ["x"], "due_date": "2024-02-30"}),
        (todo, "create_task", {"title": "y", "labels": ["x"], "priority": 0}),
        (todo, "mark_task_incomplete", {"task_id": 1}),
    ]
    for session, api, kwargs in failing:
        with pytest.raises((Unprocessable, Conflict, NotFound, Forbidden)):
            session(api, **kwargs)
        assert snapshot(world.db) == before, api
    music("play_song", song_id=1)
    changes = diff(before, snapshot(world.db))
    assert sorted(changes) == ["music_plays", "music_songs"]
    assert changes["music_plays"].added == ((1, ADA.email, 1, NOW),)
