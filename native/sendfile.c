/*
 * sendfile(2) for Node sockets, which Node does not offer: the bytes of a cached file go from
 * kernel pages to TCP without being copied from user memory first (what NGINX's `sendfile on`
 * does). Optional: without this addon the gateway writes the same bytes with write(2).
 *
 * The file side is a sealed memfd holding an exact copy of the bytes the cache holds in memory,
 * not the file on disk: a file rewritten in place while it is being sent would otherwise put
 * bytes on the wire that disagree with the Content-Length and ETag already sent.
 *
 * Linux only (sendfile to a socket, memfd_create and file seals). N-API only, so one build
 * serves every Node version of the same ABI.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define NAPI_VERSION 8
#include <node_api.h>

#ifndef __linux__
#error "sendfile addon: Linux only"
#endif

/* Throws a TypeError for arguments the TypeScript wrapper never passes. */
static napi_value bad_args(napi_env env, const char *what) {
  napi_throw_type_error(env, NULL, what);
  return NULL;
}

static napi_value number(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

/*
 * memfd(bytes: Buffer, offset: number) → fd, or -errno. The bytes are written from `offset` on
 * (what lies before it is a hole, never sent). The copy is sealed against writes and size changes,
 * so what sendfile reads from it is the bytes given here for as long as the fd lives.
 */
static napi_value js_memfd(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *data;
  size_t len;
  int64_t start;
  bool is_buffer = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2) return bad_args(env, "memfd(buffer, offset)");
  if (napi_is_buffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer || napi_get_value_int64(env, argv[1], &start) != napi_ok || start < 0)
    return bad_args(env, "memfd(buffer, offset)");
  napi_get_buffer_info(env, argv[0], &data, &len);

  int fd = memfd_create("streamgate-body", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return number(env, -errno);
  size_t off = 0;
  while (off < len) {
    ssize_t n = pwrite(fd, (const char *)data + off, len - off, (off_t)start + (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      close(fd);
      return number(env, -e);
    }
    off += (size_t)n;
  }
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
    int e = errno;
    close(fd);
    return number(env, -e);
  }
  return number(env, fd);
}

/*
 * send(socketFd, head: Buffer, fileFd, offset, length) → bytes written (head first, then file),
 * or -errno on a socket error. Stops early, without error, when the socket buffer is full
 * (EAGAIN: the socket is non-blocking, as libuv keeps it); the caller writes the rest through
 * Node, which then waits for writability itself.
 */
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  int32_t sock, fd;
  int64_t offset, length;
  void *head;
  size_t head_len;
  bool is_buffer = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5) return bad_args(env, "send(sock, head, fd, offset, length)");
  if (napi_get_value_int32(env, argv[0], &sock) != napi_ok || napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_value_int32(env, argv[2], &fd) != napi_ok || napi_get_value_int64(env, argv[3], &offset) != napi_ok ||
      napi_get_value_int64(env, argv[4], &length) != napi_ok || sock < 0 || fd < 0 || offset < 0 || length < 0)
    return bad_args(env, "send(sock, head, fd, offset, length)");
  napi_get_buffer_info(env, argv[1], &head, &head_len);

  int64_t written = 0;
  size_t hoff = 0;
  while (hoff < head_len) {
    /* MSG_MORE: the head waits for the first file bytes instead of leaving in a packet of its own. */
    ssize_t n = send(sock, (const char *)head + hoff, head_len - hoff, MSG_MORE | MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return number(env, written);
      return number(env, -errno);
    }
    hoff += (size_t)n;
    written += n;
  }
  off_t off = (off_t)offset;
  int64_t left = length;
  while (left > 0) {
    ssize_t n = sendfile(sock, fd, &off, (size_t)left);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return number(env, -errno);
    }
    /* End of file: cannot happen on a sealed copy; the caller writes what is missing from memory. */
    if (n == 0) break;
    left -= n;
    written += n;
  }
  return number(env, written);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"memfd", NULL, js_memfd, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
