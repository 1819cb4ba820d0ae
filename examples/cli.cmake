# ringloader-imagefolder (the image-folder CLI), ringloader-pack (packed shards) and
# ringloader-bench (the throughput harness).
# Included from examples/CMakeLists.txt, after image_gen.cmake (ringloader::image_gen) and
# ringloader_cli_common.
ringloader_add_example(ringloader-imagefolder SOURCES ${CMAKE_CURRENT_LIST_DIR}/imagefolder_cli.cpp
                       DEPS ringloader::ringloader ringloader_cli_common nlohmann_json::nlohmann_json)

ringloader_add_example(ringloader-pack SOURCES ${CMAKE_CURRENT_LIST_DIR}/pack.cpp
                       DEPS ringloader::ringloader ringloader_cli_common nlohmann_json::nlohmann_json
                            LibArchive::LibArchive TurboJPEG::TurboJPEG)

if(TARGET ringloader::image_gen)
  ringloader_add_example(ringloader-bench SOURCES ${CMAKE_CURRENT_LIST_DIR}/bench.cpp
                         DEPS ringloader::ringloader ringloader::image_gen ringloader_cli_common
                              nlohmann_json::nlohmann_json)
  # --vs-pytorch's defaults in a build tree: the repository's .venv/ (torch pinned there by
  # .ci/install-deps), else python3 on PATH. The wheel's entry point overrides both (ringloader/_cli.py).
  set(bench_python python3)
  if(EXISTS ${PROJECT_SOURCE_DIR}/.venv/bin/python AND NOT SKBUILD)
    set(bench_python ${PROJECT_SOURCE_DIR}/.venv/bin/python)
  endif()
  target_compile_definitions(ringloader-bench PRIVATE
                             RINGLOADER_PYTORCH_SCRIPT="${CMAKE_CURRENT_LIST_DIR}/pytorch_bench.py"
                             RINGLOADER_BENCH_PYTHON="${bench_python}")
endif()
