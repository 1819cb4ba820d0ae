# Finds Debian's libstb (stb_image, stb_image_write, stb_image_resize compiled into libstb.so:
# never define STB_*_IMPLEMENTATION). Provides Stb::Stb.
include(${CMAKE_CURRENT_LIST_DIR}/RingloaderFindLibrary.cmake)
ringloader_find_library(Stb Stb::Stb HEADER stb_image.h NAMES stb PKG stb SUFFIXES stb)
