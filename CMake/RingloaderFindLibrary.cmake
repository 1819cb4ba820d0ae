# ringloader_find_library(<Name> <Target> HEADER <file> NAMES <lib...> [PKG <pkg-config name>]
#                         [SUFFIXES <include subdirs...>])
# The body every Find<Name>.cmake of this project shares: look the header and library up (with
# pkg-config hints when the package ships a .pc file), report through
# find_package_handle_standard_args, and define the imported target <Target>.
# Installed next to the find modules so that find_package(ringloader) can use them.
include_guard(GLOBAL)
include(FindPackageHandleStandardArgs)

macro(ringloader_find_library name target)
  cmake_parse_arguments(_rfl "" "HEADER;PKG" "NAMES;SUFFIXES" ${ARGN})
  if(_rfl_PKG)
    find_package(PkgConfig QUIET)
    if(PkgConfig_FOUND)
      pkg_check_modules(PC_${name} QUIET ${_rfl_PKG})
    endif()
  endif()
  find_path(${name}_INCLUDE_DIR ${_rfl_HEADER} HINTS ${PC_${name}_INCLUDE_DIRS} PATH_SUFFIXES ${_rfl_SUFFIXES})
  find_library(${name}_LIBRARY NAMES ${_rfl_NAMES} HINTS ${PC_${name}_LIBRARY_DIRS})
  find_package_handle_standard_args(${name} REQUIRED_VARS ${name}_LIBRARY ${name}_INCLUDE_DIR)
  if(${name}_FOUND AND NOT TARGET ${target})
    add_library(${target} UNKNOWN IMPORTED)
    set_target_properties(${target} PROPERTIES IMPORTED_LOCATION "${${name}_LIBRARY}"
                          INTERFACE_INCLUDE_DIRECTORIES "${${name}_INCLUDE_DIR}")
  endif()
  mark_as_advanced(${name}_INCLUDE_DIR ${name}_LIBRARY)
endmacro()
