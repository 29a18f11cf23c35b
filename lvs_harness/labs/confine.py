"""Confine the UML process on the host: seccomp (the XSTATE workaround) and Landlock.

Both run in the child between fork and exec, so they hold for UML and every helper it forks.

Landlock matters because UML's ``hostfs=DIR`` does not stop ``..``: root in the guest
can ``mount -t hostfs none /mnt -o /../../../tmp`` and reach the host's /tmp (seen on
this machine). With Landlock, the process can read only the UML binary, system
libraries and the image, and write only its own run directories; everything else —
/tmp, /home, other submissions — is out of reach, whatever path hostfs is given.

Example::

    preexec = lambda: (hide_xstate(), landlock(read=[kernel, image], write=[run_dir]))
"""

from __future__ import annotations

import ctypes
import os
import struct

_libc = ctypes.CDLL(None, use_errno=True)
NR_LANDLOCK_CREATE_RULESET, NR_LANDLOCK_ADD_RULE, NR_LANDLOCK_RESTRICT_SELF = 444, 445, 446
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2

# Landlock filesystem rights (ABI 1-5)
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
ALL_FS_V1 = (1 << 13) - 1  # execute … make_sym
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
READ = EXECUTE | READ_FILE | READ_DIR


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 where Landlock is unavailable."""
    version = _libc.syscall(NR_LANDLOCK_CREATE_RULESET, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    return max(version, 0)


def _check(ret: int, what: str) -> int:
    if ret < 0:
        raise OSError(ctypes.get_errno(), what)
    return ret


def _no_new_privs() -> None:
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


def landlock(read: list[str], write: list[str]) -> None:
    """Allow only reading (and executing) ``read`` and full access beneath ``write``; deny the rest.

    Also denies TCP bind/connect (ABI >= 4) and signals/abstract sockets beyond the
    process's own domain (ABI >= 6). Raises OSError where Landlock is unavailable.
    """
    abi = landlock_abi()
    if abi < 1:
        raise OSError(38, "Landlock is not available on this kernel")
    fs = ALL_FS_V1 | (REFER if abi >= 2 else 0) | (TRUNCATE if abi >= 3 else 0) | (IOCTL_DEV if abi >= 5 else 0)
    net = (NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0
    attr = struct.pack("QQQ", fs, net, scoped)
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    buf = ctypes.create_string_buffer(attr[:size])
    ruleset = _check(_libc.syscall(NR_LANDLOCK_CREATE_RULESET, buf, size, 0), "landlock_create_ruleset")
    try:
        for paths, access in ((read, READ), (write, fs)):
            for path in paths:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                try:
                    allowed = access if os.path.isdir(path) else access & (EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE)
                    rule = ctypes.create_string_buffer(struct.pack("=Qi", allowed, fd))  # path_beneath_attr, packed
                    _check(_libc.syscall(NR_LANDLOCK_ADD_RULE, ruleset, 1, rule, 0), f"landlock_add_rule({path})")
                finally:
                    os.close(fd)
        _no_new_privs()
        _check(_libc.syscall(NR_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)


def hide_xstate() -> None:
    """Make ptrace(PTRACE_GETREGSET, NT_X86_XSTATE) fail with EIO for this process and its children.

    UML 6.1 probes XSTATE at boot and, if the probe works, later restores FPU state with a
    buffer of the AVX-only size (832 bytes); hosts with AVX-512 or AMX reject that
    (EFAULT) and the guest's init dies ("ptrace set fp regs failed, errno = 14"). With the
    probe failing, UML uses the FXSR path, which works on every x86-64 host.
    """
    ld_w_abs, jeq_k, ret_k = 0x20, 0x15, 0x06
    audit_arch_x86_64, nr_ptrace, ptrace_getregset, nt_x86_xstate = 0xC000003E, 101, 0x4204, 0x202
    prog = [
        (ld_w_abs, 0, 0, 4),
        (jeq_k, 0, 7, audit_arch_x86_64),
        (ld_w_abs, 0, 0, 0),
        (jeq_k, 0, 5, nr_ptrace),
        (ld_w_abs, 0, 0, 16),
        (jeq_k, 0, 3, ptrace_getregset),
        (ld_w_abs, 0, 0, 32),
        (jeq_k, 0, 1, nt_x86_xstate),
        (ret_k, 0, 0, 0x00050000 | 5),  # SECCOMP_RET_ERRNO | EIO
        (ret_k, 0, 0, 0x7FFF0000),  # SECCOMP_RET_ALLOW
    ]
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.cast(buf, ctypes.c_void_p))
    _no_new_privs()
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "prctl(PR_SET_SECCOMP)")
