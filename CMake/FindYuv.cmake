# Finds libyuv (Debian libyuv-dev ships no pkg-config file). Provides Yuv::Yuv.
include(${CMAKE_CURRENT_LIST_DIR}/RingloaderFindLibrary.cmake)
ringloader_find_library(Yuv Yuv::Yuv HEADER libyuv.h NAMES yuv)
