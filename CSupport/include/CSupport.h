// CSupport: the C shim of the mPlane probe.
//
// Functions are prefixed `csupport_`; control messages are parsed on the C side (icmp.c),
// so no CMSG wrappers are needed in Swift. The information model (MPlane) never imports
// this module: only the measurement services do.
#ifndef CSUPPORT_H
#define CSUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

// MARK: ICMP echo sockets (icmp.c). Functions return -errno on failure.

enum {
    CSUPPORT_ICMP_AUTO = 0,   ///< datagram socket if `ping_group_range` allows it, else raw
    CSUPPORT_ICMP_DGRAM = 1,  ///< SOCK_DGRAM/IPPROTO_ICMP(V6): unprivileged, kernel owns the identifier
    CSUPPORT_ICMP_RAW = 2,    ///< SOCK_RAW: needs CAP_NET_RAW
};
enum { CSUPPORT_TS_RX_KERNEL = 1, CSUPPORT_TS_TX_KERNEL = 2 };
enum { CSUPPORT_CLOCK_MONOTONIC = 0, CSUPPORT_CLOCK_REALTIME = 1 };
enum { CSUPPORT_POLL_IN = 1, CSUPPORT_POLL_ERR = 2 };

/// One received datagram or error-queue message, in storage the caller allocates once.
struct csupport_icmp_rx {
    unsigned char *_Nonnull buf;     ///< packet buffer (caller's)
    size_t cap;                      ///< its size
    ssize_t len;                     ///< bytes received
    int truncated;                   ///< the packet was longer than `cap`
    struct sockaddr_storage from;    ///< sender
    int64_t kernel_ns;               ///< kernel timestamp (CLOCK_REALTIME, ns), 0 if none
    int is_error;                    ///< an extended error (ICMP error or transmit timestamp) was attached
    uint32_t ee_errno, ee_origin, ee_type, ee_code, ee_info, ee_data;
    struct sockaddr_storage offender; ///< who reported an ICMP error (SO_EE_OFFENDER)
    unsigned char control[512];      ///< control-message space
};

/// The most datagrams one batched send or receive call moves.
#define CSUPPORT_ICMP_BATCH_MAX 64
/// `count` (1...CSUPPORT_ICMP_BATCH_MAX) receive records, each with a packet buffer of `cap`
/// bytes (NULL if out of memory or out of range). Freed with csupport_icmp_rx_destroy.
struct csupport_icmp_rx *_Nullable csupport_icmp_rx_create(size_t count, size_t cap);
void csupport_icmp_rx_destroy(struct csupport_icmp_rx *_Nullable rx);
/// Names the calling thread (15 bytes show in ps/top).
void csupport_thread_name(const char *_Nonnull name);

/// Opens an ICMP socket of `family`; `kind` is a CSUPPORT_ICMP_* value. Sets `*kind_used`.
int csupport_icmp_open(int family, int kind, int *_Nonnull kind_used);
/// TTL / hop limit and TOS / traffic class (-1 leaves one alone), error reporting, and for
/// raw sockets a filter passing only echo replies and errors.
int csupport_icmp_configure(int fd, int family, int kind, int ttl, int tos, int rcvbuf);
/// For a raw socket only (a datagram one is demultiplexed by the kernel): attaches a socket
/// filter passing echo replies carrying `identifier` and the ICMP errors quoting an echo
/// request that carries it, nothing else. `family` is 4 or 6; `identifier` as in the packet.
int csupport_icmp_attach_identifier_filter(int fd, int family, uint16_t identifier);
/// Enables kernel receive (and, if `transmit`, transmit) timestamps; returns the
/// CSUPPORT_TS_* flags of what the kernel accepted.
int csupport_icmp_timestamps(int fd, int transmit);
/// Binds to a source address; `*ident` is the local port, the echo identifier of a datagram socket.
int csupport_icmp_bind(int fd, const struct sockaddr *_Nonnull addr, socklen_t len, uint16_t *_Nonnull ident);
/// Sends one datagram without blocking.
ssize_t csupport_icmp_send(int fd, const void *_Nonnull buf, size_t len, const struct sockaddr *_Nonnull to,
                           socklen_t tolen);
/// Receives one datagram (or, with `errqueue`, one error-queue message) without blocking.
ssize_t csupport_icmp_recv(int fd, struct csupport_icmp_rx *_Nonnull rx, int errqueue);
/// Sends up to `count` (at most CSUPPORT_ICMP_BATCH_MAX) datagrams in one call (sendmmsg),
/// without blocking: datagram i is `len` bytes at `packets + i * stride`, to
/// `addresses[targets[i]]`. Returns how many went (a failure after the first ends the call
/// unreported), or -errno when the first failed.
int csupport_icmp_send_batch(int fd, const void *_Nonnull packets, size_t stride, size_t len,
                             const struct sockaddr_storage *_Nonnull addresses, const socklen_t *_Nonnull lengths,
                             const uint32_t *_Nonnull targets, unsigned count);
/// Receives what waits, up to `count` messages (at most CSUPPORT_ICMP_BATCH_MAX), into the
/// records `rx[0..<count]` in one call (recvmmsg), without blocking: the number filled, or
/// -errno (-EAGAIN when nothing waits).
int csupport_icmp_recv_batch(int fd, struct csupport_icmp_rx *_Nonnull rx, unsigned count, int errqueue);
/// Waits up to `timeout_ns` for `fd` to be readable; CSUPPORT_POLL_* flags, 0 on timeout
/// (`fd` -1: sleeps for `timeout_ns`).
int csupport_poll_in(int fd, int64_t timeout_ns);
/// CLOCK_MONOTONIC or CLOCK_REALTIME in nanoseconds.
int64_t csupport_clock_ns(int clock);
/// The kernel's view of the system clock (adjtimex with no modes: a read).
struct csupport_clock_state {
    int32_t state;         ///< TIME_OK 0 ... TIME_ERROR 5
    int32_t status;        ///< STA_* bits (STA_UNSYNC 0x40)
    int64_t esterror_us;   ///< estimated error, microseconds
    int64_t maxerror_us;   ///< maximum error, microseconds
};
/// Reads the clock state; 0, or -errno (EPERM where a sandbox refuses even the read).
int csupport_clock_state(struct csupport_clock_state *_Nonnull out);
/// Sets the calling thread's timer slack (how late the kernel may wake it), nanoseconds.
int csupport_set_timerslack_ns(unsigned long ns);

// MARK: Passive capture (capture.c, libpcap).

/// Called for each captured frame: `ts_ns` is the frame's time (nanoseconds since 1970),
/// `data` its first `caplen` bytes (valid only during the call), `wirelen` its length on the
/// wire.
typedef void (*csupport_frame_handler)(void *_Nullable context, int64_t ts_ns, const uint8_t *_Nonnull data,
                                       uint32_t caplen, uint32_t wirelen);

struct csupport_capture;
/// Opens `device` for capture (immediate, non-blocking, not promiscuous). NULL on failure,
/// with the reason in `errbuf` (256 bytes) and the pcap status (e.g. PCAP_ERROR_PERM_DENIED).
struct csupport_capture *_Nullable csupport_capture_open(const char *_Nonnull device, int snaplen, int buffer_bytes,
                                                          char *_Nonnull errbuf, int *_Nonnull status);
/// Installs a BPF filter (pcap-filter(7)); -1 with the reason in `errbuf`.
int csupport_capture_filter(struct csupport_capture *_Nonnull cap, const char *_Nonnull expression,
                            char *_Nonnull errbuf);
/// Compiles a filter without a device, to check it; -1 with the reason in `errbuf`, -2 when
/// libpcap cannot be loaded (the reason in `errbuf` too).
int csupport_capture_check_filter(const char *_Nonnull expression, char *_Nonnull errbuf);
/// A descriptor to poll for readability.
int csupport_capture_fd(struct csupport_capture *_Nonnull cap);
/// Hands up to `max` waiting frames (a trace file: the next `max`) to `handler`, in place;
/// the number handed, 0 when none wait (a trace file: at its end), or -1 (`errbuf`).
int csupport_capture_dispatch(struct csupport_capture *_Nonnull cap, int max, csupport_frame_handler _Nonnull handler,
                              void *_Nullable context, char *_Nonnull errbuf);
/// The capture's pcap link type (DLT_*).
int csupport_capture_linktype(struct csupport_capture *_Nonnull cap);
/// Opens the trace file (pcap or pcapng) `name`, a path relative to the directory `dir`
/// that may not leave it (no absolute path, no `..` above it, no symbolic link out of it;
/// openat2 RESOLVE_BENEATH), and must be a regular file. NULL on failure, with the reason in
/// `errbuf` (256 bytes) and `status`: -1 libpcap cannot read it, -2 not found, -3 outside
/// `dir`, -4 not a regular file, -5 other (permissions, the directory).
struct csupport_capture *_Nullable csupport_capture_open_file(const char *_Nonnull dir, const char *_Nonnull name,
                                                               char *_Nonnull errbuf, int *_Nonnull status);
/// Frames the kernel received and dropped for this handle so far.
int csupport_capture_stats(struct csupport_capture *_Nonnull cap, uint64_t *_Nonnull received,
                           uint64_t *_Nonnull dropped);
void csupport_capture_close(struct csupport_capture *_Nullable cap);
/// Whether `device` exists and this process may capture on it, without loading libpcap:
/// 0, or a pcap status (PCAP_ERROR_NO_SUCH_DEVICE, PCAP_ERROR_PERM_DENIED, ...) with the
/// reason in `errbuf` (256 bytes).
int csupport_capture_probe(const char *_Nonnull device, char *_Nonnull errbuf);

/// The interface packets to `to` leave by (the route the kernel picks for a UDP socket
/// connected there), its name into `name` (`cap` bytes); 0, or -errno (-ENODEV: no interface
/// holds the source address the route gives).
int csupport_route_interface(const struct sockaddr *_Nonnull to, socklen_t len, char *_Nonnull name, size_t cap);

/// Moves the calling thread into the network namespace at `path` (/var/run/netns/NAME).
int csupport_enter_netns(const char *_Nonnull path);


/// Drops this process's mapping of its executable's read-only segments (code, constants)
/// after start-up, except pages it holds private copies of: pages used again fault back in
/// from the page cache. Bytes of mapping released, or -errno. See shim.c.
long csupport_release_startup_pages(void);
/// The address of a function of the executable that is never called (tests patch a private
/// copy of its page, as a debugger does).
const void *_Nonnull csupport_release_probe_address(void);

#endif
