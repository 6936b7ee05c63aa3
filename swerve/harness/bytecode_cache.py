"""A sealed bytecode cache for the task factory's many runs of one suite in one environment.

Test runs write no bytecode (PYTHONDONTWRITEBYTECODE), so every run compiles again all
it imports, and pytest rewrites the assertions of every test module again: for toolz
that is almost half of a whole-suite run (bench/bytecode_cache.py). The task factory runs one suite
hundreds of times in one environment, one changed library file at a time, so each of its
environments keeps a cache:

1. `open_bytecode_cache(env)`: a folder `swerve-pycache` in the environment's temporary
   folder, kept through reset() (`keep_across_reset`), with the second it was opened.
   The bytecode the interpreter's own folders hold (standard library, site-packages,
   pytest itself) is linked in, so the warm-up does not compile it again;
2. warm-up runs write into it (PYTHONPYCACHEPREFIX, see hidden_tests.run_env_prefix):
   the baseline and the call map, or one whole-suite run (swerve.harness.warm_runs);
3. `seal_bytecode_cache(env, folder)`: every entry whose source file was written since
   the second before the folder was opened is removed, then the folder is made read-only.

After the seal nothing is added or changed. An entry records its source file's
modification second and size (pytest's rewritten test modules, the import system's own
bytecode; an entry checked by the source's hash is kept, one never checked is removed).
The entries left were recorded for files written before the folder was opened, and every
file written after the seal has a later second, so no entry can be taken for a file
written since: a mutated module, or one the reset put back, is compiled again in memory
by each run, and everything else comes from the cache. The runs' results are those of
runs without the cache (bench/mint.py checks the decisions agree).

Where the environment's user can still write the folder after the seal (the local
backend running as root), later runs could add entries whose second matches a later
write's: the cache is removed and runs write no bytecode, as before. The same for a
Python without PYTHONPYCACHEPREFIX (before 3.8), or an environment that cannot keep
the folder. Only for environments that host no agent (see `keep_across_reset`).
"""

from __future__ import annotations

import shlex

CACHE_NAME = "swerve-pycache"
_READY = "SWERVE-BYTECODE-CACHE="
_SEALED = "SWERVE-BYTECODE-SEALED"
_OPENED = ".opened"  # the clock's second when the folder was opened
# Removes the entries of files written since the second before the folder was opened
# (the file system's clock lags the one `date` reads by up to a tick), and those whose
# header is neither a timestamp nor a checked hash (flags 0 or 3 in bytes 4-8; the
# source's second in bytes 8-12, as both CPython and pytest's rewriter write them).
_SEAL_SCRIPT = """
import os, sys
folder = sys.argv[1]
with open(os.path.join(folder, "%s")) as handle:
    since = int(handle.read().strip()) - 1
for root, _, files in os.walk(folder):
    for name in files:
        path = os.path.join(root, name)
        if not name.endswith(".pyc"):
            continue
        with open(path, "rb") as handle:
            head = handle.read(16)
        flags = int.from_bytes(head[4:8], "little") if len(head) == 16 else -1
        if flags == 3 or (flags == 0 and int.from_bytes(head[8:12], "little") < since):
            continue
        os.remove(path)
""" % _OPENED
# Links the bytecode of every folder on the interpreter's path but the repository
# (`X.<tag>.pyc` in a __pycache__) where PYTHONPYCACHEPREFIX looks for it.
_SEED_SCRIPT = """
import os, sys
folder, workdir = sys.argv[1], os.path.realpath(sys.argv[2])
tail = "." + sys.implementation.cache_tag + ".pyc"
for top in dict.fromkeys(os.path.realpath(p) for p in sys.path if p and os.path.isdir(p)):
    if top == workdir or top.startswith(workdir + os.sep) or workdir.startswith(top + os.sep):
        continue
    for root, _, files in os.walk(top):
        names = [n for n in files if n.endswith(tail) and n.count(".") == 2]
        if os.path.basename(root) != "__pycache__" or not names:
            continue
        target = folder + os.path.dirname(root)
        os.makedirs(target, exist_ok=True)
        for name in names:
            if not os.path.lexists(os.path.join(target, name)):  # a folder inside another one on the path
                os.symlink(os.path.join(root, name), os.path.join(target, name))
"""


def open_bytecode_cache(env) -> str:
    """The cache folder, created empty and kept through reset(); '' when this
    environment cannot have one (its Python ignores PYTHONPYCACHEPREFIX, or its
    temporary folder is not one reset() empties)."""
    from swerve.harness.hidden_tests import _workdir

    result = env.exec(
        f'd="${{TMPDIR:-/tmp}}"; d="${{d%/}}/{CACHE_NAME}"; rm -rf "$d" 2>/dev/null; mkdir -p "$d" && date +%s > "$d/{_OPENED}" || exit 1; '
        'py=$(cd / && { command -v python || command -v python3; }) || exit 1; '
        'got=$(cd / && PYTHONPYCACHEPREFIX="$d" "$py" -c "import sys; print(sys.pycache_prefix)") || exit 1; '
        f'[ "$got" = "$d" ] && (cd / && "$py" -c {shlex.quote(_SEED_SCRIPT)} "$d" {shlex.quote(_workdir(env))}) '
        f'&& echo "{_READY}$d"',
        timeout=60,
    )
    folder = next((line[len(_READY):] for line in result.output.splitlines() if line.startswith(_READY)), "")
    if not folder:
        return ""
    try:
        env.keep_across_reset(folder)
    except (AttributeError, ValueError):
        drop_bytecode_cache(env, folder)
        return ""
    return folder


def seal_bytecode_cache(env, folder: str) -> str:
    """Remove the entries of files written since the folder was opened, then make it
    read-only (call it after the warm-up runs). Returns `folder`, or '' after removing
    it when it stays writable."""
    if not folder:
        return ""
    d = shlex.quote(folder)
    result = env.exec(
        f'py=$(cd / && {{ command -v python || command -v python3; }}) || exit 1; '
        f'(cd / && "$py" -c {shlex.quote(_SEAL_SCRIPT)} {d}) || exit 1; chmod -R a-w {d} || exit 1; '
        f"if ( : > {d}/.write-probe ) 2>/dev/null; then exit 1; fi; echo {_SEALED}",
        timeout=60,
    )
    if _SEALED not in result.output:
        drop_bytecode_cache(env, folder)
        return ""
    return folder


def drop_bytecode_cache(env, folder: str) -> None:
    """Remove the folder (its entries, read-only or not)."""
    d = shlex.quote(folder)
    env.exec(f"chmod -R u+w {d} 2>/dev/null; rm -rf {d}", timeout=60)
