# Finds libjpeg-turbo's TurboJPEG API (Debian libturbojpeg0-dev). Provides TurboJPEG::TurboJPEG.
include(${CMAKE_CURRENT_LIST_DIR}/RingloaderFindLibrary.cmake)
ringloader_find_library(TurboJPEG TurboJPEG::TurboJPEG HEADER turbojpeg.h NAMES turbojpeg PKG libturbojpeg)
