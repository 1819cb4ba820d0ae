# ringloader-imagefolder (the image-folder CLI) and ringloader-bench (the throughput harness).
# Included from examples/CMakeLists.txt, after image_gen.cmake (ringloader::image_gen).
add_library(ringloader_cli_common STATIC ${CMAKE_CURRENT_LIST_DIR}/cli_common.cpp)
target_link_libraries(ringloader_cli_common PUBLIC ringloader::datasets CLI11::CLI11 nlohmann_json::nlohmann_json)
target_compile_features(ringloader_cli_common PUBLIC cxx_std_20)
ringloader_enable_warnings(ringloader_cli_common)
ringloader_sanitize(ringloader_cli_common)

ringloader_add_example(ringloader-imagefolder SOURCES ${CMAKE_CURRENT_LIST_DIR}/imagefolder_cli.cpp
                       DEPS ringloader::ringloader ringloader_cli_common nlohmann_json::nlohmann_json)

if(TARGET ringloader::image_gen)
  ringloader_add_example(ringloader-bench SOURCES ${CMAKE_CURRENT_LIST_DIR}/bench.cpp
                         DEPS ringloader::ringloader ringloader::image_gen ringloader_cli_common
                              nlohmann_json::nlohmann_json)
  target_compile_definitions(ringloader-bench PRIVATE
                             RINGLOADER_PYTORCH_SCRIPT="${CMAKE_CURRENT_LIST_DIR}/pytorch_bench.py")
endif()
