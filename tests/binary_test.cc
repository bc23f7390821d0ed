// The binaries: NASM and GAS give byte-identical code; every binary is
// static, stripped, with no writable-and-executable segment and a
// non-executable stack.
#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <sstream>

#include "encode.h"
#include "lower.h"
#include "spec.h"
#include "test_util.h"

namespace asmsrv::test {
namespace {

struct Elf {
  std::string bytes;
  std::string path;
  const Elf64_Ehdr* ehdr() const { return reinterpret_cast<const Elf64_Ehdr*>(bytes.data()); }
  const Elf64_Phdr* phdr(int i) const {
    return reinterpret_cast<const Elf64_Phdr*>(bytes.data() + ehdr()->e_phoff + i * ehdr()->e_phentsize);
  }
  const Elf64_Shdr* shdr(int i) const {
    return reinterpret_cast<const Elf64_Shdr*>(bytes.data() + ehdr()->e_shoff + i * ehdr()->e_shentsize);
  }
  std::map<std::string, std::string> sections() const {
    std::map<std::string, std::string> out;
    const Elf64_Shdr* names = shdr(ehdr()->e_shstrndx);
    for (int i = 0; i < ehdr()->e_shnum; ++i) {
      const Elf64_Shdr* s = shdr(i);
      std::string name = bytes.data() + names->sh_offset + s->sh_name;
      out[name] = s->sh_type == SHT_NOBITS ? std::string(s->sh_size, '\0')
                                           : bytes.substr(s->sh_offset, s->sh_size);
    }
    return out;
  }
};

// Builds specs/<spec>.json with `syntax` (once per test run).
const Elf& binary(const std::string& spec, const std::string& syntax) {
  static std::map<std::string, Elf> cache;
  std::string key = spec + "." + syntax;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  std::string out = temp_dir() + "/" + key;
  CmdResult r = asmsrv({"build", "specs/" + spec + ".json", "--syntax", syntax, "-o", out});
  EXPECT_EQ(r.status, 0) << r.err;
  Elf elf{read(out), out};
  EXPECT_GE(elf.bytes.size(), sizeof(Elf64_Ehdr));
  EXPECT_EQ(std::memcmp(elf.bytes.data(), ELFMAG, SELFMAG), 0);
  return cache[key] = elf;
}

class Binary : public ::testing::TestWithParam<std::string> {};

// The IR chooses every jump's size from max_length (encode.h): a short jump
// is safe only if no instruction is longer than the model says. The
// assemblers reject a short jump out of reach, so an underestimate would
// fail the build; this also checks the model stays close to the truth.
// Instruction by instruction: objdump's disassembly of .text lists the IR's
// instructions in order, one line each (plus lines that continue a long one's
// bytes), so its addresses give each instruction's real length.
TEST_P(Binary, TheLengthModelBoundsTheRealCode) {
  Program p = lower(load_spec(source_dir() + "/specs/" + GetParam() + ".json"));
  std::vector<const Instr*> ir;
  uint64_t model = 0;
  int jumps = 0, near = 0;
  for (const Block& b : p.blocks)
    for (const Line& line : b.lines)
      if (auto* ins = std::get_if<Instr>(&line)) {
        ir.push_back(ins);
        model += static_cast<uint64_t>(max_length(*ins));
        if (ins->jump != JumpSize::any) ++jumps;
        if (ins->jump == JumpSize::near_) ++near;
      }
  uint64_t real = binary(GetParam(), "nasm").sections()[".text"].size();
  CmdResult dis = run({"objdump", "-d", "-M", "intel", "-j", ".text", binary(GetParam(), "nasm").path});
  ASSERT_EQ(dis.status, 0) << dis.err;
  std::vector<uint64_t> addr;
  std::vector<std::string> text;
  std::istringstream lines(dis.out);
  for (std::string l; std::getline(lines, l);) {
    size_t colon = l.find(":\t");
    size_t tab = colon == std::string::npos ? colon : l.find('\t', colon + 2);
    if (tab == std::string::npos || l.find_first_not_of(' ') != l.find_first_of("0123456789abcdef")) continue;
    addr.push_back(std::stoull(l.substr(0, colon), nullptr, 16));
    text.push_back(l.substr(tab + 1));
  }
  ASSERT_EQ(addr.size(), ir.size()) << "one machine instruction per IR instruction";
  addr.push_back(addr.front() + real);
  int under = 0;
  for (size_t i = 0; i < ir.size(); ++i) {
    int length = static_cast<int>(addr[i + 1] - addr[i]);
    if (length > max_length(*ir[i]) && ++under <= 5)
      ADD_FAILURE() << text[i] << ": " << length << " bytes, the model says at most " << max_length(*ir[i]);
  }
  EXPECT_EQ(under, 0) << "instructions longer than max_length";
  EXPECT_LE(model, real + real / 50) << "max_length is more than 2% above the real code";
  EXPECT_GT(jumps, 50);
  EXPECT_LT(near, jumps / 2) << "most jumps should be short";
}

TEST_P(Binary, NasmAndGasGiveByteIdenticalText) {
  auto nasm = binary(GetParam(), "nasm").sections();
  auto gas = binary(GetParam(), "gas").sections();
  ASSERT_TRUE(nasm.count(".text"));
  ASSERT_TRUE(gas.count(".text"));
  EXPECT_GT(nasm[".text"].size(), 100u);
  EXPECT_TRUE(nasm[".text"] == gas[".text"]) << ".text differs between NASM and GAS output";
  EXPECT_TRUE(nasm[".rodata"] == gas[".rodata"]) << ".rodata differs between NASM and GAS output";
}

TEST_P(Binary, IsStaticStrippedAndNeverWritableAndExecutable) {
  for (const char* syntax : {"nasm", "gas"}) {
    const Elf& elf = binary(GetParam(), syntax);
    EXPECT_EQ(elf.ehdr()->e_type, ET_EXEC) << syntax;
    bool gnu_stack = false;
    for (int i = 0; i < elf.ehdr()->e_phnum; ++i) {
      const Elf64_Phdr* ph = elf.phdr(i);
      EXPECT_NE(ph->p_type, PT_INTERP) << syntax << ": not static";
      EXPECT_NE(ph->p_type, PT_DYNAMIC) << syntax << ": not static";
      if (ph->p_type == PT_LOAD)
        EXPECT_FALSE((ph->p_flags & PF_W) && (ph->p_flags & PF_X)) << syntax << ": segment " << i << " is RWX";
      if (ph->p_type == PT_GNU_STACK) {
        gnu_stack = true;
        EXPECT_EQ(ph->p_flags, static_cast<Elf64_Word>(PF_R | PF_W)) << syntax << ": stack must be RW, not X";
      }
    }
    EXPECT_TRUE(gnu_stack) << syntax << ": no PT_GNU_STACK";
    auto sections = elf.sections();
    EXPECT_FALSE(sections.count(".symtab")) << syntax << ": not stripped";
    EXPECT_FALSE(sections.count(".interp")) << syntax;
  }
}

INSTANTIATE_TEST_SUITE_P(Specs, Binary, ::testing::ValuesIn(spec_names()));

}  // namespace
}  // namespace asmsrv::test
