// A spec fuzzer: the specs of specs/, mutated (their JSON values and keys,
// and their bytes), through check (parse_spec) and gen (lower, print in
// both syntaxes); a sample of the specs check accepts is built with the real
// assembler and linker. What must hold for every mutant:
//   - no crash and no exception but SpecError;
//   - every error line is one line of the form FILE: /pointer: message or
//     FILE:LINE:COL: message, with no control character;
//   - check ok => gen ok, with a listing that holds no control character but
//     LF, and (for the sample) build ok in both syntaxes.
// Bounded in CI; ASMSRV_FUZZ_SECONDS=N runs for N seconds instead of
// ASMSRV_FUZZ_SPECS mutants (default 5000); ASMSRV_FUZZ_SEED picks the seed.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>

#include "dialect.h"
#include "lower.h"
#include "printer.h"
#include "spec.h"
#include "test_util.h"
#include "toolchain.h"

namespace asmsrv::test {
namespace {

using json = nlohmann::ordered_json;
namespace fsys = std::filesystem;

// Values that have broken parsers, printers and assemblers before.
std::vector<json> interesting_values() {
  return {"",          "\r\n",        std::string("a\0b", 3), "\x1a",      "back\\slash.txt",
          "quo\"te",   "site/../site/index.html", "/",        "a b",       "/x\ny",
          "\xff\xfe",  "~1/~0",       "%00",         std::string(300, 'x'),  "stdout",
          "stderr",    "epoll",       "fork",        "iterative", "GET",       "OPTIONS",
          "site/index.html",          "X-A",         "text/html", "files",   "/files/",
          "0644",      "0777",        "PUT",         "POST",      0,         -1,
          1,           99,            100,           204,       599,         600,
          65535,       65536,         1u << 31,      INT64_MAX, -INT64_MAX,  1.5,
          true,        false,         nullptr,       json::array(), json::object(),
          json::array({1, "a"}),      json::object({{"a", 1}})};
}

std::vector<std::string> interesting_keys() {
  return {"name",   "listen",  "port",     "address",   "mode",   "workers",   "response",
          "routes", "path",    "method",   "status",    "reason", "body",      "file",
          "headers", "limits", "log", "cors", "allow_origin", "target",    "requests", "connections",
          "raw_response",      "not_found", "request_bytes", "backlog", "defer_accept_s",
          "static", "root",    "dir",      "index",     "hidden", "uploads",   "methods",
          "overwrite", "max_bytes", "fsync", "a\nb",   "X\r\nY",  "",         "~",         "/"};
}

class Mutator {
 public:
  explicit Mutator(uint32_t seed) : rng_(seed) {}

  std::string mutate(const std::string& text) {
    switch (pick(4)) {
      case 0: case 1: return mutate_json(text, 1 + pick(3));
      case 2: return mutate_bytes(text, 1 + pick(4));
      default: return mutate_bytes(mutate_json(text, 1), 1);
    }
  }

 private:
  size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  // A random node of `j` (the root included).
  json* random_node(json& j) {
    json* at = &j;
    while ((at->is_object() || at->is_array()) && !at->empty() && pick(3) != 0) {
      auto it = at->begin();
      std::advance(it, pick(at->size()));
      at = &*it;
    }
    return at;
  }

  std::string mutate_json(const std::string& text, int times) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) return text;
    static const std::vector<json> values = interesting_values();
    static const std::vector<std::string> keys = interesting_keys();
    for (int t = 0; t < times; ++t) {
      json* node = random_node(j);
      switch (pick(5)) {
        case 0: *node = values[pick(values.size())]; break;
        case 1:
          if (node->is_object()) (*node)[keys[pick(keys.size())]] = values[pick(values.size())];
          else if (node->is_array()) node->push_back(values[pick(values.size())]);
          break;
        case 2:
          if (node->is_object() && !node->empty()) {
            auto it = node->begin();
            std::advance(it, pick(node->size()));
            node->erase(it.key());
          } else if (node->is_array() && !node->empty()) {
            node->erase(pick(node->size()));
          }
          break;
        case 3:  // a typo of a key
          if (node->is_object() && !node->empty()) {
            auto it = node->begin();
            std::advance(it, pick(node->size()));
            std::string k = it.key();
            json v = it.value();
            node->erase(k);
            if (!k.empty()) k.erase(pick(k.size()), 1);
            (*node)[k + (pick(2) ? "x" : "")] = v;
          }
          break;
        default:  // the spec's own structure again, somewhere else
          if (node->is_object()) (*node)[keys[pick(keys.size())]] = json::parse(text, nullptr, false);
      }
    }
    return j.dump(pick(2) ? 2 : -1, ' ', false, json::error_handler_t::replace);
  }

  std::string mutate_bytes(std::string text, int times) {
    static const std::vector<std::string> snippets = {
        "\xEF\xBB\xBF", "1e999", "-1e999", "\"name\": \"x\", \"name\": \"y\", ", "\\u0000", "\\\\",
        "\"", "{", "}", "[", "]", ",", ":", "\r", "\x1a", "\\n", "0.0", "\"\\ud800\""};
    for (int t = 0; t < times; ++t) {
      size_t at = text.empty() ? 0 : pick(text.size() + 1);
      switch (pick(4)) {
        case 0: if (at < text.size()) text[at] = static_cast<char>(pick(256)); break;
        case 1: if (at < text.size()) text.erase(at, 1 + pick(4)); break;
        case 2: text.insert(at, 1, static_cast<char>(pick(256))); break;
        default: {
          // After a '{' when there is one, so a duplicate key lands in an object.
          size_t brace = text.find('{', at);
          text.insert(brace == std::string::npos ? at : brace + 1, snippets[pick(snippets.size())]);
        }
      }
    }
    return text;
  }

  std::mt19937 rng_;
};

bool has_control(std::string_view s, bool allow_lf) {
  return std::any_of(s.begin(), s.end(), [&](unsigned char c) {
    return (c < 0x20 && !(allow_lf && c == '\n')) || c == 0x7f;
  });
}

TEST(SpecFuzz, MutatedSpecsCheckGenAndBuild) {
  const long seconds = env_number("ASMSRV_FUZZ_SECONDS", 0);
  const long count = env_number("ASMSRV_FUZZ_SPECS", 5000);
  const uint32_t seed = static_cast<uint32_t>(env_number("ASMSRV_FUZZ_SEED", 20261123));
  const long builds_wanted = seconds > 0 ? 1000000 : 10;  // per syntax
  std::vector<std::pair<std::string, std::string>> seeds;  // path, text
  for (const std::string& name : spec_names()) {
    std::string path = source_dir() + "/specs/" + name + ".json";
    seeds.emplace_back(path, read(path));
  }
  Mutator m(seed);
  auto start = std::chrono::steady_clock::now();
  long tried = 0, accepted = 0, rejected = 0, built = 0, failures = 0;
  std::string work = temp_dir();
  for (long i = 0;; ++i) {
    if (seconds > 0 ? std::chrono::steady_clock::now() - start > std::chrono::seconds(seconds) : i >= count)
      break;
    const auto& [path, text] = seeds[static_cast<size_t>(i) % seeds.size()];
    std::string mutant = m.mutate(text);
    ++tried;
    auto report = [&](const std::string& what) {
      ++failures;
      if (failures <= 10) ADD_FAILURE() << what << "\nseed " << seed << ", mutant " << i << ":\n" << mutant;
    };
    Spec spec;
    try {
      spec = parse_spec(mutant, path);
    } catch (const SpecError& e) {
      ++rejected;
      static const std::regex pointer_line(R"(^[^\n]*: (/[^\n]*)?: [^\n]+$)");
      for (const std::string& line : e.lines()) {
        bool at_position = line.rfind(path + ":", 0) == 0 &&
                           std::regex_search(line.substr(path.size()), std::regex(R"(^:\d+:\d+: .)"));
        bool at_pointer = line.rfind(path + ": /", 0) == 0 && std::regex_match(line, pointer_line);
        if (has_control(line, false) || !(at_position || at_pointer)) report("malformed error line: " + line);
      }
      continue;
    } catch (const std::exception& e) {
      report(std::string("check threw ") + e.what());
      continue;
    }
    ++accepted;
    try {
      Program p = lower(spec);
      for (const Dialect* d : {&nasm_dialect(), &gas_dialect()}) {
        std::string listing = print_program(p, *d);
        if (has_control(listing, true)) report(std::string("control character in the ") + d->name + " listing");
        if (built < builds_wanted * 2) {
          std::vector<std::string> includes;
          for (const std::string& dir : p.include_dirs) includes.push_back(fsys::absolute(dir).string());
          assemble_and_link(*d, listing, includes, work, work + "/server", false);
          ++built;
        }
      }
    } catch (const std::exception& e) {
      report(std::string("check said ok, then gen or build threw: ") + e.what());
    }
  }
  std::cout << "spec fuzz: seed " << seed << ", " << tried << " mutants: " << rejected << " rejected, "
            << accepted << " accepted, " << built << " built; " << failures << " failures\n";
  EXPECT_EQ(failures, 0);
  EXPECT_GT(rejected, tried / 4) << "the mutants should mostly be wrong";
  EXPECT_GT(accepted, 10) << "and some right";
}

}  // namespace
}  // namespace asmsrv::test
