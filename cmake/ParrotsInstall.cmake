# The SDK that `cmake --install <build> --prefix P` puts under P:
#   lib/libparrots.so              the library (shared: its own dependencies are
#                                  its business, found through its DT_NEEDED and RUNPATH)
#   include/parrots/*.h, *.def     the public headers, and nothing else
#   bin/parrots                    the command line
#   lib/cmake/Parrots/             find_package(Parrots 0.1) -> Parrots::parrots, Parrots::plugin
#   lib/pkgconfig/parrots.pc       the library;  parrots-plugin.pc: plugin headers only
# A plugin links nothing of Parrots (include/parrots/plugin.h): Parrots::plugin
# and parrots-plugin.pc carry the include directory and no library.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The shared library, from the same objects as the static one (no second compile).
add_library(parrots_shared SHARED)
target_link_libraries(parrots_shared PRIVATE parrots_obj)
target_include_directories(parrots_shared INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
# Installed with the RUNPATH of its dependencies outside the system directories
# (CUDA, cuDNN): the loader finds them at run time, and ld finds them when an
# application links only -lparrots.
set_target_properties(parrots_shared PROPERTIES OUTPUT_NAME parrots EXPORT_NAME parrots
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}
  INSTALL_RPATH_USE_LINK_PATH ON)
set_target_properties(parrots_cli PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)

add_library(parrots_plugin INTERFACE)
target_include_directories(parrots_plugin INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
set_target_properties(parrots_plugin PROPERTIES EXPORT_NAME plugin)
add_library(Parrots::plugin ALIAS parrots_plugin)

install(TARGETS parrots_shared parrots_plugin EXPORT ParrotsTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS parrots_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# Everything in include/parrots/ is public by convention; the private headers
# (*_impl.h, ops/, runtime/, vm/ ...) live beside their sources and stay there.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/parrots DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.h" PATTERN "*.def")

set(PARROTS_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Parrots)
install(EXPORT ParrotsTargets NAMESPACE Parrots:: DESTINATION ${PARROTS_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/ParrotsConfig.cmake.in
  ${PROJECT_BINARY_DIR}/ParrotsConfig.cmake INSTALL_DESTINATION ${PARROTS_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_BINDIR)
# 0.x: a minor version may break the library's API (the plugin ABI has its own version)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ParrotsConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ParrotsConfig.cmake ${PROJECT_BINARY_DIR}/ParrotsConfigVersion.cmake
  DESTINATION ${PARROTS_CMAKE_DIR})

# pkg-config files are relocatable: the prefix is found from the .pc file's own
# place (${pcfiledir}), so `cmake --install --prefix P` needs no reconfigure.
file(RELATIVE_PATH PARROTS_PC_UP /root/${CMAKE_INSTALL_LIBDIR}/pkgconfig /root)
foreach(pc parrots parrots-plugin)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/${pc}.pc.in ${PROJECT_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${pc}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()
