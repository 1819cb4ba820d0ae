# Photo-like image generator library and the decode tools built on it. Included from
# examples/CMakeLists.txt (so ringloader_add_example, CLI11, ringloader_cli_common and the datasets
# target exist).
add_library(ringloader_image_gen STATIC ${CMAKE_CURRENT_LIST_DIR}/image_gen.cpp)
add_library(ringloader::image_gen ALIAS ringloader_image_gen)
target_link_libraries(ringloader_image_gen PUBLIC ringloader::datasets PRIVATE TurboJPEG::TurboJPEG Stb::Stb)
target_compile_features(ringloader_image_gen PUBLIC cxx_std_20)
ringloader_enable_warnings(ringloader_image_gen)
ringloader_sanitize(ringloader_image_gen)

ringloader_add_example(ringloader-decode-bench SOURCES ${CMAKE_CURRENT_LIST_DIR}/decode_bench.cpp
                       DEPS ringloader::image_gen ringloader::ringloader ringloader_cli_common CLI11::CLI11)
ringloader_add_example(ringloader-decode-dump SOURCES ${CMAKE_CURRENT_LIST_DIR}/decode_dump.cpp
                       DEPS ringloader::datasets ringloader_cli_common CLI11::CLI11)
