// Uploads (the "uploads" key): real servers in every mode, talked to with
// raw sockets and curl over 127.0.0.1; the upload's root is checked after
// each request (the stored bytes, and never a temporary file left over).
#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "server_util.h"

namespace asmsrv::test {
namespace {

using json = nlohmann::ordered_json;

// The names in a directory, sorted.
std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::string n = e->d_name; n != "." && n != "..") out.push_back(n);
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct UploadServer {
  std::string dir, files;
  int port = 0;
  std::unique_ptr<ServerProcess> proc;
};

// specs/fileserver.json with `patch`, run from a temp dir holding its root.
// `prepare` runs on the root before the server opens it (e.g. mounts a file system there).
std::optional<UploadServer> start_fileserver(const json& patch, std::vector<std::string> prefix_args = {},
                                             const std::function<void(const std::string&)>& prepare = {}) {
  UploadServer s;
  std::string spec = spec_copy("fileserver", patch);
  s.dir = spec.substr(0, spec.rfind('/'));
  s.files = s.dir + "/files";
  ::mkdir(s.files.c_str(), 0755);
  if (prepare) prepare(s.files);
  s.port = free_port();
  std::string bin = build_server(spec, "nasm", s.port, s.dir);
  if (bin.empty()) return std::nullopt;
  if (!prefix_args.empty()) {  // e.g. prlimit --fsize=N -- server
    prefix_args.push_back(bin);
    std::string wrapper = s.dir + "/wrapped.sh";
    std::string cmd = "#!/bin/sh\nexec";
    for (const std::string& a : prefix_args) cmd += " '" + a + "'";
    write(wrapper, cmd + "\n");
    ::chmod(wrapper.c_str(), 0755);
    bin = wrapper;
  }
  s.proc = std::make_unique<ServerProcess>(bin, s.dir);
  if (!s.proc->wait_ready()) {
    ADD_FAILURE() << "fileserver did not start: " << s.proc->err();
    return std::nullopt;
  }
  return s;
}

std::string put(const std::string& path, const std::string& body, const std::string& extra = "") {
  return "PUT " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra +
         "\r\n" + body;
}

Reply ask(int port, const std::string& request) {
  Fd fd = connect_to(port);
  EXPECT_TRUE(fd.valid());
  EXPECT_TRUE(send_all(fd.get(), request));
  std::string pending;
  return read_response(fd.get(), pending);
}

class Upload : public testing::TestWithParam<std::string> {
 protected:
  // The mode, a small max_bytes and body_timeout_ms; `upload` merged into
  // the upload's keys.
  json mode(const json& upload = json::object()) const {
    const std::string& m = GetParam();
    json j = {{"mode", m == "epoll2" ? "epoll" : m}, {"limits", {{"body_timeout_ms", 300}}}};
    if (m == "epoll2") j["workers"] = 2;
    json up = {{"path", "/files/"}, {"root", "files"}, {"max_bytes", 1000}};
    up.update(upload);
    j["uploads"] = json::array({up});
    return j;
  }
};

TEST_P(Upload, PutPostChunkedConflictAndOverwrite) {
  auto s = start_fileserver(mode());
  ASSERT_TRUE(s);
  Reply r = ask(s->port, put("/files/a.txt", "hello\n"));
  EXPECT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(r.header("Location"), "/files/a.txt");
  EXPECT_EQ(read(s->files + "/a.txt"), "hello\n");
  r = ask(s->port, "GET /files/a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello\n");
  // An existing name: 409, the file as it was.
  r = ask(s->port, put("/files/a.txt", "other\n"));
  EXPECT_EQ(r.status, 409) << r.raw;
  EXPECT_EQ(read(s->files + "/a.txt"), "hello\n");
  // Escaped names are decoded; bad names are 400.
  r = ask(s->port, put("/files/b%20c.txt", "bc"));
  EXPECT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(read(s->files + "/b c.txt"), "bc");
  for (const char* bad : {"/files/.hidden", "/files/x/y", "/files/a%01b", "/files/"})
    EXPECT_EQ(ask(s->port, put(bad, "x")).status, 400) << bad;
  // A name of NAME_MAX bytes is stored; one more is 400 at once, not a 500
  // from renameat2 once the whole body is in: no 100 Continue for it.
  const std::string longest(255, 'n');
  EXPECT_EQ(ask(s->port, put("/files/" + longest, "x")).status, 201);
  EXPECT_EQ(read(s->files + "/" + longest), "x");
  ASSERT_EQ(::unlink((s->files + "/" + longest).c_str()), 0);
  r = ask(s->port, "PUT /files/" + longest + "n HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                   "Expect: 100-continue\r\n\r\n");
  EXPECT_EQ(r.status, 400) << r.raw;
  // POST: a new name under the prefix.
  r = ask(s->port, "POST /files/ HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\npost");
  EXPECT_EQ(r.status, 201) << r.raw;
  auto loc = r.header("Location");
  ASSERT_TRUE(loc && loc->starts_with("/files/"));
  EXPECT_EQ(read(s->files + "/" + loc->substr(7)), "post");
  // Chunked, with an extension and a trailer; then a pipelined request on
  // the same connection.
  {  // closed after: an iterative server serves one connection at a time
  Fd fd = connect_to(s->port);
  ASSERT_TRUE(send_all(fd.get(),
                       "PUT /files/c.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5;x=1\r\nhello\r\n7\r\n, world\r\n0\r\nT: v\r\n\r\n"
                       "GET /files/c.txt HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string pending;
  r = read_response(fd.get(), pending);
  EXPECT_EQ(r.status, 201) << r.raw;
  r = read_response(fd.get(), pending);
  EXPECT_EQ(r.body, "hello, world");
  }
  // A coding before chunked cannot be undone: 501 at once, not its coded
  // bytes stored as the file; nothing left.
  r = ask(s->port, "PUT /files/gz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, 501) << r.raw;
  r = ask(s->port, "PUT /files/gz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "3\r\nabc\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, 501) << r.raw;
  // A malformed chunked body: 400, nothing left.
  r = ask(s->port, "PUT /files/d.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
  EXPECT_EQ(r.status, 400);
  std::vector<std::string> stored = {"a.txt", "b c.txt", "c.txt", loc->substr(7)};
  std::sort(stored.begin(), stored.end());
  EXPECT_EQ(names_in(s->files), stored);
  // Over max_bytes (1000 in the spec): by Content-Length, and chunked.
  EXPECT_EQ(ask(s->port, put("/files/big", std::string(1001, 'x'))).status, 413);
  r = ask(s->port, "PUT /files/big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "200\r\n" + std::string(512, 'x') + "\r\n200\r\n" + std::string(512, 'x') + "\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(names_in(s->files).size(), 4u);
  // The access log says what was stored, and only then.
  const std::string log = s->proc->out();
  EXPECT_NE(log.find("\"PUT /files/a.txt HTTP/1.1\" 201 0 stored /files/a.txt\n"), std::string::npos) << log;
  EXPECT_NE(log.find("\"POST /files/ HTTP/1.1\" 201 0 stored " + *loc + "\n"), std::string::npos) << log;
  EXPECT_NE(log.find("\"PUT /files/a.txt HTTP/1.1\" 409 "), std::string::npos) << log;
  EXPECT_EQ(log.find("\" 409 13 stored"), std::string::npos) << log;
  EXPECT_NE(log.find("\"GET /files/a.txt HTTP/1.1\" 200 6\n"), std::string::npos) << log;
}

// A temporary name left by a server that was killed (a container restarts
// with the same pids) is passed over, and left alone: the upload is stored.
TEST(UploadStale, ATemporaryFileLeftByADeadServerIsPassedOver) {
  for (const char* m : {"epoll", "iterative"}) {
    auto s = start_fileserver({{"mode", m}});
    ASSERT_TRUE(s);
    const std::string stale = ".upload-" + std::to_string(s->proc->pid());
    write(s->files + "/" + stale + "-1", "stale");
    write(s->files + "/" + stale + "-2", "stale");
    Reply r = ask(s->port, put("/files/new", "fresh"));
    EXPECT_EQ(r.status, 201) << m << r.raw;
    EXPECT_EQ(read(s->files + "/new"), "fresh") << m;
    EXPECT_EQ(names_in(s->files), (std::vector<std::string>{stale + "-1", stale + "-2", "new"})) << m;
  }
}

TEST(UploadLog, JsonLinesSayWhereTheBodyWasStored) {
  auto s = start_fileserver({{"log", {{"requests", true}, {"format", "json"}}}});
  ASSERT_TRUE(s);
  EXPECT_EQ(ask(s->port, put("/files/q%22.txt", "q")).status, 201);
  EXPECT_EQ(ask(s->port, put("/files/q%22.txt", "q")).status, 409);
  const std::string log = s->proc->out();
  EXPECT_NE(log.find(",\"stored\":\"/files/q%22.txt\"}\n"), std::string::npos) << log;
  EXPECT_EQ(log.find("\"stored\""), log.rfind("\"stored\"")) << "only the 201 says stored: " << log;
}

TEST_P(Upload, OverwriteReplacesAtomically) {
  auto s = start_fileserver(mode({{"overwrite", true}, {"mode", "0600"}}));
  ASSERT_TRUE(s);
  EXPECT_EQ(ask(s->port, put("/files/a", "one")).status, 201);
  EXPECT_EQ(ask(s->port, put("/files/a", "two")).status, 201);
  EXPECT_EQ(read(s->files + "/a"), "two");
  struct stat st {};
  ASSERT_EQ(::stat((s->files + "/a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_P(Upload, AnAbortedUploadLeavesNothing) {
  auto s = start_fileserver(mode());
  ASSERT_TRUE(s);
  {
    Fd fd = connect_to(s->port);
    ASSERT_TRUE(send_all(fd.get(), "PUT /files/half HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly some"));
    // The temporary file exists while the body comes.
    EXPECT_TRUE(eventually([&] { return names_in(s->files).size() == 1; }));
    EXPECT_TRUE(names_in(s->files).empty() || names_in(s->files)[0].starts_with(".upload-"));
  }  // closed mid-body
  EXPECT_TRUE(eventually([&] { return names_in(s->files).empty(); }));
  // The same for a chunked body.
  {
    Fd fd = connect_to(s->port);
    ASSERT_TRUE(send_all(fd.get(), "PUT /files/half HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"));
    EXPECT_TRUE(eventually([&] { return names_in(s->files).size() == 1; }));
  }
  EXPECT_TRUE(eventually([&] { return names_in(s->files).empty(); }));
  // And a body that does not come within body_timeout_ms (300 ms here).
  Fd fd = connect_to(s->port);
  ASSERT_TRUE(send_all(fd.get(), "PUT /files/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab"));
  EXPECT_TRUE(eventually([&] { return names_in(s->files).size() == 1; }));
  EXPECT_TRUE(eventually([&] { return names_in(s->files).empty(); }, 3000));
}

TEST_P(Upload, ConcurrentUploads) {
  auto s = start_fileserver(mode());
  ASSERT_TRUE(s);
  std::vector<std::thread> threads;
  std::vector<int> status(8);
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      Fd fd = connect_to(s->port);
      std::string body(900, static_cast<char>('a' + i));
      std::string req = put("/files/f" + std::to_string(i), body);
      // In two pieces, so that the uploads interleave.
      send_all(fd.get(), req.substr(0, 200));
      sleep_ms(50);
      send_all(fd.get(), req.substr(200));
      std::string pending;
      status[i] = read_response(fd.get(), pending).status;
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(status[i], 201);
    EXPECT_EQ(read(s->files + "/f" + std::to_string(i)), std::string(900, static_cast<char>('a' + i)));
  }
  EXPECT_EQ(names_in(s->files).size(), 8u);
}

TEST_P(Upload, CurlUploadsAFileAndStdin) {
  if (find_in_path("curl").empty()) GTEST_SKIP() << "no curl";
  auto s = start_fileserver(mode());
  ASSERT_TRUE(s);
  std::string src = s->dir + "/src.bin";
  write(src, std::string(800, 'z'));
  std::string base = "http://127.0.0.1:" + std::to_string(s->port) + "/files/";
  // -T sends Expect: 100-continue for a file; -T - sends stdin chunked.
  CmdResult r = run({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T", src, base + "t.bin"});
  EXPECT_EQ(r.out, "201") << r.err;
  EXPECT_EQ(read(s->files + "/t.bin"), std::string(800, 'z'));
  r = run({"sh", "-c", "echo from stdin | curl -sS -o /dev/null -w '%{http_code}' -T - " + base + "s.txt"});
  EXPECT_EQ(r.out, "201") << r.err;
  EXPECT_EQ(read(s->files + "/s.txt"), "from stdin\n");
  // Over max_bytes with Expect: 413 at once; the body is never sent.
  write(src, std::string(5000, 'z'));
  r = run({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T", src, base + "big"});
  EXPECT_EQ(r.out, "413") << r.err;
  EXPECT_EQ(names_in(s->files).size(), 2u);
}

TEST_P(Upload, AFullDiskIs413ThroughRlimitFsize) {
  // RLIMIT_FSIZE on the server: write() past it fails with EFBIG (SIGXFSZ
  // is ignored), and the upload is 413, its temporary file removed.
  if (find_in_path("prlimit").empty()) GTEST_SKIP() << "no prlimit";
  auto s = start_fileserver(mode(), {find_in_path("prlimit"), "--fsize=100", "--"});
  ASSERT_TRUE(s);
  EXPECT_EQ(ask(s->port, put("/files/small", std::string(100, 's'))).status, 201);
  Reply r = ask(s->port, put("/files/large", std::string(500, 'l')));
  EXPECT_EQ(r.status, 413) << r.raw;
  EXPECT_EQ(names_in(s->files), (std::vector<std::string>{"small"}));
  EXPECT_FALSE(s->proc->exited());
}

TEST_P(Upload, AFullDiskIs507OnASmallTmpfs) {
  // A 64 KiB tmpfs as the root (root may mount one; a container may not:
  // then RLIMIT_FSIZE above is the full-disk test). A 200 KB body fills it:
  // ENOSPC, 507, the temporary file removed, and the next upload that fits
  // is stored.
  struct Mount {
    std::string at;
    ~Mount() {
      if (!at.empty()) ::umount2(at.c_str(), MNT_DETACH);
    }
  } mount;
  int mount_errno = 0;
  std::optional<UploadServer> s = start_fileserver(mode({{"max_bytes", 1 << 20}}), {}, [&](const std::string& files) {
    if (::mount("tmpfs", files.c_str(), "tmpfs", 0, "size=64k,mode=0755") == 0)
      mount.at = files;
    else
      mount_errno = errno;
  });
  if (mount.at.empty()) GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(mount_errno);
  ASSERT_TRUE(s);
  Reply r = ask(s->port, put("/files/big", std::string(200 * 1000, 'b')));
  EXPECT_EQ(r.status, 507) << r.raw;
  EXPECT_EQ(names_in(s->files), std::vector<std::string>{});
  EXPECT_EQ(ask(s->port, put("/files/small", "fits")).status, 201);
  EXPECT_EQ(names_in(s->files), (std::vector<std::string>{"small"}));
  EXPECT_FALSE(s->proc->exited());
  s.reset();  // the server lets go of the root before it is unmounted
}

INSTANTIATE_TEST_SUITE_P(Modes, Upload, testing::Values("epoll", "iterative", "fork", "epoll2"));

}  // namespace
}  // namespace asmsrv::test
