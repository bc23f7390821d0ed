// The Debian package: scripts/package builds it into a fresh temp build dir,
// dpkg -x unpacks it into a scratch root, and the installed asmsrv must
// work from there (check, gen, and a built server that answers curl).
// Nothing is installed outside temp dirs.
//
// And the docs cannot drift from the CLI: every option that
// `asmsrv SUB --help` lists is in doc/asmsrv.1.scd (in SUB's own section)
// and offered by dist/asmsrv.bash, and neither offers an option the CLI
// does not have.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "server_util.h"
#include "test_util.h"

namespace {

using namespace ::asmsrv::test;
namespace fsys = std::filesystem;

const std::string kVersion = ASMSRV_VERSION;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

/// The last `n` bytes: a build log's end tells what failed.
std::string tail(const std::string& s, size_t n = 6000) {
  return s.size() <= n ? s : "[... " + std::to_string(s.size() - n) + " bytes]\n" + s.substr(s.size() - n);
}

std::string describe(const CmdResult& r) {
  return "status " + std::to_string(r.status) + "\nstdout:\n" + tail(r.out) + "\nstderr:\n" +
         tail(r.err);
}

/// The control fields of a .deb (dpkg-deb -f), continuation lines left out.
std::map<std::string, std::string> control_fields(const std::string& deb) {
  CmdResult r = run({"dpkg-deb", "-f", deb});
  EXPECT_EQ(r.status, 0) << describe(r);
  std::map<std::string, std::string> fields;
  for (const std::string& line : lines_of(r.out)) {
    size_t colon = line.find(": ");
    if (line.empty() || line[0] == ' ' || colon == std::string::npos) continue;
    fields[line.substr(0, colon)] = line.substr(colon + 2);
  }
  return fields;
}

/// The regular files under `root`, as sorted paths relative to it.
std::vector<std::string> files_under(const std::string& root) {
  std::vector<std::string> files;
  for (const auto& e : fsys::recursive_directory_iterator(root))
    if (e.is_regular_file()) files.push_back(fsys::relative(e.path(), root).string());
  std::sort(files.begin(), files.end());
  return files;
}

/// What the package must hold, and nothing more.
std::vector<std::string> expected_files() {
  const std::string examples = "usr/share/doc/asmsrv/examples/";
  std::vector<std::string> files = {
      "usr/bin/asmsrv",
      "usr/share/asmsrv/asmsrv.schema.json",
      "usr/share/bash-completion/completions/asmsrv",
      "usr/share/doc/asmsrv/README.md",
      "usr/share/doc/asmsrv/copyright",
      "usr/share/man/man1/asmsrv.1.gz",
  };
  for (const std::string& name : spec_names()) files.push_back(examples + name + ".json");
  for (const auto& e : fsys::directory_iterator(source_dir() + "/specs/site"))
    files.push_back(examples + "site/" + e.path().filename().string());
  const fsys::path static_site = source_dir() + "/specs/static-site";
  for (const auto& e : fsys::recursive_directory_iterator(static_site))
    if (e.is_regular_file())
      files.push_back(examples + "static-site/" + fsys::relative(e.path(), static_site).string());
  std::sort(files.begin(), files.end());
  return files;
}

/// A server built by the installed asmsrv from `spec` (run in `cwd`),
/// started on a free port; retries when the port was taken meanwhile.
struct Started {
  int port = 0;
  std::unique_ptr<ServerProcess> proc;
};

std::optional<Started> build_and_start(const std::string& bin, const std::string& spec,
                                       const std::string& cwd) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    Started s;
    s.port = free_port();
    std::string dir = temp_dir();
    CmdResult b = run({bin, "build", spec, "--port", std::to_string(s.port), "-o", dir + "/server"},
                      cwd);
    if (b.status != 0 || !exists(dir + "/server")) {
      ADD_FAILURE() << "the installed asmsrv could not build " << spec << ": " << describe(b);
      return std::nullopt;
    }
    s.proc = std::make_unique<ServerProcess>(dir + "/server", dir);
    if (s.proc->wait_ready()) return s;
    std::string err = s.proc->err();
    if (s.proc->exited() && contains(err, "Address already in use")) continue;
    ADD_FAILURE() << spec << " did not start on port " << s.port << "\nstdout: " << s.proc->out()
                  << "\nstderr: " << err;
    return std::nullopt;
  }
  ADD_FAILURE() << "no free port for " << spec;
  return std::nullopt;
}

TEST(Package, DebBuildsInstallsAndWorks) {
  // scripts/package [BUILD_DIR [OUT_DIR]], both fresh.
  const std::string build = temp_dir() + "/build";
  const std::string out = temp_dir();
  CmdResult pkg = run({source_dir() + "/scripts/package", build, out});
  ASSERT_EQ(pkg.status, 0) << "scripts/package failed: " << describe(pkg);
  const std::string deb = out + "/asmsrv_" + kVersion + "_amd64.deb";
  std::vector<std::string> printed = lines_of(pkg.out);
  ASSERT_FALSE(printed.empty());
  EXPECT_EQ(printed.back(), deb) << "the last line scripts/package prints is the .deb's path";
  ASSERT_TRUE(exists(deb)) << describe(pkg);
  EXPECT_EQ(files_under(out), std::vector<std::string>{fsys::path(deb).filename().string()})
      << "OUT_DIR holds the .deb and nothing else";

  // The control fields.
  std::map<std::string, std::string> f = control_fields(deb);
  EXPECT_EQ(f["Package"], "asmsrv");
  EXPECT_EQ(f["Version"], kVersion);
  EXPECT_EQ(f["Architecture"], "amd64");
  EXPECT_EQ(f["Section"], "devel");
  EXPECT_FALSE(f["Maintainer"].empty());
  EXPECT_FALSE(f["Description"].empty());
  // asmsrv is linked statically (ASMSRV_STATIC): the toolchain is all it needs.
  EXPECT_EQ(f["Depends"], "nasm, binutils");

  // Unpacked into a scratch root: exactly the expected files.
  const std::string root = temp_dir();
  CmdResult x = run({"dpkg", "-x", deb, root});
  ASSERT_EQ(x.status, 0) << describe(x);
  EXPECT_EQ(files_under(root), expected_files());
  const std::string examples = root + "/usr/share/doc/asmsrv/examples";
  for (const std::string& name : spec_names())
    EXPECT_EQ(read(examples + "/" + name + ".json"), read(source_dir() + "/specs/" + name + ".json"))
        << name;
  EXPECT_TRUE(contains(read(root + "/usr/share/doc/asmsrv/copyright"), "Upstream-Name: asmsrv"));

  // The binary: stripped, executable, small.
  const std::string bin = root + "/usr/bin/asmsrv";
  ASSERT_TRUE(exists(bin));
  struct stat st {};
  ASSERT_EQ(::stat(bin.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  // 6.7 MB on 2026-11-23, 3.5 of them libcrypto, libarchive and zlib (asmsrv image).
  EXPECT_LT(st.st_size, 8 * 1024 * 1024) << "an unstripped asmsrv is tens of MB";
  CmdResult sections = run({"readelf", "-S", "-W", bin});
  ASSERT_EQ(sections.status, 0) << describe(sections);
  EXPECT_FALSE(contains(sections.out, ".symtab")) << "the packaged asmsrv is not stripped";
  EXPECT_FALSE(contains(sections.out, ".debug_")) << "the packaged asmsrv has debug info";
  CmdResult dynamic = run({"readelf", "-d", bin});
  EXPECT_TRUE(contains(dynamic.out, "There is no dynamic section")) << "not static:\n" << dynamic.out;

  // It works, run from a directory that is neither the source nor the build.
  const std::string work = temp_dir();
  CmdResult v = run({bin, "--version"}, work);
  EXPECT_EQ(v.status, 0);
  EXPECT_EQ(v.out, "asmsrv " + kVersion + "\n");
  for (const std::string& name : spec_names()) {
    std::string spec = examples + "/" + name + ".json";
    CmdResult c = run({bin, "check", spec}, work);
    EXPECT_EQ(c.status, 0) << name << ": " << describe(c);
    EXPECT_TRUE(starts_with(c.out, spec + ": ok (")) << c.out;
  }
  // The installed schema is the one the installed asmsrv prints.
  CmdResult schema = run({bin, "schema"}, work);
  EXPECT_EQ(schema.status, 0) << describe(schema);
  EXPECT_EQ(read(root + "/usr/share/asmsrv/asmsrv.schema.json"), schema.out);
  CmdResult g = run({bin, "gen", examples + "/hello.json"}, work);
  ASSERT_EQ(g.status, 0) << describe(g);
  EXPECT_EQ(g.out, read(source_dir() + "/golden/hello.nasm.s"))
      << "the installed asmsrv writes other assembly than golden/hello.nasm.s";

  // site.json embeds files from site/ beside it (the assembler's include path).
  std::string curl = find_in_path("curl");
  ASSERT_FALSE(curl.empty()) << "curl is not installed: install it (scripts/deps) to run this test";
  std::optional<Started> s = build_and_start(bin, examples + "/site.json", work);
  ASSERT_TRUE(s);
  const std::string url = "http://127.0.0.1:" + std::to_string(s->port);
  CmdResult page = run({curl, "-s", "-i", "--max-time", "5", url + "/"});
  EXPECT_EQ(page.status, 0) << describe(page);
  EXPECT_TRUE(starts_with(page.out, "HTTP/1.1 200 OK\r\n")) << page.out;
  size_t body = page.out.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos) << page.out;
  EXPECT_EQ(page.out.substr(body + 4), read(examples + "/site/index.html"));
  CmdResult logo = run({curl, "-s", "--max-time", "5", url + "/logo.png"});
  EXPECT_EQ(logo.status, 0) << describe(logo);
  EXPECT_EQ(logo.out, read(examples + "/site/logo.png"));
  EXPECT_TRUE(s->proc->signal(SIGTERM));
  EXPECT_EQ(s->proc->wait_exit(5000), std::optional<int>(0)) << s->proc->err();

  // The man page: gzip -n (no name, no time stamp), and it reads.
  const std::string man = root + "/usr/share/man/man1/asmsrv.1.gz";
  std::string gz = read(man);
  ASSERT_GE(gz.size(), 10u);
  EXPECT_EQ(gz[3] & 0x08, 0) << "the .gz holds a file name: gzip without -n";
  EXPECT_EQ(gz.substr(4, 4), std::string(4, '\0')) << "the .gz holds a time stamp: gzip without -n";
  CmdResult roff = run({"gzip", "-dc", man});
  EXPECT_EQ(roff.status, 0) << describe(roff);
  EXPECT_TRUE(contains(roff.out, ".SH NAME\n")) << tail(roff.out, 600);
  EXPECT_TRUE(contains(roff.out, "asmsrv - compile a JSON server spec")) << tail(roff.out, 600);
  if (!find_in_path("man").empty()) {
    CmdResult m = run({"man", "-l", man}, work,
                      {{"MANPAGER", "cat"}, {"PAGER", "cat"}, {"MANWIDTH", "80"}});
    EXPECT_EQ(m.status, 0) << describe(m);
    EXPECT_TRUE(contains(m.out, "NAME\n       asmsrv - compile")) << tail(m.out, 600);
    EXPECT_TRUE(contains(m.out, "EXIT STATUS")) << tail(m.out, 600);
  }

  // The completion: the file from dist/, valid bash, registered for asmsrv.
  const std::string comp = root + "/usr/share/bash-completion/completions/asmsrv";
  EXPECT_EQ(read(comp), read(source_dir() + "/dist/asmsrv.bash"));
  CmdResult syntax = run({"bash", "-n", comp});
  EXPECT_EQ(syntax.status, 0) << describe(syntax);
  CmdResult reg = run({"bash", "-c", "source \"$1\" && complete -p asmsrv", "bash", comp});
  EXPECT_EQ(reg.status, 0) << describe(reg);
  EXPECT_TRUE(contains(reg.out, "-F _asmsrv asmsrv")) << reg.out;
}

// ===========================================================================
// The docs against the CLI

struct HelpOption {
  std::vector<std::string> names;    // "-o", "--output"
  std::vector<std::string> choices;  // "nasm", "gas" for TEXT:{nasm,gas}
};

/// The lines of one section of `asmsrv ARGS --help` as CLI11 writes it
/// ("Options:", "Subcommands:"): from its heading to the next line that is
/// not indented.
std::vector<std::string> help_section(std::vector<std::string> args, const std::string& heading) {
  args.push_back("--help");
  CmdResult r = ::asmsrv::test::asmsrv(args);
  EXPECT_EQ(r.status, 0) << describe(r);
  std::vector<std::string> all = lines_of(r.out);
  auto it = std::find(all.begin(), all.end(), heading);
  std::vector<std::string> section;
  if (it != all.end())
    for (++it; it != all.end() && starts_with(*it, " "); ++it) section.push_back(*it);
  EXPECT_FALSE(section.empty()) << "no \"" << heading << "\" in asmsrv --help:\n" << r.out;
  return section;
}

/// The options `asmsrv ARGS --help` lists.
std::vector<HelpOption> help_options(const std::vector<std::string>& args) {
  std::vector<HelpOption> options;
  for (const std::string& line : help_section(args, "Options:")) {
    if (!starts_with(line, "  -")) continue;  // a description's continuation
    HelpOption o;
    std::stringstream names(line.substr(2, line.find(' ', 2) - 2));  // "-o,--output"
    for (std::string name; std::getline(names, name, ',');) o.names.push_back(name);
    size_t open = line.find(":{");
    if (open != std::string::npos) {
      size_t close = line.find('}', open);
      std::stringstream choices(line.substr(open + 2, close - open - 2));
      for (std::string c; std::getline(choices, c, ',');) o.choices.push_back(c);
    }
    options.push_back(o);
  }
  return options;
}

/// The subcommands `asmsrv --help` lists.
std::vector<std::string> help_subcommands() {
  std::vector<std::string> subs;
  for (const std::string& line : help_section({}, "Subcommands:")) {
    std::istringstream words(line);
    std::string name;
    if (words >> name) subs.push_back(name);
  }
  return subs;
}

std::set<std::string> all_names(const std::vector<HelpOption>& options) {
  std::set<std::string> names;
  for (const HelpOption& o : options) names.insert(o.names.begin(), o.names.end());
  return names;
}

/// The man page source cut into sections: "## gen" -> its text, up to the
/// next heading ("# NAME" for the top-level ones).
std::map<std::string, std::string> scd_sections(const std::string& scd) {
  std::map<std::string, std::string> sections;
  std::string current;
  for (const std::string& line : lines_of(scd)) {
    if (starts_with(line, "#")) {
      current = line;
      continue;
    }
    sections[current] += line + "\n";
  }
  return sections;
}

/// The options a man page section documents: "*-o*, *--output* _FILE_" at
/// the start of a line (a definition) names -o and --output.
std::set<std::string> scd_options(const std::string& section) {
  std::set<std::string> names;
  static const std::regex option(R"(\*(-[-A-Za-z0-9]+)\*)");
  for (const std::string& line : lines_of(section)) {
    if (!starts_with(line, "*-")) continue;
    for (std::sregex_iterator m(line.begin(), line.end(), option), end; m != end; ++m)
      names.insert((*m)[1]);
  }
  return names;
}

/// What dist/asmsrv.bash offers for the command line `words` (the last one
/// is being completed), with `cwd` as the current directory. Sorted.
std::vector<std::string> complete(const std::vector<std::string>& words, const std::string& cwd) {
  std::vector<std::string> argv = {
      "bash", "-c",
      "source \"$0\" && COMP_WORDS=(\"$@\") && COMP_CWORD=$(($# - 1)) && _asmsrv && "
      "for w in \"${COMPREPLY[@]}\"; do printf '%s\\n' \"$w\"; done",
      source_dir() + "/dist/asmsrv.bash"};
  argv.insert(argv.end(), words.begin(), words.end());
  CmdResult r = run(argv, cwd);
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.err, "");
  std::vector<std::string> offered = lines_of(r.out);
  std::sort(offered.begin(), offered.end());
  return offered;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& w : v) s += (s.empty() ? "" : " ") + w;
  return s;
}

TEST(QuickStart, HelloBuildsAsmsrvAndServes) {
  // The README's first command, as a user runs it (in build-release/, the
  // build scripts/package shares): it gets to a server that answers, and
  // a SIGTERM to it stops the server with status 0.
  std::string curl = find_in_path("curl");
  ASSERT_FALSE(curl.empty()) << "curl is not installed: install it (scripts/deps) to run this test";
  int port = free_port();
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  CmdResult r = run({"timeout", "300", "sh", "-c",
                     "scripts/hello --port " + std::to_string(port) + " & pid=$!\n"
                     "for i in $(seq 1 500); do\n"
                     "  if " + curl + " -sf --max-time 2 " + url + "; then break; fi\n"
                     "  kill -0 $pid 2>/dev/null || break\n"
                     "  sleep 0.5\n"
                     "done\n"
                     "kill -TERM $pid; wait $pid; echo \"exit $?\""});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "hello listening on 0.0.0.0:" + std::to_string(port) + "\n")) << describe(r);
  EXPECT_TRUE(contains(r.out, "Hello from asmsrv!\n")) << describe(r);
  EXPECT_TRUE(r.out.ends_with("exit 0\n")) << describe(r);
}

TEST(PackageDocs, EveryOptionIsInTheManPageAndTheCompletion) {
  const std::string scd = read(source_dir() + "/doc/asmsrv.1.scd");
  std::map<std::string, std::string> sections = scd_sections(scd);
  const std::string synopsis = sections["# SYNOPSIS"];
  // A directory to complete file names in.
  const std::string cwd = temp_dir();
  write(cwd + "/a.json", "{}");
  write(cwd + "/b.txt", "");
  fsys::create_directory(cwd + "/sub");

  // asmsrv itself: its options and its subcommands.
  std::vector<std::string> subs = help_subcommands();
  ASSERT_FALSE(subs.empty()) << "no subcommands found in asmsrv --help";
  std::vector<std::string> sorted_subs = subs;
  std::sort(sorted_subs.begin(), sorted_subs.end());
  EXPECT_EQ(complete({"asmsrv", ""}, cwd), sorted_subs);
  std::set<std::string> top = all_names(help_options({}));
  std::vector<std::string> top_offered = complete({"asmsrv", "-"}, cwd);
  for (const std::string& name : top) {
    EXPECT_TRUE(contains(scd, "*" + name + "*")) << "asmsrv --help lists " << name
                                                 << "; doc/asmsrv.1.scd does not";
    EXPECT_TRUE(std::count(top_offered.begin(), top_offered.end(), name))
        << "asmsrv --help lists " << name << "; dist/asmsrv.bash does not offer it";
  }

  for (const std::string& sub : subs) {
    SCOPED_TRACE("asmsrv " + sub);
    std::vector<HelpOption> options = help_options({sub});
    std::set<std::string> names = all_names(options);
    EXPECT_TRUE(contains(synopsis, "*asmsrv* *" + sub + "*"))
        << "doc/asmsrv.1.scd's SYNOPSIS has no line for " << sub;
    ASSERT_TRUE(sections.count("## " + sub)) << "doc/asmsrv.1.scd has no section \"## " << sub
                                             << "\" under SUBCOMMANDS";

    // The man page: every option in the subcommand's own section (-h and
    // --help, which every subcommand has, once for all).
    std::set<std::string> documented = scd_options(sections["## " + sub]);
    for (const std::string& name : names) {
      if (name == "-h" || name == "--help") {
        EXPECT_TRUE(contains(scd, "*" + name + "*")) << "doc/asmsrv.1.scd never names " << name;
        continue;
      }
      EXPECT_TRUE(documented.count(name))
          << "asmsrv " << sub << " --help lists " << name << "; doc/asmsrv.1.scd's \"## "
          << sub << "\" does not document it";
    }
    for (const std::string& name : documented)
      EXPECT_TRUE(names.count(name)) << "doc/asmsrv.1.scd's \"## " << sub << "\" documents "
                                     << name << ", which asmsrv " << sub << " does not have";

    // The completion: every option, and no other ("-" is SPEC from stdin).
    std::vector<std::string> offered = complete({"asmsrv", sub, "-"}, cwd);
    for (const std::string& name : names)
      EXPECT_TRUE(std::count(offered.begin(), offered.end(), name))
          << "asmsrv " << sub << " --help lists " << name
          << "; dist/asmsrv.bash does not offer it (offers: " << join(offered) << ")";
    for (const std::string& word : offered)
      EXPECT_TRUE(word == "-" || names.count(word))
          << "dist/asmsrv.bash offers " << word << ", which asmsrv " << sub << " does not have";
    // An option's value from a fixed set: exactly that set.
    for (const HelpOption& o : options) {
      if (o.choices.empty()) continue;
      std::vector<std::string> choices = o.choices;
      std::sort(choices.begin(), choices.end());
      for (const std::string& name : o.names)
        EXPECT_EQ(complete({"asmsrv", sub, name, ""}, cwd), choices) << name;
    }
    // SPEC: *.json files and directories; nothing for a subcommand without
    // one (schema).
    bool takes_spec = contains(::asmsrv::test::asmsrv({sub, "--help"}).out, "SPEC");
    const std::vector<std::string> specs =
        takes_spec ? std::vector<std::string>{"a.json", "sub"} : std::vector<std::string>{};
    EXPECT_EQ(complete({"asmsrv", sub, ""}, cwd), specs);
    // -o: any file or directory.
    if (names.count("-o")) {
      EXPECT_EQ(complete({"asmsrv", sub, "a.json", "-o", ""}, cwd),
                (std::vector<std::string>{"a.json", "b.txt", "sub"}));
    }
  }
}

}  // namespace
