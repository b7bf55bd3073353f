"""Multi-line attack programs and the canary, kept out of the row table so that it stays readable.

Every string here is a hostile program that runs inside the sandbox, never on the test side.
"""

from __future__ import annotations

# What a child may see in os.environ: the runner image's PATH and HOSTNAME plus the variables that
# sandboxd.service.sandbox_spec sets. Anything else reached the sandbox from somewhere it should not.
ALLOWED_ENV = frozenset(
    {
        "PATH",
        "HOSTNAME",
        "HOME",
        "LANG",
        "PYTHONHASHSEED",
        "PYTHONPATH",
        "PYTHONDONTWRITEBYTECODE",
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "LD_BIND_NOW",
    }
)

# Runs right after an attack in the same container and proves the attack left nothing behind.
# Besides itself, the only processes it may see are fork-servers and their spawners (same command
# line, same seccomp state as PID 1, so not a locked-down child): PID 1's spawner, at most one zygote
# that PID 1 forked, and that zygote's spawner (runner/spare.c).
CANARY = f"""
import os
def status(pid):
    with open(f"/proc/{{pid}}/status") as lines:
        return dict(line.rstrip("\\n").split(":\\t", 1) for line in lines if ":\\t" in line)
def cmdline(pid):
    with open(f"/proc/{{pid}}/cmdline", "rb") as raw:
        return raw.read()
def seccomp(pid):
    return {{k: v for k, v in status(pid).items() if k.startswith("Seccomp")}}
me = os.getcwd()
assert os.path.dirname(me) == "/scratch", me
assert os.listdir("/scratch") == [os.path.basename(me)], os.listdir("/scratch")
assert os.listdir(me) == [], os.listdir(me)
for shared in ("/tmp", "/var/tmp", "/dev/shm"):
    assert not os.path.exists(shared) or os.listdir(shared) == [], (shared, os.listdir(shared))
others = {{int(name) for name in os.listdir("/proc") if name.isdigit()}} - {{1, os.getpid()}}
def server_like(pid, parents):
    return status(pid)["PPid"] in parents and cmdline(pid) == cmdline(1) and seccomp(pid) == seccomp(1)
servers = {{pid for pid in others if server_like(pid, {{"1"}})}}
servers |= {{pid for pid in others - servers if server_like(pid, {{str(p) for p in servers}})}}
assert others == servers and len(servers) <= 3, {{pid: (status(pid), cmdline(pid)) for pid in others}}
assert os.getppid() in {{1}} | servers, os.getppid()
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
assert fds[:4] == [0, 1, 2, 3] and len(fds) == 5, fds  # the fifth is listdir's own descriptor
unexpected = set(os.environ) - set({sorted(ALLOWED_ENV)!r})
assert not unexpected, unexpected
print("ok")
"""

# A frame in the right format but with a guessed nonce, plus fake protocol messages on stdout.
FORGED_FRAMES = r"""
import json, os, struct, sys
body = json.dumps({"v": 1, "nonce": "0" * 32, "outcome": "ok", "exc_type": None, "exc_builtin": False,
                   "exit_code": 0, "non_canonical": False, "encode_error": None, "values": []}).encode()
frame = struct.pack(">I", len(body)) + body
print(json.dumps({"op": "result", "status": "ok", "exit_code": 0, "signal": None}))
sys.stdout.flush()
os.write(1, frame)
os.write(3, frame)
os._exit(0)
"""

# The same forged frame, then a normal return: the runner appends its own frame, so there are two.
FORGED_FRAME_THEN_RETURN = r"""
import json, os, struct
body = json.dumps({"v": 1, "nonce": "f" * 32, "outcome": "ok", "exc_type": None, "exc_builtin": False,
                   "exit_code": 0, "non_canonical": False, "encode_error": None, "values": []}).encode()
os.write(3, struct.pack(">I", len(body)) + body)
"""

# The nonce is in the runner's own frames, so the program can write a *valid* frame and then fail.
# That gains nothing a program could not get by catching its own exception (verdicts and
# comparisons live on the trusted side), which is why the row expects "ok".
STOLEN_NONCE_FRAME = r"""
import gc, json, os, struct
nonce = next(o["nonce"] for o in gc.get_objects() if type(o) is dict and "nonce" in o and "encoder" in o)
body = json.dumps({"v": 1, "nonce": nonce, "outcome": "ok", "exc_type": None, "exc_builtin": False,
                   "exit_code": 0, "non_canonical": False, "encode_error": None, "values": []}).encode()
os.write(3, struct.pack(">I", len(body)) + body)
os._exit(0)
"""

LYING_EQ_REPR = """
class Liar:
    def __eq__(self, other):
        return True
    def __hash__(self):
        return 0
    def __repr__(self):
        return '{"status": "ok", "passed": true}'
print(repr(Liar()), Liar() == 1, Liar() == "anything")
"""

EXCEPTION_WITH_HOSTILE_STR = """
class Hostile(Exception):
    def __str__(self):
        raise RuntimeError("str")
    def __repr__(self):
        raise RuntimeError("repr")
raise Hostile()
"""


def _shellcode(*code: int) -> str:
    """Run raw x86-64 machine code from a PROT_EXEC mapping and print what it returns."""
    return (
        "import ctypes, mmap\n"
        "m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
        f"m.write(bytes({list(code)!r}))\n"
        "address = ctypes.addressof(ctypes.c_char.from_buffer(m))\n"
        "print(ctypes.CFUNCTYPE(ctypes.c_long)(address)())\n"
    )


SHELLCODE_RETURN_42 = _shellcode(0x48, 0xC7, 0xC0, 0x2A, 0, 0, 0, 0xC3)  # mov rax, 42; ret
# mov eax, 41 (socket); mov edi, 2; mov esi, 1; xor edx, edx; syscall; ret
SHELLCODE_SOCKET = _shellcode(
    0xB8, 41, 0, 0, 0, 0xBF, 2, 0, 0, 0, 0xBE, 1, 0, 0, 0, 0x31, 0xD2, 0x0F, 0x05, 0xC3
)
# xor edi, edi; mov esi, 0x41; mov eax, 2 (fork in the i386 table); int 0x80; ret: the 32-bit ABI is a
# different seccomp arch, which the filter kills. gVisor has no 32-bit ABI and runs int 0x80 as the
# 64-bit syscall of that number, open(rdi, rsi): with rsi (the flags) left to chance, whether that open
# passed the filter's read-only check depended on the interpreter's registers. O_WRONLY | O_CREAT makes
# it one the filter always kills there too.
SHELLCODE_INT80_FORK = _shellcode(0x31, 0xFF, 0xBE, 0x41, 0, 0, 0, 0xB8, 2, 0, 0, 0, 0xCD, 0x80, 0xC3)

# Reads the process's own memory (inherited from the fork-server) without faulting: write(2)
# from an unmapped address fails with EFAULT instead of crashing. Prints every "MARKER-..." found.
MEMORY_SCAN = r"""
import ctypes, gc, os
libc = ctypes.CDLL(None, use_errno=True)
libc.write.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)
r, w = os.pipe()
pages = {(id(o) & ~0xFFFFF) + k for o in gc.get_objects() for k in range(0, 0x100000, 4096)}
found = set()
for page in sorted(pages):
    n = libc.write(w, page, 4096)
    if n > 0:
        data = os.read(r, n)
        at = data.find(b"MARKER-")
        while at >= 0:
            found.add(data[at : at + 32].split(b'"')[0].decode("latin-1"))
            at = data.find(b"MARKER-", at + 1)
print(sorted(found))
"""

# A wider scan of the same kind: every page within 64 MiB of anything the program can point at
# (its objects, a malloc'd buffer, libc's code and data, the stack), so the mappings the fork-server
# set up (heap, arenas, anonymous maps next to the libraries) are covered too.
DEEP_MEMORY_SCAN = r"""
import ctypes, gc, os
libc = ctypes.CDLL(None, use_errno=True)
libc.write.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)
r, w = os.pipe()
anchors = {id(o) for o in gc.get_objects()}
anchors.add(ctypes.addressof(ctypes.create_string_buffer(1 << 20)))
anchors.add(ctypes.cast(libc.write, ctypes.c_void_p).value)
anchors.add(ctypes.c_void_p.in_dll(libc, "environ").value)  # the stack
anchors.add(ctypes.c_void_p.in_dll(libc, "__libc_stack_end").value)
span = 64 << 20
regions = {a & ~(span - 1) for a in anchors if a}
pages = set()
for base in regions:
    for page in range(max(base - span, 4096), base + 2 * span, 4096):
        pages.add(page)
found, readable = set(), 0
for page in sorted(pages):
    n = libc.write(w, page, 4096)
    if n > 0:
        readable += 1
        data = os.read(r, n)
        at = data.find(b"MARKER-")
        while at >= 0:
            found.add(data[at : at + 23].decode("latin-1"))
            at = data.find(b"MARKER-", at + 1)
print(readable > 1000, sorted(found))
"""
