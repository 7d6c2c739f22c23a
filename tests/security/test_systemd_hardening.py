"""The unit's hardening, read the way systemd reads it.

systemd cannot run here, so the unit is never started by these tests.  What can be checked: the
directives the issue asks for are there, and the system-call filter -- expanded with
`systemd-analyze syscall-filter` and combined line by line as systemd does -- lets through the
calls the daemon's libraries make (found with `strace -f` on a daemon run: libzmq's I/O threads
call sched_setscheduler and abort the process if it fails; GLib's thread pools call
sched_setattr), while still refusing the dangerous groups.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "facewatch.service"

# Called by the daemon's libraries under normal operation (strace -f of `facewatch run`).
NEEDED = ["sched_setscheduler", "sched_setattr", "sched_getparam", "sched_getscheduler", "prctl",
          "mmap", "mprotect", "clone3", "futex", "socket", "connect", "bind", "openat",
          "memfd_create", "ftruncate", "epoll_wait", "getrandom", "mbind"]
# Never needed, and what the filter is for.
REFUSED = ["mount", "umount2", "reboot", "kexec_load", "init_module", "ptrace", "setuid",
           "settimeofday", "swapon", "ioperm", "nice", "setpriority", "sched_setaffinity",
           "setrlimit"]


def directives() -> list[tuple[str, str]]:
    out = []
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.append((key, value))
    return out


@cache
def expand(group: str) -> frozenset[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    text = subprocess.run([tool, "syscall-filter", group], capture_output=True, text=True,
                          timeout=60, check=True).stdout
    names: set[str] = set()
    for line in text.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        names |= expand(item) if item.startswith("@") else {item}
    return frozenset(names)


def allowed_syscalls() -> frozenset[str]:
    """systemd's rule: the first SystemCallFilter= line decides allow-list or deny-list mode;
    later lines add to (or with ~, remove from) that list."""
    allowed: set[str] = set()
    first = True
    for key, value in directives():
        if key != "SystemCallFilter":
            continue
        deny = value.startswith("~")
        names: set[str] = set()
        for item in value.lstrip("~").split():
            names |= expand(item) if item.startswith("@") else {item}
        assert not (first and deny), "the filter must start as an allow list"
        allowed = allowed - names if deny else allowed | names
        first = False
    return frozenset(allowed)


def test_the_issue_hardening_is_all_there() -> None:
    d = dict(directives())
    assert d["User"] == "facewatch" and d["Group"] == "facewatch"  # a dedicated user
    assert (d["ProtectSystem"], d["ProtectHome"], d["PrivateTmp"], d["NoNewPrivileges"]) == \
        ("strict", "yes", "yes", "yes")
    assert set(d["RestrictAddressFamilies"].split()) <= {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    assert d["DevicePolicy"] == "closed" and d["UMask"] == "0077"
    assert d["StateDirectoryMode"] == "0700" and d["RuntimeDirectoryMode"] == "0700"
    assert d["CapabilityBoundingSet"] == "" and d["RestartPreventExitStatus"] == "3"
    devices = {value.split()[0] for key, value in directives() if key == "DeviceAllow"}
    # cameras, and NVIDIA GPUs under the old and the new (driver >= 545) /proc/devices names
    assert {"char-video4linux", "char-nvidia-frontend", "char-nvidia", "char-nvidiactl",
            "char-nvidia-uvm"} <= devices


def test_the_syscall_filter_lets_the_libraries_work_and_refuses_the_rest() -> None:
    allowed = allowed_syscalls()
    assert [s for s in NEEDED if s not in allowed] == []
    assert [s for s in REFUSED if s in allowed] == []
    # and it is the @system-service set, not something wide open
    assert allowed <= expand("@system-service") | {"sched_setscheduler", "sched_setattr",
                                                  "sched_setparam", "mbind", "set_mempolicy"}


def test_refused_calls_fail_instead_of_killing() -> None:
    """EPERM, not SIGSYS: a library probing an optional call (nice, affinity) carries on."""
    assert dict(directives())["SystemCallErrorNumber"] == "EPERM"


def test_no_credential_is_written_into_the_unit() -> None:
    text = UNIT.read_text()
    assert not re.search(r"(?i)password\s*=|passwd|secret\s*=", text)
    assert "LoadCredential" not in text or "mqtt_password" in text
