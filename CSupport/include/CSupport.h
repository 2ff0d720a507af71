// CSupport: the C shim of the mPlane probe.
//
// Functions are prefixed `csupport_`; macros that Swift cannot import (CMSG_FIRSTHDR and
// friends) get `static inline` wrappers here. The information model (MPlane) never
// imports this module: only the measurement services and the runtime do.
#ifndef CSUPPORT_H
#define CSUPPORT_H

#include <stddef.h>
#include <sys/socket.h>

/// The first control message of `msg`, or NULL (wraps CMSG_FIRSTHDR).
static inline struct cmsghdr *_Nullable csupport_cmsg_firsthdr(const struct msghdr *_Nonnull msg) {
    return CMSG_FIRSTHDR(msg);
}

/// The control message after `cmsg` in `msg`, or NULL (wraps CMSG_NXTHDR).
static inline struct cmsghdr *_Nullable csupport_cmsg_nxthdr(struct msghdr *_Nonnull msg,
                                                             struct cmsghdr *_Nonnull cmsg) {
    return CMSG_NXTHDR(msg, cmsg);
}

/// The payload of a control message (wraps CMSG_DATA).
static inline unsigned char *_Nonnull csupport_cmsg_data(struct cmsghdr *_Nonnull cmsg) {
    return CMSG_DATA(cmsg);
}

/// Space needed for a control message with `len` payload bytes (wraps CMSG_SPACE).
static inline size_t csupport_cmsg_space(size_t len) { return CMSG_SPACE(len); }

/// Length field for a control message with `len` payload bytes (wraps CMSG_LEN).
static inline size_t csupport_cmsg_len(size_t len) { return CMSG_LEN(len); }

/// The version of this shim, so callers can check they link the one they were built with.
int csupport_version(void);

#endif
