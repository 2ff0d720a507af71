// ICMP echo sockets for the ping service: opening (datagram or raw), options, kernel
// timestamps, and one receive call that fills a caller-owned record without allocating.
//
// Everything here is a thin, errno-preserving layer over the socket API; the packet
// format, matching and accounting live in Swift (MPlanePing), where they are tested from
// recorded bytes.
#define _GNU_SOURCE
#include "CSupport.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/icmp6.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>

#ifndef ICMP_FILTER
#define ICMP_FILTER 1
#endif
#ifndef SO_TIMESTAMPING_OLD
#define SO_TIMESTAMPING_OLD SO_TIMESTAMPING
#endif

static int open_kind(int family, int kind) {
    int proto = family == AF_INET6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
    return socket(family, (kind == CSUPPORT_ICMP_RAW ? SOCK_RAW : SOCK_DGRAM) | SOCK_CLOEXEC, proto);
}

int csupport_icmp_open(int family, int kind, int *kind_used) {
    if (family != AF_INET && family != AF_INET6) return -EAFNOSUPPORT;
    int fd = -1;
    if (kind == CSUPPORT_ICMP_AUTO || kind == CSUPPORT_ICMP_DGRAM) {
        fd = open_kind(family, CSUPPORT_ICMP_DGRAM);
        if (fd >= 0) { *kind_used = CSUPPORT_ICMP_DGRAM; return fd; }
        if (kind == CSUPPORT_ICMP_DGRAM) return -errno;
    }
    fd = open_kind(family, CSUPPORT_ICMP_RAW);
    if (fd < 0) return -errno;
    *kind_used = CSUPPORT_ICMP_RAW;
    return fd;
}

int csupport_icmp_configure(int fd, int family, int kind, int ttl, int tos) {
    int one = 1;
    if (family == AF_INET) {
        if (ttl >= 0 && setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) < 0) return -errno;
        if (tos >= 0 && setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos) < 0) return -errno;
        // ICMP errors about our probes reach a datagram socket only through its error
        // queue; a raw socket receives the error packets themselves.
        if (kind == CSUPPORT_ICMP_DGRAM && setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one) < 0) return -errno;
        if (kind == CSUPPORT_ICMP_RAW) {
            // Only echo replies and the errors that mean a probe was lost wake the receive
            // loop (not redirects nor source quench: the packet went on).
            uint32_t blocked = ~((1u << 0) | (1u << 3) | (1u << 11) | (1u << 12));
            if (setsockopt(fd, SOL_RAW, ICMP_FILTER, &blocked, sizeof blocked) < 0) return -errno;
        }
    } else {
        if (ttl >= 0 && setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof ttl) < 0) return -errno;
        if (tos >= 0 && setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof tos) < 0) return -errno;
        if (kind == CSUPPORT_ICMP_DGRAM && setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one) < 0) return -errno;
        if (kind == CSUPPORT_ICMP_RAW) {
            struct icmp6_filter filter;
            ICMP6_FILTER_SETBLOCKALL(&filter);
            ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &filter);
            ICMP6_FILTER_SETPASS(ICMP6_DST_UNREACH, &filter);
            ICMP6_FILTER_SETPASS(ICMP6_PACKET_TOO_BIG, &filter);
            ICMP6_FILTER_SETPASS(ICMP6_TIME_EXCEEDED, &filter);
            ICMP6_FILTER_SETPASS(ICMP6_PARAM_PROB, &filter);
            if (setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter) < 0) return -errno;
        }
    }
    return 0;
}

int csupport_icmp_timestamps(int fd, int transmit) {
    // Software receive and transmit timestamps; transmit ones come back on the error queue
    // carrying only the timestamp and a per-socket counter of datagrams sent (OPT_ID).
    unsigned int flags = SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_TX_SOFTWARE |
                         SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY;
    if (transmit && setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING_OLD, &flags, sizeof flags) == 0) {
        return CSUPPORT_TS_RX_KERNEL | CSUPPORT_TS_TX_KERNEL;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS_OLD, &one, sizeof one) == 0) return CSUPPORT_TS_RX_KERNEL;
    return 0;
}

int csupport_icmp_bind(int fd, const struct sockaddr *addr, socklen_t len, uint16_t *ident) {
    if (bind(fd, addr, len) < 0) return -errno;
    struct sockaddr_storage local;
    socklen_t l = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &l) < 0) return -errno;
    // A datagram ICMP socket's "port" is the echo identifier the kernel puts on its probes.
    *ident = ntohs(local.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&local)->sin6_port
                                               : ((struct sockaddr_in *)&local)->sin_port);
    return 0;
}

ssize_t csupport_icmp_send(int fd, const void *buf, size_t len, const struct sockaddr *to, socklen_t tolen) {
    ssize_t n = sendto(fd, buf, len, MSG_DONTWAIT, to, tolen);
    return n < 0 ? -errno : n;
}

static int64_t ts_ns(const struct timespec *ts) { return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec; }

ssize_t csupport_icmp_recv(int fd, struct csupport_icmp_rx *rx, int errqueue) {
    struct iovec iov = { .iov_base = rx->buf, .iov_len = rx->cap };
    struct msghdr msg = {
        .msg_name = &rx->from, .msg_namelen = sizeof rx->from,
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = rx->control, .msg_controllen = sizeof rx->control,
    };
    rx->kernel_ns = 0;
    rx->is_error = 0;
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | (errqueue ? MSG_ERRQUEUE : 0));
    if (n < 0) return -errno;
    rx->len = n;
    rx->truncated = (msg.msg_flags & MSG_TRUNC) != 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPING_OLD) {
            struct scm_timestamping ts;
            memcpy(&ts, CMSG_DATA(c), sizeof ts);
            rx->kernel_ns = ts_ns(&ts.ts[0]);
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS_OLD) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof ts);
            rx->kernel_ns = ts_ns(&ts);
        } else if ((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
                   (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR)) {
            struct sock_extended_err ee;
            memcpy(&ee, CMSG_DATA(c), sizeof ee);
            rx->is_error = 1;
            rx->ee_errno = ee.ee_errno;
            rx->ee_origin = ee.ee_origin;
            rx->ee_type = ee.ee_type;
            rx->ee_code = ee.ee_code;
            rx->ee_info = ee.ee_info;
            rx->ee_data = ee.ee_data;
            memset(&rx->offender, 0, sizeof rx->offender);
            size_t have = c->cmsg_len - CMSG_LEN(0);
            if (have > sizeof ee) {
                size_t extra = have - sizeof ee;
                if (extra > sizeof rx->offender) extra = sizeof rx->offender;
                memcpy(&rx->offender, CMSG_DATA(c) + sizeof ee, extra);
            }
        }
    }
    return n;
}

int64_t csupport_clock_ns(int clock) {
    struct timespec ts;
    clock_gettime(clock == CSUPPORT_CLOCK_REALTIME ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts);
    return ts_ns(&ts);
}

int csupport_poll_in(int fd, int64_t timeout_ns) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    struct timespec ts = { .tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000 };
    if (timeout_ns < 0) ts.tv_sec = ts.tv_nsec = 0;
    int r = ppoll(&p, 1, &ts, NULL);
    if (r < 0) return -errno;
    if (r == 0) return 0;
    if (p.revents & POLLNVAL) return -EBADF;
    return (p.revents & POLLIN ? CSUPPORT_POLL_IN : 0) | (p.revents & (POLLERR | POLLHUP) ? CSUPPORT_POLL_ERR : 0);
}

int csupport_sleep_until_ns(int64_t monotonic_ns) {
    struct timespec ts = { .tv_sec = monotonic_ns / 1000000000, .tv_nsec = monotonic_ns % 1000000000 };
    int r;
    while ((r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR) {}
    return -r;
}

int csupport_set_timerslack_ns(unsigned long ns) {
    return prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0) < 0 ? -errno : 0;
}

struct csupport_icmp_rx *csupport_icmp_rx_create(size_t cap) {
    struct csupport_icmp_rx *rx = calloc(1, sizeof *rx);
    if (!rx) return NULL;
    rx->buf = malloc(cap);
    if (!rx->buf) { free(rx); return NULL; }
    rx->cap = cap;
    return rx;
}

void csupport_icmp_rx_destroy(struct csupport_icmp_rx *rx) {
    if (!rx) return;
    free(rx->buf);
    free(rx);
}

void csupport_thread_name(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }
