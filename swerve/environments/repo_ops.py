"""File and git operations every backend shares, expressed through its persistent
shell: read/write files, the diff against the base commit, reset to pristine."""

from __future__ import annotations

import posixpath
import shlex
import threading

from swerve.environments.shell import ShellSession, ansi_c_quote
from swerve.errors import InfraError
from swerve.schema import ExecResult

PRESERVE_LIST = "/opt/swerve/preserve.txt"
GIT = "git -c core.pager=cat -c core.quotepath=off -c color.ui=false"
SAFE_GIT = (
    "git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c core.untrackedCache=false "
    "-c core.logAllRefUpdates=false"
)


def restore_script(
    workdir: str,
    base_commit: str,
    pristine: str,
    *,
    wipe: list[str],
    objects_owned_by_root: bool,
    stamp: str = "",
    preserve: list[str] | None = None,
    git_entries: str | None = None,
    spare: list[str] = (),
) -> str:
    """Shell code, run as the agent's user in a new shell after every other process of
    that user was killed, that restores what an episode can write:

    - every folder in `wipe` (/tmp, /dev/shm, $HOME, ...) emptied, System V IPC removed;
    - `.git` as built: everything but `objects` and `index` replaced from
      PRISTINE/git-meta.tar (config, hooks, info, HEAD, refs, packed-refs); object files
      not in PRISTINE/git-objects.txt deleted; with `objects_owned_by_root`, the base's
      own object files must still be root's (the agent cannot have changed them);
    - the work tree at the base commit, every untracked file removed, and the `preserve`
      paths the image build left there (build metadata) put back from PRISTINE/preserved.tar.

    `stamp` names a file the agent cannot touch, touched after each reset (and only once
    the file system's clock has moved past it, see `STAMP_TICK_SNIPPET`): one walk of the
    work tree, `.git` and the `wipe` folders lists what has an inode change time (which no
    user can set) newer than the stamp, and only those parts are restored: the wipe, the
    metadata, the objects, `git reset --hard` (work tree, index or .git changed) and
    `git clean` (work tree changed) each run only when the walk found a change there; an
    episode that changed nothing costs one `find`. Creating, deleting or renaming an entry
    changes its folder's change time, so no change escapes the walk. `git_entries` (the
    space-joined `.git/*` names, dot files included, as bash's glob lists them in the
    pristine repository) lets a change of the `.git` folder alone (git renaming its lock
    files) skip the metadata restore when no top-level entry went missing.

    A repository the agent replaced by something git would not trust (.git or its objects
    folder a link) fails the reset: the environment should then be recreated. Without
    `pristine` (an image built without the record) or without `stamp`, everything is
    restored every time. It leaves no variable or shell option behind; a failure exits
    with status 3 (reset() runs it in a subshell and reports the failure). A tracked
    folder the agent made unreadable is made readable again before the work tree is reset.

    `spare` names folders, each directly inside one of the `wipe` folders, that the wipe
    leaves as they are (see `RepoOps.keep_across_reset`); ValueError for any other path."""
    for path in spare:
        if posixpath.normpath(path) != path or posixpath.dirname(path) not in wipe or not posixpath.basename(path):
            raise ValueError(f"{path!r} is not a folder directly inside one of the emptied folders "
                             f"({', '.join(wipe)}); keep one of those folders' children")
    wd = shlex.quote(workdir)
    p = shlex.quote(pristine)
    wiped = " ".join(shlex.quote(d) for d in wipe)
    kept = [path.rstrip("/") for path in preserve or [] if path.strip("/")]
    keep = " ".join(f"-e {shlex.quote('/' + path)}" for path in kept)
    quoted_kept = " ".join(shlex.quote(path) for path in kept)
    spared = "".join(f"! -path {shlex.quote(path)} ! -path {shlex.quote(path + '/*')} " for path in spare)
    wipe_folders = (
        f"find {wiped} -xdev -mindepth 1 {spared}-delete 2>/dev/null || {{ find {wiped} -xdev -mindepth 1 "
        f"{spared}-type d -exec chmod u+rwx {{}} + 2>/dev/null; find {wiped} -xdev -mindepth 1 {spared}-delete 2>/dev/null; }}; "
    )
    remove_ipc = (
        "for f in /proc/sysvipc/shm /proc/sysvipc/msg /proc/sysvipc/sem; do [ -r $f ] || continue; "
        "mapfile -t l < $f; [ ${#l[@]} -gt 1 ] && { ipcrm --all 2>/dev/null; break; }; done; "
    )
    enter = f"[ -w {wd} ] && [ -x {wd} ] || chmod u+rwx {wd} 2>/dev/null; cd {wd} || exit 3; "
    if not pristine:
        return (f"{{ {wipe_folders}{remove_ipc}{enter}{SAFE_GIT} reset --hard -q {base_commit} && "
                f"{SAFE_GIT} clean -ffdqx {keep}; }}")
    owner_check = (
        f'find .git/objects -type f -user 0 | LC_ALL=C sort | cmp -s - {p}/git-objects.txt '
        '|| { echo "swerve: the base commit\'s git objects were replaced"; exit 3; }; '
        if objects_owned_by_root
        else ""
    )
    restore_kept = (
        f"for k in {quoted_kept}; do [ -e \"$k\" ] || kept=1; done; "
        f"if [ -n \"$kept\" ]; then rm -rf {quoted_kept} && tar -xf {p}/preserved.tar || exit 3; fi; "
        if kept else ""
    )
    kept_cases = "".join(f"./{shlex.quote(k)}|./{shlex.quote(k)}/*) kept=1;; " for k in kept)
    if stamp:
        walk = (
            f"if [ -e {shlex.quote(stamp)} ]; then mapfile -t changed < <(find . {wiped} -cnewer "
            f"{shlex.quote(stamp)} -print 2>/dev/null); else changed=(/ ./.git/config ./.git/objects ./.git/index .); fi; "
        )
    else:
        walk = "changed=(/ ./.git/config ./.git/objects ./.git/index .); "
    entries_check = (
        "if [ -n \"$gitdir\" ] && [ -z \"$meta\" ]; then shopt -s dotglob nullglob; l=(.git/*); "
        f"shopt -u dotglob nullglob; [ \"${{l[*]}}\" = {shlex.quote(git_entries)} ] || meta=1; fi; "
        if git_entries
        else "[ -n \"$gitdir\" ] && meta=1; "
    )
    return (
        f"{{ {remove_ipc}{enter}"
        '[ -d .git ] && [ ! -L .git ] && [ -d .git/objects ] && [ ! -L .git/objects ] '
        '|| { echo "swerve: .git was replaced"; exit 3; }; '
        # one walk finds what changed since the last reset (everything, when there is no stamp)
        f"{walk}"
        "meta=; objects=; index=; gitdir=; kept=; tree=; wipe=; for c in \"${changed[@]}\"; do case $c in "
        "./.git/objects|./.git/objects/*) objects=1;; ./.git/index) index=1;; ./.git) gitdir=1;; ./.git/*) meta=1;; "
        f"/*) wipe=1;; {kept_cases}*) tree=1;; esac; done; "
        f"{entries_check}"
        f"if [ -n \"$wipe\" ]; then {wipe_folders}fi; "
        "if [ -n \"$meta\" ]; then "
        "find .git -mindepth 1 -maxdepth 1 ! -name objects ! -name index -exec rm -rf {} + 2>/dev/null "
        "|| { chmod -R u+rwX .git 2>/dev/null; find .git -mindepth 1 -maxdepth 1 ! -name objects ! -name index "
        "-exec rm -rf {} +; }; "
        f"tar -xf {p}/git-meta.tar || exit 3; fi; "
        "if [ -n \"$objects\" ]; then "
        f"find .git/objects ! -type d | LC_ALL=C sort | LC_ALL=C comm -23 - {p}/git-objects.txt "
        "| tr '\\n' '\\0' | xargs -0 -r rm -f; "
        "find .git/objects -mindepth 1 -type d -empty -delete; mkdir -p .git/objects/info .git/objects/pack; "
        f"{owner_check}fi; "
        f"if [ -n \"$index\" ]; then {SAFE_GIT} ls-files -v | grep -q '^[a-zS]' && rm -f .git/index; fi; "
        "if [ -n \"$tree$index$meta$objects\" ]; then "
        f"{SAFE_GIT} reset --hard -q {base_commit} 2>/dev/null "
        f"|| {{ chmod -R u+rwX . 2>/dev/null; rm -f .git/index && {SAFE_GIT} reset --hard -q {base_commit}; }} "
        "|| exit 3; fi; "
        f"if [ -n \"$tree\" ]; then {SAFE_GIT} clean -ffdqx {keep} 2>/dev/null "
        f"|| {{ chmod -R u+rwX . && {SAFE_GIT} clean -ffdqx {keep}; }} || exit 3; fi; "
        f"{restore_kept}"
        "unset d f l c k changed meta objects index gitdir kept tree wipe; }"
    )


STAMP_TICK_SNIPPET = (
    'for ((__t = 0; __t < 20000; __t++)); do : > "$__s.tick" && [ "$__s.tick" -nt "$__s" ] && break; done; unset __t'
)
"""Builtins, with `__s` naming the stamp just touched: rewrite a tick file next to it until
its modification time is past the stamp's (at once where the kernel hands out fine-grained
times; within a clock tick, a few ms, where timestamps are coarse). A change made within
the stamp's own tick would otherwise look no newer than the stamp and escape the next
reset's walk (see `restore_script`)."""


class RepoOps:
    """Mixin for environments that have `shell: ShellSession` and `info`; call
    `_init_state()` first thing in the backend's __init__."""

    shell: ShellSession

    def _init_state(self) -> None:
        self._lock = threading.RLock()  # one command at a time
        self._state_lock = threading.Lock()  # guards `_closed` only, never held during a command
        self._closed = False
        self._untouched = False
        self._git_entries = ""
        self._generation = 0  # bumped by everything that can change the repository
        self._quiet_diff: tuple[int, str] | None = None
        self._kept: list[str] = []  # see keep_across_reset
        self._kept_pids: list[int] = []  # see keep_process_across_reset

    @property
    def untouched(self) -> bool:
        """True while the environment is as reset() leaves it: nothing was run or written
        through `exec`/`write_file` since it was created or last reset (so no process of
        the agent can exist). Callers that need a pristine environment skip `reset()` then."""
        return self._untouched and not self._closed

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed

    def _mark_closed(self) -> bool:
        """True for the first caller only. It does not take the command lock, so
        close() ends a running command instead of waiting for it."""
        with self._state_lock:
            if self._closed:
                return False
            self._closed = True
            return True

    def exec(self, cmd: str, timeout: float | None = None) -> ExecResult:
        """Run `cmd` in the persistent shell; one command at a time."""
        with self._lock:
            if self._closed:
                raise InfraError(f"environment for {self.info.instance_id} is closed")
            self._untouched = False
            self._generation += 1
            return self.shell.run(cmd, timeout)

    def __init__(self, *, workdir: str, base_commit: str) -> None:
        self.workdir = workdir
        self.base_commit = base_commit or self._head_commit()
        self.info.base_commit = self.base_commit
        self._preserve, self._git_entries = self._read_preserve_list()
        self._untouched = True

    def _head_commit(self) -> str:
        result = self.shell.run(f"{GIT} -C {shlex.quote(self.workdir)} rev-parse HEAD", timeout=60)
        if result.exit_code != 0:
            raise InfraError(f"{self.workdir} is not a git repository: {result.output.strip()[:200]}")
        return result.output.strip()

    def _read_preserve_list(self) -> tuple[list[str], str]:
        """The build metadata paths reset() keeps, and the pristine repository's `.git/*`
        names as the restore script's glob lists them (one round trip, at start)."""
        mark = "__swerve_git_entries__"
        result = self.shell.run(
            f"cat {PRESERVE_LIST} 2>/dev/null; echo; echo {mark}; ( cd {shlex.quote(self.workdir)} && "
            "shopt -s dotglob nullglob && l=(.git/*) && echo \"${l[*]}\" )", timeout=60, limit=0,
        )
        listing, _, entries = result.output.partition(f"\n{mark}\n")
        return [line.strip() for line in listing.splitlines() if line.strip()], entries.strip()

    def resolve(self, path: str) -> str:
        return posixpath.normpath(path if path.startswith("/") else posixpath.join(self.workdir, path))

    def read_file(self, path: str) -> str:
        target = self.resolve(path)
        result = self.shell.run(f"cat -- {shlex.quote(target)}", timeout=120, limit=0)
        if result.exit_code != 0:
            raise FileNotFoundError(f"cannot read {target}: {result.output.strip()[:200]}")
        return result.output

    def write_file(self, path: str, content: str) -> None:
        """Write `content` to `path` (folders made as needed). Writing a `.py` file also
        removes its cached bytecode: Python trusts a `.pyc` whose recorded source size and
        modification time (whole seconds) match, so an edit that keeps the size, made in
        the same second as the version last imported, would otherwise run the old code."""
        target = self.resolve(path)
        parent = posixpath.dirname(target)
        cmd = f"mkdir -p -- {shlex.quote(parent)} && printf '%s' {ansi_c_quote(content)} > {shlex.quote(target)}"
        if target.endswith(".py"):  # see `write_file`'s docstring: no stale bytecode after a same-size edit
            stem = posixpath.basename(target)[:-3]
            cmd += f" && rm -f -- {shlex.quote(parent)}/__pycache__/{shlex.quote(stem)}.*.pyc"
        self._untouched = False
        self._generation += 1
        result = self.shell.run(cmd, timeout=120, limit=0)
        if result.exit_code != 0:
            raise OSError(f"cannot write {target}: {result.output.strip()[:200]}")

    def diff(self) -> str:
        """Changes against the base commit, untracked files included, without touching
        the repository (a scratch copy of its index and a scratch object folder are used,
        so .git is as the agent left it). Untracked files larger
        than `limits.diff_file_limit_bytes` (tracked files larger than 16 times that, at
        least 16 MiB) are left out, each named on a `# swerve: left out of the diff: ...`
        line before the diff (git apply skips it), so a huge file cannot fill the host's memory.

        A clean repository (HEAD at the base commit and `git status` listing no change,
        untracked and submodule changes included) answers "" after that one `git status`
        (which does not write the index), as most steps of most episodes do; otherwise the
        full pipeline above runs in the same round trip.

        When the backend knows every process that belongs in the environment
        (`_known_pids`), the same round trip checks with shell builtins that no other one
        (a background job of the agent's) is alive; if none is, the diff is kept, and asked
        again before anything else ran (`exec`, `write_file`, `reset`) it is answered with
        no round trip at all (the `submit` after a step, a step that only read files)."""
        generation = self._generation
        if self._quiet_diff is not None and self._quiet_diff[0] == generation:
            return self._quiet_diff[1]
        tag = f"__swerve_quiet_{self.shell._nonce}__"
        known = self._known_pids()
        quiet = (
            f'__k=" {" ".join(str(pid) for pid in known)} $$ $BASHPID "; __q={tag}; for __d in /proc/[0-9]*; do '
            'case "$__k" in *" ${__d#/proc/} "*) ;; *) __q=;; esac; done; [ -z "$__q" ] || printf \'\\n%s\\n\' "$__q"; '
            if known else ""
        )
        wd = shlex.quote(self.workdir)
        limit = int(getattr(getattr(self, "limits", None), "diff_file_limit_bytes", 1 << 20))
        tracked_limit = max(16 * limit, 16 << 20)
        cmd = (
            f'( cd {wd} || exit; __st=$(GIT_OPTIONAL_LOCKS=0 {GIT} status --porcelain=v2 --branch '
            f'--untracked-files=all --ignore-submodules=none 2>/dev/null) && case $\'\\n\'"$__st"$\'\\n\' in '
            f'*$\'\\n\'[!#]*) ;; *$\'\\n\'"# branch.oid {self.base_commit}"$\'\\n\'*) {quiet}exit 0;; esac; '
            f'__i=$(mktemp) && __o=$(mktemp -d) && cp -p .git/index "$__i" 2>/dev/null; __x=(); '
            f'export GIT_OBJECT_DIRECTORY="$__o" GIT_ALTERNATE_OBJECT_DIRECTORIES="$PWD/.git/objects"; '
            f'while IFS=$\'\\t\' read -r -d \'\' __s __f; do __f=${{__f#./}}; __x+=(":(exclude,literal)$__f"); '
            f'printf \'# swerve: left out of the diff: %s (%s bytes, over the %s-byte limit)\\n\' "$__f" "$__s" {limit}; '
            f'done < <({GIT} ls-files -z --others --exclude-standard | sed -z \'s|^|./|\' '
            f'| xargs -0 -r sh -c \'find "$@" -prune -type f -size +{limit}c -printf "%s\\t%p\\0" 2>/dev/null\' _; '
            f'{GIT} ls-files -z --modified | sed -z \'s|^|./|\' '
            f'| xargs -0 -r sh -c \'find "$@" -prune -type f -size +{tracked_limit}c -printf "%s\\t%p\\0" 2>/dev/null\' _); '
            f'GIT_INDEX_FILE="$__i" {GIT} add -A -- . "${{__x[@]}}" >/dev/null 2>&1 && '
            f'GIT_INDEX_FILE="$__i" {GIT} diff --cached --binary --no-ext-diff {self.base_commit}; '
            f'__rc=$?; rm -rf "$__i" "$__o"; {quiet}exit $__rc )'
        )
        result = self.shell.run(cmd, timeout=300, limit=0)
        if result.exit_code != 0:
            raise InfraError(f"git diff failed in {self.workdir}: {result.output.strip()[:300]}")
        output = result.output
        if known and output.endswith(f"\n{tag}\n"):
            output = output[: -len(tag) - 2]
            self._quiet_diff = (generation, output) if self._generation == generation else None
        return output

    def _known_pids(self) -> list[int]:
        """The pids, besides the agent's shell, that belong in the environment when no
        command of the agent's runs (see `diff`); [] when the backend cannot tell."""
        return []

    def _stop_everything(self) -> None:
        """Kill every process the agent could have started (the backend's job)."""
        raise NotImplementedError

    def _restore_script(self) -> str:
        """The shell code that puts everything an episode can write back as the image had it."""
        raise NotImplementedError

    def _touch_stamp(self) -> None:
        """Mark the moment the restore finished (see `restore_script`'s `stamp`)."""

    def keep_across_reset(self, path: str) -> None:
        """Leave the folder `path` (directly inside a folder reset() empties, such as
        /tmp or $TMPDIR) in place through every later reset(). Only for environments that
        host no agent: whatever runs in the environment can write there, so the folder
        carries state from one episode into the next (the task factory keeps its sealed
        bytecode cache there, see swerve.harness.bytecode_cache). ValueError for a path
        that is not such a folder."""
        with self._lock:
            kept = [*self._kept, path]
            previous, self._kept = self._kept, kept
            try:
                self._restore_script()  # checks every kept path against the emptied folders
            except ValueError:
                self._kept = previous
                raise

    keeps_processes = False
    """Whether `keep_process_across_reset` can keep a process (the Docker backend)."""

    def keep_process_across_reset(self, pid: int) -> None:
        """Leave the process `pid` running through every later reset() and every kill
        after a command's timeout (its children are still killed). Only for environments
        that host no agent, as `keep_across_reset`: the task factory keeps its pytest
        server so (see swerve.harness.pytest_server). NotImplementedError for a backend
        that cannot spare a process."""
        raise NotImplementedError(f"{type(self).__name__} cannot keep a process through reset()")

    def reset(self) -> None:
        """Back to the image's state: every process of the agent killed; a new shell (no
        function, trap or variable of the old one survives); the repository at the base
        commit with its git configuration, hooks, refs and objects as built; /tmp, $HOME
        and the other writable places emptied (see `restore_script`).

        An `untouched` environment (nothing run through `exec` or `write_file` since it was
        created or last reset) is already in that state: reset() then returns at once."""
        with self._lock:
            if self._closed:
                raise InfraError(f"environment for {self.info.instance_id} is closed")
            if self._untouched:
                return
            self._generation += 1
            self._stop_everything()
            # in a subshell: a failing restore exits it and reset() reports at once (the shell
            # itself exiting would only make the respawner start another one)
            result = self.shell.fresh(f"( {self._restore_script()} )")
            if result.exit_code == 0:
                self._touch_stamp()
                self._untouched = True
        if result.exit_code != 0:
            raise InfraError(f"reset failed in {self.workdir}: {result.output.strip()[-300:]}")

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
