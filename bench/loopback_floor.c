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

int main(int argc, char **argv) {
    if (argc > 1) n_members = atoi(argv[1]);
    if (argc > 2) pause_us = atoi(argv[2]);
    if (argc > 3) bursts = atoi(argv[3]);
    if (argc > 4) relay = strcmp(argv[4], "relay") == 0;
    if (n_members < 1 || n_members > 1024 || bursts < 1) return 2;
    lat = malloc(sizeof(double) * (size_t)n_members * bursts);
    double *per_write = malloc(sizeof(double) * bursts);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t al = sizeof a;
    if (bind(l, (void *)&a, sizeof a) || listen(l, 1024) || getsockname(l, (void *)&a, &al)) {
        perror("listen");
        return 1;
    }
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
