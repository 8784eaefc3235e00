"""Run folders: one run's outputs, whole or not at all.

A run (``wavetraj run``, ``wavetraj paper``) is written into a fresh staging folder beside
its destination and moved into place when it is complete, so a folder never mixes two
runs and an interrupted run leaves the previous one untouched. The last file written is
``manifest.json``: the run id, and the SHA-256 of every file of the run. ``wavetraj
report`` reads only the files the manifest lists, and only when their checksums match.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import pathlib
import shutil
import uuid
from collections.abc import Iterator

from wavetraj.storage import WavetrajFileError, atomic_path, fsync_dir, make_dir

MANIFEST = "manifest.json"
MANIFEST_KIND = "wavetraj-run"


def sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_destination(out) -> pathlib.Path:
    """The folder a run will replace, checked before any computation: not a file, not a
    folder of other files (only an earlier run, with its manifest, is replaced), and its
    parent writable."""
    out = pathlib.Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {str(out)!r} is a file, not a folder; choose another")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise FileExistsError(
            f"--out {str(out)!r} holds files that are not a wavetraj run (no {MANIFEST}); "
            "a run replaces its whole folder: choose a new or empty folder"
        )
    anchor = next(p for p in out.parents if p.exists())  # where the staging folder goes
    if not anchor.is_dir():
        raise NotADirectoryError(f"--out {str(out)!r}: {str(anchor)!r} is a file, not a folder")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {str(out)!r}: cannot write in {str(anchor)!r}")
    return out


@contextlib.contextmanager
def staged(out) -> Iterator[tuple[pathlib.Path, str]]:
    """Yield (staging folder, run id); on success write the manifest and move the staging
    folder onto ``out`` (the earlier run there is removed); on failure remove it."""
    out = check_destination(out)
    run_id = uuid.uuid4().hex
    make_dir(out.parent)
    stage = make_dir(out.parent / f".{out.name}.staging-{run_id[:12]}")
    try:
        yield stage, run_id
        write_manifest(stage, run_id)
        old = out.parent / f".{out.name}.replaced-{run_id[:12]}"
        if out.exists():
            os.replace(out, old)
        os.replace(stage, out)
        fsync_dir(out.parent)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def write_manifest(folder: pathlib.Path, run_id: str) -> pathlib.Path:
    """List every file under ``folder`` (but the manifest) with its SHA-256; written last."""
    files = {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {
        "kind": MANIFEST_KIND,
        "run_id": run_id,
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "files": files,
    }
    path = folder / MANIFEST
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    return path


def read_manifest(folder, *, rebuilt: tuple[str, ...] = ()) -> dict:
    """The manifest of a run folder, with every listed file present and whole (but the
    ``rebuilt`` ones, which the caller is about to write again)."""
    folder = pathlib.Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(folder)!r} holds no {MANIFEST}: not a wavetraj run folder (or written "
            "before runs kept one) — re-run it"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"]
        if manifest.get("kind") != MANIFEST_KIND or not isinstance(files, dict):
            raise ValueError("not a wavetraj run manifest")
    except (ValueError, KeyError, TypeError) as exc:
        raise WavetrajFileError(f"{str(path)!r} is damaged ({exc}): re-run the scenarios") from None
    for name, digest in files.items():
        if name in rebuilt:
            continue
        p = folder / name
        if not p.is_file():
            raise FileNotFoundError(
                f"{str(p)!r} is missing from run {manifest['run_id']}: re-run the scenarios"
            )
        if sha256_file(p) != digest:
            raise WavetrajFileError(
                f"{str(p)!r} is not the file run {manifest['run_id']} wrote (checksum differs): "
                "it was damaged or replaced — re-run the scenarios"
            )
    return manifest


def update_manifest(folder, name: str) -> None:
    """Record a rewritten file of a run (``report.html`` after ``wavetraj report``)."""
    folder = pathlib.Path(folder)
    manifest = read_manifest_unverified(folder)
    manifest["files"][name] = sha256_file(folder / name)
    with atomic_path(folder / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))


def read_manifest_unverified(folder) -> dict:
    return json.loads((pathlib.Path(folder) / MANIFEST).read_text(encoding="utf-8"))
