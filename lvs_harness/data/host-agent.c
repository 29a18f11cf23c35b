/* lvs-harness's command channel inside the UML guest: one long-lived process on its own serial
 * line that runs each lab host's commands in that host's namespaces — per command one
 * clone(CLONE_VM | CLONE_VFORK), three setns(2) in the child and one exec — of the command itself
 * when it is a plain "program arg …" line (no quoting, expansion, redirection or shell builtin:
 * what sh would run the same way), else of /bin/sh -c — the result pushed back when it ends.
 * (A fork copies the forking process's address space, which in UML means host page tables built
 * through ptrace: measured 23 ms per fork+exec from perl, 14.5 ms per vfork+exec.)
 *
 * Each lab host has its own PID namespace (NS_STATE_DIR/ns/HOST.pid, held by `host-agent --init`,
 * its PID 1): the agent enters it before the clone, so a command's `kill -9 -1` or fork bomb reaches
 * that host only. Where CGROUP_DIR is given, the child joins CGROUP_DIR/<netns name> (its pids and
 * memory limits) first, and runs without CAP_SYS_TIME and CAP_SYS_MODULE (the guest's clock and
 * kernel are every host's). A command's stdout and stderr are each kept to their first and last
 * KEEP bytes; what lies between is dropped and the reply says how many bytes.
 *
 * Usage: host-agent TTY NETNS_PREFIX NS_STATE_DIR SPOOL_DIR [CGROUP_DIR]  (the line already in raw mode)
 *        host-agent --init    (PID 1 of a lab host's PID namespace: mounts its /proc, then reaps
 *                              orphans until killed from outside; "ready" on stdout once mounted)
 * Requests (host -> agent):  "X <id> <host> <timeout ms> <command bytes> <stdin bytes>\n" command stdin
 *                            "S …" the same, its stdout streamed: each read of it is sent at once as
 *                            "O <id> <bytes>\n" data (a monitor: `ip monitor` hands over its events live)
 *                            "K <id>\n" (kill that command's process group: it then answers R as usual)
 *                            "Q\n" (exit)
 * Replies  (agent -> host):  "READY <pid>\n" once; per request
 *                            "R <id> <rc> <timed out 0|1> <stdout bytes> <stderr bytes>\n" stdout stderr
 *                            and "A <bytes>\n" for every read of its line: the host keeps at most 2 KB
 *                            unacknowledged (UML's serial line stops delivering for good once the
 *                            guest tty's 4 KB buffer has filled: measured, a 5 KB request then hung
 *                            every later one).
 * rc is the exit status, or 128 + the signal; a command still running at its timeout is killed
 * with its whole process group (daemons that called setsid stay, as under systemd); a command
 * whose output is still held by a background child is answered GRACE s after it exited. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_JOBS 256
#define GRACE 1.0
#define KILL_WAIT 10.0
#define KEEP (1024 * 1024)       /* bytes kept at each end of a command's stdout or stderr */

extern char **environ;

struct buf { char *data; size_t len, cap; unsigned long long dropped; };

struct job {
    int used;
    long id;
    pid_t pid;
    int out_fd, err_fd;          /* -1 once at EOF */
    struct buf out, err;
    double deadline, exited;
    int timed_out, reaped, rc, stream;
};

static struct job jobs[MAX_JOBS];
static int line_fd;
static const char *prefix, *state, *spool, *cgroups;
static int own_pidns = -1;
static int sigpipe_fds[2];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "lvs-harness agent: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void append(struct buf *b, const char *data, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) die("out of memory");
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
}

/* Keep the first KEEP and the last KEEP bytes of b (it holds more than 2 * KEEP); count the rest. */
static void keep_ends(struct buf *b) {
    size_t drop = b->len - 2 * (size_t)KEEP;
    memmove(b->data + KEEP, b->data + KEEP + drop, (size_t)KEEP);
    b->len = 2 * (size_t)KEEP;
    b->dropped += drop;
}

/* Append, dropping the middle once more than 3 * KEEP are held, so each byte is moved at most once. */
static void append_bounded(struct buf *b, const char *data, size_t n) {
    append(b, data, n);
    if (b->len > 3 * (size_t)KEEP) keep_ends(b);
}

static void write_all(const char *data, size_t n) {
    while (n > 0) {
        ssize_t w = write(line_fd, data, n);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            exit(0);                 /* the line is gone: so is the harness */
        }
        data += w;
        n -= (size_t)w;
    }
}

/* One output as sent: all of it, or its head, a line saying how much was dropped, its tail. */
static size_t sent_len(struct buf *b, char *note, size_t note_size) {
    if (!b->dropped) { note[0] = 0; return b->len; }
    if (b->len > 2 * (size_t)KEEP) keep_ends(b);       /* the tail is the last KEEP bytes exactly */
    snprintf(note, note_size, "\n[lvs-harness: %llu bytes of this output dropped here; the first and last %d kept]\n",
             b->dropped, KEEP);
    return b->len + strlen(note);
}

static void send_buf(const struct buf *b, const char *note) {
    if (!b->dropped) { if (b->len) write_all(b->data, b->len); return; }
    write_all(b->data, KEEP);
    write_all(note, strlen(note));
    write_all(b->data + KEEP, b->len - KEEP);
}

static void reply(long id, int rc, int timed_out, struct buf *out, struct buf *err) {
    char head[128], out_note[128], err_note[128];
    size_t out_len = sent_len(out, out_note, sizeof out_note), err_len = sent_len(err, err_note, sizeof err_note);
    int n = snprintf(head, sizeof head, "R %ld %d %d %zu %zu\n", id, rc, timed_out, out_len, err_len);
    write_all(head, (size_t)n);
    send_buf(out, out_note);
    send_buf(err, err_note);
}

static void reply_error(long id, int rc, const char *fmt, ...) {
    struct buf none = {0}, err = {0};
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    append(&err, text, n < (int)sizeof text ? (size_t)n : sizeof text - 1);
    reply(id, rc, 0, &none, &err);
    free(err.data);
}

static void on_chld(int sig) {
    (void)sig;
    int saved = errno;
    (void)!write(sigpipe_fds[1], "c", 1);
    errno = saved;
}

/* The child of clone(CLONE_VM | CLONE_VFORK): on its own stack (so it cannot clobber the
 * suspended parent's frame, as a vfork child would), system calls only, then exec or _exit. */
struct spawn { int in_fd, out_fd, err_fd, cg_fd, ns[3]; char **argv, **plain; };
static char child_stack[64 * 1024] __attribute__((aligned(16)));

static void child_fail(const char *what) {
    char text[256];
    int n = snprintf(text, sizeof text, "lvs-harness agent: %s: %s\n", what, strerror(errno));
    (void)!write(2, text, (size_t)n);
    _exit(126);
}

static int child_main(void *arg) {
    struct spawn *s = arg;
    setsid();
    if (s->cg_fd >= 0 && write(s->cg_fd, "0", 1) != 1) child_fail("join the lab host's cgroup");
    /* what is the whole guest's, not one host's: its clock (on VMs each machine has its own; here
     * one host's `date -s` would move every host's) and its kernel's modules */
    if (s->cg_fd >= 0 && (prctl(PR_CAPBSET_DROP, CAP_SYS_TIME, 0, 0, 0) < 0 ||
                          prctl(PR_CAPBSET_DROP, CAP_SYS_MODULE, 0, 0, 0) < 0)) child_fail("drop capabilities");
    if (dup2(s->in_fd, 0) < 0 || dup2(s->out_fd, 1) < 0 || dup2(s->err_fd, 2) < 0) _exit(126);
    for (int k = 0; k < 3; k++) if (setns(s->ns[k], 0) < 0) child_fail("setns into the lab host");
    if (chdir("/root") < 0 && chdir("/") < 0) child_fail("chdir");
    if (s->plain) {                  /* PATH searched here, in the host's mount namespace */
        const char *path = getenv("PATH");
        char file[4096];
        while (path && *path) {
            const char *end = strchr(path, ':');
            size_t n = end ? (size_t)(end - path) : strlen(path);
            if (n && n + strlen(s->plain[0]) + 2 < sizeof file) {
                memcpy(file, path, n);
                file[n] = '/';
                strcpy(file + n + 1, s->plain[0]);
                execve(file, s->plain, environ);
            }
            path = end ? end + 1 : NULL;
        }                            /* not found (or not executable): sh says so, as before */
    }
    execve("/bin/sh", s->argv, environ);
    child_fail("cannot run /bin/sh");
    return 126;
}

/* "program arg …" that sh would run as one exec of program (see the top), split into words;
 * NULL for anything else. */
static char **plain_words(char *cmd) {
    static const char *builtins[] = {".", ":", "[", "alias", "bg", "break", "cd", "chdir", "command",
        "continue", "echo", "eval", "exec", "exit", "export", "false", "fc", "fg", "getopts", "hash",
        "jobs", "kill", "local", "printf", "pwd", "read", "readonly", "return", "set", "shift", "test",
        "times", "trap", "true", "type", "ulimit", "umask", "unalias", "unset", "wait", NULL};
    for (const char *c = cmd; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _./:=,+%@-", *c)) return NULL;
    static char *words[64];
    int n = 0;
    for (char *w = strtok(cmd, " "); w; w = strtok(NULL, " ")) {
        if (n == 63) return NULL;
        words[n++] = w;
    }
    words[n] = NULL;
    if (n == 0 || strchr(words[0], '=') || strchr(words[0], '/')) return NULL;   /* an assignment; a path */
    for (int k = 0; builtins[k]; k++) if (!strcmp(words[0], builtins[k])) return NULL;
    return words;
}

static void start_job(long id, const char *host, long timeout_ms, const char *cmd, const char *in, size_t in_len,
                      int stream) {
    int slot = -1;
    for (int i = 0; i < MAX_JOBS; i++) if (!jobs[i].used) { slot = i; break; }
    if (slot < 0) { reply_error(id, 126, "lvs-harness agent: %d commands at once already\n", MAX_JOBS); return; }
    char path[3][512];
    snprintf(path[0], sizeof path[0], "/run/netns/%s-%s", prefix, host);
    snprintf(path[1], sizeof path[1], "%s/ns/%s.uts", state, host);
    snprintf(path[2], sizeof path[2], "%s/ns/%s.mnt", state, host);
    int ns[3] = {-1, -1, -1};
    for (int k = 0; k < 3; k++) {
        ns[k] = open(path[k], O_RDONLY | O_CLOEXEC);
        if (ns[k] < 0) {
            reply_error(id, 126, "lvs-harness agent: no lab host %s (%s: %s)\n", host, path[k], strerror(errno));
            for (int j = 0; j < k; j++) close(ns[j]);
            return;
        }
    }
    char pid_path[512], cg_path[512];
    snprintf(pid_path, sizeof pid_path, "%s/ns/%s.pid", state, host);
    int pid_ns = open(pid_path, O_RDONLY | O_CLOEXEC), cg_fd = -1;
    if (pid_ns < 0 && errno != ENOENT) {
        reply_error(id, 126, "lvs-harness agent: %s: %s\n", pid_path, strerror(errno));
        for (int k = 0; k < 3; k++) close(ns[k]);
        return;
    }
    if (cgroups) {
        snprintf(cg_path, sizeof cg_path, "%s/%s-%s/cgroup.procs", cgroups, prefix, host);
        cg_fd = open(cg_path, O_WRONLY | O_CLOEXEC);
    }
    char in_path[512] = "/dev/null";
    if (in_len) {
        snprintf(in_path, sizeof in_path, "%s/%ld.in", spool, id);
        int fd = open(in_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        size_t off = 0;
        while (fd >= 0 && off < in_len) {
            ssize_t w = write(fd, in + off, in_len - off);
            if (w < 0) { if (errno == EINTR) continue; close(fd); fd = -1; break; }
            off += (size_t)w;
        }
        if (fd < 0) {
            reply_error(id, 126, "lvs-harness agent: stdin %s: %s\n", in_path, strerror(errno));
            for (int k = 0; k < 3; k++) close(ns[k]);
            if (pid_ns >= 0) close(pid_ns);
            if (cg_fd >= 0) close(cg_fd);
            return;
        }
        close(fd);
    }
    int in_fd = open(in_path, O_RDONLY | O_CLOEXEC);
    int out_p[2], err_p[2];
    if (in_fd < 0 || pipe2(out_p, O_CLOEXEC) < 0) die("pipe");
    if (pipe2(err_p, O_CLOEXEC) < 0) die("pipe");
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    char *copy = strdup(cmd);
    if (!copy) die("out of memory");
    struct spawn sp = {in_fd, out_p[1], err_p[1], cg_fd, {ns[0], ns[1], ns[2]}, argv, plain_words(copy)};
    /* the child is born in the host's PID namespace (setns changes where this process's children go) */
    pid_t pid = -1;
    int fork_errno = 0;
    if (pid_ns >= 0 && setns(pid_ns, CLONE_NEWPID) < 0) fork_errno = errno;
    else {
        pid = clone(child_main, child_stack + sizeof child_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &sp);
        fork_errno = errno;
        if (pid_ns >= 0 && setns(own_pidns, CLONE_NEWPID) < 0) die("setns back to the agent's PID namespace");
    }
    if (pid_ns >= 0) close(pid_ns);
    if (cg_fd >= 0) close(cg_fd);
    close(in_fd);
    close(out_p[1]);
    close(err_p[1]);
    for (int k = 0; k < 3; k++) close(ns[k]);
    free(copy);
    if (in_len) unlink(in_path);
    if (pid < 0) {
        close(out_p[0]);
        close(err_p[0]);
        /* ENOMEM: the host's PID 1 is gone (its namespace takes no new process); EAGAIN: its pids limit */
        if (fork_errno == ENOMEM)
            reply_error(id, 126, "lvs-harness agent: lab host %s has shut down (a command in it ran reboot or "
                        "poweroff, which ends a host's PID namespace); nothing more runs in it\n", host);
        else
            reply_error(id, 126, "lvs-harness agent: cannot start a process in lab host %s: %s\n", host,
                        strerror(fork_errno));
        return;
    }
    fcntl(out_p[0], F_SETFL, O_NONBLOCK);
    fcntl(err_p[0], F_SETFL, O_NONBLOCK);
    struct job *j = &jobs[slot];
    memset(j, 0, sizeof *j);
    j->used = 1;
    j->id = id;
    j->pid = pid;
    j->out_fd = out_p[0];
    j->err_fd = err_p[0];
    j->deadline = now() + timeout_ms / 1000.0;
    j->stream = stream;
}

static void finish(struct job *j) {
    if (j->out_fd >= 0) close(j->out_fd);
    if (j->err_fd >= 0) close(j->err_fd);
    reply(j->id, j->rc, j->timed_out, &j->out, &j->err);
    free(j->out.data);
    free(j->err.data);
    memset(j, 0, sizeof *j);
}

static struct buf inbuf;

/* Every complete request in inbuf, started; returns 0 on "Q". */
static int requests(void) {
    size_t pos = 0;
    int go_on = 1;
    while (go_on) {
        char *nl = memchr(inbuf.data + pos, '\n', inbuf.len - pos);
        if (!nl) break;
        size_t head_len = (size_t)(nl - (inbuf.data + pos));
        char head[700];
        if (head_len >= sizeof head) { fprintf(stderr, "lvs-harness agent: request header too long\n"); exit(1); }
        memcpy(head, inbuf.data + pos, head_len);
        head[head_len] = 0;
        if (head[0] == 'Q') { go_on = 0; break; }
        long id, timeout_ms;
        size_t clen, ilen;
        char host[128], kind;
        if (head[0] == 'K' && sscanf(head, "K %ld", &id) == 1) {
            for (int i = 0; i < MAX_JOBS; i++)
                if (jobs[i].used && jobs[i].id == id && !jobs[i].reaped) kill(-jobs[i].pid, SIGKILL);
            pos += head_len + 1;
            continue;
        }
        if (sscanf(head, "%c %ld %127s %ld %zu %zu", &kind, &id, host, &timeout_ms, &clen, &ilen) != 6 ||
            (kind != 'X' && kind != 'S')) {
            fprintf(stderr, "lvs-harness agent: bad request header: %s\n", head);
            exit(1);
        }
        size_t start = pos + head_len + 1;
        if (inbuf.len - start < clen + ilen) break;         /* the rest has not arrived yet */
        char *cmd = malloc(clen + 1);
        if (!cmd) die("out of memory");
        memcpy(cmd, inbuf.data + start, clen);
        cmd[clen] = 0;
        start_job(id, host, timeout_ms, cmd, inbuf.data + start + clen, ilen, kind == 'S');
        free(cmd);
        pos = start + clen + ilen;
    }
    memmove(inbuf.data, inbuf.data + pos, inbuf.len - pos);
    inbuf.len -= pos;
    return go_on;
}

static void drain(struct job *j, int *fd, struct buf *b) {
    char chunk[65536];
    for (;;) {
        ssize_t n = read(*fd, chunk, sizeof chunk);
        if (n > 0 && j->stream && fd == &j->out_fd) {      /* a streamed stdout: on the line at once */
            char head[64];
            int k = snprintf(head, sizeof head, "O %ld %zd\n", j->id, n);
            write_all(head, (size_t)k);
            write_all(chunk, (size_t)n);
            continue;
        }
        if (n > 0) { append_bounded(b, chunk, (size_t)n); continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        close(*fd);                  /* EOF, or an error: the output ends here */
        *fd = -1;
        return;
    }
}

/* PID 1 of a lab host's PID namespace. Signals sent from inside the namespace to its init are
 * dropped by the kernel unless it handles them (it handles none): only SIGKILL from outside ends it. */
static int init_main(void) {
    if (mount("lvsh-proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("mount /proc");
    /* the guest is every lab host's machine: one host's `echo o > /proc/sysrq-trigger` must not power
     * all of them off (on a VM it ends that VM; here the host's `reboot` ends its namespace) */
    mount("/dev/null", "/proc/sysrq-trigger", NULL, MS_BIND, NULL);
    prctl(PR_SET_NAME, "lvsh-init", 0, 0, 0);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    if (write(1, "ready\n", 6) != 6) return 1;
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; fd++) dup2(null, fd);
    close_range(3, ~0U, 0);          /* what the script that started it had open */
    if (chdir("/") < 0) return 1;
    for (;;) {
        int sig;
        sigwait(&all, &sig);
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
    }
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--init")) return init_main();
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: host-agent TTY NETNS_PREFIX NS_STATE_DIR SPOOL_DIR [CGROUP_DIR] | --init\n");
        return 2;
    }
    prefix = argv[2];
    state = argv[3];
    spool = argv[4];
    cgroups = argc == 6 ? argv[5] : NULL;
    own_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
    if (own_pidns < 0) die("/proc/self/ns/pid");
    line_fd = open(argv[1], O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (line_fd < 0) die(argv[1]);
    mkdir(spool, 0700);
    if (pipe2(sigpipe_fds, O_CLOEXEC | O_NONBLOCK) < 0) die("pipe");
    struct sigaction sa = {0};
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    char ready[64];
    int n = snprintf(ready, sizeof ready, "READY %d\n", (int)getpid());
    write_all(ready, (size_t)n);
    for (;;) {
        struct pollfd fds[2 + 2 * MAX_JOBS];
        struct { struct job *j; int which; } owner[2 + 2 * MAX_JOBS];
        int nfds = 0;
        fds[nfds++] = (struct pollfd){.fd = line_fd, .events = POLLIN};
        fds[nfds++] = (struct pollfd){.fd = sigpipe_fds[0], .events = POLLIN};
        double t = now(), wait = 3600;
        for (int i = 0; i < MAX_JOBS; i++) {
            struct job *j = &jobs[i];
            if (!j->used) continue;
            if (j->out_fd >= 0) { owner[nfds].j = j; owner[nfds].which = 1; fds[nfds++] = (struct pollfd){.fd = j->out_fd, .events = POLLIN}; }
            if (j->err_fd >= 0) { owner[nfds].j = j; owner[nfds].which = 2; fds[nfds++] = (struct pollfd){.fd = j->err_fd, .events = POLLIN}; }
            double left = (j->reaped ? j->exited + GRACE : j->deadline) - t;
            if (left < wait) wait = left;
        }
        if (wait < 0) wait = 0;
        int ready_n = poll(fds, (nfds_t)nfds, (int)(wait * 1000) + 1);
        if (ready_n < 0 && errno != EINTR) die("poll");
        if (ready_n > 0) {
            if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                char chunk[65536];
                ssize_t got = read(line_fd, chunk, sizeof chunk);
                if (got == 0) return 0;
                if (got > 0) {
                    char ack[32];
                    int k = snprintf(ack, sizeof ack, "A %zd\n", got);
                    write_all(ack, (size_t)k);
                    append(&inbuf, chunk, (size_t)got);
                    if (!requests()) return 0;
                }
            }
            if (fds[1].revents & POLLIN) {
                char sink[256];
                while (read(sigpipe_fds[0], sink, sizeof sink) > 0) {}
            }
            for (int k = 2; k < nfds; k++) {
                if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                struct job *j = owner[k].j;
                if (owner[k].which == 1 && j->out_fd >= 0) drain(j, &j->out_fd, &j->out);
                if (owner[k].which == 2 && j->err_fd >= 0) drain(j, &j->err_fd, &j->err);
            }
        }
        for (;;) {                      /* reap */
            int status;
            pid_t pid = waitpid(-1, &status, WNOHANG);
            if (pid <= 0) break;
            for (int i = 0; i < MAX_JOBS; i++) {
                struct job *j = &jobs[i];
                if (j->used && !j->reaped && j->pid == pid) {
                    j->reaped = 1;
                    j->exited = now();
                    j->rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                }
            }
        }
        t = now();
        for (int i = 0; i < MAX_JOBS; i++) {
            struct job *j = &jobs[i];
            if (!j->used) continue;
            if (j->reaped) {
                if (j->out_fd >= 0) drain(j, &j->out_fd, &j->out);   /* what is there by now */
                if (j->err_fd >= 0) drain(j, &j->err_fd, &j->err);
                if ((j->out_fd < 0 && j->err_fd < 0) || t - j->exited >= GRACE || j->timed_out) finish(j);
            } else if (t >= j->deadline) {
                if (!j->timed_out) {
                    kill(-j->pid, SIGKILL);
                    j->timed_out = 1;
                    j->deadline = t + KILL_WAIT;
                } else {
                    j->rc = 137;       /* could not be reaped in time: answer anyway */
                    finish(j);
                }
            }
        }
    }
}
