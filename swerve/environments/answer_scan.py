"""Look for a task's answer inside its image: the gold patch's added lines and the
hidden tests' lines, anywhere on the image's filesystem, in every git object of
every repository in it, and inside archives (wheels, zips, tarballs).

A line counts as a needle when it is long enough to mean something (stripped, at
least MIN_NEEDLE chars) and appears nowhere in the base commit's own files (a
mutation that swaps two lines "adds" lines the base already has). One container
per image runs the whole scan: GNU grep's fixed-string search over every file,
`git cat-file --batch-all-objects --batch` for each repository, and Python for
the archives.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIN_NEEDLE = 12
SCAN_DIR = "/.swerve-answer-scan"

_SCANNER = r"""
import io, json, os, subprocess, sys, tarfile, zipfile
scan = sys.argv[1]
needles_file = os.path.join(scan, "needles.txt")
needles = [n for n in open(needles_file, encoding="utf-8").read().split("\n") if n]
encoded = [n.encode() for n in needles]
leaks = []

def found_in(data):
    return sorted({n for n, b in zip(needles, encoded) if b in data})

files = subprocess.run(
    ["find", "/", "-xdev", "(", "-path", scan, "-o", "-path", "/proc", "-o", "-path", "/sys", ")", "-prune",
     "-o", "-type", "f", "-print0"], capture_output=True).stdout.split(b"\0")
files = [f for f in files if f]
listing = os.path.join(scan, "files.bin")
with open(listing, "wb") as handle:
    handle.write(b"\0".join(files))
grep = subprocess.run(
    "xargs -0 -r grep -laF -f " + needles_file + " -- < " + listing, shell=True, capture_output=True)
for path in grep.stdout.decode("utf-8", "replace").splitlines():
    with open(path, "rb") as handle:
        leaks.append({"where": "file", "path": path, "lines": found_in(handle.read())})

for path in files:
    if path.endswith(b"/HEAD") and os.path.isdir(path[:-5] + b"/objects"):
        git_dir = path[:-5].decode("utf-8", "replace")
        dump = subprocess.run(["git", "-c", "safe.directory=*", "--git-dir", git_dir, "cat-file",
                               "--batch-all-objects", "--batch"], capture_output=True).stdout
        hits = found_in(dump)
        if hits:
            leaks.append({"where": "git objects", "path": git_dir, "lines": hits})

ARCHIVES = (".whl", ".zip", ".egg", ".pyz", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
for path in files:
    name = path.decode("utf-8", "replace")
    if not name.endswith(ARCHIVES):
        continue
    try:
        if zipfile.is_zipfile(name):
            with zipfile.ZipFile(name) as archive:
                members = [(m, archive.read(m)) for m in archive.namelist()]
        else:
            with tarfile.open(name) as archive:
                members = [(m.name, archive.extractfile(m).read()) for m in archive.getmembers() if m.isfile()]
    except Exception as exc:
        leaks.append({"where": "unreadable archive", "path": name, "lines": [str(exc)[:200]]})
        continue
    for member, data in members:
        hits = found_in(data)
        if hits:
            leaks.append({"where": "archive member", "path": name + "!" + member, "lines": hits})
print("SWERVE-SCAN " + json.dumps({"files": len(files), "leaks": leaks}))
"""


@dataclass(frozen=True)
class Leak:
    """Where an answer line was found: a file, a git object store or an archive member."""

    where: str
    path: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class ScanResult:
    files: int
    leaks: tuple[Leak, ...]


def added_lines(diff: str) -> list[str]:
    """The stripped text of every line a unified diff adds."""
    return [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]


def answer_needles(patch: str, test_patch: str, base_tree: Path) -> list[str]:
    """The gold patch's and the hidden tests' added lines that are long enough and that
    no file of the base commit's tree (`base_tree`, a git checkout) already contains."""
    candidates = {line for line in added_lines(patch) + added_lines(test_patch) if len(line) >= MIN_NEEDLE}
    tracked = subprocess.run(["git", "-C", str(base_tree), "ls-files", "-z"], capture_output=True, check=True).stdout
    corpus = b"\0".join(
        (base_tree / name.decode()).read_bytes()
        for name in tracked.split(b"\0")
        if name and (base_tree / name.decode()).is_file() and not (base_tree / name.decode()).is_symlink()
    )
    return sorted(line for line in candidates if line.encode() not in corpus)


def scan_image(client: Any, image: str, needles: list[str]) -> ScanResult:
    """Scan every file, git object store and archive of `image` for `needles`, in one
    container run as root with networking off; the container is removed afterwards."""
    bundle = io.BytesIO()
    with tarfile.open(fileobj=bundle, mode="w") as archive:
        for name, text in (("needles.txt", "\n".join(needles) + "\n"), ("scan.py", _SCANNER)):
            data = text.encode()
            info = tarfile.TarInfo(f"{SCAN_DIR.lstrip('/')}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    container = client.containers.create(
        image, ["python3", f"{SCAN_DIR}/scan.py", SCAN_DIR], user="root", network_disabled=True,
        network_mode="none", labels={"swerve.run": "answer-scan"},
    )
    try:
        container.put_archive("/", bundle.getvalue())
        container.start()
        code = container.wait(timeout=1800)["StatusCode"]
        output = container.logs().decode("utf-8", errors="replace")
    finally:
        container.remove(force=True, v=True)
    marker = [line for line in output.splitlines() if line.startswith("SWERVE-SCAN ")]
    if code != 0 or not marker:
        raise RuntimeError(f"answer scan of {image} failed (exit {code}): {output[-500:]}")
    found = json.loads(marker[-1].split(" ", 1)[1])
    leaks = tuple(Leak(item["where"], item["path"], tuple(item["lines"])) for item in found["leaks"])
    return ScanResult(files=found["files"], leaks=leaks)
