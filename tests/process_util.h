// Helpers of tests that need a process of their own: a memory or file-size limit, or another user,
// applied in a forked child so that the test binary itself is unaffected.
#pragma once

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <fstream>
#include <functional>
#include <string>

namespace zsclip::testing {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

// Runs fn in a forked child and returns its exit status (fn's return value), 98 when fn threw, or
// 128 + the number of the signal that ended the child. Only for single-threaded test binaries.
inline int run_in_child(const std::function<int()>& fn) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 98;
    try {
      rc = fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: uncaught %s\n", e.what());
    } catch (...) {
    }
    std::fflush(nullptr);
    ::_exit(rc);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// This process's virtual size (VmSize) in bytes, or -1 when /proc cannot tell.
inline long long vm_size_bytes() {
  std::ifstream in("/proc/self/status");
  std::string key;
  long long kb = -1;
  while (in >> key) {
    if (key == "VmSize:") {
      in >> kb;
      return kb < 0 ? -1 : kb * 1024;
    }
    in.ignore(4096, '\n');
  }
  return -1;
}

// In a child: caps the address space at its current size plus `extra_bytes`, so that an attempt to
// read a huge input into memory fails there. Returns false, setting nothing, under AddressSanitizer
// (its shadow memory reserves terabytes of address space) or when the size cannot be read.
inline bool limit_address_space(long long extra_bytes) {
  if (kAddressSanitizer) return false;
  const long long now = vm_size_bytes();
  if (now < 0) return false;
  const rlimit lim{static_cast<rlim_t>(now + extra_bytes), static_cast<rlim_t>(now + extra_bytes)};
  return ::setrlimit(RLIMIT_AS, &lim) == 0;
}

// In a child running as root: becomes the unprivileged user `nobody` (65534), for whom permission
// bits count. Returns false when that fails; true at once when not root.
inline bool drop_root() {
  if (::geteuid() != 0) return true;
  return ::setgid(65534) == 0 && ::setuid(65534) == 0 && ::geteuid() == 65534;
}

}  // namespace zsclip::testing
