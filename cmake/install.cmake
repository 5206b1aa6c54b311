# What `cmake --install build [--prefix DIR]` puts under the prefix
# (included by CMakeLists.txt):
#
#   include/evstore.h, evstore_command.h       the API
#   LIBDIR/libevstore.so*, libevstore.a         the library
#   LIBDIR/evstore/static/libevstore.a          a link to the archive, for
#                                               pkg-config --static (below)
#   LIBDIR/pkgconfig/evstore.pc                 pkg-config
#   LIBDIR/cmake/evstore/                       find_package(evstore)
#   bin/evs                                     the tool (tools/evs)
#
# Every file refers to the others by relative path, so the tree can be
# installed under any prefix and moved.

include(CMakePackageConfigHelpers)
set(EVS_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/evstore)

install(FILES include/evstore.h include/evstore_command.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# Two export sets: find_package(evstore) always loads the shared library's
# and loads the static one's when its dependencies are found.
install(TARGETS evstore EXPORT evstoreTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS evstore_static EXPORT evstoreStaticTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT evstoreTargets NAMESPACE evstore:: DESTINATION ${EVS_CMAKE_DIR})
install(EXPORT evstoreStaticTargets NAMESPACE evstore:: DESTINATION ${EVS_CMAKE_DIR})

configure_package_config_file(cmake/evstoreConfig.cmake.in
  ${CMAKE_BINARY_DIR}/evstoreConfig.cmake INSTALL_DESTINATION ${EVS_CMAKE_DIR})
# 0.x: a minor version may change the API.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/evstoreConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/evstoreConfig.cmake
  ${CMAKE_BINARY_DIR}/evstoreConfigVersion.cmake
  cmake/evstoreDependencies.cmake DESTINATION ${EVS_CMAKE_DIR})

# ---- evstore.pc
#
# Relocatable: prefix is found from the file's own directory (pcfiledir),
# not written in at configure time.
#
# `pkg-config --static` must give a link line that works and takes
# libevstore.a. Two things make it so:
# - Requires.private lists only modules whose own static lines link on
#   Debian; libpq's names libpgcommon and libpgport, which Debian ships as
#   no library at all, so libpq is -lpq in Libs.private (libpq.so is used).
# - With libevstore.so and libevstore.a side by side, -levstore takes the
#   .so. Cflags.private (only with --static, and cflags come before libs)
#   puts first on the search path a directory holding only the archive.
#   pkgconf (Debian's pkg-config) honours Cflags.private; where it is not,
#   --static still links, with libevstore.so.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(EVS_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(EVS_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  # From prefix/LIBDIR/pkgconfig back to prefix: "../.." for lib.
  file(RELATIVE_PATH EVS_PC_UP /evs-prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /evs-prefix)
  string(REGEX REPLACE "/$" "" EVS_PC_UP "${EVS_PC_UP}")
  set(EVS_PC_PREFIX "\${pcfiledir}/${EVS_PC_UP}")
  set(EVS_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(EVS_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(EVS_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
set(EVS_PC_REQUIRES_PRIVATE "uuid simdjson libsodium")
set(EVS_PC_LIBS_PRIVATE "-llmdb -lisal -lxxhash")
if(EVS_WITH_POSTGRES)
  string(APPEND EVS_PC_LIBS_PRIVATE " -lpq")
endif()
string(APPEND EVS_PC_LIBS_PRIVATE " -l${EVS_CXX_RUNTIME} -pthread")
configure_file(evstore.pc.in ${CMAKE_BINARY_DIR}/evstore.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/evstore.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# LIBDIR/evstore/static/libevstore.a -> ../../libevstore.a
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(EVS_STATIC_DIR "${CMAKE_INSTALL_LIBDIR}/evstore/static")
else()
  set(EVS_STATIC_DIR "\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/evstore/static")
endif()
install(CODE "
  set(dir \"\$ENV{DESTDIR}${EVS_STATIC_DIR}\")
  message(STATUS \"Installing: \${dir}/libevstore.a -> ../../libevstore.a\")
  file(MAKE_DIRECTORY \"\${dir}\")
  file(CREATE_LINK ../../libevstore.a \"\${dir}/libevstore.a\" SYMBOLIC)
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\${dir}/libevstore.a\")
")
