#define _GNU_SOURCE
#include "CSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

int csupport_enter_netns(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int r = setns(fd, CLONE_NEWNET);
    int e = errno;
    close(fd);
    return r < 0 ? -e : 0;
}
