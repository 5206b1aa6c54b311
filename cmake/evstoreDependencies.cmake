# The libraries libevstore is built against, as imported targets
# evstore::dep_<name>. One file for two readers: the build (CMakeLists.txt)
# and, installed beside evstoreConfig.cmake, find_package(evstore), where a
# user of evstore::evstore_static links what libevstore.a needs. Both find
# each library the same way: pkg-config where its .pc file is sound, else
# find_path/find_library (Debian ships no .pc for lmdb, isa-l or xxhash).
#
# In:  evstore_WITH_POSTGRES (true: the PostgreSQL backend, libpq, is in).
# Out: evstore::dep_lmdb, _isal, _xxhash, _uuid, _simdjson, _sodium, _libpq (with
#      the PostgreSQL backend), Threads::Threads; evstore_DEPS_MISSING, the
#      names of those not found (empty when all were). Never fails: the
#      build stops on a missing one, find_package(evstore) then offers the
#      shared library alone (it needs none of them).
#
# Plain find_package rather than find_dependency: find_dependency returns
# from the calling config file on failure, which would take the shared
# library's target away too.

set(evstore_DEPS_MISSING "")

find_package(Threads QUIET)
if(NOT TARGET Threads::Threads)
  list(APPEND evstore_DEPS_MISSING Threads)
endif()

# pkg-config modules: evstore::dep_<name> wraps PkgConfig::evstore_<name>
# (the prefix keeps pkg_check_modules' variables out of the caller's way).
find_package(PkgConfig QUIET)
macro(_evstore_pkg name module)
  if(NOT TARGET evstore::dep_${name})
    if(PKG_CONFIG_FOUND)
      pkg_check_modules(evstore_${name} QUIET IMPORTED_TARGET ${module})
    endif()
    if(TARGET PkgConfig::evstore_${name})
      add_library(evstore::dep_${name} INTERFACE IMPORTED)
      set_target_properties(evstore::dep_${name} PROPERTIES
        INTERFACE_LINK_LIBRARIES PkgConfig::evstore_${name})
    else()
      list(APPEND evstore_DEPS_MISSING "${module} (pkg-config)")
    endif()
  endif()
endmacro()

# Libraries without a .pc file: a header and a library file.
macro(_evstore_lib name header lib)
  if(NOT TARGET evstore::dep_${name})
    find_path(EVSTORE_${name}_INCLUDE_DIR ${header})
    find_library(EVSTORE_${name}_LIBRARY ${lib})
    mark_as_advanced(EVSTORE_${name}_INCLUDE_DIR EVSTORE_${name}_LIBRARY)
    if(EVSTORE_${name}_INCLUDE_DIR AND EVSTORE_${name}_LIBRARY)
      add_library(evstore::dep_${name} UNKNOWN IMPORTED)
      set_target_properties(evstore::dep_${name} PROPERTIES
        IMPORTED_LOCATION "${EVSTORE_${name}_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${EVSTORE_${name}_INCLUDE_DIR}")
    else()
      list(APPEND evstore_DEPS_MISSING "${lib} (${header}, lib${lib})")
    endif()
  endif()
endmacro()

_evstore_lib(lmdb lmdb.h lmdb)              # the derived index
_evstore_lib(isal isa-l/crc.h isal)         # CRC32C
_evstore_lib(xxhash xxhash.h xxhash)        # the writer's group overlay
_evstore_pkg(uuid uuid)                     # UUID text form
_evstore_pkg(simdjson simdjson)             # JSON validation
_evstore_pkg(sodium libsodium)              # crypto-shredding (XChaCha20-Poly1305)
if(evstore_WITH_POSTGRES)
  _evstore_pkg(libpq libpq)                 # the PostgreSQL backend
endif()
