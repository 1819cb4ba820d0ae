# Finds Debian's libstb (stb_image, stb_image_write, stb_image_resize compiled into libstb.so:
# never define STB_*_IMPLEMENTATION). Provides Stb::Stb.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_STB QUIET stb)
endif()
find_path(Stb_INCLUDE_DIR stb_image.h HINTS ${PC_STB_INCLUDE_DIRS} PATH_SUFFIXES stb)
find_library(Stb_LIBRARY NAMES stb HINTS ${PC_STB_LIBRARY_DIRS})
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Stb REQUIRED_VARS Stb_LIBRARY Stb_INCLUDE_DIR)
if(Stb_FOUND AND NOT TARGET Stb::Stb)
  add_library(Stb::Stb UNKNOWN IMPORTED)
  set_target_properties(Stb::Stb PROPERTIES IMPORTED_LOCATION "${Stb_LIBRARY}"
                        INTERFACE_INCLUDE_DIRECTORIES "${Stb_INCLUDE_DIR}")
endif()
mark_as_advanced(Stb_INCLUDE_DIR Stb_LIBRARY)
