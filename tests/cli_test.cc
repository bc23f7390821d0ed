// The command line: subcommands, exit codes, atomic outputs, the toolchain.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "server_util.h"
#include "spec.h"
#include "text.h"
#include "test_util.h"

namespace asmsrv::test {
namespace {

namespace fsys = std::filesystem;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(Cli, Version) {
  CmdResult r = asmsrv({"--version"});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, std::string("asmsrv ") + ASMSRV_VERSION + "\n");
}

TEST(Cli, HelpOnEverySubcommand) {
  for (const char* cmd : {"gen", "build", "run", "check", "explain", "image"}) {
    CmdResult r = asmsrv({cmd, "--help"});
    EXPECT_EQ(r.status, 0) << cmd;
    EXPECT_TRUE(contains(r.out, "SPEC")) << cmd << ": " << r.out;
  }
  EXPECT_EQ(asmsrv({"--help"}).status, 0);
}

TEST(Cli, UsageErrorsExit2) {
  EXPECT_EQ(asmsrv({}).status, 2);
  EXPECT_EQ(asmsrv({"frobnicate"}).status, 2);
  EXPECT_EQ(asmsrv({"gen"}).status, 2);
  CmdResult r = asmsrv({"gen", "specs/hello.json", "--syntax", "masm"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "--syntax: masm not in {nasm,gas}")) << r.err;
  EXPECT_EQ(asmsrv({"gen", "specs/hello.json", "--port", "0"}).status, 2);
  EXPECT_EQ(asmsrv({"gen", "specs/hello.json", "--port", "65536"}).status, 2);
  EXPECT_EQ(asmsrv({"build", "specs/hello.json"}).status, 2) << "build needs -o";
}

TEST(Cli, MissingSpecFileIsAnIoError) {
  CmdResult r = asmsrv({"check", "specs/nope.json"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "asmsrv: cannot read specs/nope.json: No such file or directory\n");
}

TEST(Cli, SpecErrorExits2AndWritesNothing) {
  std::string dir = temp_dir();
  write(dir + "/bad.json", R"({"response": {"status": 700}})");
  for (const char* cmd : {"gen", "build"}) {
    std::string out = dir + "/out-" + cmd;
    CmdResult r = asmsrv({cmd, dir + "/bad.json", "-o", out});
    EXPECT_EQ(r.status, 2) << cmd;
    EXPECT_EQ(r.err, dir + "/bad.json: /response/status: expected an integer from 200 to 599, got 700\n");
    EXPECT_EQ(r.out, "");
    EXPECT_FALSE(exists(out)) << cmd;
  }
  // An existing output stays as it was.
  write(dir + "/keep.s", "old");
  EXPECT_EQ(asmsrv({"gen", dir + "/bad.json", "-o", dir + "/keep.s"}).status, 2);
  EXPECT_EQ(read(dir + "/keep.s"), "old");
  EXPECT_EQ(asmsrv({"check", dir + "/bad.json"}).status, 2);
  EXPECT_EQ(asmsrv({"explain", dir + "/bad.json"}).status, 2);
}

TEST(Cli, GenWritesAtomically) {
  std::string dir = temp_dir();
  CmdResult r = asmsrv({"gen", "specs/hello.json", "-o", dir + "/server.s"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(read(dir + "/server.s"), asmsrv({"gen", "specs/hello.json"}).out);
  int files = 0;
  for ([[maybe_unused]] const auto& e : fsys::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1) << "no temp file may be left behind";
}

TEST(Cli, PortOverride) {
  CmdResult r = asmsrv({"gen", "specs/hello.json", "--port", "9999"});
  ASSERT_EQ(r.status, 0);
  EXPECT_TRUE(contains(r.out, "hello listening on 0.0.0.0:9999")) << "the startup line";
  // sin_port is 9999 = 0x270f in network byte order: the bytes 27 0f, the
  // little-endian word 0x0f27 = 3879.
  EXPECT_TRUE(contains(r.out, "dw 3879")) << "sockaddr_in.sin_port, big-endian";
  EXPECT_TRUE(contains(r.out, "sin_port = 9999, in network byte order"));
}

TEST(Cli, CheckAndExplain) {
  CmdResult c = asmsrv({"check", "specs/fork.json"});
  EXPECT_EQ(c.status, 0);
  EXPECT_EQ(c.out, "specs/fork.json: ok (0.0.0.0:8080, fork mode, 1 worker)\n");
  CmdResult e = asmsrv({"explain", "specs/fork.json"});
  EXPECT_EQ(e.status, 0);
  EXPECT_TRUE(contains(e.out, "    syscall  fork (57)\n    C        pid = fork()\n")) << e.out;
  EXPECT_TRUE(contains(e.out, "    syscall  bind (49)\n")) << e.out;
}

TEST(Cli, CheckSaysWhatEachSiteHolds) {
  std::string dir = temp_dir();
  fsys::create_directories(dir + "/public/docs");
  std::string page;
  for (int i = 0; page.size() < 3000; ++i) page += "<p>paragraph " + std::to_string(i) + "</p>\n";
  page.resize(3000);
  write(dir + "/public/index.html", page);
  write(dir + "/public/docs/index.html", page);  // the same bytes: stored once
  write(dir + "/public/logo.png", std::string(1000, 'x'));  // compressible bytes, an image type: as is
  write(dir + "/public/.env", "SECRET=1\n");  // hidden: not served
  write(dir + "/s.json", R"({"static": [{"dir": "public"}, {"path": "/raw/", "dir": "public/docs", "compress": false},
                                        {"path": "/media/", "root": "/srv/media"}],
                             "listen": {"port": 8181}})");
  CmdResult r = asmsrv({"check", dir + "/s.json"});
  ASSERT_EQ(r.status, 0) << r.err;
  StaticSite site = load_spec(dir + "/s.json").sites.at(0);
  const SiteFile& html = site.files.at(0);
  ASSERT_EQ(html.path, "docs/index.html");
  ASSERT_EQ(html.reps.size(), 3u);
  uint64_t stored = page.size() + 1000 + html.reps[1].size + html.reps[2].size;
  EXPECT_EQ(r.out, fmt::format("{0}/s.json: ok (0.0.0.0:8181, epoll mode, 1 worker)\n"
                               "static /: public: 3 files, 7,000 bytes, {1} bytes stored (brotli and gzip)\n"
                               "static /raw/: public/docs: 1 file, 3,000 bytes, 3,000 bytes stored (not compressed)\n"
                               "static /media/: /srv/media: read at run time\n",
                               dir, group_digits(stored)));
  for (auto [n, text] : {std::pair<uint64_t, const char*>{0, "0"}, {999, "999"}, {1000, "1,000"},
                         {1234567, "1,234,567"}, {100000, "100,000"}})
    EXPECT_EQ(group_digits(n), text);
}

TEST(Cli, BuildVerboseAndKeepAsm) {
  std::string dir = temp_dir();
  CmdResult r = asmsrv({"build", "specs/hello.json", "--syntax", "gas", "-o", dir + "/srv",
                        "--keep-asm", dir + "/srv.s", "-v"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "as --64 -o ")) << r.err;
  EXPECT_TRUE(contains(r.err, "ld -static -s -z noexecstack -z noseparate-code -z common-page-size=64 -o ")) << r.err;
  std::string other = temp_dir();
  ASSERT_EQ(asmsrv({"gen", "specs/hello.json", "--syntax", "gas", "-o", other + "/srv.s"}).status, 0);
  EXPECT_EQ(read(dir + "/srv.s"), read(other + "/srv.s"));
  EXPECT_TRUE(contains(read(dir + "/srv.s"), "#   as --64 -o srv.o srv.s\n"));
  EXPECT_EQ(::access((dir + "/srv").c_str(), X_OK), 0);
}

// A PATH that holds only the named tools.
std::string path_with(const std::vector<std::string>& tools) {
  std::string dir = temp_dir();
  for (const std::string& t : tools) fsys::create_symlink("/usr/bin/" + t, dir + "/" + t);
  return dir;
}

TEST(Cli, MissingToolsNameTheirPackage) {
  std::string dir = temp_dir();
  CmdResult r = asmsrv({"build", "specs/hello.json", "-o", dir + "/x"}, {{"PATH", path_with({"ld", "as"})}});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "asmsrv: nasm not found in PATH; install it with: apt-get install nasm\n");
  r = asmsrv({"build", "specs/hello.json", "--syntax", "gas", "-o", dir + "/x"}, {{"PATH", path_with({"ld"})}});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "asmsrv: as not found in PATH; install it with: apt-get install binutils\n");
  r = asmsrv({"build", "specs/hello.json", "-o", dir + "/x"}, {{"PATH", path_with({"nasm"})}});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "asmsrv: ld not found in PATH; install it with: apt-get install binutils\n");
  EXPECT_FALSE(exists(dir + "/x"));
}

TEST(Cli, ACopiedAsmsrvNeedsNoFilesBesideIt) {
  // The templates are compiled in: a copy in an empty directory, run from
  // another, makes the same listing as the build tree's asmsrv.
  std::string bin = temp_dir() + "/asmsrv";
  fsys::copy_file(asmsrv_bin(), bin);
  fsys::permissions(bin, fsys::perms::owner_all);
  std::string elsewhere = temp_dir();
  CmdResult r = run({bin, "gen", source_dir() + "/specs/hello.json"}, elsewhere);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, asmsrv({"gen", "specs/hello.json"}).out);
  // Also with the source tree's templates/ out of sight (an empty tmpfs over
  // it, in a mount namespace of its own): nothing is read from there.
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for the mount namespace";
  r = run({"unshare", "-m", "sh", "-c",
           "mount -t tmpfs none '" + source_dir() + "/templates' && exec '" + bin + "' gen '" +
               source_dir() + "/specs/hello.json'"},
          elsewhere);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, asmsrv({"gen", "specs/hello.json"}).out);
}

TEST(Cli, AsmsrvTemplatesReadsEditedTemplates) {
  std::string dir = temp_dir();
  for (const auto& f : fsys::directory_iterator(source_dir() + "/templates"))
    fsys::copy_file(f.path(), dir / f.path().filename());
  write(dir + "/header.txt", read(dir + "/header.txt") + "edited-template-marker\n");
  CmdResult r = asmsrv({"gen", "specs/hello.json"}, {{"ASMSRV_TEMPLATES", dir}});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "; edited-template-marker\n")) << r.out.substr(0, 400);
  r = asmsrv({"gen", "specs/hello.json"}, {{"ASMSRV_TEMPLATES", "/nonexistent"}});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "asmsrv: cannot read /nonexistent/error_body.txt: No such file or directory "
                   "(ASMSRV_TEMPLATES is set to /nonexistent; unset it to use the templates "
                   "built into asmsrv)\n");
}

// `cmd` run by sh in the source dir.
CmdResult shell(const std::string& cmd) { return run({"sh", "-c", cmd}); }

TEST(Cli, DashReadsTheSpecFromStandardInput) {
  std::string a = asmsrv_bin();
  CmdResult r = shell(a + " check - < specs/hello.json");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "<stdin>: ok (0.0.0.0:8080, epoll mode, 1 worker)\n");
  r = shell(a + " gen - < specs/hello.json");
  EXPECT_EQ(r.status, 0) << r.err;
  std::string from_file = asmsrv({"gen", "specs/hello.json"}).out;
  EXPECT_EQ(r.out.substr(r.out.find('\n', r.out.find('\n') + 1)),
            from_file.substr(from_file.find('\n', from_file.find('\n') + 1)))
      << "only the header's \"from\" line differs";
  EXPECT_TRUE(contains(r.out, "Generated by asmsrv " ASMSRV_VERSION " from <stdin>;")) << r.out.substr(0, 300);
  r = shell("printf '{\"listen\": {\"port\": 0}, \"response\": {}}' | " + a + " check -");
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "<stdin>: /listen/port: expected an integer from 1 to 65535, got 0\n");
  r = shell("printf '{' | " + a + " check -");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(r.err.starts_with("<stdin>:1:2: ")) << r.err;
  // Files named by a spec on stdin are relative to the current directory.
  r = shell("sed 's#\"site/#\"specs/site/#' specs/site.json | " + a + " check -");
  EXPECT_EQ(r.status, 0) << r.err;
}

TEST(Cli, OutputIntoADirectoryTakesTheSpecsName) {
  std::string dir = temp_dir();
  ASSERT_EQ(asmsrv({"gen", "specs/hello.json", "-o", dir + "/"}).status, 0);
  EXPECT_TRUE(exists(dir + "/hello.s"));
  CmdResult r = asmsrv({"build", "specs/hello.json", "-o", dir, "--keep-asm", dir});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(::access((dir + "/hello").c_str(), X_OK), 0);
  EXPECT_TRUE(contains(read(dir + "/hello.s"), ";   nasm -f elf64 -o hello.o hello.s\n"));
  r = shell(asmsrv_bin() + " build - -o " + dir + "/ < specs/minhttp.json");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(::access((dir + "/server").c_str(), X_OK), 0);
  r = asmsrv({"build", "specs/hello.json", "-o", dir + "/missing/"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "asmsrv: cannot write " + dir + "/missing/: no such directory (give a file name, "
                   "or a directory that exists)\n");
}

TEST(Cli, OddOutputsAreRefusedBeforeAnyWork) {
  std::string dir = temp_dir();
  write(dir + "/file", "x");
  fsys::create_directory(dir + "/hello");
  struct Case {
    std::vector<std::string> args;
    std::string err;
  };
  for (const Case& c : std::vector<Case>{
           {{"build", "specs/hello.json", "-o", ""}, "asmsrv: -o \"\": give a file name or a directory\n"},
           {{"build", "specs/hello.json", "-o", "-"},
            "asmsrv: build writes files: -o - and --keep-asm - are not allowed (asmsrv gen prints the "
            "assembly)\n"},
           {{"gen", "specs/hello.json", "-o", dir + "/file/"}, "asmsrv: cannot write " + dir + "/file/: not a directory\n"},
           {{"build", "specs/hello.json", "-o", dir + "/", "--keep-asm", dir + "/x.s"},
            "asmsrv: cannot write " + dir + "/hello: it is a directory (give a file name)\n"},
       }) {
    CmdResult r = asmsrv(c.args);
    EXPECT_EQ(r.status, 1) << c.args[3];
    EXPECT_EQ(r.err, c.err);
  }
  EXPECT_FALSE(exists(dir + "/x.s")) << "nothing is written when an output is wrong";
}

TEST(Cli, AMistypedSubcommandIsNamed) {
  CmdResult r = asmsrv({"serve", "specs/hello.json"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "asmsrv: unknown subcommand \"serve\"; the subcommands are gen, build, run, "
                   "check, explain, image and schema\n");
  r = asmsrv({"chek", "specs/hello.json"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "asmsrv: unknown subcommand \"chek\"; did you mean \"check\"?\n");
  r = asmsrv({"r", "specs/hello.json"});
  EXPECT_EQ(r.err, "asmsrv: unknown subcommand \"r\"; the subcommands are gen, build, run, "
                   "check, explain, image and schema\n") << "one letter is no typo of run";
  r = asmsrv({"--syntax", "gas"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "asmsrv: unknown option --syntax; a subcommand comes first: gen, build, run, "
                   "check, explain, image or schema\n");
  r = asmsrv({});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "asmsrv: a subcommand is required: gen, build, run, check, explain, image "
                   "or schema (asmsrv --help says more)\n");
}

// The two commands the header prints, for a listing saved at `listing`.
std::vector<std::string> header_commands(const std::string& listing) {
  std::vector<std::string> out;
  std::string text = read(listing);
  size_t at = text.find("Build:\n");
  for (int i = 0; i < 2 && at != std::string::npos; ++i) {
    size_t start = text.find_first_not_of(";# ", text.find('\n', at) + 1);
    size_t end = text.find('\n', start);
    out.push_back(text.substr(start, end - start));
    at = end;
  }
  return out;
}

TEST(Cli, TheHeadersBuildCommandsWorkAsPrinted) {
  // A spec with files, its listing saved far from the spec, in a directory
  // reached through a symlink, in a directory whose name needs quoting, and
  // beside the spec (where site/ is a directory: the program cannot be
  // named site). In each, the printed commands, run in the listing's
  // directory, build a server that serves the files.
  std::string base = temp_dir();
  fsys::create_directories(base + "/a/b");
  fsys::create_directories(base + "/real/deep");
  fsys::create_directory_symlink(base + "/real/deep", base + "/link");
  fsys::create_directories(base + "/with space");
  struct Case {
    std::string dash_o;   // what -o says
    std::string listing;  // the file it writes
  };
  for (const char* syntax : {"nasm", "gas"}) {
    std::string s = syntax;
    std::vector<Case> cases = {
        {base + "/a/b/site-" + s + ".s", base + "/a/b/site-" + s + ".s"},
        {base + "/link/", base + "/link/site.s"},
        {base + "/with space/", base + "/with space/site.s"},
    };
    // Beside the spec: a copy of specs/, so the source tree stays clean.
    std::string specs = base + "/specs-" + s;
    fsys::copy(source_dir() + "/specs", specs, fsys::copy_options::recursive);
    cases.push_back({specs + "/", specs + "/site.s"});
    for (const Case& c : cases) {
      SCOPED_TRACE(syntax + (" -o " + c.dash_o));
      int port = free_port();
      ASSERT_EQ(asmsrv({"gen", specs + "/site.json", "--syntax", syntax, "--port", std::to_string(port),
                        "-o", c.dash_o}).status, 0);
      std::vector<std::string> cmds = header_commands(c.listing);
      ASSERT_EQ(cmds.size(), 2u);
      std::string dir = fsys::path(c.listing).parent_path().string();
      for (const std::string& cmd : cmds) {
        CmdResult r = run({"sh", "-c", cmd}, dir);
        ASSERT_EQ(r.status, 0) << cmd << "\n" << r.err;
      }
      std::string exe = cmds[1].substr(cmds[1].find(" -o ") + 4);
      exe = dir + "/" + exe.substr(0, exe.find(' '));
      ServerProcess server(exe, temp_dir());
      ASSERT_TRUE(server.wait_ready()) << server.err();
      ReadResult got = exchange(port, "GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      EXPECT_TRUE(got.data.ends_with(read(source_dir() + "/specs/site/style.css"))) << got.data.substr(0, 300);
    }
    EXPECT_TRUE(contains(read(specs + "/site.s"), " -o site.out site.o\n")) << "site/ is a directory";
    EXPECT_TRUE(contains(read(base + "/with space/site.s"), " -o site.o site.s\n"));
  }
  // A name with a space is quoted.
  ASSERT_EQ(asmsrv({"gen", "specs/hello.json", "-o", base + "/with space/my server.s"}).status, 0);
  EXPECT_TRUE(contains(read(base + "/with space/my server.s"),
                       ";   nasm -f elf64 -o 'my server.o' 'my server.s'\n"));
}

TEST(Cli, NoStringFromASpecBreaksTheListing) {
  // back\slash.txt beside backslash.txt: GAS reads escapes in "...", so an
  // unescaped name would embed the other file (with the first one's length).
  std::string dir = temp_dir();
  write(dir + "/back\\slash.txt", "the file with a backslash\n");
  write(dir + "/backslash.txt", "the wrong file, a bit longer than the right one\n");
  // A log path with CR and ^Z, and a header value ending in a backslash:
  // both reach comments, where NASM would end the line or the file, or join
  // the next line to the comment.
  std::string spec = write_spec(R"({"name": "esc", "mode": "iterative",
      "routes": [{"path": "/f", "file": "back\\slash.txt", "headers": {"X-A": "a\\"}}],
      "log": {"requests": true, "target": "log\r\u001a.txt"}})", dir);
  for (const char* syntax : {"nasm", "gas"}) {
    SCOPED_TRACE(syntax);
    int port = free_port();
    std::string listing = dir + "/esc-" + syntax + ".s";
    CmdResult r = asmsrv({"build", spec, "--syntax", syntax, "--port", std::to_string(port), "-o",
                          dir + "/esc-" + syntax, "--keep-asm", listing});
    ASSERT_EQ(r.status, 0) << r.err;
    std::string text = read(listing);
    EXPECT_FALSE(std::any_of(text.begin(), text.end(), [](unsigned char c) { return c < 0x20 && c != '\n'; }))
        << "a control character in the listing";
    EXPECT_TRUE(contains(text, "log\\r\\u001a.txt")) << "shown escaped in the comments";
    std::string run_dir = temp_dir();
    ServerProcess server(dir + "/esc-" + syntax, run_dir);
    ASSERT_TRUE(server.wait_ready()) << server.err();
    ReadResult got = exchange(port, "GET /f HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(got.data.ends_with("\r\n\r\nthe file with a backslash\n")) << got.data;
    EXPECT_TRUE(contains(got.data, "\r\nX-A: a\\\r\n")) << got.data;
    EXPECT_TRUE(exists(run_dir + "/log\r\x1a.txt")) << "the log file has the name the spec gave";
  }
  // A control character in a file name is refused with its pointer.
  std::string bad = write_spec(R"({"response": {"file": "a\u0000b"}})", dir);
  CmdResult r = asmsrv({"check", bad});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, bad + ": /response/file: the path must not contain a double quote or a control character\n");
}

TEST(Cli, BindOnAPrivilegedPortSaysWhatItNeeds) {
  // An unprivileged user in a network namespace of its own, where ports
  // below 1024 are privileged whatever the host's setting.
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make the namespace and drop to nobody";
  std::string dir = temp_dir();
  ASSERT_EQ(asmsrv({"build", "specs/hello.json", "--port", "80", "-o", dir + "/server"}).status, 0);
  fsys::permissions(dir, fsys::perms::all);
  CmdResult r = run({"unshare", "-n", "sh", "-c",
                     "sysctl -qw net.ipv4.ip_unprivileged_port_start=1024 && "
                     "exec setpriv --reuid=65534 --regid=65534 --clear-groups " + dir + "/server"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "hello: bind 0.0.0.0:80: Permission denied (ports below 1024 need root or "
                   "CAP_NET_BIND_SERVICE)\n");
  // The same from a port that $PORT gives at run time.
  ASSERT_EQ(asmsrv({"build", "specs/hello.json", "-o", dir + "/server8080"}).status, 0);
  r = run({"unshare", "-n", "sh", "-c",
           "sysctl -qw net.ipv4.ip_unprivileged_port_start=1024 && "
           "PORT=80 exec setpriv --reuid=65534 --regid=65534 --clear-groups " + dir + "/server8080"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "hello: bind 0.0.0.0:80: Permission denied (ports below 1024 need root or "
                   "CAP_NET_BIND_SERVICE)\n");
  // Above 1024, with the port fixed (port_env off), there is no such hint
  // in the binary.
  EXPECT_FALSE(contains(asmsrv({"gen", spec_copy("hello", {{"listen", {{"port_env", ""}}}})}).out,
                        "CAP_NET_BIND_SERVICE"));
}

TEST(Cli, TeachLeavesOutWhatAFirstReadingDoesNotNeed) {
  // minhttp logs every connection; a copy with 4 workers has a supervisor.
  std::string spec = spec_copy("minhttp", {{"workers", 4}});
  std::string full = asmsrv({"gen", spec}).out;
  CmdResult r = asmsrv({"gen", "--teach", spec});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string& teach = r.out;
  EXPECT_TRUE(contains(teach, "; Made with --teach: one process, no logs, no TCP_DEFER_ACCEPT")) << teach.substr(0, 1500);
  for (const char* gone : {"log_connection:", "supervisor", "TCP_DEFER_ACCEPT, &", "; EPROTONOSUPPORT"}) {
    EXPECT_TRUE(contains(full, gone)) << gone;
    EXPECT_FALSE(contains(teach, gone)) << gone;
  }
  EXPECT_TRUE(contains(teach, "; EADDRINUSE")) << "bind's errors keep their text";
  // explain --teach lists the same blocks.
  CmdResult e = asmsrv({"explain", "--teach", spec});
  ASSERT_EQ(e.status, 0) << e.err;
  EXPECT_FALSE(contains(e.out, "log_connection")) << "no log in the teaching variant";
  EXPECT_TRUE(contains(asmsrv({"explain", spec}).out, "log_connection"));
  auto lines = [](const std::string& s) { return std::count(s.begin(), s.end(), '\n'); };
  EXPECT_LT(lines(teach) + 300, lines(full)) << "the supervisor, the logs and their data: over 300 lines";
  // The server it makes still serves.
  std::string dir = temp_dir();
  int port = free_port();
  ASSERT_EQ(asmsrv({"build", "--teach", spec, "--port", std::to_string(port), "-o", dir + "/server"}).status, 0);
  ServerProcess server(dir + "/server", dir);
  ASSERT_TRUE(server.wait_ready()) << server.err();
  ReadResult got = exchange(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(got.data.starts_with("HTTP/1.1 200 OK\r\n")) << got.data;
  EXPECT_TRUE(got.data.ends_with("Hello from assembly!\n")) << got.data;
  EXPECT_EQ(server.out(), "minhttp listening on 0.0.0.0:" + std::to_string(port) + "\n") << "no log lines";
}

TEST(Cli, RunForwardsSignalsAndCleansUp) {
  std::string tmp = temp_dir();
  int port = free_port();
  std::string out = tmp + "/out";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setenv("TMPDIR", tmp.c_str(), 1);
    FILE* f = std::freopen(out.c_str(), "w", stdout);
    (void)f;
    if (::chdir(source_dir().c_str()) != 0) ::_exit(126);
    ::execl(asmsrv_bin().c_str(), "asmsrv", "run", "specs/hello.json", "--port",
            std::to_string(port).c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    up = exists(out) && contains(read(out), "listening on");
  }
  EXPECT_TRUE(up) << "the server did not start";
  int dirs = 0;
  for ([[maybe_unused]] const auto& e : fsys::directory_iterator(tmp)) ++dirs;
  EXPECT_EQ(dirs, 2) << "the output file and asmsrv's temp dir";
  ::kill(pid, SIGTERM);
  int status = 0;
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(pid, &status, WNOHANG) == pid) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (i == 99) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      FAIL() << "asmsrv run did not stop on SIGTERM";
    }
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the server's exit status";
  dirs = 0;
  for ([[maybe_unused]] const auto& e : fsys::directory_iterator(tmp)) ++dirs;
  EXPECT_EQ(dirs, 1) << "the temp dir must be removed";
}

}  // namespace
}  // namespace asmsrv::test
