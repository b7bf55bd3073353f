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
 * fd 4; pread64 and close are in every allowlist); the run's header for Python (nonce, encoder
 * options) is copied into `request`. Only old glibc symbols are used, so the object loads in the image
 * whatever the build host's glibc is (image.py checks the symbol versions).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SBX_ABI 1
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
    H_REQUEST = 52,   /* u32: length of the request JSON that follows the path */
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

static void close_from(int lowest) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lowest, ~0U, 0U) == 0) return;
#endif
    for (int fd = lowest; fd < 65536; fd++) close(fd);
}

/* The child: wait for the run, lock down, return to Python. Exits instead of returning on failure. */
static void become_run(int control, int out, int err, int frame, const void *fprog, char *request,
                       unsigned request_cap, unsigned *request_len) {
    static unsigned char data[CONTROL_BYTES];
    union {
        char space[CMSG_SPACE(MAX_RECEIVED_FDS * sizeof(int))];
        struct cmsghdr align;
    } ancillary;
    struct iovec vector = {.iov_base = data, .iov_len = sizeof data};
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
    uint32_t json_len = u32_at(data + H_REQUEST);
    if ((uint64_t)H_SIZE + scratch_len + json_len != (uint64_t)got || scratch_len == 0 || json_len > request_cap)
        fail();
    char *scratch = (char *)data + H_SIZE;
    if (memchr(scratch, 0, scratch_len) != NULL) fail();
    memcpy(request, data + H_SIZE + scratch_len, json_len);
    *request_len = json_len;

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

    /* The path is followed by the request JSON: terminate it in place (data is ours alone). */
    unsigned char saved = data[H_SIZE + scratch_len];
    data[H_SIZE + scratch_len] = 0;
    if (chdir(scratch) != 0) fail();
    data[H_SIZE + scratch_len] = saved;

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
 * Fork one spare. `ends` receives the fork-server's ends: the control socket (SOCK_SEQPACKET) and the
 * read ends of the stdout, stderr and frame pipes, all close-on-exec.
 * Returns the child's pid in the parent, or -errno (nothing is left open); 0 in the child, locked
 * down, with the run's request JSON in `request` (`*request_len` bytes) and its job memfd on fd 4.
 */
int sbx_fork_spare(int *ends, const void *fprog, char *request, unsigned request_cap, unsigned *request_len) {
    int control[2] = {-1, -1}, pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    int error = 0;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, control) != 0) return -errno;
    for (int i = 0; i < 3 && error == 0; i++)
        if (pipe2(pipes[i], O_CLOEXEC) != 0) error = errno;
    pid_t pid = error ? -1 : fork();
    if (pid < 0 && error == 0) error = errno;
    if (pid == 0) {
        close(control[0]);
        become_run(control[1], pipes[0][1], pipes[1][1], pipes[2][1], fprog, request, request_cap, request_len);
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
