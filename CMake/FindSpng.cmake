# Finds libspng (Debian libspng-dev): PNG decoding with CRC and zlib checksum checks, 1.5x
# stb_image on photo-like PNGs. Provides Spng::Spng.
include(${CMAKE_CURRENT_LIST_DIR}/RingloaderFindLibrary.cmake)
ringloader_find_library(Spng Spng::Spng HEADER spng.h NAMES spng PKG spng)
