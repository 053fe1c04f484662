/*
 * The child's page: a few words of memory shared by the parent and one child, Apache's scoreboard
 * in small. The child writes there what changes on every request (how many requests its handler
 * runs), which the parent reads when it chooses a child, so the hot path needs no frame.
 *
 * Linux only (memfd with seals). The parent creates the page with every seal that keeps its size
 * fixed: the child holds a writable descriptor of it, and a child that could shrink the file would
 * make the parent's next read of its mapping a SIGBUS. Elsewhere createPage() answers null and the
 * pool counts a child's connections as its requests, as before pages existed.
 */
#include "prefork.h"

#include <errno.h>
#include <unistd.h>

#ifdef PREFORK_HAVE_PAGE
#include <fcntl.h>
#include <sys/mman.h>
#endif

/* One page: far more than the words used, and the unit mmap() works in anyway. */
#define PAGE_BYTES 4096

#ifdef PREFORK_HAVE_PAGE
static void unmap_page(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  munmap(data, PAGE_BYTES);
}

/* An ArrayBuffer over the mapping, unmapped when it is collected. */
static napi_value page_buffer(napi_env env, void *mapping) {
  napi_value buffer;
  if (napi_create_external_arraybuffer(env, mapping, PAGE_BYTES, unmap_page, NULL, &buffer) != napi_ok) {
    munmap(mapping, PAGE_BYTES);
    prefork_throw_last_napi_error(env);
    return NULL;
  }
  return buffer;
}
#endif

/* createPage(): { fd, page } with the fd close-on-exec (the caller passes it to one child), or null. */
napi_value prefork_create_page(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
#ifdef PREFORK_HAVE_PAGE
  int fd = memfd_create("prefork-child-page", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return prefork_throw_errno(env, errno, "memfd_create", NULL);
  if (ftruncate(fd, PAGE_BYTES) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
    int error_number = errno;
    close(fd);
    return prefork_throw_errno(env, error_number, "memfd", NULL);
  }
  void *mapping = mmap(NULL, PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mapping == MAP_FAILED) {
    int error_number = errno;
    close(fd);
    return prefork_throw_errno(env, error_number, "mmap", NULL);
  }
  napi_value page = page_buffer(env, mapping);
  if (page == NULL) {
    close(fd);
    return NULL;
  }
  napi_value fd_value;
  PREFORK_CALL(env, napi_create_object(env, &result));
  PREFORK_CALL(env, napi_create_int32(env, fd, &fd_value));
  PREFORK_CALL(env, napi_set_named_property(env, result, "fd", fd_value));
  PREFORK_CALL(env, napi_set_named_property(env, result, "page", page));
#else
  PREFORK_CALL(env, napi_get_null(env, &result));
#endif
  return result;
}

/* mapPage(fd): the child's view of the page its parent passed it; the fd is closed. */
napi_value prefork_map_page(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!prefork_get_fd_argument(env, info, &fd)) return NULL;
#ifdef PREFORK_HAVE_PAGE
  void *mapping = mmap(NULL, PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int error_number = errno;
  close(fd);
  if (mapping == MAP_FAILED) return prefork_throw_errno(env, error_number, "mmap", NULL);
  return page_buffer(env, mapping);
#else
  close(fd);
  return prefork_throw_errno(env, ENOSYS, "mmap", NULL);
#endif
}
