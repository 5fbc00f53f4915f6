/* Wire format of cric-shim's attach and control sockets, shared by the shim
 * (shim/) and the daemon (src/shim/).  Documented in cric-shim(8).
 *
 * Both sockets are SOCK_STREAM unix sockets in the shim's state directory
 * ("attach" and "control").  Each direction is a sequence of frames:
 *
 *     u8  type
 *     u32 length   (big endian, at most CRIC_SHIM_FRAME_MAX)
 *     length bytes of payload
 *
 * shim -> client:
 *   STDOUT / STDERR  container output, raw bytes (attach socket only; a
 *                    terminal's output is STDOUT)
 *   ACK              answer to a control request: payload u32 BE errno
 *                    (0 = done), in request order
 * client -> shim (either socket):
 *   STDIN            bytes for the container's stdin
 *   CLOSE_STDIN      no payload: close stdin (^D on a terminal)
 *   RESIZE           u16 BE rows, u16 BE cols
 *   REOPEN_LOG       no payload: reopen the log file
 *   SIGNAL           u8 signal number: sent to the container's init (ESRCH
 *                    once it has been reaped; no pid-reuse race, the shim is
 *                    its parent)
 * On the control socket every request gets an ACK; on the attach socket
 * none does (output and stdin are a stream).  The shim closes every
 * connection when the container has exited and its output is drained.
 */
#ifndef CRIC_SHIM_PROTO_H
#define CRIC_SHIM_PROTO_H

#include <stdint.h>

#define CRIC_SHIM_FRAME_HDR 5
#define CRIC_SHIM_FRAME_MAX 65536

enum cric_shim_frame_type {
    CRIC_SHIM_FRAME_STDOUT = 1,
    CRIC_SHIM_FRAME_STDERR = 2,
    CRIC_SHIM_FRAME_ACK = 3,
    CRIC_SHIM_FRAME_STDIN = 16,
    CRIC_SHIM_FRAME_CLOSE_STDIN = 17,
    CRIC_SHIM_FRAME_RESIZE = 18,
    CRIC_SHIM_FRAME_REOPEN_LOG = 19,
    CRIC_SHIM_FRAME_SIGNAL = 20,
};

/* Names of the files in a state directory. */
#define CRIC_SHIM_ATTACH_SOCK "attach"
#define CRIC_SHIM_CONTROL_SOCK "control"
#define CRIC_SHIM_START_SOCK "start" /* --wait: a connection here starts the container */
#define CRIC_SHIM_CONSOLE_SOCK "console"
#define CRIC_SHIM_EXIT_FILE "exit"
#define CRIC_SHIM_PID_FILE "shim.pid"
#define CRIC_SHIM_CONTAINER_PID_FILE "container.pid"
#define CRIC_SHIM_LOG_FILE "shim.log"
#define CRIC_SHIM_RUNTIME_LOG "runtime.log"

static inline void cric_shim_put_hdr(unsigned char *h, uint8_t type, uint32_t len)
{
    h[0] = type;
    h[1] = (unsigned char)(len >> 24);
    h[2] = (unsigned char)(len >> 16);
    h[3] = (unsigned char)(len >> 8);
    h[4] = (unsigned char)len;
}

static inline uint32_t cric_shim_get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
