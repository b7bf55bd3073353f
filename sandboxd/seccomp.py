"""The engine-level seccomp profile for a whole sandbox container.

Two filters stack. This one is applied by the engine to every process in the container and must
let the fork-server work (fork, wait, kill its children, make scratch dirs, install the second
filter). The second, much tighter one is compiled by the fork-server from ``policy.syscalls`` and
applied to each child before model code runs; it kills on any other syscall.
"""

from __future__ import annotations

import json
import socket

from .policy import SandboxPolicy

# What the fork-server and the container's start-up (runc's final execve, the dynamic loader,
# CPython start-up) need beyond the child's allowlist.
FORKSERVER_SYSCALLS: tuple[str, ...] = (
    "execve",
    "arch_prctl",
    "set_tid_address",
    "prctl",
    "seccomp",
    "clone",
    "clone3",
    "fork",
    "vfork",
    "wait4",
    "waitid",
    "kill",
    "tgkill",
    "pidfd_open",
    "pidfd_send_signal",
    "memfd_create",
    "ftruncate",
    "mkdir",
    "mkdirat",
    "rmdir",
    "unlink",
    "unlinkat",
    "chdir",
    "fchdir",
    "setsid",
    "setrlimit",
    "prlimit64",
    "close_range",
    "openat",
    "open",
    "ioctl",
    "umask",
    "getpgid",
    "setpgid",
    "capget",
    "capset",
    "getdents",
    "fchown",
    "fchmod",
    "fchmodat",
    "sched_setaffinity",
    "sched_setscheduler",  # SCHED_BATCH at configure (ContainerOptions.scheduling); children may not
    "get_mempolicy",
    "set_mempolicy",
    "mbind",
    "getcpu",
    "statfs",
    "newfstatat",
    "epoll_create",
    "epoll_wait",
    "eventfd2",
    "socketpair",
    "sendmsg",
    "recvmsg",
    "shutdown",
    "exit_group",
)


def container_profile(policy: SandboxPolicy) -> str:
    """Docker/OCI seccomp JSON: allow the union of both lists, fail everything else with EPERM."""
    names = sorted(set(policy.syscalls) | set(FORKSERVER_SYSCALLS))
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ALLOW"},
            # The fork-server's channel to the daemon (backends/channel.py): unix sockets only.
            {
                "names": ["socket"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": socket.AF_UNIX, "op": "SCMP_CMP_EQ"}],
            },
            {"names": ["connect"], "action": "SCMP_ACT_ALLOW"},
        ],
    }
    return json.dumps(profile, separators=(",", ":"), sort_keys=True)
