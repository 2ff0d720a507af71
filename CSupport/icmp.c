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
#include <netinet/ip_icmp.h>
#include <netinet/ip6.h>
#include <linux/filter.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <stddef.h>

// Layouts the Swift side relies on (SocketAddress reads `from` and `offender` as the family's
// sockaddr; the receive path reads every control message of one datagram into `control`).
_Static_assert(sizeof(struct sockaddr_storage) >= sizeof(struct sockaddr_in6),
               "sockaddr_storage holds an IPv6 address");
_Static_assert(offsetof(struct sockaddr_in, sin_family) == offsetof(struct sockaddr_storage, ss_family) &&
               offsetof(struct sockaddr_in6, sin6_family) == offsetof(struct sockaddr_storage, ss_family),
               "the family is read at the same offset for every address");
_Static_assert(sizeof(((struct csupport_icmp_rx *)0)->control) >=
               CMSG_SPACE(sizeof(struct sock_extended_err) + sizeof(struct sockaddr_in6)) +
               CMSG_SPACE(sizeof(struct scm_timestamping)) + CMSG_SPACE(sizeof(int)) * 4,
               "control space for an extended error with its offender, the timestamps and four small messages");

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

int csupport_icmp_configure(int fd, int family, int kind, int ttl, int tos, int rcvbuf) {
    int one = 1;
    // Room for the replies that arrive while the loop is busy sending: the default (about
    // 200 KiB, some 270 replies) holds 5 ms of replies at 50,000 probes/s, and one late
    // wake-up on a shared core loses the rest as false loss. The caller sizes it from the
    // rate; a ceiling, not an allocation: beyond net.core.rmem_max only with CAP_NET_ADMIN
    // (SO_RCVBUFFORCE).
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
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

// The message types the identifier filter names, as the Swift side (ICMPPacket.swift) uses them.
_Static_assert(ICMP_ECHOREPLY == 0 && ICMP_ECHO == 8, "ICMPv4 echo types");
_Static_assert(ICMP_DEST_UNREACH == 3 && ICMP_SOURCE_QUENCH == 4 && ICMP_REDIRECT == 5 &&
               ICMP_TIME_EXCEEDED == 11 && ICMP_PARAMETERPROB == 12, "ICMPv4 error types");
_Static_assert(ICMP6_ECHO_REQUEST == 128 && ICMP6_ECHO_REPLY == 129, "ICMPv6 echo types");
_Static_assert(ICMP6_DST_UNREACH == 1 && ICMP6_PACKET_TOO_BIG == 2 && ICMP6_TIME_EXCEEDED == 3 &&
               ICMP6_PARAM_PROB == 4, "ICMPv6 error types");
// Offsets the programs load from: the echo identifier follows type, code and checksum; an
// error quotes the offending packet after its own 8-byte header.
_Static_assert(offsetof(struct icmphdr, un.echo.id) == 4 && sizeof(struct icmphdr) == 8, "ICMPv4 header");
_Static_assert(offsetof(struct icmp6_hdr, icmp6_id) == 4 && offsetof(struct icmp6_hdr, icmp6_dataun) == 4,
               "ICMPv6 header");
_Static_assert(sizeof(struct ip6_hdr) == 40 && offsetof(struct ip6_hdr, ip6_nxt) == 6, "IPv6 header");

// Accept (the whole packet) or drop.
#define ID_ACCEPT BPF_STMT(BPF_RET | BPF_K, 0xFFFFFFFFu)
#define ID_DROP BPF_STMT(BPF_RET | BPF_K, 0)
// A jump offset from instruction `from` to instruction `to` (offsets count from the next one).
#define J(from, to) ((to) - (from) - 1)

int csupport_icmp_attach_identifier_filter(int fd, int family, uint16_t identifier) {
    // For raw sockets only: a datagram ICMP socket is already demultiplexed by the kernel
    // on its identifier (its "port"), and its errors come through the error queue, which
    // socket filters do not see. Runs after the ICMP_FILTER/ICMP6_FILTER type filter of
    // csupport_icmp_configure. Packets queued before the call stay queued: attach it before
    // sending (the receive loop checks the identifier anyway).
    //
    // Our requests carry the identifier big-endian (ICMP.store16), and a BPF_H load turns
    // network order into a host value, so `identifier` is compared as it is (no htons).
    //
    // Both programs end in one test: X points at the echo message (a reply, or the request
    // an error quotes) and the 16 bits at X+4 must be `identifier`.
    struct sock_filter v4[] = {
        // A raw IPv4 socket hands over the IP header: X = its length (from IHL).
        /*  0 */ BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),
        /*  1 */ BPF_STMT(BPF_LD | BPF_B | BPF_IND, 0),                      // A = type
        /*  2 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ICMP_ECHOREPLY, J(2, 20), 0),  // reply: test X+4
        /*  3 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ICMP_DEST_UNREACH, J(3, 9), 0),
        /*  4 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ICMP_SOURCE_QUENCH, J(4, 9), 0),
        /*  5 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ICMP_REDIRECT, J(5, 9), 0),
        /*  6 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ICMP_TIME_EXCEEDED, J(6, 9), 0),
        /*  7 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ICMP_PARAMETERPROB, J(7, 9), 0),
        /*  8 */ ID_DROP,                                                     // requests and the rest
        // An error: the quoted IPv4 header starts at X+8; it must be an ICMP packet.
        /*  9 */ BPF_STMT(BPF_LD | BPF_B | BPF_IND, 8 + 9),                  // quoted protocol
        /* 10 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_ICMP, J(10, 12), 0),
        /* 11 */ ID_DROP,
        // X = X + 8 + quoted header length (MSH only takes a fixed offset, so by hand).
        /* 12 */ BPF_STMT(BPF_LD | BPF_B | BPF_IND, 8),
        /* 13 */ BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x0F),
        /* 14 */ BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 2),
        /* 15 */ BPF_STMT(BPF_ALU | BPF_ADD | BPF_X, 0),
        /* 16 */ BPF_STMT(BPF_ALU | BPF_ADD | BPF_K, 8),
        /* 17 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
        /* 18 */ BPF_STMT(BPF_LD | BPF_B | BPF_IND, 0),                      // quoted type
        /* 19 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ICMP_ECHO, 0, J(19, 23)),
        /* 20 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, 4),                      // identifier
        /* 21 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, identifier, 0, J(21, 23)),
        /* 22 */ ID_ACCEPT,
        /* 23 */ ID_DROP,
    };
    struct sock_filter v6[] = {
        // ICMPv6 raw sockets start at the ICMPv6 header.
        /*  0 */ BPF_STMT(BPF_LDX | BPF_IMM, 0),
        /*  1 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),                      // A = type
        /*  2 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ICMP6_ECHO_REPLY, J(2, 10), 0),  // reply: test X+4
        /*  3 */ BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, ICMP6_PARAM_PROB, J(3, 13), 0), // requests and the rest
        /*  4 */ BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, ICMP6_DST_UNREACH, 0, J(4, 13)),
        // An error (1-4): the quoted IPv6 header at 8 must carry ICMPv6 (no extension
        // headers on our probes), its echo request at 48.
        /*  5 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 8 + 6),                  // quoted next header
        /*  6 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_ICMPV6, 0, J(6, 13)),
        /*  7 */ BPF_STMT(BPF_LDX | BPF_IMM, 8 + 40),
        /*  8 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 8 + 40),                 // quoted type
        /*  9 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ICMP6_ECHO_REQUEST, 0, J(9, 13)),
        /* 10 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, 4),                      // identifier
        /* 11 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, identifier, 0, J(11, 13)),
        /* 12 */ ID_ACCEPT,
        /* 13 */ ID_DROP,
    };
    // The jump targets above are the /* n */ indices; the last two are accept and drop.
    _Static_assert(sizeof v4 / sizeof *v4 == 24 && sizeof v6 / sizeof *v6 == 14, "filter lengths");
    if (family != 4 && family != 6) return -EAFNOSUPPORT;
    struct sock_fprog prog = family == 4 ? (struct sock_fprog){ .len = sizeof v4 / sizeof *v4, .filter = v4 }
                                         : (struct sock_fprog){ .len = sizeof v6 / sizeof *v6, .filter = v6 };
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0) return -errno;
    // What arrived between socket() and the filter was not filtered: drop it (as libpcap does),
    // or another ping's replies would be read as strays.
    unsigned char junk[64];
    for (int i = 0; i < 100000 && recv(fd, junk, sizeof junk, MSG_DONTWAIT) >= 0; i++) {}
    return 0;
}
#undef J
#undef ID_DROP
#undef ID_ACCEPT

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

int csupport_icmp_send_batch(int fd, const void *packets, size_t stride, size_t len,
                             const struct sockaddr_storage *addresses, const socklen_t *lengths,
                             const uint32_t *targets, unsigned count) {
    if (count == 0) return 0;
    if (count > CSUPPORT_ICMP_BATCH_MAX) count = CSUPPORT_ICMP_BATCH_MAX;
    struct mmsghdr msgs[CSUPPORT_ICMP_BATCH_MAX];
    struct iovec iov[CSUPPORT_ICMP_BATCH_MAX];
    for (unsigned i = 0; i < count; i++) {
        iov[i] = (struct iovec){ .iov_base = (unsigned char *)packets + i * stride, .iov_len = len };
        msgs[i] = (struct mmsghdr){ .msg_hdr = {
            .msg_name = (void *)&addresses[targets[i]], .msg_namelen = lengths[targets[i]],
            .msg_iov = &iov[i], .msg_iovlen = 1,
        } };
    }
    // Each datagram goes through the same send path as sendto (and takes its own transmit
    // timestamp key). A failure after the first stops the call and is not reported: the
    // caller sends again from the first datagram that did not go, which then reports it.
    int n = sendmmsg(fd, msgs, count, MSG_DONTWAIT);
    return n < 0 ? -errno : n;
}

static int64_t ts_ns(const struct timespec *ts) { return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec; }

// Fills `rx` from a received message: length, truncation, the kernel timestamp and an
// extended error with its offender. The one-by-one and the batched receive share it.
static void read_message(struct csupport_icmp_rx *rx, struct msghdr *msg, ssize_t n) {
    rx->kernel_ns = 0;
    rx->is_error = 0;
    rx->len = n;
    rx->truncated = (msg->msg_flags & MSG_TRUNC) != 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
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
}

static void prepare_message(struct csupport_icmp_rx *rx, struct msghdr *msg, struct iovec *iov) {
    *iov = (struct iovec){ .iov_base = rx->buf, .iov_len = rx->cap };
    *msg = (struct msghdr){
        .msg_name = &rx->from, .msg_namelen = sizeof rx->from,
        .msg_iov = iov, .msg_iovlen = 1,
        .msg_control = rx->control, .msg_controllen = sizeof rx->control,
    };
}

ssize_t csupport_icmp_recv(int fd, struct csupport_icmp_rx *rx, int errqueue) {
    struct iovec iov;
    struct msghdr msg;
    prepare_message(rx, &msg, &iov);
    rx->kernel_ns = 0;
    rx->is_error = 0;
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | (errqueue ? MSG_ERRQUEUE : 0));
    if (n < 0) return -errno;
    read_message(rx, &msg, n);
    return n;
}

int csupport_icmp_recv_batch(int fd, struct csupport_icmp_rx *rx, unsigned count, int errqueue) {
    if (count == 0) return 0;
    if (count > CSUPPORT_ICMP_BATCH_MAX) count = CSUPPORT_ICMP_BATCH_MAX;
    struct mmsghdr msgs[CSUPPORT_ICMP_BATCH_MAX];
    struct iovec iov[CSUPPORT_ICMP_BATCH_MAX];
    for (unsigned i = 0; i < count; i++) {
        prepare_message(&rx[i], &msgs[i].msg_hdr, &iov[i]);
        msgs[i].msg_len = 0;
    }
    // Without MSG_WAITFORONE and with MSG_DONTWAIT: whatever waits, up to `count`, in one call.
    int n = recvmmsg(fd, msgs, count, MSG_DONTWAIT | (errqueue ? MSG_ERRQUEUE : 0), NULL);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) read_message(&rx[i], &msgs[i].msg_hdr, (ssize_t)msgs[i].msg_len);
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
    if (fd < 0) {
        // Only the clock: a plain sleep, cheaper than a poll on nothing.
        if (timeout_ns <= 0) return 0;
        int e = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
        return e == 0 || e == EINTR ? 0 : -e;
    }
    int r = ppoll(&p, 1, &ts, NULL);
    if (r < 0) return -errno;
    if (r == 0) return 0;
    if (p.revents & POLLNVAL) return -EBADF;
    return (p.revents & POLLIN ? CSUPPORT_POLL_IN : 0) | (p.revents & (POLLERR | POLLHUP) ? CSUPPORT_POLL_ERR : 0);
}

int csupport_set_timerslack_ns(unsigned long ns) {
    return prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0) < 0 ? -errno : 0;
}

struct csupport_icmp_rx *csupport_icmp_rx_create(size_t count, size_t cap) {
    if (count == 0 || count > CSUPPORT_ICMP_BATCH_MAX || cap == 0 || cap > (1u << 20)) return NULL;
    // The records and their packet buffers in two allocations, made once per measurement.
    struct csupport_icmp_rx *rx = calloc(count, sizeof *rx);
    if (!rx) return NULL;
    unsigned char *slab = malloc(count * cap);
    if (!slab) { free(rx); return NULL; }
    for (size_t i = 0; i < count; i++) {
        rx[i].buf = slab + i * cap;
        rx[i].cap = cap;
    }
    return rx;
}

void csupport_icmp_rx_destroy(struct csupport_icmp_rx *rx) {
    if (!rx) return;
    free(rx[0].buf);
    free(rx);
}

void csupport_thread_name(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }
