// Reading and writing files (include/zsclip/io.h) and every public reader built on it: bounded reads,
// only regular files read by path, one ErrorCode per condition, atomic writes that leave nothing
// behind.
#include "zsclip/io.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>

#include "process_util.h"
#include "test_util.h"
#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/image.h"
#include "zsclip/preprocess.h"
#include "zsclip/tokenizer.h"
#include "zsclip/zero_shot.h"

namespace zsclip {
namespace {

namespace fs = std::filesystem;
using ::zsclip::testing::read_file;
using ::zsclip::testing::run_in_child;
using ::zsclip::testing::temp_dir;

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Runs fn, which must throw Error(code) with every one of `parts` in its message.
::testing::AssertionResult fails_with(const std::function<void()>& fn, ErrorCode code,
                                      const std::vector<std::string>& parts) {
  try {
    fn();
  } catch (const Error& e) {
    if (e.code() != code)
      return ::testing::AssertionFailure() << "code " << error_code_name(e.code()) << ", expected "
                                           << error_code_name(code) << ": " << e.what();
    for (const auto& p : parts)
      if (std::string(e.what()).find(p) == std::string::npos)
        return ::testing::AssertionFailure() << "message lacks \"" << p << "\": " << e.what();
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "not a zsclip::Error: " << e.what();
  }
  return ::testing::AssertionFailure() << "no error";
}

// Every public function that reads a file by path. `path` is what it reads; `named` is what its
// error must name (the model directory for config.json).
struct Reader {
  std::string name;
  std::function<void(const std::string& path)> read;
  std::function<std::string(const std::string& path)> named = [](const std::string& p) {
    return p;
  };
};

std::vector<Reader> readers() {
  static int config_dirs = 0;
  auto config_dir = [](const std::string& path) {
    const std::string dir = temp_dir("io_config/" + std::to_string(config_dirs++));
    fs::create_symlink(fs::absolute(path), dir + "/config.json");
    return dir;
  };
  return {
      {"Preprocessor::from_file", [](const std::string& p) { Preprocessor().from_file(p); }},
      {"decode_image_file", [](const std::string& p) { decode_image_file(p); }},
      {"load_labels_file", [](const std::string& p) { load_labels_file(p); }},
      {"load_templates_file", [](const std::string& p) { load_templates_file(p); }},
      {"resolve_templates", [](const std::string& p) { resolve_templates(p); }},
      {"ZeroShotHead::load", [](const std::string& p) { ZeroShotHead::load(p); }},
      {"Tokenizer::from_file", [](const std::string& p) { Tokenizer::from_file(p); }},
      {"ModelConfig::load", [=](const std::string& p) { ModelConfig::load(config_dir(p)); },
       [](const std::string&) { return std::string("config.json"); }},
  };
}

TEST(IoRead, EveryReaderRefusesDevicesFifosAndDirectoriesWithoutReading) {
  // Reading /dev/zero used to run until memory ran out, and a FIFO without a writer blocked for
  // ever: a hang ends the test here instead.
  ::alarm(60);
  const std::string dir = temp_dir("io_not_regular");
  ASSERT_EQ(::mkfifo((dir + "/fifo").c_str(), 0644), 0);
  fs::create_directories(dir + "/folder");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/dev/zero", "a character device"},
      {dir + "/fifo", "a FIFO"},
      {dir + "/folder", "a directory"}};
  for (const Reader& r : readers())
    for (const auto& c : cases) {
      const std::string& path =
          c.first;  // not a structured binding: C++17 lambdas cannot capture those
      EXPECT_TRUE(fails_with([&] { r.read(path); }, ErrorCode::kInvalidArgument,
                             {r.named(path), c.second, "not a regular file"}))
          << r.name << " on " << path;
    }
  ::alarm(0);
}

TEST(IoRead, EveryReaderGivesOneCodePerCondition) {
  const std::string dir = temp_dir("io_codes");
  for (const Reader& r : readers()) {
    EXPECT_TRUE(fails_with([&] { r.read(dir + "/absent"); }, ErrorCode::kNotFound,
                           {r.named(dir + "/absent")}))
        << r.name;
    EXPECT_TRUE(fails_with([&] { r.read(dir + "/absent/below"); }, ErrorCode::kNotFound, {}))
        << r.name << " (a path through a missing directory)";
  }
  // A file this process may not read: kPermissionDenied from every reader. Root reads anything, so
  // the readers run as the user nobody, in a child, on a file in a folder nobody may enter.
  char tmpl[] = "/tmp/zsclip_io_perm_XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string perm = tmpl;
  ::chmod(perm.c_str(), 0755);
  write_file(perm + "/locked", "x");
  write_file(perm + "/open.txt", "a {}\n");
  ::chmod((perm + "/locked").c_str(), 0);
  ::chmod((perm + "/open.txt").c_str(), 0644);
  const std::vector<Reader> rs = readers();
  for (size_t i = 0; i < rs.size(); ++i) {
    if (rs[i].name == "ModelConfig::load") continue;  // it needs a folder of its own, below
    const int rc = run_in_child([&] {
      if (!::zsclip::testing::drop_root()) return 2;
      load_templates_file(perm + "/open.txt");  // readable: the folder is not what is refused
      try {
        rs[i].read(perm + "/locked");
      } catch (const Error& e) {
        const bool named = std::string(e.what()).find(perm + "/locked") != std::string::npos;
        return e.code() == ErrorCode::kPermissionDenied && named ? 0 : 3;
      }
      return 4;
    });
    EXPECT_EQ(rc, 0) << rs[i].name
                     << " (2: cannot become nobody; 3: wrong code or message; 4: read)";
  }
  fs::create_directories(perm + "/model");
  ::chmod((perm + "/model").c_str(), 0755);
  write_file(perm + "/model/config.json", "{}");
  ::chmod((perm + "/model/config.json").c_str(), 0);
  const int rc = run_in_child([&] {
    if (!::zsclip::testing::drop_root()) return 2;
    try {
      ModelConfig::load(perm + "/model");
    } catch (const Error& e) {
      return e.code() == ErrorCode::kPermissionDenied ? 0 : 3;
    }
    return 4;
  });
  EXPECT_EQ(rc, 0) << "ModelConfig::load on an unreadable config.json";
  fs::remove_all(perm);
}

TEST(IoRead, ErrnoMapsToOneCode) {
  EXPECT_EQ(error_code_from_errno(ENOENT), ErrorCode::kNotFound);
  EXPECT_EQ(error_code_from_errno(ENOTDIR), ErrorCode::kNotFound);
  EXPECT_EQ(error_code_from_errno(EACCES), ErrorCode::kPermissionDenied);
  EXPECT_EQ(error_code_from_errno(EPERM), ErrorCode::kPermissionDenied);
  EXPECT_EQ(error_code_from_errno(EISDIR), ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_code_from_errno(ENOSPC), ErrorCode::kIo);
  EXPECT_EQ(error_code_from_errno(EIO), ErrorCode::kIo);
}

TEST(IoRead, SizeIsCheckedBeforeReading) {
  const std::string dir = temp_dir("io_size");
  write_file(dir + "/fits", std::string(1000, 'a'));
  write_file(dir + "/over", std::string(1001, 'a'));
  const io::ReadLimit limit{1000, ErrorCode::kInvalidConfig};
  EXPECT_EQ(io::read_file(dir + "/fits", "test file", limit).size(), 1000u);
  EXPECT_TRUE(fails_with([&] { io::read_file(dir + "/over", "test file", limit); },
                         ErrorCode::kInvalidConfig,
                         {"test file '" + dir + "/over'", "1001 bytes", "limit of 1000 bytes"}));
  EXPECT_TRUE(fails_with([&] { io::read_file("", "test file", limit); },
                         ErrorCode::kInvalidArgument, {"empty path"}));

  // A sparse 2.5 GB "image" used to be read whole (4.4 GB of memory) before its size was refused.
  // In a child whose address space allows 256 MiB more, it must be refused by its size alone.
  {
    std::ofstream f(dir + "/huge.png", std::ios::binary);
    f << "\x89PNG\r\n\x1a\n";
  }
  fs::resize_file(dir + "/huge.png", uint64_t{2500} << 20);
  const int rc = run_in_child([&] {
    const bool limited = ::zsclip::testing::limit_address_space(256ll << 20);
    try {
      Preprocessor().from_file(dir + "/huge.png");
    } catch (const Error& e) {
      const std::string what = e.what();
      if (e.code() != ErrorCode::kInvalidImage ||
          what.find("larger than the limit") == std::string::npos) {
        std::fprintf(stderr, "%s\n", e.what());
        return 3;
      }
      return limited ? 0 : 1;
    } catch (const std::bad_alloc&) {
      return 4;
    }
    return 5;
  });
  fs::remove(dir + "/huge.png");
  if (rc == 1)
    GTEST_SKIP() << "refused, but the address space could not be limited (sanitizer build)";
  EXPECT_EQ(rc, 0) << "3: wrong error; 4: read into memory (bad_alloc); 5: accepted";
}

TEST(IoRead, AStreamIsReadAtMostOneBytePastTheLimit) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const std::string data(5000, 'z');  // fits in the pipe's buffer: no writer thread needed
  ASSERT_EQ(::write(fds[1], data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ::close(fds[1]);
  EXPECT_TRUE(fails_with(
      [&] {
        io::read_stream(fds[0], "standard input", {1000, ErrorCode::kInvalidArgument});
      },
      ErrorCode::kInvalidArgument, {"standard input", "limit of 1000 bytes"}));
  char rest[8192];
  ssize_t left = 0, n;
  while ((n = ::read(fds[0], rest, sizeof rest)) > 0) left += n;
  EXPECT_EQ(left, 5000 - 1001) << "bytes the reader left in the pipe";
  ::close(fds[0]);

  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "abc", 3), 3);
  ::close(fds[1]);
  EXPECT_EQ(io::read_stream(fds[0], "standard input", {3, ErrorCode::kInvalidArgument}), "abc");
  ::close(fds[0]);
}

// The names in `dir`, sorted.
std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

ZeroShotHead small_head() {
  return ZeroShotHead::from_weights({"a", "b"}, FloatTensor({2, 2}, std::vector<float>{1, 0, 0, 1}),
                                    10.f, "fp");
}

TEST(IoWrite, TargetsThatAreNotRegularFilesAreRefusedAndKept) {
  const std::string dir = temp_dir("io_write_refused");
  fs::create_directories(dir + "/folder");
  ASSERT_EQ(::mkfifo((dir + "/fifo").c_str(), 0644), 0);
  for (const std::string name : {"folder", "fifo"}) {
    // `zsclip head --out /tmp` left /tmp.tmp behind.
    EXPECT_TRUE(fails_with([&] { small_head().save(dir + "/" + name); },
                           ErrorCode::kInvalidArgument, {dir + "/" + name, "not a regular file"}));
    EXPECT_TRUE(fails_with([&] { io::write_file_atomic(dir + "/" + name, "output", "x", 1); },
                           ErrorCode::kInvalidArgument, {"not a regular file"}));
  }
  EXPECT_EQ(entries(dir), (std::vector<std::string>{"fifo", "folder"}))
      << "something was left behind";
  EXPECT_TRUE(fs::is_directory(dir + "/folder"));
  EXPECT_TRUE(fs::is_fifo(dir + "/fifo"));
  // A device node (as root, --out /dev/null would have become a regular file). Needs CAP_MKNOD.
  if (::mknod((dir + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0) {
    EXPECT_TRUE(fails_with([&] { small_head().save(dir + "/null"); }, ErrorCode::kInvalidArgument,
                           {"a character device"}));
    EXPECT_TRUE(fs::is_character_file(dir + "/null"));
  }
  EXPECT_TRUE(fails_with([&] { small_head().save(dir + "/missing/h.zshead"); },
                         ErrorCode::kNotFound, {dir + "/missing/h.zshead"}));
}

TEST(IoWrite, SymbolicLinksAreWrittenThrough) {
  const std::string dir = temp_dir("io_write_links");
  fs::create_directories(dir + "/real");
  write_file(dir + "/real/target", "old");
  fs::create_symlink("real/target", dir + "/relative");  // relative to the link's folder
  fs::create_symlink(dir + "/relative", dir + "/chain");
  io::write_file_atomic(dir + "/chain", "output", "new", 3);
  EXPECT_TRUE(fs::is_symlink(dir + "/chain"));
  EXPECT_TRUE(fs::is_symlink(dir + "/relative"));
  EXPECT_EQ(read_file(dir + "/real/target"), "new");
  EXPECT_EQ(entries(dir + "/real"), std::vector<std::string>{"target"});
  // A dangling link: the file it names is created.
  fs::create_symlink("real/created", dir + "/dangling");
  small_head().save(dir + "/dangling");
  EXPECT_TRUE(fs::is_symlink(dir + "/dangling"));
  EXPECT_EQ(ZeroShotHead::load(dir + "/real/created").labels(),
            (std::vector<std::string>{"a", "b"}));
}

TEST(IoWrite, AFailedWriteLeavesTheTargetAndNoTemporaryFile) {
  const std::string dir = temp_dir("io_write_fail");
  write_file(dir + "/out", "old contents");
  // The child may write files of at most 100 bytes: the write fails with EFBIG.
  const int rc = run_in_child([&] {
    std::signal(SIGXFSZ, SIG_IGN);
    const rlimit lim{100, 100};
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) return 2;
    const std::string big(4096, 'x');
    try {
      io::write_file_atomic(dir + "/out", "output file", big.data(), big.size());
    } catch (const Error& e) {
      return e.code() == ErrorCode::kIo &&
                     std::string(e.what()).find("write failed") != std::string::npos
                 ? 0
                 : 3;
    }
    return 4;
  });
  EXPECT_EQ(rc, 0) << "2: no limit; 3: wrong error; 4: no error";
  EXPECT_EQ(read_file(dir + "/out"), "old contents");
  EXPECT_EQ(entries(dir), std::vector<std::string>{"out"}) << "the temporary file was left behind";
}

TEST(IoWrite, ModesFollowTheUmaskOrTheReplacedFile) {
  const std::string dir = temp_dir("io_write_mode");
  write_file(dir + "/private", "x");
  ::chmod((dir + "/private").c_str(), 0600);
  const int rc = run_in_child([&] {
    ::umask(027);
    io::write_file_atomic(dir + "/new", "output", "abc", 3);
    io::write_file_atomic(dir + "/private", "output", "abc", 3);
    return 0;
  });
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(fs::status(dir + "/new").permissions() & fs::perms::all, static_cast<fs::perms>(0640));
  EXPECT_EQ(fs::status(dir + "/private").permissions() & fs::perms::all,
            static_cast<fs::perms>(0600));
  EXPECT_EQ(read_file(dir + "/new"), "abc");
}

}  // namespace
}  // namespace zsclip
