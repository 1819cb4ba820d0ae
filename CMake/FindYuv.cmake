# Finds libyuv (Debian libyuv-dev ships no pkg-config file). Provides Yuv::Yuv.
find_path(Yuv_INCLUDE_DIR libyuv.h)
find_library(Yuv_LIBRARY NAMES yuv)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Yuv REQUIRED_VARS Yuv_LIBRARY Yuv_INCLUDE_DIR)
if(Yuv_FOUND AND NOT TARGET Yuv::Yuv)
  add_library(Yuv::Yuv UNKNOWN IMPORTED)
  set_target_properties(Yuv::Yuv PROPERTIES IMPORTED_LOCATION "${Yuv_LIBRARY}"
                        INTERFACE_INCLUDE_DIRECTORIES "${Yuv_INCLUDE_DIR}")
endif()
mark_as_advanced(Yuv_INCLUDE_DIR Yuv_LIBRARY)
