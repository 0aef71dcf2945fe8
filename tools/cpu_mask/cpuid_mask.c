// cpuid_mask: makes a process see an AVX2-only x86-64 CPU, so that every library in it (oneDNN,
// LibTorch, ONNX Runtime's MLAS, zsclip's own dispatch) picks the kernels it would pick on such a
// CPU. Preloaded by tools/cpu_mask/as-avx2 (LD_PRELOAD), not linked into anything.
//
// How: Linux's CPUID faulting (arch_prctl(ARCH_SET_CPUID, 0)) makes the CPUID instruction trap with
// SIGSEGV. The handler runs the real CPUID (faulting off for that one instruction), clears the
// feature bits below, writes the registers and steps over the 2-byte instruction. The setting is
// kept by every thread the process starts and reset by execve (the preload sets it again there).
// The program's own SIGSEGV handlers are kept and called for every other fault (sigaction and
// signal are wrapped). Where the CPU or kernel has no CPUID faulting the process is stopped with
// a message instead of running unmasked.
//
// Hidden: AVX-512 (all subsets), AVX512_VNNI, AVX512_BF16, AVX512_FP16, AVX_VNNI (the VEX form),
// AMX, and the ZMM/opmask state bits of leaf 0xD. Kept: SSE..AVX2, FMA, F16C, BMI1/2, AES, SHA.
// Not masked: the XGETBV instruction (cannot trap; libraries test CPUID bits and XCR0 together) and
// whatever the dynamic loader detected before this library's constructor ran (glibc's string
// functions: as-avx2 sets GLIBC_TUNABLES for those).
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

typedef int (*sigaction_fn)(int, const struct sigaction*, struct sigaction*);

static sigaction_fn real_sigaction;
static struct sigaction app_segv;  // what the program asked for SIGSEGV (SIG_DFL until it asks)
static int installed;
static int verbose;
static unsigned long trapped;

static void mask_leaf(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
  if (leaf == 7 && sub == 0) {
    // EBX: AVX512F 16, DQ 17, IFMA 21, PF 26, ER 27, CD 28, BW 30, VL 31
    r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
              (1u << 30) | (1u << 31));
    // ECX: VBMI 1, VBMI2 6, VNNI 11, BITALG 12, VPOPCNTDQ 14
    r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
    // EDX: 4VNNIW 2, 4FMAPS 3, VP2INTERSECT 8, AMX_BF16 22, AVX512_FP16 23, AMX_TILE 24, AMX_INT8 25
    r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) |
              (1u << 25));
  } else if (leaf == 7 && sub == 1) {
    r[0] &= ~((1u << 4) | (1u << 5));  // EAX: AVX_VNNI 4, AVX512_BF16 5
  } else if (leaf == 0xD && sub == 0) {
    r[0] &= ~0xE0u;  // XCR0 bits the CPU supports: opmask, ZMM_Hi256, Hi16_ZMM
  }
}

static void chain(int sig, siginfo_t* info, void* context) {
  if (app_segv.sa_flags & SA_SIGINFO) {
    if (app_segv.sa_sigaction) app_segv.sa_sigaction(sig, info, context);
    return;
  }
  if (app_segv.sa_handler == SIG_IGN || app_segv.sa_handler == SIG_DFL) {
    // Default action: restore it; returning re-runs the faulting instruction, which now kills.
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    real_sigaction(SIGSEGV, &dfl, NULL);
    return;
  }
  app_segv.sa_handler(sig);
}

static void on_segv(int sig, siginfo_t* info, void* context) {
  ucontext_t* uc = (ucontext_t*)context;
  greg_t* g = uc->uc_mcontext.gregs;
  // A CPUID fault is a general-protection fault (si_code SI_KERNEL) at a fetched instruction, so
  // reading its two bytes is safe; any other fault goes to the program's handler untouched.
  const unsigned char* ip = (const unsigned char*)g[REG_RIP];
  if (info->si_code == SI_KERNEL && ip[0] == 0x0f && ip[1] == 0xa2) {
    uint32_t r[4];
    const uint32_t leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX];
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
    mask_leaf(leaf, sub, r);
    g[REG_RAX] = r[0];
    g[REG_RBX] = r[1];
    g[REG_RCX] = r[2];
    g[REG_RDX] = r[3];
    g[REG_RIP] += 2;
    ++trapped;
    return;
  }
  chain(sig, info, context);
}

int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (!real_sigaction) real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
  if (sig != SIGSEGV || !installed) return real_sigaction(sig, act, old);
  if (old) *old = app_segv;
  if (act) app_segv = *act;
  return 0;
}

sighandler_t signal(int sig, sighandler_t handler) {
  struct sigaction act, old;
  memset(&act, 0, sizeof act);
  act.sa_handler = handler;
  act.sa_flags = SA_RESTART;
  sigemptyset(&act.sa_mask);
  if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

// snprintf + write: this library's constructor runs before libc's stdio is set up (-z initfirst).
static void say(const char* text) { (void)!write(2, text, strlen(text)); }

static void report(void) {
  char line[128];
  snprintf(line, sizeof line, "cpuid_mask: pid %d answered %lu CPUID instructions\n", (int)getpid(), trapped);
  say(line);
}

// glibc passes (argc, argv, envp) to constructors; getenv cannot be used yet (libc's own
// initialisation, which sets environ, runs after this one).
__attribute__((constructor)) static void cpuid_mask_init(int argc, char** argv, char** envp) {
  (void)argc;
  (void)argv;
  real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
  for (char** e = envp; e && *e; ++e) {
    if (strncmp(*e, "CPUID_MASK_VERBOSE=", 19) == 0) verbose = 1;
  }
  memset(&app_segv, 0, sizeof app_segv);
  app_segv.sa_handler = SIG_DFL;
  struct sigaction act;
  memset(&act, 0, sizeof act);
  act.sa_sigaction = on_segv;
  act.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&act.sa_mask);
  if (real_sigaction(SIGSEGV, &act, NULL) != 0 || syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
    say("cpuid_mask: this CPU or kernel has no CPUID faulting (arch_prctl ARCH_SET_CPUID): "
        "cannot hide AVX-512 from this process; not running it unmasked\n");
    _exit(125);
  }
  installed = 1;
  if (verbose) {
    char line[96];
    snprintf(line, sizeof line, "cpuid_mask: pid %d sees an AVX2-only CPU\n", (int)getpid());
    say(line);
    atexit(report);
  }
}
