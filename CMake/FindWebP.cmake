# Finds libwebp (Debian libwebp-dev). Provides WebP::WebP.
include(${CMAKE_CURRENT_LIST_DIR}/RingloaderFindLibrary.cmake)
ringloader_find_library(WebP WebP::WebP HEADER webp/decode.h NAMES webp PKG libwebp)
