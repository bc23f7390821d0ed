// File-system helpers: whole-file reads, atomic writes, private temp dirs.
#pragma once

#include <string>

namespace asmsrv {

/// The whole file; throws std::runtime_error "cannot read PATH: strerror".
std::string read_file(const std::string& path);

/// Standard input, read to its end; throws like read_file.
std::string read_stdin();

/// Writes `data` to a temp file beside `path`, then renames it over `path`,
/// so readers see the old file or the new one, never a part. `mode` is the
/// new file's permission bits. Throws std::runtime_error on failure.
void write_file_atomic(const std::string& path, const std::string& data, int mode = 0644);

/// Atomically copies the file `from` to `to` (same guarantees as above).
void copy_file_atomic(const std::string& from, const std::string& to, int mode);

/// A private (0700) directory under $TMPDIR, removed with its contents on
/// destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "asmsrv");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace asmsrv
