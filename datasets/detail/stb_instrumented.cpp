// Fuzz builds with -DRINGLOADER_FUZZ_STB=ON only: stb_image and stb_image_resize compiled from
// their headers into the library, so the fuzzer's coverage and ASan see inside them (Debian's
// libstb.so is not instrumented: an overread in it is invisible unless it faults). Off in CI:
// it finds overreads inside stb_image 2.27 itself (see docs/fuzzing.md).
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
