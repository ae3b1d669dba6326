"""Published benchmark files: found in a folder the user names, else in siegeflow's cache, else
downloaded once from where the authors publish them and checked against a pinned sha256.

The files are not shipped (licences, size, and a red-teamer should run what the authors
published); a checksum pins the exact bytes the presets were written and counted against.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_cache_dir

from goals.model import GoalFileError
from settings import current_settings

logger = logging.getLogger("siegeflow.goals.fetch")

#: Files bigger than this are refused while downloading (the largest preset file is ~200 kB).
MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 30.0


@dataclass(frozen=True, kw_only=True)
class DataFile:
    """One published file: where it comes from and the exact bytes expected (`sha256`).

    `sha256` is None only for a file no pinned copy was available for; such a file is used
    as downloaded, and listings say it is unverified.
    """

    dataset: str  # cache sub-folder, e.g. "harmbench"
    filename: str  # the published file name, looked for under that name everywhere
    url: str
    sha256: str | None
    license: str
    citation: str


class DataFileUnavailable(GoalFileError):
    """A preset's file is not on disk and could not be downloaded (or did not match)."""


def cache_dir() -> Path:
    """Where downloaded files live: `$SIEGEFLOW_CACHE_DIR`, else the user cache dir."""
    override = current_settings().cache_dir
    return override if override else Path(user_cache_dir("siegeflow")) / "goalsets"


def cached_path(file: DataFile) -> Path:
    return cache_dir() / file.dataset / file.filename


def downloads_allowed() -> bool:
    return not current_settings().offline


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_local(file: DataFile, search: str | Path | None) -> Path | None:
    """The file in a user folder: `DIR/<filename>` or `DIR/<dataset>/<filename>` (so a folder
    laid out like siegeflow's cache or the shared data folder works), or `search` itself.
    Without `search`, `$SIEGEFLOW_GOALS_PATH` is the folder."""
    search = search if search is not None else current_settings().goals_path
    if search is None:
        return None
    root = Path(search).expanduser()
    if root.is_file():
        return root if root.name == file.filename else None
    for candidate in (root / file.filename, root / file.dataset / file.filename):
        if candidate.is_file():
            return candidate
    return None


def locate(file: DataFile, search: str | Path | None = None) -> Path | None:
    """The file if it is already on disk (user folder first, then the cache); never downloads."""
    local = find_local(file, search)
    if local is not None:
        return local
    cached = cached_path(file)
    return cached if cached.is_file() else None


def resolve(file: DataFile, *, search: str | Path | None = None, ref: str,
            download: bool | None = None) -> Path:
    """The file's path: user folder (used as given), cache (verified), else a verified download.

    `ref` names what needs the file (e.g. `harmbench:standard`) in error messages.
    """
    local = find_local(file, search)
    if local is not None:
        return local
    cached = cached_path(file)
    if cached.is_file():
        _check(file, cached, ref, where="cached copy")
        return cached
    if download is None:
        download = downloads_allowed()
    if not download:
        raise _unavailable(file, ref, "not downloaded, and downloads are off (SIEGEFLOW_OFFLINE)",
                           search)
    return fetch(file, ref=ref, search=search)


def fetch(file: DataFile, *, ref: str, search: str | Path | None = None) -> Path:
    """Download `file` into the cache; only bytes matching the pinned sha256 are kept."""
    try:
        request = urllib.request.Request(file.url, headers={"User-Agent": "siegeflow"})
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read(MAX_DOWNLOAD_BYTES + 1)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = (f"HTTP {exc.code} {exc.reason}" if isinstance(exc, urllib.error.HTTPError)
                  else getattr(exc, "reason", None) or exc)
        raise _unavailable(file, ref, f"download from {file.url} failed: {reason}", search) from exc
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise _unavailable(file, ref, f"{file.url} is larger than {MAX_DOWNLOAD_BYTES} bytes",
                           search)
    digest = hashlib.sha256(data).hexdigest()
    if file.sha256 is not None and digest != file.sha256:
        raise _unavailable(
            file, ref, f"the file downloaded from {file.url} has sha256 {digest}, expected "
            f"{file.sha256} (upstream changed it, or the download was altered); nothing was "
            "cached", search)
    if file.sha256 is None:  # jbb:benign: no copy to pin from (goals/presets.py says why)
        logger.warning("%s: %s has no pinned sha256; kept unverified as downloaded (sha256 %s)",
                       ref, file.filename, digest)
    target = cached_path(file)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp:
        tmp.write(data)
    os.replace(tmp.name, target)  # atomic: a concurrent reader never sees half a file
    return target


def _check(file: DataFile, path: Path, ref: str, *, where: str) -> None:
    if file.sha256 is None:
        return
    digest = sha256_of(path)
    if digest != file.sha256:
        raise DataFileUnavailable(
            path,
            f"{where} needed by {ref} has sha256 {digest}, expected {file.sha256}: delete it "
            f"to download the published file again, or pass your own copy's folder with "
            "--goals-path (used as is)",
        )


def _unavailable(file: DataFile, ref: str, why: str, search: str | Path | None) -> Exception:
    looked = f" nor in {search}," if search is not None else ""
    pinned = f" (sha256 {file.sha256})" if file.sha256 else ""
    return DataFileUnavailable(
        ref,
        f"{file.filename} is not in the cache ({cached_path(file).parent}){looked} and {why}. "
        f"Download {file.url}{pinned} and save it as {cached_path(file)}, or put it in a folder "
        "and pass --goals-path FOLDER (config: goals.path)",
    )
