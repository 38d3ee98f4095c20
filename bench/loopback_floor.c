// The loopback floor under B2: what one core pays to hand one message to 99
// members, with no chat server in between. See BENCHMARKS.md ("The loopback floor").
//
// A writer pinned to CPU 0 writes one SIZE-byte message to each of N TCP
// sockets in turn (TCP_NODELAY, like the tracker); a reader pinned to CPU 1
// drains them with epoll, like the load generator. Between bursts the writer
// sleeps PAUSE_US, so the reader goes idle as it does at B2's rates. Each
// message carries the burst's start time (CLOCK_MONOTONIC, shared by both
// CPUs); the reader records, per member, the time from the burst's start to
// its read() returning.
//
//   cc -O2 -pthread bench/loopback_floor.c -o /tmp/loopback_floor
//   /tmp/loopback_floor [N=99] [PAUSE_US=10000] [BURSTS=2000] [relay]
//
// With `relay`, the message also comes in over loopback as it does to a
// server: a sender on CPU 1 writes it (with its start time) to one more
// socket, and the writer on CPU 0 waits for it in epoll_wait, reads it and
// then hands it to the N members. That is the least any server pinned to
// one core pays per B2 message, the way in included; the plain floor
// leaves the way in out.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SIZE 130
static int n_members = 99, pause_us = 10000, bursts = 2000;
static int rfd[1024], wfd[1024];
static int relay, sender_fd;
static double *lat; // per member per burst, µs
static long n_lat;

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    if (sched_setaffinity(0, sizeof s, &s) != 0) perror("sched_setaffinity");
}
static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double pct(double *v, long n, double p) { return v[(long)(p * (n - 1))]; }

static void *reader(void *arg) {
    (void)arg;
    pin(1);
    int ep = epoll_create1(0);
    for (int i = 0; i < n_members; i++) {
        struct epoll_event e = {.events = EPOLLIN, .data.fd = rfd[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, rfd[i], &e);
    }
    // A whole number of messages: every write is one whole message, so
    // every read then ends on a message boundary.
    char buf[SIZE * 504];
    struct epoll_event ev[1024];
    long want = (long)n_members * bursts;
    while (n_lat < want) {
        int n = epoll_wait(ep, ev, 1024, -1);
        for (int i = 0; i < n; i++) {
            ssize_t got = read(ev[i].data.fd, buf, sizeof buf);
            double t = now_us();
            if (got <= 0) {
                perror("read");
                exit(1);
            }
            for (ssize_t off = 0; off + SIZE <= got; off += SIZE) {
                double start;
                memcpy(&start, buf + off, sizeof start);
                lat[n_lat++] = t - start;
            }
        }
    }
    return 0;
}

static void *sender(void *arg) {
    (void)arg;
    pin(1);
    char msg[SIZE];
    memset(msg, 'x', sizeof msg);
    for (int b = 0; b < bursts; b++) {
        if (pause_us) usleep(pause_us);
        double t0 = now_us();
        memcpy(msg, &t0, sizeof t0);
        if (write(sender_fd, msg, SIZE) != SIZE) { perror("write"); exit(1); }
    }
    return 0;
}

// Reads exactly one message from `fd`, waiting in epoll `ep` as an event
// loop does.
static void read_one(int ep, int fd, char *msg) {
    struct epoll_event ev;
    for (ssize_t have = 0; have < SIZE;) {
        if (epoll_wait(ep, &ev, 1, -1) < 1) continue;
        ssize_t got = read(fd, msg + have, SIZE - have);
        if (got <= 0) { perror("read"); exit(1); }
        have += got;
    }
}

// ---- B9's shape (`rooms`) ----
// A message on the wire: its intended send time, then its room and
// sender, padded to SIZE bytes.
struct room_msg {
    double intended_us;
    int room, sender;
};
static int r_rooms = 200, r_room_size = 25, r_per = 3, r_members;
static double r_rate = 4167, r_seconds = 12, r_warmup = 2;
static long r_total;               // messages sent
static int *r_cfd, *r_sfd;         // member's end, relay's end
static int *r_room_members;        // room j's members at j * r_room_size
static double r_t0;

// Accumulates a stream into whole SIZE-byte messages; `have` bytes of a
// partial one kept per connection.
struct partial {
    char buf[SIZE];
    int have;
};

// Reads what `fd` has and calls `one` for each whole message; false on
// EOF or error.
static int read_msgs(int fd, struct partial *p, void (*one)(const char *msg, void *ctx), void *ctx) {
    char buf[SIZE * 64];
    ssize_t got = read(fd, buf, sizeof buf);
    if (got <= 0) return 0;
    for (ssize_t off = 0; off < got;) {
        ssize_t take = SIZE - p->have;
        if (take > got - off) take = got - off;
        memcpy(p->buf + p->have, buf + off, (size_t)take);
        p->have += (int)take;
        off += take;
        if (p->have == SIZE) {
            one(p->buf, ctx);
            p->have = 0;
        }
    }
    return 1;
}

static void sleep_until_us(double t_us) {
    struct timespec ts = {.tv_sec = (time_t)(t_us / 1e6), .tv_nsec = (long)(((long long)t_us % 1000000) * 1000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, 0) != 0) {
    }
}

static void *rooms_sender(void *arg) {
    (void)arg;
    pin(1);
    prctl(PR_SET_TIMERSLACK, 1UL);
    char msg[SIZE];
    memset(msg, 'x', sizeof msg);
    for (long g = 0; g < r_total; g++) {
        int sender = (int)(g % r_members);
        long seq = g / r_members;
        struct room_msg m = {
            .intended_us = r_t0 + (double)g * 1e6 / r_rate,
            .room = (int)((sender * r_per + seq % r_per) % r_rooms),
            .sender = sender,
        };
        if (now_us() < m.intended_us) sleep_until_us(m.intended_us);
        memcpy(msg, &m, sizeof m);
        if (write(r_cfd[sender], msg, SIZE) != SIZE) { perror("write"); exit(1); }
    }
    return 0;
}

static long r_received;
static void rooms_got(const char *msg, void *ctx) {
    double t = *(double *)ctx;
    struct room_msg m;
    memcpy(&m, msg, sizeof m);
    r_received++;
    if (m.intended_us >= r_t0 + r_warmup * 1e6) lat[n_lat++] = t - m.intended_us;
}

static void *rooms_reader(void *arg) {
    (void)arg;
    pin(1);
    int ep = epoll_create1(0);
    struct partial *parts = calloc((size_t)r_members, sizeof *parts);
    for (int i = 0; i < r_members; i++) {
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, r_cfd[i], &e);
    }
    long want = r_total * (r_room_size - 1);
    struct epoll_event ev[1024];
    while (r_received < want) {
        int n = epoll_wait(ep, ev, 1024, -1);
        for (int i = 0; i < n; i++) {
            int m = (int)ev[i].data.u32;
            double t = now_us();
            if (!read_msgs(r_cfd[m], &parts[m], rooms_got, &t)) { perror("reader read"); exit(1); }
        }
    }
    return 0;
}

static void rooms_relay_one(const char *msg, void *ctx) {
    long *relayed = ctx;
    struct room_msg m;
    memcpy(&m, msg, sizeof m);
    const int *members = r_room_members + (size_t)m.room * r_room_size;
    for (int i = 0; i < r_room_size; i++)
        if (members[i] != m.sender && write(r_sfd[members[i]], msg, SIZE) != SIZE) { perror("relay write"); exit(1); }
    (*relayed)++;
}

// A listener on 127.0.0.1 at a port the kernel picks; its address in *a.
static int listen_loopback(struct sockaddr_in *a) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    *a = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t al = sizeof *a;
    if (l < 0 || bind(l, (void *)a, sizeof *a) || listen(l, 1024) || getsockname(l, (void *)a, &al)) {
        perror("listen");
        return -1;
    }
    return l;
}

static int rooms_main(int argc, char **argv) {
    if (argc > 2) r_rooms = atoi(argv[2]);
    if (argc > 3) r_room_size = atoi(argv[3]);
    if (argc > 4) r_per = atoi(argv[4]);
    if (argc > 5) r_rate = atof(argv[5]);
    if (argc > 6) r_seconds = atof(argv[6]);
    if (argc > 7) r_warmup = atof(argv[7]);
    if (r_rooms < r_per || r_room_size < 2 || r_per < 1 || r_rate <= 0 || r_warmup < 0 || r_seconds <= r_warmup) return 2;
    r_members = (r_rooms * r_room_size + r_per - 1) / r_per;
    r_total = (long)(r_rate * r_seconds);
    // Two descriptors a member and then some: raise the soft limit.
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    r_room_members = malloc(sizeof(int) * (size_t)r_rooms * r_room_size);
    int *filled = calloc((size_t)r_rooms, sizeof(int));
    for (int s = 0; s < r_rooms * r_room_size; s++) {
        int j = s % r_rooms;
        r_room_members[(size_t)j * r_room_size + filled[j]++] = s / r_per;
    }
    lat = malloc(sizeof(double) * (size_t)r_total * (r_room_size - 1));
    r_cfd = malloc(sizeof(int) * (size_t)r_members);
    r_sfd = malloc(sizeof(int) * (size_t)r_members);
    struct sockaddr_in a;
    int l = listen_loopback(&a);
    if (l < 0) return 1;
    int ep = epoll_create1(0);
    for (int i = 0; i < r_members; i++) {
        int one = 1;
        r_cfd[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (r_cfd[i] < 0 || connect(r_cfd[i], (void *)&a, sizeof a)) { perror("connect"); return 1; }
        r_sfd[i] = accept(l, 0, 0);
        if (r_sfd[i] < 0) { perror("accept"); return 1; }
        setsockopt(r_cfd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(r_sfd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, r_sfd[i], &e);
    }
    pin(0);
    r_t0 = now_us() + 200e3;
    pthread_t s, t;
    pthread_create(&t, 0, rooms_reader, 0);
    pthread_create(&s, 0, rooms_sender, 0);
    struct partial *parts = calloc((size_t)r_members, sizeof *parts);
    long relayed = 0;
    struct epoll_event ev[1024];
    while (relayed < r_total) {
        int n = epoll_wait(ep, ev, 1024, -1);
        for (int i = 0; i < n; i++) {
            int m = (int)ev[i].data.u32;
            if (!read_msgs(r_sfd[m], &parts[m], rooms_relay_one, &relayed)) { perror("relay read"); return 1; }
        }
    }
    // The relay's own CPU from the first message to the last: what the
    // deliveries cost it (the servers' CPU column).
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    double relay_cpu_s = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    double span_s = (now_us() - r_t0) / 1e6;
    pthread_join(s, 0);
    pthread_join(t, 0);
    qsort(lat, n_lat, sizeof(double), cmp);
    printf("%d rooms of %d, %d members (each in %d), %.0f messages/s (%.0f deliveries/s), %g s (first %g s not counted)\n",
           r_rooms, r_room_size, r_members, r_per, r_rate, r_rate * (r_room_size - 1), r_seconds, r_warmup);
    printf("  intended send to read:  p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms\n", pct(lat, n_lat, .5) / 1e3,
           pct(lat, n_lat, .99) / 1e3, pct(lat, n_lat, .999) / 1e3, lat[n_lat - 1] / 1e3);
    long deliveries = r_total * (r_room_size - 1);
    printf("  relay CPU %.3f s over %.3f s (%.0f%% of one core), %.3f us a delivery, %ld deliveries\n", relay_cpu_s,
           span_s, 100 * relay_cpu_s / span_s, relay_cpu_s * 1e6 / (double)deliveries, deliveries);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "rooms") == 0) return rooms_main(argc, argv);
    if (argc > 1) n_members = atoi(argv[1]);
    if (argc > 2) pause_us = atoi(argv[2]);
    if (argc > 3) bursts = atoi(argv[3]);
    if (argc > 4) relay = strcmp(argv[4], "relay") == 0;
    if (n_members < 1 || n_members > 1024 || bursts < 1) return 2;
    lat = malloc(sizeof(double) * (size_t)n_members * bursts);
    double *per_write = malloc(sizeof(double) * bursts);
    struct sockaddr_in a;
    int l = listen_loopback(&a);
    if (l < 0) return 1;
    for (int i = 0; i < n_members; i++) {
        int one = 1;
        rfd[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(rfd[i], (void *)&a, sizeof a)) { perror("connect"); return 1; }
        wfd[i] = accept(l, 0, 0);
        setsockopt(wfd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int in_fd = -1, ep = -1;
    pthread_t s;
    if (relay) {
        int one = 1;
        sender_fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(sender_fd, (void *)&a, sizeof a)) { perror("connect"); return 1; }
        in_fd = accept(l, 0, 0);
        setsockopt(sender_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ep = epoll_create1(0);
        struct epoll_event e = {.events = EPOLLIN, .data.fd = in_fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, in_fd, &e);
        pthread_create(&s, 0, sender, 0);
    }
    pthread_t t;
    pthread_create(&t, 0, reader, 0);
    pin(0);
    char msg[SIZE];
    memset(msg, 'x', sizeof msg);
    for (int b = 0; b < bursts; b++) {
        double t0;
        if (relay) {
            read_one(ep, in_fd, msg);
            t0 = now_us();
        } else {
            if (pause_us) usleep(pause_us);
            t0 = now_us();
            memcpy(msg, &t0, sizeof t0);
        }
        for (int i = 0; i < n_members; i++)
            if (write(wfd[i], msg, SIZE) != SIZE) { perror("write"); return 1; }
        per_write[b] = (now_us() - t0) / n_members;
    }
    pthread_join(t, 0);
    qsort(per_write, bursts, sizeof(double), cmp);
    qsort(lat, n_lat, sizeof(double), cmp);
    printf("%d members, %d-byte messages, %d bursts, %d us apart%s\n", n_members, SIZE, bursts, pause_us,
           relay ? ", relayed" : "");
    printf("  one write():          p50 %.1f us  p99 %.1f us\n", pct(per_write, bursts, .5), pct(per_write, bursts, .99));
    printf("  %s  p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms\n",
           relay ? "sender's write to read:" : "burst start to read:   ",
           pct(lat, n_lat, .5) / 1e3, pct(lat, n_lat, .99) / 1e3, pct(lat, n_lat, .999) / 1e3, lat[n_lat - 1] / 1e3);
    return 0;
}
