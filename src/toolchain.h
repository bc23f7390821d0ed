// Running the assembler and the linker: finding them, spawning them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dialect.h"

namespace asmsrv {

/// The full path of `name` found in $PATH, if any.
std::optional<std::string> find_program(const std::string& name);

/// argv as a shell would read it back: "nasm -f elf64 -o 'a b.o' a.s".
std::string shell_words(const std::vector<std::string>& argv);

/// Runs argv[0] (looked up in $PATH) and waits; returns its exit status,
/// or 128 + signal. Throws std::runtime_error if it cannot be started.
int run_command(const std::vector<std::string>& argv);

/// Assembles `asm_text` and links it into the executable `exe` inside the
/// existing directory `workdir`. With `verbose`, prints each command line
/// to stderr first. Throws std::runtime_error naming a missing tool and its
/// Debian package, or a tool that failed.
void assemble_and_link(const Dialect& d, const std::string& asm_text,
                       const std::vector<std::string>& include_dirs,
                       const std::string& workdir, const std::string& exe, bool verbose);

}  // namespace asmsrv
