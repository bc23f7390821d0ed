# The man page, the files installed beside the binary, and the Debian package.
#
#   cmake --install build --prefix P --strip    # P/bin/asmsrv, P/share/...
#   scripts/package                             # asmsrv_<version>_amd64.deb
#
# Included from the top-level CMakeLists.txt after the asmsrv target.

# --- The man page: doc/asmsrv.1.scd -> asmsrv.1 (scdoc) -> asmsrv.1.gz -------
# Built when scdoc is found; the package requires it (see the check below).
find_program(ASMSRV_SCDOC scdoc DOC "scdoc, which turns doc/asmsrv.1.scd into the man page")
find_program(ASMSRV_GZIP gzip)
set(ASMSRV_MAN_SOURCE ${PROJECT_SOURCE_DIR}/doc/asmsrv.1.scd)
set(ASMSRV_MAN ${PROJECT_BINARY_DIR}/asmsrv.1)
if(ASMSRV_SCDOC AND ASMSRV_GZIP)
  # gzip -n: no file name or time stamp in the .gz (Debian policy). scdoc dates
  # the page today, or from SOURCE_DATE_EPOCH when that is set.
  add_custom_command(
    OUTPUT ${ASMSRV_MAN} ${ASMSRV_MAN}.gz
    COMMAND sh -c "\"$0\" < \"$1\" > \"$2.tmp\" && mv \"$2.tmp\" \"$2\" && \"$3\" -n -9 -c \"$2\" > \"$2.gz\""
            ${ASMSRV_SCDOC} ${ASMSRV_MAN_SOURCE} ${ASMSRV_MAN} ${ASMSRV_GZIP}
    DEPENDS ${ASMSRV_MAN_SOURCE}
    COMMENT "scdoc: doc/asmsrv.1.scd -> asmsrv.1"
    VERBATIM)
  add_custom_target(asmsrv_man ALL DEPENDS ${ASMSRV_MAN} ${ASMSRV_MAN}.gz)
  install(FILES ${ASMSRV_MAN}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
  set(ASMSRV_MAN_BUILT ON)
else()
  message(STATUS "scdoc not found: no man page (install scdoc, e.g. with scripts/deps)")
  set(ASMSRV_MAN_BUILT OFF)
endif()

# --- Installed beside the binary ---------------------------------------------
install(FILES dist/asmsrv.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME asmsrv)
# The example specs, with the files site.json embeds (specs/site/) and the
# whole site static.json serves (specs/static-site/, hidden files included).
install(DIRECTORY specs/
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples
        FILES_MATCHING
        PATTERN "*.json"
        REGEX "/site/[^/]+$"
        REGEX "/static-site/.+$")
# The spec's JSON Schema, as `asmsrv schema` prints it (schema_test keeps the
# committed copy in step).
install(FILES doc/asmsrv.schema.json DESTINATION ${CMAKE_INSTALL_DATADIR}/asmsrv)
# The README is the reference for every spec key (the man page points to it).
install(FILES dist/copyright README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

# --- CPack: the Debian package -----------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME asmsrv)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "asmsrv")
set(CPACK_PACKAGE_CONTACT "asmsrv maintainers <maintainers@users.noreply.r-seed-e7075343.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "compiler from a JSON server spec to a static x86-64 assembly HTTP server")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_PACKAGE_NAME asmsrv)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # asmsrv_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
# nasm, or as and ld (binutils): the toolchain `asmsrv build` drives. A
# static asmsrv (ASMSRV_STATIC, as scripts/package builds it) needs nothing
# else; otherwise dpkg-shlibdeps adds the libraries it links (libc6,
# libstdc++6, libfmt9, ...).
set(CPACK_DEBIAN_PACKAGE_DEPENDS "nasm, binutils")
if(ASMSRV_STATIC)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS OFF)
else()
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
endif()
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "curl")
# The long description; CPack puts the summary above it and indents it.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
"asmsrv compiles a JSON server spec into a standalone HTTP (or raw TCP)
server for x86-64 Linux, written in assembly (NASM or GNU as). The result
is a static binary of 3 to 25 KB with no libc: only raw system calls. It
answers every request with a response computed at compile time, and exits
cleanly on SIGTERM, also as PID 1.
.
The generated assembly reads like a textbook listing: every block names
the system call it makes, its C equivalent and why.")

# No package without its man page: cpack fails rather than leave it out.
if(NOT ASMSRV_MAN_BUILT)
  set(ASMSRV_NO_MAN_SCRIPT ${PROJECT_BINARY_DIR}/asmsrv-no-man-page.cmake)
  file(WRITE ${ASMSRV_NO_MAN_SCRIPT}
       "message(FATAL_ERROR \"asmsrv: the package needs the man page, and scdoc was not \"\n"
       "  \"found when ${PROJECT_BINARY_DIR} was configured: install scdoc (scripts/deps) \"\n"
       "  \"and run cmake again\")\n")
  set(CPACK_PRE_BUILD_SCRIPTS ${ASMSRV_NO_MAN_SCRIPT})
endif()

set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git/" "/build/" "/build-[^/]*/" "\\\\.deb$")
include(CPack)
