/*
 * The spare's path from fork(2) to model code, in C (see spare.py, which loads this with ctypes).
 *
 * A spare is a child forked ahead of its run (forkserver.Spare). Run in Python, the steps between the
 * fork and the job (return from the fork call, wait for the run, decode its header, lock down) cost
 * about 1.2 ms of the child's CPU and 300 copy-on-write page faults per run, several times the job
 * itself: every Python operation writes refcounts and allocations into pages the child shares with
 * the fork-server. Here they touch only the C stack and one buffer.
 *
 * sbx_fork_spare() makes the spare's socketpair and pipes, forks, and in the parent returns the pid and
 * the fork-server's ends. In the child it blocks until the run arrives, then performs the lock-down of
 * child.lock_down in the same order (DESIGN.md §2.2), and only then returns 0 to Python:
 *
 *   session -> fds (stdin/stdout/stderr/frame on 0-3, the job memfd on 4, everything else closed)
 *   -> scratch directory -> rlimits (CPU, AS, FSIZE, NOFILE, NPROC = 0, CORE = 0)
 *   -> no_new_privs -> the seccomp filter compiled once by the fork-server.
 *
 * Any failure exits with status 121 (child.EXIT_SETUP_FAILED) before any model text is read, so the
 * fork-server reports a set-up failure. The job memfd is read by Python after the lock-down (it is on
 * fd 4; pread64 and close are in every allowlist): it holds the run's request for Python (nonce,
 * encoder options) as well as the job, so nothing here passes data to Python. Only old glibc symbols
 * are used, so the object loads in the image whatever the build host's glibc is (image.py checks the
 * symbol versions).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SBX_ABI 4
#define WARM_SPARES 0x80000000u /* in the spawner's count: these spares are warm ones */
#define SETUP_FAILED 121
#define JOB_FD 4
#define CONTROL_BYTES 65536
#define MAX_RECEIVED_FDS 2

/* The binary part of a run's control message, packed by spare.py (struct "<IIQQQQQIIQ"). */
enum {
    H_MAGIC = 0,      /* u32: SBX_ABI */
    H_FLAGS = 4,      /* u32: bit 0: a stdin memfd follows the job memfd */
    H_CPU_SOFT = 8,   /* u64 */
    H_CPU_HARD = 16,  /* u64 */
    H_AS = 24,        /* u64: address space, bytes */
    H_FSIZE = 32,     /* u64 */
    H_NOFILE = 40,    /* u64 */
    H_SCRATCH = 48,   /* u32: length of the scratch path that follows the header */
    H_RESERVED = 52,  /* u32: 0 */
    H_JOB_BYTES = 56, /* u64: unused here, part of the layout for spare.py */
    H_SIZE = 64
};

int sbx_abi(void) { return SBX_ABI; }

static uint32_t u32_at(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint64_t u64_at(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void fail(void) { _exit(SETUP_FAILED); }

static void limit(int resource, uint64_t soft, uint64_t hard) {
    struct rlimit value = {.rlim_cur = (rlim_t)soft, .rlim_max = (rlim_t)hard};
    if (setrlimit(resource, &value) != 0) fail();
}

static void move_fd(int from, int to) {
    if (from == to) return;
    if (dup2(from, to) != to) fail();
}

/* close_range(2), else (gVisor has none) every fd listed in /proc/self/fd: a loop over all possible
   numbers took 3 s there, a syscall each. Rescans until a pass finds nothing more to close. */
static void close_from(int lowest) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lowest, ~0U, 0U) == 0) return;
#endif
    DIR *listing = opendir("/proc/self/fd");
    if (listing == NULL) fail();
    int own = dirfd(listing);
    for (int closed = 1; closed;) {
        closed = 0;
        rewinddir(listing);
        for (struct dirent *entry; (entry = readdir(listing)) != NULL;) {
            char *end;
            long fd = strtol(entry->d_name, &end, 10);
            if (*end == 0 && end != entry->d_name && fd >= lowest && fd != own) {
                close((int)fd);
                closed = 1;
            }
        }
    }
    closedir(listing);
}

/* Pages a run usually writes (sbx_set_touch; docs/design.md, "Warm spares"). A warm spare writes each
   to itself while it waits, so that its run finds them private already instead of taking a copy-on-write
   fault on each. Addresses in this process's image, found by the fork-server's probe (forkserver.py). */
static uintptr_t *touch_pages;
static size_t touch_count;

void sbx_set_touch(uintptr_t *pages, size_t count) {
    touch_pages = pages;
    touch_count = count;
}

static void touch(void) {
    for (size_t i = 0; i < touch_count; i++) {
        volatile unsigned char *page = (volatile unsigned char *)touch_pages[i];
        *page = *page;
    }
}

/* Keep only the pages still mapped here (malloc_trim gives the heap's top back): madvise(MADV_NORMAL)
   changes nothing, and fails with ENOMEM where nothing is mapped. */
static void keep_mapped_pages(void) {
    size_t kept = 0;
    for (size_t i = 0; i < touch_count; i++)
        if (madvise((void *)touch_pages[i], 4096, MADV_NORMAL) == 0) touch_pages[kept++] = touch_pages[i];
    touch_count = kept;
}

/* The child: wait for the run, lock down, return to Python. Exits instead of returning on failure. */
static void become_run(int control, int out, int err, int frame, const void *fprog) {
    static unsigned char data[CONTROL_BYTES];
    union {
        char space[CMSG_SPACE(MAX_RECEIVED_FDS * sizeof(int))];
        struct cmsghdr align;
    } ancillary;
    struct iovec vector = {.iov_base = data, .iov_len = sizeof data - 1}; /* room for the path's NUL */
    struct msghdr message = {
        .msg_iov = &vector, .msg_iovlen = 1, .msg_control = ancillary.space, .msg_controllen = sizeof ancillary.space};
    ssize_t got;
    do {
        got = recvmsg(control, &message, MSG_CMSG_CLOEXEC);
    } while (got < 0 && errno == EINTR);
    if (got == 0) _exit(0); /* EOF: the fork-server is done with this spare */
    if (got < H_SIZE || (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) fail();
    close(control);
    if (u32_at(data + H_MAGIC) != SBX_ABI) fail();

    int fds[MAX_RECEIVED_FDS];
    int received = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&message); c != NULL; c = CMSG_NXTHDR(&message, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) fail();
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        if (count > (size_t)(MAX_RECEIVED_FDS - received)) fail();
        memcpy(fds + received, CMSG_DATA(c), count * sizeof(int));
        received += (int)count;
    }
    int has_stdin = (u32_at(data + H_FLAGS) & 1) != 0;
    if (received != 1 + has_stdin) fail();

    uint32_t scratch_len = u32_at(data + H_SCRATCH);
    if ((uint64_t)H_SIZE + scratch_len != (uint64_t)got || scratch_len == 0 || u32_at(data + H_RESERVED) != 0)
        fail();
    char *scratch = (char *)data + H_SIZE;
    if (memchr(scratch, 0, scratch_len) != NULL) fail();

    /* Received fds and the pipes' write ends are all above 3; park the job above the targets first. */
    int job = fcntl(fds[0], F_DUPFD, 16);
    if (job < 0) fail();
    if (setsid() < 0) fail();
    if (has_stdin) move_fd(fds[1], 0);
    move_fd(out, 1);
    move_fd(err, 2);
    move_fd(frame, 3);
    move_fd(job, JOB_FD);
    close_from(JOB_FD + 1);

    /* The path ends the message: terminate it in place (data is ours alone, and has room). */
    data[H_SIZE + scratch_len] = 0;
    if (chdir(scratch) != 0) fail();

    limit(RLIMIT_CPU, u64_at(data + H_CPU_SOFT), u64_at(data + H_CPU_HARD));
    limit(RLIMIT_AS, u64_at(data + H_AS), u64_at(data + H_AS));
    limit(RLIMIT_FSIZE, u64_at(data + H_FSIZE), u64_at(data + H_FSIZE));
    limit(RLIMIT_NOFILE, u64_at(data + H_NOFILE), u64_at(data + H_NOFILE));
    limit(RLIMIT_NPROC, 0, 0);
    limit(RLIMIT_CORE, 0, 0);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail();
    if (prctl(PR_SET_SECCOMP, 2 /* SECCOMP_MODE_FILTER */, fprog, 0, 0) != 0) fail();
}

/*
 * Make one spare: its socketpair and pipes, then fork(2), or with `clone_parent` a clone(2) whose
 * parent is the caller's parent (the spawner's children belong to the fork-server, see below).
 * `ends` receives the fork-server's ends: the control socket (SOCK_SEQPACKET) and the read ends of the
 * stdout, stderr and frame pipes, all close-on-exec. Returns the child's pid in the caller, or -errno
 * (nothing is left open); 0 in the child, locked down (see become_run).
 */
static int spawn(int *ends, int clone_parent, const void *fprog, int warm) {
    int control[2] = {-1, -1}, pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    int error = 0;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, control) != 0) return -errno;
    for (int i = 0; i < 3 && error == 0; i++)
        if (pipe2(pipes[i], O_CLOEXEC) != 0) error = errno;
    pid_t pid = -1;
    if (error == 0) {
        /* A bare clone: no stack of its own (fork semantics), SIGCHLD to the parent. glibc's cached TID
           goes stale in the child; glibc >= 2.34 re-reads it from the kernel wherever it matters
           (raise, pthread_kill on self), and the child never starts threads. */
        pid = clone_parent ? (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0) : fork();
        if (pid < 0) error = errno;
    }
    if (pid == 0) {
        close(control[0]);
        if (warm) {
            /* Forked from the fork-server itself (no spawner), whose heap may have given pages back
               since the probe: keep only those still mapped (the spawner did that once, at its start). */
            if (!clone_parent) keep_mapped_pages();
            touch();
        }
        become_run(control[1], pipes[0][1], pipes[1][1], pipes[2][1], fprog);
        return 0;
    }
    close(control[1]);
    for (int i = 0; i < 3; i++) close(pipes[i][1]);
    if (error) {
        close(control[0]);
        for (int i = 0; i < 3; i++) close(pipes[i][0]);
        return -error;
    }
    ends[0] = control[0];
    for (int i = 0; i < 3; i++) ends[1 + i] = pipes[i][0];
    return (int)pid;
}

/* Fork one spare from the calling process (see spawn). */
int sbx_fork_spare(int *ends, const void *fprog, int warm) { return spawn(ends, 0, fprog, warm); }

/*
 * The spawner: a process forked from the fork-server once, after its warm-up, that only makes spares.
 *
 * A child shares every page of the process it is forked from, copy-on-write, so every page that process
 * writes afterwards is copied (3-4 us each here). The fork-server writes hundreds per run (Python
 * bookkeeping for the run before and the run after), while this loop writes only its stack. Its spares
 * are cloned with CLONE_PARENT: they are the fork-server's children, which waits for them, signals them
 * and reads their rusage exactly as before.
 *
 * Protocol on `sock` (SOCK_SEQPACKET): first the spawner sends its hello (see the probe below); then the
 * fork-server sends a u32 count (its top bit set for warm spares, which write the touch pages); the
 * spawner answers with one
 * message per spare, an i32 pid carrying the fork-server's four ends (SCM_RIGHTS), or an i32 -errno
 * (and stops that burst). EOF on `sock` ends the spawner. Returns only in a spare, with 0, locked down.
 */
int sbx_spawner_serve(int sock, const void *fprog) {
    /* Every spare is cloned from this image: each clone copies the page-table entries of its private
       memory and each exit tears them down. The heap still holds the chunks that the fork-server's
       imports and warm-up freed; give their pages back first. A spare that allocates there takes a
       zero-fill fault instead of a copy-on-write one (docs/design.md, "The spawner"). */
    malloc_trim(0);
    keep_mapped_pages();
    /* First a probe: gVisor accepts CLONE_PARENT but makes the caller the parent anyway. The hello is the
       probe's pid when it is the fork-server's child (which reaps it), else 0 and the spawner exits. */
    int32_t hello = 0;
    pid_t probe = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
    if (probe == 0) _exit(0);
    if (probe > 0) {
        int status;
        pid_t reaped;
        do {
            reaped = waitpid(probe, &status, 0);
        } while (reaped < 0 && errno == EINTR);
        if (reaped < 0 && errno == ECHILD) hello = probe;
    }
    struct iovec greeting = {.iov_base = &hello, .iov_len = sizeof hello};
    struct msghdr first = {.msg_iov = &greeting, .msg_iovlen = 1};
    if (sendmsg(sock, &first, MSG_NOSIGNAL) < 0 || hello == 0) _exit(0);
    for (;;) {
        uint32_t count;
        struct iovec into = {.iov_base = &count, .iov_len = sizeof count};
        struct msghdr command = {.msg_iov = &into, .msg_iovlen = 1};
        ssize_t got = recvmsg(sock, &command, 0); /* recvmsg/sendmsg: the container allows no recvfrom/sendto */
        if (got < 0 && errno == EINTR) continue;
        if (got != (ssize_t)sizeof count) _exit(got == 0 ? 0 : 1);
        int warm = (count & WARM_SPARES) != 0; /* warm spares write the touch pages while they wait */
        count &= ~WARM_SPARES;
        for (uint32_t i = 0; i < count; i++) {
            int ends[4];
            int32_t pid = spawn(ends, 1, fprog, warm);
            if (pid == 0) return 0;
            union {
                char space[CMSG_SPACE(4 * sizeof(int))];
                struct cmsghdr align;
            } ancillary;
            struct iovec vector = {.iov_base = &pid, .iov_len = sizeof pid};
            struct msghdr message = {.msg_iov = &vector, .msg_iovlen = 1};
            if (pid > 0) {
                message.msg_control = ancillary.space;
                message.msg_controllen = sizeof ancillary.space;
                struct cmsghdr *c = CMSG_FIRSTHDR(&message);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(4 * sizeof(int));
                memcpy(CMSG_DATA(c), ends, 4 * sizeof(int));
            }
            ssize_t sent;
            do {
                sent = sendmsg(sock, &message, MSG_NOSIGNAL);
            } while (sent < 0 && errno == EINTR);
            if (pid > 0)
                for (int k = 0; k < 4; k++) close(ends[k]);
            if (sent < 0) _exit(1);
            if (pid < 0) break;
        }
    }
}
