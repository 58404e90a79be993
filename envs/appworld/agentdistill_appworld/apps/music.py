"""``music``: a music streaming app — a shared catalogue of artists, albums and songs, and each user's library,
liked songs, playlists, followed artists, play history and song ratings. The username is the email.

Tables (every per-user row has an ``owner`` column holding the username, i.e. the email):

- ``music_artists`` (artist_id, name, genre), ``music_albums`` (album_id, title, artist_id, genre,
  release_date), ``music_songs`` (song_id, title, artist_id, album_id or NULL for a single, track_number,
  genre, duration_s, release_date, play_count): the catalogue, shared by every user (no owner).
- ``music_library_songs`` / ``music_library_albums`` (entry_id, owner, song_id / album_id, added_at),
  ``music_liked_songs`` (entry_id, owner, song_id, liked_at), ``music_following`` (entry_id, owner,
  artist_id, followed_at): one row per (owner, item).
- ``music_playlists`` (playlist_id, owner, title, is_public, created_at, updated_at) and
  ``music_playlist_songs`` (entry_id, playlist_id, song_id, position, added_at); positions run 1..n without
  gaps and a song appears at most once in a playlist.
- ``music_plays`` (play_id, owner, song_id, played_at): the play history; every ``play_song`` adds a row with
  the frozen time and adds one to the song's ``play_count``.
- ``music_ratings`` (owner, song_id, rating 1-5, rated_at): one rating per user and song.

Conventions: catalogue APIs (search and show songs, albums, artists) need no login; everything per-user does.
Another user's private playlist is invisible (404); another user's public playlist can be shown but not changed
(403). Dates are YYYY-MM-DD, times ISO. Lists are ordered deterministically: catalogue searches by id unless
``sort_by`` is given (ties by id), per-user lists newest first (time, then insertion order).

The world builder fills the catalogue with ``Music.add_catalogue`` (nested artists → albums → songs, plus
singles) or the lower-level ``add_artist`` / ``add_album`` / ``add_song``; per-user rows can be inserted into the
tables above directly.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from agentdistill_appworld.framework import (
    PAGE_DOCS,
    AccountApp,
    Conflict,
    Forbidden,
    NotFound,
    Unprocessable,
    api,
    paginate,
)
from agentdistill_appworld.values import clean_text

SONG = {"song_id": "integer", "title": "string", "artist_id": "integer", "artist_name": "string",
        "album_id": "integer (null for a single)", "album_title": "string (null for a single)",
        "track_number": "integer", "genre": "string", "duration_s": "integer", "release_date": "string",
        "play_count": "integer", "average_rating": "number (null when unrated)", "rating_count": "integer"}
ALBUM = {"album_id": "integer", "title": "string", "artist_id": "integer", "artist_name": "string",
         "genre": "string", "release_date": "string", "song_count": "integer", "total_duration_s": "integer",
         "play_count": "integer"}
ALBUM_DETAIL = {**ALBUM, "song_ids": ["integer"]}
ARTIST = {"artist_id": "integer", "name": "string", "genre": "string", "follower_count": "integer",
          "album_count": "integer", "song_count": "integer", "play_count": "integer"}
ARTIST_DETAIL = {**ARTIST, "album_ids": ["integer"], "song_ids": ["integer"]}
LIBRARY_SONG = {**SONG, "added_at": "string"}
LIBRARY_ALBUM = {**ALBUM, "added_at": "string"}
LIKED_SONG = {**SONG, "liked_at": "string"}
FOLLOWED_ARTIST = {**ARTIST, "followed_at": "string"}
PLAYED_SONG = {"play_id": "integer", "played_at": "string", **SONG}
PLAYLIST = {"playlist_id": "integer", "title": "string", "owner_email": "string", "is_public": "boolean",
            "song_count": "integer", "total_duration_s": "integer", "created_at": "string", "updated_at": "string"}
PLAYLIST_DETAIL = {**PLAYLIST, "songs": [{"position": "integer", **SONG}]}
MESSAGE = {"message": "string"}
RATING = {"song_id": "integer", "rating": "integer (null when you have not rated it)",
          "rated_at": "string (null when you have not rated it)"}

SONG_SELECT = """
    SELECT s.song_id, s.title, s.artist_id, ar.name AS artist_name, s.album_id, al.title AS album_title,
           s.track_number, s.genre, s.duration_s, s.release_date, s.play_count,
           (SELECT ROUND(AVG(r.rating), 2) FROM music_ratings r WHERE r.song_id = s.song_id) AS average_rating,
           (SELECT COUNT(*) FROM music_ratings r WHERE r.song_id = s.song_id) AS rating_count
    FROM music_songs s JOIN music_artists ar ON ar.artist_id = s.artist_id
    LEFT JOIN music_albums al ON al.album_id = s.album_id
"""
ALBUM_SELECT = """
    SELECT a.album_id, a.title, a.artist_id, ar.name AS artist_name, a.genre, a.release_date,
           (SELECT COUNT(*) FROM music_songs s WHERE s.album_id = a.album_id) AS song_count,
           (SELECT COALESCE(SUM(s.duration_s), 0) FROM music_songs s WHERE s.album_id = a.album_id)
               AS total_duration_s,
           (SELECT COALESCE(SUM(s.play_count), 0) FROM music_songs s WHERE s.album_id = a.album_id) AS play_count
    FROM music_albums a JOIN music_artists ar ON ar.artist_id = a.artist_id
"""
ARTIST_SELECT = """
    SELECT ar.artist_id, ar.name, ar.genre,
           (SELECT COUNT(*) FROM music_following f WHERE f.artist_id = ar.artist_id) AS follower_count,
           (SELECT COUNT(*) FROM music_albums a WHERE a.artist_id = ar.artist_id) AS album_count,
           (SELECT COUNT(*) FROM music_songs s WHERE s.artist_id = ar.artist_id) AS song_count,
           (SELECT COALESCE(SUM(s.play_count), 0) FROM music_songs s WHERE s.artist_id = ar.artist_id)
               AS play_count
    FROM music_artists ar
"""
PLAYLIST_SELECT = """
    SELECT p.playlist_id, p.title, p.owner AS owner_email, p.is_public,
           (SELECT COUNT(*) FROM music_playlist_songs ps WHERE ps.playlist_id = p.playlist_id) AS song_count,
           (SELECT COALESCE(SUM(s.duration_s), 0) FROM music_playlist_songs ps
               JOIN music_songs s ON s.song_id = ps.song_id WHERE ps.playlist_id = p.playlist_id) AS total_duration_s,
           p.created_at, p.updated_at
    FROM music_playlists p
"""

SONG_SORTS = ("play_count", "release_date")
ALBUM_SORTS = ("play_count", "release_date")
ARTIST_SORTS = ("follower_count", "play_count")
MAX_TITLE = 100


def _playlist(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row["is_public"] = bool(row["is_public"])
    return row


def _order(sort_by: str | None, allowed: tuple[str, ...], prefix: str, id_column: str, descending: bool) -> str:
    if sort_by is None:
        return id_column
    if sort_by not in allowed:
        raise Unprocessable(f"sort_by must be one of {list(allowed)} or null (catalogue order), got {sort_by!r}")
    return f"{prefix}{sort_by} {'DESC' if descending else 'ASC'}, {id_column}"


def _check_date(value: str, what: str) -> None:
    try:
        ok = len(value) == 10 and date.fromisoformat(value) is not None
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{what} must be a date YYYY-MM-DD, got {value!r}")



class Music(AccountApp):
    name = "music"
    description = ("Music streaming: search songs, albums and artists; your library, liked songs, playlists, "
                   "followed artists, play history and song ratings.")
    tables = """
        CREATE TABLE music_artists (artist_id INTEGER PRIMARY KEY, name TEXT NOT NULL, genre TEXT NOT NULL);
        CREATE TABLE music_albums (album_id INTEGER PRIMARY KEY, title TEXT NOT NULL,
            artist_id INTEGER NOT NULL REFERENCES music_artists(artist_id), genre TEXT NOT NULL,
            release_date TEXT NOT NULL);
        CREATE TABLE music_songs (song_id INTEGER PRIMARY KEY, title TEXT NOT NULL,
            artist_id INTEGER NOT NULL REFERENCES music_artists(artist_id),
            album_id INTEGER REFERENCES music_albums(album_id), track_number INTEGER, genre TEXT NOT NULL,
            duration_s INTEGER NOT NULL, release_date TEXT NOT NULL, play_count INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE music_library_songs (entry_id INTEGER PRIMARY KEY, owner TEXT NOT NULL,
            song_id INTEGER NOT NULL, added_at TEXT NOT NULL, UNIQUE (owner, song_id));
        CREATE TABLE music_library_albums (entry_id INTEGER PRIMARY KEY, owner TEXT NOT NULL,
            album_id INTEGER NOT NULL, added_at TEXT NOT NULL, UNIQUE (owner, album_id));
        CREATE TABLE music_liked_songs (entry_id INTEGER PRIMARY KEY, owner TEXT NOT NULL,
            song_id INTEGER NOT NULL, liked_at TEXT NOT NULL, UNIQUE (owner, song_id));
        CREATE TABLE music_following (entry_id INTEGER PRIMARY KEY, owner TEXT NOT NULL,
            artist_id INTEGER NOT NULL, followed_at TEXT NOT NULL, UNIQUE (owner, artist_id));
        CREATE TABLE music_playlists (playlist_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL,
            is_public INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
        CREATE TABLE music_playlist_songs (entry_id INTEGER PRIMARY KEY, playlist_id INTEGER NOT NULL,
            song_id INTEGER NOT NULL, position INTEGER NOT NULL, added_at TEXT NOT NULL,
            UNIQUE (playlist_id, song_id));
        CREATE TABLE music_plays (play_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, song_id INTEGER NOT NULL,
            played_at TEXT NOT NULL);
        CREATE TABLE music_ratings (owner TEXT NOT NULL, song_id INTEGER NOT NULL, rating INTEGER NOT NULL,
            rated_at TEXT NOT NULL, PRIMARY KEY (owner, song_id));
    """

    # ------------------------------------------------------------------------------------- seeding (not APIs)

    def add_artist(self, name: str, genre: str) -> int:
        """Insert an artist into the catalogue; returns its artist_id."""
        if not name.strip() or not genre.strip():
            raise ValueError("an artist needs a name and a genre")
        return self.insert("music_artists", {"name": name, "genre": genre.lower()})

    def add_album(self, title: str, artist_id: int, release_date: str, genre: str | None = None) -> int:
        """Insert an album (genre defaults to the artist's); returns its album_id."""
        artist = self.row("SELECT genre FROM music_artists WHERE artist_id = ?", (artist_id,))
        if artist is None:
            raise ValueError(f"no artist with artist_id {artist_id}")
        _check_date(release_date, "release_date")
        return self.insert("music_albums", {"title": title, "artist_id": artist_id,
                                            "genre": (genre or artist["genre"]).lower(),
                                            "release_date": release_date})

    def add_song(self, title: str, artist_id: int, duration_s: int, *, album_id: int | None = None,
                 release_date: str | None = None, genre: str | None = None, play_count: int = 0,
                 track_number: int | None = None) -> int:
        """Insert a song; returns its song_id.

        On an album, genre and release_date default to the album's and track_number to the next free one; a
        single (no album) needs a release_date and takes the artist's genre by default.
        """
        artist = self.row("SELECT genre FROM music_artists WHERE artist_id = ?", (artist_id,))
        if artist is None:
            raise ValueError(f"no artist with artist_id {artist_id}")
        if duration_s <= 0 or play_count < 0:
            raise ValueError("duration_s must be > 0 and play_count >= 0")
        if album_id is not None:
            album = self.row("SELECT * FROM music_albums WHERE album_id = ?", (album_id,))
            if album is None or album["artist_id"] != artist_id:
                raise ValueError(f"album {album_id} does not exist or is not by artist {artist_id}")
            genre = genre or album["genre"]
            release_date = release_date or album["release_date"]
            if track_number is None:
                track_number = self.row("SELECT COALESCE(MAX(track_number), 0) + 1 AS n FROM music_songs "
                                        "WHERE album_id = ?", (album_id,))["n"]
        if release_date is None:
            raise ValueError(f"the single {title!r} needs a release_date")
        _check_date(release_date, "release_date")
        return self.insert("music_songs", {"title": title, "artist_id": artist_id, "album_id": album_id,
                                           "track_number": track_number, "genre": (genre or artist["genre"]).lower(),
                                           "duration_s": duration_s, "release_date": release_date,
                                           "play_count": play_count})

    def add_catalogue(self, artists: list[dict[str, Any]]) -> dict[str, dict]:
        """Insert a nested catalogue and return the new ids.

        ``artists`` is a list of ``{"name", "genre", "albums": [{"title", "release_date", "genre"?, "songs":
        [{"title", "duration_s", "play_count"?, "genre"?}]}], "singles": [{"title", "duration_s",
        "release_date", "play_count"?, "genre"?}]}`` ("albums" and "singles" are optional; album songs get track
        numbers in list order). Returns ``{"artists": {name: id}, "albums": {(artist name, album title): id},
        "songs": {(artist name, song title): id}}``.
        """
        ids: dict[str, dict] = {"artists": {}, "albums": {}, "songs": {}}
        for artist in artists:
            artist_id = self.add_artist(artist["name"], artist["genre"])
            ids["artists"][artist["name"]] = artist_id
            for album in artist.get("albums", []):
                album_id = self.add_album(album["title"], artist_id, album["release_date"], album.get("genre"))
                ids["albums"][(artist["name"], album["title"])] = album_id
                for song in album.get("songs", []):
                    ids["songs"][(artist["name"], song["title"])] = self.add_song(
                        song["title"], artist_id, song["duration_s"], album_id=album_id, genre=song.get("genre"),
                        play_count=song.get("play_count", 0))
            for song in artist.get("singles", []):
                ids["songs"][(artist["name"], song["title"])] = self.add_song(
                    song["title"], artist_id, song["duration_s"], release_date=song["release_date"],
                    genre=song.get("genre"), play_count=song.get("play_count", 0))
        return ids

    # ------------------------------------------------------------------------------------------ catalogue

    @api("Search the song catalogue by title, artist name or album title; filter by genre, artist or album.",
         login=False, response=[SONG],
         query="Text to look for in the song title, artist name or album title ('' lists all).",
         genre="Only songs of this genre, e.g. 'rock' (case-insensitive; null: any).",
         artist_id="Only songs by this artist (null: any).", album_id="Only songs on this album (null: any).",
         sort_by="'play_count' or 'release_date' (null: catalogue order, by song_id).",
         descending="With sort_by: largest/newest first (true) or smallest/oldest first (false).", **PAGE_DOCS)
    def search_songs(self, query: str = "", genre: str | None = None, artist_id: int | None = None,
                     album_id: int | None = None, sort_by: str | None = None, descending: bool = True,
                     page_index: int = 0, page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        order = _order(sort_by, SONG_SORTS, "s.", "s.song_id", descending)
        like = f"%{query.strip().lower()}%"
        return self.rows(
            f"{SONG_SELECT} WHERE (lower(s.title) LIKE ? OR lower(ar.name) LIKE ? OR lower(coalesce(al.title, '')) "
            f"LIKE ?) AND (? IS NULL OR lower(s.genre) = lower(?)) AND (? IS NULL OR s.artist_id = ?) AND "
            f"(? IS NULL OR s.album_id = ?) ORDER BY {order} LIMIT ? OFFSET ?",
            (like, like, like, genre, genre, artist_id, artist_id, album_id, album_id, limit, offset))

    @api("Search albums by title or artist name; filter by genre or artist.", login=False, response=[ALBUM],
         query="Text to look for in the album title or artist name ('' lists all).",
         genre="Only albums of this genre (case-insensitive; null: any).",
         artist_id="Only albums by this artist (null: any).",
         sort_by="'play_count' (sum over its songs) or 'release_date' (null: catalogue order, by album_id).",
         descending="With sort_by: largest/newest first (true) or smallest/oldest first (false).", **PAGE_DOCS)
    def search_albums(self, query: str = "", genre: str | None = None, artist_id: int | None = None,
                      sort_by: str | None = None, descending: bool = True, page_index: int = 0,
                      page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        order = _order(sort_by, ALBUM_SORTS, "", "album_id", descending)
        like = f"%{query.strip().lower()}%"
        return self.rows(
            f"SELECT * FROM ({ALBUM_SELECT}) WHERE (lower(title) LIKE ? OR lower(artist_name) LIKE ?) AND "
            f"(? IS NULL OR lower(genre) = lower(?)) AND (? IS NULL OR artist_id = ?) "
            f"ORDER BY {order} LIMIT ? OFFSET ?",
            (like, like, genre, genre, artist_id, artist_id, limit, offset))

    @api("Search artists by name; filter by genre.", login=False, response=[ARTIST],
         query="Text to look for in the artist's name ('' lists all).",
         genre="Only artists of this genre (case-insensitive; null: any).",
         sort_by="'follower_count' or 'play_count' (sum over their songs) (null: catalogue order, by artist_id).",
         descending="With sort_by: largest first (true) or smallest first (false).", **PAGE_DOCS)
    def search_artists(self, query: str = "", genre: str | None = None, sort_by: str | None = None,
                       descending: bool = True, page_index: int = 0, page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        order = _order(sort_by, ARTIST_SORTS, "", "artist_id", descending)
        return self.rows(
            f"SELECT * FROM ({ARTIST_SELECT}) WHERE lower(name) LIKE ? AND (? IS NULL OR lower(genre) = lower(?)) "
            f"ORDER BY {order} LIMIT ? OFFSET ?", (f"%{query.strip().lower()}%", genre, genre, limit, offset))

    @api("Show one song.", login=False, response=SONG, song_id="The song's id.")
    def show_song(self, song_id: int) -> dict[str, Any]:
        return self._song(song_id)

    @api("Show one album with the ids of its songs in track order.", login=False, response=ALBUM_DETAIL,
         album_id="The album's id.")
    def show_album(self, album_id: int) -> dict[str, Any]:
        album = self._album(album_id)
        album["song_ids"] = [r["song_id"] for r in self.rows(
            "SELECT song_id FROM music_songs WHERE album_id = ? ORDER BY track_number, song_id", (album_id,))]
        return album

    @api("Show one artist with the ids of their albums (oldest first) and songs (by song_id).", login=False,
         response=ARTIST_DETAIL, artist_id="The artist's id.")
    def show_artist(self, artist_id: int) -> dict[str, Any]:
        artist = self._artist(artist_id)
        artist["album_ids"] = [r["album_id"] for r in self.rows(
            "SELECT album_id FROM music_albums WHERE artist_id = ? ORDER BY release_date, album_id", (artist_id,))]
        artist["song_ids"] = [r["song_id"] for r in self.rows(
            "SELECT song_id FROM music_songs WHERE artist_id = ? ORDER BY song_id", (artist_id,))]
        return artist

    # ---------------------------------------------------------------------------------------------- library

    @api("List the songs in your library, most recently added first.", response=[LIBRARY_SONG], **PAGE_DOCS)
    def show_song_library(self, page_index: int = 0, page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        return self.rows(f"SELECT x.*, l.added_at FROM ({SONG_SELECT}) x JOIN music_library_songs l "
                         "ON l.song_id = x.song_id WHERE l.owner = ? ORDER BY l.added_at DESC, l.entry_id DESC "
                         "LIMIT ? OFFSET ?", (self.user, limit, offset))

    @api("Add a song to your library.", response=MESSAGE, song_id="The song's id.")
    def add_song_to_library(self, song_id: int) -> dict[str, str]:
        self._song(song_id)
        if self.row("SELECT 1 AS x FROM music_library_songs WHERE owner = ? AND song_id = ?", (self.user, song_id)):
            raise Conflict(f"song {song_id} is already in your library")
        self.insert("music_library_songs", {"owner": self.user, "song_id": song_id, "added_at": self.now})
        return {"message": "Song added to your library."}

    @api("Remove a song from your library.", response=MESSAGE, song_id="The song's id.")
    def remove_song_from_library(self, song_id: int) -> dict[str, str]:
        self._song(song_id)
        if not self.db.execute("DELETE FROM music_library_songs WHERE owner = ? AND song_id = ?",
                               (self.user, song_id)).rowcount:
            raise NotFound(f"song {song_id} is not in your library; see music.show_song_library")
        return {"message": "Song removed from your library."}

    @api("List the albums in your library, most recently added first.", response=[LIBRARY_ALBUM], **PAGE_DOCS)
    def show_album_library(self, page_index: int = 0, page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        return self.rows(f"SELECT x.*, l.added_at FROM ({ALBUM_SELECT}) x JOIN music_library_albums l "
                         "ON l.album_id = x.album_id WHERE l.owner = ? ORDER BY l.added_at DESC, l.entry_id DESC "
                         "LIMIT ? OFFSET ?", (self.user, limit, offset))

    @api("Add an album to your library (its songs are not added one by one).", response=MESSAGE,
         album_id="The album's id.")
    def add_album_to_library(self, album_id: int) -> dict[str, str]:
        self._album(album_id)
        if self.row("SELECT 1 AS x FROM music_library_albums WHERE owner = ? AND album_id = ?",
                    (self.user, album_id)):
            raise Conflict(f"album {album_id} is already in your library")
        self.insert("music_library_albums", {"owner": self.user, "album_id": album_id, "added_at": self.now})
        return {"message": "Album added to your library."}

    @api("Remove an album from your library.", response=MESSAGE, album_id="The album's id.")
    def remove_album_from_library(self, album_id: int) -> dict[str, str]:
        self._album(album_id)
        if not self.db.execute("DELETE FROM music_library_albums WHERE owner = ? AND album_id = ?",
                               (self.user, album_id)).rowcount:
            raise NotFound(f"album {album_id} is not in your library; see music.show_album_library")
        return {"message": "Album removed from your library."}

    # ------------------------------------------------------------------------------------------ liked songs

    @api("Like a song.", response=MESSAGE, song_id="The song's id.")
    def like_song(self, song_id: int) -> dict[str, str]:
        self._song(song_id)
        if self.row("SELECT 1 AS x FROM music_liked_songs WHERE owner = ? AND song_id = ?", (self.user, song_id)):
            raise Conflict(f"you already like song {song_id}")
        self.insert("music_liked_songs", {"owner": self.user, "song_id": song_id, "liked_at": self.now})
        return {"message": "Song liked."}

    @api("Unlike a song you liked.", response=MESSAGE, song_id="The song's id.")
    def unlike_song(self, song_id: int) -> dict[str, str]:
        self._song(song_id)
        if not self.db.execute("DELETE FROM music_liked_songs WHERE owner = ? AND song_id = ?",
                               (self.user, song_id)).rowcount:
            raise NotFound(f"you have not liked song {song_id}; see music.show_liked_songs")
        return {"message": "Song unliked."}

    @api("List the songs you like, most recently liked first.", response=[LIKED_SONG], **PAGE_DOCS)
    def show_liked_songs(self, page_index: int = 0, page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        return self.rows(f"SELECT x.*, l.liked_at FROM ({SONG_SELECT}) x JOIN music_liked_songs l "
                         "ON l.song_id = x.song_id WHERE l.owner = ? ORDER BY l.liked_at DESC, l.entry_id DESC "
                         "LIMIT ? OFFSET ?", (self.user, limit, offset))

    # -------------------------------------------------------------------------------------------- playlists

    @api("Create a playlist (empty; add songs with add_song_to_playlist).",
         response={"playlist_id": "integer", "message": "string"},
         title="The playlist's title (unique among your playlists, at most 100 characters).",
         is_public="Whether other users can see it (true) or only you (false).")
    def create_playlist(self, title: str, is_public: bool = False) -> dict[str, Any]:
        title = self._free_title(title)
        playlist_id = self.insert("music_playlists", {"owner": self.user, "title": title,
                                                      "is_public": int(is_public), "created_at": self.now,
                                                      "updated_at": self.now})
        return {"playlist_id": playlist_id, "message": "Playlist created."}

    @api("List your playlists, by playlist_id.", response=[PLAYLIST],
         query="Text to look for in the title ('' lists all).", **PAGE_DOCS)
    def show_playlist_library(self, query: str = "", page_index: int = 0,
                              page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        return [_playlist(r) for r in self.rows(
            f"{PLAYLIST_SELECT} WHERE p.owner = ? AND lower(p.title) LIKE ? ORDER BY p.playlist_id LIMIT ? OFFSET ?",
            (self.user, f"%{query.strip().lower()}%", limit, offset))]

    @api("Show a playlist (yours, or another user's public one) with its songs in order.",
         response=PLAYLIST_DETAIL, playlist_id="The playlist's id.")
    def show_playlist(self, playlist_id: int) -> dict[str, Any]:
        playlist = self._visible_playlist(playlist_id)
        playlist["songs"] = self.rows(
            f"SELECT ps.position, x.* FROM music_playlist_songs ps JOIN ({SONG_SELECT}) x ON x.song_id = ps.song_id "
            "WHERE ps.playlist_id = ? ORDER BY ps.position", (playlist_id,))
        return playlist

    @api("Rename one of your playlists.", response=MESSAGE, playlist_id="The playlist's id.",
         title="The new title (unique among your playlists).")
    def rename_playlist(self, playlist_id: int, title: str) -> dict[str, str]:
        self._own_playlist(playlist_id)
        title = self._free_title(title, playlist_id)
        self.db.execute("UPDATE music_playlists SET title = ?, updated_at = ? WHERE playlist_id = ?",
                        (title, self.now, playlist_id))
        return {"message": "Playlist renamed."}

    @api("Delete one of your playlists.", response=MESSAGE, playlist_id="The playlist's id.")
    def delete_playlist(self, playlist_id: int) -> dict[str, str]:
        self._own_playlist(playlist_id)
        self.db.execute("DELETE FROM music_playlist_songs WHERE playlist_id = ?", (playlist_id,))
        self.db.execute("DELETE FROM music_playlists WHERE playlist_id = ?", (playlist_id,))
        return {"message": "Playlist deleted."}

    @api("Add a song to one of your playlists, at the end or at a position.", response=MESSAGE,
         playlist_id="The playlist's id.", song_id="The song's id (a song can be in a playlist only once).",
         position="Where to insert it, 1 = first (null: at the end); later songs move down one.")
    def add_song_to_playlist(self, playlist_id: int, song_id: int,
                             position: int | None = None) -> dict[str, str]:
        self._own_playlist(playlist_id)
        self._song(song_id)
        order = self._playlist_order(playlist_id)
        if song_id in order:
            raise Conflict(f"song {song_id} is already in playlist {playlist_id} (at position "
                           f"{order.index(song_id) + 1}); use move_song_in_playlist to move it")
        if position is None:
            position = len(order) + 1
        if not 1 <= position <= len(order) + 1:
            raise Unprocessable(f"position must be between 1 and {len(order) + 1} for this playlist, got {position}")
        self.insert("music_playlist_songs", {"playlist_id": playlist_id, "song_id": song_id,
                                             "position": len(order) + 1, "added_at": self.now})
        order.insert(position - 1, song_id)
        self._renumber(playlist_id, order)
        return {"message": f"Song added to the playlist at position {position}."}

    @api("Remove a song from one of your playlists; later songs move up one.", response=MESSAGE,
         playlist_id="The playlist's id.", song_id="The song's id.")
    def remove_song_from_playlist(self, playlist_id: int, song_id: int) -> dict[str, str]:
        self._own_playlist(playlist_id)
        order = self._playlist_order(playlist_id)
        if song_id not in order:
            raise NotFound(f"song {song_id} is not in playlist {playlist_id}; see music.show_playlist")
        self.db.execute("DELETE FROM music_playlist_songs WHERE playlist_id = ? AND song_id = ?",
                        (playlist_id, song_id))
        order.remove(song_id)
        self._renumber(playlist_id, order)
        return {"message": "Song removed from the playlist."}

    @api("Move a song within one of your playlists to a new position; the others keep their order.",
         response=MESSAGE, playlist_id="The playlist's id.", song_id="The song's id.",
         position="Its new position, 1 = first, up to the number of songs.")
    def move_song_in_playlist(self, playlist_id: int, song_id: int, position: int) -> dict[str, str]:
        self._own_playlist(playlist_id)
        order = self._playlist_order(playlist_id)
        if song_id not in order:
            raise NotFound(f"song {song_id} is not in playlist {playlist_id}; see music.show_playlist")
        if not 1 <= position <= len(order):
            raise Unprocessable(f"position must be between 1 and {len(order)} for this playlist, got {position}")
        order.remove(song_id)
        order.insert(position - 1, song_id)
        self._renumber(playlist_id, order)
        return {"message": f"Song moved to position {position}."}

    # ------------------------------------------------------------------------------------------ following

    @api("Follow an artist.", response=MESSAGE, artist_id="The artist's id.")
    def follow_artist(self, artist_id: int) -> dict[str, str]:
        self._artist(artist_id)
        if self.row("SELECT 1 AS x FROM music_following WHERE owner = ? AND artist_id = ?", (self.user, artist_id)):
            raise Conflict(f"you already follow artist {artist_id}")
        self.insert("music_following", {"owner": self.user, "artist_id": artist_id, "followed_at": self.now})
        return {"message": "Artist followed."}

    @api("Unfollow an artist you follow.", response=MESSAGE, artist_id="The artist's id.")
    def unfollow_artist(self, artist_id: int) -> dict[str, str]:
        self._artist(artist_id)
        if not self.db.execute("DELETE FROM music_following WHERE owner = ? AND artist_id = ?",
                               (self.user, artist_id)).rowcount:
            raise NotFound(f"you do not follow artist {artist_id}; see music.show_following_artists")
        return {"message": "Artist unfollowed."}

    @api("List the artists you follow, most recently followed first.", response=[FOLLOWED_ARTIST], **PAGE_DOCS)
    def show_following_artists(self, page_index: int = 0, page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        return self.rows(f"SELECT x.*, f.followed_at FROM ({ARTIST_SELECT}) x JOIN music_following f "
                         "ON f.artist_id = x.artist_id WHERE f.owner = ? ORDER BY f.followed_at DESC, "
                         "f.entry_id DESC LIMIT ? OFFSET ?", (self.user, limit, offset))

    # ------------------------------------------------------------------------------------ plays and ratings

    @api("Play a song: it is added to your play history and its play_count goes up by one.",
         response={"play_id": "integer", "play_count": "integer", "message": "string"}, song_id="The song's id.")
    def play_song(self, song_id: int) -> dict[str, Any]:
        self._song(song_id)
        play_id = self.insert("music_plays", {"owner": self.user, "song_id": song_id, "played_at": self.now})
        self.db.execute("UPDATE music_songs SET play_count = play_count + 1 WHERE song_id = ?", (song_id,))
        count = self.row("SELECT play_count FROM music_songs WHERE song_id = ?", (song_id,))["play_count"]
        return {"play_id": play_id, "play_count": count, "message": "Now playing."}

    @api("List your play history, most recent first (a song played twice appears twice).",
         response=[PLAYED_SONG], **PAGE_DOCS)
    def show_recently_played(self, page_index: int = 0, page_limit: int = 5) -> list[dict[str, Any]]:
        limit, offset = paginate(page_index, page_limit)
        return self.rows(f"SELECT p.play_id, p.played_at, x.* FROM music_plays p JOIN ({SONG_SELECT}) x "
                         "ON x.song_id = p.song_id WHERE p.owner = ? ORDER BY p.played_at DESC, p.play_id DESC "
                         "LIMIT ? OFFSET ?", (self.user, limit, offset))

    @api("Rate a song from 1 to 5 stars (rating it again replaces your rating).", response=MESSAGE,
         song_id="The song's id.", rating="Stars, an integer from 1 to 5.")
    def rate_song(self, song_id: int, rating: int) -> dict[str, str]:
        self._song(song_id)
        if not 1 <= rating <= 5:
            raise Unprocessable(f"rating must be an integer from 1 to 5, got {rating}")
        self.db.execute("INSERT INTO music_ratings (owner, song_id, rating, rated_at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (owner, song_id) DO UPDATE SET rating = excluded.rating, "
                        "rated_at = excluded.rated_at", (self.user, song_id, rating, self.now))
        return {"message": f"Song rated {rating}."}

    @api("Show your rating of a song (rating is null if you have not rated it).", response=RATING,
         song_id="The song's id.")
    def show_song_rating(self, song_id: int) -> dict[str, Any]:
        self._song(song_id)
        found = self.row("SELECT rating, rated_at FROM music_ratings WHERE owner = ? AND song_id = ?",
                         (self.user, song_id))
        return {"song_id": song_id, "rating": found and found["rating"], "rated_at": found and found["rated_at"]}

    # -------------------------------------------------------------------------------------------- helpers

    def _song(self, song_id: int) -> dict[str, Any]:
        return self.row(f"{SONG_SELECT} WHERE s.song_id = ?", (song_id,),
                        missing=f"no song with song_id {song_id}; find songs with music.search_songs")

    def _album(self, album_id: int) -> dict[str, Any]:
        return self.row(f"{ALBUM_SELECT} WHERE a.album_id = ?", (album_id,),
                        missing=f"no album with album_id {album_id}; find albums with music.search_albums")

    def _artist(self, artist_id: int) -> dict[str, Any]:
        return self.row(f"{ARTIST_SELECT} WHERE ar.artist_id = ?", (artist_id,),
                        missing=f"no artist with artist_id {artist_id}; find artists with music.search_artists")

    def _visible_playlist(self, playlist_id: int) -> dict[str, Any]:
        found = self.row(f"{PLAYLIST_SELECT} WHERE p.playlist_id = ? AND (p.owner = ? OR p.is_public = 1)",
                         (playlist_id, self.user),
                         missing=f"no playlist with playlist_id {playlist_id}; see your playlists with "
                                 f"music.show_playlist_library")
        return _playlist(found)

    def _own_playlist(self, playlist_id: int) -> dict[str, Any]:
        playlist = self._visible_playlist(playlist_id)
        if playlist["owner_email"] != self.user:
            raise Forbidden(f"playlist {playlist_id} belongs to another user; you can only change your own "
                            f"playlists (see music.show_playlist_library)")
        return playlist

    def _free_title(self, title: str, playlist_id: int | None = None) -> str:
        title = clean_text(title, "title", MAX_TITLE)
        clash = self.row("SELECT playlist_id FROM music_playlists WHERE owner = ? AND lower(title) = lower(?) "
                         "AND playlist_id != ?", (self.user, title, playlist_id or 0))
        if clash:
            raise Conflict(f"you already have a playlist titled {title!r} (playlist_id {clash['playlist_id']}); "
                           f"choose another title")
        return title

    def _playlist_order(self, playlist_id: int) -> list[int]:
        return [r["song_id"] for r in self.rows(
            "SELECT song_id FROM music_playlist_songs WHERE playlist_id = ? ORDER BY position, entry_id",
            (playlist_id,))]

    def _renumber(self, playlist_id: int, order: list[int]) -> None:
        self.db.executemany("UPDATE music_playlist_songs SET position = ? WHERE playlist_id = ? AND song_id = ?",
                            [(i + 1, playlist_id, s) for i, s in enumerate(order)])
        self.db.execute("UPDATE music_playlists SET updated_at = ? WHERE playlist_id = ?", (self.now, playlist_id))
